"""Pixel views give the declared shape and dtype, and frames follow the state."""

from __future__ import annotations

import numpy as np
import pytest

import rltransfer.envs as rte
from rltransfer.envs import EnvError, PixelSpec


@pytest.mark.parametrize("family", ["cartpole", "pendulum"])
@pytest.mark.parametrize(
    ("pixels", "shape"),
    [
        ({"size": 64}, (64, 64, 3)),
        ({"size": 64, "grayscale": True, "frame_stack": 4}, (64, 64, 4)),
        ({"size": [48, 80], "frame_stack": 2}, (48, 80, 6)),
    ],
)
def test_numpy_pixel_views(family, pixels, shape):
    env = rte.make(family, pixels=pixels)
    assert env.observation_space.shape == shape
    assert env.observation_space.dtype == np.uint8
    obs, _ = env.reset(seed=0)
    assert obs.shape == shape and obs.dtype == np.uint8
    assert env.observation_space.contains(obs)
    for _ in range(5):
        obs, *_ = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)
    assert obs.min() < 255  # something is drawn


def test_frames_follow_state_and_knobs():
    short = rte.make("cartpole", pixels={"size": 64})
    long = rte.make("cartpole", {"length": 1.0}, pixels={"size": 64})
    a, _ = short.reset(seed=0)
    b, _ = long.reset(seed=0)
    assert (b != 255).sum() > (a != 255).sum()  # a longer pole covers more pixels
    for _ in range(6):
        c, *_ = short.step(1)
    assert not np.array_equal(a, c)


def test_frame_stack_is_channels_last_oldest_first():
    env = rte.make("pendulum", pixels={"size": 32, "grayscale": True, "frame_stack": 3})
    obs, _ = env.reset(seed=0)
    assert np.array_equal(obs[..., 0], obs[..., 2])  # reset pads with the first frame
    obs2, *_ = env.step(np.array([2.0], dtype=np.float32))
    assert np.array_equal(obs2[..., 1], obs[..., 2])


def test_pixel_view_passes_check_env():
    import warnings

    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(
            rte.make("cartpole", pixels={"size": 64, "frame_stack": 2}), skip_render_check=True
        )


def test_stock_renderer_classic_and_plain_gym_id():
    env = rte.make("acrobot", {"link_length_2": 1.5}, pixels={"size": 40, "grayscale": True})
    obs, _ = env.reset(seed=0)
    assert obs.shape == (40, 40, 1) and obs.dtype == np.uint8
    env = rte.make("MountainCarContinuous-v0", pixels={"size": 32})
    obs, _ = env.reset(seed=0)
    assert obs.shape == (32, 32, 3)


def test_mujoco_pixel_view():
    env = rte.make("invertedpendulum", {"pole_length": 1.5},
                   pixels={"size": 32, "renderer": "render"})  # MuJoCo's renderer
    obs, _ = env.reset(seed=0)
    assert obs.shape == (32, 32, 3) and obs.dtype == np.uint8
    obs, *_ = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)


def test_minigrid_is_rgb_without_mission():
    for size in (5, 8):
        env = rte.make("minigrid-doorkey", {"size": size})
        obs, _ = env.reset(seed=0)
        assert isinstance(obs, np.ndarray) and obs.shape == (56, 56, 3) and obs.dtype == np.uint8


def test_pixel_spec_validation():
    assert PixelSpec.parse(None) is None
    assert PixelSpec.parse(True) == PixelSpec()
    assert PixelSpec.parse({"size": 32}).to_dict()["height"] == 32
    with pytest.raises(EnvError, match="grayscale"):
        PixelSpec.parse({"greyscale": True})
    with pytest.raises(EnvError, match="frame_stack"):
        PixelSpec.parse({"frame_stack": 0})
    with pytest.raises(EnvError, match="numpy drawer"):
        rte.make("acrobot", pixels={"renderer": "numpy"})


def test_a_mujoco_render_before_the_first_optimizer_does_not_crash(tmp_path):
    """torch imports triton at its first optimizer; after MuJoCo's EGL context that import
    segfaulted. The pixel view loads triton before the first render (separate process:
    the crash kills it)."""
    import subprocess
    import sys

    code = (
        "import os; os.environ.setdefault('MUJOCO_GL', 'egl')\n"
        "import torch, rltransfer.envs as rte\n"
        "env = rte.make('hopper', pixels={'size': 32, 'renderer': 'render'})\n"
        "env.reset(seed=0); env.step(env.action_space.sample())\n"
        "torch.optim.Adam([torch.zeros(1, requires_grad=True)])\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
