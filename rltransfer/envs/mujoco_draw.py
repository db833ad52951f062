"""Numpy drawings of MuJoCo scenes: fast pixel views of planar robots, no OpenGL needed.

:func:`draw_planar` projects every visible geom of the model through a pinhole camera
(MuJoCo's free camera, :mod:`rltransfer.envs.mujoco_camera`) using its pose from
``data.geom_xpos``/``data.geom_xmat`` and its size from ``model.geom_size``, and fills it
with its ``model.geom_rgba`` colour over a plain background, far geoms first: capsules,
spheres, boxes, cylinders, ellipsoids (meshes as their bounding box) and planes (a checker
where the plane's material is textured, as MuJoCo's floors are). Shapes are flat: no
lighting, shadows or anti-aliasing. A 64x64 Hopper frame takes about 0.2 ms on one core.

The families' drawers (``drawer:`` in ``envs/mujoco.yaml``) pair it with a camera:
:data:`draw_hopper`, :data:`draw_walker2d`, :data:`draw_halfcheetah` follow the torso's x;
:data:`draw_invertedpendulum` and :data:`draw_inverteddoublependulum` are fixed;
:data:`draw_reacher` looks straight down. When frames come from MuJoCo's renderer instead
(``renderer: render``), the pixel view points MuJoCo's camera the same way
(:meth:`PlanarDrawer.prepare_render`), so the two renderers frame a scene alike.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from rltransfer.envs.mujoco_camera import (
    Camera,
    camera_pose,
    prepare_render,
    random_pose,
    render_labels,
    silhouette_iou,
)
from rltransfer.envs.pixels import _grid

BACKGROUND = (0, 0, 0)
"""Colour behind everything (MuJoCo's, with its skybox off)."""

_PLANE, _HFIELD, _SPHERE, _CAPSULE, _ELLIPSOID, _CYLINDER, _BOX, _MESH = range(8)
_RIM = np.stack([np.cos(np.linspace(0, 2 * np.pi, 16, endpoint=False)),
                 np.sin(np.linspace(0, 2 * np.pi, 16, endpoint=False))], axis=1)
_CORNERS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
_SPHERE_PTS = np.array([[x, y, z] for x in (-1, 0, 1) for y in (-1, 0, 1) for z in (-1, 0, 1)
                        if (x, y, z) != (0, 0, 0)], float)
_SPHERE_PTS /= np.linalg.norm(_SPHERE_PTS, axis=1, keepdims=True)
_SIGNS = np.array([[1.0], [-1.0]])
_SHADE = 0.55
"""Brightness of a textured plane's dark checks relative to its colour."""


class _Scene:
    """What of a model is drawn, and how: computed once per env."""

    def __init__(self, model: Any) -> None:
        rgba = np.asarray(model.geom_rgba)
        visible = (np.asarray(model.geom_group) < 3) & (rgba[:, 3] > 0)  # MuJoCo's defaults
        kinds = np.asarray(model.geom_type)
        self.planes = [int(i) for i in np.flatnonzero(visible & (kinds == _PLANE))]
        self.solids = np.flatnonzero(visible & (kinds != _PLANE) & (kinds != _HFIELD))
        self.kinds = kinds.tolist()
        self.capsule_mask = kinds[self.solids] == _CAPSULE
        self.round_mask = self.capsule_mask | (kinds[self.solids] == _SPHERE)
        self.colors = [tuple(int(round(255 * c)) for c in rgba[i, :3]) for i in range(len(rgba))]
        # planes are drawn as indices into a palette: 0 background, 1 + 2k and 2 + 2k the
        # light and dark checks of plane k
        self.palette = np.array([BACKGROUND] + [
            shade for i in self.planes
            for shade in (self.colors[i], tuple(int(v * _SHADE) for v in self.colors[i]))
        ], dtype=np.uint8)
        self.label_palette = np.array([-1] + [i for i in self.planes for _ in (0, 1)], np.int32)
        self.checker: dict[int, tuple[float, float]] = {}
        for i in self.planes:  # a textured plane's checks: 2x2 per texture repeat, as MuJoCo's
            mat = int(model.geom_matid[i])
            if mat < 0 or model.mat_texid[mat].max() < 0:
                continue  # untextured: one colour
            rep, size = model.mat_texrepeat[mat], 2 * model.geom_size[i, :2]
            if np.all(rep > 0) and np.all(size > 0):
                side = 1 / rep if model.mat_texuniform[mat] else size / rep
                self.checker[i] = (float(side[0]) / 2, float(side[1]) / 2)


def _scene(env: Any) -> _Scene:
    scene = env.__dict__.get("_rltransfer_scene")
    if scene is None:
        scene = env.__dict__["_rltransfer_scene"] = _Scene(env.model)
    return scene


# ---------------------------------------------------------------------- rasterizing


def _box(h: int, w: int, x0: float, x1: float, y0: float, y1: float) -> tuple[int, int, int, int]:
    return max(int(x0), 0), min(int(x1) + 2, w), max(int(y0), 0), min(int(y1) + 2, h)


def _rounds(h: int, w: int, ends: np.ndarray, radii: np.ndarray) -> tuple | None:
    """Pixel masks of capsules: hulls of discs of radius ``radii[k, 0]`` at ``ends[k, 0]``
    and ``radii[k, 1]`` at ``ends[k, 1]`` (pixel units; a sphere's ends coincide).

    Computed together over the box holding them all: ``((c0, c1, r0, r1), masks)`` with
    ``masks[k]`` of the box's shape, or ``None`` if none is in the frame.
    """
    r = radii.max(axis=1)
    lo, hi = ends.min(axis=1) - r[:, None], ends.max(axis=1) + r[:, None]
    c0, c1, r0, r1 = _box(h, w, lo[:, 0].min(), hi[:, 0].max(), lo[:, 1].min(), hi[:, 1].max())
    if c0 >= c1 or r0 >= r1:
        return None
    xs, ys = _grid(h, w)
    a, d = ends[:, 0].astype(np.float32), (ends[:, 1] - ends[:, 0]).astype(np.float32)
    ra, dr = radii[:, 0].astype(np.float32), (radii[:, 1] - radii[:, 0]).astype(np.float32)
    n2 = (d * d).sum(axis=1)
    inv = np.divide(1.0, n2, out=np.zeros_like(n2), where=n2 > 1e-9)
    col = (slice(None), None, None)
    px = xs[None, r0:r1, c0:c1] - a[:, 0][col]
    py = ys[None, r0:r1, c0:c1] - a[:, 1][col]
    t = px * (d[:, 0] * inv)[col]
    t += py * (d[:, 1] * inv)[col]
    np.maximum(t, 0.0, out=t)
    np.minimum(t, 1.0, out=t)
    px -= t * d[:, 0][col]
    py -= t * d[:, 1][col]
    t *= dr[col]
    t += ra[col]  # the radius where the pixel's nearest axis point is
    t *= t
    px *= px
    py *= py
    px += py
    return (c0, c1, r0, r1), px <= t


def _hull(pts: np.ndarray) -> np.ndarray:
    """Convex hull of 2-d points, counter-clockwise in image coordinates (monotone chain)."""
    p = sorted(map(tuple, pts.tolist()))

    def half(seq: list) -> list:
        out: list = []
        for q in seq:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (q[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (q[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(q)
        return out

    lower, upper = half(p), half(p[::-1])
    return np.array(lower[:-1] + upper[:-1], dtype=float)


def _polygon(img: np.ndarray, pts: np.ndarray, value: Any) -> None:
    """Fill the convex hull of ``pts`` (pixel coordinates, shape ``(n, 2)``)."""
    h, w = img.shape[:2]
    hull = _hull(pts)
    if len(hull) < 3:
        return
    c0, c1, r0, r1 = _box(h, w, hull[:, 0].min(), hull[:, 0].max(),
                          hull[:, 1].min(), hull[:, 1].max())
    if c0 >= c1 or r0 >= r1:
        return
    xs, ys = _grid(h, w)
    px, py = xs[r0:r1, c0:c1], ys[r0:r1, c0:c1]
    inside = np.ones(px.shape, dtype=bool)
    for (ax, ay), (bx, by) in zip(hull, np.roll(hull, -1, axis=0), strict=True):
        inside &= (bx - ax) * (py - ay) - (by - ay) * (px - ax) >= 0
    img[r0:r1, c0:c1][inside] = value


_PLANES: dict[tuple, tuple] = {}


def _plane_rays(h: int, w: int, focal: float, basis: np.ndarray, mat: np.ndarray,
                height: float, period: tuple[float, float]) -> tuple:
    """Where each pixel's ray meets a plane ``height`` above the camera's foot on it.

    In the plane's axes (the columns of ``mat``) and in units of ``period``: ``(hit, tx,
    ty, bounds)``, ``tx``/``ty`` the offsets from the camera's foot, ``bounds`` their range
    over the hits. Depends on the camera's orientation and height only, so it is cached:
    a camera that follows a body along the plane reuses it every frame.
    """
    key = (h, w, focal, basis.tobytes(), mat.tobytes(), height, period)
    got = _PLANES.get(key)
    if got is None:
        if len(_PLANES) > 32:
            _PLANES.clear()
        xs, ys = _grid(h, w)
        cam = np.stack([(xs - w / 2) / focal, (h / 2 - ys) / focal, np.ones_like(xs)], -1)
        dots = cam.astype(np.float64) @ basis @ mat  # ray . plane x axis, . y axis, . normal
        with np.errstate(divide="ignore", invalid="ignore"):
            t = -height / dots[..., 2]
        hit = t > 0
        tx = np.where(hit, t * dots[..., 0] / period[0], 0.0).astype(np.float32)
        ty = np.where(hit, t * dots[..., 1] / period[1], 0.0).astype(np.float32)
        bounds = (tx[hit].min(), tx[hit].max(), ty[hit].min(), ty[hit].max()) if hit.any() \
            else (0.0, 0.0, 0.0, 0.0)
        got = _PLANES[key] = (hit, tx, ty, bounds)
    return got


def _plane(index: np.ndarray, level: int, focal: float, basis: np.ndarray, cam: np.ndarray,
           pos: np.ndarray, mat: np.ndarray, size: np.ndarray,
           checks: tuple[float, float] | None) -> None:
    """Set ``index`` to ``level`` where pixels see the plane, ``level + 1`` on dark checks."""
    h, w = index.shape
    period = checks or (1.0, 1.0)
    off = (cam - pos) @ mat  # the camera in the plane's frame
    hit, tx, ty, (x0, x1, y0, y1) = _plane_rays(h, w, focal, basis, mat, float(off[2]), period)
    ox, oy = off[0] / period[0], off[1] / period[1]
    sx, sy = size[0] / period[0], size[1] / period[1]
    seen = hit
    if size[0] > 0 and not -sx <= ox + x0 <= ox + x1 <= sx:  # an edge of the plane is in view
        seen = seen & (np.abs(tx + np.float32(ox)) <= sx)
    if size[1] > 0 and not -sy <= oy + y0 <= oy + y1 <= sy:
        seen = seen & (np.abs(ty + np.float32(oy)) <= sy)
    if checks is None:
        index[seen] = level
        return
    a = tx + np.float32(ox)
    np.floor(a, out=a)
    b = ty + np.float32(oy)
    np.floor(b, out=b)
    a += b
    a *= 0.5
    b = np.floor(a)
    a -= b  # 0.5 on dark checks, else 0
    a *= 2
    a += level
    np.copyto(index, a, where=seen, casting="unsafe")


# ---------------------------------------------------------------------- drawing


def draw_planar(env: Any, height: int, width: int, camera: Camera | None = None, *,
                labels: bool = False) -> np.ndarray:
    """Draw a MuJoCo env's geoms as seen by ``camera`` (default: the env's own camera).

    Args:
        env: a MuJoCo env (``env.unwrapped`` of a Gymnasium ``MujocoEnv``: ``model``, ``data``).
        height: frame height in pixels.
        width: frame width in pixels.
        camera: where to look from; ``None`` frames the scene as ``env.render()`` does.
        labels: return geom ids per pixel (``int32``, -1 where no geom is) instead of colours,
            to compare with MuJoCo's own render
            (:func:`rltransfer.envs.mujoco_camera.render_labels`).

    Returns:
        An RGB ``uint8`` frame ``(height, width, 3)``, or the ``(height, width)`` labels.
    """
    model, data = env.model, env.data
    scene = _scene(env)
    pose = camera_pose(env, camera)
    basis = pose.rotation  # rows: right, up, forward
    cam = pose.position
    focal = (height / 2) / math.tan(math.radians(pose.fovy) / 2)
    cx, cy = width / 2, height / 2

    index = np.zeros((height, width), dtype=np.uint8)  # planes first, into scene.palette
    for k, i in enumerate(scene.planes):
        _plane(index, 1 + 2 * k, focal, basis, cam, data.geom_xpos[i],
               data.geom_xmat[i].reshape(3, 3), model.geom_size[i], scene.checker.get(i))
    img = np.take(scene.label_palette if labels else scene.palette, index, axis=0)

    ids = scene.solids
    if not len(ids):
        return img
    rel = (data.geom_xpos[ids] - cam) @ basis.T  # camera coordinates: right, up, depth
    mats = data.geom_xmat[ids].reshape(-1, 3, 3)  # columns: the geom's axes in the world
    sizes = model.geom_size[ids]
    # spheres and capsules: both ends of the axis (a sphere's coincide), projected together
    half = np.where(scene.capsule_mask, sizes[:, 1], 0.0)[:, None, None]
    ends = rel[:, None, :] + (mats[:, None, :, 2] @ basis.T) * half * _SIGNS  # (n, 2, 3)
    depth = ends[..., 2]
    near = depth.min(axis=1) > sizes[:, 0]  # in front of the camera
    round_ = np.flatnonzero(scene.round_mask & near)
    masks: dict[int, np.ndarray] = {}
    if len(round_):
        e, z = ends[round_], depth[round_]
        pix = np.stack([cx + focal * e[..., 0] / z, cy - focal * e[..., 1] / z], axis=-1)
        got = _rounds(height, width, pix, focal * sizes[round_, :1] / z)
        if got is not None:
            (c0, c1, r0, r1), inside = got
            window = img[r0:r1, c0:c1]
            masks = dict(zip(round_.tolist(), inside, strict=True))
    # far first, by the depth of each geom's nearest side (a thick geom covers a thin one
    # whose centre it shares, as in MuJoCo's depth test)
    for k in np.argsort(sizes[:, 0] - rel[:, 2], kind="stable").tolist():
        i = int(ids[k])
        value = i if labels else scene.colors[i]
        kind = scene.kinds[i]
        if kind in (_SPHERE, _CAPSULE):
            if k in masks:
                window[masks[k]] = value
            continue
        if kind == _BOX:
            local = _CORNERS * sizes[k]
        elif kind == _CYLINDER:
            rim = np.column_stack([_RIM * sizes[k, 0], np.zeros(len(_RIM))])
            local = np.concatenate([rim + [0, 0, sizes[k, 1]], rim - [0, 0, sizes[k, 1]]])
        elif kind == _ELLIPSOID:
            local = _SPHERE_PTS * sizes[k]
        elif kind == _MESH:
            aabb = model.geom_aabb[i]  # centre (3), half sizes (3), in the geom's frame
            local = aabb[:3] + _CORNERS * aabb[3:]
        else:
            continue
        pts = (local @ mats[k].T) @ basis.T + rel[k]
        if pts[:, 2].min() <= 1e-6:
            continue
        _polygon(img, np.column_stack([cx + focal * pts[:, 0] / pts[:, 2],
                                       cy - focal * pts[:, 1] / pts[:, 2]]), value)
    return img


class PlanarDrawer:
    """A family's numpy drawer: :func:`draw_planar` with a fixed :class:`Camera`.

    ``drawer(env, height, width)`` draws a frame; ``drawer.prepare_render(env)`` points
    MuJoCo's own renderer the same way (the pixel view calls it before ``env.render()``
    when ``renderer: render``).
    """

    def __init__(self, camera: Camera, doc: str) -> None:
        self.camera = camera
        self.__doc__ = doc

    def __call__(self, env: Any, height: int, width: int) -> np.ndarray:
        return draw_planar(env, height, width, self.camera)

    def prepare_render(self, env: Any) -> None:
        """MuJoCo's effects off and its camera set to this drawer's (before ``render()``)."""
        prepare_render(env, self.camera)

    def __repr__(self) -> str:
        return f"PlanarDrawer({self.camera!r})"


# Cameras: Gymnasium's v5 defaults (distance, elevation, lookat), except where noted.
draw_hopper = PlanarDrawer(
    Camera(lookat=(0.0, 0.0, 1.15), distance=3.0, elevation=-20.0, azimuth=90.0, track="torso"),
    "Hopper: 3 m away, 20 degrees above, following the torso's x.")
draw_walker2d = PlanarDrawer(
    Camera(lookat=(0.0, 0.0, 1.15), distance=4.0, elevation=-20.0, azimuth=90.0, track="torso"),
    "Walker2d: 4 m away, 20 degrees above, following the torso's x.")
draw_halfcheetah = PlanarDrawer(  # lookat: Gymnasium's viewer default (the geoms' median)
    Camera(lookat=(0.0, 0.0, 0.36), distance=4.0, elevation=-45.0, azimuth=90.0, track="torso"),
    "HalfCheetah: 4 m away, 45 degrees above, following the torso's x.")
draw_reacher = PlanarDrawer(  # Gymnasium: 45 degrees above; top-down shows the plane undistorted
    Camera(lookat=(0.0, 0.0, 0.0), distance=1.24, elevation=-90.0, azimuth=90.0),
    "Reacher: straight down on the arena, fixed.")
draw_invertedpendulum = PlanarDrawer(
    Camera(lookat=(0.0, 0.0, 0.0), distance=2.04, elevation=-45.0, azimuth=90.0),
    "InvertedPendulum: 2.04 m away, 45 degrees above, fixed.")
draw_inverteddoublependulum = PlanarDrawer(  # Gymnasium's DEFAULT_CAMERA_CONFIG for this env,
    # which its constructor does not apply (it renders from 8.2 m, the poles a few pixels)
    Camera(lookat=(0.0, 0.0, 0.1225), distance=4.1225, elevation=-45.0, azimuth=90.0),
    "InvertedDoublePendulum: 4.12 m away, 45 degrees above, fixed.")


@dataclasses.dataclass(frozen=True)
class PoseComparison:
    """One pose drawn by :func:`draw_planar` and by MuJoCo (segmentation), and their overlap."""

    index: int
    """0 and 1: reset states (seeds 0 and 1); from 2 on: random poses."""
    ours: np.ndarray
    """The numpy drawer's geom labels (``-1``: background)."""
    theirs: np.ndarray
    """MuJoCo's geom labels, same camera and size."""
    solid: np.ndarray
    """Ids of every geom but planes."""
    moving: np.ndarray
    """Ids of the robot's geoms (not on the world body)."""

    @property
    def iou(self) -> tuple[float, float]:
        """Silhouette IoU over every non-plane geom, and over the robot alone."""
        return (silhouette_iou(np.isin(self.ours, self.solid), np.isin(self.theirs, self.solid)),
                silhouette_iou(np.isin(self.ours, self.moving),
                               np.isin(self.theirs, self.moving)))


def compare_poses(env: Any, camera: Camera, size: int, *, poses: int,
                  seed: int = 0) -> Iterator[PoseComparison]:
    """Compare the numpy drawing with MuJoCo's render at 2 reset states, then ``poses`` random
    poses (:func:`~rltransfer.envs.mujoco_camera.random_pose`, from ``seed``). ``env`` is a
    family member made with ``render_mode="rgb_array"`` and ``width = height = size``; the
    env is left at each pose while its comparison is used. The fidelity test and
    ``benchmarks/mujoco_draw_fidelity.py`` both walk these poses."""
    u = env.unwrapped
    m = u.model
    solid = np.flatnonzero(m.geom_type != 0)  # everything but planes
    moving = np.flatnonzero((m.geom_type != 0) & (m.geom_bodyid != 0))  # the robot
    rng = np.random.default_rng(seed)
    for k in range(2 + poses):
        if k < 2:
            env.reset(seed=k)
        else:
            random_pose(u, rng)
        yield PoseComparison(k, draw_planar(u, size, size, camera, labels=True),
                             render_labels(u, camera), solid, moving)
