"""Transfer roles: the words users pick for parts of a policy, and how they resolve.

Every parameter of a policy belongs to exactly one *part* (``features``, ``actor_trunk``,
``critic_trunk``, ``actor_head``, ``critic_head``); which SB3 names make each part is said in
:mod:`rltransfer.sb3.ppo` and :mod:`rltransfer.sb3.sac`.

A *role* is a set of parts, the words users pick: ``encoder`` (the features extractor when
it has weights, as with CNNs; for MLP policies, whose extractor only flattens, the hidden
layers of actor and critic), ``actor``, ``critic``, ``heads`` (output layers), ``all``, or a
part name itself. SAC's ``critic_target`` parameters share the part of their online twin and
are flagged as targets so methods keep them consistent.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from types import ModuleType

from rltransfer.sb3 import internals
from rltransfer.sb3.common import ParamInfo

PARTS = ("features", "actor_trunk", "critic_trunk", "actor_head", "critic_head")
ROLES = ("encoder", "actor", "critic", "heads", "all", *PARTS)


class RoleError(ValueError):
    """An unknown role, or a parameter name no role claims."""


def classify(algo: str, keys: Iterable[str]) -> dict[str, ParamInfo]:
    """Map every state-dict key of an ``algo`` policy to its :class:`ParamInfo`.

    The rules per algorithm live in :mod:`rltransfer.sb3.ppo` and :mod:`rltransfer.sb3.sac`.
    """
    keys = list(keys)
    module = _internals(algo)
    out = module.classify(keys)
    for key, info in out.items():
        if info is None:
            raise RoleError(f"{algo} parameter {key!r} belongs to no role; "
                            f"{module.__name__} needs a rule")
    return out


def _internals(algo: str) -> ModuleType:
    try:
        return internals(algo.lower())
    except ValueError:
        raise RoleError(f"no role map for algo={algo!r}; supported: ['ppo', 'sac']") from None


def check_roles(roles: Iterable[str], where: str = "") -> None:
    """Raise :class:`RoleError` for an empty list or an unknown role (with a "did you mean").

    ``where`` prefixes the message (for example ``"partial.roles: "``).
    """
    roles = list(roles)
    if not roles:
        raise RoleError(f"{where}no role given; choose from {list(ROLES)}")
    for role in roles:
        if role not in ROLES:
            close = difflib.get_close_matches(str(role), ROLES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise RoleError(f"{where}role {role!r} is unknown{hint}; choose from {list(ROLES)}")


def parts_for(roles: Iterable[str], info: Mapping[str, ParamInfo]) -> set[str]:
    """Resolve user roles to parts, given the classified parameters of the target policy."""
    parts: set[str] = set()
    has_features = any(i.part == "features" for i in info.values())
    check_roles(roles)
    for role in roles:
        if role == "all":
            parts.update(PARTS)
        elif role == "encoder":
            parts.update({"features"} if has_features else {"actor_trunk", "critic_trunk"})
        elif role == "actor":
            parts.update({"actor_trunk", "actor_head"})
        elif role == "critic":
            parts.update({"critic_trunk", "critic_head"})
        elif role == "heads":
            parts.update({"actor_head", "critic_head"})
        else:
            parts.add(role)
    return parts


def select(algo: str, keys: Iterable[str], roles: Iterable[str]) -> list[str]:
    """State-dict keys of an ``algo`` policy that belong to ``roles`` (targets included)."""
    info = classify(algo, keys)
    parts = parts_for(roles, info)
    return [k for k, i in info.items() if i.part in parts]


def encoder_prefixes(algo: str) -> tuple[str, ...]:
    """Where a features extractor's own parameters sit in an ``algo`` policy's state dict."""
    return _internals(algo).ENCODER_PREFIXES
