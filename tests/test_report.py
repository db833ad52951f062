"""Tests for rltransfer.report on a synthetic results folder (the harness's layout)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rltransfer import metrics as mt
from rltransfer import report as rp
from rltransfer.report.tables import fmt_speedup

REPS = 200
STEPS = np.arange(0, 11) * 1000
SEEDS = [0, 1, 2, 3]
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "runner.py", line 10, in run\n'
    "    agent.learn()\n"
    '  File "agent.py", line 99, in learn\n'
    "    step()\n"
    "RuntimeError: CUDA exploded on seed 3\n"
)


def _write_run(
    root: Path,
    run_id: str,
    *,
    kind="transfer",
    method="scratch",
    seed=0,
    returns=None,
    steps=STEPS,
    status="done",
    wall=12.5,
):
    rd = root / "runs" / run_id
    rd.mkdir(parents=True)
    (rd / "config.json").write_text(
        json.dumps({"run_id": run_id, "kind": kind, "method": method, "seed": seed})
    )
    if returns is not None:
        lines = ["step,mean_return,std_return,episodes,wall_time"]
        lines += [
            f"{s},{r},1.0,5,{1000.0 + i}"
            for i, (s, r) in enumerate(zip(steps, returns, strict=True))
        ]
        (rd / "curve.csv").write_text("\n".join(lines) + "\n")
    if status == "done":
        (rd / "done.json").write_text(json.dumps({"wall_time": wall, "finished": "2026-01-01"}))
    elif status == "failed":
        (rd / "error.txt").write_text(TRACEBACK)


def _curve(offset: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.linspace(10.0, 400.0, STEPS.size) + offset + rng.normal(0.0, 5.0, STEPS.size)


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    """scratch / finetune (better) / partial[actor] (worse), 4 seeds each, plus odd runs."""
    out = tmp_path / "exp"
    out.mkdir()
    (out / "experiment.json").write_text(
        json.dumps(
            {
                "name": "cartpole-long-pole",
                "pair": "cartpole/long-heavy-pole",
                "algo": "ppo",
                "methods": ["scratch", "finetune", "partial[actor]"],
                "seeds": SEEDS,
                "steps": 10000,
                "eval": {"every": 1000, "episodes": 5},
                "threshold": 300,
                "baseline": "scratch",
                "config": {"pair": "cartpole/long-heavy-pole", "methods": ["scratch"], "seeds": 4},
                "versions": {"rltransfer": "0.1.0", "gymnasium": "1.2.0", "python": "3.11"},
            }
        )
    )
    offsets = {"scratch": 0.0, "finetune": 100.0, "partial[actor]": -100.0}
    for m, off in offsets.items():
        for s in SEEDS:
            _write_run(out, f"{m[:4]}-{s}", method=m, seed=s, returns=_curve(off, s))
    # A finished run with one more evaluation than the others: truncated to common steps.
    _write_run(
        out,
        "fine-4",
        method="finetune",
        seed=4,
        returns=_curve(100.0, 4).tolist() + [500.0],
        steps=[*STEPS, 11000],
    )
    _write_run(
        out,
        "fail-5",
        method="finetune",
        seed=5,
        status="failed",
        returns=_curve(100.0, 5)[:3],
        steps=STEPS[:3],
    )
    _write_run(
        out,
        "unfi-6",
        method="scratch",
        seed=6,
        status="unfinished",
        returns=_curve(0.0, 6)[:4],
        steps=STEPS[:4],
    )
    _write_run(
        out, "pre-0", kind="pretrain", method="source", seed=0, returns=_curve(50.0, 9), wall=100.0
    )
    return out


def test_load_results(results_dir: Path):
    res = rp.load_results(results_dir)
    assert list(res.curves) == ["scratch", "finetune", "partial[actor]"]
    assert res.curves["scratch"].shape == (4, STEPS.size)
    assert res.curves["finetune"].shape == (5, STEPS.size)  # seed 4 truncated to common steps
    np.testing.assert_array_equal(res.steps, STEPS)
    assert res.seeds["finetune"] == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(res.curves["scratch"][1], _curve(0.0, 1))
    assert any("evaluations every finished run shares" in n for n in res.notes)
    [failed] = res.failed
    assert failed.run_id == "fail-5" and "RuntimeError: CUDA exploded on seed 3" in failed.error
    assert failed.error.startswith("Traceback")
    assert [r.run_id for r in res.unfinished] == ["unfi-6"]
    assert "source" not in res.curves  # pretrain runs are not methods


def test_load_results_requires_experiment_json(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="experiment.json"):
        rp.load_results(tmp_path)


def test_build_report_writes_files(results_dir: Path):
    paths = rp.build_report(results_dir, seed=0, reps=REPS)
    assert paths.report_md.is_file() and paths.metrics_json.is_file()
    assert paths.curves_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    doc = json.loads(paths.metrics_json.read_text())
    methods = doc["metrics"]["methods"]
    assert methods["finetune"]["verdict"] == "positive"
    assert methods["partial[actor]"]["verdict"] == "negative"
    assert methods["finetune"]["seeds"] == [0, 1, 2, 3, 4]
    assert doc["wall_time"]["pretrain"] == 100.0
    assert doc["wall_time"]["per_method"]["scratch"] == pytest.approx(4 * 12.5)
    assert {r["status"] for r in doc["runs"]} == {"done", "failed", "unfinished"}

    md = paths.report_md.read_text()
    assert "# Transfer report: cartpole-long-pole" in md
    assert "cartpole/long-heavy-pole" in md
    assert "**finetune: positive transfer.**" in md
    assert "**partial[actor]: negative transfer.**" in md
    assert "### Failed runs" in md and "RuntimeError: CUDA exploded on seed 3" in md
    assert "### Unfinished runs" in md and "unfi-6" in md
    assert "```yaml" in md and "| gymnasium | 1.2.0 |" in md
    assert "## Wall time" in md
    auc = methods["scratch"]["metrics"]["auc"]
    assert f"{auc['iqm']:.0f} [{auc['low']:.0f}, {auc['high']:.0f}]" in md


def test_metrics_json_round_trips(results_dir: Path):
    paths = rp.build_report(results_dir, seed=1, reps=REPS, tensorboard=False)
    doc = json.loads(paths.metrics_json.read_text())
    res = rp.load_results(results_dir)
    fresh = mt.compute(res.curves, res.steps, threshold=300, budget=10000, seed=1, reps=REPS)
    for label, entry in fresh["methods"].items():
        entry["seeds"] = res.seeds[label]
    assert doc["metrics"] == json.loads(json.dumps(fresh))
    assert rp.table(doc) == rp.table(fresh)
    # Rebuilding with the same seed gives the same bytes.
    first = paths.metrics_json.read_bytes()
    rp.build_report(results_dir, seed=1, reps=REPS, tensorboard=False)
    assert paths.metrics_json.read_bytes() == first


def test_report_rebuilds_byte_identical(results_dir: Path, tmp_path: Path):
    """The same runs give the same report.md, metrics.json and curves.png, in any folder."""
    names = ("report.md", "metrics.json", "curves.png")
    rp.build_report(results_dir, seed=0, reps=REPS)
    first = {n: (results_dir / n).read_bytes() for n in names}
    rp.build_report(results_dir, seed=0, reps=REPS)
    assert {n: (results_dir / n).read_bytes() for n in names} == first

    copy = tmp_path / "copied" / results_dir.name  # the runs alone, copied elsewhere
    copy.mkdir(parents=True)
    shutil.copy(results_dir / "experiment.json", copy)
    shutil.copytree(results_dir / "runs", copy / "runs")
    rp.build_report(copy, seed=0, reps=REPS, tensorboard=False)
    assert {n: (copy / n).read_bytes() for n in names} == first


def test_table_plain_text(results_dir: Path):
    res = rp.load_results(results_dir)
    out = mt.compute(res.curves, res.steps, threshold=300, seed=0, reps=REPS)
    text = rp.table(out)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["method", "n", "jumpstart"]
    assert len(lines) == 2 + 3
    assert "baseline" in lines[2] and "positive" in lines[3] and "negative" in lines[4]
    with pytest.raises(ValueError):
        rp.table({"nothing": 1})


def test_report_without_finished_runs(tmp_path: Path):
    out = tmp_path / "empty"
    out.mkdir()
    (out / "experiment.json").write_text(json.dumps({"name": "e", "pair": "p", "methods": []}))
    _write_run(out, "x", status="unfinished", returns=[1.0, 2.0], steps=[0, 10])
    paths = rp.build_report(out, reps=REPS)
    assert "No finished transfer runs yet" in paths.report_md.read_text()
    assert json.loads(paths.metrics_json.read_text())["metrics"] is None


def test_safe_name():
    assert rp.safe_name("partial[actor]") == "partial_actor"
    assert rp.safe_name("frozen") == "frozen"
    assert rp.safe_name("aggregate") == "aggregate_method"
    assert rp.safe_name("../x y") == "x_y"


def _accumulator(path: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(path), size_guidance={"scalars": 0, "tensors": 0})
    ea.Reload()
    return ea


def _event_dirs(tb: Path) -> dict[str, int]:
    """TensorBoard runs under ``tb`` (folders holding event files) -> their event file count."""
    dirs: dict[str, int] = {}
    for f in tb.rglob("events.out.tfevents.*"):
        key = f.parent.relative_to(tb).as_posix()
        dirs[key] = dirs.get(key, 0) + 1
    return dirs


def _live_events(logdir: Path, steps) -> Path:
    """An event file as a run writes it live (eval/mean_return and a training scalar)."""
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    from rltransfer.report.tensorboard import _scalar_event

    logdir.mkdir(parents=True, exist_ok=True)
    writer = EventFileWriter(str(logdir))
    for s in steps:
        writer.add_event(_scalar_event(rp.EVAL_TAG, s, 1.0, 0.0))
        writer.add_event(_scalar_event("train/loss", s, 0.5, 0.0))
    writer.close()
    [path] = [p for p in logdir.glob("events.out.tfevents.*")
              if not p.name.endswith(rp.tensorboard.REPORT_SUFFIX)]
    return path


def test_method_folders_are_unique_in_order():
    assert rp.method_folders(["scratch", "partial[actor]", "partial actor", "aggregate"]) == {
        "scratch": "scratch", "partial[actor]": "partial_actor",
        "partial actor": "partial_actor_2", "aggregate": "aggregate_method"}


def test_tensorboard_events(results_dir: Path):
    from tensorboard.plugins.custom_scalar import layout_pb2

    tb = results_dir / "tb"
    live = _live_events(tb / "scratch" / "seed_0", STEPS)  # a run's own events
    live_bytes = live.read_bytes()
    (tb / "_aggregate" / "gone").mkdir(parents=True)  # a method no longer in the results
    _live_events(tb / "aggregate", [0])  # the single aggregate run of the old layout
    assert rp.write_tensorboard_aggregate(results_dir, seed=0, reps=REPS) == tb
    res = rp.load_results(results_dir)

    # One TensorBoard run per method and seed, one aggregate run per method, nothing else.
    runs = _event_dirs(tb)
    per_seed = {f"{m}/seed_{s}" for m in ("scratch", "finetune", "partial_actor") for s in SEEDS}
    per_seed |= {"finetune/seed_4", "finetune/seed_5", "scratch/seed_6", "pretrain/seed_0"}
    aggregates = {f"_aggregate/{m}" for m in ("scratch", "finetune", "partial_actor")}
    assert set(runs) == per_seed | aggregates
    assert set(runs.values()) == {1}

    # A run's own events are left as they are; a run without any gets its curve.csv.
    assert live.read_bytes() == live_bytes
    assert not list((tb / "scratch" / "seed_0").glob(f"*{rp.tensorboard.REPORT_SUFFIX}"))
    [copy] = (tb / "partial_actor" / "seed_2").glob("events.out.tfevents.*")
    assert copy.name.endswith(rp.tensorboard.REPORT_SUFFIX)
    run = _accumulator(copy.parent)
    assert run.Tags()["scalars"] == [rp.EVAL_TAG]
    events = run.Scalars(rp.EVAL_TAG)
    assert [e.step for e in events] == STEPS.tolist()
    np.testing.assert_allclose([e.value for e in events], _curve(-100.0, 2), rtol=1e-6)

    # Aggregates: the same tags in every method's run, so one chart holds every method.
    center, low, high = mt.iqm_curve(res.curves["finetune"], reps=REPS, seed=0)
    for name in ("scratch", "finetune", "partial_actor"):
        agg = _accumulator(tb / "_aggregate" / name)
        assert sorted(agg.Tags()["scalars"]) == sorted(rp.AGGREGATE_TAGS)
        assert [e.step for e in agg.Scalars("aggregate/iqm")] == STEPS.tolist()
    agg = _accumulator(tb / "_aggregate" / "finetune")
    for tag, want in zip(rp.AGGREGATE_TAGS, (center, low, high), strict=True):
        np.testing.assert_allclose([e.value for e in agg.Scalars(tag)], want, rtol=1e-6)

    # Custom-scalars layout: one band chart over every method, IQM and per-run charts.
    [tensor_event] = agg.Tensors("custom_scalars__config__")
    layout = layout_pb2.Layout.FromString(tensor_event.tensor_proto.string_val[0])
    charts = {c.title: c for cat in layout.category for c in cat.chart}
    margin = charts["every method: IQM over seeds and 95% CI"].margin.series[0]
    assert (margin.value, margin.lower, margin.upper) == rp.AGGREGATE_TAGS
    assert list(charts["every method: IQM over seeds"].multiline.tag) == ["^aggregate/iqm$"]
    assert list(charts["evaluation return: every method and seed"].multiline.tag) == [
        "^eval/mean_return$"
    ]

    # Rewriting replaces the report's event files instead of piling them up; once a run has
    # its own events (it was redone), the report's copy goes.
    live2 = _live_events(tb / "partial_actor" / "seed_3", STEPS)
    rp.write_tensorboard_aggregate(results_dir, seed=0, reps=REPS)
    assert _event_dirs(tb) == runs
    assert list((tb / "partial_actor" / "seed_3").glob("events.out.tfevents.*")) == [live2]
    assert live.read_bytes() == live_bytes


def test_no_torch_or_sb3_import():
    """Neither package, nor any of their modules, imports torch or stable-baselines3."""
    code = (
        "import importlib, pkgutil, sys, rltransfer.metrics, rltransfer.report\n"
        "for pkg in (rltransfer.metrics, rltransfer.report):\n"
        "    for info in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "bad = [m for m in ('torch', 'stable_baselines3') if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_old_experiment_json_without_sustain_uses_the_default(results_dir: Path):
    exp = json.loads((results_dir / "experiment.json").read_text())
    assert "sustain" not in exp  # as written before the sustained definition
    paths = rp.build_report(results_dir, reps=REPS, tensorboard=False)
    doc = json.loads(paths.metrics_json.read_text())
    assert doc["metrics"]["sustain"] == mt.DEFAULT_SUSTAIN == 3
    assert doc["experiment"]["sustain"] == 3
    md = paths.report_md.read_text()
    assert "stays at or above 300 for k = 3 evaluations in a row" in md


def test_report_uses_sustain_and_shows_the_speedup(tmp_path: Path):
    out = tmp_path / "exp"
    out.mkdir()
    steps = np.arange(0, 9) * 10_000
    exp = {"name": "s", "pair": "p", "methods": ["scratch", "finetune"], "seeds": [0, 1, 2],
           "steps": 80_000, "threshold": 475, "sustain": 1, "baseline": "scratch"}
    (out / "experiment.json").write_text(json.dumps(exp))
    for s in range(3):
        scratch = np.where(steps >= 40_000, 500.0, 0.0)
        jump = np.where(steps >= 10_000, 500.0, 0.0)
        jump[0], jump[1] = 500.0, 0.0  # finetune: a jumpstart that collapses, then 20k
        _write_run(out, f"scr-{s}", method="scratch", seed=s, returns=scratch, steps=steps)
        _write_run(out, f"fin-{s}", method="finetune", seed=s, returns=jump, steps=steps)
    doc = json.loads(rp.build_report(out, reps=REPS, tensorboard=False).metrics_json.read_text())
    fin = doc["metrics"]["methods"]["finetune"]
    assert doc["metrics"]["sustain"] == 1
    assert fin["per_seed"]["time_to_threshold"] == [0.0, 0.0, 0.0]  # the first crossing
    assert fin["time_to_threshold_speedup"]["value"] == pytest.approx(4.0)  # floored at 10k

    exp["sustain"] = 3
    (out / "experiment.json").write_text(json.dumps(exp))
    paths = rp.build_report(out, reps=REPS, tensorboard=False)
    doc = json.loads(paths.metrics_json.read_text())
    fin = doc["metrics"]["methods"]["finetune"]
    assert fin["per_seed"]["time_to_threshold"] == [20_000.0, 20_000.0, 20_000.0]
    assert fin["time_to_threshold_speedup"] == {"value": 2.0, "low": 2.0, "high": 2.0,
                                                "kind": "estimate", "bound": None}
    md = paths.report_md.read_text()
    assert "| speed-up |" in md and "time-to-threshold ratio" not in md
    assert "2.0× [2.0, 2.0]" in md
    assert "for k = 3 evaluations in a row" in md
    text = rp.table(doc)
    assert "speed-up" in text.splitlines()[0] and "2.0× [2.0, 2.0]" in text


def test_speedup_format():
    assert fmt_speedup({"value": 3.2, "low": 2.1, "high": 5.0}) == "3.2× [2.1, 5.0]"
    assert fmt_speedup({"value": 0.5, "low": None, "high": None}) == "0.50×"
    assert fmt_speedup({"value": None, "low": None, "high": None}) == "n/a"
    assert fmt_speedup(None) == "n/a"


def test_summary_row_reads_a_committed_report():
    from rltransfer.report.summary import summary_table

    root = Path(__file__).resolve().parents[1] / "docs" / "results" / "cartpole_demo"
    table = summary_table([root])
    row = table.splitlines()[2]
    assert ("| finetune | not measured (censored: scratch 5/5, method 2/5) | +202 [-4.53, 409] "
            "| inconclusive | inconclusive (of 2) |") in row
    assert "--seeds 5 --out" in row
    # a speed-up read from censored times says so: there scratch never reached the threshold
    sac = summary_table([root.parent / "hopper_heavy_torso_sac"]).splitlines()[2]
    assert "| finetune | not measured (censored: scratch 5/5, method 2/5) | +885 " in sac


def test_summary_leaves_out_an_experiment_in_progress(tmp_path: Path, capsys):
    """`rltransfer summary docs/results/*/` while an experiment's finished runs are committed
    without a report: its row is left out and named on stderr; a folder that is no
    experiment at all is still refused, and so is a call with nothing to summarize."""
    from rltransfer.cli import main

    done = Path(__file__).resolve().parents[1] / "docs" / "results" / "cartpole_demo"
    running = tmp_path / "running"
    (running / "runs" / "a").mkdir(parents=True)
    (running / "runs" / "b").mkdir()
    (running / "runs" / "a" / "done.json").write_text("{}")
    (running / "runs" / "other").mkdir()  # finished, but not one of the plan's runs
    (running / "runs" / "other" / "done.json").write_text("{}")
    (running / "experiment.json").write_text(json.dumps({"runs": {"a": {}, "b": {}, "c": {}}}))
    assert main(["summary", str(done), str(running)]) == 0
    out, err = capsys.readouterr()
    assert len(out.strip().splitlines()) == 3 and "cartpole_demo" in out
    assert "running" not in out
    assert f"left out {running}: an experiment in progress (1 of 3 runs finished" in err
    assert main(["summary", str(running)]) == 2
    assert "nothing to summarize" in capsys.readouterr().err
    assert main(["summary", str(done), str(tmp_path)]) == 2
    assert "holds no metrics.json" in capsys.readouterr().err


def test_forward_velocity_is_reported_where_curves_have_it(results_dir: Path, tmp_path: Path):
    rp.build_report(results_dir, seed=0, reps=REPS, tensorboard=False)
    assert "Forward velocity" not in (results_dir / "report.md").read_text()  # none recorded
    # the same runs with a forward_velocity column: scratch stands (0.0 -> 0.01), finetune
    # moves (0.5 -> 1.5 + seed/10)
    for run in (results_dir / "runs").iterdir():
        curve = run / "curve.csv"
        if not curve.is_file():
            continue
        rows = curve.read_text().splitlines()
        cfg = json.loads((run / "config.json").read_text())
        fast = cfg["method"] == "finetune"
        v = [0.5 if fast else 0.0] * (len(rows) - 2)
        v.append(1.5 + cfg["seed"] / 10 if fast else 0.01)
        curve.write_text("\n".join([rows[0] + ",forward_velocity",
                                    *(f"{r},{x}" for r, x in zip(rows[1:], v, strict=True))])
                         + "\n")
    rp.build_report(results_dir, seed=0, reps=REPS, tensorboard=False)
    md = (results_dir / "report.md").read_text()
    section = md.split("Forward velocity", 1)[1].split("\n## ", 1)[0]
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| method")}
    assert rows["scratch"][1:3] == ["0.00", "0.01"]
    assert rows["finetune"][1] == "0.50" and float(rows["finetune"][2]) > 1.5
    assert "the source at its last evaluation: source 0.01" in section


def test_curve_csv_keeps_its_format_when_resumed(tmp_path: Path):
    from rltransfer import rundir

    old = tmp_path / "old.csv"  # written before forward_velocity existed
    old.write_text("step,mean_return,std_return,episodes,wall_time\n0,1.0,0.0,5,0.1\n")
    rundir.append_curve(old, {"step": 10, "mean_return": 2.0, "std_return": 0.0,
                              "episodes": 5, "wall_time": 1.0, "forward_velocity": 0.3})
    assert old.read_text().splitlines()[-1] == "10,2.0,0.0,5,1.0"
    assert "forward_velocity" not in rundir.read_curve(old)
    new = tmp_path / "new.csv"
    for step in (0, 10):
        rundir.append_curve(new, {"step": step, "mean_return": 1.0, "std_return": 0.0,
                                  "episodes": 5, "wall_time": 0.1, "forward_velocity": 0.25})
    assert rundir.read_curve(new)["forward_velocity"].tolist() == [0.25, 0.25]


def test_a_source_stands_beside_the_published_score_of_its_env():
    from rltransfer.report.markdown import published_text

    cfg = {"env": {"env": "hopper", "knobs": {}}, "algo": "ppo", "kind": "pretrain",
           "steps": 1_000_000}
    standing = published_text(cfg, 994.0)
    assert "41% of the published PPO score on Hopper-v3 at 1,000,000 steps" in standing
    assert "2,410" in standing and "far below" in standing
    hopping = published_text(cfg, 2300.0)
    assert "95%" in hopping and "far below" not in hopping and "another budget" not in hopping
    assert "another budget" in published_text({**cfg, "steps": 300_000}, 2300.0)
    # a modified body, pixels, or a family without a published score: nothing to compare
    assert published_text({**cfg, "env": {"env": "hopper", "knobs": {"torso_mass": 2.0}}},
                          994.0) == ""
    assert published_text({**cfg, "env": {"env": "cartpole", "knobs": {}}}, 500.0) == ""
    assert published_text({**cfg, "algo": "sac", "env": {"env": "hopper", "knobs": {},
                                                         "pixels": {"size": 64}}}, 1.0) == ""


def test_a_cached_source_run_is_labelled_by_this_experiment(tmp_path):
    """A source run made for another experiment (shared by content through the cache) keeps
    that experiment's label in its config.json; this experiment's report names it as this
    experiment's sources do."""
    import json

    from rltransfer.report.results import load_results

    out = tmp_path / "exp"
    run = out / "runs" / "abc123"
    run.mkdir(parents=True)
    (out / "experiment.json").write_text(json.dumps({
        "name": "x", "methods": ["scratch"], "seeds": [0],
        "sources": {"state": {"run_id": "abc123", "kind": "pretrain"}}}))
    (run / "config.json").write_text(json.dumps({
        "run_id": "abc123", "kind": "pretrain", "method": "source:hp0", "seed": 0}))
    labels = {r.run_id: r.method for r in load_results(out).runs}
    assert labels == {"abc123": "source:state"}


def test_describe_source_says_what_the_source_saw():
    from rltransfer.report.markdown import describe_source

    pix = {"frame_stack": 4, "grayscale": True, "size": 64}
    cfg = {"kind": "pretrain", "algo": "ppo", "steps": 200_000,
           "env": {"env": "invertedpendulum", "knobs": {}, "pixels": pix}}
    text = describe_source(cfg, {"final_return": 1000.0})
    assert text == ('PPO agent trained on `invertedpendulum` from its pixel view '
                    '{"frame_stack": 4, "grayscale": true, "size": 64} for 200,000 steps; '
                    "final return 1,000")
    state = {**cfg, "env": {"env": "invertedpendulum", "knobs": {"pole_length": 1.5},
                            "pixels": None}}
    assert describe_source(state, {}, target_pixels=True) == (
        'PPO agent trained on `invertedpendulum` {"pole_length": 1.5} from its state (a state '
        "teacher: the student sees pixels) for 200,000 steps")
