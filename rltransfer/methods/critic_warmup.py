"""``critic_warmup``: every weight moves; for the first ``steps`` only the critic trains.

A transferred actor is often better than the value function that came with it: the critic
was fitted to the source's dynamics, and its advantages on the target can push a good
policy off a cliff in the first updates (the CartPole demo's ``finetune`` collapses within
2-4k steps). Holding the actor still while the critic fits the target removes that push.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from stable_baselines3.common.callbacks import BaseCallback

from rltransfer.methods.base import Method, MethodContext, Roles, TransferLog, need_source
from rltransfer.methods.registry import register_method
from rltransfer.methods.weights import move_weights
from rltransfer.sb3 import internals


@register_method
class CriticWarmup(Method):
    """Weights move as in ``finetune``; the actor (with the features it reads) is held
    bitwise still until environment step ``steps``, then everything trains."""

    name = "critic_warmup"
    summary = "finetune, but only the value function/critics train for the first steps"

    steps: int = Field(default=10_000, gt=0)
    """Environment steps during which only the critic trains."""
    roles: Roles = ("all",)
    """Which weights start from the source (``all``: as finetune)."""

    @property
    def label(self) -> str:
        return f"critic_warmup@{self.steps}"

    def initialize(self, model: Any, ctx: MethodContext) -> TransferLog:
        log = move_weights(model, need_source(ctx, self.name), self.roles, ctx.on_mismatch,
                           self.label)
        held = internals(model).actor_parameters(model)
        for p in held.values():
            p.requires_grad_(False)
        log.notes.append(f"{len(held)} actor tensors held until step {self.steps}")
        return log

    def callbacks(self, model: Any, ctx: MethodContext) -> list[Any]:
        return [ReleaseActor(self.steps)]


class ReleaseActor(BaseCallback):
    """Lets the actor train once ``num_timesteps >= steps``.

    Held tensors have ``requires_grad`` off, so they get no gradient and their optimizer
    (which still lists them) leaves them as they are.
    """

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps
        self.released = False

    def _on_training_start(self) -> None:
        self._check()

    def _on_step(self) -> bool:
        self._check()
        return True

    def _check(self) -> None:
        if not self.released and self.model.num_timesteps >= self.steps:
            for p in internals(self.model).actor_parameters(self.model).values():
                p.requires_grad_(True)
            self.released = True
            self.logger.record("critic_warmup/released_at", self.model.num_timesteps)
