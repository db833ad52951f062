"""The built-in probes: ``jumpstart``, ``value_consistency``, ``dynamics_gap``,
``state_overlap``.

Every score is oriented so that higher means *predicted* better transfer. Whether any of
them predicts the real gain of a transfer run is an open question that issue #15 point 2
measures; nothing here claims it.

With their defaults, all four read one deterministic rollout of ``budget`` steps on the
target, and the two that compare with the source also read one rollout of the same length on
the candidate's own env: a candidate costs ``budget`` target steps and ``budget`` source
steps in all, whichever of them run.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import torch
from pydantic import Field

from rltransfer.rank.base import Candidate, Probe, ProbeResult, RankError, RolloutRequest
from rltransfer.rank.registry import register_probe
from rltransfer.rank.rollout import (
    action_features,
    features,
    policy_obs,
    policy_rewards,
)

__all__ = ["DynamicsGap", "Jumpstart", "StateOverlap", "ValueConsistency", "td_targets"]

MIN_TRAIN, MIN_HELD_OUT = 10, 5
"""The fewest source transitions a probe reads (a model is fitted on), and held out to
measure the model."""


def _target(budget: int, deterministic: bool) -> RolloutRequest:
    return RolloutRequest("target", int(budget), deterministic)


@register_probe
class Jumpstart(Probe):
    """The candidate's mean return on the target, before any training.

    The candidate's policy acts on the target for exactly ``budget`` steps from the seeded
    env (deterministic actions by default, as evaluations are); the score is the mean
    undiscounted return of the episodes that ended within them, in the target's own reward
    units. The episode the budget cuts is not counted, unless no episode ended at all: then
    the score is the return of that one truncated episode and the note says so (raise the
    budget to see a whole episode). It equals :func:`rltransfer.training.evaluate` of the
    same policy with the same seed over as many episodes.
    """

    name = "jumpstart"
    summary = "mean return of the candidate's policy on the target (whole episodes)"

    deterministic: bool = True
    """Act with the policy's mode (``True``, as evaluations do) or sample from it."""

    def rollouts(self, budget: int) -> tuple[RolloutRequest, ...]:
        return (_target(budget, self.deterministic),)

    def score(self, candidate: Candidate) -> ProbeResult:
        ro = candidate.rollout(self.rollouts(candidate.budget)[0])
        if ro.episode_returns:
            returns = np.asarray(ro.episode_returns)
            return ProbeResult(float(returns.mean()), details={
                "episodes": len(returns), "std": float(returns.std()),
                "mean_length": float(np.mean(ro.episode_lengths))})
        return ProbeResult(ro.partial_return,
                           note=f"no episode ended within {ro.steps} steps: the score is the "
                                f"return of one episode truncated at {ro.steps} steps",
                           details={"episodes": 0, "truncated_at": ro.steps})


def td_targets(rewards: np.ndarray, next_values: np.ndarray, terminated: np.ndarray,
               gamma: float) -> np.ndarray:
    """One-step bootstrapped targets ``r + gamma * V(s')``, with no bootstrap past a terminal
    state (a time limit is not one: it bootstraps).

    Example:
        >>> td_targets(np.array([1.0, 1.0]), np.array([10.0, 10.0]),
        ...            np.array([False, True]), gamma=0.9).tolist()
        [10.0, 1.0]
    """
    return rewards + gamma * np.where(terminated, 0.0, next_values)


def relative_td_error(targets: np.ndarray, errors: np.ndarray) -> tuple[float | None, str]:
    """``sqrt(mean(errors**2)) / sqrt(mean(targets**2))``: the RMS TD error as a fraction of
    the RMS bootstrapped target; ``None`` with a note when every target is 0.

    Example:
        >>> relative_td_error(np.array([3.0, 4.0]), np.array([0.3, -0.4]))[0]
        0.1
    """
    scale = float(np.sqrt(np.mean(np.square(targets))))
    if not scale > 0:
        return None, "every bootstrapped target is 0: the TD error has no scale"
    return float(np.sqrt(np.mean(np.square(errors)))) / scale, ""


@register_probe
class ValueConsistency(Probe):
    """How well the candidate's critic agrees with itself on the target.

    On the target rollout of the candidate's policy, in the agent's own units (observations
    and rewards normalized with its checkpoint's VecNormalize statistics, when it has them):

    - PPO: ``delta = r + gamma * V(s') * (1 - terminated) - V(s)``; a time limit bootstraps
      from the final observation, as SB3's PPO does in training.
    - SAC: ``delta_i = r + gamma * (1 - terminated) * (min_j Q'_j(s', a') - alpha * log
      pi(a'|s')) - Q_i(s, a)`` for each online critic ``Q_i``, with ``Q'`` the target
      critics and ``a' ~ pi(.|s')`` drawn with the ranker's seed: SAC's own critic loss.

    Score: ``-sqrt(mean delta^2) / sqrt(mean y^2)``, minus the RMS TD error as a fraction
    of the RMS bootstrapped target ``y``. It is scale-free (a reward scaled by ``c`` scales
    both). The RMS of ``y`` is used rather than its variance because the variance vanishes
    where a critic is best: under a policy that never fails in a constant-reward task
    (CartPole) every target is ``1 / (1 - gamma)`` and the variance-normalized error is 0/0,
    while this one stays small and defined.

    With deterministic actions (the default, to share the jumpstart rollout) the transitions
    come from the policy's mode, while a PPO critic learned the value of the sampled policy;
    ``deterministic: false`` measures it on its own policy (at the cost of a second rollout).
    """

    name = "value_consistency"
    summary = "minus the relative RMS TD error of the candidate's critic on target transitions"

    deterministic: bool = True
    """Collect the transitions with the policy's mode (``True``, shared with ``jumpstart``)
    or by sampling from it."""

    def rollouts(self, budget: int) -> tuple[RolloutRequest, ...]:
        return (_target(budget, self.deterministic),)

    def score(self, candidate: Candidate) -> ProbeResult:
        ro = candidate.rollout(self.rollouts(candidate.budget)[0])
        agent = candidate.agent
        if candidate.algo == "ppo":
            y, delta = _ppo_td(agent, ro.obs, ro.rewards, ro.next_obs, ro.terminated)
        else:
            y, delta = _sac_td(agent, ro.obs, ro.actions, ro.rewards, ro.next_obs,
                               ro.terminated, candidate.seed)
        rel, note = relative_td_error(y, delta)
        return ProbeResult(None if rel is None else -rel, note=note, details={
            "transitions": ro.steps, "td_rmse": float(np.sqrt(np.mean(delta ** 2))),
            "target_rms": float(np.sqrt(np.mean(y ** 2))), "gamma": float(agent.gamma),
            "terminal": int(ro.terminated.sum())})


def _batches(x: np.ndarray, size: int = 1024) -> list[np.ndarray]:
    return [x[i:i + size] for i in range(0, len(x), size)]


def _ppo_td(agent: Any, obs: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray,
            terminated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PPO's bootstrapped targets and TD errors on transitions (raw obs and rewards)."""
    policy = agent.policy

    def values(raw: np.ndarray) -> np.ndarray:
        out = []
        with torch.no_grad():
            for part in _batches(policy_obs(agent, raw)):
                tensor, _ = policy.obs_to_tensor(part)
                out.append(policy.predict_values(tensor).reshape(-1).cpu().numpy())
        return np.concatenate(out).astype(np.float64)

    v, v_next = values(obs), values(next_obs)
    y = td_targets(policy_rewards(agent, rewards), v_next, terminated, float(agent.gamma))
    return y, y - v


def _sac_td(agent: Any, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
            next_obs: np.ndarray, terminated: np.ndarray,
            seed: int) -> tuple[np.ndarray, np.ndarray]:
    """SAC's soft bootstrapped targets and the TD errors of each online critic."""
    policy = agent.policy
    log_ent_coef = getattr(agent, "log_ent_coef", None)
    alpha = (float(torch.exp(log_ent_coef.detach()).reshape(-1)[0]) if log_ent_coef is not None
             else float(agent.ent_coef_tensor))
    r = policy_rewards(agent, rewards)
    ys, deltas = [], []
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for idx in _batches(np.arange(len(r))):
            o, _ = policy.obs_to_tensor(policy_obs(agent, obs[idx]))
            o2, _ = policy.obs_to_tensor(policy_obs(agent, next_obs[idx]))
            a = torch.as_tensor(policy.scale_action(actions[idx]), dtype=torch.float32)
            q = torch.cat(policy.critic(o, a), dim=1).double().cpu().numpy()
            a2, logp2 = policy.actor.action_log_prob(o2)
            q2 = torch.cat(policy.critic_target(o2, a2), dim=1).min(dim=1).values
            soft = (q2 - alpha * logp2.reshape(-1)).double().cpu().numpy()
            y = td_targets(r[idx], soft, terminated[idx], float(agent.gamma))
            ys.append(y)
            deltas.append(y[:, None] - q)
    return np.concatenate(ys), np.concatenate(deltas)


SourceSteps = Annotated[int | None, Field(ge=1)]


def _comparison_requests(probe: Any, budget: int) -> tuple[RolloutRequest, ...]:
    """The target rollout and the rollout on the candidate's own env, as ``dynamics_gap``
    and ``state_overlap`` read them."""
    return (_target(budget, probe.deterministic),
            RolloutRequest("source", int(probe.source_steps or budget), probe.deterministic))


def _comparison_data(probe: Any, candidate: Candidate,
                     holdout: float | None = None) -> dict[str, Any] | ProbeResult:
    """Both rollouts as the candidate's network reads them (``z``, ``z'``, actions),
    restricted to the observation and action dimensions the adapter says they share, and
    the number of source transitions to fit on (the rest, ``holdout`` of them, is held
    out; default: the probe's ``holdout``)."""
    target_req, source_req = _comparison_requests(probe, candidate.budget)
    target_ro, source_ro = candidate.rollout(target_req), candidate.rollout(source_req)
    try:
        source = candidate.source_agent()
    except RankError as exc:
        return ProbeResult(None, note=str(exc))
    z_s, z_s2 = features(source, source_ro.obs), features(source, source_ro.next_obs)
    z_t, z_t2 = (features(candidate.agent, target_ro.obs),
                 features(candidate.agent, target_ro.next_obs))
    a_s = action_features(source.action_space, source_ro.actions)
    a_t = action_features(candidate.agent.action_space, target_ro.actions)
    ad = candidate.adapter
    if ad is not None:  # compare only what the two sides share
        t_obs, s_obs = ad.obs_pairs()
        z_s, z_s2, z_t, z_t2 = z_s[:, s_obs], z_s2[:, s_obs], z_t[:, t_obs], z_t2[:, t_obs]
        if ad.act is not None:
            t_act, s_act = ad.act_pairs(mirrors=False)
            a_s, a_t = a_s[:, s_act], a_t[:, t_act]
    held = probe.holdout if holdout is None else holdout
    n_train = int(round(len(z_s) * (1.0 - held)))
    if n_train < MIN_TRAIN or (held > 0 and len(z_s) - n_train < MIN_HELD_OUT):
        need = MIN_TRAIN + (MIN_HELD_OUT if held > 0 else 0)
        return ProbeResult(None, note=f"{len(z_s)} source transitions are too few (this probe "
                                      f"reads at least {need}); raise source_steps")
    return {"z_s": z_s, "z_s2": z_s2, "z_t": z_t, "z_t2": z_t2, "a_s": a_s, "a_t": a_t,
            "n_train": n_train}


def _scale(x: np.ndarray) -> np.ndarray:
    """Per-column standard deviation, with a floor so that constant columns stay finite."""
    sd = x.std(axis=0)
    floor = max(float(sd.max(initial=0.0)) * 1e-3, 1e-12)
    return np.maximum(sd, floor)


def ridge_fit(x: np.ndarray, y: np.ndarray, ridge: float) -> Any:
    """Ridge regression of ``y`` on standardized ``x`` (with an intercept); returns the
    prediction function.

    Example:
        >>> x = np.arange(10.0)[:, None]
        >>> predict = ridge_fit(x, 2 * x + 1, ridge=1e-9)
        >>> np.round(predict(np.array([[20.0]])), 6).tolist()
        [[41.0]]
    """
    mu_x, sd_x, mu_y = x.mean(axis=0), _scale(x), y.mean(axis=0)
    xs = (x - mu_x) / sd_x
    a = xs.T @ xs + ridge * len(x) * np.eye(x.shape[1])
    w = np.linalg.solve(a, xs.T @ (y - mu_y))
    return lambda new: ((new - mu_x) / sd_x) @ w + mu_y


def unexplained(predicted: np.ndarray, actual: np.ndarray) -> float:
    """The fraction of ``actual``'s variance a prediction leaves unexplained (``1 - R^2``),
    per column, averaged over the columns (a constant column counts against the spread of
    the others, so it cannot divide by zero).

    Example:
        >>> actual = np.array([[0.0], [2.0]])
        >>> unexplained(np.array([[0.5], [1.5]]), actual)
        0.25
    """
    sd = _scale(actual)
    mse = np.mean(np.square(predicted - actual), axis=0)
    return float(np.mean(mse / sd ** 2))


@register_probe
class DynamicsGap(Probe):
    """How well the candidate's own env, seen through the candidate, predicts the target's
    dynamics.

    The candidate's policy runs on its own env (the env on its card) for ``source_steps``
    steps, reported as source cost. On those transitions a linear forward model (ridge
    regression, numpy) learns the change of what the candidate's network reads, ``z' - z``,
    from ``(z, a)``: ``z`` is the normalized observation for a flat observation, the
    features extractor's output for an image; ``a`` the action (Box scaled to ``[-1, 1]``,
    discrete one-hot). It is fitted on the first ``1 - holdout`` of the source rollout.

    Score: ``-(1 - R^2)`` of that model on the target rollout: minus the fraction of the
    target's own one-step change (its variance, per dimension, averaged) that the source's
    model leaves unexplained. 0 when the target moves exactly as the source predicts,
    about ``-1`` when the source's model is no better than predicting the mean change,
    lower when it is worse. Scale-free: each dimension is measured against its own spread
    on the target. Through an adapter, only the observation and action dimensions the two
    share are modelled.

    The same number on the held-out end of the source rollout is in the details
    (``source_unexplained``): the floor the model reaches on its own env. The score is not
    divided by it: a linear model is nearly exact on a smooth simulator's step (CartPole's:
    about 1e-5 of the variance unexplained), so a ratio would be ruled by that tiny
    denominator rather than by the target.
    """

    name = "dynamics_gap"
    summary = ("minus the share of the target's one-step change that a forward model fitted "
               "on the candidate's own env leaves unexplained")

    deterministic: bool = True
    """Collect both rollouts with the policy's mode (``True``, shared with the other
    probes) or by sampling from it (more varied actions for the model to learn from)."""
    source_steps: SourceSteps = None
    """Steps on the candidate's own env (default: the budget); a separate cost."""
    holdout: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2
    """The fraction of the source rollout held out (its last steps) to measure the model on
    its own env (reported, not part of the score)."""
    ridge: Annotated[float, Field(gt=0.0)] = 1e-3
    """The ridge penalty, per transition, on standardized inputs."""

    def rollouts(self, budget: int) -> tuple[RolloutRequest, ...]:
        return _comparison_requests(self, budget)

    def score(self, candidate: Candidate) -> ProbeResult:
        data = _comparison_data(self, candidate)
        if isinstance(data, ProbeResult):
            return data
        n = data["n_train"]
        x_s = np.concatenate([data["z_s"], data["a_s"]], axis=1)
        x_t = np.concatenate([data["z_t"], data["a_t"]], axis=1)
        dy_s, dy_t = data["z_s2"] - data["z_s"], data["z_t2"] - data["z_t"]
        predict = ridge_fit(x_s[:n], dy_s[:n], self.ridge)
        on_target = unexplained(predict(x_t), dy_t)
        return ProbeResult(-on_target, details={
            "target_unexplained": on_target,
            "source_unexplained": unexplained(predict(x_s[n:]), dy_s[n:]),
            "dims": int(dy_s.shape[1]), "fitted_on": n, "held_out": len(dy_s) - n,
            "target_transitions": len(dy_t)})


def mean_distance(a: np.ndarray, b: np.ndarray, chunk: int = 512) -> float:
    """The mean Euclidean distance between the rows of ``a`` and the rows of ``b`` (all
    pairs).

    Example:
        >>> mean_distance(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0], [0.0, 1.0]]))
        3.0
    """
    b_sq = np.sum(b ** 2, axis=1)
    total = 0.0
    for i in range(0, len(a), chunk):
        q = a[i:i + chunk]
        d2 = np.sum(q ** 2, axis=1)[:, None] + b_sq[None, :] - 2.0 * q @ b.T
        total += float(np.sqrt(np.maximum(d2, 0.0)).sum())
    return total / (len(a) * len(b))


def energy_coefficient(x: np.ndarray, y: np.ndarray) -> float:
    """Székely and Rizzo's normalized energy distance between two samples,
    ``(2 E|X-Y| - E|X-X'| - E|Y-Y'|) / (2 E|X-Y|)``: 0 when they come from one
    distribution, towards 1 as they separate.

    Example:
        >>> same = np.arange(6.0)[:, None]
        >>> energy_coefficient(same, same), round(energy_coefficient(same, same + 100), 2)
        (0.0, 0.98)
    """
    xy = mean_distance(x, y)
    if not xy > 0:
        return 0.0
    return max(0.0, (2.0 * xy - mean_distance(x, x) - mean_distance(y, y)) / (2.0 * xy))


MAX_STATES = 1000
"""At most this many states of each rollout are compared (evenly spaced), to bound the
cost (the statistic reads every pair)."""


def _spaced(x: np.ndarray, n: int = MAX_STATES) -> np.ndarray:
    return x if len(x) <= n else x[np.linspace(0, len(x) - 1, n).astype(int)]


@register_probe
class StateOverlap(Probe):
    """Whether the candidate's policy keeps the target in states like those it knows.

    A policy and a critic are only trusted where they were trained. This probe compares
    the states the candidate's own policy visits on the target with those it visits on its
    own env: a covariate-shift test on the state distribution, which ``dynamics_gap`` (a
    test of the transition law) does not see. A candidate that drifts into states it never
    met is extrapolating, whatever its jumpstart.

    Both rollouts are read as the candidate's network reads them (``z``, as in
    ``dynamics_gap``; through an adapter, the shared dimensions), each dimension scaled by
    its spread over both. Score: minus the energy coefficient of the two samples (the
    energy distance of Székely and Rizzo normalized by ``2 E|X - Y|``), between 0 (one
    distribution) and -1 (disjoint). It averages over every pair of states, so it is steady
    from seed to seed where nearest-neighbour distances are not (a deterministic policy's
    states lie on a few trajectories), reuses the rollouts of ``dynamics_gap`` (no extra
    cost with the defaults), needs no critic and no reward, and ignores the reward scale.
    """

    name = "state_overlap"
    summary = ("minus the normalized energy distance between the states the candidate's "
               "policy visits on the target and on its own env")

    deterministic: bool = True
    """Collect both rollouts with the policy's mode (``True``, shared with the other
    probes) or by sampling from it."""
    source_steps: SourceSteps = None
    """Steps on the candidate's own env (default: the budget); a separate cost."""

    def rollouts(self, budget: int) -> tuple[RolloutRequest, ...]:
        return _comparison_requests(self, budget)

    def score(self, candidate: Candidate) -> ProbeResult:
        data = _comparison_data(self, candidate, holdout=0.0)
        if isinstance(data, ProbeResult):
            return data
        z_s, z_t = _spaced(data["z_s"]), _spaced(data["z_t"])
        both = np.concatenate([z_s, z_t])
        mu, sd = both.mean(axis=0), _scale(both)
        h = energy_coefficient((z_s - mu) / sd, (z_t - mu) / sd)
        return ProbeResult(-h, details={"energy_coefficient": h, "dims": int(z_s.shape[1]),
                                        "source_states": len(z_s), "target_states": len(z_t)})
