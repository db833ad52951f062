"""The cost of rltransfer over plain stable-baselines3, side by side in one process.

Times an rltransfer run (``transfer(None, env, method="scratch")`` + ``learn_with_eval``)
against plain SB3 (``PPO(...)`` + ``learn`` with an ``EvalCallback``) on the same env, the same
hyperparameters (the env's preset, passed to both), the same steps and the same evaluation
schedule (every N steps over M episodes, plus the step-0 evaluation rltransfer makes, which
plain SB3 gets from an explicit ``evaluate_policy`` call; its evaluation env is re-seeded
before each evaluation, as rltransfer's is, so both sides play the same episodes and end
with the same return, which the script checks). Repeats alternate, so drift in the
machine's load hits both; the ratio of the medians is printed. Target: at most 1.05.

Usage::

    python benchmarks/overhead.py                     # CartPole-v1, 20k steps, 3 repeats
    python benchmarks/overhead.py --steps 50000 --repeats 5 --eval-every 5000
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")


def plain_sb3(env_id: str, steps: int, every: int, episodes: int, seed: int
              ) -> tuple[float, float]:
    """PPO from SB3 alone: make_vec_env, the preset's hyperparameters, EvalCallback.

    The evaluation env is re-seeded before each evaluation (as rltransfer does), so both
    sides evaluate the same episodes and do the same work. Returns (seconds, last mean
    evaluation return).
    """
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecEnvWrapper

    from rltransfer.presets import resolve_preset

    eval_seed = seed + 1_000_003

    class Reseeded(VecEnvWrapper):
        """Every evaluation starts from the same episodes."""

        def reset(self):
            self.venv.seed(eval_seed)
            return self.venv.reset()

        def step_wait(self):
            return self.venv.step_wait()

    p = resolve_preset(env_id, "ppo", None, gym_id=env_id)
    t0 = time.perf_counter()
    venv = make_vec_env(env_id, n_envs=p.n_envs, seed=seed)
    eval_env = Reseeded(make_vec_env(env_id, n_envs=1, seed=eval_seed))
    model = PPO(p.policy, venv, seed=seed, device="cpu", verbose=0,
                policy_kwargs=p.policy_kwargs.to_kwargs(), **p.hyperparams())
    evaluate_policy(model, eval_env, n_eval_episodes=episodes, deterministic=True)  # step 0
    # EvalCallback counts calls (one per vectorized step), rltransfer counts env steps
    cb = EvalCallback(eval_env, n_eval_episodes=episodes, eval_freq=max(every // p.n_envs, 1),
                      deterministic=True, verbose=0, warn=False)
    model.learn(steps, callback=cb)
    return time.perf_counter() - t0, float(cb.last_mean_reward)


def with_rltransfer(env_id: str, steps: int, every: int, episodes: int, seed: int
                    ) -> tuple[float, float]:
    """The same through rltransfer: transfer(None, ..., method='scratch') + learn_with_eval."""
    from rltransfer.agent import learn_with_eval, transfer

    t0 = time.perf_counter()
    model = transfer(None, env_id, method="scratch", algo="ppo", seed=seed)
    rows = learn_with_eval(model, steps, eval_every=every, eval_episodes=episodes)
    return time.perf_counter() - t0, float(rows[-1]["mean_return"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--env", default="CartPole-v1")
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--eval-every", type=int, default=2_000)
    ap.add_argument("--eval-episodes", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="Training and eval env are not of the same type")
    # warm both paths up (imports, first-call costs) on a tiny budget
    plain_sb3(args.env, 512, 256, 1, args.seed)
    with_rltransfer(args.env, 512, 256, 1, args.seed)

    times: dict[str, list[float]] = {"sb3": [], "rltransfer": []}
    finals: dict[str, set[float]] = {"sb3": set(), "rltransfer": set()}
    for i in range(args.repeats):
        order = [("sb3", plain_sb3), ("rltransfer", with_rltransfer)]
        if i % 2:
            order.reverse()
        for name, fn in order:
            seconds, final = fn(args.env, args.steps, args.eval_every, args.eval_episodes,
                                args.seed)
            times[name].append(seconds)
            finals[name].add(final)
            print(f"repeat {i + 1}: {name:10s} {seconds:7.2f} s  (last evaluation return "
                  f"{final:.1f})", flush=True)
    sb3 = statistics.median(times["sb3"])
    rlt = statistics.median(times["rltransfer"])
    print(f"\n{args.env}, {args.steps} steps, evaluation every {args.eval_every} steps over "
          f"{args.eval_episodes} episodes, {args.repeats} alternating repeats (medians):")
    print(f"  plain SB3 learn + EvalCallback:   {sb3:7.2f} s")
    print(f"  rltransfer transfer + learn_with_eval: {rlt:7.2f} s")
    print(f"  ratio rltransfer / SB3: {rlt / sb3:.3f}  (target <= 1.05)")
    same = finals["sb3"] == finals["rltransfer"] and len(finals["sb3"]) == 1
    print("  same work on both sides (identical final evaluation return): "
          + ("yes" if same else f"NO: {finals}"))


if __name__ == "__main__":
    main()
