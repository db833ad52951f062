"""``jsrl``: jump-start RL (Uchendu et al. 2022). The source policy acts for the first ``h``
steps of each training episode, the target after; ``h`` shrinks to 0.

- ``curriculum: stages``: ``h`` starts at ``h_max`` (default: the env's step limit) and moves
  down one of ``stages`` equal steps whenever the moving average of the last ``window``
  training-episode returns at the current ``h`` reaches ``tolerance`` times the best such
  average so far (for negative returns: comes within ``(1 - tolerance) * |best|`` of it).
  These are the returns of the combined policy (guide, then target) that the training
  episodes already measure, as in the paper, so the curriculum costs no extra env steps.
- ``curriculum: random``: each episode draws ``h`` uniformly from the ``stages + 1`` values
  ``0, h_max/stages, ..., h_max`` (JSRL-Random).

Every step the guide takes is a training step of the target's budget and on its curve.
PPO's policy and entropy losses use only the steps the target acted in (its value function
learns from all); SAC's replay buffer takes the guide's transitions with the executed action.
Evaluation measures the target alone.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field
from stable_baselines3.common.callbacks import BaseCallback

from rltransfer.methods.base import (
    BuildSpec,
    Method,
    MethodContext,
    OptionalRoles,
    TransferError,
    TransferLog,
)
from rltransfer.methods.guide import GuideWrapper, MarkGuidedSteps, episode_limit
from rltransfer.methods.registry import register_method
from rltransfer.methods.weights import move_roles_if_any
from rltransfer.sb3 import algo_name
from rltransfer.sb3.ppo import GuidedRolloutBuffer


@register_method
class JSRL(Method):
    """The source policy guides the first h steps of each training episode; h shrinks."""

    name = "jsrl"
    summary = "the source policy acts for the first h steps of each episode; h shrinks to 0"
    needs_teacher = True

    h_max: int | None = Field(default=None, gt=0)
    """The first guide horizon (default: the env's step limit)."""
    curriculum: Literal["stages", "random"] = "stages"
    """``stages``: h shrinks when the target keeps up; ``random``: h drawn per episode."""
    stages: int = Field(default=10, gt=0)
    """How many equal steps h takes from h_max to 0."""
    tolerance: float = Field(default=0.9, gt=0, le=1)
    """``stages``: fraction of the best moving-average return that moves h down a stage."""
    window: int = Field(default=5, gt=0)
    """``stages``: training episodes averaged at each h before h can move."""
    roles: OptionalRoles = ()
    """Weights that start from the source (default none: the target starts fresh, as in the
    paper; ``[all]`` starts it as finetune would)."""
    deterministic: bool = False
    """Whether the guide acts deterministically (default: it samples)."""

    @property
    def label(self) -> str:
        extra = [] if self.curriculum == "stages" else ["random"]
        if self.roles:
            extra.append(",".join(self.roles))
        return "jsrl" + (f"[{';'.join(extra)}]" if extra else "")

    def configure(self, build: BuildSpec) -> None:
        if build.algo == "ppo":
            build.algo_kwargs["rollout_buffer_class"] = GuidedRolloutBuffer

    def wrap_env(self, venv: Any, model: Any, ctx: MethodContext) -> Any:
        h_max = self.h_max or episode_limit(venv)
        if h_max is None:
            raise TransferError("jsrl: the env declares no step limit; give h_max")
        return GuideWrapper(venv, ctx.teacher, Horizon(self, int(h_max), venv.num_envs, ctx.seed),
                            deterministic=self.deterministic)

    def initialize(self, model: Any, ctx: MethodContext) -> TransferLog:
        return move_roles_if_any(model, ctx, self.roles, self.label)

    def callbacks(self, model: Any, ctx: MethodContext) -> list[Any]:
        # the options object is shared and frozen; the horizon lives on this model's guide
        out: list[Any] = [Curriculum(model.env.schedule)]
        if algo_name(model) == "ppo":
            out.append(MarkGuidedSteps())
        return out


class Horizon:
    """The guide's horizon per env, and the curriculum that moves it."""

    def __init__(self, method: JSRL, h_max: int, n_envs: int, seed: int) -> None:
        self.method = method
        self.h_max = h_max
        self.stage = 0
        self.h_env = np.full(n_envs, h_max, dtype=np.int64)
        self.rng = np.random.default_rng(seed)
        self.returns: list[float] = []
        self.best: float | None = None

    @property
    def h(self) -> int:
        """The current horizon of the ``stages`` curriculum."""
        n = self.method.stages
        return int(round(self.h_max * (n - self.stage) / n))

    def new_episode(self, index: int) -> None:
        if self.method.curriculum == "random":
            k = int(self.rng.integers(0, self.method.stages + 1))
            self.h_env[index] = int(round(self.h_max * k / self.method.stages))
        else:
            self.h_env[index] = self.h

    def guided(self, episode_steps: np.ndarray) -> np.ndarray:
        return episode_steps < self.h_env

    def episode_done(self, ret: float) -> None:
        """Record a finished training episode's return; move h down when it is time."""
        if self.method.curriculum != "stages" or self.stage >= self.method.stages:
            return
        self.returns.append(ret)
        if len(self.returns) < self.method.window:
            return
        avg = float(np.mean(self.returns[-self.method.window:]))
        if self.best is None or avg > self.best:
            self.best = avg
        if avg >= self.best - (1.0 - self.method.tolerance) * abs(self.best):
            self.stage += 1
            self.returns = []


class Curriculum(BaseCallback):
    """Feeds finished training episodes to the horizon; logs h and the guided fraction."""

    def __init__(self, schedule: Horizon) -> None:
        super().__init__()
        self.schedule = schedule
        self._guided = 0
        self._steps = 0

    def _on_step(self) -> bool:
        infos = self.locals.get("infos") or []
        self._steps += len(infos)
        self._guided += sum(bool(i.get("rlt_guided", False)) for i in infos)
        for info in infos:
            episode = info.get("episode")
            if episode is not None:
                self.schedule.episode_done(float(episode["r"]))
        return True

    def _on_rollout_end(self) -> None:
        self.logger.record("jsrl/h", self.schedule.h)
        if self._steps:
            self.logger.record("jsrl/guided_fraction", self._guided / self._steps)
        self._guided = self._steps = 0
