"""Shared fixtures: one torch thread, a seeded numpy Generator, headless MuJoCo."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def torch_single_thread():
    """Every test runs with one torch thread so runs are fast and reproducible on CI."""
    torch.set_num_threads(1)
    yield


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded numpy Generator: tests never draw from global state."""
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def ppo_source(tmp_path_factory):
    """A tiny PPO CartPole-v1 source checkpoint (256 steps), shared by the tests."""
    from helpers import PPO_TINY

    import rltransfer as rlt

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("src") / "ppo"
    return rlt.pretrain("CartPole-v1", algo="ppo", steps=256, seed=0, out=out,
                        overrides=PPO_TINY, eval_episodes=2, progress_bar=False)


@pytest.fixture(scope="session")
def sac_source(tmp_path_factory):
    """A tiny SAC Pendulum-v1 source checkpoint (128 steps), shared by the tests."""
    from helpers import SAC_TINY

    import rltransfer as rlt

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("src") / "sac"
    return rlt.pretrain("Pendulum-v1", algo="sac", steps=128, seed=0, out=out,
                        overrides=SAC_TINY, eval_episodes=1, progress_bar=False)
