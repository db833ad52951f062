"""Evaluation during training: a curve of evaluation return against environment steps.

:class:`EvalCurveCallback` is an SB3 callback (it overrides ``_on_step`` and
``_on_training_start`` only). It evaluates the policy before the first update (step 0, the
*jumpstart*) and then every ``every`` environment steps, on an evaluation env that is
re-seeded identically each time, so two runs with one seed give the same curve. Each row
goes to a CSV file (``step,mean_return,std_return,episodes,wall_time``, and
``forward_velocity`` for MuJoCo locomotion envs) and to the model's
SB3 logger as ``eval/mean_return`` against environment steps (:func:`log_to` points that logger
at one TensorBoard folder).

:class:`DivergenceCallback` stops a run whose parameters, losses, rewards or returns become
NaN or infinite, raising :class:`DivergedError` ("diverged at step N: ... is nan") instead of
letting it write a curve of NaNs. An evaluation whose return is not finite raises it too.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from copy import deepcopy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import Logger, configure
from stable_baselines3.common.vec_env import VecEnv, unwrap_vec_normalize

from rltransfer.rundir import append_curve

EVAL_TAG = "eval/mean_return"
"""TensorBoard tag of the evaluation curve (:data:`rltransfer.report.EVAL_TAG` is the same)."""


class DivergedError(RuntimeError):
    """Training produced a NaN or infinite value: ``diverged at step N: <what> is nan``.

    Raised by :class:`DivergenceCallback` (and by the evaluation callback for a non-finite
    evaluation return); the experiment harness records the run as failed with this message.
    """

    def __init__(self, step: int, what: str) -> None:
        super().__init__(f"diverged at step {int(step)}: {what}")
        self.step = int(step)
        self.what = what


def evaluate(model: Any, eval_env: VecEnv, *, episodes: int, seed: int,
             deterministic: bool = True) -> dict[str, float]:
    """Mean and std of the return over ``episodes`` episodes, from a re-seeded ``eval_env``.

    Normalization statistics are copied from the model's training env first; the eval env
    never updates them.

    Example:
        >>> from rltransfer.agent import build_agent, make_eval_env
        >>> model = build_agent("cartpole", seed=0)
        >>> stats = evaluate(model, make_eval_env(model), episodes=3, seed=1)
        >>> sorted(stats), stats["episodes"]
        (['episodes', 'mean', 'std'], 3)
    """
    train_norm = model.get_vec_normalize_env()
    eval_norm = unwrap_vec_normalize(eval_env)
    if train_norm is not None and eval_norm is not None:
        eval_norm.obs_rms = deepcopy(train_norm.obs_rms)
        eval_norm.ret_rms = deepcopy(train_norm.ret_rms)
    eval_env.seed(seed)
    velocity = _ForwardVelocity(eval_env.num_envs)
    episode_returns, _ = evaluate_policy(model, eval_env, n_eval_episodes=episodes,
                                         deterministic=deterministic, return_episode_rewards=True,
                                         callback=velocity)
    returns = np.asarray(episode_returns, dtype=np.float64)
    out = {"mean": float(returns.mean()), "std": float(returns.std()), "episodes": int(episodes)}
    if velocity.episodes:
        out["forward_velocity"] = float(np.mean(velocity.episodes))
    return out


class _ForwardVelocity:
    """``evaluate_policy`` callback: each episode's mean forward velocity, from the
    ``x_velocity`` that Gymnasium's MuJoCo locomotion envs put in ``info`` (none elsewhere),
    so that standing still cannot pass for learning."""

    def __init__(self, n_envs: int) -> None:
        self.sums = np.zeros(n_envs)
        self.counts = np.zeros(n_envs, dtype=np.int64)
        self.episodes: list[float] = []

    def __call__(self, local: dict[str, Any], _globals: dict[str, Any]) -> None:
        info, i = local.get("info") or {}, int(local.get("i", 0))
        if "x_velocity" not in info:
            return
        self.sums[i] += float(info["x_velocity"])
        self.counts[i] += 1
        if local.get("done"):
            self.episodes.append(self.sums[i] / max(self.counts[i], 1))
            self.sums[i], self.counts[i] = 0.0, 0


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
        if self.num_timesteps == 0 or not self.rows:
            self._evaluate()
            self._next = self.num_timesteps + self.every

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._evaluate()
            while self._next <= self.num_timesteps:
                self._next += self.every
        return True

    def evaluate_now(self) -> dict[str, float]:
        """Evaluate the model as it is now (after training: its final point); returns the row."""
        self.num_timesteps = int(self.model.num_timesteps)
        if not self.rows or self.rows[-1]["step"] != self.num_timesteps:
            self._evaluate()
        return self.rows[-1]

    def _evaluate(self) -> None:
        stats = evaluate(self.model, self.eval_env, episodes=self.episodes, seed=self.seed)
        for key in ("mean", "std"):
            if not math.isfinite(stats[key]):  # no row of NaNs on the curve
                raise DivergedError(self.num_timesteps,
                                    f"the evaluation return's {key} is {_kind(stats[key])}")
        row = {"step": int(self.num_timesteps), "mean_return": stats["mean"],
               "std_return": stats["std"], "episodes": self.episodes,
               "wall_time": round(time.perf_counter() - self._t0, 3)}
        if "forward_velocity" in stats:
            row["forward_velocity"] = stats["forward_velocity"]
        self.rows.append(row)
        runtime = getattr(self.model, "rlt", None)  # methods that follow the target's returns
        if runtime is not None:
            runtime.evaluations.append(row)
        log_eval(self.logger, row)
        if self.csv_path is not None:
            append_curve(self.csv_path, row)
        if self.on_eval is not None:
            self.on_eval(row)


def log_eval(logger: Logger, row: dict[str, float]) -> None:
    """Write an evaluation row to ``logger`` as ``eval/mean_return`` and ``eval/std_return``
    (and ``eval/forward_velocity``) at its environment step (with whatever training scalars
    are pending)."""
    logger.record(EVAL_TAG, row["mean_return"])
    logger.record("eval/std_return", row["std_return"])
    if "forward_velocity" in row:
        logger.record("eval/forward_velocity", row["forward_velocity"])
    logger.dump(step=int(row["step"]))


def log_to(model: Any, folder: str | os.PathLike) -> Logger:
    """Send ``model``'s SB3 logger to TensorBoard event files in ``folder`` itself.

    SB3 alone (``tensorboard_log=``) writes into a new ``<tb_log_name>_<n>`` subfolder at
    each ``learn``; with this logger, set through SB3's ``set_logger``, the training scalars
    (``rollout/*``, ``train/*``, ``time/*``), the evaluation curve (:func:`log_eval`) and
    what methods log all land in ``folder``: one TensorBoard run. Prints too when the model
    is verbose. The caller closes the logger when training ends.
    """
    formats = ["stdout", "tensorboard"] if getattr(model, "verbose", 0) >= 1 else ["tensorboard"]
    logger = configure(str(folder), formats)
    model.set_logger(logger)
    return logger


class DivergenceCallback(BaseCallback):
    """Raise :class:`DivergedError` as soon as training produces a NaN or an infinity.

    Checked (each cheap next to a training step):

    - after every environment step: the rewards SB3 received and the returns of episodes
      that just ended (``self.locals["rewards"]``, ``infos[i]["episode"]["r"]``);
    - after every update (at the start of the next rollout, and at the end of training):
      every parameter of the policy (one sum per tensor; the exact tensor is named) and
      every loss SB3 logged (``train/*loss*`` in the logger, where SB3 exposes them).

    :func:`check_model` gives the same diagnosis outside a callback (used when an update
    itself fails on NaN logits, see :func:`rltransfer.agent.learn_with_eval`).
    """

    def __init__(self) -> None:
        super().__init__(verbose=0)

    def _on_step(self) -> bool:
        rewards = self.locals.get("rewards")
        if rewards is not None:
            r = np.asarray(rewards, dtype=np.float64)
            if not np.isfinite(r).all():
                raise DivergedError(self.num_timesteps,
                                    f"the reward is {_kind(r[~np.isfinite(r)][0])}")
        for info in self.locals.get("infos") or ():
            ep = info.get("episode") if isinstance(info, dict) else None
            if ep is not None and not math.isfinite(float(ep.get("r", 0.0))):
                raise DivergedError(self.num_timesteps,
                                    f"the episode return is {_kind(float(ep['r']))}")
        return True

    def _on_rollout_start(self) -> None:
        self._check()

    def _on_training_end(self) -> None:
        self._check()

    def _check(self) -> None:
        what = check_model(self.model)
        if what is not None:
            raise DivergedError(self.num_timesteps, what)


def check_model(model: Any) -> str | None:
    """What is NaN or infinite in ``model`` (a parameter, a logged loss), or ``None``."""
    params = [(n, p.detach()) for n, p in model.policy.named_parameters()]
    if params and not bool(torch.isfinite(torch.stack([p.sum() for _, p in params])).all()):
        for name, p in params:  # a sum may also overflow: name the tensor that is not finite
            bad = p[~torch.isfinite(p)]
            if bad.numel():
                return f"parameter {name!r} is {_kind(float(bad[0]))}"
    logger = getattr(model, "_logger", None)  # set by learn(); absent before
    for key, value in (getattr(logger, "name_to_value", None) or {}).items():
        if ("loss" in key and isinstance(value, float | np.floating | int)
                and not math.isfinite(float(value))):
            return f"{key} is {_kind(float(value))}"
    return None


def learn_checked(model: Any, steps: int, callback: Any = None, **learn_kwargs: Any) -> Any:
    """``model.learn(steps, ...)`` that stops with :class:`DivergedError` on NaN or inf.

    A :class:`DivergenceCallback` runs first, before ``callback`` (so no curve row is written
    at a step that diverged). An update that fails inside torch on NaN logits (``ValueError:
    ... found invalid values``) is reported the same way, naming what is not finite.
    """
    given = callback if isinstance(callback, list) else [] if callback is None else [callback]
    try:
        return model.learn(steps, callback=[DivergenceCallback(), *given], **learn_kwargs)
    except ValueError as exc:
        if "invalid values" not in str(exc):
            raise
        what = check_model(model) or (
            f"the policy's output is nan/inf ({str(exc).splitlines()[0][:120]})")
        raise DivergedError(model.num_timesteps, what) from exc


def _kind(x: float) -> str:
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
