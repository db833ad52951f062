"""Experiment files: validation errors name the file, the field, the value and what is accepted;
run ids are stable across processes and differ where the runs differ."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rltransfer.experiment import ExperimentError, load_experiment, make_plan
from rltransfer.experiment.config import resolve_experiment

REPO = Path(__file__).resolve().parents[2]


def _error(write_yaml, data) -> str:
    path = write_yaml(data)
    with pytest.raises(ExperimentError) as info:
        load_experiment(path)
    msg = str(info.value)
    assert str(path) in msg
    return msg


def test_tiny_loads_with_defaults(write_yaml, tiny):
    exp = load_experiment(write_yaml(tiny))
    assert exp.name == "tiny"
    assert exp.method_labels == ["scratch", "finetune"]
    assert exp.seeds == [0, 1]
    assert (exp.steps, exp.eval_every, exp.eval_episodes) == (256, 128, 1)
    assert exp.source_seed == 0 and exp.source_steps == 256


def test_scratch_is_added_first(write_yaml, tiny):
    tiny["methods"] = ["finetune", {"partial": {"roles": ["actor"]}}]
    assert load_experiment(write_yaml(tiny)).method_labels == [
        "scratch", "finetune", "partial[actor]"]
    tiny["methods"] = ["finetune", "scratch"]
    assert load_experiment(write_yaml(tiny)).method_labels == ["scratch", "finetune"]


def test_overrides_from_the_command_line(write_yaml, tiny):
    exp = load_experiment(write_yaml(tiny), seeds=3, steps=512)
    assert exp.seeds == [0, 1, 2] and exp.steps == 512


def test_pair_fills_steps_and_threshold(write_yaml, tiny):
    envs = pytest.importorskip("rltransfer.envs")
    pair = envs.get_pair("cartpole/long-heavy-pole")
    data = {k: v for k, v in tiny.items() if k not in ("source", "target", "steps",
                                                       "threshold", "source_steps")}
    data["pair"] = pair.name
    data["eval"] = {"episodes": 1}
    exp = load_experiment(write_yaml(data))
    assert exp.steps == pair.budget and exp.threshold == pair.threshold
    assert exp.target.knobs == pair.target.knobs
    assert exp.source_steps == pair.budget and exp.eval_every == pair.budget // 20


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"sedes": 3}, ["sedes", "unknown field", "did you mean 'seeds'", "accepted fields"]),
        ({"seeds": 0}, ["seeds", "0", ">= 1"]),
        ({"seeds": [1, 1]}, ["seeds", "distinct"]),
        ({"algo": "dqn"}, ["algo", "'dqn'", "'ppo'", "'sac'"]),
        ({"steps": -5}, ["steps", "-5", "> 0"]),
        ({"eval": {"every": 128, "episodes": 0}}, ["eval.episodes", "0"]),
        ({"eval": {"every": 128, "epsiodes": 1}}, ["eval.epsiodes", "did you mean 'episodes'"]),
        ({"eval": {"every": 1000}}, ["eval.every", "1000", "steps=256"]),
        ({"methods": ["scratch", "finetuen"]}, ["methods[1]", "finetuen", "did you mean",
                                                 "finetune"]),
        ({"methods": [{"partial": {"rolse": ["actor"]}}]}, ["methods[0]", "rolse", "roles"]),
        ({"methods": [{"partial": {"roles": ["actr"]}}]}, ["methods[0]", "actr", "'actor'"]),
        ({"methods": [{"frozen": {"unfreeze_at": -1}}]}, ["methods[0]", "unfreeze_at"]),
        ({"methods": ["finetune", "finetune"]}, ["methods[1]", "duplicates"]),
        ({"target": {"env": "CartPol-v1"}}, ["target", "CartPol-v1", "CartPole-v1"]),
        ({"target": {"env": "CartPole-v1", "nobs": {}}}, ["target.nobs", "knobs"]),
        ({"overrides": {"n_epoch": 3}}, ["overrides", "n_epoch"]),
        ({"source": None}, ["source", "missing", "pair"]),
        ({"pair": "cartpole/long-heavy-pole"}, ["pair", "not both"]),
        ({"pair_": 1}, ["pair_", "unknown field", "did you mean 'pair'"]),
        ({"sustain": 0}, ["sustain", "0", ">= 1"]),
        ({"sustain": 2.5}, ["sustain", "2.5"]),
    ],
)
def test_errors_name_the_field(write_yaml, tiny, change, expected):
    data = dict(tiny)
    for key, value in change.items():  # None: remove the field
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    msg = _error(write_yaml, data)
    for part in expected:
        assert part in msg, f"{part!r} not in:\n{msg}"


def test_unknown_pair_names_the_field(write_yaml, tiny):
    pytest.importorskip("rltransfer.envs")
    data = {k: v for k, v in tiny.items() if k not in ("source", "target")}
    data["pair"] = "cartpole/long-hevy-pole"
    msg = _error(write_yaml, data)
    assert "pair" in msg and "long-hevy-pole" in msg and "cartpole/long-heavy-pole" in msg


def test_not_yaml_mapping(write_yaml, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ExperimentError, match="expected a mapping"):
        load_experiment(path)
    path.write_text("seeds: [1,\n")
    with pytest.raises(ExperimentError, match="not valid YAML"):
        load_experiment(path)
    with pytest.raises(ExperimentError, match="not found"):
        load_experiment(tmp_path / "missing.yaml")


def test_yaml_is_data_only(write_yaml, tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("seeds: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ExperimentError, match="not valid YAML"):
        load_experiment(path)


def _ids(path: Path, out: Path) -> list[tuple[str, str, int]]:
    plan = make_plan(load_experiment(path), out)
    return [(r.run_id, r.method, r.seed) for r in plan.all_runs]


def test_run_ids_stable_across_processes_and_paths(write_yaml, tiny, tmp_path):
    tiny["methods"] = ["scratch", "finetune", {"partial": {"roles": ["actor"]}}]
    path = write_yaml(tiny)
    here = _ids(path, tmp_path / "a")
    assert _ids(path, tmp_path / "elsewhere" / "b") == here  # the path is not in the id
    code = ("import sys; from rltransfer.experiment import load_experiment, make_plan; "
            "p = make_plan(load_experiment(sys.argv[1]), sys.argv[2]); "
            "print(' '.join(r.run_id for r in p.all_runs))")
    other = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "c")],
                           capture_output=True, text=True, check=True, cwd=REPO,
                           env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert other.stdout.split() == [i for i, _, _ in here]
    ids = [i for i, _, _ in here]
    assert len(set(ids)) == len(ids)  # every method x seed differs, and from the source


def test_run_ids_follow_content(write_yaml, tiny, tmp_path):
    base = dict(_key(_ids(write_yaml(tiny), tmp_path)))
    # another target budget: every transfer run changes, the source does not
    more = dict(_key(_ids(write_yaml({**tiny, "steps": 512}, "b.yaml"), tmp_path)))
    assert more["pretrain", 0] == base["pretrain", 0]
    assert more["scratch", 0] != base["scratch", 0]
    # another source budget: the source and the runs from it change, scratch does not
    src = dict(_key(_ids(write_yaml({**tiny, "source_steps": 512}, "c.yaml"), tmp_path)))
    assert src["pretrain", 0] != base["pretrain", 0]
    assert src["finetune", 0] != base["finetune", 0]
    assert src["scratch", 0] == base["scratch", 0]
    # another hyperparameter: everything changes
    hp = dict(_key(_ids(write_yaml({**tiny, "overrides": {**tiny["overrides"],
                                                          "n_epochs": 3}}, "d.yaml"),
                        tmp_path)))
    assert not set(hp.values()) & set(base.values())
    # sustain is a report setting: no run id changes
    assert _ids(write_yaml({**tiny, "sustain": 5}, "e.yaml"), tmp_path) == _ids(
        write_yaml(tiny, "f.yaml"), tmp_path)


def test_sustain_defaults_to_3_and_is_in_the_config(write_yaml, tiny):
    exp = load_experiment(write_yaml(tiny))
    assert exp.sustain == 3 and exp.config_json()["sustain"] == 3
    exp = load_experiment(write_yaml({**tiny, "sustain": 1}, "one.yaml"))
    assert exp.sustain == 1
    assert resolve_experiment(exp.config_json()).sustain == 1  # round-trips


def _key(rows):
    return [((m, s), i) for i, m, s in rows]


def test_scratch_only_needs_no_source(write_yaml, tiny, tmp_path):
    tiny["methods"] = ["scratch"]
    plan = make_plan(load_experiment(write_yaml(tiny)), tmp_path / "o")
    assert plan.source is None and len(plan.runs) == 2


def test_shipped_experiment_files_validate():
    pytest.importorskip("rltransfer.envs")
    files = sorted((REPO / "experiments").glob("*.yaml"))
    assert files, "no experiment files"
    for f in files:
        exp = load_experiment(f)
        assert exp.method_labels[0] == "scratch"
    demo = load_experiment(REPO / "experiments" / "cartpole_demo.yaml")
    assert len(demo.seeds) >= 3
    assert {"scratch", "finetune"} <= set(demo.method_labels)
    assert any(label.startswith("partial") for label in demo.method_labels)


def test_pixel_members_get_the_pixel_preset(tmp_path):
    """A pixel pair resolves `<family>-pixels` (a CNN), not the state preset (an MLP)."""
    exp = resolve_experiment({"pair": "cartpole-pixels/long-heavy-pole", "methods": ["frozen"],
                              "steps": 1000, "source_steps": 1000})
    plan = make_plan(exp, tmp_path / "out")
    for r in plan.all_runs:
        assert r.preset["policy"] == "CnnPolicy", (r.kind, r.preset["policy"])
        assert r.preset["policy_kwargs"]["features_extractor"] == "nature_cnn"
