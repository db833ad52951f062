"""How closely the numpy drawings of the planar MuJoCo robots match MuJoCo's own render.

For each robot, at 2 reset states and ``--poses`` random joint configurations (the test's
poses: joints within their ranges, the root moved up to 1 m along x and kept above the
floor), compares the pixels showing a geom other than the floor in the numpy labels
(:func:`rltransfer.envs.mujoco_draw.draw_planar`) and in MuJoCo's segmentation render of
the same state with the same camera (:func:`rltransfer.envs.mujoco_camera.render_labels`),
and prints their intersection over union: over every such geom (the robot and fixed props
such as the rail or the arena) and over the robot's moving bodies alone.

``--png`` writes a side-by-side picture: MuJoCo's frame, the numpy frame and the two
silhouettes overlaid (white: both; red: numpy only; blue: MuJoCo only).

Usage::

    MUJOCO_GL=egl python benchmarks/mujoco_draw_fidelity.py
    MUJOCO_GL=egl python benchmarks/mujoco_draw_fidelity.py --png docs/mujoco_numpy_vs_render.png
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

import rltransfer.envs as rte  # noqa: E402
from rltransfer.envs import mujoco_draw as md  # noqa: E402
from rltransfer.envs.mujoco_camera import (  # noqa: E402
    prepare_render,
)

ROBOTS = ["hopper", "walker2d", "halfcheetah", "reacher", "invertedpendulum",
          "inverteddoublependulum"]


def measure(family: str, size: int, poses: int, seed: int) -> tuple[list, list[np.ndarray]]:
    """IoU pairs (every non-plane geom, moving bodies) per pose; the picture's three tiles."""
    camera = getattr(md, f"draw_{family}").camera
    env = rte.make(family, render_mode="rgb_array", width=size, height=size)
    out, tiles = [], []
    for c in md.compare_poses(env, camera, size, poses=poses, seed=seed):
        out.append(c.iou)
        if c.index == 2:  # the first random pose goes in the picture
            u = env.unwrapped
            prepare_render(u, camera)
            a, b = np.isin(c.ours, c.solid), np.isin(c.theirs, c.solid)
            overlay = np.zeros((size, size, 3), np.uint8)
            overlay[a & ~b], overlay[b & ~a], overlay[a & b] = (255, 60, 60), (60, 120, 255), 255
            tiles = [np.asarray(env.render()), md.draw_planar(u, size, size, camera), overlay]
    env.close()
    return out, tiles


def picture(tiles: dict[str, list[np.ndarray]], path: str, scale: int) -> None:
    rows = ["MuJoCo\n(renderer: render)", "numpy\n(renderer: numpy)",
            "silhouettes\nwhite: both\nred: numpy only\nblue: MuJoCo only"]
    size = next(iter(tiles.values()))[0].shape[0] * scale
    left, top, pad = 120, 22, 4
    sheet = Image.new("RGB", (left + len(tiles) * (size + pad), top + 3 * (size + pad)),
                      "white")
    ink = ImageDraw.Draw(sheet)
    for c, (name, row) in enumerate(tiles.items()):
        x = left + c * (size + pad)
        ink.text((x + 4, 5), name, fill="black")
        for r, tile in enumerate(row):
            y = top + r * (size + pad)
            sheet.paste(Image.fromarray(tile).resize((size, size), Image.Resampling.NEAREST),
                        (x, y))
            if c == 0:
                ink.multiline_text((4, y + size // 2 - 12), rows[r], fill="black")
    sheet.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=64, help="frame size in pixels")
    parser.add_argument("--poses", type=int, default=10, help="random poses per robot")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", default=None, help="write the side-by-side picture here")
    parser.add_argument("--scale", type=int, default=2, help="picture magnification")
    args = parser.parse_args()
    print(f"{args.size}x{args.size}, 2 resets + {args.poses} random poses per robot; IoU of "
          "the pixels showing a non-floor geom (numpy vs MuJoCo's segmentation render)")
    print(f"{'robot':<24}{'all min':>9}{'all mean':>10}{'robot min':>11}{'robot mean':>12}")
    tiles = {}
    for name in ROBOTS:
        ious, tiles[name] = measure(name, args.size, args.poses, args.seed)
        every, robot = np.array(ious).T
        print(f"{name:<24}{every.min():9.3f}{every.mean():10.3f}{robot.min():11.3f}"
              f"{robot.mean():12.3f}", flush=True)
    if args.png:
        picture(tiles, args.png, args.scale)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
