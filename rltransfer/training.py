"""Evaluation during training: a curve of evaluation return against environment steps.

:class:`EvalCurveCallback` is an SB3 callback (it overrides ``_on_step`` and
``_on_training_start`` only). It evaluates the policy before the first update (step 0, the
*jumpstart*) and then every ``every`` environment steps, on an evaluation env that is
re-seeded identically each time, so two runs with one seed give the same curve. Each row
goes to a CSV file (``step,mean_return,std_return,episodes,wall_time``) and to TensorBoard
as ``eval/mean_return`` against environment steps.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable
from copy import deepcopy
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, unwrap_vec_normalize

CURVE_HEADER = ("step", "mean_return", "std_return", "episodes", "wall_time")


def evaluate(model: Any, eval_env: VecEnv, *, episodes: int, seed: int,
             deterministic: bool = True) -> dict[str, float]:
    """Mean and std of the return over ``episodes`` episodes, from a re-seeded ``eval_env``.

    Normalization statistics are copied from the model's training env first; the eval env
    never updates them.
    """
    train_norm = model.get_vec_normalize_env()
    eval_norm = unwrap_vec_normalize(eval_env)
    if train_norm is not None and eval_norm is not None:
        eval_norm.obs_rms = deepcopy(train_norm.obs_rms)
        eval_norm.ret_rms = deepcopy(train_norm.ret_rms)
    eval_env.seed(seed)
    returns, _ = evaluate_policy(model, eval_env, n_eval_episodes=episodes,
                                 deterministic=deterministic, return_episode_rewards=True)
    returns = np.asarray(returns, dtype=np.float64)
    return {"mean": float(returns.mean()), "std": float(returns.std()), "episodes": int(episodes)}


class EvalCurveCallback(BaseCallback):
    """Evaluate at step 0 and every ``every`` steps; write CSV rows and TensorBoard scalars.

    Args:
        eval_env: a VecEnv built like the training env (normalization synced before each use).
        every: environment steps between evaluations (counted over all parallel envs).
        episodes: evaluation episodes per point.
        seed: seed of the evaluation episodes (the same at every point).
        csv_path: where the curve goes (rows appended and flushed as they come), or None.
        on_eval: optional function called with each row (for progress display).
    """

    def __init__(self, eval_env: VecEnv, *, every: int, episodes: int, seed: int,
                 csv_path: str | os.PathLike | None = None,
                 on_eval: Callable[[dict[str, float]], None] | None = None) -> None:
        super().__init__(verbose=0)
        if every <= 0:
            raise ValueError(f"eval every={every!r}: must be a positive number of steps")
        if episodes <= 0:
            raise ValueError(f"eval episodes={episodes!r}: must be >= 1")
        self.eval_env = eval_env
        self.every = int(every)
        self.episodes = int(episodes)
        self.seed = int(seed)
        self.csv_path = Path(csv_path) if csv_path is not None else None
        self.on_eval = on_eval
        self.rows: list[dict[str, float]] = []
        self._next = 0
        self._t0 = time.perf_counter()

    def _on_training_start(self) -> None:
        self._t0 = time.perf_counter()
        if self.csv_path is not None and not self.csv_path.exists():
            self.csv_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.csv_path, "w", newline="") as fh:
                csv.writer(fh).writerow(CURVE_HEADER)
        if self.num_timesteps == 0 or not self.rows:
            self._evaluate()
            self._next = self.num_timesteps + self.every

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._evaluate()
            while self._next <= self.num_timesteps:
                self._next += self.every
        return True

    def _evaluate(self) -> None:
        stats = evaluate(self.model, self.eval_env, episodes=self.episodes, seed=self.seed)
        row = {"step": int(self.num_timesteps), "mean_return": stats["mean"],
               "std_return": stats["std"], "episodes": self.episodes,
               "wall_time": round(time.perf_counter() - self._t0, 3)}
        self.rows.append(row)
        runtime = getattr(self.model, "rlt", None)  # methods that follow the target's returns
        if runtime is not None:
            runtime.evaluations.append(row)
        self.logger.record("eval/mean_return", row["mean_return"])
        self.logger.record("eval/std_return", row["std_return"])
        self.logger.dump(step=row["step"])
        if self.csv_path is not None:
            with open(self.csv_path, "a", newline="") as fh:
                csv.writer(fh).writerow([row[k] for k in CURVE_HEADER])
        if self.on_eval is not None:
            self.on_eval(row)


def read_curve(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a curve CSV into arrays keyed by column name."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {k: np.asarray([float(r[k]) for r in rows]) for k in CURVE_HEADER}
