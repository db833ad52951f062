"""Frame rates of the pixel views, per family, on one CPU core.

The first table prints two numbers per view: ``draw`` (frames/s of the frame drawing alone)
and ``env`` (frames/s of ``env.step`` returning a pixel observation, resets included), with
each family's default renderer (``auto``: the numpy drawer where there is one).

The second puts the planar MuJoCo robots' two renderers side by side at 64x64: the numpy
drawer (``draw``, and ``env`` for a 64x64 grayscale 4-stack view), and MuJoCo's own renderer
through ``MUJOCO_GL=egl``: ``env.render()`` as Gymnasium ships it (``stock``: shadows,
reflections, skybox, haze), the same with the pixel view's preparation (``plain``: those
effects off, the drawer's camera), and the view's ``env`` rate over stock frames (``stock
env``, the view as it was before the effects went off) and with ``renderer: render``.

Usage::

    MUJOCO_GL=egl python benchmarks/pixel_fps.py            # both tables
    python benchmarks/pixel_fps.py --families cartpole pendulum --seconds 2 --robots
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import rltransfer.envs as rte  # noqa: E402
from rltransfer.envs.knobs import resolve_callable  # noqa: E402
from rltransfer.envs.mujoco_camera import prepare_render  # noqa: E402
from rltransfer.envs.pixels import ChannelFrameStack, PixelObservation, PixelSpec  # noqa: E402

VIEWS = {
    "rgb": {"size": 64},
    "gray-stack4": {"size": 64, "grayscale": True, "frame_stack": 4},
}
ROBOTS = ["hopper", "walker2d", "halfcheetah", "reacher", "invertedpendulum",
          "inverteddoublependulum"]
STACK = {"size": 64, "grayscale": True, "frame_stack": 4}
SLOW = {
    "hopper",
    "halfcheetah",
    "walker2d",
    "ant",
    "reacher",
    "invertedpendulum",
    "inverteddoublependulum",
    "acrobot",
    "mountaincar",
}


def _timed(fn, seconds: float, max_frames: int) -> float:
    """Calls of ``fn`` per second over about ``seconds`` (at most ``max_frames`` calls)."""
    fn()  # warm up (first MuJoCo/pygame render creates its context)
    n, start = 0, time.perf_counter()
    while n < max_frames and (n < 5 or time.perf_counter() - start < seconds):
        fn()
        n += 1
    return n / (time.perf_counter() - start)


def bench_view(family: str, pixels: dict | None, seconds: float, max_frames: int) -> tuple:
    """(draw fps or None, env fps) of one family's pixel view."""
    env = rte.make(family, pixels=pixels)
    step = _stepper(env)
    draw = None
    fam = rte.get_family(family)
    if fam.drawer and pixels is not None:
        drawer = resolve_callable(fam.drawer, what="drawer")
        u = env.unwrapped
        draw = _timed(lambda: drawer(u, 64, 64), seconds, max_frames)
    return draw, _timed(step, seconds, max_frames)


def _stepper(env):
    env.reset(seed=0)
    env.action_space.seed(0)

    def step() -> None:
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()

    return step


def bench_robot(family: str, seconds: float) -> dict[str, float]:
    """Frames/s of one planar robot's renderers at 64x64 (see the module's docstring)."""
    out = {}
    drawer = resolve_callable(rte.get_family(family).drawer, what="drawer")
    env = rte.make(family, pixels={**STACK, "renderer": "numpy"})
    u = env.unwrapped
    env.reset(seed=0)
    out["numpy draw"] = _timed(lambda: drawer(u, 64, 64), seconds, 100_000)
    out["numpy env"] = _timed(_stepper(env), seconds, 100_000)
    stock = rte.make(family, render_mode="rgb_array", width=64, height=64)
    stock.reset(seed=0)
    out["stock draw"] = _timed(stock.render, seconds, 200)

    def plain() -> None:
        getattr(drawer, "prepare_render", prepare_render)(stock.unwrapped)
        stock.render()

    out["plain draw"] = _timed(plain, seconds, 2000)
    # the view as it was before the effects went off: the same wrappers over stock renders
    spec = PixelSpec.parse(STACK)
    assert spec is not None
    effects = rte.make(family, render_mode="rgb_array", width=64, height=64)
    view = ChannelFrameStack(PixelObservation(effects, spec), spec.frame_stack)
    out["stock env"] = _timed(_stepper(view), seconds, 200)
    effects.close()
    stock.close()
    env = rte.make(family, pixels={**STACK, "renderer": "render"})
    out["render env"] = _timed(_stepper(env), seconds, 2000)
    env.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", nargs="*", default=None, help="families to measure")
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument("--all-cores", action="store_true", help="do not pin to one core")
    parser.add_argument("--robots", nargs="*", default=None,
                        help="planar MuJoCo robots for the numpy-vs-MuJoCo table "
                             "(default: all six; --robots alone: none)")
    args = parser.parse_args()
    if not args.all_cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    names = args.families or [
        "cartpole",
        "pendulum",
        "acrobot",
        "mountaincar",
        "invertedpendulum",
        "hopper",
        "minigrid-doorkey",
    ]
    print(f"{'family':<18} {'view':<12} {'shape':<14} {'draw fps':>10} {'env fps':>10}")
    for name in names:
        views = {"native": None} if name.startswith("minigrid") else VIEWS
        for view, pixels in views.items():
            max_frames = 200 if name in SLOW else 100_000
            env = rte.make(name, pixels=pixels)
            shape = str(env.observation_space.shape)
            draw, fps = bench_view(name, pixels, args.seconds, max_frames)
            draw_s = f"{draw:10.0f}" if draw is not None else f"{'-':>10}"
            print(f"{name:<18} {view:<12} {shape:<14} {draw_s} {fps:10.0f}", flush=True)
    robots = ROBOTS if args.robots is None else args.robots
    if not robots:
        return
    cols = ["numpy draw", "numpy env", "stock draw", "plain draw", "stock env", "render env"]
    print("\nplanar robots, 64x64 frames/s (env: grayscale 4-stack view, steps/s); "
          "numpy: the drawer; stock, plain, render: MuJoCo's renderer")
    print(f"{'robot':<24}" + "".join(f"{c:>12}" for c in cols) + f"{'numpy/plain':>13}")
    for name in robots:
        r = bench_robot(name, args.seconds)
        print(f"{name:<24}" + "".join(f"{r[c]:12.0f}" for c in cols)
              + f"{r['numpy draw'] / r['plain draw']:12.1f}x", flush=True)


if __name__ == "__main__":
    main()
