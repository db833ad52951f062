"""Every built-in family member passes check_env, and every knob really changes the dynamics."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rltransfer.envs as rte

FAMILIES = [f.name for f in rte.families()]
KNOBS = [(f.name, k) for f in rte.families() for k in sorted(f.knobs)]


def changed_value(knob: rte.Knob):
    """A valid value clearly different from the default."""
    if knob.choices is not None:
        return next(c for c in reversed(knob.choices) if c != knob.default)
    lo, hi = knob.range
    if isinstance(knob.default, int):
        return knob.default + 1 if knob.default < hi else knob.default - 1
    return (
        knob.default + 0.5 * (hi - knob.default) if knob.default < hi else (lo + knob.default) / 2
    )


def non_default(fam: rte.EnvFamily) -> dict:
    return {name: changed_value(k) for name, k in fam.knobs.items()}


def rollout(env, steps: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    out = [np.asarray(obs, dtype=np.float64).ravel()]
    for _ in range(steps):
        if hasattr(env.action_space, "n"):
            action = int(rng.integers(env.action_space.n))
        else:
            low, high = env.action_space.low, env.action_space.high
            action = rng.uniform(low, high).astype(env.action_space.dtype)
        obs, reward, terminated, truncated, _ = env.step(action)
        out.append(np.append(np.asarray(obs, dtype=np.float64).ravel(), reward))
        if terminated or truncated:
            break
    return out


def _check(env) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env, skip_render_check=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_check_env_default_and_changed(family):
    fam = rte.get_family(family)
    _check(rte.make(family))
    _check(rte.make(family, non_default(fam)))


@pytest.mark.parametrize(("family", "knob"), KNOBS, ids=[f"{f}-{k}" for f, k in KNOBS])
def test_knob_changes_dynamics(family, knob):
    fam = rte.get_family(family)
    value = changed_value(fam.knobs[knob])
    base = rollout(rte.make(family), steps=40)
    other = rollout(rte.make(family, {knob: value}), steps=40)
    n = min(len(base), len(other))
    diverged = len(base) != len(other) or any(
        a.shape != b.shape or not np.allclose(a, b, rtol=0, atol=1e-9)
        for a, b in zip(base[:n], other[:n], strict=True)
    )
    assert diverged, f"{family}: knob {knob}={value} left the trajectory unchanged"


def test_same_knobs_same_trajectory():
    a = rollout(rte.make("hopper", {"torso_mass": 2.0, "leg_length": 1.2}), steps=20)
    b = rollout(rte.make("hopper", {"torso_mass": 2.0, "leg_length": 1.2}), steps=20)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_cartpole_recomputes_derived():
    env = rte.get_family("cartpole").make(length=1.0, masspole=0.5)
    u = env.unwrapped
    assert u.polemass_length == pytest.approx(0.5)
    assert u.total_mass == pytest.approx(1.5)


def test_mujoco_scales_are_relative_to_xml():
    base = rte.make("hopper").unwrapped.model
    heavy = rte.make("hopper", {"torso_mass": 2.0}).unwrapped.model
    assert heavy.body_mass[1] == pytest.approx(2 * base.body_mass[1])
    assert heavy.body_mass[2] == pytest.approx(base.body_mass[2])
    slippery = rte.make("hopper", {"friction": 0.5}).unwrapped.model
    np.testing.assert_allclose(slippery.geom_friction[:, 0], 0.5 * base.geom_friction[:, 0])


def test_xml_length_edit_scales_the_limb():
    short = rte.make("reacher").unwrapped.model
    long = rte.make("reacher", {"link0_length": 1.5}).unwrapped.model
    b1 = 2  # body1's position in body0
    assert long.body_pos[b1][0] == pytest.approx(1.5 * short.body_pos[b1][0])


def test_ant_disabled_leg_keeps_spaces():
    full, lame = rte.make("ant"), rte.make("ant", {"disabled_leg": 2})
    assert full.observation_space == lame.observation_space
    assert full.action_space == lame.action_space
    assert (lame.unwrapped.model.actuator_gear[:, 0] == 0).sum() == 2


def test_gymnasium_namespace_ids():
    import gymnasium as gym

    env = gym.make("rltransfer/CartPole-v0", length=1.0)
    assert env.unwrapped.length == 1.0
    env = gym.make("rltransfer/Pendulum-v0", pixels={"size": 32})
    assert env.observation_space.shape == (32, 32, 3)
    assert rte.make("rltransfer/Hopper-v0", {"torso_mass": 2.0}) is not None
