"""Frozen-encoder PPO against end-to-end PPO of the same network on a pixel task.

Side by side in one process, alternating, same env (CartPole pixel view, 64x64 RGB), same
preset (agents/ppo.yaml `cartpole-pixels`: NatureCNN, 8 envs, n_steps 128, 4 epochs), one
torch thread. Prints environment steps per second of each and the ratio.

    python benchmarks/frozen_encoder.py [--steps 4096] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import torch

import rltransfer as rlt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4096, help="env steps per timed run")
    parser.add_argument("--repeats", type=int, default=2, help="alternating repeats")
    parser.add_argument("--size", type=int, default=64, help="frame size")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pixels = {"size": args.size}
    with tempfile.TemporaryDirectory() as tmp:
        src = rlt.pretrain("cartpole", pixels=pixels, algo="ppo", steps=0, seed=0,
                           out=os.path.join(tmp, "src"), eval_episodes=1, progress_bar=False)
        variants = {
            "end-to-end": {"method": "scratch"},
            "frozen": {"method": "frozen"},
            "frozen, no cache": {"method": {"frozen": {"cache": False}}},
        }
        rates: dict[str, list[float]] = {k: [] for k in variants}
        for rep in range(args.repeats):
            for name, kw in variants.items():
                model = rlt.transfer(src, "cartpole", pixels=pixels, seed=rep + 1, **kw)
                t0 = time.perf_counter()
                model.learn(args.steps)
                rates[name].append(args.steps / (time.perf_counter() - t0))
    base = max(rates["end-to-end"])
    print(f"PPO, CartPole pixels {args.size}x{args.size}, {args.steps} steps x "
          f"{args.repeats} repeats, 1 torch thread (best of repeats)")
    for name, r in rates.items():
        print(f"  {name:18s} {max(r):8.1f} env steps/s   x{max(r) / base:.2f} vs end-to-end")


if __name__ == "__main__":
    main()
