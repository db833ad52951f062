"""Pixel views: rendered frames as observations, for vision-encoder work.

A :class:`PixelSpec` says the frame size, colour and frame stack. Frames come from a fast
numpy drawer where the family has one (CartPole, Pendulum, the planar MuJoCo robots of
:mod:`rltransfer.envs.mujoco_draw`) and from the env's own renderer otherwise (MuJoCo
renders at the requested size with ``MUJOCO_GL=egl``, its costly effects turned off).
Observations are channels-last ``uint8`` ``Box(0, 255, (H, W, C * frame_stack))`` so SB3's
``CnnPolicy`` takes them as they are.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from PIL import Image

from rltransfer.envs.errors import EnvError, unknown_name

Drawer = Callable[[Any, int, int], np.ndarray]
"""``drawer(env.unwrapped, height, width)`` → an RGB ``uint8`` frame. A drawer may also have
a ``prepare_render(env.unwrapped)`` method: the pixel view calls it before each
``env.render()`` when frames come from the env's renderer, to frame the scene alike."""
Prepare = Callable[[Any], None]


@dataclasses.dataclass(frozen=True)
class PixelSpec:
    """How to turn an env into a pixel view.

    Example:
        >>> import rltransfer.envs as rte
        >>> env = rte.make("cartpole", pixels={"size": 64, "grayscale": True, "frame_stack": 4})
        >>> env.observation_space.shape
        (64, 64, 4)
    """

    height: int = 64
    """Frame height in pixels."""
    width: int = 64
    """Frame width in pixels."""
    grayscale: bool = False
    """One luminance channel instead of RGB."""
    frame_stack: int = 1
    """Number of recent frames concatenated on the channel axis."""
    renderer: Literal["auto", "numpy", "render"] = "auto"
    """``numpy``: the family's fast drawer; ``render``: ``env.render()``; ``auto``: numpy if any."""

    def __post_init__(self) -> None:
        for f in ("height", "width", "frame_stack"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise EnvError(f"pixels.{f}: value {v!r} is not a positive integer")
        if not isinstance(self.grayscale, bool):
            raise EnvError(f"pixels.grayscale: value {self.grayscale!r} is not true or false")
        if self.renderer not in ("auto", "numpy", "render"):
            raise EnvError(
                f"pixels.renderer: value {self.renderer!r} is not one of 'auto', 'numpy', 'render'"
            )

    @property
    def channels(self) -> int:
        """Channels of the observation (after frame stacking)."""
        return (1 if self.grayscale else 3) * self.frame_stack

    @property
    def shape(self) -> tuple[int, int, int]:
        """Observation shape ``(H, W, C)``."""
        return (self.height, self.width, self.channels)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, sorted by key (used in :func:`rltransfer.envs.describe`)."""
        return dict(sorted(dataclasses.asdict(self).items()))

    @classmethod
    def parse(cls, value: PixelSpec | Mapping[str, Any] | bool | None) -> PixelSpec | None:
        """``None``/``False`` → no pixels; ``True`` → defaults; a mapping → validated spec.

        A mapping may use ``size`` (an int or ``[height, width]``) for both dimensions.
        """
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, PixelSpec):
            return value
        if not isinstance(value, Mapping):
            raise EnvError(f"pixels: value {value!r} is not a mapping, true or null")
        data = dict(value)
        if "size" in data:
            size = data.pop("size")
            if isinstance(size, int) and not isinstance(size, bool):
                data.setdefault("height", size)
                data.setdefault("width", size)
            elif isinstance(size, list | tuple) and len(size) == 2:
                data.setdefault("height", size[0])
                data.setdefault("width", size[1])
            else:
                raise EnvError(f"pixels.size: value {size!r} is not an int or [height, width]")
        fields = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in fields:
                raise unknown_name("pixels field", key, [*fields, "size"])
        return cls(**data)


# ---------------------------------------------------------------------- numpy drawers

_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    key = (h, w)
    if key not in _GRIDS:
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
        _GRIDS[key] = (xs, ys)
    return _GRIDS[key]


def _segment(
    img: np.ndarray,
    a: tuple[float, float],
    b: tuple[float, float],
    r: float,
    color: tuple[int, int, int],
) -> None:
    """Paint a thick line segment (a capsule of radius ``r`` pixels) from ``a`` to ``b``."""
    h, w = img.shape[:2]
    x0 = max(int(min(a[0], b[0]) - r - 1), 0)
    x1 = min(int(max(a[0], b[0]) + r + 2), w)
    y0 = max(int(min(a[1], b[1]) - r - 1), 0)
    y1 = min(int(max(a[1], b[1]) + r + 2), h)
    if x0 >= x1 or y0 >= y1:
        return
    xs, ys = _grid(h, w)
    px = xs[y0:y1, x0:x1] - np.float32(a[0])
    py = ys[y0:y1, x0:x1] - np.float32(a[1])
    dx, dy = np.float32(b[0] - a[0]), np.float32(b[1] - a[1])
    n2 = dx * dx + dy * dy
    if n2 > 0:
        t = px * (dx / n2) + py * (dy / n2)
        np.maximum(t, 0.0, out=t)
        np.minimum(t, 1.0, out=t)
        px -= t * dx
        py -= t * dy
    px *= px
    py *= py
    px += py
    img[y0:y1, x0:x1][px <= r * r] = color


def _rect(
    img: np.ndarray, cx: float, cy: float, hw: float, hh: float, color: tuple[int, int, int]
) -> None:
    h, w = img.shape[:2]
    x0, x1 = max(int(round(cx - hw)), 0), min(int(round(cx + hw)), w)
    y0, y1 = max(int(round(cy - hh)), 0), min(int(round(cy + hh)), h)
    if x0 < x1 and y0 < y1:
        img[y0:y1, x0:x1] = color


def draw_cartpole(env: Any, height: int, width: int) -> np.ndarray:
    """Draw CartPole's state (cart, pole of the env's ``length``) as an RGB ``uint8`` frame."""
    img = np.full((height, width, 3), 255, dtype=np.uint8)
    state = env.state if env.state is not None else np.zeros(4)
    x, theta = float(state[0]), float(state[2])
    scale = width / (2.0 * env.x_threshold * 1.1)
    track_y = height * 0.8
    img[min(int(track_y), height - 1), :] = (0, 0, 0)
    cx = width / 2.0 + x * scale
    cart_hw, cart_hh = max(0.25 * scale, 1.5), max(0.15 * scale, 1.0)
    _rect(img, cx, track_y - cart_hh, cart_hw, cart_hh, (0, 0, 0))
    pivot = (cx, track_y - 2 * cart_hh)
    pole = 2.0 * float(env.length) * scale
    tip = (pivot[0] + pole * np.sin(theta), pivot[1] - pole * np.cos(theta))
    _segment(img, pivot, tip, max(0.05 * scale, 1.0), (202, 152, 101))
    return img


def draw_pendulum(env: Any, height: int, width: int) -> np.ndarray:
    """Draw Pendulum's state (a rod of the env's length ``l``) as an RGB ``uint8`` frame."""
    img = np.full((height, width, 3), 255, dtype=np.uint8)
    state = env.state if env.state is not None else np.zeros(2)
    th = float(state[0])
    scale = min(height, width) / (2.0 * 2.2)
    c = (width / 2.0, height / 2.0)
    rod = float(env.l) * scale
    tip = (c[0] + rod * np.sin(th), c[1] - rod * np.cos(th))
    _segment(img, c, tip, max(0.1 * scale, 1.0), (204, 77, 77))
    _rect(img, c[0], c[1], 1.0, 1.0, (0, 0, 0))
    return img


# ---------------------------------------------------------------------- wrappers


def resize_frame(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an ``(h, w, 3)`` uint8 frame (area-averaged with Pillow)."""
    if frame.shape[:2] == (height, width):
        return frame
    return np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.BILINEAR))


_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def to_gray(frame: np.ndarray) -> np.ndarray:
    """RGB ``uint8`` → luminance ``uint8`` with a trailing channel of 1."""
    return (frame @ _LUMA).astype(np.uint8)[..., None]


class PixelObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Replace observations by a rendered frame of shape ``(H, W, 1 or 3)``.

    Uses ``drawer(env.unwrapped, H, W)`` when given, else ``env.render()`` (the env must
    have been made with ``render_mode="rgb_array"``) resized to ``(H, W)``, calling
    ``prepare(env.unwrapped)`` first when given (it sets up the env's renderer).

    Example:
        >>> import gymnasium as gym
        >>> env = PixelObservation(gym.make("CartPole-v1"), PixelSpec(), drawer=draw_cartpole)
        >>> env.reset(seed=0)[0].shape
        (64, 64, 3)
    """

    def __init__(
        self,
        env: gym.Env,
        spec: PixelSpec,
        drawer: Drawer | None = None,
        prepare: Prepare | None = None,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, spec=spec, drawer=drawer, prepare=prepare)
        gym.ObservationWrapper.__init__(self, env)
        self.spec_px = spec
        self.drawer = drawer
        self.prepare = prepare
        channels = 1 if spec.grayscale else 3
        self.observation_space = gym.spaces.Box(
            0, 255, (spec.height, spec.width, channels), dtype=np.uint8
        )
        self._state: np.ndarray | None = None

    def state_observation(self) -> np.ndarray:
        """The state observation behind the latest frame: what the env without its pixel
        view returned (a state teacher reads it; the agent never does)."""
        if self._state is None:
            raise EnvError("pixel view: no observation yet; reset the env first")
        return self._state

    def observation(self, observation: Any) -> np.ndarray:
        s = self.spec_px
        self._state = np.array(observation, copy=True)
        if self.drawer is not None:
            frame = self.drawer(self.env.unwrapped, s.height, s.width)
        else:
            if self.prepare is not None:
                self.prepare(self.env.unwrapped)
            rendered = self.env.render()
            if not isinstance(rendered, np.ndarray):
                raise EnvError(
                    "pixel view: env.render() returned no frame; make the env with "
                    "render_mode='rgb_array'"
                )
            frame = resize_frame(np.ascontiguousarray(rendered[..., :3]), s.height, s.width)
        return to_gray(frame) if s.grayscale else frame


def _image_shape(env: gym.Env) -> tuple[int, ...]:
    """The shape of ``env``'s (image) observations; an :class:`EnvError` if it has none."""
    shape = env.observation_space.shape
    if shape is None:
        raise EnvError(f"expected image observations, got {env.observation_space}")
    return shape


class ResizeObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Resize ``uint8`` image observations to ``(spec.height, spec.width)`` (Pillow, no OpenCV)."""

    def __init__(self, env: gym.Env, spec: PixelSpec) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, spec=spec)
        gym.ObservationWrapper.__init__(self, env)
        self.size = (spec.height, spec.width)
        c = _image_shape(env)[-1]
        self.observation_space = gym.spaces.Box(0, 255, (*self.size, c), dtype=np.uint8)

    def observation(self, observation: Any) -> np.ndarray:
        return resize_frame(np.asarray(observation), *self.size)


class ChannelFrameStack(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Stack the last ``k`` image observations on the channel axis (oldest first).

    ``(H, W, C)`` → ``(H, W, k * C)``, channels-last so SB3's CNNs take it; a reset fills
    the stack with the first frame.
    """

    def __init__(self, env: gym.Env, k: int) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, k=k)
        gym.Wrapper.__init__(self, env)
        h, w, c = _image_shape(env)
        self.k = k
        self.observation_space = gym.spaces.Box(0, 255, (h, w, k * c), dtype=np.uint8)
        self._frames: list[np.ndarray] = []

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(**kwargs)
        self._frames = [obs] * self.k
        return np.concatenate(self._frames, axis=-1), info

    def step(self, action: Any) -> tuple[np.ndarray, Any, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._frames = [*self._frames[1:], obs]
        return np.concatenate(self._frames, axis=-1), reward, terminated, truncated, info


@functools.cache
def _load_triton_before_rendering() -> None:
    """Import ``triton`` (if installed) before the first ``env.render()`` of the process.

    torch imports triton when it builds its first optimizer; on these machines, importing it
    after MuJoCo has created its EGL context crashes the process (segmentation fault in
    triton's import). Importing it first avoids that; nothing of triton is used. Once an EGL
    display exists (the process rendered before, outside a pixel view) the import itself
    would crash, so it is left to torch.
    """
    egl = sys.modules.get("mujoco.egl")
    if egl is not None and getattr(egl, "EGL_DISPLAY", None) is not None:
        return
    if importlib.util.find_spec("triton") is not None:
        importlib.import_module("triton")


def pixel_view(env: gym.Env, spec: PixelSpec, drawer: Drawer | None = None) -> gym.Env:
    """Wrap ``env`` into the pixel view ``spec`` (frame, then channel-axis frame stack).

    Frames come from ``drawer`` unless ``spec.renderer`` is ``render`` or there is none;
    then from ``env.render()``, prepared by the drawer's ``prepare_render`` if it has one, and
    for a MuJoCo env always with MuJoCo's costly effects off
    (:func:`rltransfer.envs.mujoco_camera.prepare_render`).
    """
    prepare: Prepare | None = None
    if spec.renderer == "numpy" and drawer is None:
        raise EnvError("pixels.renderer: 'numpy' but this env has no numpy drawer; use 'render'")
    if spec.renderer == "render" or drawer is None:
        prepare = getattr(drawer, "prepare_render", None)
        if prepare is None and hasattr(env.unwrapped, "mujoco_renderer"):
            from rltransfer.envs.mujoco_camera import prepare_render

            prepare = prepare_render
        drawer = None
        _load_triton_before_rendering()
    env = PixelObservation(env, spec, drawer, prepare)
    if spec.frame_stack > 1:
        env = ChannelFrameStack(env, spec.frame_stack)
    return env
