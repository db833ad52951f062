"""PPO: what stable-baselines3's ``ActorCriticPolicy`` names mean, and :class:`TransferPPO`.

=============  ==============================================
part           parameters
=============  ==============================================
features       ``features_extractor``, ``pi_/vf_features_extractor``
actor_trunk    ``mlp_extractor.policy_net`` (``shared_net``)
critic_trunk   ``mlp_extractor.value_net``
actor_head     ``action_net``, ``log_std``
critic_head    ``value_net``
=============  ==============================================

One optimizer (``policy.optimizer``) trains every parameter. The actor (the action
distribution) depends on the features extractor it uses, the actor trunk and the actor head.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Generator, Iterable, Mapping
from typing import Any

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.type_aliases import RolloutBufferSamples

from rltransfer.sb3.common import AddLoss, ParamInfo, RuntimeMixin, Site, hooked

NAME = "ppo"
RULES = (
    (re.compile(r"^(pi_|vf_)?features_extractor\."), "features"),
    (re.compile(r"^mlp_extractor\.(policy_net|shared_net)\."), "actor_trunk"),
    (re.compile(r"^mlp_extractor\.value_net\."), "critic_trunk"),
    (re.compile(r"^(action_net\.|log_std$)"), "actor_head"),
    (re.compile(r"^value_net\."), "critic_head"),
)
ENCODER_PREFIXES = ("features_extractor.", "pi_features_extractor.", "vf_features_extractor.")
"""Where a features extractor's own parameters sit in the policy's state dict."""


def classify(keys: Iterable[str]) -> dict[str, ParamInfo | None]:
    """The part of every state-dict key of a PPO policy (``None`` part: unknown)."""
    out: dict[str, ParamInfo | None] = {}
    for key in keys:
        part = next((p for pattern, p in RULES if pattern.search(key)), None)
        out[key] = ParamInfo(part) if part else None
    return out


def optimizers(model: Any) -> list[torch.optim.Optimizer]:
    """The optimizers that train the policy's parameters."""
    return [model.policy.optimizer]


def optimizer_of(model: Any, param: torch.nn.Parameter) -> torch.optim.Optimizer:
    """The optimizer that trains ``param``."""
    return model.policy.optimizer


def rebuild_optimizers(model: Any) -> None:
    """A fresh optimizer over the policy's parameters, as SB3 builds it (after a method
    changed the network's structure)."""
    policy = model.policy
    policy.optimizer = policy.optimizer_class(policy.parameters(), lr=model.lr_schedule(1),
                                              **policy.optimizer_kwargs)


def progressive_sites(policy: Any) -> list[Site]:
    """The MLPs a progressive network extends: the actor and value trunks with their heads."""
    return [Site("mlp_extractor.policy_net", ("action_net",)),
            Site("mlp_extractor.value_net", ("value_net",))]


def after_structure(policy: Any) -> None:
    """Keep the extractor's latent sizes true after the trunks were replaced."""
    extractor = policy.mlp_extractor
    extractor.latent_dim_pi = policy.action_net.in_features
    extractor.latent_dim_vf = policy.value_net.in_features


def target_twin(name: str) -> None:
    """PPO has no target networks."""
    return None


def actor_parameters(model: Any) -> dict[str, torch.nn.Parameter]:
    """The parameters the action distribution depends on (its features extractor included)."""
    shared = getattr(model.policy, "share_features_extractor", True)
    features = "features_extractor." if shared else "pi_features_extractor."
    out = {}
    for name, p in model.policy.named_parameters():
        info = classify([name])[name]
        if info is None:
            continue
        if info.part in ("actor_trunk", "actor_head") or (
                info.part == "features" and name.startswith(features)):
            out[name] = p
    return out


def adapter_layout(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[str | None, str | None]]:
    """The parameters an adapter between spaces reshapes: ``{name: (rows, columns)}``.

    ``rows``: ``"mean"`` (``action_net``: one row per action dim) or ``"std"`` (``log_std``);
    ``columns``: ``"obs"`` for the first layer of each network that reads the observation.
    Parameters not listed keep their shape. The features extractor must have no weights
    (an MLP policy's only flattens).
    """
    out: dict[str, list[str | None]] = {}
    for net, head in (("policy_net", "action_net"), ("value_net", "value_net")):
        first = _first_linear(state, f"mlp_extractor.{net}.")
        out.setdefault(first or f"{head}.weight", [None, None])[1] = "obs"
    for key in ("action_net.weight", "action_net.bias"):
        out.setdefault(key, [None, None])[0] = "mean"
    if "log_std" in state:
        if state["log_std"].dim() != 1:
            raise ValueError("a PPO policy with gSDE (use_sde) keeps log_std per latent "
                             "feature; an adapter between action spaces needs use_sde=False")
        out.setdefault("log_std", [None, None])[0] = "std"
    return {k: (v[0], v[1]) for k, v in out.items()}


def _first_linear(state: Mapping[str, torch.Tensor], prefix: str) -> str | None:
    idx = [int(k[len(prefix):].split(".")[0]) for k in state
           if k.startswith(prefix) and k.endswith(".weight")]
    return f"{prefix}{min(idx)}.weight" if idx else None


def entropy_coefficient(model: Any) -> None:
    """PPO's entropy coefficient is a fixed hyperparameter, not a tensor."""
    return None


def teacher_distribution(teacher: Any, obs: torch.Tensor) -> Any:
    """The teacher policy's action distribution on ``obs`` (a ``torch.distributions``)."""
    with torch.no_grad():
        return teacher.get_distribution(obs).distribution


class GuidedRolloutBuffer(RolloutBuffer):
    """A rollout buffer that also records in which steps a guide, not the agent, acted, and
    (for a state teacher) the teacher's own observation of each step.

    ``guided[t, env]`` is set by the method that lets the guide act; ``teacher_obs[t, env]``
    by :class:`rltransfer.methods.teacher.RecordStates` (allocated at its first use).
    During ``train()`` ``batch_guided`` and ``batch_teacher_obs`` hold those of the
    minibatch being used.
    """

    def reset(self) -> None:
        super().reset()
        self.guided = np.zeros((self.buffer_size, self.n_envs), dtype=bool)
        self.batch_guided: np.ndarray | None = None
        self._guided_flat: np.ndarray | None = None
        self.teacher_obs: np.ndarray | None = getattr(self, "teacher_obs", None)
        self.batch_teacher_obs: np.ndarray | None = None
        self._teacher_flat: np.ndarray | None = None

    def record_teacher_obs(self, obs: np.ndarray) -> None:
        """The teacher's observations (one per env) of the step about to be added."""
        obs = np.asarray(obs, dtype=np.float32)
        if self.teacher_obs is None or self.teacher_obs.shape[2:] != obs.shape[1:]:
            self.teacher_obs = np.zeros((self.buffer_size, self.n_envs, *obs.shape[1:]),
                                        dtype=np.float32)
        self.teacher_obs[self.pos] = obs

    def get(self, batch_size: int | None = None) -> Generator[RolloutBufferSamples, None, None]:
        if not self.generator_ready:
            self._guided_flat = self.guided.swapaxes(0, 1).reshape(-1)
            if self.teacher_obs is not None:
                self._teacher_flat = self.swap_and_flatten(self.teacher_obs)
        yield from super().get(batch_size)

    def _get_samples(self, batch_inds: np.ndarray, env: Any = None) -> RolloutBufferSamples:
        assert self._guided_flat is not None
        self.batch_guided = self._guided_flat[batch_inds]
        if self._teacher_flat is not None:
            self.batch_teacher_obs = self._teacher_flat[batch_inds]
        return super()._get_samples(batch_inds, env)


class TransferPPO(RuntimeMixin, PPO):
    """PPO that runs a transfer method: its loss terms in every update, its callbacks in
    every ``learn()``.

    With no method installed (``model.rlt`` empty) it is PPO, update for update. The terms
    enter through :class:`~rltransfer.sb3.common.AddLoss` on the log-probabilities of the
    minibatch, so the clipped surrogate, value and entropy losses are SB3's own. With a
    :class:`GuidedRolloutBuffer`, the steps a guide acted in are kept out of the policy and
    entropy losses (their log-probabilities are detached); the value function learns from all.
    """

    def train(self) -> None:
        with self._method_hooks():
            super().train()
        self.rlt.record(self.logger)

    def _method_hooks(self) -> contextlib.AbstractContextManager[object]:
        terms = self.rlt.active_terms(self)
        buffer = self.rollout_buffer
        guided_buffer = (buffer if isinstance(buffer, GuidedRolloutBuffer)
                         and bool(buffer.guided.any()) else None)
        guided = guided_buffer is not None
        if not terms and not guided:
            return contextlib.nullcontext()
        policy = self.policy
        captured: dict[str, Any] = {}

        def dist_from_latent(original: Callable[[torch.Tensor], Any]) -> Callable[..., Any]:
            def wrapped(latent_pi: torch.Tensor) -> Any:
                captured["dist"] = dist = original(latent_pi)
                return dist
            return wrapped

        def evaluate_actions(original: Callable[..., tuple[Any, Any, Any]]) -> Callable[..., Any]:
            def wrapped(obs: Any, actions: torch.Tensor) -> tuple[Any, Any, Any]:
                values, log_prob, entropy = original(obs, actions)
                if guided_buffer is not None:
                    mask = torch.as_tensor(guided_buffer.batch_guided, device=log_prob.device)
                    log_prob = torch.where(mask, log_prob.detach(), log_prob)
                    if entropy is not None:
                        entropy = torch.where(mask, entropy.detach(), entropy)
                if terms:
                    extra = self.rlt.loss(obs, captured["dist"].distribution, terms)
                    log_prob = AddLoss.apply(log_prob, extra)
                return values, log_prob, entropy
            return wrapped

        stack = contextlib.ExitStack()
        stack.enter_context(hooked(policy, "_get_action_dist_from_latent", dist_from_latent))
        stack.enter_context(hooked(policy, "evaluate_actions", evaluate_actions))
        return stack
