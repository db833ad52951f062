"""An experiment is resolved once: the plan carries every run's full preset, nothing
downstream resolves again, and a run's id is the hash of its resolved content, so a preset
change reruns exactly the runs it touches."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from rltransfer import rundir
from rltransfer.experiment import load_experiment, make_plan, run

BASE = {"n_envs": 1, "n_steps": 128, "batch_size": 64, "n_epochs": 2, "learning_rate": 3e-4,
        "policy_kwargs": {"net_arch": [16]}}


@pytest.fixture
def exp_files(tmp_path, tiny):
    """An experiment whose presets are user YAML files: one for the experiment (source,
    scratch, finetune) and one for the method labelled ``ft-b`` alone."""
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({**BASE, "learning_rate": 1e-3}))
    tiny.pop("overrides")
    tiny.update(seeds=1, preset=str(tmp_path / "base.yaml"), methods=[
        "scratch", "finetune",
        {"method": "finetune", "label": "ft-b", "preset": str(tmp_path / "b.yaml")}])
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(tiny))
    return path


def _ids(path: Path, out: Path) -> dict[str, str]:
    plan = make_plan(load_experiment(path), out)
    return {r.method: r.run_id for r in plan.all_runs}


def _edit(path: Path, **changes) -> None:
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), **changes}))


def test_the_plan_carries_full_presets_and_nothing_downstream_resolves(exp_files, tmp_path,
                                                                       monkeypatch):
    exp = load_experiment(exp_files)
    by_label = {m.label: m.resolved for m in exp.setups}
    assert by_label["scratch"]["learning_rate"] == by_label["finetune"]["learning_rate"] == 3e-4
    assert by_label["ft-b"]["learning_rate"] == 1e-3
    assert exp.source_preset["policy_kwargs"]["net_arch"] == [16]
    # every default is explicit in the resolved preset (not just what the file gave)
    assert {"gamma", "gae_lambda", "clip_range", "ent_coef"} <= set(by_label["ft-b"])

    def no_more(*args, **kwargs):
        raise AssertionError("a preset was resolved again after load_experiment")

    import rltransfer.agent  # noqa: F401  (loaded, so that its imported names are patched too)

    for name, module in list(sys.modules.items()):
        if name.startswith("rltransfer"):
            for attr in ("resolve_preset", "get_preset", "resolved_preset"):
                if hasattr(module, attr):
                    monkeypatch.setattr(module, attr, no_more)
    plan = make_plan(exp, tmp_path / "out")
    assert {r.method: r.preset["learning_rate"] for r in plan.runs} == {
        "scratch": 3e-4, "finetune": 3e-4, "ft-b": 1e-3}
    result = run(exp, out=tmp_path / "out", workers=0, report=False, progress=False)
    assert result.ok and result.executed == 4
    cfg = rundir.read_config(Path(next(r for r in plan.runs if r.method == "ft-b").run_dir))
    assert cfg["preset"]["learning_rate"] == 1e-3


def test_a_preset_change_reruns_exactly_the_runs_it_touches(exp_files, tmp_path, capsys):
    out = tmp_path / "out"
    first = run(exp_files, out=out, workers=0, report=False, progress=False)
    assert first.ok and (first.skipped, first.executed) == (0, 4)
    before = _ids(exp_files, out)
    done_before = {m: rundir.read_done(out / rundir.RUNS / rid) for m, rid in before.items()}

    # the preset of one method: that method's runs only
    _edit(tmp_path / "b.yaml", learning_rate=5e-4)
    after = _ids(exp_files, out)
    assert {m for m in before if before[m] != after[m]} == {"ft-b"}
    second = run(exp_files, out=out, workers=0, report=False, progress=False)
    assert second.ok and (second.skipped, second.executed) == (3, 1)
    for m in ("pretrain", "scratch", "finetune"):  # untouched: the same finished folders
        assert rundir.read_done(out / rundir.RUNS / after[m]) == done_before[m]
    cfg = rundir.read_config(out / rundir.RUNS / after["ft-b"])
    assert cfg["preset"]["learning_rate"] == 5e-4

    # the experiment's preset: the source, and so every run that starts from it, and scratch
    _edit(tmp_path / "base.yaml", n_epochs=3)
    third_ids = _ids(exp_files, out)
    assert all(third_ids[m] != after[m] for m in after)
    # ...but a value that a method's own preset file already fixes does not touch it alone:
    # ft-b changed only through its source (its own preset is b.yaml)
    plan = make_plan(load_experiment(exp_files), out)
    ftb = next(r for r in plan.runs if r.method == "ft-b")
    assert ftb.preset["n_epochs"] == 2 and ftb.source_id == third_ids["pretrain"]
    assert json.dumps(ftb.identity["preset"], sort_keys=True) == json.dumps(
        rundir.read_config(out / rundir.RUNS / after["ft-b"])["identity"]["preset"],
        sort_keys=True)
