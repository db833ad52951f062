"""A state teacher for a pixel student (issue #11.3 and its tests in #11.4).

The student (PPO on CartPole's 64x64 pixel view, long heavy pole) learns from a source
policy that saw CartPole's state: the teacher must be fed the state, never the frames, and
the states the rollout buffer keeps must be those of the frames beside them.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from helpers import PPO_TINY

import rltransfer as rlt
import rltransfer.envs as rte
from rltransfer.envs.pixels import draw_cartpole, to_gray
from rltransfer.methods import TransferError
from rltransfer.methods.teacher import StateTeacher, StateView

PAIR = rte.get_pair("cartpole-pixels/long-heavy-pole")
TARGET = PAIR.target
TINY_CNN = {**PPO_TINY, "n_epochs": 1,
            "policy_kwargs": {"net_arch": [16], "features_extractor_kwargs": {"features_dim": 16}}}


def _student(source, method, **options):
    return rlt.transfer(source, TARGET.env, knobs=dict(TARGET.knobs), pixels=TARGET.pixels,
                        method=method, seed=2, overrides=TINY_CNN, **options)


def _spy(teacher: StateTeacher) -> list[tuple[int, ...]]:
    """Record the shape of every input the teacher's policy is asked about."""
    seen: list[tuple[int, ...]] = []
    policy = teacher.policy
    original = policy.get_distribution

    def get_distribution(self, obs):
        seen.append(tuple(obs.shape))
        return original(obs)

    policy.get_distribution = types.MethodType(get_distribution, policy)
    return seen


@pytest.mark.parametrize("method", ["kickstart", "jsrl"])
def test_teacher_is_fed_the_state_never_the_pixels(ppo_source, method):
    options = {"roles": [], "schedule": "constant"} if method == "kickstart" else {}
    model = _student(ppo_source, method, **options)
    teacher = model.rlt.teacher
    assert isinstance(teacher, StateTeacher)
    seen = _spy(teacher)
    model.learn(256)
    assert seen, "the teacher was never asked"
    assert all(len(s) == 2 and s[-1] == 4 for s in seen), sorted(set(seen))
    assert model.observation_space.shape == (4, 64, 64)  # the student sees frames


def test_states_are_those_of_the_frames_beside_them(ppo_source):
    model = _student(ppo_source, "kickstart", roles=[])
    model.learn(128)
    view = model.env
    assert isinstance(view, StateView)
    np.testing.assert_allclose(view.states, np.array(view.get_attr("state")), rtol=0,
                               atol=1e-6)
    buffer = model.rollout_buffer  # trained on: observations flattened env-major, as SB3 does
    frames = buffer.observations.reshape(buffer.n_envs, buffer.buffer_size, 4, 64, 64)
    env = rte.make(TARGET.env, dict(TARGET.knobs)).unwrapped
    env.reset(seed=0)
    for t in (0, 17, 63):
        for e in range(buffer.n_envs):
            env.state = buffer.teacher_obs[t, e].astype(np.float64)
            frame = to_gray(draw_cartpole(env, 64, 64))[..., 0]
            np.testing.assert_array_equal(frames[e, t, -1], frame)


def test_student_is_evaluated_alone_from_pixels(ppo_source):
    model = _student(ppo_source, "kickstart", roles=[])
    assert model.rltransfer_log.moved == []  # nothing copied: the student starts fresh
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    from rltransfer.agent import make_eval_env

    venv = make_eval_env(model)
    assert venv.observation_space.shape == (4, 64, 64)
    assert not isinstance(venv, StateView)
    for key, value in model.policy.state_dict().items():
        assert torch.equal(before[key], value)


def test_state_teacher_refuses_moving_weights_and_sac(ppo_source, sac_source):
    with pytest.raises(TransferError, match="roles: \\[\\]"):
        _student(ppo_source, "kickstart")
    with pytest.raises(TransferError, match="PPO only"):
        rlt.transfer(sac_source, "pendulum", pixels={"size": 64}, method="kickstart",
                     roles=[], seed=0, algo="sac",
                     overrides={"learning_starts": 64, "buffer_size": 500,
                                "policy_kwargs": {"net_arch": [16]}})
