"""``frozen``: moved weights are frozen; optionally unfrozen at a step or trained slower."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from rltransfer.methods.base import Method, MethodContext, Roles, TransferLog, need_source
from rltransfer.methods.registry import register_method
from rltransfer.methods.weights import (
    cache_frozen_extractors,
    copy_roles,
    freeze,
    install_unfreeze,
    move_to_scaled_group,
    optimizers,
    own_roles,
    sync_targets,
)
from rltransfer.roles import classify
from rltransfer.sb3 import algo_name


@register_method
class Frozen(Method):
    """The encoder (or the chosen roles) moves and is frozen; the rest is fresh and trains.

    Frozen tensors have ``requires_grad`` off and are in no optimizer. SAC target twins of
    frozen critic layers take the online values, so they stay consistent.
    """

    name = "frozen"
    summary = "moved weights are frozen (optionally unfrozen at a step, or trained slower)"

    roles: Roles = ("encoder",)
    """Which parts move and freeze."""
    unfreeze_at: int | None = Field(default=None, ge=0)
    """Environment step at which the frozen weights start training."""
    lr_scale: float | None = Field(default=None, gt=0, le=1)
    """Instead of freezing, train the moved weights at this fraction of the learning rate."""
    cache: bool = True
    """Compute a frozen features extractor once per distinct observation (PPO's epochs
    revisit every rollout observation); see :class:`rltransfer.methods.FeatureCache`."""
    weights: Literal["source", "init"] = "source"
    """``source``: freeze weights copied from the source; ``init``: take no source and freeze
    the target's own initial weights (the random-features control, or an encoder whose preset
    loads pretrained weights)."""

    @property
    def moves_weights(self) -> bool:
        return self.weights == "source"

    @property
    def label(self) -> str:
        extra = []
        if self.weights == "init":
            extra.append("init")
        if self.roles != ("encoder",):
            extra.append(",".join(self.roles))
        if self.unfreeze_at is not None:
            extra.append(f"unfreeze@{self.unfreeze_at}")
        if self.lr_scale is not None:
            extra.append(f"lr×{self.lr_scale:g}")
        return "frozen" + (f"[{';'.join(extra)}]" if extra else "")

    def initialize(self, model: Any, ctx: MethodContext) -> TransferLog:
        if self.weights == "init":
            log = own_roles(model, self.roles, self.label)
        else:
            log = copy_roles(model, need_source(ctx, self.name), self.roles, ctx.on_mismatch,
                             self.label)
        targets = {k for k, i in classify(algo_name(model), log.moved).items() if i.target}
        params = {n: p for n, p in model.policy.named_parameters()
                  if n in log.moved and n not in targets}
        sync_targets(model, params)
        if self.lr_scale is not None:
            for opt in optimizers(model):
                move_to_scaled_group(opt, params.values(), self.lr_scale)
            log.notes.append(f"{len(params)} transferred tensors train at lr x {self.lr_scale}")
            return log
        freeze(model, params.keys())
        log.frozen = sorted(params)
        if self.unfreeze_at is not None:
            install_unfreeze(model, list(params.values()), self.unfreeze_at)
            log.notes.append(f"frozen tensors unfreeze at step {self.unfreeze_at}")
        elif self.cache:
            cached = cache_frozen_extractors(model)
            if cached:
                log.notes.append(f"features of {cached} frozen extractor(s) are cached")
        return log

