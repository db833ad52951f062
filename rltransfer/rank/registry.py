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

from collections.abc import Mapping
from typing import Any

from rltransfer._registry import Registry
from rltransfer.rank.base import Probe, RankError

__all__ = ["PROBES", "describe_probes", "get_probe", "probe_names", "register_probe"]

_REGISTRY: Registry[Probe] = Registry("probe", Probe, RankError,
                                      lambda probe: probe.model_dump())

PROBES: dict[str, type[Probe]] = _REGISTRY.entries
"""Registered probes by name, in registration order."""


def register_probe(cls: type[Probe]) -> type[Probe]:
    """Class decorator: add a :class:`~rltransfer.rank.base.Probe` subclass under
    ``cls.name``."""
    return _REGISTRY.register(cls)


def probe_names() -> list[str]:
    """The registered probe names."""
    return list(PROBES)


def get_probe(spec: str | Mapping[str, Any] | Probe, **options: Any) -> Probe:
    """A probe from a name, a one-key mapping ``{name: {options}}``, or a probe object.

    Errors (:class:`~rltransfer.rank.base.RankError`) name the probe, the option, the value
    and what is accepted.
    """
    return _REGISTRY.get(spec, **options)


def describe_probes() -> list[dict[str, Any]]:
    """Every registered probe: name, one-line summary, algorithms, options (name, type,
    default, description)."""
    return _REGISTRY.describe()
