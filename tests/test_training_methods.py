"""Training-time transfer methods: kickstart, critic_warmup, jsrl, replay_warmstart.

Each test checks behaviour that would be absent if the method did nothing: gradients that
move with the loss weight, tensors that stay bitwise still (or not), actions that are the
teacher's, buffers that hold the teacher's transitions, curves whose x-axis counts them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import PPO_TINY, SAC_TINY
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure

import rltransfer as rlt
from rltransfer.agent import make_eval_env
from rltransfer.methods import TransferError, get_method
from rltransfer.methods.guide import GuideWrapper
from rltransfer.sb3 import internals

ENVS = {"ppo": ("CartPole-v1", PPO_TINY), "sac": ("Pendulum-v1", SAC_TINY)}


def _src(algo, ppo_source, sac_source):
    return ppo_source if algo == "ppo" else sac_source


def _target(src, algo, method, seed=3, **overrides):
    env, tiny = ENVS[algo]
    return rlt.transfer(src, env, method=method, seed=seed, overrides={**tiny, **overrides})


def _state(model):
    return {k: v.detach().clone() for k, v in model.policy.state_dict().items()}


def _first_grads(model):
    """Gradients of the actor's parameters at the first optimizer step of ``learn``."""
    grads = {}
    actor = internals(model).actor_parameters(model)

    def pre(opt, args, kwargs):
        if not grads:
            for name, p in actor.items():
                if p.grad is not None:
                    grads[name] = p.grad.detach().clone()

    opt = internals(model).optimizer_of(model, next(iter(actor.values())))
    handle = opt.register_step_pre_hook(pre)
    return grads, handle


# --------------------------------------------------------------------------- kickstart


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_kickstart_coef_zero_equals_finetune_bitwise(algo, ppo_source, sac_source):
    src = _src(algo, ppo_source, sac_source)
    a = _target(src, algo, "finetune")
    a.learn(256)
    b = _target(src, algo, {"kickstart": {"coef": 0.0}})
    b.learn(256)
    sa, sb = _state(a), _state(b)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_kickstart_term_is_in_the_gradient_with_weight_coef(algo, ppo_source, sac_source):
    """The actor's first gradient is g0 + coef * gKL: linear in coef, and not g0."""
    src = _src(algo, ppo_source, sac_source)
    grads = {}
    for coef in (0.0, 1.0, 2.0):
        # roles=critic: the actor starts fresh, so KL(teacher || target) is not at its minimum
        model = _target(src, algo, {"kickstart": {"coef": coef, "schedule": "constant",
                                                  "roles": ["critic"]}})
        g, handle = _first_grads(model)
        model.learn(256)
        handle.remove()
        grads[coef] = g
    for name in grads[0.0]:
        d1 = grads[1.0][name] - grads[0.0][name]
        d2 = grads[2.0][name] - grads[0.0][name]
        torch.testing.assert_close(d2, 2 * d1, rtol=1e-3, atol=1e-6)
    assert any(not torch.allclose(grads[1.0][n], grads[0.0][n]) for n in grads[0.0])


def test_kickstart_lambda_follows_its_schedule(ppo_source):
    m = get_method({"kickstart": {"coef": 2.0, "schedule": "linear", "decay_steps": 1000}})
    model = _target(ppo_source, "ppo", m)
    for step, want in ((0, 2.0), (500, 1.0), (750, 0.5), (1000, 0.0), (5000, 0.0)):
        model.num_timesteps = step
        assert m.lam(model) == pytest.approx(want)
    const = get_method({"kickstart": {"coef": 0.3, "schedule": "constant"}})
    model.num_timesteps = 10_000
    assert const.lam(model) == pytest.approx(0.3)
    perf = get_method({"kickstart": {"coef": 1.0, "schedule": "performance"}})
    model.rlt.evaluations[:] = [{"step": 0, "mean_return": 400.0}]
    assert perf.lam(model) == pytest.approx(0.0)  # the target is the teacher at step 0
    model.rlt.evaluations.append({"step": 2000, "mean_return": 100.0})
    assert perf.lam(model) == pytest.approx(0.75)  # 1 - 100/400
    model.rlt.evaluations.append({"step": 4000, "mean_return": 500.0})
    assert perf.lam(model) == pytest.approx(0.0)  # clipped at 0 above the teacher
    floor = get_method({"kickstart": {"schedule": "performance", "return_floor": -1600.0,
                                      "teacher_return": -200.0}})
    model.rlt.evaluations[:] = [{"step": 0, "mean_return": -900.0}]
    assert floor.lam(model) == pytest.approx(0.5)  # (-900+1600)/(-200+1600) = 0.5


def test_kickstart_logs_lambda_and_loss(ppo_source, tmp_path):
    model = _target(ppo_source, "ppo", {"kickstart": {"roles": ["critic"]}})
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(512)
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    assert "kickstart/lambda" in header and "kickstart/loss" in header


# --------------------------------------------------------------------------- critic warm-up


def _actor_names(model):
    return set(internals(model).actor_parameters(model))


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_critic_warmup_holds_the_actor_then_releases_it(algo, ppo_source, sac_source):
    src = _src(algo, ppo_source, sac_source)
    model = _target(src, algo, {"critic_warmup": {"steps": 384}})
    src_tensors = rlt.load_checkpoint(src).tensors
    actor = _actor_names(model)
    before = _state(model)
    assert all(torch.equal(before[k], src_tensors[k]) for k in before)  # moved as finetune
    model.learn(256)  # all before step 384
    mid = _state(model)
    assert all(torch.equal(mid[k], before[k]) for k in actor)
    assert any(not torch.equal(mid[k], before[k]) for k in mid if k not in actor)
    model.learn(512, reset_num_timesteps=False)  # past step 384
    after = _state(model)
    assert any(not torch.equal(after[k], mid[k]) for k in actor)


# --------------------------------------------------------------------------- jsrl


class _Record(BaseCallback):
    """Records, per step, the observation the action was chosen on and the infos."""

    def __init__(self, obs_key=None):
        super().__init__()
        self.obs_key = obs_key
        self.rows = []

    def _on_step(self):
        # PPO: the rollout's obs_tensor; SAC: _last_obs, updated only after this call
        obs = self.locals[self.obs_key] if self.obs_key else self.model._last_obs
        obs = obs.cpu().numpy() if hasattr(obs, "cpu") else np.array(obs)
        self.rows.append((obs.copy(), [dict(i) for i in self.locals["infos"]]))
        return True


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_jsrl_first_h_actions_are_the_teachers(algo, ppo_source, sac_source):
    src = _src(algo, ppo_source, sac_source)
    h = 7
    model = _target(src, algo, {"jsrl": {"h_max": h, "stages": 1000, "deterministic": True}})
    wrapper = model.env
    assert isinstance(wrapper, GuideWrapper)
    rec = _Record("obs_tensor" if algo == "ppo" else None)
    model.learn(200, callback=rec)
    teacher = model.rlt.teacher
    episode_step = np.zeros(model.n_envs, dtype=int)
    checked = 0
    for obs, infos in rec.rows:
        for i, info in enumerate(infos):
            assert info.get("rlt_guided", False) == (episode_step[i] < h)
            if info.get("rlt_guided"):
                want, _ = teacher.predict(obs[i:i + 1], deterministic=True)
                np.testing.assert_allclose(info["rlt_action"], want[0], rtol=1e-5)
                checked += 1
            episode_step[i] = 0 if "episode" in info else episode_step[i] + 1
    assert checked >= h
    assert wrapper.guided_steps > 0


def test_jsrl_guided_steps_stay_out_of_ppo_policy_loss(ppo_source):
    """With the guide acting in every step, PPO's actor gets no gradient; the critic learns."""
    model = _target(ppo_source, "ppo", {"jsrl": {"h_max": 10_000, "stages": 1000}})
    actor = _actor_names(model)
    before = _state(model)
    model.learn(512)
    after = _state(model)
    assert model.rollout_buffer.guided.all()
    assert all(torch.equal(after[k], before[k]) for k in actor)
    assert any(not torch.equal(after[k], before[k]) for k in after if k not in actor)
    # and without the guide the same run moves the actor
    free = _target(ppo_source, "ppo", {"jsrl": {"h_max": 1, "stages": 1}})
    free.rlt.callbacks[0].schedule.stage = 1  # h = 0 from the start
    b = _state(free)
    free.learn(512)
    assert any(not torch.equal(_state(free)[k], b[k]) for k in actor)


def test_jsrl_h_shrinks_when_the_target_keeps_up(ppo_source):
    method = get_method({"jsrl": {"h_max": 100, "stages": 4, "window": 2, "tolerance": 0.9}})
    model = _target(ppo_source, "ppo", method)
    horizon = model.rlt.callbacks[0].schedule
    assert horizon.h == 100
    for ret in (50.0, 50.0):  # first window: best = 50, avg 50 >= 45 -> next stage
        horizon.episode_done(ret)
    assert horizon.h == 75
    for ret in (10.0, 10.0):  # 10 < 0.9 * 50: stays
        horizon.episode_done(ret)
    assert horizon.h == 75
    for ret in (48.0, 48.0):
        horizon.episode_done(ret)
    assert horizon.h == 50


def test_sac_replay_buffer_stores_the_guides_executed_actions(sac_source):
    model = _target(sac_source, "sac", {"jsrl": {"h_max": 5, "stages": 1000}},
                    learning_starts=10_000)
    rec = _Record()
    model.learn(40, callback=rec)
    stored = model.replay_buffer.actions[:40, 0]
    for t, (_obs, infos) in enumerate(rec.rows):
        if infos[0].get("rlt_guided"):
            want = model.policy.scale_action(np.asarray(infos[0]["rlt_action"]))
            np.testing.assert_allclose(stored[t], want, rtol=1e-6)


# --------------------------------------------------------------------------- replay warm start


def test_replay_warmstart_fills_the_buffer_with_exactly_steps_teacher_transitions(sac_source):
    steps = 100
    model = _target(sac_source, "sac", {"replay_warmstart": {"steps": steps}})
    assert model.learning_starts >= steps
    before = _state(model)
    rec = _Record()
    model.learn(steps, callback=rec)
    assert model.replay_buffer.size() == steps
    assert all(r[1][0].get("rlt_guided") for r in rec.rows)
    assert all(torch.equal(_state(model)[k], before[k]) for k in before)  # no update yet
    model.learn(50, reset_num_timesteps=False, callback=rec)
    assert not any(r[1][0].get("rlt_guided") for r in rec.rows[steps:])  # the target acts


def test_replay_warmstart_offline_steps_run_once_before_online(sac_source):
    model = _target(sac_source, "sac", {"replay_warmstart": {"steps": 64, "offline_steps": 7}})
    model.learn(64)
    assert model._n_updates == 0
    sizes = []
    original = model.train
    model.train = lambda gradient_steps, batch_size=64: (
        sizes.append((gradient_steps, model.replay_buffer.size())),
        original(gradient_steps, batch_size))[1]
    model.learn(1, reset_num_timesteps=False)
    assert sizes == [(7, 64), (1, 65)]  # 7 offline steps on the 64 warm transitions, then online
    model.learn(2, reset_num_timesteps=False)
    assert model._n_updates == 7 + 3


def test_replay_warmstart_is_sac_only(ppo_source):
    with pytest.raises(TransferError, match="works with algo \\['sac'\\]"):
        _target(ppo_source, "ppo", "replay_warmstart")


# --------------------------------------------------------------------------- accounting


@pytest.mark.parametrize("algo,method", [("ppo", "jsrl"), ("sac", "jsrl"),
                                         ("sac", {"replay_warmstart": {"steps": 100}})])
def test_method_env_steps_are_on_the_curve_and_evaluation_is_the_target_alone(
        algo, method, ppo_source, sac_source):
    src = _src(algo, ppo_source, sac_source)
    model = _target(src, algo, method)
    budget = 384
    rows = rlt.learn_with_eval(model, budget, eval_every=128, eval_episodes=1)
    assert model.env.guided_steps > 0
    assert model.num_timesteps == budget  # the guide's steps are inside the budget
    assert rows[-1]["step"] == budget
    eval_env = make_eval_env(model)
    assert not isinstance(eval_env, GuideWrapper)


# --------------------------------------------------------------------------- saving


@pytest.mark.parametrize("algo,method", [("ppo", "kickstart"), ("sac", "kickstart"),
                                         ("ppo", "jsrl")])
def test_saved_target_loads_without_the_teacher(algo, method, ppo_source, sac_source,
                                                tmp_path):
    src = _src(algo, ppo_source, sac_source)
    model = _target(src, algo, method)
    model.learn(256)
    path = rlt.save_agent(model, tmp_path / "ckpt")
    ckpt = rlt.load_checkpoint(path)
    assert set(ckpt.tensors) == set(model.policy.state_dict())
    assert ckpt.card["transfer"]["spec"] == get_method(method).spec()
    assert ckpt.card["transfer"]["label"] == get_method(method).label
    loaded = rlt.load_agent(path)
    s = loaded.policy.state_dict()
    assert all(torch.equal(s[k], v) for k, v in model.policy.state_dict().items())
    model.save(tmp_path / "sb3.zip")  # SB3's own format: the teacher is not pickled
    assert type(model).load(tmp_path / "sb3.zip").rlt.teacher is None
