"""What every transfer-aware learner shares: the method runtime and the loss-term plumbing.

A transfer method adds loss terms and callbacks to a model (see :mod:`rltransfer.methods`).
They live in one :class:`MethodRuntime` on the model (``model.rlt``), which the learners of
:mod:`rltransfer.sb3.ppo` and :mod:`rltransfer.sb3.sac` read in ``train()`` and on every
``learn()``. The runtime is never saved with the model (it holds the teacher policy).

:class:`AddLoss` is how a loss term reaches an update without copying stable-baselines3's
``train()``: it is the identity on a tensor the algorithm's loss depends on (the log
probability of the actions), and its backward pass also seeds the gradient of the extra
term with 1. The algorithm's single ``loss.backward()`` therefore computes the gradient of
``loss + extra``, and gradient clipping and the optimizer step act on that sum, exactly as
if the term had been written into the loss.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import operator
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, ConvertCallback

__all__ = ["AddLoss", "LossTerm", "MethodRuntime", "ParamInfo", "RuntimeMixin", "Site",
           "divergence"]


@dataclasses.dataclass(frozen=True)
class Site:
    """An MLP of a policy that a progressive network extends (see
    :mod:`rltransfer.methods.progressive`): its module path, the heads that read its output
    (outside it), or ``head_inside`` when its last linear layer is the head (a Q-network)."""

    path: str
    heads: tuple[str, ...] = ()
    head_inside: bool = False


@dataclasses.dataclass(frozen=True)
class ParamInfo:
    """Where one parameter sits: its part, and whether it is a SAC target-network copy."""

    part: str
    target: bool = False


class LossTerm(Protocol):
    """An extra term of the policy's loss, added by a transfer method.

    ``coef(model)`` is its weight for the coming update (``0`` leaves the update exactly as
    the algorithm's own); ``loss(obs, dist)`` its value on a batch of observations given the
    target policy's action distribution on them (a ``torch.distributions`` object that
    carries the gradient).
    """

    name: str

    def coef(self, model: Any) -> float: ...

    def loss(self, obs: Any, dist: Any) -> torch.Tensor: ...


class AddLoss(torch.autograd.Function):
    """``AddLoss.apply(x, extra)`` is ``x``; backward also seeds ``d extra = 1``.

    Whatever loss ``x`` feeds, the gradient then includes that of ``extra``, once per
    backward pass through ``x``.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        ctx.extra_shape = extra.shape
        ctx.extra_dtype = extra.dtype
        ctx.extra_device = extra.device
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        seed = torch.ones(ctx.extra_shape, dtype=ctx.extra_dtype, device=ctx.extra_device)
        return (grad if ctx.needs_input_grad[0] else None), seed


def divergence(teacher: Any, student: Any) -> torch.Tensor:
    """``KL(teacher || student)`` per sample, summed over independent action dimensions.

    Takes ``torch.distributions`` objects (or lists of them, as SB3's multi-categorical
    distribution holds); returns shape ``(batch,)``.
    """
    if isinstance(teacher, list | tuple):
        parts = [divergence(t, s) for t, s in zip(teacher, student, strict=True)]
        return functools.reduce(operator.add, parts)
    kl = torch.distributions.kl_divergence(teacher, student)
    return kl.sum(dim=-1) if kl.dim() > 1 else kl


@dataclasses.dataclass
class MethodRuntime:
    """What a transfer method installed on a model: callbacks, loss terms, teacher, logs."""

    callbacks: list[BaseCallback] = dataclasses.field(default_factory=list)
    loss_terms: list[Any] = dataclasses.field(default_factory=list)
    teacher: Any = None
    """The frozen source policy, for methods that use it (kickstart, jsrl, ...)."""
    evaluations: list[dict[str, float]] = dataclasses.field(default_factory=list)
    """Evaluation rows as they come (written by :class:`rltransfer.training.EvalCurveCallback`),
    for methods whose schedule follows the target's performance."""
    stats: dict[str, list[float]] = dataclasses.field(default_factory=lambda: defaultdict(list))

    def with_callbacks(self, callback: Any) -> Any:
        """The callback SB3 was given, followed by the method's callbacks."""
        if not self.callbacks:
            return callback
        given: list[BaseCallback] = []
        if isinstance(callback, list):
            given = list(callback)
        elif isinstance(callback, BaseCallback):
            given = [callback]
        elif callback is not None:
            given = [ConvertCallback(callback)]
        return CallbackList([*given, *self.callbacks])

    def active_terms(self, model: Any) -> list[tuple[Any, float]]:
        """The loss terms with a non-zero weight for the coming update, and their weights."""
        out = []
        for term in self.loss_terms:
            coef = float(term.coef(model))
            self.stats[f"{term.name}/lambda"].append(coef)
            if coef != 0.0:
                out.append((term, coef))
        return out

    def loss(self, obs: Any, dist: Any, terms: list[tuple[Any, float]]) -> torch.Tensor:
        """The weighted sum of the active terms on one batch (their values are logged)."""
        total = None
        for term, coef in terms:
            value = term.loss(obs, dist)
            self.stats[f"{term.name}/loss"].append(float(value.detach()))
            total = coef * value if total is None else total + coef * value
        assert total is not None
        return total

    def record(self, logger: Any) -> None:
        """Write the means of what was logged since the last call to the SB3 logger."""
        for key, values in self.stats.items():
            if values:
                logger.record(key, float(np.mean(values)))
        self.stats.clear()


if TYPE_CHECKING:  # the mixin's super() is SB3's class: let mypy check the calls against it
    from stable_baselines3.common.base_class import BaseAlgorithm as _Algorithm
else:
    _Algorithm = object


class RuntimeMixin(_Algorithm):
    """What both learners add to SB3's class: a :class:`MethodRuntime` (``self.rlt``) that is
    never saved, and the method's callbacks on every ``learn()``.

    Mixed in first (``class TransferPPO(RuntimeMixin, PPO)``), so these methods extend SB3's
    own through ``super()``.
    """

    # Set on the model by the agent layer (which this package does not import), declared here
    # so that a learner's type says they exist.
    rltransfer: Any
    """What rltransfer knows about the model (an ``AgentInfo``), set by ``build_agent``."""
    rltransfer_log: Any
    """What the transfer method did (a ``TransferLog``), set by ``transfer``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rlt = MethodRuntime()

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "rlt"]

    def _init_callback(self, callback: Any, progress_bar: bool = False) -> Any:
        return super()._init_callback(
            self.rlt.with_callbacks(callback), progress_bar)


@contextlib.contextmanager
def hooked(obj: Any, name: str, make: Callable[[Any], Any]) -> Iterator[None]:
    """Inside the block ``obj.<name>`` is ``make(original)``; afterwards, as it was."""
    had_own = name in vars(obj)
    original = getattr(obj, name)
    setattr(obj, name, make(original))
    try:
        yield
    finally:
        if had_own:
            setattr(obj, name, original)
        else:
            delattr(obj, name)
