"""Transfer methods move exactly the weights they say, for PPO and SAC."""

from __future__ import annotations

import pytest
import torch
from helpers import PPO_TINY, SAC_TINY

import rltransfer as rlt
from rltransfer.methods import TransferError
from rltransfer.roles import classify, select


def _target(src, algo, method, **kw):
    env, tiny = ("CartPole-v1", PPO_TINY) if algo == "ppo" else ("Pendulum-v1", SAC_TINY)
    return rlt.transfer(src, env, method=method, seed=7, overrides=tiny, algo=algo, **kw)


def _moved_and_fresh(model, src_tensors):
    state = model.policy.state_dict()
    moved = {k for k, v in state.items() if torch.equal(v, src_tensors[k])}
    return moved, set(state) - moved


# Expected parts per method, written out rather than derived, so the role map is tested.
PPO_EXPECT = {
    "scratch": set(),
    "finetune": {"mlp_extractor.policy_net", "mlp_extractor.value_net", "action_net",
                 "value_net"},
    "partial_actor": {"mlp_extractor.policy_net", "action_net"},
    "partial_critic": {"mlp_extractor.value_net", "value_net"},
    "partial_heads": {"action_net", "value_net"},
    "frozen": {"mlp_extractor.policy_net", "mlp_extractor.value_net"},
}
SAC_EXPECT = {
    "scratch": set(),
    "finetune": {"actor.latent_pi", "actor.mu", "actor.log_std", "critic.qf0", "critic.qf1",
                 "critic_target.qf0", "critic_target.qf1"},
    "partial_actor": {"actor.latent_pi", "actor.mu", "actor.log_std"},
    "partial_critic": {"critic.qf0", "critic.qf1", "critic_target.qf0", "critic_target.qf1"},
    "partial_heads": {"actor.mu", "actor.log_std", "critic.qf0.4", "critic.qf1.4",
                      "critic_target.qf0.4", "critic_target.qf1.4"},
    # frozen: target twins of the frozen critic layers take the source's *online* values
    "frozen": {"actor.latent_pi", "critic.qf0.0", "critic.qf0.2", "critic.qf1.0",
               "critic.qf1.2"},
}
METHODS = {"scratch": "scratch", "finetune": "finetune",
           "partial_actor": {"partial": {"roles": ["actor"]}},
           "partial_critic": {"partial": {"roles": ["critic"]}},
           "partial_heads": {"partial": {"roles": ["heads"]}}, "frozen": "frozen"}


def _expected_keys(state, prefixes):
    return {k for k in state if any(k == p or k.startswith(p + ".") for p in prefixes)}


@pytest.mark.parametrize("algo", ["ppo", "sac"])
@pytest.mark.parametrize("case", list(METHODS))
def test_each_method_moves_exactly_its_weights(algo, case, ppo_source, sac_source):
    src = ppo_source if algo == "ppo" else sac_source
    src_tensors = rlt.load_checkpoint(src).tensors
    model = _target(src, algo, METHODS[case])
    state = model.policy.state_dict()
    expect = _expected_keys(state, (PPO_EXPECT if algo == "ppo" else SAC_EXPECT)[case])
    moved, fresh = _moved_and_fresh(model, src_tensors)
    assert moved == expect
    # fresh parts really are fresh: not equal to the source
    for k in fresh:
        assert not torch.equal(state[k], src_tensors[k]), k
    assert set(model.rltransfer_log.moved) >= expect
    if algo == "sac" and case == "frozen":
        for k in expect:
            if k.startswith("critic."):
                assert torch.equal(state["critic_target." + k[7:]], src_tensors[k])


def test_sac_finetune_moves_entropy_coefficient(sac_source):
    ckpt = rlt.load_checkpoint(sac_source)
    assert "log_ent_coef" in ckpt.extras
    model = _target(sac_source, "sac", "finetune")
    assert torch.equal(model.log_ent_coef.detach(), ckpt.extras["log_ent_coef"])


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_frozen_weights_unchanged_after_learn_and_out_of_optimizer(algo, ppo_source,
                                                                   sac_source):
    src = ppo_source if algo == "ppo" else sac_source
    model = _target(src, algo, "frozen")
    frozen = set(model.rltransfer_log.frozen)
    assert frozen
    params = dict(model.policy.named_parameters())
    before = {k: params[k].detach().clone() for k in params}
    opt_ids = {id(p) for o in _optimizers(model) for g in o.param_groups for p in g["params"]}
    for k in frozen:
        assert not params[k].requires_grad
        assert id(params[k]) not in opt_ids
    model.learn(256)
    for k in frozen:
        assert torch.equal(params[k], before[k]), f"{k} moved although frozen"
        twin = params.get(k.replace("critic.", "critic_target.", 1))
        if k.startswith("critic.") and twin is not None:  # SAC: target stays with it
            torch.testing.assert_close(twin, params[k])
    trained = [k for k in params if k not in frozen and not torch.equal(params[k], before[k])]
    assert trained, "nothing trained at all"


def test_frozen_init_freezes_the_targets_own_weights_without_a_source():
    method = {"frozen": {"weights": "init", "roles": ["actor"]}}
    model = _target(None, "ppo", method)
    fresh = rlt.build_agent("CartPole-v1", algo="ppo", seed=7, overrides=PPO_TINY)
    init = fresh.policy.state_dict()
    log = model.rltransfer_log
    assert log.method == "frozen[init;actor]" and sorted(log.moved) == log.frozen
    assert set(log.frozen) == {k for k in init if k.startswith(("mlp_extractor.policy_net",
                                                                 "action_net"))}
    params = dict(model.policy.named_parameters())
    opt_ids = {id(p) for o in _optimizers(model) for g in o.param_groups for p in g["params"]}
    assert not any(id(params[k]) in opt_ids for k in log.frozen)
    model.learn(256)
    for k in log.frozen:
        assert torch.equal(params[k], init[k]), k  # the initialization, unchanged
    assert not torch.equal(params["value_net.weight"], init["value_net.weight"])
    with pytest.raises(TransferError, match="'imagenet'.*'init'"):
        _target(None, "ppo", {"frozen": {"weights": "imagenet"}})


def _optimizers(model):
    from rltransfer.methods import optimizers as _optimizers

    return _optimizers(model)


def test_unfreeze_at_step_k_trains_the_encoder_afterwards(ppo_source):
    model = _target(ppo_source, "ppo", {"frozen": {"unfreeze_at": 384}})
    frozen = model.rltransfer_log.frozen
    params = dict(model.policy.named_parameters())
    before = {k: params[k].detach().clone() for k in frozen}
    model.learn(256)  # updates happen, all before step 384: still frozen
    assert all(torch.equal(params[k], before[k]) for k in frozen)
    assert not any(params[k].requires_grad for k in frozen)
    model.learn(512, reset_num_timesteps=False)
    assert all(params[k].requires_grad for k in frozen)
    assert any(not torch.equal(params[k], before[k]) for k in frozen)


def test_lr_scale_puts_moved_weights_in_a_scaled_group(ppo_source):
    model = _target(ppo_source, "ppo", {"frozen": {"lr_scale": 0.1}})
    groups = model.policy.optimizer.param_groups
    scaled = [g for g in groups if g.get("lr_scale") == 0.1]
    assert len(scaled) == 1 and scaled[0]["params"]
    moved = set(model.rltransfer_log.moved)
    params = dict(model.policy.named_parameters())
    assert {id(p) for p in scaled[0]["params"]} == {id(params[k]) for k in moved}
    before = {k: params[k].detach().clone() for k in moved}
    model.learn(256)
    assert any(not torch.equal(params[k], before[k]) for k in moved)
    assert groups[0]["lr"] == pytest.approx(scaled[0]["lr"])  # restored after each step


def test_mismatched_shapes_raise_a_table_or_reinit(ppo_source):
    other = {**PPO_TINY, "policy_kwargs": {"net_arch": {"pi": [16, 16], "vf": [32, 32]}}}
    with pytest.raises(TransferError) as exc:
        rlt.transfer(ppo_source, "CartPole-v1", method="finetune", seed=1, overrides=other)
    msg = str(exc.value)
    assert "role" in msg and "source shape" in msg and "target shape" in msg
    assert "mlp_extractor.value_net.0.weight" in msg and "[16, 4]" in msg and "[32, 4]" in msg
    model = rlt.transfer(ppo_source, "CartPole-v1", method="finetune", seed=1,
                         overrides=other, on_mismatch="reinit")
    src = rlt.load_checkpoint(ppo_source).tensors
    state = model.policy.state_dict()
    assert torch.equal(state["mlp_extractor.policy_net.0.weight"],
                       src["mlp_extractor.policy_net.0.weight"])
    assert state["mlp_extractor.value_net.0.weight"].shape == (32, 4)
    assert any(r[1] == "value_net.weight" for r in model.rltransfer_log.reinit)


def test_bad_method_and_role_names_are_clear(ppo_source):
    with pytest.raises(TransferError, match="did you mean 'finetune'"):
        rlt.transfer(ppo_source, "CartPole-v1", method="fintune", seed=1)
    with pytest.raises(ValueError, match="role 'actr' is unknown"):
        rlt.transfer(ppo_source, "CartPole-v1", method="partial", roles=["actr"], seed=1,
                     overrides=PPO_TINY)
    with pytest.raises(TransferError, match="has no option 'unfreeze'"):
        rlt.transfer(ppo_source, "CartPole-v1", method="frozen", unfreeze=3, seed=1)
    with pytest.raises(TransferError, match="source algo 'ppo' differs"):
        rlt.transfer(ppo_source, "Pendulum-v1", algo="sac", method="finetune", seed=1)


def test_role_map_covers_every_parameter():
    from stable_baselines3 import PPO, SAC

    ppo = PPO("MlpPolicy", "Pendulum-v1", use_sde=True, n_steps=64, batch_size=64)
    info = classify("ppo", ppo.policy.state_dict())
    assert info["log_std"].part == "actor_head"
    sac = SAC("MlpPolicy", "Pendulum-v1", policy_kwargs={"n_critics": 3, "net_arch": [8, 8, 8]})
    info = classify("sac", sac.policy.state_dict())
    assert info["critic.qf2.6.weight"].part == "critic_head"
    assert info["critic_target.qf2.4.weight"].part == "critic_trunk"
    assert info["critic_target.qf2.4.weight"].target
    assert select("sac", sac.policy.state_dict(), ["heads"]) == [
        k for k in sac.policy.state_dict()
        if k.startswith(("actor.mu", "actor.log_std")) or ".6." in k]
