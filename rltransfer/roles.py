"""The one place that maps stable-baselines3 parameter names to transfer roles.

Every parameter of a policy belongs to exactly one *part*:

=============  ===================================  =====================================
part           PPO (``ActorCriticPolicy``)          SAC (``SACPolicy``)
=============  ===================================  =====================================
features       ``features_extractor``,              ``actor.features_extractor``,
               ``pi_/vf_features_extractor``        ``critic(_target).features_extractor``
actor_trunk    ``mlp_extractor.policy_net``         ``actor.latent_pi``
critic_trunk   ``mlp_extractor.value_net``          ``critic(_target).qfN`` but the last
                                                    linear layer
actor_head     ``action_net``, ``log_std``          ``actor.mu``, ``actor.log_std``
critic_head    ``value_net``                        last linear layer of ``critic(_target).qfN``
=============  ===================================  =====================================

A *role* is a set of parts, the words users pick: ``encoder`` (the features extractor when
it has weights, as with CNNs; for MLP policies, whose extractor only flattens, the hidden
layers of actor and critic), ``actor``, ``critic``, ``heads`` (output layers), ``all``, or a
part name itself. SAC's ``critic_target`` parameters share the part of their online twin and
are flagged as targets so methods keep them consistent.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

PARTS = ("features", "actor_trunk", "critic_trunk", "actor_head", "critic_head")
ROLES = ("encoder", "actor", "critic", "heads", "all", *PARTS)


class RoleError(ValueError):
    """An unknown role, or a parameter name no role claims."""


@dataclass(frozen=True)
class ParamInfo:
    """Where one parameter sits: its part, and whether it is a SAC target-network copy."""

    part: str
    target: bool = False


_PPO_RULES = (
    (re.compile(r"^(pi_|vf_)?features_extractor\."), "features"),
    (re.compile(r"^mlp_extractor\.(policy_net|shared_net)\."), "actor_trunk"),
    (re.compile(r"^mlp_extractor\.value_net\."), "critic_trunk"),
    (re.compile(r"^(action_net\.|log_std$)"), "actor_head"),
    (re.compile(r"^value_net\."), "critic_head"),
)
_SAC_ACTOR_RULES = (
    (re.compile(r"^actor\.features_extractor\."), "features"),
    (re.compile(r"^actor\.latent_pi\."), "actor_trunk"),
    (re.compile(r"^actor\.(mu|log_std)(\.|$)"), "actor_head"),
)
_SAC_CRITIC = re.compile(r"^(critic|critic_target)\.(features_extractor\.|qf(\d+)\.(\d+)\.)")


def classify(algo: str, keys: Iterable[str]) -> dict[str, ParamInfo]:
    """Map every state-dict key of an ``algo`` policy to its :class:`ParamInfo`."""
    keys = list(keys)
    algo = algo.lower()
    out: dict[str, ParamInfo] = {}
    if algo == "ppo":
        for key in keys:
            out[key] = ParamInfo(_match(_PPO_RULES, key, algo))
        return out
    if algo == "sac":
        last_layer: dict[tuple[str, str], int] = {}
        for key in keys:
            m = _SAC_CRITIC.match(key)
            if m and m.group(3) is not None:
                net = (m.group(1), m.group(3))
                last_layer[net] = max(last_layer.get(net, -1), int(m.group(4)))
        for key in keys:
            m = _SAC_CRITIC.match(key)
            if m:
                target = m.group(1) == "critic_target"
                if m.group(3) is None:
                    out[key] = ParamInfo("features", target)
                else:
                    head = int(m.group(4)) == last_layer[(m.group(1), m.group(3))]
                    out[key] = ParamInfo("critic_head" if head else "critic_trunk", target)
            else:
                out[key] = ParamInfo(_match(_SAC_ACTOR_RULES, key, algo))
        return out
    raise RoleError(f"no role map for algo={algo!r}; supported: ['ppo', 'sac']")


def _match(rules, key: str, algo: str) -> str:
    for pattern, part in rules:
        if pattern.search(key):
            return part
    raise RoleError(f"{algo} parameter {key!r} belongs to no role; rltransfer.roles needs a rule")


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
    if algo == "ppo":
        return ("features_extractor.", "pi_features_extractor.", "vf_features_extractor.")
    if algo == "sac":
        return ("actor.features_extractor.", "critic.features_extractor.",
                "critic_target.features_extractor.")
    raise RoleError(f"no role map for algo={algo!r}; supported: ['ppo', 'sac']")
