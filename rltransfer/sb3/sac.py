"""SAC: what stable-baselines3's ``SACPolicy`` names mean, and :class:`TransferSAC`.

=============  ==============================================
part           parameters
=============  ==============================================
features       ``actor.features_extractor``, ``critic(_target).features_extractor``
actor_trunk    ``actor.latent_pi``
critic_trunk   ``critic(_target).qfN`` but the last linear layer
actor_head     ``actor.mu``, ``actor.log_std``
critic_head    the last linear layer of ``critic(_target).qfN``
=============  ==============================================

``critic_target`` parameters share the part of their online twin and are flagged as targets.
Two optimizers train the policy (``actor.optimizer``, ``critic.optimizer``); the entropy
coefficient is ``model.log_ent_coef`` with its own optimizer (``ent_coef_optimizer``).
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
from stable_baselines3 import SAC

from rltransfer.sb3.common import AddLoss, ParamInfo, RuntimeMixin, Site, hooked

NAME = "sac"
ACTOR_RULES = (
    (re.compile(r"^actor\.features_extractor\."), "features"),
    (re.compile(r"^actor\.latent_pi\."), "actor_trunk"),
    (re.compile(r"^actor\.(mu|log_std)(\.|$)"), "actor_head"),
)
CRITIC = re.compile(r"^(critic|critic_target)\.(features_extractor\.|qf(\d+)\.(\d+)\.)")
PROGRESSIVE_CRITIC = re.compile(r"^(critic|critic_target)\.qf\d+\.(head\.)?")
"""A Q-network made progressive: ``head.`` is its output layer, the rest its trunk."""
ENCODER_PREFIXES = ("actor.features_extractor.", "critic.features_extractor.",
                    "critic_target.features_extractor.")
"""Where a features extractor's own parameters sit in the policy's state dict."""
TARGET_PREFIX = "critic_target."
ONLINE_CRITIC_PREFIX = "critic."


def classify(keys: Iterable[str]) -> dict[str, ParamInfo | None]:
    """The part of every state-dict key of a SAC policy (``None``: unknown)."""
    keys = list(keys)
    last_layer: dict[tuple[str, str], int] = {}
    for key in keys:
        m = CRITIC.match(key)
        if m and m.group(3) is not None:
            net = (m.group(1), m.group(3))
            last_layer[net] = max(last_layer.get(net, -1), int(m.group(4)))
    out: dict[str, ParamInfo | None] = {}
    for key in keys:
        m = CRITIC.match(key)
        p = PROGRESSIVE_CRITIC.match(key)
        if m is None and p is not None:
            out[key] = ParamInfo("critic_head" if p.group(2) else "critic_trunk",
                                 p.group(1) == "critic_target")
        elif m:
            target = m.group(1) == "critic_target"
            if m.group(3) is None:
                out[key] = ParamInfo("features", target)
            else:
                head = int(m.group(4)) == last_layer[(m.group(1), m.group(3))]
                out[key] = ParamInfo("critic_head" if head else "critic_trunk", target)
        else:
            part = next((p for pattern, p in ACTOR_RULES if pattern.search(key)), None)
            out[key] = ParamInfo(part) if part else None
    return out


def target_twin(name: str) -> str | None:
    """The target-network twin of an online critic parameter name (else ``None``)."""
    if name.startswith(ONLINE_CRITIC_PREFIX):
        return TARGET_PREFIX + name[len(ONLINE_CRITIC_PREFIX):]
    return None


def rebuild_optimizers(model: Any) -> None:
    """Fresh actor and critic optimizers, as SB3's ``SACPolicy._build`` makes them (after a
    method changed the networks' structure)."""
    policy = model.policy
    lr = model.lr_schedule(1)
    policy.actor.optimizer = policy.optimizer_class(policy.actor.parameters(), lr=lr,
                                                    **policy.optimizer_kwargs)
    critic = [p for n, p in policy.critic.named_parameters()
              if not (policy.share_features_extractor and "features_extractor" in n)]
    policy.critic.optimizer = policy.optimizer_class(critic, lr=lr, **policy.optimizer_kwargs)


def progressive_sites(policy: Any) -> list[Site]:
    """The MLPs a progressive network extends: the actor's trunk with ``mu`` and ``log_std``,
    and each online Q-network (whose output layer is inside it)."""
    return [Site("actor.latent_pi", ("actor.mu", "actor.log_std")),
            *(Site(f"critic.qf{i}", head_inside=True)
              for i in range(len(policy.critic.q_networks)))]


def after_structure(policy: Any) -> None:
    """The Q-network list follows the replaced modules; the target critic takes the online
    critic's structure and values (as SB3 builds it)."""
    for critic in (policy.critic, policy.critic_target):
        for i in range(len(critic.q_networks)):
            critic.q_networks[i] = getattr(critic, f"qf{i}")
    if any(type(q).__name__ != type(t).__name__ for q, t in
           zip(policy.critic.q_networks, policy.critic_target.q_networks, strict=True)):
        for i, q in enumerate(policy.critic.q_networks):
            twin = copy.deepcopy(q)
            setattr(policy.critic_target, f"qf{i}", twin)
            policy.critic_target.q_networks[i] = twin
        policy.critic_target.set_training_mode(False)


def optimizers(model: Any) -> list[torch.optim.Optimizer]:
    """The optimizers that train the policy's parameters (actor, critic)."""
    return [model.policy.actor.optimizer, model.policy.critic.optimizer]


def optimizer_of(model: Any, param: torch.nn.Parameter) -> torch.optim.Optimizer:
    """The optimizer that trains ``param`` (the actor's or the critic's)."""
    if any(param is p for p in model.policy.actor.parameters()):
        return model.policy.actor.optimizer
    return model.policy.critic.optimizer


def actor_parameters(model: Any) -> dict[str, torch.nn.Parameter]:
    """The actor's parameters (its features extractor included)."""
    return {f"actor.{n}": p for n, p in model.policy.actor.named_parameters()}


def adapter_layout(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[str | None, str | None]]:
    """The parameters an adapter between spaces reshapes: ``{name: (rows, columns)}``.

    ``rows``: ``"mean"`` (``actor.mu``) or ``"std"`` (``actor.log_std``), one row per action
    dim; ``columns``: ``"obs"`` for the actor's first layer, ``"obs+act"`` for each critic's
    (and target critic's) first layer, which reads the observation and then the action.
    """
    out: dict[str, list[str | None]] = {}
    first = _first_linear(state, "actor.latent_pi.")
    for key in ([first] if first else ["actor.mu.weight", "actor.log_std.weight"]):
        out.setdefault(key, [None, None])[1] = "obs"
    nets = sorted({m.group(0) for k in state
                   if (m := re.match(r"^(critic|critic_target)\.qf\d+\.", k))})
    for net in nets:
        q_first = _first_linear(state, net)
        if q_first is not None:
            out.setdefault(q_first, [None, None])[1] = "obs+act"
    for name, rows in (("mu", "mean"), ("log_std", "std")):
        for suffix in ("weight", "bias"):
            key = f"actor.{name}.{suffix}"
            if key in state:
                out.setdefault(key, [None, None])[0] = rows
    if "actor.log_std" in state:
        raise ValueError("a SAC policy with gSDE (use_sde) keeps log_std per latent feature; "
                         "an adapter between action spaces needs use_sde=False")
    return {k: (v[0], v[1]) for k, v in out.items()}


def _first_linear(state: Mapping[str, torch.Tensor], prefix: str) -> str | None:
    idx = [int(k[len(prefix):].split(".")[0]) for k in state
           if k.startswith(prefix) and k.endswith(".weight")]
    return f"{prefix}{min(idx)}.weight" if idx else None


def entropy_coefficient(model: Any) -> torch.Tensor | None:
    """``log_ent_coef`` when the entropy coefficient is learned, else ``None``."""
    return getattr(model, "log_ent_coef", None)


def teacher_distribution(teacher: Any, obs: torch.Tensor) -> Any:
    """The teacher's action distribution on ``obs`` before the tanh squashing."""
    with torch.no_grad():
        mean, log_std, kwargs = teacher.actor.get_action_dist_params(obs)
        return teacher.actor.action_dist.proba_distribution(mean, log_std, **kwargs).distribution


class TransferSAC(RuntimeMixin, SAC):
    """SAC that runs a transfer method: its loss terms in every actor update, its callbacks
    in every ``learn()``, and the guide's executed actions in the replay buffer.

    With no method installed (``model.rlt`` empty) it is SAC, update for update. Loss terms
    enter through :class:`~rltransfer.sb3.common.AddLoss` on the log-probability of the
    actor's actions (which only the actor loss differentiates). When a guide acted in an env
    (``info["rlt_action"]``), the replay buffer stores the action that was executed.
    """

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        with self._method_hooks():
            super().train(gradient_steps, batch_size)
        self.rlt.record(self.logger)

    def _store_transition(self, replay_buffer: Any, buffer_action: np.ndarray, new_obs: Any,
                          reward: np.ndarray, dones: np.ndarray,
                          infos: list[dict[str, Any]]) -> None:
        guided = [i for i, info in enumerate(infos) if "rlt_action" in info]
        if guided:
            buffer_action = np.array(buffer_action, copy=True)
            for i in guided:
                buffer_action[i] = self.policy.scale_action(
                    np.asarray(infos[i]["rlt_action"], dtype=buffer_action.dtype))
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)

    def _method_hooks(self) -> contextlib.AbstractContextManager[None]:
        terms = self.rlt.active_terms(self)
        if not terms:
            return contextlib.nullcontext()
        actor = self.actor

        def action_log_prob(original: Callable[[Any], tuple[Any, Any]]) -> Callable[..., Any]:
            def wrapped(obs: Any) -> tuple[Any, Any]:
                actions, log_prob = original(obs)
                if torch.is_grad_enabled():
                    extra = self.rlt.loss(obs, actor.action_dist.distribution, terms)
                    log_prob = AddLoss.apply(log_prob, extra)
                return actions, log_prob
            return wrapped

        return hooked(actor, "action_log_prob", action_log_prob)
