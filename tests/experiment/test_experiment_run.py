"""Running tiny experiments: the result layout, resume, interrupted runs, failures, the cache,
the CLI verbs, the Ray backend and the speed-up of two workers."""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import shutil
import time
from pathlib import Path

import pytest
import yaml

from rltransfer.experiment import load_experiment, make_plan, run
from rltransfer.rundir import last_step


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_config) -> Path:
    """The tiny experiment (pretrain + scratch + finetune, 2 seeds) run once on 2 workers."""
    root = tmp_path_factory.mktemp("finished")
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    with pytest.MonkeyPatch.context() as mp:
        report = pytest.importorskip("rltransfer.report")
        mp.setattr(report, "build_report", functools.partial(report.build_report, reps=100))
        result = run(path, out=root / "out", workers=2, progress=False)
    assert result.ok, result.failed
    assert (result.skipped, result.executed) == (0, 5)
    return root


def _copy(finished: Path, tmp_path: Path) -> tuple[Path, Path]:
    shutil.copytree(finished, tmp_path / "exp")
    return tmp_path / "exp" / "tiny.yaml", tmp_path / "exp" / "out"


def _state(out: Path) -> dict[str, tuple[int, bytes]]:
    """done.json mtime and curve.csv bytes of every run."""
    return {d.name: ((d / "done.json").stat().st_mtime_ns, (d / "curve.csv").read_bytes())
            for d in sorted((out / "runs").iterdir())}


def _curve(path: Path) -> list[tuple[float, float]]:
    with open(path, newline="") as fh:
        return [(float(r["step"]), float(r["mean_return"])) for r in csv.DictReader(fh)]


def test_layout(finished):
    out = finished / "out"
    exp = json.loads((out / "experiment.json").read_text())
    for key in ("name", "pair", "algo", "methods", "seeds", "steps", "eval", "threshold",
                "baseline", "config", "versions"):
        assert key in exp
    assert exp["methods"] == ["scratch", "finetune"] and exp["seeds"] == [0, 1]
    assert exp["eval"] == {"every": 128, "episodes": 1} and exp["baseline"] == "scratch"
    assert exp["sustain"] == 3  # a report setting, read back by build_report
    plan = make_plan(load_experiment(finished / "tiny.yaml"), out)
    assert sorted(d.name for d in (out / "runs").iterdir()) == sorted(
        r.run_id for r in plan.all_runs)
    for spec in plan.all_runs:
        d = out / "runs" / spec.run_id
        cfg = json.loads((d / "config.json").read_text())
        assert cfg["run_id"] == spec.run_id and cfg["kind"] == spec.kind
        assert cfg["method"] == spec.method and cfg["seed"] == spec.seed
        done = json.loads((d / "done.json").read_text())
        assert done["wall_time"] > 0 and "finished" in done
        assert (d / "checkpoint" / "card.json").is_file()
        assert not (d / "error.txt").exists()
        rows = _curve(d / "curve.csv")
        assert rows[0][0] == 0 and rows[-1][0] >= spec.steps
        if spec.kind == "transfer":
            assert [s for s, _ in rows] == [0, 128, 256]
            tb = out / "tb" / spec.method / f"seed_{spec.seed}"
            assert Path(spec.tb_dir) == tb and list(tb.glob("events.out.tfevents.*")), tb
    # the source is cached by content next to the output folder, and verified
    source = plan.source
    assert Path(source.cache_dir) == finished / ".sources" / source.run_id
    assert (Path(source.cache_dir) / "done.json").is_file()
    from rltransfer.checkpoint import load_checkpoint

    load_checkpoint(Path(source.cache_dir) / "checkpoint")
    # the report
    for name in ("report.md", "curves.png", "metrics.json"):
        assert (out / name).is_file(), name


def test_rerun_skips_finished_runs(finished, tmp_path, capsys):
    path, out = _copy(finished, tmp_path)
    before = _state(out)
    time.sleep(0.01)
    result = run(path, out=out, workers=0, report=False)
    assert (result.skipped, result.executed) == (5, 0)
    assert _state(out) == before  # nothing was rewritten
    assert "5 already finished (skipped)" in capsys.readouterr().err


def test_dry_run_lists_what_a_run_would_skip_and_writes_nothing(finished, tmp_path, capsys):
    from rltransfer.cli import main
    from rltransfer.experiment.driver import _lock, held_by

    path, out = _copy(finished, tmp_path)
    plan = make_plan(load_experiment(path), out)
    victim = next(r for r in plan.runs if r.method == "scratch" and r.seed == 0)
    (Path(victim.run_dir) / "done.json").unlink()
    half = last_step(Path(victim.run_dir) / "curve.csv")
    shutil.rmtree(out / "runs" / next(r.run_id for r in plan.runs if r.method == "finetune"))
    listing = sorted(p.relative_to(out) for p in out.rglob("*"))

    assert main(["run", str(path), "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "5 runs; 3 finished (a run skips them), 1 started, not finished" in text, text
    assert "1 to run; 512 env steps in the runs not finished" in text, text
    rows = {line.split()[1]: line.split()[0] for line in text.splitlines()[1:]}
    assert rows[victim.run_id] == "started" and f"{half:,}/256 steps" in text
    assert sorted(rows.values()) == ["finished"] * 3 + ["started", "to"]
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == listing  # nothing written
    # --sources-only: the source pretraining alone, as `run --sources-only` would run it
    assert main(["run", str(path), "--out", str(out), "--dry-run", "--sources-only"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert "1 source runs (--sources-only); 1 finished" in rows[0], rows
    assert len(rows) == 2 and rows[1].split()[:2] == ["finished", plan.source.run_id], rows

    assert held_by(out) is None
    with _lock(out):  # a driver at work: the listing names it
        assert "pid" in (held_by(out) or "")
        main(["run", str(path), "--out", str(out), "--dry-run"])
        assert "1 started (under way: a driver holds the folder, pid" in capsys.readouterr().out
    assert held_by(out) is None


def test_interrupted_run_is_redone(finished, tmp_path, capsys):
    """A kill -9 leaves a run folder without done.json (maybe half a curve): it is redone."""
    path, out = _copy(finished, tmp_path)
    before = _state(out)
    plan = make_plan(load_experiment(path), out)
    victim = next(r for r in plan.runs if r.method == "finetune" and r.seed == 1)
    vdir = Path(victim.run_dir)
    full_curve = (vdir / "curve.csv").read_bytes()
    full_rows = _curve(vdir / "curve.csv")
    (vdir / "done.json").unlink()
    (vdir / "curve.csv").write_bytes(full_curve[: len(full_curve) // 2])  # a torn write
    shutil.rmtree(vdir / "checkpoint")
    (out / "runs" / f".{victim.run_id}.leftover").mkdir()  # a torn copy
    result = run(path, out=out, workers=0, report=False, progress=False)
    assert (result.skipped, result.executed) == (4, 1) and result.ok
    after = _state(out)
    assert _curve(vdir / "curve.csv") == full_rows  # the same seed gives the same curve
    assert {k: v for k, v in after.items() if k != victim.run_id} == {
        k: v for k, v in before.items() if k != victim.run_id}
    assert not list((out / "runs").glob(".*"))
    # without a bar (--no-progress, as in a log) the plan line and a line per finished run
    err = capsys.readouterr().err.splitlines()
    assert any("4 already finished (skipped); 1 unfinished or failed, redone; 1 to run" in line
               for line in err), err
    done = [line for line in err if line.startswith("runs ")]
    assert len(done) == 1 and done[0].startswith("runs 5/5 done, "), err
    assert done[0].endswith(f": {victim.run_id} (finetune, seed 1)"), err


def test_cached_source_is_shared_and_verified(finished, tmp_path, tiny):
    """A second experiment with the same source reuses its cached pretraining."""
    root = tmp_path / "exp"
    shutil.copytree(finished, root)
    other = {**tiny, "name": "other", "methods": ["finetune"], "seeds": [5]}
    path = root / "other.yaml"
    path.write_text(yaml.safe_dump(other))
    result = run(path, out=root / "other", workers=0, report=False, progress=False)
    assert result.ok and result.executed == 3  # the source (from the cache), scratch, finetune
    source = result.plan.source
    assert json.loads((Path(source.run_dir) / "done.json").read_text())["cached"] is True
    # a tampered cache is not trusted: the source is trained again
    weights = Path(source.cache_dir) / "checkpoint" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    shutil.rmtree(root / "other")
    result = run(path, out=root / "other", workers=0, report=False, progress=False)
    assert result.ok
    assert json.loads((Path(source.run_dir) / "done.json").read_text())["cached"] is False


def test_failing_run_is_recorded_and_the_others_finish(tmp_path, write_yaml, tiny, fast_report,
                                                      capsys):
    """A method that raises at run time: error.txt, the report lists it, exit code 1.

    ``features`` is a valid role, but an MLP policy has no features-extractor weights, so
    the transfer can only fail once the target agent exists.
    """
    from rltransfer.cli import main

    tiny["methods"] = ["scratch", {"partial": {"roles": ["features"]}}]
    tiny["seeds"] = 1
    path = write_yaml(tiny)
    out = tmp_path / "out"
    code = main(["run", str(path), "--out", str(out), "--workers", "0", "--no-progress"])
    assert code == 1
    plan = make_plan(load_experiment(path), out)
    bad = next(r for r in plan.runs if r.method.startswith("partial"))
    text = capsys.readouterr().out
    assert "FAILED" in text and bad.run_id in text and "partial[features]" in text
    error = (Path(bad.run_dir) / "error.txt").read_text()
    assert "Traceback" in error and "no parameter could be moved" in error
    assert not (Path(bad.run_dir) / "done.json").exists()
    for r in plan.all_runs:
        if r is not bad:
            assert (Path(r.run_dir) / "done.json").is_file(), r.method
    assert bad.run_id in (out / "report.md").read_text()


def test_failed_source_fails_its_dependents_only(tmp_path, write_yaml, tiny, monkeypatch):
    from rltransfer.experiment import runner

    def broken(spec):
        raise RuntimeError("pretraining exploded")

    monkeypatch.setattr(runner, "_pretrain", broken)
    tiny["seeds"] = 1
    result = run(write_yaml(tiny), out=tmp_path / "out", workers=0, report=False,
                 progress=False)
    failed = {f.method: f for f in result.failed}
    assert set(failed) == {"pretrain", "finetune"}
    assert "pretraining exploded" in failed["pretrain"].error
    assert "source run" in failed["finetune"].error
    scratch = next(r for r in result.plan.runs if r.method == "scratch")
    assert (Path(scratch.run_dir) / "done.json").is_file()
    ft = next(r for r in result.plan.runs if r.method == "finetune")
    assert "pretraining exploded" not in (Path(ft.run_dir) / "error.txt").read_text()
    assert "source pretraining run" in (Path(ft.run_dir) / "error.txt").read_text()


def test_report_verb(finished, tmp_path, fast_report, capsys):
    from rltransfer.cli import main

    _, out = _copy(finished, tmp_path)
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "finetune" in text and "tensorboard --logdir" in text
    assert (out / "report.md").is_file()


def test_runs_not_in_the_plan_are_parked(finished, tmp_path):
    """Another --seeds leaves other runs out of runs/ (the report reads all of runs/)."""
    path, out = _copy(finished, tmp_path)
    result = run(path, out=out, workers=0, seeds=1, report=False, progress=False)
    assert (result.skipped, result.executed) == (3, 0)
    assert len(list((out / "runs").iterdir())) == 3
    assert len(list((out / "runs.stale").iterdir())) == 2
    result = run(path, out=out, workers=0, report=False, progress=False)
    assert (result.skipped, result.executed) == (5, 0)
    assert not (out / "runs.stale").exists()


def test_last_step_reads_complete_rows(tmp_path):
    p = tmp_path / "curve.csv"
    assert last_step(p) == 0
    p.write_text("step,mean_return,std_return,episodes,wall_time\n")
    assert last_step(p) == 0
    p.write_text("step,mean_return,std_return,episodes,wall_time\n0,9,0,1,0.1\n256,20,0,1,1\n"
                 "51")
    assert last_step(p) == 256


def test_ray_backend_writes_the_same_files(finished, tmp_path):
    ray = pytest.importorskip("ray")
    path = finished / "tiny.yaml"
    out = tmp_path / "ray_out"
    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        result = run(path, out=out, backend="ray", workers=2, cache=tmp_path / "cache",
                     report=False, progress=False)
    finally:
        ray.shutdown()
    assert result.ok and result.executed == 5
    local = finished / "out" / "runs"
    assert sorted(d.name for d in (out / "runs").iterdir()) == sorted(
        d.name for d in local.iterdir())
    for d in local.iterdir():
        assert (out / "runs" / d.name / "done.json").is_file()
        assert _curve(out / "runs" / d.name / "curve.csv") == _curve(d / "curve.csv")


@pytest.mark.expensive
def test_two_workers_take_at_most_60_percent_of_one(tmp_path, write_yaml, tiny):
    """4 runs of about 20 s each: 2 workers need at most 60% of the time 1 worker needs."""
    tiny.update(methods=["scratch"], seeds=4, steps=16000, eval={"every": 4000, "episodes": 5})
    path = write_yaml(tiny)
    times = {}
    for workers in (1, 2):
        t0 = time.perf_counter()
        result = run(path, out=tmp_path / f"w{workers}", workers=workers, report=False,
                     progress=False)
        times[workers] = time.perf_counter() - t0
        assert result.ok and result.executed == 4
    print(f"1 worker {times[1]:.1f} s, 2 workers {times[2]:.1f} s, "
          f"ratio {times[2] / times[1]:.2f}")
    assert times[2] <= 0.6 * times[1]


def test_kill_9_loses_no_finished_run(tmp_path, write_yaml, tiny):
    """kill -9 of the driver mid-experiment: finished runs stay, nothing broken is trusted."""
    import os
    import signal
    import subprocess
    import sys

    from rltransfer.checkpoint import load_checkpoint

    tiny.update(methods=["scratch"], seeds=3, steps=1024, eval={"every": 256, "episodes": 1})
    path = write_yaml(tiny)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rltransfer", "run", str(path), "--out", str(out),
         "--workers", "1", "--no-progress"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait for one finished run and one in progress
            runs = list((out / "runs").glob("*/")) if (out / "runs").is_dir() else []
            done = [d for d in runs if (d / "done.json").exists()]
            if done and len(runs) > len(done) and proc.poll() is None:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the experiment did not get to the middle in time")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        time.sleep(1.5)  # the orphaned worker notices and exits
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    finished_before = {d.name: (d / "done.json").stat().st_mtime_ns
                       for d in (out / "runs").iterdir() if (d / "done.json").exists()}
    assert finished_before
    for name in finished_before:
        load_checkpoint(out / "runs" / name / "checkpoint")
    result = run(path, out=out, workers=0, report=False, progress=False)
    assert result.ok and result.skipped == len(finished_before)
    assert result.skipped + result.executed == 3
    for name, mtime in finished_before.items():
        assert (out / "runs" / name / "done.json").stat().st_mtime_ns == mtime
    for d in (out / "runs").iterdir():
        assert (d / "done.json").exists() and not (d / "error.txt").exists()
        assert [s for s, _ in _curve(d / "curve.csv")] == [0, 256, 512, 768, 1024]


def test_one_driver_per_output_folder(tmp_path, write_yaml, tiny):
    """The lock is a flock: a process holding it blocks a second driver, whatever the lock
    file says; a pid written in the file (even a live one) blocks nothing."""
    import os
    import subprocess
    import sys

    from rltransfer.experiment.driver import ExperimentBusyError

    tiny.update(methods=["scratch"], seeds=1)
    path = write_yaml(tiny)
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, json, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT);"
         "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, json.dumps({'pid': os.getpid(), "
         "'host': 'h', 'started': 't'}).encode()); print('locked', flush=True); time.sleep(60)",
         str(out / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ExperimentBusyError,
                           match=rf"in use by another rltransfer run \(pid {holder.pid} on h"):
            run(path, out=out, workers=0, report=False, progress=False)
    finally:
        holder.kill()
        holder.wait()
    (out / ".lock").write_text(json.dumps({"pid": os.getppid()}))  # content alone: no lock
    assert run(path, out=out, workers=0, report=False, progress=False).ok


def test_tensorboard_command_names_the_venv_executable_when_not_on_path(monkeypatch, tmp_path):
    import os
    import sys

    from rltransfer.experiment.driver import tensorboard_command

    local = Path(sys.executable).parent / "tensorboard"
    monkeypatch.setenv("PATH", "/nonexistent")
    cmd = tensorboard_command(tmp_path / "out")
    assert cmd.endswith(f"--logdir {(tmp_path / 'out' / 'tb').resolve()}")
    assert cmd.split()[0] == (str(local) if local.exists() else "tensorboard")
    monkeypatch.setenv("PATH", f"{local.parent}{os.pathsep}/usr/bin")
    assert tensorboard_command(tmp_path / "out").split()[0] == "tensorboard"


# --------------------------------------------------------------------------- TensorBoard


def _tb_runs(tb: Path) -> dict[str, list[Path]]:
    """TensorBoard runs under ``tb`` (folders holding event files) -> their event files."""
    runs: dict[str, list[Path]] = {}
    for f in sorted(tb.rglob("events.out.tfevents.*")):
        runs.setdefault(f.parent.relative_to(tb).as_posix(), []).append(f)
    return runs


def _scalars(files: list[Path]) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the event files, tag -> [(step, value)], read raw: duplicates stay
    (TensorBoard's EventAccumulator would purge a restarted series)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.scalar.metadata import PLUGIN_NAME
    from tensorboard.util.tensor_util import make_ndarray

    out: dict[str, list[tuple[int, float]]] = {}
    for f in files:
        for ev in EventFileLoader(str(f)).Load():  # scalars come as scalar-plugin tensors
            for v in ev.summary.value:
                if v.metadata.plugin_data.plugin_name == PLUGIN_NAME:
                    out.setdefault(v.tag, []).append((ev.step, float(make_ndarray(v.tensor))))
    return out


def test_tensorboard_one_run_per_method_and_seed(finished):
    """Each run is one TensorBoard run holding SB3's training scalars and its evaluation
    curve; the aggregates are one run per method with the same tags."""
    from rltransfer.report import AGGREGATE_TAGS, EVAL_TAG

    out = finished / "out"
    tb = out / "tb"
    plan = make_plan(load_experiment(finished / "tiny.yaml"), out)
    runs = _tb_runs(tb)
    own = {Path(r.tb_dir).relative_to(tb).as_posix(): r for r in plan.all_runs}
    assert set(own) == {"pretrain/seed_0", "scratch/seed_0", "scratch/seed_1",
                        "finetune/seed_0", "finetune/seed_1"}
    assert set(runs) == set(own) | {"_aggregate/scratch", "_aggregate/finetune"}
    assert all(len(files) == 1 for files in runs.values()), runs
    for rel, spec in own.items():
        scalars = _scalars(runs[rel])
        assert any(t.startswith("train/") for t in scalars), (rel, sorted(scalars))
        assert any(t.startswith("rollout/") for t in scalars), (rel, sorted(scalars))
        curve = _curve(Path(spec.run_dir) / "curve.csv")
        assert [s for s, _ in scalars[EVAL_TAG]] == [s for s, _ in curve]
        assert [v for _, v in scalars[EVAL_TAG]] == pytest.approx([r for _, r in curve])
    for method in ("scratch", "finetune"):
        scalars = _scalars(runs[f"_aggregate/{method}"])
        assert sorted(scalars) == sorted(AGGREGATE_TAGS)
        assert [s for s, _ in scalars["aggregate/iqm"]] == [0, 128, 256]


def test_redone_run_shows_each_step_once(finished, tmp_path, fast_report):
    """A run interrupted after logging is redone without its old events: no step twice;
    the finished runs' events are not touched, by the rerun nor by the report."""
    from rltransfer.report import EVAL_TAG

    path, out = _copy(finished, tmp_path)
    tb = out / "tb"
    plan = make_plan(load_experiment(path), out)
    victim = next(r for r in plan.runs if r.method == "finetune" and r.seed == 1)
    vdir, key = Path(victim.run_dir), Path(victim.tb_dir).relative_to(tb).as_posix()
    (vdir / "done.json").unlink()
    curve = (vdir / "curve.csv").read_bytes()
    (vdir / "curve.csv").write_bytes(curve[: len(curve) // 2])
    legacy = Path(victim.tb_dir) / f"{victim.run_id}_1"  # SB3's subfolder, old layout
    legacy.mkdir()
    shutil.copy(_tb_runs(tb)[key][0], legacy)
    before = {k: [(f.name, f.read_bytes()) for f in files] for k, files in _tb_runs(tb).items()
              if not k.startswith("_aggregate/")}
    result = run(path, out=out, workers=0, progress=False)
    assert (result.skipped, result.executed) == (4, 1) and result.ok
    after = {k: [(f.name, f.read_bytes()) for f in files] for k, files in _tb_runs(tb).items()
             if not k.startswith("_aggregate/")}
    assert set(after) == set(before) - {f"{key}/{legacy.name}"}
    assert {k: v for k, v in after.items() if k != key} == {
        k: v for k, v in before.items() if k != key and not k.startswith(f"{key}/")}
    [redone] = _tb_runs(tb)[key]
    assert redone.name != before[key][0][0]
    scalars = _scalars([redone])
    for tag, points in scalars.items():
        steps = [s for s, _ in points]
        assert len(steps) == len(set(steps)), (tag, steps)
    assert [s for s, _ in scalars[EVAL_TAG]] == [0, 128, 256]


def test_sources_only_pretrains_the_source_and_a_full_run_skips_it(tmp_path, write_yaml, tiny,
                                                                    capsys):
    from rltransfer.cli import main
    from rltransfer.report.tables import fmt_number

    path = write_yaml(tiny)
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--sources-only", "--workers", "0",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    plan = make_plan(load_experiment(path), out)
    source = plan.source
    assert source is not None
    done = sorted(d.name for d in (out / "runs").iterdir() if (d / "done.json").is_file())
    assert done == [source.run_id]  # no target run started
    assert not (out / "report.md").exists()
    final = json.loads((out / "runs" / source.run_id / "done.json").read_text())["final_return"]
    trained = "PPO agent trained on `CartPole-v1` for 256 steps"
    assert f"agent: run {source.run_id}: {trained}" in printed
    assert f"final return {fmt_number(final)}" in printed
    result = run(path, out=out, workers=0, report=False, progress=False)
    assert (result.skipped, result.executed) == (1, 4)


def test_sources_only_without_a_source_is_refused(tmp_path, write_yaml, tiny, capsys):
    from rltransfer.cli import main

    tiny["methods"] = ["scratch"]
    path = write_yaml(tiny)
    with pytest.raises(ValueError, match="has no source to pretrain"):
        run(path, out=tmp_path / "out", workers=0, sources_only=True)
    assert main(["run", str(path), "--out", str(tmp_path / "o2"), "--sources-only"]) == 2
    assert "has no source to pretrain" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()
