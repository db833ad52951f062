"""Weight surgery for adapters between spaces: the source checkpoint in the target's shapes.

Given a :class:`~rltransfer.envs.ResolvedAdapter` (for each target dimension, the source
dimension it reads, or none), :func:`adapt_checkpoint` rewrites the source's tensors so that
every one has the target policy's shape, and the target computes at step 0 exactly what the
source computed on the shared dimensions:

- the first layer of each network that reads the observation (which layer that is, per
  algorithm, is said by ``adapter_layout`` in :mod:`rltransfer.sb3`) keeps the source's
  columns of shared dimensions; columns of new dimensions are zero, columns of dropped source
  dimensions go (as if they read 0: their mean once observations are normalized);
- a SAC critic's first layer also reads the action: its action columns follow the action
  mapping, new and mirrored action dimensions get zero columns, so ``Q(s, a)`` is the
  source's on the shared dimensions;
- output rows follow the action mapping: a shared or mirrored dimension takes its source row
  (mean and log-std); a new dimension gets a zero mean row and keeps the target's fresh
  log-std row;
- VecNormalize observation statistics follow the observation mapping (new dimensions:
  mean 0, variance 1).

Every method then moves weights as it would between equal spaces (the adapted checkpoint is
what :func:`rltransfer.methods.weights.copy_roles` reads). A teacher (``kickstart``,
``jsrl``, ``replay_warmstart``) is the source policy on its own spaces, wrapped by
:class:`AdaptedTeacher`, which maps the target's observation back to the source's and the
source's actions to the target's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from gymnasium import spaces

from rltransfer.checkpoint import Checkpoint, space_to_json
from rltransfer.methods.base import TransferError
from rltransfer.roles import classify
from rltransfer.sb3 import algo_name, internals

if TYPE_CHECKING:  # the adapter is data resolved by rltransfer.envs; nothing else is needed
    from rltransfer.envs import ResolvedAdapter

__all__ = ["AdaptedTeacher", "adapt_checkpoint", "adapt_tensor", "matched_distributions"]

NORM_OBS = "vecnormalize.obs_rms."


def adapt_checkpoint(source: Checkpoint, model: Any, adapter: ResolvedAdapter) -> Checkpoint:
    """The agent checkpoint ``source`` rewritten into ``model``'s shapes through ``adapter``.

    The card keeps the source's fields, with the target's spaces and ``adapter`` (the spec
    and the resolved indices); ``path`` stays the source's.
    """
    if source.card.get("kind", "agent") != "agent":
        raise TransferError("an adapter between spaces needs an agent checkpoint as source, "
                            f"not kind={source.card.get('kind')!r}")
    algo = algo_name(model)
    if source.card.get("algo") not in (None, algo):
        raise TransferError(f"source algo {source.card.get('algo')!r} differs from target algo "
                            f"{algo!r}: an adapter maps dimensions, not algorithms")
    target = model.policy.state_dict()
    _check_dims(source, model, adapter)
    try:
        layout = internals(algo).adapter_layout(target)
    except ValueError as exc:
        raise TransferError(str(exc)) from None
    if not adapter.is_identity:
        has_features = [k for k, i in classify(algo, target).items() if i.part == "features"]
        if has_features:
            raise TransferError(
                "an adapter maps the inputs of the first linear layers, but this policy's "
                f"features extractor has weights ({has_features[0]}, ...); use an MLP policy")
    tensors = {}
    for key, fresh in target.items():
        src = source.tensors.get(key)
        if src is None:
            continue  # copy_roles lists it as missing
        rows, cols = layout.get(key, (None, None))
        tensors[key] = adapt_tensor(src, fresh, rows, cols, adapter) if (rows or cols) else src
    extras = dict(source.extras)
    for stat, fill in (("mean", 0.0), ("var", 1.0)):
        key = NORM_OBS + stat
        if key in extras:
            extras[key] = _map_vector(extras[key], adapter, fill)
    card = {**source.card, "observation_space": space_to_json(model.observation_space),
            "action_space": space_to_json(model.action_space), "adapter": adapter.to_json()}
    return Checkpoint(path=source.path, tensors=tensors, card=card, extras=extras)


def adapt_tensor(src: torch.Tensor, fresh: torch.Tensor, rows: str | None, cols: str | None,
                 adapter: ResolvedAdapter) -> torch.Tensor:
    """One source tensor in the target's shape.

    ``cols``: ``"obs"`` or ``"obs+act"`` (the columns read the observation, then the action);
    ``rows``: ``"mean"`` (new action rows are zero) or ``"std"`` (new rows keep ``fresh``).
    """
    out = src
    if cols is not None:
        tgt_idx, src_idx = adapter.obs_pairs()
        if cols == "obs+act":
            n_obs_t, n_obs_s = len(adapter.obs), adapter.source_obs_dim
            a_t, a_s = adapter.act_pairs(mirrors=False)
            tgt_idx = np.concatenate([tgt_idx, n_obs_t + a_t])
            src_idx = np.concatenate([src_idx, n_obs_s + a_s])
        mapped = src.new_zeros((src.shape[0], fresh.shape[-1]))
        mapped[:, torch.as_tensor(tgt_idx)] = src[:, torch.as_tensor(src_idx)]
        out = mapped
    if rows is not None and adapter.act is not None:
        t, s = adapter.act_pairs(mirrors=True)
        base = fresh.clone() if rows == "std" else torch.zeros_like(fresh)
        base[torch.as_tensor(t)] = out[torch.as_tensor(s)].to(base.dtype)
        out = base
    if tuple(out.shape) != tuple(fresh.shape):
        raise TransferError(f"adapter: a tensor of shape {tuple(src.shape)} became "
                            f"{tuple(out.shape)}, but the target needs {tuple(fresh.shape)}")
    return out.to(fresh.dtype)


def _map_vector(values: torch.Tensor, adapter: ResolvedAdapter, fill: float) -> torch.Tensor:
    out = torch.full((len(adapter.obs),), fill, dtype=values.dtype)
    tgt, src = adapter.obs_pairs()
    out[torch.as_tensor(tgt)] = values.reshape(-1)[torch.as_tensor(src)]
    return out


def _check_dims(source: Checkpoint, model: Any, adapter: ResolvedAdapter) -> None:
    """The adapter was resolved for these spaces (a card's spaces are the source's)."""
    obs_s = source.observation_space()
    n_obs_s = obs_s.shape[0] if isinstance(obs_s, spaces.Box) and len(obs_s.shape) == 1 else None
    n_obs_t = model.observation_space.shape[0] if model.observation_space.shape else None
    problems = []
    if n_obs_s != adapter.source_obs_dim:
        problems.append(f"source observation {obs_s} vs adapter {adapter.source_obs_dim} dims")
    if n_obs_t != len(adapter.obs):
        problems.append(f"target observation {model.observation_space} vs adapter "
                        f"{len(adapter.obs)} dims")
    if adapter.act is not None:
        act_s, act_t = source.action_space(), model.action_space
        if act_s.shape != (adapter.source_act_dim,) or act_t.shape != (len(adapter.act),):
            problems.append(f"actions {act_s} -> {act_t} vs adapter {adapter.source_act_dim} "
                            f"-> {len(adapter.act)} dims")
    elif source.action_space() != model.action_space:
        problems.append(f"actions {source.action_space()} -> {model.action_space} differ and "
                        "the adapter maps none")
    if problems:
        raise TransferError("the adapter does not fit the source checkpoint and target env: "
                            + "; ".join(problems))


class AdaptedTeacher:
    """The source policy on its own spaces, as the target's envs and losses see it.

    ``predict`` maps the target's observations back (dropped source dimensions read 0) and
    the source's actions forward: shared and mirrored dimensions take the source's action,
    new ones the action of a zero mean (as the adapted target acts at step 0).
    """

    def __init__(self, policy: Any, adapter: ResolvedAdapter, algo: str,
                 action_space: spaces.Space) -> None:
        self.policy = policy
        self.adapter = adapter
        self.algo = algo
        self.action_space = action_space

    def source_obs(self, obs: Any) -> Any:
        """Target observations (numpy or torch, last axis) as the source's."""
        if isinstance(obs, torch.Tensor):
            tgt, src = self.adapter.obs_pairs()
            out = obs.new_zeros((*obs.shape[:-1], self.adapter.source_obs_dim))
            out[..., torch.as_tensor(src)] = obs[..., torch.as_tensor(tgt)]
            return out
        return self.adapter.source_obs(np.asarray(obs))

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[np.ndarray, Any]:
        """SB3's ``predict`` on the target's spaces."""
        actions, state = self.policy.predict(self.source_obs(obs), state, episode_start,
                                             deterministic)
        return self.target_actions(actions), state

    def target_actions(self, actions: np.ndarray) -> np.ndarray:
        """Source actions (batch, source dims) as target actions (batch, target dims)."""
        if self.adapter.act is None:
            return actions
        box = self.action_space
        assert isinstance(box, spaces.Box)  # adapters map continuous actions only
        rest = (np.clip(0.0, box.low, box.high) if self.algo == "ppo"
                else (box.low + box.high) / 2.0)
        actions = np.asarray(actions)
        out = np.broadcast_to(rest, (*actions.shape[:-1], len(self.adapter.act))).copy()
        t, s = self.adapter.act_pairs(mirrors=True)
        out[..., t] = actions[..., s]
        return out.astype(box.dtype)


def matched_distributions(teacher: Any, obs: torch.Tensor, student: Any,
                          teacher_distribution: Callable[[Any, torch.Tensor], Any]
                          ) -> tuple[Any, Any]:
    """The teacher's and the student's action distributions on what they share.

    A plain teacher sees ``obs`` as is; a state teacher the states behind the minibatch's
    frames (:class:`rltransfer.methods.teacher.StateTeacher`). An :class:`AdaptedTeacher`
    sees its own observation;
    with an action mapping, both Gaussians are cut to the action dimensions that correspond
    (mirrored and new dimensions are not distilled).
    """
    from rltransfer.methods.teacher import StateTeacher

    if isinstance(teacher, StateTeacher):
        return teacher_distribution(teacher.policy, teacher.batch_obs(len(obs))), student
    if not isinstance(teacher, AdaptedTeacher):
        return teacher_distribution(teacher, obs), student
    t_dist = teacher_distribution(teacher.policy, teacher.source_obs(obs))
    if teacher.adapter.act is None:
        return t_dist, student
    tgt, src = teacher.adapter.act_pairs(mirrors=False)
    tgt_i, src_i = torch.as_tensor(tgt), torch.as_tensor(src)
    normal = torch.distributions.Normal
    return (normal(t_dist.mean[..., src_i], t_dist.stddev[..., src_i]),
            normal(student.mean[..., tgt_i], student.stddev[..., tgt_i]))
