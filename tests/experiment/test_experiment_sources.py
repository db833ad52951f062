"""Per-method sources and presets: a self-supervised encoder as a named source, a frozen
randomly initialized ResNet-18 as a control, their plans, errors, runs and resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from rltransfer.experiment import load_experiment, make_plan, run
from rltransfer.experiment.config import ExperimentError

PIX = {"size": 36, "grayscale": True, "frame_stack": 2}
RESNET = {"policy_kwargs": {"features_extractor": "resnet18",
                            "features_extractor_kwargs": {"layer": "layer1",
                                                          "channels_per_frame": 1}}}


def vision(**extra: Any) -> dict[str, Any]:
    cfg = {
        "name": "tiny_vision",
        "source": {"env": "cartpole", "pixels": PIX},
        "target": {"env": "cartpole", "knobs": {"length": 1.0}, "pixels": PIX},
        "algo": "ppo",
        "overrides": {"n_envs": 1, "n_steps": 128, "batch_size": 64, "n_epochs": 2},
        "sources": {"ssl": {"frames": 64, "steps": 3, "batch_size": 16}},
        "methods": [
            {"method": "frozen", "source": "ssl"},
            {"method": {"frozen": {"weights": "init"}}, "label": "resnet18-random",
             "overrides": RESNET},
        ],
        "seeds": 1, "steps": 256, "source_steps": 256,
        "eval": {"every": 128, "episodes": 1}, "threshold": 100,
    }
    cfg.update(extra)
    return cfg


def test_plan_names_sources_and_dependencies(write_yaml, tmp_path):
    exp = load_experiment(write_yaml(vision(methods=[
        "frozen", *vision()["methods"]])))
    assert exp.method_labels == ["scratch", "frozen", "frozen@ssl", "resnet18-random"]
    plan = make_plan(exp, tmp_path / "out")
    assert list(plan.sources) == ["agent", "ssl"]
    assert plan.sources["ssl"].kind == "pretrain-encoder"
    assert plan.sources["ssl"].method_spec["encoder"] == "nature_cnn"  # the target preset's
    by = {r.method: r for r in plan.runs}
    assert by["frozen"].source_id == plan.sources["agent"].run_id
    assert by["frozen@ssl"].source_id == plan.sources["ssl"].run_id
    assert by["frozen@ssl"].source_dir == plan.sources["ssl"].run_dir
    assert by["resnet18-random"].source_id is None and by["scratch"].source_id is None
    assert (by["resnet18-random"].preset["policy_kwargs"]["features_extractor"]
            == "resnet18")
    assert by["scratch"].preset["policy_kwargs"]["features_extractor"] == "nature_cnn"
    # content-addressed: the plain methods keep their ids when other methods are added
    plain = make_plan(load_experiment(write_yaml(vision(methods=["frozen"]), "p.yaml")),
                      tmp_path / "out")
    assert {r.run_id for r in plain.all_runs} <= {r.run_id for r in plan.all_runs}
    assert "ssl" not in plain.sources  # defined but unused: not planned, not trained


def test_source_agent_not_planned_without_methods_that_use_it(write_yaml, tmp_path):
    plan = make_plan(load_experiment(write_yaml(vision())), tmp_path / "out")
    assert list(plan.sources) == ["ssl"] and plan.source is None


@pytest.mark.parametrize("change, words", [
    ({"methods": [{"method": "frozen", "source": "ss1"}]}, ["methods[0]", "'ss1'", "ssl"]),
    ({"methods": [{"method": "scratch", "source": "ssl"}]}, ["methods[0]", "takes no source"]),
    ({"methods": [{"method": "finetune", "source": "ssl"}]},
     ["methods[0]", "encoder checkpoint", "partial"]),
    ({"methods": [{"method": {"frozen": {"weights": "init"}}, "source": "agent"}]},
     ["methods[0]", "takes no source"]),
    ({"sources": {"agent": {}}}, ["sources.agent", "RL agent"]),
    ({"methods": ["frozen", {"method": "frozen", "label": "frozen"}]},
     ["methods[1]", "duplicates", "label"]),
    ({"methods": [{"method": "frozen", "lable": "x"}]}, ["methods[0]", "lable", "label"]),
    ({"sources": {"ssl": {"frames": 0}}}, ["sources.ssl.frames", "0", "greater than 1"]),
    ({"sources": {"ssl": {"objective": "autoencoder"}}},
     ["sources.ssl.objective", "autoencoder", "contrastive"]),
    ({"methods": [{"method": "scratch", "label": "r", "preset": "no-such-preset"}]},
     ["methods[0]", "no-such-preset"]),
    ({"methods": [{"method": {"frozen": {"weights": "imagenet"}}}]},
     ["methods[0]", "weights", "'imagenet'", "init"]),
])
def test_errors_name_field_value_and_choices(write_yaml, change, words):
    with pytest.raises(ExperimentError) as info:
        load_experiment(write_yaml(vision(**change)))
    msg = str(info.value)
    for w in words:
        assert w in msg, (w, msg)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    import yaml

    root = tmp_path_factory.mktemp("vision")
    (root / "v.yaml").write_text(yaml.safe_dump(vision()))
    result = run(root / "v.yaml", out=root / "out", workers=2, progress=False, report=False)
    assert result.ok, result.failed
    assert result.executed == 4  # the ssl source, scratch, frozen@ssl, resnet18-random
    return root


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    from rltransfer.checkpoint import load_checkpoint

    return load_checkpoint(path).tensors


def test_ssl_encoder_arrives_and_stays_frozen(finished):
    out = finished / "out"
    plan = make_plan(load_experiment(finished / "v.yaml"), out)
    ssl = plan.sources["ssl"]
    enc = _tensors(Path(ssl.run_dir) / "checkpoint")
    with open(Path(ssl.run_dir) / "loss.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 3  # one row per gradient step
    run_ = next(r for r in plan.runs if r.method == "frozen@ssl")
    agent = _tensors(Path(run_.run_dir) / "checkpoint")  # after learn(256)
    assert enc
    for key, tensor in enc.items():
        assert torch.equal(agent[f"features_extractor.{key}"], tensor), key
    # the heads trained
    fresh = [k for k in agent if not k.startswith("features_extractor.")]
    assert fresh


def test_random_resnet_control_is_frozen_at_its_initialization(finished):
    from rltransfer import build_agent

    out = finished / "out"
    plan = make_plan(load_experiment(finished / "v.yaml"), out)
    spec = next(r for r in plan.runs if r.method == "resnet18-random")
    trained = _tensors(Path(spec.run_dir) / "checkpoint")
    preset = {k: v for k, v in spec.preset.items() if k != "algo"}
    fresh = build_agent("cartpole", algo="ppo", seed=spec.seed, knobs={"length": 1.0},
                        pixels=PIX, preset=preset).policy.state_dict()
    backbone = [k for k in fresh if k.startswith("features_extractor.backbone.")]
    assert backbone
    for k in backbone:
        assert torch.equal(trained[k], fresh[k]), k
    heads = [k for k in fresh if k.startswith("action_net.")]
    assert any(not torch.equal(trained[k], fresh[k]) for k in heads)  # the heads learned
    card = json.loads((Path(spec.run_dir) / "checkpoint" / "card.json").read_text())
    assert card["transfer"]["frozen"] > 0 and card.get("source") is None


def test_rerun_skips_sources_and_runs(finished):
    result = run(finished / "v.yaml", out=finished / "out", workers=1, progress=False,
                 report=False)
    assert result.ok and (result.executed, result.skipped) == (0, 4)


def test_report_says_what_each_method_starts_from(finished, fast_report):
    fast_report.build_report(finished / "out")
    md = (finished / "out" / "report.md").read_text()
    methods = md.split("## Methods", 1)[1].split("\n## ", 1)[0]
    rows = {line.split(" | ")[0].strip("| "): line for line in methods.splitlines()
            if line.startswith("| ")}
    assert "contrastive encoder `nature_cnn` trained on 64 random-policy frames" in rows[
        "frozen@ssl"]
    assert "its own initialization" in rows["resnet18-random"]
    assert "`resnet18`" in rows["resnet18-random"] and "`nature_cnn`" in rows["scratch"]


def state_teacher(**extra: Any) -> dict[str, Any]:
    """A pixel student taught by an agent trained on the state (a named ``kind: agent``)."""
    cfg = {"sources": {"state": {"kind": "agent", "pixels": False, "steps": 256,
                                 "overrides": {"n_envs": 1, "n_steps": 128, "batch_size": 64}}},
           "methods": [{"method": {"kickstart": {"roles": [], "schedule": "constant"}},
                        "source": "state"}]}
    return vision(**{**cfg, **extra})


def test_state_teacher_source_is_planned_on_the_state(write_yaml, tmp_path):
    exp = load_experiment(write_yaml(state_teacher()))
    assert exp.method_labels == ["scratch", "kickstart[none]@state"]
    plan = make_plan(exp, tmp_path / "out")
    assert list(plan.sources) == ["state"]  # the pixel agent is not needed
    src = plan.sources["state"]
    assert src.kind == "pretrain" and src.env["pixels"] is None and src.steps == 256
    assert src.preset["n_steps"] == 128 and src.preset["policy"] == "MlpPolicy"
    by = {r.method: r for r in plan.runs}
    assert by["kickstart[none]@state"].source_id == src.run_id
    assert by["kickstart[none]@state"].env["pixels"] == PIX


def test_state_teacher_experiment_runs_and_skips_on_rerun(write_yaml, tmp_path, fast_report):
    path = write_yaml(state_teacher(seeds=1))
    result = run(path, out=tmp_path / "out", workers=1, progress=False, report=False)
    assert result.ok, result.failed
    assert result.executed == 3  # the state source, scratch, kickstart
    plan = make_plan(load_experiment(path), tmp_path / "out")
    spec = next(r for r in plan.runs if r.method == "kickstart[none]@state")
    card = json.loads((Path(spec.run_dir) / "checkpoint" / "card.json").read_text())
    assert card["source"]["env"]["pixels"] is None and card["env"]["pixels"]["height"] == 36
    assert card["transfer"]["moved"] == 0
    again = run(path, out=tmp_path / "out", workers=1, progress=False, report=False)
    assert (again.executed, again.skipped) == (0, 3)
    fast_report.build_report(tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "trained on `cartpole` from its state (a state teacher" in md


@pytest.mark.parametrize("source, words", [
    ({"kind": "agent", "pixels": False, "steps": -1}, ["sources", "steps"]),
    ({"kind": "agent", "env": "nosuchenv"}, ["sources.state", "nosuchenv"]),
])
def test_named_agent_source_errors(write_yaml, source, words):
    with pytest.raises(ExperimentError) as err:
        load_experiment(write_yaml(state_teacher(sources={"state": source})))
    for word in words:
        assert word in str(err.value)
