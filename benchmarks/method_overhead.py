"""Wall time per environment step of each training-time method, divided by ``finetune``'s.

Same source, env, preset, seed and number of steps for every method; ``learn()`` alone (no
evaluation), one torch thread. Repeats alternate between methods, so drift in the machine's
load hits all of them; the ratio of the medians is printed. Goal (issue #10): at most 1.3.

- PPO on CartPole-v1 with the ``cartpole`` preset, source: PPO trained 20k steps on the
  standard pole, target: ``cartpole`` with the long heavy pole.
- SAC on Pendulum-v1 with the ``pendulum`` preset, source: SAC trained 3k steps, target: the
  heavy bob.

``replay_warmstart`` does fewer gradient steps (none during its warm start), so its ratio is
below 1 by construction; it is listed for completeness.

Usage::

    python benchmarks/method_overhead.py                  # ~10 min on 2 cores
    python benchmarks/method_overhead.py --ppo-steps 50000 --sac-steps 5000 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

CASES = {
    "ppo": {"env": "cartpole", "knobs": {"length": 1.0, "masspole": 0.5},
            "methods": ["finetune", "kickstart", "critic_warmup", "jsrl"]},
    "sac": {"env": "pendulum", "knobs": {"m": 1.5},
            "methods": ["finetune", "kickstart", "critic_warmup", "jsrl", "replay_warmstart"]},
}


def time_method(source, algo: str, method: str, steps: int, seed: int) -> float:
    """Seconds per environment step of ``learn(steps)`` for one method."""
    import rltransfer as rlt

    case = CASES[algo]
    opts = {"replay_warmstart": {"steps": steps // 5}, "critic_warmup": {"steps": steps // 5}}
    spec = {method: opts[method]} if method in opts else method
    model = rlt.transfer(source, case["env"], knobs=case["knobs"], method=spec, seed=seed)
    t0 = time.perf_counter()
    model.learn(steps)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ppo-steps", type=int, default=20_000)
    parser.add_argument("--sac-steps", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=list(CASES), default=None)
    args = parser.parse_args()

    import torch

    import rltransfer as rlt

    torch.set_num_threads(1)
    tmp = tempfile.mkdtemp(prefix="rlt-bench-")
    for algo, case in CASES.items():
        if args.only and algo != args.only:
            continue
        steps = args.ppo_steps if algo == "ppo" else args.sac_steps
        src_steps = 20_000 if algo == "ppo" else 3_000
        source = rlt.pretrain(case["env"], algo=algo, steps=src_steps, seed=args.seed,
                              out=os.path.join(tmp, algo), progress_bar=False)
        times: dict[str, list[float]] = {m: [] for m in case["methods"]}
        for r in range(args.repeats):
            for m in case["methods"]:
                times[m].append(time_method(source, algo, m, steps, args.seed + r))
        base = statistics.median(times["finetune"])
        print(f"\n{algo} on {case['env']} {case['knobs']}, {steps} steps, "
              f"{args.repeats} alternating repeats (median)")
        print(f"{'method':<18}{'ms/step':>9}{'steps/s':>9}{'÷ finetune':>12}")
        for m, ts in times.items():
            med = statistics.median(ts)
            print(f"{m:<18}{med * 1e3:>9.3f}{1 / med:>9.0f}{med / base:>12.2f}")


if __name__ == "__main__":
    main()
