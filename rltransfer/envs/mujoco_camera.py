"""The camera of a MuJoCo pixel view, shared by the numpy drawer and MuJoCo's own renderer.

A :class:`Camera` says where a pixel view looks from: MuJoCo's free-camera parameters
(``lookat``, ``distance``, ``azimuth``, ``elevation``; field of view from the model's
``visual/global/fovy``) and optionally a body whose ``x`` the camera follows. Fields left
``None`` come from the env's own default camera (``env.mujoco_renderer.default_cam_config``),
then from the defaults of Gymnasium's offscreen viewer, so a bare ``Camera()`` frames the
scene as ``env.render()`` does.

:func:`camera_pose` resolves it for the current state; :func:`prepare_render` puts the same
pose on MuJoCo's viewer and turns its costly effects off (shadows, reflections, skybox, fog,
haze), so ``renderer: render`` and ``renderer: numpy`` frame a scene alike.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np

from rltransfer.envs.errors import EnvError, unknown_name
from rltransfer.envs.pixels import _load_triton_before_rendering

# ``mujoco`` is imported inside functions: importing it reads MUJOCO_GL once (see
# mujoco_knobs.py), and a numpy-drawn pixel view needs no OpenGL at all.

_EFFECTS = ("mjRND_SHADOW", "mjRND_REFLECTION", "mjRND_SKYBOX", "mjRND_FOG", "mjRND_HAZE")
"""MuJoCo scene flags a pixel view turns off: costly in software rendering, no help to an agent."""


@dataclasses.dataclass(frozen=True)
class Camera:
    """Where a MuJoCo pixel view looks from (``None``: the env's default camera's value).

    Example:
        >>> Camera(elevation=-90.0, lookat=(0.0, 0.0, 0.0)).track is None   # top-down, fixed
        True
    """

    lookat: tuple[float, float, float] | None = None
    """Point looked at (m), when the tracked body is where it starts."""
    distance: float | None = None
    """Distance from the camera to ``lookat`` (m)."""
    azimuth: float | None = None
    """Degrees; 90 looks along +y, so the x-z plane of planar robots faces the camera."""
    elevation: float | None = None
    """Degrees; negative looks down, -90 straight down."""
    track: str | None = None
    """Name of a body whose x the camera follows (``lookat`` shifts by how far it moved)."""

    def __post_init__(self) -> None:
        if self.lookat is not None:
            look = tuple(float(v) for v in self.lookat)
            if len(look) != 3:
                raise EnvError(f"camera.lookat: value {self.lookat!r} is not 3 numbers")
            object.__setattr__(self, "lookat", look)
        if self.distance is not None and not self.distance > 0:
            raise EnvError(f"camera.distance: value {self.distance!r} is not positive")


@dataclasses.dataclass(frozen=True)
class Pose:
    """A camera resolved for the current state: MuJoCo free-camera parameters, in degrees."""

    lookat: np.ndarray
    distance: float
    azimuth: float
    elevation: float
    fovy: float
    """Vertical field of view (degrees)."""

    @property
    def rotation(self) -> np.ndarray:
        """Rows: the camera's right, up and forward directions in the world (read-only)."""
        return _rotation(self.azimuth, self.elevation)

    @property
    def position(self) -> np.ndarray:
        """The camera's position in the world: ``distance`` back from ``lookat``."""
        return self.lookat - self.distance * self.rotation[2]


@functools.lru_cache(maxsize=64)
def _rotation(azimuth: float, elevation: float) -> np.ndarray:
    """As MuJoCo computes a free camera's frame from its azimuth and elevation (degrees)."""
    az, el = math.radians(azimuth), math.radians(elevation)
    ca, sa, ce, se = math.cos(az), math.sin(az), math.cos(el), math.sin(el)
    rot = np.array([[sa, -ca, 0.0], [-se * ca, -se * sa, ce], [ce * ca, ce * sa, se]])
    rot.flags.writeable = False
    return rot


@dataclasses.dataclass(frozen=True)
class _Base:
    lookat: np.ndarray
    distance: float
    azimuth: float
    elevation: float
    track: int
    track_x0: float


def _base(env: Any, camera: Camera) -> _Base:
    """The camera's state-independent part, cached on the env (one per :class:`Camera`)."""
    cache: dict[Camera, _Base] = env.__dict__.setdefault("_rltransfer_cameras", {})
    if camera in cache:
        return cache[camera]
    import mujoco

    model = env.model
    start = mujoco.MjData(model)  # the model's reference pose (qpos0)
    mujoco.mj_kinematics(model, start)
    renderer = getattr(env, "mujoco_renderer", None)
    cfg = dict(getattr(renderer, "default_cam_config", None) or {})

    def pick(name: str, fallback: Any) -> Any:
        v = getattr(camera, name)
        return v if v is not None else cfg.get(name, fallback)

    # fallbacks as Gymnasium's offscreen viewer sets them (median of geom centres, extent)
    lookat = np.array(pick("lookat", None) if pick("lookat", None) is not None
                      else np.median(start.geom_xpos, axis=0), dtype=float)
    track, x0 = -1, 0.0
    if camera.track is not None:
        track = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, camera.track)
        if track < 0:
            names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, i) or ""
                     for i in range(model.nbody)]
            raise unknown_name("camera.track body", camera.track, [n for n in names if n])
        x0 = float(start.xpos[track, 0])
    base = _Base(lookat, float(pick("distance", model.stat.extent)),
                 float(pick("azimuth", 90.0)), float(pick("elevation", -45.0)), track, x0)
    cache[camera] = base
    return base


def camera_pose(env: Any, camera: Camera | None = None) -> Pose:
    """``camera`` (default: the env's own) resolved for the env's current state.

    ``env`` is a MuJoCo env (``env.unwrapped`` of a Gymnasium ``MujocoEnv``): it has ``model``
    and ``data``.
    """
    base = _base(env, camera or Camera())
    lookat = base.lookat.copy()
    if base.track >= 0:
        lookat[0] += float(env.data.xpos[base.track, 0]) - base.track_x0
    return Pose(lookat, base.distance, base.azimuth, base.elevation,
                float(env.model.vis.global_.fovy))


def _viewer(env: Any) -> Any:
    """Gymnasium's offscreen viewer of ``env`` (created now if it does not exist yet)."""
    renderer = getattr(env, "mujoco_renderer", None)
    get = getattr(renderer, "_get_viewer", None)  # Gymnasium has no public way to create it
    if get is None:
        raise EnvError(f"{type(env).__name__} has no MuJoCo renderer (mujoco_renderer)")
    _load_triton_before_rendering()  # before the process's first OpenGL context (see there)
    return get(render_mode=env.render_mode or "rgb_array")


def prepare_render(env: Any, camera: Camera | None = None) -> None:
    """Before ``env.render()``: MuJoCo's costly effects off and, if given, ``camera`` on.

    Makes the env's OpenGL context current (with two MuJoCo envs in one process, the
    other's may be), turns off shadows, reflections, the skybox, fog and haze in the viewer's
    scene (a 64x64 Hopper frame in software EGL renders several times faster;
    ``benchmarks/pixel_fps.py``), and points the viewer's free camera as :func:`camera_pose`
    resolves ``camera``. The model's physics is untouched.
    """
    import mujoco

    viewer = _viewer(env)
    # another env's viewer may have made its OpenGL context current since (Gymnasium only
    # switches between one env's own viewers): rendering then reads a wrong frame
    viewer.make_context_current()
    for flag in _EFFECTS:
        viewer.scn.flags[getattr(mujoco.mjtRndFlag, flag)] = 0
    if camera is None:
        return
    pose = camera_pose(env, camera)
    cam = viewer.cam
    cam.type = mujoco.mjtCamera.mjCAMERA_FREE
    cam.lookat[:] = pose.lookat
    cam.distance, cam.azimuth, cam.elevation = pose.distance, pose.azimuth, pose.elevation


def render_labels(env: Any, camera: Camera | None = None) -> np.ndarray:
    """MuJoCo's own render of the current state as geom ids per pixel (-1: no geom).

    Renders through the env's viewer at its size with :func:`prepare_render`'s camera, in
    MuJoCo's segmentation mode; used to check a numpy drawing against MuJoCo (the same
    labels as :func:`rltransfer.envs.mujoco_draw.draw_planar` with ``labels=True``).
    """
    import mujoco

    prepare_render(env, camera)
    viewer = _viewer(env)
    flags = mujoco.mjtRndFlag
    viewer.scn.flags[flags.mjRND_SEGMENT] = viewer.scn.flags[flags.mjRND_IDCOLOR] = 1
    try:
        rgb = viewer.render(render_mode="rgb_array", camera_id=-1)
    finally:
        viewer.scn.flags[flags.mjRND_SEGMENT] = viewer.scn.flags[flags.mjRND_IDCOLOR] = 0
    seg = rgb[..., 0].astype(np.int64) + (rgb[..., 1].astype(np.int64) << 8) + (
        rgb[..., 2].astype(np.int64) << 16)
    table = np.full(viewer.scn.ngeom + 2, -1, dtype=np.int64)  # segid + 1 -> geom id
    for i in range(viewer.scn.ngeom):
        g = viewer.scn.geoms[i]
        if g.segid >= 0 and g.objtype == mujoco.mjtObj.mjOBJ_GEOM:
            table[g.segid + 1] = g.objid
    seg[(seg < 0) | (seg >= len(table))] = 0
    return table[seg]


def random_pose(env: Any, rng: np.random.Generator) -> None:
    """Put a MuJoCo env's body in a random pose: every joint at random (within its range;
    free hinges in [-1, 1] rad), the root moved up to 1 m along x, then lifted so no geom is
    below the floor; ``mj_forward``. For comparing renderers at poses resets never reach."""
    import mujoco

    m, d = env.model, env.data
    q = m.qpos0.copy()
    for j in range(m.njnt):
        adr, name = m.jnt_qposadr[j], mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j)
        if name == "rootz":
            continue
        if m.jnt_limited[j]:
            q[adr] = rng.uniform(*m.jnt_range[j])
        elif name == "rootx":
            q[adr] += rng.uniform(-1.0, 1.0)
        elif m.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE:
            q[adr] = rng.uniform(-1.0, 1.0)
    d.qpos[:], d.qvel[:] = q, 0.0
    mujoco.mj_forward(m, d)
    rootz = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "rootz")
    solid = m.geom_type != mujoco.mjtGeom.mjGEOM_PLANE
    low = float((d.geom_xpos[solid, 2] - m.geom_rbound[solid]).min())
    if rootz >= 0 and low < 0:
        d.qpos[m.jnt_qposadr[rootz]] -= low
        mujoco.mj_forward(m, d)


def silhouette_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 for two empty masks' 0/1 guard).

    Example:
        >>> silhouette_iou(np.array([True, True, False]), np.array([True, False, False]))
        0.5
    """
    return float((a & b).sum() / max((a | b).sum(), 1))
