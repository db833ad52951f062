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


def test_tensorboard_events(results_dir: Path):
    from tensorboard.plugins.custom_scalar import layout_pb2

    tb = rp.write_tensorboard_aggregate(results_dir, seed=0, reps=REPS)
    res = rp.load_results(results_dir)

    # Per-run copies: methods side by side, seeds under them.
    run = _accumulator(tb / "partial_actor" / "seed_2")
    assert run.Tags()["scalars"] == ["eval/return"]
    events = run.Scalars("eval/return")
    assert [e.step for e in events] == STEPS.tolist()
    np.testing.assert_allclose([e.value for e in events], _curve(-100.0, 2), rtol=1e-6)
    assert (tb / "scratch" / "seed_6").is_dir()  # unfinished runs are shown too
    assert (tb / "pretrain" / "seed_0").is_dir()

    # Aggregate series with CI bounds.
    agg = _accumulator(tb / "aggregate")
    tags = set(agg.Tags()["scalars"])
    for name in ("scratch", "finetune", "partial_actor"):
        assert {f"aggregate/{name}/{s}" for s in ("iqm", "ci_low", "ci_high")} <= tags
    center, low, high = mt.iqm_curve(res.curves["finetune"], reps=REPS, seed=0)
    got = [e.value for e in agg.Scalars("aggregate/finetune/iqm")]
    np.testing.assert_allclose(got, center, rtol=1e-6)
    np.testing.assert_allclose(
        [e.value for e in agg.Scalars("aggregate/finetune/ci_low")], low, rtol=1e-6
    )

    # Custom-scalars layout: a Margin chart per method and a per-seed Multiline chart.
    [tensor_event] = agg.Tensors("custom_scalars__config__")
    layout = layout_pb2.Layout.FromString(tensor_event.tensor_proto.string_val[0])
    charts = {c.title: c for cat in layout.category for c in cat.chart}
    margin = charts["partial[actor]: IQM and 95% CI"].margin.series[0]
    assert (margin.value, margin.lower, margin.upper) == (
        "aggregate/partial_actor/iqm",
        "aggregate/partial_actor/ci_low",
        "aggregate/partial_actor/ci_high",
    )
    assert list(charts["evaluation return: every method and seed"].multiline.tag) == [
        "^eval/return$"
    ]

    # Rewriting replaces the event files instead of piling them up.
    rp.write_tensorboard_aggregate(results_dir, seed=0, reps=REPS)
    assert len(list((tb / "aggregate").glob("events.out.tfevents.*"))) == 1
    assert len(list((tb / "finetune" / "seed_0").glob("events.out.tfevents.*"))) == 1


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
    assert fin["time_to_threshold_speedup"] == {"value": 2.0, "low": 2.0, "high": 2.0}
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
    assert "| finetune | 1.2× [1.0, 1.8] | +202 [113, 259] | positive |" in row
    assert "--seeds 5 --out" in row
