"""``scratch``: the control. The target agent keeps its random initialization."""

from __future__ import annotations

from rltransfer.methods.base import Method
from rltransfer.methods.registry import register_method


@register_method
class Scratch(Method):
    """The control: nothing moves; the target agent keeps its random initialization."""

    name = "scratch"
    summary = "the control: the target starts from random weights"

    @property
    def moves_weights(self) -> bool:
        return False
