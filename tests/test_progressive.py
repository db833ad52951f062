"""Progressive networks (issue #11.2 and its tests in #11.4), PPO and SAC.

The frozen source column must equal the source's hidden layers, stay bitwise unchanged by
training and sit in no optimizer; the new column and the laterals must train; the card
must record the structure and a progressive target must reload from its checkpoint.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import PPO_TINY, SAC_TINY

import rltransfer as rlt
from rltransfer.agent import build_agent, load_agent, save_agent
from rltransfer.checkpoint import CheckpointError, load_checkpoint
from rltransfer.methods import TransferError, optimizers
from rltransfer.methods.progressive import ProgressiveMLP

CASES = {"ppo": ("cartpole", {"length": 1.0}, PPO_TINY, "mlp_extractor.policy_net"),
         "sac": ("pendulum", {"g": 12.0}, SAC_TINY, "actor.latent_pi")}


@pytest.fixture(params=["ppo", "sac"])
def case(request, ppo_source, sac_source):
    algo = request.param
    env, knobs, tiny, trunk = CASES[algo]
    source = ppo_source if algo == "ppo" else sac_source
    model = rlt.transfer(source, env, knobs=knobs, method="progressive", seed=1,
                         overrides=tiny, lateral_width=8)
    return algo, source, model, trunk


def _buffers(model):
    return {k: v for k, v in model.policy.state_dict().items() if ".sources." in k}


def test_frozen_column_is_the_source_and_in_no_optimizer(case):
    algo, source, model, trunk = case
    src = load_checkpoint(source).tensors
    column = model.policy.get_submodule(trunk).sources[0]
    assert isinstance(model.policy.get_submodule(trunk), ProgressiveMLP)
    assert torch.equal(column.weight0, src[f"{trunk}.0.weight"])
    assert torch.equal(column.bias1, src[f"{trunk}.2.bias"])
    frozen = _buffers(model)
    assert frozen and not any(isinstance(v, torch.nn.Parameter) for v in frozen.values())
    in_opt = {id(p) for opt in optimizers(model) for g in opt.param_groups for p in g["params"]}
    named = dict(model.policy.named_buffers())
    assert not any(id(named[k]) in in_opt for k in frozen if k in named)
    # every trainable parameter of the policy (but a SAC target critic's) is optimized
    trainable = {n: p for n, p in model.policy.named_parameters()
                 if not n.startswith("critic_target.")}
    assert all(id(p) in in_opt for p in trainable.values()), \
        [n for n, p in trainable.items() if id(p) not in in_opt]


def test_source_column_computes_the_source_hidden_layers(case, rng):
    algo, source, model, trunk = case
    src_model = load_agent(source)
    x = torch.as_tensor(rng.normal(size=(5, model.policy.get_submodule(trunk).column[0]
                                         .in_features)).astype(np.float32))
    with torch.no_grad():
        want = src_model.policy.get_submodule(trunk)(x)
        got = model.policy.get_submodule(trunk).sources[0].hidden(x)[-1]
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_heads_read_the_new_column_alone_at_step_0(case):
    algo, _, model, trunk = case
    head = model.policy.action_net if algo == "ppo" else model.policy.actor.mu
    width = model.policy.get_submodule(trunk).column[-2].out_features
    assert head.in_features == width + 8
    assert torch.count_nonzero(head.weight[:, width:]) == 0


def test_training_leaves_the_column_frozen_and_trains_the_laterals(case):
    algo, _, model, trunk = case
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.learn(256)
    after = model.policy.state_dict()
    for key in _buffers(model):
        assert torch.equal(before[key], after[key]), key
    laterals = [k for k in before if ".laterals." in k and not k.startswith("critic_target")]
    assert laterals and all(not torch.equal(before[k], after[k]) for k in laterals), laterals
    column = [k for k in before if f"{trunk}.column." in k]
    assert all(not torch.equal(before[k], after[k]) for k in column)
    head = "action_net.weight" if algo == "ppo" else "actor.mu.weight"
    width = model.policy.get_submodule(trunk).column[-2].out_features
    assert torch.count_nonzero(after[head][:, width:]) > 0  # the output lateral trains too


def test_card_records_the_structure_and_the_target_reloads(case, tmp_path, rng):
    algo, _, model, trunk = case
    model.learn(128)
    path = save_agent(model, tmp_path / "target")
    card = load_checkpoint(path).card
    structure = card["structure"]
    assert structure["kind"] == "progressive" and structure["columns"] == 2
    assert structure["lateral_width"] == 8
    assert structure["sites"][trunk]["sources"][0]["widths"] == [
        model.observation_space.shape[0], 16, 16]
    assert card["transfer"]["label"] == "progressive"
    again = load_agent(path)
    for key, value in model.policy.state_dict().items():
        assert torch.equal(value, again.policy.state_dict()[key]), key
    obs = np.stack([model.observation_space.sample() for _ in range(4)])
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0],
                                  again.predict(obs, deterministic=True)[0])
    again.learn(64)  # and it keeps training (its optimizers were rebuilt)


def test_tampered_structure_is_refused(case, tmp_path):
    _, _, model, trunk = case
    path = save_agent(model, tmp_path / "target")
    card_file = path / "card.json"
    card = json.loads(card_file.read_text())
    card["structure"]["sites"][trunk]["sources"][0]["widths"][1] = 5
    card_file.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="weight"):
        load_agent(path)


def test_across_spaces_through_the_adapter(tmp_path):
    src = save_agent(build_agent("invertedpendulum", algo="ppo", seed=0, overrides=PPO_TINY),
                     tmp_path / "src")
    pair = rlt.envs.get_pair("invertedpendulum/to-double")
    model = rlt.transfer(src, pair.target.env, method="progressive", seed=1,
                         overrides=PPO_TINY, adapter="invertedpendulum/to-double")
    column = model.policy.mlp_extractor.policy_net.sources[0]
    assert column.weight0.shape == (16, model.observation_space.shape[0])
    resolved = pair.resolve_adapter()
    shared_t, shared_s = resolved.obs_pairs()
    source = load_checkpoint(src).tensors["mlp_extractor.policy_net.0.weight"]
    assert resolved.new_obs and torch.count_nonzero(column.weight0[:, resolved.new_obs]) == 0
    assert torch.equal(column.weight0[:, shared_t], source[:, shared_s])
    model.learn(128)


def test_refusals(ppo_source, tmp_path):
    with pytest.raises(TransferError, match="same depth"):
        rlt.transfer(ppo_source, "cartpole", method="progressive", seed=1,
                     overrides={**PPO_TINY, "policy_kwargs": {"net_arch": [16]}})
    with pytest.raises(TransferError, match="lateral_width"):
        rlt.transfer(ppo_source, "cartpole", method="progressive", seed=1, lateral_width=0)
    with pytest.raises(TransferError, match="give an adapter"):  # 4 numbers, not 3
        rlt.transfer(ppo_source, "pendulum", method="progressive", seed=1, overrides=PPO_TINY)
