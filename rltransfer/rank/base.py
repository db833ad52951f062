"""What every probe shares: its typed options, the rollouts it reads, what it returns.

A probe is a pydantic model (its options, typed, validated and frozen) with one method,
:meth:`Probe.score`, and one declaration, :meth:`Probe.rollouts`: which rollouts of the
candidate's policy it reads (on the target or on the candidate's own source env, how many
steps, deterministic or not). The ranker collects each distinct rollout once per candidate
and hands them to every probe that asked, so probes that read the same rollout share its
cost; the cost each probe is charged is the sum of the rollouts it asked for, counted by the
ranker (never reported by the probe itself).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from rltransfer.checkpoint import Checkpoint

__all__ = ["Candidate", "Probe", "ProbeResult", "RankError", "Rollout", "RolloutRequest"]


class RankError(ValueError):
    """Input to :func:`rltransfer.rank_sources` that cannot be used (a probe, an option, the
    budget, a candidate path); the message names the field, the value and what is accepted."""


@dataclasses.dataclass(frozen=True)
class RolloutRequest:
    """A rollout a probe reads: the candidate's policy for ``steps`` steps on the target
    (``where="target"``) or on the env its card names (``"source"``)."""

    where: Literal["target", "source"]
    steps: int
    deterministic: bool = True


@dataclasses.dataclass
class Rollout:
    """Transitions of one policy on one env, as the env gave them (raw observations and
    rewards, before the candidate's normalization).

    ``next_obs[i]`` is the true next observation of step ``i`` (the final observation when
    the episode ended there, not the reset one). ``terminated`` marks a terminal state (no
    bootstrapping), ``truncated`` a time limit (bootstrapping from ``next_obs``). The rollout
    stops after exactly ``steps`` steps, usually inside an episode: that last, partial episode
    is in the transitions but not in ``episode_returns``.
    """

    request: RolloutRequest
    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    episode_returns: list[float]
    """Undiscounted returns of the episodes that ended within the rollout."""
    episode_lengths: list[int]
    partial_return: float
    """Return of the episode the budget cut (0.0 when the rollout ended with an episode)."""
    partial_length: int

    @property
    def steps(self) -> int:
        """Environment steps the rollout took."""
        return len(self.rewards)


@dataclasses.dataclass
class Candidate:
    """One usable candidate as probes see it.

    ``agent`` is the candidate as an SB3 model on the target's spaces (through the adapter
    when there is one), with the normalization statistics of its checkpoint held fixed.
    :meth:`rollout` returns the rollouts a probe asked for (collected by the ranker before
    any probe runs); :meth:`source_agent` the candidate on its own env (for probes that
    compare with it), or raises :class:`RankError` saying why it cannot be built.
    """

    label: str
    checkpoint: Checkpoint
    agent: Any
    adapter: Any = None
    """The :class:`~rltransfer.envs.ResolvedAdapter` from the candidate's spaces to the
    target's, or ``None`` when they are the same."""
    seed: int = 0
    budget: int = 0
    """Target steps each probe may spend (its target rollouts add up to at most this)."""
    rollouts: dict[RolloutRequest, Rollout] = dataclasses.field(default_factory=dict)
    load_source: Callable[[], Any] | None = None
    _source: Any = None

    @property
    def algo(self) -> str:
        """The candidate's algorithm (``"ppo"`` or ``"sac"``)."""
        return self.checkpoint.algo

    def rollout(self, request: RolloutRequest) -> Rollout:
        """The rollout collected for ``request``."""
        try:
            return self.rollouts[request]
        except KeyError:
            raise KeyError(f"no rollout {request} was collected; a probe reads only the "
                           "rollouts its rollouts() declares") from None

    def source_agent(self) -> Any:
        """The candidate on its own env (its card's), built on first use."""
        if self._source is None:
            if self.load_source is None:
                raise RankError(f"candidate {self.label!r}: its source env is not available")
            self._source = self.load_source()
        return self._source


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """What a probe says about one candidate: a score (higher = predicted better transfer;
    ``None`` when the probe cannot score it, ``note`` says why) and the numbers behind it."""

    score: float | None
    note: str = ""
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class Probe(BaseModel):
    """A cheap test of how well a candidate source may transfer to the target.

    Subclasses set ``name`` and ``summary``, declare their options as fields (each with a
    docstring), register with :func:`rltransfer.rank.register_probe`, and implement
    :meth:`rollouts` and :meth:`score`. ``algos`` lists the algorithms whose agents the
    probe can read; any other candidate gets no score from it, with a note.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    """One line for the docs and error messages."""
    algos: ClassVar[tuple[str, ...]] = ("ppo", "sac")
    """The algorithms whose agents this probe can score."""

    @property
    def label(self) -> str:
        """The probe's column name in the table."""
        return self.name

    def spec(self) -> str | dict[str, Any]:
        """``name``, or ``{name: {options that differ from the defaults}}``."""
        opts = {f: getattr(self, f) for f, info in type(self).model_fields.items()
                if getattr(self, f) != info.default}
        return {self.name: opts} if opts else self.name

    def rollouts(self, budget: int) -> tuple[RolloutRequest, ...]:
        """The rollouts this probe reads, given the target budget (steps per probe).

        Requests on the target must add up to at most ``budget`` steps.
        """
        return ()

    def score(self, candidate: Candidate) -> ProbeResult:
        """Score one candidate from its agent and the rollouts :meth:`rollouts` asked for."""
        raise NotImplementedError
