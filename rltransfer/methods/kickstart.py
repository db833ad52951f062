"""``kickstart``: distillation from the source policy, annealed away (kickstarting, QDagger).

The update adds ``lambda_t * KL(teacher || target)`` on the states the target visits
(Schmitt et al. 2018, "Kickstarting deep reinforcement learning"; Agarwal et al. 2022,
"Reincarnating reinforcement learning", QDagger):

- PPO, categorical or Gaussian policies: the KL of the two action distributions on each
  observation of the minibatch, summed over action dimensions, averaged over the batch.
- SAC's squashed Gaussian: the KL between the two Gaussians *before* the tanh. The KL
  divergence is invariant under an invertible map applied to both distributions, and tanh is
  one, so this is exactly the KL between the two squashed policies; it has a closed form,
  where the squashed densities would need sampling.

``lambda_t`` follows ``schedule``:

- ``constant``: ``coef``.
- ``linear``: ``coef * max(0, 1 - t / decay_steps)`` (``decay_steps`` defaults to half of the
  ``learn()`` budget).
- ``performance``: ``coef * clip(1 - (G_target - floor) / (G_teacher - floor), 0, 1)``
  (QDagger), with ``G_target`` the latest evaluation return (the mean training-episode return
  when there is no evaluation), ``G_teacher`` the ``teacher_return`` option or else the
  step-0 evaluation (the target *is* the teacher then, when the actor moved), and ``floor``
  the ``return_floor`` option (0: returns are non-negative; set it to the worst return for
  tasks with negative returns, such as Pendulum's -1600).

The distillation loss (``kickstart/loss``) and ``lambda_t`` (``kickstart/lambda``) go to
TensorBoard. ``coef=0`` leaves every update exactly as ``finetune``'s.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from rltransfer.methods.adapter import matched_distributions
from rltransfer.methods.base import BuildSpec, Method, MethodContext, OptionalRoles, TransferLog
from rltransfer.methods.registry import register_method
from rltransfer.methods.weights import move_roles_if_any
from rltransfer.sb3 import divergence, internals
from rltransfer.sb3.ppo import GuidedRolloutBuffer


@register_method
class Kickstart(Method):
    """Weights move as in ``partial[roles]``; the update also pulls the target policy toward
    the source policy with a weight that anneals away."""

    name = "kickstart"
    summary = "distill the source policy into the target (annealed KL loss), weights moved too"
    needs_teacher = True
    distils = True

    coef: float = Field(default=1.0, ge=0)
    """lambda at the start: the weight of the KL term."""
    schedule: Literal["constant", "linear", "performance"] = "linear"
    """How lambda changes: constant, linear to 0 at decay_steps, or performance (QDagger)."""
    decay_steps: int | None = Field(default=None, gt=0)
    """``linear``: environment step at which lambda reaches 0 (default: half the budget)."""
    roles: OptionalRoles = ("all",)
    """Which weights start from the source (``all``: as finetune; ``[]``: none, the teacher
    only teaches, as a state teacher for a pixel student must)."""
    teacher_return: float | None = None
    """``performance``: the teacher's return on the target (default: the step-0 evaluation)."""
    return_floor: float = 0.0
    """``performance``: the return that counts as nothing learned."""

    @property
    def label(self) -> str:
        if self.roles == ("all",):
            return "kickstart"
        return f"kickstart[{','.join(self.roles) or 'none'}]"

    def configure(self, build: BuildSpec) -> None:
        if build.algo == "ppo":  # keeps a state teacher's states beside the frames
            build.algo_kwargs["rollout_buffer_class"] = GuidedRolloutBuffer

    def initialize(self, model: Any, ctx: MethodContext) -> TransferLog:
        return move_roles_if_any(model, ctx, self.roles, self.label)

    def loss_terms(self, model: Any, ctx: MethodContext) -> list[Any]:
        return [Distillation(self, ctx.teacher, internals(model).teacher_distribution)]

    def lam(self, model: Any) -> float:
        """lambda_t for the model's current step."""
        if self.schedule == "constant":
            return self.coef
        t = float(model.num_timesteps)
        if self.schedule == "linear":
            horizon = self.decay_steps or max(getattr(model, "_total_timesteps", 0) / 2, 1.0)
            return self.coef * max(0.0, 1.0 - t / horizon)
        g_target, g_teacher = self._returns(model)
        if g_target is None or g_teacher is None or g_teacher == self.return_floor:
            return self.coef
        gap = 1.0 - (g_target - self.return_floor) / (g_teacher - self.return_floor)
        return self.coef * float(np.clip(gap, 0.0, 1.0))

    def _returns(self, model: Any) -> tuple[float | None, float | None]:
        evals = model.rlt.evaluations
        g_teacher = self.teacher_return
        if g_teacher is None and evals and evals[0]["step"] == 0:
            g_teacher = float(evals[0]["mean_return"])
        if evals:
            return float(evals[-1]["mean_return"]), g_teacher
        episodes = getattr(model, "ep_info_buffer", None) or []
        g_target = float(np.mean([e["r"] for e in episodes])) if episodes else None
        return g_target, g_teacher


class Distillation:
    """The loss term: ``mean_batch KL(teacher(obs) || target(obs))``.

    Through an adapter between spaces the teacher sees its own observation, and the KL
    covers the action dimensions that correspond (see
    :func:`rltransfer.methods.adapter.matched_distributions`)."""

    name = "kickstart"

    def __init__(self, method: Kickstart, teacher: Any, teacher_distribution: Any) -> None:
        self.method = method
        self.teacher = teacher
        self.teacher_distribution = teacher_distribution

    def coef(self, model: Any) -> float:
        return self.method.lam(model)

    def loss(self, obs: Any, dist: Any) -> torch.Tensor:
        teacher, student = matched_distributions(self.teacher, obs, dist,
                                                 self.teacher_distribution)
        return divergence(teacher, student).mean()
