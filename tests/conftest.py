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
