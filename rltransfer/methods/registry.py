"""The one list of transfer methods: register, look up, describe.

The CLI's ``--method`` choices, experiment-file validation and ``rltransfer list methods``
all read :data:`METHODS`. This module imports no method; the package's ``__init__`` imports
each method module, and each registers itself with :func:`register_method`.

Example:
    >>> from rltransfer.methods import get_method
    >>> get_method({"partial": {"roles": ["actor"]}}).label
    'partial[actor]'
    >>> get_method("kickstart", coef=-1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    rltransfer.methods.base.TransferError: method 'kickstart': option coef: value -1: ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rltransfer._registry import Registry
from rltransfer.methods.base import Method, TransferError

__all__ = ["METHODS", "describe_methods", "get_method", "method_names", "register_method"]


def _options_of(method: Method) -> dict[str, Any]:
    spec = method.spec()
    return dict(spec[method.name]) if isinstance(spec, dict) else {}


_REGISTRY: Registry[Method] = Registry("method", Method, TransferError, _options_of)

METHODS: dict[str, type[Method]] = _REGISTRY.entries
"""Registered methods by name, in registration order."""


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: add a :class:`Method` subclass to the registry under ``cls.name``."""
    return _REGISTRY.register(cls)


def method_names() -> list[str]:
    """The registered method names."""
    return list(METHODS)


def get_method(spec: str | Mapping[str, Any] | Method, **options: Any) -> Method:
    """A method from a name, a one-key mapping ``{name: {options}}``, or a method object.

    ``options`` are merged into the spec's. Errors name the method, the option, the value
    and what is accepted.

    Example:
        >>> get_method("partial", roles=["actor"]).label
        'partial[actor]'
        >>> get_method({"frozen": {"unfreeze_at": 1000}}).spec()
        {'frozen': {'unfreeze_at': 1000}}
        >>> get_method("finetun")
        Traceback (most recent call last):
        ...
        rltransfer.methods.base.TransferError: method 'finetun' is unknown
        (did you mean 'finetune'?); choose from [...]
    """
    return _REGISTRY.get(spec, **options)


def describe_methods() -> list[dict[str, Any]]:
    """Every registered method: name, one-line summary, algorithms, options (name, type,
    default, description)."""
    return _REGISTRY.describe()
