"""Each transfer seed may start from its own source (source_seeds); one source for all stays
the default, and every committed run id stays what it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rltransfer.experiment import load_experiment, make_plan
from rltransfer.experiment.config import ExperimentError, resolve_experiment

ROOT = Path(__file__).resolve().parents[2]
BASE = {"pair": "cartpole/long-heavy-pole", "methods": ["finetune"], "steps": 1000,
        "eval": {"every": 500, "episodes": 1}}


def _sources_of(plan) -> dict[int, str]:
    return {r.seed: r.source_id for r in plan.runs if r.method == "finetune"}


def test_per_seed_gives_transfer_seed_i_the_source_of_seed_i(tmp_path):
    plan = make_plan(resolve_experiment({**BASE, "seeds": 3, "source_seeds": "per_seed"}),
                     tmp_path)
    assert sorted(plan.sources) == ["agent/seed_0", "agent/seed_1", "agent/seed_2"]
    assert plan.source is None  # no single source
    src = _sources_of(plan)
    for seed in range(3):
        spec = plan.sources[f"agent/seed_{seed}"]
        assert spec.seed == seed and src[seed] == spec.run_id
    # the per-seed source of seed 0 is the shared default source, run for run
    shared = make_plan(resolve_experiment({**BASE, "seeds": 3}), tmp_path)
    assert shared.source is not None
    assert shared.source.run_id == plan.sources["agent/seed_0"].run_id
    assert len(set(src.values())) == 3 and len(set(_sources_of(shared).values())) == 1


def test_a_list_of_source_seeds_is_cycled_over_the_transfer_seeds(tmp_path):
    exp = resolve_experiment({**BASE, "seeds": [0, 1, 2, 3, 4], "source_seeds": [7, 3]})
    assert [exp.source_seed_for(s) for s in exp.seeds] == [7, 3, 7, 3, 7]
    plan = make_plan(exp, tmp_path)
    assert sorted(plan.sources) == ["agent/seed_3", "agent/seed_7"]
    src = _sources_of(plan)
    assert src[0] == src[2] == src[4] == plan.sources["agent/seed_7"].run_id
    # the config round trip (seed and step overrides go through it) keeps the mapping
    again = resolve_experiment(exp.config_json() | {"source": None, "target": None})
    assert again.source_seeds == [7, 3]


@pytest.mark.parametrize("extra,words", [
    ({"source_seeds": "per_seed", "source_seed": 2}, ["source_seeds", "source_seed: 2",
                                                      "give one of them"]),
    ({"source_seeds": []}, ["source_seeds", "empty"]),
    ({"source_seeds": [1, 1]}, ["source_seeds", "distinct"]),
    ({"source_seeds": "each"}, ["source_seeds", "per_seed"]),
    ({"sources": {"agent/seed_1": {"kind": "agent"}}}, ["agent/seed_1", "other names"]),
])
def test_bad_source_seeds_name_the_field_and_what_is_accepted(extra, words):
    with pytest.raises(ExperimentError) as err:
        resolve_experiment({**BASE, "seeds": 2, **extra})
    for w in words:
        assert w in str(err.value), str(err.value)


def _committed() -> list[Path]:
    return sorted(p for p in (ROOT / "docs" / "results").glob("*/experiment.json")
                  if (ROOT / "experiments" / f"{p.parent.name}.yaml").is_file()
                  and p.parent.name.startswith(("cartpole", "calibration")))


@pytest.mark.parametrize("exp_json", _committed(), ids=lambda p: p.parent.name)
def test_every_committed_run_is_still_in_its_experiments_plan(exp_json, tmp_path):
    """The committed run folders of the CartPole experiments (the pool's included) are runs
    of their file's plan: a rerun skips them."""
    folder = exp_json.parent
    seeds = json.loads(exp_json.read_text())["seeds"]
    exp = load_experiment(ROOT / "experiments" / f"{folder.name}.yaml",
                          seeds=len(seeds) if seeds == list(range(len(seeds))) else None)
    ids = {r.run_id for r in make_plan(exp, tmp_path).all_runs}
    committed = {p.name for p in (folder / "runs").iterdir() if p.is_dir()}
    assert committed and committed <= ids, sorted(committed - ids)
