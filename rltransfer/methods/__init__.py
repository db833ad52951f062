"""Transfer methods: how a source reaches a target agent, one plug-in per method.

=================  ==========================================================================
method             what it does
=================  ==========================================================================
scratch            nothing moves (the control)
finetune           every weight moves and keeps training
partial            the chosen roles move; the rest starts fresh
frozen             moved weights are frozen; optionally unfrozen at a step or trained slower
kickstart          weights move and an annealed KL loss pulls the target toward the source
critic_warmup      weights move; only the critic trains for the first steps
jsrl               the source policy acts for the first h steps of each episode, h shrinking
replay_warmstart   SAC: the source policy fills the replay buffer before learning
progressive        the source stays as a frozen column; a new column learns with laterals
=================  ==========================================================================

A method is one module here: a :class:`Method` subclass decorated with
:func:`register_method`, plus its import line below. ``rltransfer list methods`` prints every
method with its options.

Example:
    >>> from rltransfer.methods import get_method
    >>> get_method("kickstart", coef=0.5, schedule="constant").spec()
    {'kickstart': {'coef': 0.5, 'schedule': 'constant'}}
"""

from __future__ import annotations

import importlib

from rltransfer.methods.base import (
    BuildSpec,
    Method,
    MethodContext,
    OptionalRoles,
    Roles,
    TransferError,
    TransferLog,
)
from rltransfer.methods.registry import (
    METHODS,
    describe_methods,
    get_method,
    method_names,
    register_method,
)
from rltransfer.methods.weights import FeatureCache, copy_roles, freeze, optimizers

# One line per method: importing its module registers it (this order is the listing order).
_METHOD_MODULES = (
    "scratch",
    "finetune",
    "partial",
    "frozen",
    "kickstart",
    "critic_warmup",
    "jsrl",
    "replay_warmstart",
    "progressive",
)
for _module in _METHOD_MODULES:
    importlib.import_module(f"rltransfer.methods.{_module}")

__all__ = ["METHODS", "BuildSpec", "FeatureCache", "Method", "MethodContext", "OptionalRoles",
           "Roles",
           "TransferError", "TransferLog", "copy_roles", "describe_methods", "freeze",
           "get_method", "method_names", "optimizers", "register_method"]
