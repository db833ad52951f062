"""Helpers the built-in catalogue names by ``"rltransfer.envs.builtin:<function>"``.

Recompute hooks refresh what an env derives from a changed attribute; callable knobs edit
an env in place; :func:`make_minigrid` builds a MiniGrid layout with RGB image observations.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from rltransfer.envs.errors import EnvError, unknown_name
from rltransfer.envs.pixels import PixelSpec, ResizeObservation

# ``mujoco`` and ``minigrid`` are imported where they are used: ``import mujoco`` reads
# MUJOCO_GL (the rendering backend) once, when first imported, so it must come after the
# caller's setting; and this module is imported to build every CartPole member (its recompute
# hook), which should not pay for them (measured after ``import rltransfer.cli``: mujoco
# 0.18 s, minigrid 0.22 s, in a fresh process).


def cartpole_derived(env: Any) -> None:
    """CartPole caches ``total_mass`` and ``polemass_length``: recompute them."""
    env.total_mass = env.masspole + env.masscart
    env.polemass_length = env.masspole * env.length


def acrobot_derived(env: Any) -> None:
    """Acrobot's dynamics use the links' centres of mass: keep them at mid-link."""
    env.LINK_COM_POS_1 = env.LINK_LENGTH_1 / 2.0
    env.LINK_COM_POS_2 = env.LINK_LENGTH_2 / 2.0


ANT_LEGS = {
    1: ("hip_1", "ankle_1"),
    2: ("hip_2", "ankle_2"),
    3: ("hip_3", "ankle_3"),
    4: ("hip_4", "ankle_4"),
}


def ant_disable_leg(env: gym.Env, leg: int) -> None:
    """Zero the gear of both motors of Ant leg ``leg`` (1-4; 0 keeps all legs).

    The joints stay, so observation and action spaces do not change; the leg just goes limp.
    """
    if leg == 0:
        return
    import mujoco

    base: Any = env.unwrapped  # a MuJoCo env
    model = base.model
    for joint in ANT_LEGS[int(leg)]:
        j = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, joint)
        for a in range(model.nu):
            if model.actuator_trnid[a, 0] == j:
                model.actuator_gear[a, :] = 0.0


MINIGRID_LAYOUTS = ("DoorKey", "Empty", "Unlock", "LavaGap")


def make_minigrid(
    layout: str = "DoorKey",
    size: int = 5,
    view: str = "partial",
    tile_size: int = 8,
    image_size: int | None = None,
    max_steps: int | None = None,
    render_mode: str | None = None,
) -> gym.Env:
    """A MiniGrid layout with RGB image observations (channels-last ``uint8``, no mission).

    ``view="partial"`` gives the agent's 7x7-tile egocentric view (same shape for every
    size); ``"full"`` the whole grid. ``image_size`` resizes frames to a square.

    Example:
        >>> env = make_minigrid("DoorKey", size=5)
        >>> env.observation_space.shape
        (56, 56, 3)
    """
    from minigrid import envs as mg  # see the note on imports at the top
    from minigrid.wrappers import ImgObsWrapper, RGBImgObsWrapper, RGBImgPartialObsWrapper

    classes = {
        "DoorKey": mg.DoorKeyEnv,
        "Empty": mg.EmptyEnv,
        "Unlock": mg.UnlockEnv,
        "LavaGap": mg.LavaGapEnv,
    }
    if layout not in classes:
        raise unknown_name("MiniGrid layout", layout, classes)
    kwargs: dict[str, Any] = {"render_mode": render_mode, "max_steps": max_steps}
    if layout != "Unlock":
        kwargs["size"] = size
    env: gym.Env = classes[layout](**kwargs)
    if view == "partial":
        env = RGBImgPartialObsWrapper(env, tile_size=tile_size)
    elif view == "full":
        env = RGBImgObsWrapper(env, tile_size=tile_size)
    else:
        raise EnvError(f"minigrid view: value {view!r} is not one of 'partial', 'full'")
    env = ImgObsWrapper(env)
    if image_size is not None:
        env = ResizeObservation(env, PixelSpec(height=image_size, width=image_size))
    return env
