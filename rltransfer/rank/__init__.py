"""Which source to transfer from: rank candidate sources on a target with cheap probes.

:func:`rank_sources` (``rltransfer rank``) scores every candidate checkpoint on the target
with probes that each spend at most ``budget`` target environment steps, and returns a
:class:`RankTable` sorted by one of them.

=================  ==========================================================================
probe              score (higher = predicted better transfer)
=================  ==========================================================================
jumpstart          mean return of the candidate's policy on the target (whole episodes)
value_consistency  minus the relative RMS TD error of its critic on target transitions
dynamics_gap       minus the target error of a forward model fitted on its own env, relative
                   to the model's held-out error there
state_overlap      minus the normalized energy distance between the states its policy
                   visits on the target and on its own env
=================  ==========================================================================

A probe is one class here: a :class:`Probe` subclass decorated with
:func:`register_probe` (see :mod:`rltransfer.rank.probes`). Whether any probe predicts the
real gain of a transfer is what :func:`rank_experiment` (``rltransfer rank --experiment
DIR``) measures on an experiment that transfers from several candidate sources (issue #15
point 2); until such an experiment has run, the scores are hypotheses, not findings.

Example:
    >>> from rltransfer.rank import describe_probes
    >>> [p["name"] for p in describe_probes()]
    ['jumpstart', 'value_consistency', 'dynamics_gap', 'state_overlap']
"""

from __future__ import annotations

from rltransfer.rank.api import DEFAULT_BUDGET, DEFAULT_PROBES, find_candidates, rank_sources
from rltransfer.rank.base import (
    Candidate,
    Probe,
    ProbeResult,
    RankError,
    Rollout,
    RolloutRequest,
)
from rltransfer.rank.experiment import ExperimentRanking, default_budget, rank_experiment
from rltransfer.rank.probes import DynamicsGap, Jumpstart, StateOverlap, ValueConsistency
from rltransfer.rank.registry import (
    PROBES,
    describe_probes,
    get_probe,
    probe_names,
    register_probe,
)
from rltransfer.rank.table import MEAN_RANK, ProbeScore, RankTable, Row

__all__ = ["DEFAULT_BUDGET", "DEFAULT_PROBES", "MEAN_RANK", "PROBES", "Candidate",
           "DynamicsGap", "ExperimentRanking", "Jumpstart", "Probe", "ProbeResult",
           "ProbeScore", "RankError", "RankTable", "Rollout", "RolloutRequest", "Row",
           "StateOverlap", "ValueConsistency", "default_budget", "describe_probes",
           "find_candidates", "get_probe", "probe_names", "rank_experiment", "rank_sources",
           "register_probe"]
