"""The registry is the one list of methods; adding one is a file and a registration."""

from __future__ import annotations

import pytest
import torch
from helpers import PPO_TINY

import rltransfer as rlt
from rltransfer.cli import main
from rltransfer.experiment.config import ExperimentError, resolve_experiment
from rltransfer.methods import (
    METHODS,
    Method,
    MethodContext,
    TransferError,
    TransferLog,
    describe_methods,
    get_method,
    method_names,
    register_method,
)


class HeadsOnly(Method):
    """A user's method: the output layers move, scaled by ``scale``."""

    name = "heads_only"
    summary = "the heads move, scaled"
    scale: float = 1.0
    """Factor applied to the moved head weights."""

    def initialize(self, model, ctx: MethodContext) -> TransferLog:
        from rltransfer.methods import copy_roles

        log = copy_roles(model, ctx.source, ["heads"], ctx.on_mismatch, self.label)
        with torch.no_grad():
            for name, p in model.policy.named_parameters():
                if name in log.moved:
                    p.mul_(self.scale)
        return log


@pytest.fixture
def heads_only():
    register_method(HeadsOnly)
    yield HeadsOnly
    METHODS.pop("heads_only", None)


def test_a_new_method_is_one_class_and_its_registration(heads_only, ppo_source):
    assert "heads_only" in method_names()
    model = rlt.transfer(ppo_source, "CartPole-v1", method={"heads_only": {"scale": 2.0}},
                         seed=1, overrides=PPO_TINY)
    src = rlt.load_checkpoint(ppo_source).tensors
    assert torch.equal(model.policy.state_dict()["action_net.weight"],
                       2.0 * src["action_net.weight"])
    assert model.rltransfer.transfer["spec"] == {"heads_only": {"scale": 2.0}}
    # experiment files accept it too
    exp = resolve_experiment({"pair": "cartpole/long-heavy-pole", "steps": 1000,
                              "methods": [{"heads_only": {"scale": 0.5}}]})
    assert exp.method_labels == ["scratch", "heads_only"]


def test_registration_rejects_non_methods_and_duplicates(heads_only):
    with pytest.raises(TypeError, match="not a subclass"):
        register_method(object)
    clash = type("Clash", (Method,), {"name": "finetune", "__module__": __name__})
    with pytest.raises(ValueError, match="already registered"):
        register_method(clash)


@pytest.mark.parametrize("spec,match", [
    ("fintune", "method 'fintune' is unknown \\(did you mean 'finetune'\\?\\); choose from"),
    ({"kickstart": {"coef": -1}}, "method 'kickstart': option coef: value -1"),
    ({"kickstart": {"schedule": "cosine"}}, "option schedule: value 'cosine'.*constant"),
    ({"jsrl": {"curicculum": "random"}}, "has no option 'curicculum' \\(did you mean 'curriculum'"),
    ({"critic_warmup": {"steps": 0}}, "option steps: value 0.*> 0"),
    ({"partial": {"roles": ["actr"]}}, "role 'actr' is unknown"),
    ({"replay_warmstart": {"offline_steps": "many"}}, "option offline_steps: value 'many'"),
    ({"frozen": "yes"}, "options must be a mapping"),
])
def test_bad_method_specs_name_method_option_value_and_accepted(spec, match):
    with pytest.raises(TransferError, match=match):
        get_method(spec)


def test_experiment_file_refuses_a_bad_method_option():
    with pytest.raises(ExperimentError, match="methods\\[1\\].*kickstart.*coef"):
        resolve_experiment({"pair": "cartpole/long-heavy-pole", "steps": 1000,
                            "methods": ["scratch", {"kickstart": {"coef": -2}}]})


def test_list_methods_shows_every_method_with_typed_options(capsys):
    assert main(["list", "methods"]) == 0
    out = capsys.readouterr().out
    for m in describe_methods():
        assert f"  {m['name']}" in out
    assert "coef: float = 1.0" in out
    assert "curriculum: Literal['stages', 'random'] = 'stages'" in out


def test_cli_method_choices_come_from_the_registry(capsys):
    with pytest.raises(SystemExit):
        main(["transfer", "--help"])
    out = capsys.readouterr().out
    assert "{" + ",".join(method_names()) + "}" in "".join(out.split())


@pytest.mark.parametrize("what,expect", [
    ("encoders", ["nature_cnn", "impala_cnn", "resnet18"]),
    ("presets", ["ppo:", "sac:", "cartpole", "hopper"]),
])
def test_list_encoders_and_presets(what, expect, capsys):
    assert main(["list", what]) == 0
    out = capsys.readouterr().out
    for word in expect:
        assert word in out
