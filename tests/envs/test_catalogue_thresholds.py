"""Every MuJoCo pair's threshold follows the one rule written in envs/mujoco.yaml."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import pytest

import rltransfer.envs as rte


def _mujoco_pairs() -> list[str]:
    """The pairs whose target is a family of the shipped envs/mujoco.yaml."""
    return [p.name for p in rte.pairs()
            if Path(rte.get_family(p.target.env).source).name == "mujoco.yaml"]


def _rule(pair: rte.Pair) -> float:
    fam = rte.get_family(pair.target.env)
    pub = fam.published.get("ppo")
    if pub is not None:
        return float(round(0.5 * pub.score))
    threshold = gym.spec(fam.gym_id).reward_threshold
    assert threshold is not None, f"{pair.name}: no published score and no reward_threshold"
    return float(threshold)


@pytest.mark.parametrize("name", _mujoco_pairs())
def test_threshold_follows_the_rule(name):
    pair = rte.get_pair(name)
    assert pair.threshold == _rule(pair)


def test_the_rule_covers_the_locomotion_pairs():
    names = _mujoco_pairs()
    assert {"hopper/heavy-torso", "walker2d/long-legs", "halfcheetah/long-limbs",
            "hopper/to-walker2d", "reacher/long-links", "invertedpendulum/to-double"} <= set(names)
    # half the Zoo score of the walkers is above what standing still earns (~1 per step)
    assert rte.get_pair("hopper/heavy-torso").threshold > 1000
    assert rte.get_pair("walker2d/long-legs").threshold > 1000


def test_published_scores_are_the_zoo_benchmark():
    hopper = rte.get_family("hopper").published
    assert hopper["ppo"].score == pytest.approx(2410.4)
    assert hopper["ppo"].steps == 1_000_000 and hopper["ppo"].env == "Hopper-v3"
    assert rte.get_family("halfcheetah").published["sac"].score == pytest.approx(9535.5)
