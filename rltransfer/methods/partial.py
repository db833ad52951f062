"""``partial``: the chosen roles move; the rest of the network starts fresh."""

from __future__ import annotations

from typing import Any

from rltransfer.methods.base import Method, MethodContext, Roles, TransferLog, need_source
from rltransfer.methods.registry import register_method
from rltransfer.methods.weights import move_weights


@register_method
class Partial(Method):
    """The chosen roles move; the rest of the network stays freshly initialized."""

    name = "partial"
    summary = "the chosen roles move (encoder, actor, critic, heads...); the rest starts fresh"

    roles: Roles = ("encoder",)
    """Which parts move: encoder, actor, critic, heads, all, or a part name."""

    @property
    def label(self) -> str:
        return f"partial[{','.join(self.roles)}]"

    def initialize(self, model: Any, ctx: MethodContext) -> TransferLog:
        return move_weights(model, need_source(ctx, self.name), self.roles, ctx.on_mismatch,
                            self.label)
