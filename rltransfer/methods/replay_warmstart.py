"""``replay_warmstart`` (SAC): the source policy fills the replay buffer before learning.

Before any gradient step, the source policy (sampling, with its own exploration noise) plays
``steps`` environment steps on the target, and those transitions go into the replay buffer
with the actions it executed; then, optionally, ``offline_steps`` gradient steps on that
buffer; then online training as usual. The warm-start steps are training steps of the
run's budget and on its curve (the target is evaluated, unchanged, while they happen).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from rltransfer.methods.base import (
    BuildSpec,
    Method,
    MethodContext,
    OptionalRoles,
    TransferLog,
)
from rltransfer.methods.guide import GuideWrapper
from rltransfer.methods.registry import register_method
from rltransfer.methods.weights import move_roles_if_any


@register_method
class ReplayWarmstart(Method):
    """The source policy plays the first ``steps`` steps into the replay buffer."""

    name = "replay_warmstart"
    summary = "SAC: the source policy fills the replay buffer first (then optional offline steps)"
    algos = ("sac",)
    needs_teacher = True

    steps: int = Field(default=5_000, gt=0)
    """Environment steps the source policy plays into the replay buffer."""
    offline_steps: int = Field(default=0, ge=0)
    """Gradient steps on the warm buffer before online training."""
    roles: OptionalRoles = ()
    """Weights that start from the source (default none: the target starts fresh)."""
    deterministic: bool = False
    """Whether the source acts deterministically (default: with its exploration noise)."""

    @property
    def label(self) -> str:
        extra = [] if not self.roles else [",".join(self.roles)]
        if self.offline_steps:
            extra.append(f"offline{self.offline_steps}")
        return f"replay_warmstart@{self.steps}" + (f"[{';'.join(extra)}]" if extra else "")

    def configure(self, build: BuildSpec) -> None:
        starts = getattr(build.preset, "learning_starts", None) or 0
        build.algo_kwargs["learning_starts"] = max(int(starts), self.steps)

    def wrap_env(self, venv: Any, model: Any, ctx: MethodContext) -> Any:
        return GuideWrapper(venv, ctx.teacher, WarmupSchedule(model, self.steps),
                            deterministic=self.deterministic)

    def initialize(self, model: Any, ctx: MethodContext) -> TransferLog:
        return move_roles_if_any(model, ctx, self.roles, self.label)

    def callbacks(self, model: Any, ctx: MethodContext) -> list[Any]:
        return [OfflineSteps(self.steps, self.offline_steps)] if self.offline_steps else []


class WarmupSchedule:
    """The guide drives every env while the model has taken fewer than ``steps`` steps."""

    def __init__(self, model: Any, steps: int) -> None:
        self.model = model
        self.steps = steps

    def guided(self, episode_steps: np.ndarray) -> np.ndarray:
        return np.full(episode_steps.shape, self.model.num_timesteps < self.steps)

    def new_episode(self, index: int) -> None:
        pass


class OfflineSteps(BaseCallback):
    """``offline_steps`` gradient steps once the warm buffer is full, before any online one.

    SB3 calls ``on_step`` after the env step and before storing it, so at the step where
    ``num_timesteps`` first exceeds ``steps`` the buffer holds exactly the warm-start steps.
    """

    model: OffPolicyAlgorithm  # the method is for SAC (replay buffers) only

    def __init__(self, steps: int, offline_steps: int) -> None:
        super().__init__()
        self.steps = steps
        self.offline_steps = offline_steps
        self.done = False

    def _on_step(self) -> bool:
        if not self.done and self.model.num_timesteps > self.steps:
            self.done = True
            self.model.train(gradient_steps=self.offline_steps,
                             batch_size=self.model.batch_size)
            self.model.policy.set_training_mode(False)  # back to rollout mode
        return True
