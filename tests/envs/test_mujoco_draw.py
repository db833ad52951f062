"""The numpy drawings of the planar MuJoCo robots match MuJoCo's own render of the same state,
follow the knobs, and make pixel views of the declared shape without OpenGL."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import rltransfer.envs as rte
from rltransfer.envs import EnvError
from rltransfer.envs import mujoco_draw as md
from rltransfer.envs.mujoco_camera import (
    Camera,
    camera_pose,
)
from rltransfer.envs.pixels import ChannelFrameStack, PixelObservation

ROBOTS = ["hopper", "walker2d", "halfcheetah", "reacher", "invertedpendulum",
          "inverteddoublependulum"]
SIZE = 64


@pytest.mark.parametrize("family", ROBOTS)
def test_numpy_silhouettes_match_mujoco(family):
    """At 2 reset states and 3 random joint configurations, the pixels showing a geom other
    than the floor (numpy labels vs MuJoCo's segmentation render, same camera and size)
    overlap with IoU >= 0.8, over every such geom and over the moving bodies alone."""
    camera = getattr(md, f"draw_{family}").camera
    env = rte.make(family, render_mode="rgb_array", width=SIZE, height=SIZE)
    try:
        ious = []
        for c in md.compare_poses(env, camera, SIZE, poses=3):
            assert np.isin(c.theirs, c.moving).sum() >= 15  # the robot is in view
            ious.append(c.iou)
        # the colour frame paints exactly the labelled pixels
        frame = md.draw_planar(env.unwrapped, SIZE, SIZE, camera)
        assert np.array_equal((frame != md.BACKGROUND).any(-1), c.ours >= 0)
    finally:
        env.close()
    assert min(min(pair) for pair in ious) >= 0.8, ious


@pytest.mark.parametrize(("family", "knobs", "measure"), [
    ("hopper", {"leg_length": 1.3}, "box"),
    ("hopper", {"leg_radius": 2.0}, "pixels"),
    ("walker2d", {"leg_length": 1.3}, "box"),
    ("halfcheetah", {"limb_length": 1.5}, "box"),
    ("reacher", {"link0_length": 1.5, "link1_length": 1.5}, "box"),
    ("invertedpendulum", {"pole_length": 2.0}, "box"),
    ("inverteddoublependulum", {"pole_length": 1.5}, "box"),
])
def test_limb_knobs_change_the_picture(family, knobs, measure):
    """Longer limbs (XML knobs) make the robot's bounding box in the frame larger, thicker
    ones cover more pixels, in the same pose; and the frames differ."""
    drawer = getattr(md, f"draw_{family}")
    sizes, frames = [], []
    for values in ({}, knobs):
        u = rte.make(family, values).unwrapped
        u.reset(seed=0)
        robot = np.flatnonzero((u.model.geom_type != 0) & (u.model.geom_bodyid != 0))
        mask = np.isin(md.draw_planar(u, SIZE, SIZE, drawer.camera, labels=True), robot)
        rows, cols = np.nonzero(mask)
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        sizes.append(int(box if measure == "box" else mask.sum()))
        frames.append(drawer(u, SIZE, SIZE))
    assert sizes[1] >= sizes[0] * 1.15, sizes
    assert (frames[0] != frames[1]).any(-1).sum() >= 8


@pytest.mark.parametrize(("family", "pixels", "shape"), [
    ("hopper", {"size": 64, "grayscale": True, "frame_stack": 4}, (64, 64, 4)),
    ("walker2d", {"size": 64}, (64, 64, 3)),
    ("halfcheetah", {"size": [48, 80], "frame_stack": 2}, (48, 80, 6)),
    ("reacher", {"size": 32, "grayscale": True}, (32, 32, 1)),
    ("invertedpendulum", {"size": 64, "frame_stack": 3}, (64, 64, 9)),
    ("inverteddoublependulum", {"size": 40, "grayscale": True, "frame_stack": 2}, (40, 40, 2)),
])
def test_numpy_pixel_views_step(family, pixels, shape):
    env = rte.make(family, pixels={**pixels, "renderer": "numpy"})
    assert env.observation_space.shape == shape
    obs, _ = env.reset(seed=0)
    assert obs.shape == shape and obs.dtype == np.uint8
    env.action_space.seed(0)
    first = obs
    for _ in range(10):
        obs, *_ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
    assert not np.array_equal(first, obs)  # the frames follow the state
    assert len(np.unique(obs)) >= 3  # background, floor or props, robot


def test_auto_prefers_the_numpy_drawer_and_render_uses_its_camera():
    auto = rte.make("hopper", pixels={"size": 32})
    assert isinstance(auto, PixelObservation) and auto.drawer is md.draw_hopper
    assert auto.unwrapped.render_mode is None  # no OpenGL renderer asked for
    stacked = rte.make("hopper", pixels={"size": 32, "frame_stack": 2, "renderer": "render"})
    assert isinstance(stacked, ChannelFrameStack)
    view = stacked.env
    assert isinstance(view, PixelObservation) and view.drawer is None
    assert view.prepare == md.draw_hopper.prepare_render


def test_the_camera_follows_the_torso():
    """Hopper's camera follows the torso's x: moved half a metre, the robot stays where it was
    in the frame while the floor's checks (a third of a metre) move."""
    import mujoco

    u = rte.make("hopper").unwrapped
    u.reset(seed=0)
    before = md.draw_hopper(u, SIZE, SIZE)
    x0 = camera_pose(u, md.draw_hopper.camera).lookat[0]
    u.data.qpos[0] += 0.5
    mujoco.mj_forward(u.model, u.data)
    after = md.draw_hopper(u, SIZE, SIZE)
    assert camera_pose(u, md.draw_hopper.camera).lookat[0] == pytest.approx(x0 + 0.5)
    labels = md.draw_planar(u, SIZE, SIZE, md.draw_hopper.camera, labels=True)
    robot = labels > 0  # geom 0 is the floor
    assert np.array_equal(before[robot], after[robot])
    assert (before != after).any(-1).sum() > 100


def test_mujoco_render_has_its_effects_off_and_is_faithful():
    import mujoco

    env = rte.make("walker2d", pixels={"size": SIZE, "renderer": "render"})
    try:
        env.reset(seed=0)
        viewer = env.unwrapped.mujoco_renderer.viewer
        flags = mujoco.mjtRndFlag
        for name in ("mjRND_SHADOW", "mjRND_REFLECTION", "mjRND_SKYBOX", "mjRND_FOG",
                     "mjRND_HAZE"):
            assert viewer.scn.flags[getattr(flags, name)] == 0, name
        assert viewer.cam.elevation == -20.0 and viewer.cam.distance == 4.0
    finally:
        env.close()


def test_bad_cameras_are_named():
    u = rte.make("hopper").unwrapped
    with pytest.raises(EnvError, match=r"camera.track body 'torsoo'.*torso"):
        camera_pose(u, Camera(track="torsoo"))
    with pytest.raises(EnvError, match="camera.distance: value -1.0"):
        Camera(distance=-1.0)
    with pytest.raises(EnvError, match="camera.lookat"):
        Camera(lookat=(0.0, 1.0))  # type: ignore[arg-type]
    with pytest.raises(EnvError, match="numpy drawer"):
        rte.make("ant", pixels={"renderer": "numpy"})


def test_numpy_frames_need_no_opengl():
    """With MuJoCo's OpenGL disabled, the numpy pixel view still draws."""
    code = (
        "import rltransfer.envs as rte\n"
        "env = rte.make('walker2d', pixels={'size': 32, 'renderer': 'numpy'})\n"
        "obs, _ = env.reset(seed=0); obs, *_ = env.step(env.action_space.sample())\n"
        "print(obs.shape, int(obs.max()) > 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "MUJOCO_GL": "disable"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "(32, 32, 3) True"
