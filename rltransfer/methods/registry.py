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

import difflib
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_core import InitErrorDetails

from rltransfer._validation import error_lines
from rltransfer.methods.base import Method, TransferError

__all__ = ["METHODS", "describe_methods", "get_method", "method_names", "register_method"]

METHODS: dict[str, type[Method]] = {}
"""Registered methods by name, in registration order."""


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: add a :class:`Method` subclass to the registry under ``cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise TypeError(f"{cls!r} is not a subclass of rltransfer.methods.Method")
    if not cls.name or not cls.name.replace("_", "").isalnum():
        raise ValueError(f"{cls.__name__}.name={cls.name!r}: give a short lowercase name")
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise ValueError(f"a method named {cls.name!r} is already registered "
                         f"({METHODS[cls.name].__module__})")
    METHODS[cls.name] = cls
    return cls


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
    if isinstance(spec, Method):
        if not options:
            return spec
        spec = {spec.name: {**_options_of(spec), **options}}
        options = {}
    if isinstance(spec, Mapping):
        if len(spec) != 1:
            raise TransferError(f"method {dict(spec)!r}: write one method as {{name: {{options}}}}")
        (name, opts), = spec.items()
        if opts is not None and not isinstance(opts, Mapping):
            raise TransferError(f"method {name!r}: options must be a mapping, got {opts!r}")
        options = {**(opts or {}), **options}
    else:
        name = spec
    if not isinstance(name, str) or name not in METHODS:
        close = difflib.get_close_matches(str(name), list(METHODS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise TransferError(f"method {name!r} is unknown{hint}; choose from {list(METHODS)}")
    cls = METHODS[name]
    try:
        return cls(**options)
    except ValidationError as exc:
        raise TransferError(_option_errors(name, cls, exc)) from None


def _option_errors(name: str, cls: type[Method], exc: ValidationError) -> str:
    """One line: each bad option with its value and what is accepted, then every option."""
    parts = []
    for err in exc.errors():
        option = ".".join(str(p) for p in err["loc"]) or "(options)"
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(option, list(cls.model_fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            parts.append(f"method {name!r} has no option {option!r}{hint}")
        else:
            one = InitErrorDetails(type=err["type"], loc=err["loc"], input=err["input"])
            if "ctx" in err:
                one["ctx"] = err["ctx"]
            line = error_lines(ValidationError.from_exception_data(exc.title, [one]), cls)[0]
            parts.append(f"method {name!r}: option {line}")
    return "; ".join(parts) + f"; options: {_options_text(cls)}"


def _options_of(method: Method) -> dict[str, Any]:
    spec = method.spec()
    return dict(spec[method.name]) if isinstance(spec, dict) else {}


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if not typing.get_args(annotation) else None
    if text is None:
        text = str(annotation).replace("typing.", "")
    return text.replace("NoneType", "None")


def _options_text(cls: type[Method]) -> str:
    fields = cls.model_fields
    if not fields:
        return "none"
    return ", ".join(f"{n} ({_type_name(f.annotation)}, default {f.default!r})"
                     for n, f in fields.items())


def describe_methods() -> list[dict[str, Any]]:
    """Every registered method: name, one-line summary, algorithms, options (name, type,
    default, description)."""
    out = []
    for name, cls in METHODS.items():
        out.append({
            "name": name, "summary": cls.summary, "algos": list(cls.algos),
            "options": [{"name": n, "type": _type_name(f.annotation),
                         "default": f.default, "doc": (f.description or "").strip()}
                        for n, f in cls.model_fields.items()],
        })
    return out
