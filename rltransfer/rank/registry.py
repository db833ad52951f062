"""The one list of probes: register, look up, describe.

``rltransfer rank --probes`` and :func:`rltransfer.rank_sources` read :data:`PROBES`. This
module imports no probe; :mod:`rltransfer.rank` imports the built-in ones, which register
themselves with :func:`register_probe`.

Example:
    >>> from rltransfer.rank import get_probe
    >>> get_probe({"dynamics_gap": {"ridge": 0.1}}).spec()
    {'dynamics_gap': {'ridge': 0.1}}
    >>> get_probe("jumpstrat")
    Traceback (most recent call last):
    ...
    rltransfer.rank.base.RankError: probe 'jumpstrat' is unknown (did you mean 'jumpstart'?);
    choose from ['jumpstart', 'value_consistency', 'dynamics_gap', 'state_overlap']
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from rltransfer._validation import error_lines
from rltransfer.rank.base import Probe, RankError

__all__ = ["PROBES", "describe_probes", "get_probe", "probe_names", "register_probe"]

PROBES: dict[str, type[Probe]] = {}
"""Registered probes by name, in registration order."""


def register_probe(cls: type[Probe]) -> type[Probe]:
    """Class decorator: add a :class:`~rltransfer.rank.base.Probe` subclass under
    ``cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, Probe)):
        raise TypeError(f"{cls!r} is not a subclass of rltransfer.rank.Probe")
    if not cls.name or not cls.name.replace("_", "").isalnum():
        raise ValueError(f"{cls.__name__}.name={cls.name!r}: give a short lowercase name")
    if cls.name in PROBES and PROBES[cls.name] is not cls:
        raise ValueError(f"a probe named {cls.name!r} is already registered "
                         f"({PROBES[cls.name].__module__})")
    PROBES[cls.name] = cls
    return cls


def probe_names() -> list[str]:
    """The registered probe names."""
    return list(PROBES)


def get_probe(spec: str | Mapping[str, Any] | Probe, **options: Any) -> Probe:
    """A probe from a name, a one-key mapping ``{name: {options}}``, or a probe object.

    Errors (:class:`~rltransfer.rank.base.RankError`) name the probe, the option, the value
    and what is accepted.
    """
    if isinstance(spec, Probe):
        if not options:
            return spec
        spec = {spec.name: {**spec.model_dump(), **options}}
        options = {}
    if isinstance(spec, Mapping):
        if len(spec) != 1:
            raise RankError(f"probe {dict(spec)!r}: write one probe as {{name: {{options}}}}")
        (name, opts), = spec.items()
        if opts is not None and not isinstance(opts, Mapping):
            raise RankError(f"probe {name!r}: options must be a mapping, got {opts!r}")
        options = {**(opts or {}), **options}
    else:
        name = spec
    if not isinstance(name, str) or name not in PROBES:
        close = difflib.get_close_matches(str(name), list(PROBES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise RankError(f"probe {name!r} is unknown{hint}; choose from {list(PROBES)}")
    cls = PROBES[name]
    try:
        return cls(**options)
    except ValidationError as exc:
        raise RankError(_option_errors(name, cls, exc)) from None


def _option_errors(name: str, cls: type[Probe], exc: ValidationError) -> str:
    parts = []
    for line in error_lines(exc, cls):
        option, _, problem = line.partition(": ")
        if problem.startswith("unknown field"):
            close = difflib.get_close_matches(option, list(cls.model_fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            parts.append(f"probe {name!r} has no option {option!r}{hint}")
        else:
            parts.append(f"probe {name!r}: option {line}")
    return "; ".join(parts) + f"; options: {_options_text(cls)}"


def _options_text(cls: type[Probe]) -> str:
    if not cls.model_fields:
        return "none"
    return ", ".join(f"{n} (default {f.default!r})" for n, f in cls.model_fields.items())


def describe_probes() -> list[dict[str, Any]]:
    """Every registered probe: name, one-line summary, algorithms, options (name, default,
    description)."""
    return [{"name": name, "summary": cls.summary, "algos": list(cls.algos),
             "options": [{"name": n, "default": f.default,
                          "doc": " ".join((f.description or "").split())}
                         for n, f in cls.model_fields.items()]}
            for name, cls in PROBES.items()]
