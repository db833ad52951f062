"""``finetune``: every weight moves from the source and keeps training."""

from __future__ import annotations

from typing import Any

from rltransfer.methods.base import Method, MethodContext, TransferLog, need_source
from rltransfer.methods.registry import register_method
from rltransfer.methods.weights import move_weights


@register_method
class Finetune(Method):
    """Every weight moves (SAC: actor, critics, target critics, entropy coefficient); all of
    them keep training."""

    name = "finetune"
    summary = "every weight moves from the source and keeps training"

    def initialize(self, model: Any, ctx: MethodContext) -> TransferLog:
        return move_weights(model, need_source(ctx, self.name), ["all"], ctx.on_mismatch,
                            self.label)
