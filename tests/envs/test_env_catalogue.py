"""The catalogue: pairs, descriptions, factories, listing and error messages."""

from __future__ import annotations

import json
import multiprocessing
import pickle

import pytest

import rltransfer.envs as rte
from rltransfer.envs import EnvError

REQUIRED_PAIRS = [
    "cartpole/long-heavy-pole",
    "pendulum/heavy",
    "hopper/heavy-torso",
    "hopper/low-friction",
    "halfcheetah/long-limbs",
    "reacher/long-links",
    "ant/disabled-leg",
    "invertedpendulum/to-double",
    "hopper/to-walker2d",
    "walker2d/to-hopper",
    "minigrid/doorkey-5-to-8",
    "cartpole-pixels/long-heavy-pole",
]


def test_required_pairs_exist():
    names = [p.name for p in rte.pairs()]
    assert len(names) >= 10
    for name in REQUIRED_PAIRS:
        assert name in names


@pytest.mark.parametrize("name", [p.name for p in rte.pairs()])
def test_pairs_build(name):
    pair = rte.get_pair(name)
    assert pair.budget > 0
    src, tgt = pair.source.make(), pair.target.make()
    assert pair.source.describe() != pair.target.describe()
    if pair.adapter is None:
        assert src.observation_space == tgt.observation_space
        assert src.action_space == tgt.action_space
    else:  # spaces differ; the adapter resolves against them
        assert src.observation_space.shape != tgt.observation_space.shape
        resolved = pair.resolve_adapter()
        assert len(resolved.obs) == tgt.observation_space.shape[0]


def test_pixel_pair_members_are_pixels():
    pair = rte.get_pair("cartpole-pixels/long-heavy-pole")
    assert pair.target.make().observation_space.shape == (64, 64, 4)


def test_describe_is_canonical_and_json():
    a = rte.describe("cartpole", {"masspole": 0.5, "length": 1.0}, pixels={"size": 64})
    b = rte.describe(
        "rltransfer/CartPole-v0", {"length": 1, "masspole": 0.5}, pixels=rte.PixelSpec()
    )
    assert a == b
    assert json.dumps(a, sort_keys=False) == json.dumps(b, sort_keys=False)
    assert a["family"] == "cartpole" and a["gym_id"] == "CartPole-v1"
    assert list(a["knobs"]) == sorted(a["knobs"]) and a["knobs"]["gravity"] == 9.8
    plain = rte.describe("CartPole-v1")
    assert plain == {
        "name": "CartPole-v1",
        "family": None,
        "gym_id": "CartPole-v1",
        "knobs": {},
        "pixels": None,
    }


def test_plain_gym_id_takes_ctor_knobs():
    env = rte.make("Pendulum-v1", {"g": 5.0})
    assert env.unwrapped.g == 5.0


def _build(fn):
    env = fn()
    return env.observation_space.shape, float(env.unwrapped.length)


def test_env_fn_pickles_and_works_in_spawn_worker():
    fn = rte.env_fn("cartpole", {"length": 1.0}, pixels={"size": 32})
    fn2 = pickle.loads(pickle.dumps(fn))
    assert fn2().observation_space.shape == (32, 32, 3)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        assert pool.apply(_build, (fn,)) == ((32, 32, 3), 1.0)


def test_env_fn_with_sb3_make_vec_env():
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env(rte.env_fn("hopper", {"torso_mass": 2.0}), n_envs=2, seed=0)
    obs = venv.reset()
    assert obs.shape == (2, 11)
    venv.close()


def test_format_catalogue_lists_families_knobs_pairs():
    text = rte.format_catalogue()
    for piece in ("cartpole", "masspole", "[0.02, 1]", "hopper/low-friction", "disabled_leg"):
        assert piece in text


def test_parse_knob_args():
    assert rte.parse_knob_args(["length=1.5", "size=8", "flag=true", "name=abc"]) == {
        "length": 1.5,
        "size": 8,
        "flag": True,
        "name": "abc",
    }
    assert rte.parse_knob_args([]) == {}
    with pytest.raises(EnvError, match="name=value"):
        rte.parse_knob_args(["length"])
    with pytest.raises(EnvError, match="twice"):
        rte.parse_knob_args(["a=1", "a=2"])
    with pytest.raises(EnvError, match="single"):
        rte.parse_knob_args(["a=[1, 2]"])
    assert rte.parse_knob_args(["x=__import__('os')"]) == {"x": "__import__('os')"}


# ---------------------------------------------------------------------- error messages


def test_unknown_family_lists_closest():
    with pytest.raises(EnvError, match="'cartpole'"):
        rte.make("cartpol")
    with pytest.raises(EnvError, match="hopper"):
        rte.get_family("hoper")


def test_unknown_knob_lists_family_knobs():
    with pytest.raises(EnvError) as err:
        rte.make("cartpole", {"lenght": 1.0})
    msg = str(err.value)
    assert "'length'" in msg and "masspole" in msg and "force_mag" in msg


def test_out_of_range_gives_range():
    with pytest.raises(EnvError, match=r"out of range \[0.2, 1.5\]"):
        rte.make("cartpole", {"length": 3.0})
    with pytest.raises(EnvError, match="one of 0, 1, 2, 3, 4"):
        rte.make("ant", {"disabled_leg": 7})
    with pytest.raises(EnvError, match="integer"):
        rte.make("minigrid-doorkey", {"size": 6.5})
    with pytest.raises(EnvError, match="number"):
        rte.make("cartpole", {"length": "long"})


def test_unknown_pair_lists_closest():
    with pytest.raises(EnvError, match="pendulum/heavy"):
        rte.get_pair("pendulum/heavier")
