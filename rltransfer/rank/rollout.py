"""Rollouts of a candidate's policy within a budget, and the candidate's view of them.

- :func:`collect`: exactly ``steps`` environment steps of an agent's policy on a one-env
  VecEnv, seeded, with the transitions as the env gave them (:class:`Rollout`).
- :func:`policy_obs`, :func:`policy_rewards`: observations and rewards in the agent's own
  units (its checkpoint's VecNormalize statistics, held fixed).
- :func:`features`: what the agent's network reads, as numbers: the normalized observation
  for a flat observation, the features extractor's output for an image.
- :func:`action_features`: actions as numbers for a regression (Box actions scaled to
  ``[-1, 1]`` by their bounds, discrete ones one-hot).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BaseModel
from stable_baselines3.common.vec_env import VecEnv

from rltransfer.rank.base import Rollout, RolloutRequest

__all__ = ["action_features", "collect", "features", "is_flat", "policy_obs", "policy_rewards"]


def collect(agent: Any, venv: VecEnv, request: RolloutRequest, *, seed: int,
            on_step: Callable[[int], None] | None = None) -> Rollout:
    """Run ``agent``'s policy for exactly ``request.steps`` steps on ``venv`` (one env).

    The env is seeded with ``seed`` and reset first, as
    :func:`rltransfer.training.evaluate` does, so a deterministic rollout's complete episodes
    are the episodes an evaluation with the same seed sees. A stochastic rollout draws its
    actions from a torch generator seeded with ``seed`` (the global RNG is left as it was).
    ``on_step(1)`` is called after every step (a progress bar).
    """
    if venv.num_envs != 1:
        raise ValueError(f"collect needs a VecEnv with one env, not {venv.num_envs}")
    n = int(request.steps)
    obs_l, act_l, rew_l, next_l, term_l, trunc_l = [], [], [], [], [], []
    returns: list[float] = []
    lengths: list[int] = []
    ep_return, ep_length = 0.0, 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        venv.seed(seed)
        obs: Any = venv.reset()
        for _ in range(n):
            action, _ = agent.predict(policy_obs(agent, obs),
                                      deterministic=request.deterministic)
            next_obs, reward, done, infos = venv.step(action)
            info = infos[0]
            truncated = bool(done[0] and info.get("TimeLimit.truncated", False))
            terminated = bool(done[0]) and not truncated
            true_next = info["terminal_observation"][None] if done[0] else next_obs
            obs_l.append(obs[0])
            act_l.append(np.asarray(action)[0])
            rew_l.append(float(reward[0]))
            next_l.append(np.asarray(true_next)[0])
            term_l.append(terminated)
            trunc_l.append(truncated)
            ep_return += float(reward[0])
            ep_length += 1
            if done[0]:
                returns.append(ep_return)
                lengths.append(ep_length)
                ep_return, ep_length = 0.0, 0
            obs = next_obs
            if on_step is not None:
                on_step(1)
    return Rollout(request=request, obs=np.asarray(obs_l), actions=np.asarray(act_l),
                   rewards=np.asarray(rew_l, dtype=np.float64), next_obs=np.asarray(next_l),
                   terminated=np.asarray(term_l, dtype=bool),
                   truncated=np.asarray(trunc_l, dtype=bool), episode_returns=returns,
                   episode_lengths=lengths, partial_return=ep_return, partial_length=ep_length)


def policy_obs(agent: Any, obs: np.ndarray) -> np.ndarray:
    """Raw observations as the agent's policy reads them: normalized with its checkpoint's
    statistics when it was trained with VecNormalize (which never updates them here)."""
    venv = agent.get_vec_normalize_env()
    return venv.normalize_obs(obs) if venv is not None else obs


def policy_rewards(agent: Any, rewards: np.ndarray) -> np.ndarray:
    """Raw rewards in the agent's own units (divided by its return scale when it was trained
    with a normalized reward), as float64."""
    venv = agent.get_vec_normalize_env()
    out = venv.normalize_reward(rewards) if venv is not None else rewards
    return np.asarray(out, dtype=np.float64)


def is_flat(space: spaces.Space) -> bool:
    """Whether observations of ``space`` are flat vectors (no image)."""
    return isinstance(space, spaces.Box) and len(space.shape) == 1


def features(agent: Any, obs: np.ndarray, batch: int = 512) -> np.ndarray:
    """What the agent's network reads for raw observations ``obs``, as float64 ``(n, d)``.

    A flat observation: the normalized observation itself (an MLP policy's features
    extractor only flattens it). An image: the output of the actor's features extractor (a
    CNN), which is how the candidate sees the frame.
    """
    x = policy_obs(agent, obs)
    if is_flat(agent.observation_space):
        return np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    policy = agent.policy
    extractor = (policy.actor.features_extractor if hasattr(policy, "actor")
                 else policy.pi_features_extractor)
    owner = policy.actor if hasattr(policy, "actor") else policy
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            tensor, _ = policy.obs_to_tensor(x[i:i + batch])
            out.append(BaseModel.extract_features(owner, tensor, extractor).cpu().numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 0))


def action_features(space: spaces.Space, actions: np.ndarray) -> np.ndarray:
    """Actions as regression inputs ``(n, d)``: a Box scaled to ``[-1, 1]`` by its bounds
    (as they are where a bound is infinite), Discrete and MultiDiscrete one-hot, MultiBinary
    as 0/1."""
    actions = np.asarray(actions)
    n = len(actions)
    if isinstance(space, spaces.Box):
        a = actions.reshape(n, -1).astype(np.float64)
        low, high = space.low.reshape(-1).astype(np.float64), space.high.reshape(-1)
        finite = np.isfinite(low) & np.isfinite(high) & (high > low)
        a[:, finite] = 2.0 * (a[:, finite] - low[finite]) / (high[finite] - low[finite]) - 1.0
        return a
    if isinstance(space, spaces.Discrete):
        out = np.zeros((n, int(space.n)))
        out[np.arange(n), actions.reshape(n).astype(np.int64) - int(space.start)] = 1.0
        return out
    if isinstance(space, spaces.MultiDiscrete):
        cols = [action_features(spaces.Discrete(int(k)), actions.reshape(n, -1)[:, i])
                for i, k in enumerate(space.nvec.reshape(-1))]
        return np.concatenate(cols, axis=1)
    return actions.reshape(n, -1).astype(np.float64)
