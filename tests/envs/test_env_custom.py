"""A user's own env: the example in envs/examples, Python registration, and bad entry points."""

from __future__ import annotations

import multiprocessing
import sys
import textwrap
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rltransfer.envs as rte
from rltransfer.envs import EnvError

EXAMPLES = rte.builtin_dir() / "examples"


@pytest.fixture
def example_catalogue(monkeypatch):
    """The catalogue with envs/examples added through RLTRANSFER_ENVS; restored afterwards."""
    monkeypatch.setenv("RLTRANSFER_ENVS", str(EXAMPLES))
    rte.reload()
    yield
    monkeypatch.delenv("RLTRANSFER_ENVS")
    rte.reload()


def test_example_env_through_env_var(example_catalogue):
    fam = rte.get_family("point-mass")
    assert fam.entry_point.endswith("point_mass.py:PointMassEnv")
    env = rte.make("point-mass", {"mass": 3.0, "drag": 0.5})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env.unwrapped)
    assert env.unwrapped.mass == 3.0 and env.unwrapped.drag == 0.5
    pair = rte.get_pair("point-mass/heavy")
    assert pair.target.describe()["knobs"] == {"drag": 0.1, "mass": 3.0}
    assert "point-mass" in rte.format_catalogue()
    env = gym.make("rltransfer/PointMass-v0", mass=2.0)
    assert env.unwrapped.mass == 2.0
    # the time limit declared in the YAML applies
    env.reset(seed=0)
    steps = 0
    done = False
    while not done:
        _, _, term, trunc, _ = env.step(np.zeros(2, dtype=np.float32))
        steps, done = steps + 1, term or trunc
    assert steps == 200


@pytest.mark.parametrize("knob", ["mass", "drag"])
def test_example_knobs_change_dynamics(example_catalogue, knob):
    def run(knobs):
        env = rte.make("point-mass", knobs)
        env.reset(seed=0)
        return [env.step(np.ones(2, dtype=np.float32))[0] for _ in range(10)]

    base, other = run({}), run({knob: 2.0})
    assert not np.allclose(base, other)


def test_load_file_and_python_registration(tmp_path, monkeypatch):
    fams, pairs = rte.load_file(EXAMPLES / "point_mass.yaml")
    assert [f.name for f in fams] == ["point-mass"] and [p.name for p in pairs] == [
        "point-mass/heavy"
    ]
    monkeypatch.chdir(EXAMPLES)
    fam = rte.register_family(
        "my-point",
        entry_point="point_mass.py:PointMassEnv",  # relative to the current directory
        knobs={"mass": {"kind": "ctor", "default": 1.0, "range": [0.5, 5.0]}},
        max_episode_steps=50,
    )
    monkeypatch.chdir(tmp_path)  # the path was made absolute when registered
    assert rte.make("my-point", {"mass": 2.0}).unwrapped.mass == 2.0
    assert rte.describe("my-point")["gym_id"] == fam.entry_point
    with pytest.raises(EnvError, match=r"\[0.5, 5\]"):
        rte.make("my-point", {"mass": 9.0})


def _obs_shape(fn):
    return fn().observation_space.shape


def test_python_family_reaches_spawn_worker(monkeypatch):
    monkeypatch.chdir(EXAMPLES)
    rte.register_family(
        "spawned-point",
        entry_point="point_mass.py:PointMassEnv",
        knobs={"mass": {"kind": "ctor", "default": 1.0, "range": [0.5, 5.0]}},
    )
    fn = rte.env_fn("spawned-point", {"mass": 2.0})
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(_obs_shape, (fn,)) == (4,)


def test_python_registration_with_a_callable_knob():
    def wind(env, value):
        return gym.wrappers.TransformReward(env, lambda r: r - value)

    rte.register_family(
        "windy-pendulum",
        gym_id="Pendulum-v1",
        knobs={"wind": {"kind": "callable", "function": wind, "default": 0.0, "range": [0.0, 1.0]}},
    )
    env = rte.make("windy-pendulum", {"wind": 1.0})
    env.reset(seed=0)
    r1 = env.step(np.zeros(1, dtype=np.float32))[1]
    env = rte.make("windy-pendulum")
    env.reset(seed=0)
    assert r1 == pytest.approx(env.step(np.zeros(1, dtype=np.float32))[1] - 1.0)


# ---------------------------------------------------------------------- bad entry points


def test_entry_point_module_cannot_be_imported():
    with pytest.raises(EnvError, match="cannot import module 'no_such_pkg.envs'"):
        rte.register_family("broken", entry_point="no_such_pkg.envs:Env")


def test_entry_point_file_missing_or_without_class(tmp_path):
    with pytest.raises(EnvError, match="does not exist"):
        rte.register_family("broken", entry_point=str(tmp_path / "nope.py") + ":Env")
    f = tmp_path / "mod.py"
    f.write_text("class NotAnEnv:\n    pass\n")
    with pytest.raises(EnvError, match="has no 'Missing'"):
        rte.register_family("broken", entry_point=f"{f}:Missing")
    with pytest.raises(EnvError, match="not a gymnasium.Env subclass"):
        rte.register_family("broken", entry_point=f"{f}:NotAnEnv")
    with pytest.raises(EnvError, match="not 'package.module:Class'"):
        rte.register_family("broken", entry_point="just_a_name")
    with pytest.raises(EnvError, match="exactly one of"):
        rte.register_family("broken")


def test_factory_that_returns_no_env(tmp_path):
    f = tmp_path / "factory.py"
    f.write_text("def make(**kw):\n    return 42\n")
    rte.register_family("not-an-env", entry_point=f"{f}:make")
    with pytest.raises(EnvError, match="int, which is not a gymnasium.Env"):
        rte.make("not-an-env")


def _write(tmp_path, text):
    f = tmp_path / "bad.yaml"
    f.write_text(textwrap.dedent(text))
    return f


def test_yaml_errors_name_file_field_value(tmp_path):
    f = _write(
        tmp_path,
        """
        families:
          cp2:
            gym_id: CartPole-v1
            knobs:
              length: {kind: attr, default: 0.5, rnage: [0.1, 1.0]}
    """,
    )
    with pytest.raises(EnvError) as err:
        rte.load_file(f)
    assert str(f) in str(err.value) and "rnage" in str(err.value)
    f = _write(
        tmp_path,
        """
        families:
          cp3:
            gym_id: CartPole-v1
            knobs:
              length: {kind: spring, default: 0.5}
    """,
    )
    with pytest.raises(EnvError, match="kind"):
        rte.load_file(f)
    f = _write(
        tmp_path,
        """
        pairs:
          cartpole/oops:
            source: {env: cartpole}
            target: {env: cartpole, knobs: {length: 9.0}}
            threshold: 475
            budget: 1000
    """,
    )
    with pytest.raises(EnvError, match=r"cartpole/oops.*target.*out of range"):
        rte.load_file(f)
    f = _write(tmp_path, "pairs:\n  x: {source: cartpole, target: cartpole, threshold: 1}\n")
    with pytest.raises(EnvError, match="'budget' is missing"):
        rte.load_file(f)
    f = _write(tmp_path, "famillies: {}\n")
    with pytest.raises(EnvError, match="did you mean 'families'"):
        rte.load_file(f)


def test_broken_env_var_file_is_reported(tmp_path, monkeypatch):
    f = _write(tmp_path, "families: [1, 2]\n")
    monkeypatch.setenv("RLTRANSFER_ENVS", str(f))
    with pytest.raises(EnvError, match="bad.yaml"):
        rte.reload()
    monkeypatch.delenv("RLTRANSFER_ENVS")
    rte.reload()
    assert rte.get_family("cartpole").name == "cartpole"


# ---------------------------------------------------------------------- checks on running code

CHECKED_ENVS = '''
import gymnasium as gym
import numpy as np

BUILT = []


class Env(gym.Env):
    def __init__(self, bad_at=0):
        BUILT.append(self)
        self.bad_at = bad_at
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        reward = float("nan") if self.bad_at and self.t >= self.bad_at else 0.0
        return np.zeros(2, np.float32), reward, False, self.t >= 10, {}
'''


def test_custom_env_calls_are_checked_and_probed_once(tmp_path):
    f = tmp_path / "checked_envs.py"
    f.write_text(CHECKED_ENVS)
    rte.register_family("checked-env", entry_point=f"{f}:Env",
                        knobs={"bad_at": {"kind": "ctor", "default": 0, "range": [0, 100]}})
    env = rte.make("checked-env", {"bad_at": 3})
    env.reset(seed=0)
    env.step(0), env.step(1)
    with pytest.raises(rte.EnvFault, match=r"env 'checked-env' \(.*checked_envs\.py:Env\): "
                                           r"step 3 of episode 1 returned reward nan"):
        env.step(0)
    assert isinstance(rte.EnvFault("x"), RuntimeError)  # a run failure, not bad input
    with pytest.raises(rte.EnvFault, match="step 1 of episode 1 returned reward nan"):
        rte.env_fn("checked-env", {"bad_at": 1})  # the probe: one reset, one step
    from rltransfer.envs.family import load_entry_point

    built = sys.modules[load_entry_point(f"{f}:Env").__module__].BUILT
    n = len(built)
    fn = rte.env_fn("checked-env", {"bad_at": 50})
    rte.env_fn("checked-env", {"bad_at": 50})
    assert len(built) == n + 1  # probed once per process and knob values
    assert fn().unwrapped.bad_at == 50
