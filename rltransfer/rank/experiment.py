"""``rank_experiment``: do the probes predict the real gains an experiment measured?

Issue #15 point 2. Given an experiment output folder whose methods transfer from several
agent sources (the candidates), it

1. reads the real gains from the runs (:func:`rltransfer.report.prediction.measured_gains`;
   refused before any env step when there are no candidates, no finished scratch run, or
   fewer than three candidates with finished runs);
2. scores every candidate whose pretraining finished with the probes of
   :func:`~rltransfer.rank.rank_sources`, on the experiment's target, and keeps each
   candidate's row in ``rank_probes.json`` in the folder, keyed by what defines it (the
   checkpoint's sha256, the target, budget, seed and probes): a rerun probes only what is
   missing, so it takes no env step once every candidate is scored;
3. writes ``rank.json`` and ``rank.md`` (:func:`rltransfer.report.prediction.
   write_prediction`): per probe, the Spearman rank correlation of its score with the real
   gain (bootstrap CI over seeds), the regret of its top pick and its cost, against issue
   #15's goal.

``rltransfer report DIR`` rebuilds ``rank.json``/``rank.md`` from the stored probe table as
more runs finish, without an env step.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rltransfer import envs as rl_envs
from rltransfer import rundir
from rltransfer._io import write_json_atomic
from rltransfer.checkpoint import CARD_FILE
from rltransfer.metrics.prediction import DEFAULT_REPS
from rltransfer.rank.api import (
    DEFAULT_PROBES,
    _check_budget,
    _env_words,
    _probes,
    rank_sources,
)
from rltransfer.rank.base import Probe, RankError
from rltransfer.rank.table import ProbeScore, RankTable, Row, mean_ranks, own_return, sort_rows
from rltransfer.report.prediction import (
    GOAL,
    PROBE_CACHE,
    RANK_JSON,
    RANK_MD,
    agent_sources,
    measured_gains,
    write_prediction,
)
from rltransfer.report.results import load_results

__all__ = ["ExperimentRanking", "default_budget", "rank_experiment"]

CACHE_FORMAT = 1


@dataclasses.dataclass(frozen=True)
class ExperimentRanking:
    """What :func:`rank_experiment` did and found."""

    doc: dict[str, Any]
    """The ``rank.json`` document (see :mod:`rltransfer.report.prediction`)."""
    table: RankTable
    """The probe table of the candidates, labelled by their source names."""
    probed: list[str]
    """Candidates probed by this call (env steps taken)."""
    reused: list[str]
    """Candidates whose probe rows came from ``rank_probes.json`` (no env step)."""
    rank_md: Path
    rank_json: Path


def default_budget(run_steps: int) -> int:
    """Target steps per probe and candidate by default: the goal's 5% of one transfer run.

    Example:
        >>> default_budget(100_000)
        5000
    """
    return max(1, int(math.floor(run_steps * GOAL["cost_fraction"] + 1e-9)))


def rank_experiment(out_dir: str | os.PathLike, *, budget: int | None = None, seed: int = 0,
                    probes: Sequence[str | Mapping[str, Any] | Probe] = DEFAULT_PROBES,
                    reps: int = DEFAULT_REPS, progress: bool = False) -> ExperimentRanking:
    """Probe an experiment's candidate sources and judge the probes against its real gains.

    Args:
        out_dir: the experiment output folder (``rltransfer run`` wrote it; finished or not).
        budget: target env steps each probe may spend per candidate (default
            :func:`default_budget` of the experiment's steps: 5% of one transfer run).
        seed: the probes' seed (:func:`~rltransfer.rank.rank_sources`).
        probes: as for :func:`~rltransfer.rank.rank_sources`.
        reps: bootstrap resamples of the seeds (seeded with 0, like the report's).
        progress: a progress bar (env steps) on stderr while probing.

    Returns:
        An :class:`ExperimentRanking`; ``rank.json``, ``rank.md`` and ``rank_probes.json``
        are written in the folder.

    Raises:
        RankError: not an experiment folder, or a bad budget, seed or probe.
        PredictionError: no agent source among the methods, no finished scratch run, or
            fewer than 3 candidates with finished runs (found before any env step).

    Example:
        >>> rank_experiment("nowhere")
        Traceback (most recent call last):
        ...
        rltransfer.rank.base.RankError: 'nowhere' is not an experiment output folder (no
        experiment.json in it); give the folder `rltransfer run` wrote (--out)
    """
    out = Path(out_dir)
    if not (out / rundir.EXPERIMENT).is_file():
        raise RankError(f"{str(out_dir)!r} is not an experiment output folder (no "
                        f"{rundir.EXPERIMENT} in it); give the folder `rltransfer run` "
                        "wrote (--out)")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise RankError(f"seed={seed!r}: must be a whole number >= 0")
    res = load_results(out)
    exp = res.experiment
    measured_gains(res)  # refuses an unusable folder before any env step
    run_steps = int(exp["steps"])
    budget = _check_budget(default_budget(run_steps) if budget is None else budget)
    chosen = _probes(probes)
    specs = [p.spec() for p in chosen]
    config = exp.get("config") or {}
    target = config.get("target") or {}
    env, knobs, pixels = target["env"], dict(target.get("knobs") or {}), target.get("pixels")
    adapter = config.get("adapter")
    target_words = _env_words(rl_envs.describe(env, knobs, pixels=pixels))
    checkpoints = {n: c.checkpoint for n, c in agent_sources(out, exp).items()
                   if c.checkpoint is not None}

    cache_path = out / PROBE_CACHE
    cache = _read_cache(cache_path)
    cards = {n: json.loads((ck / CARD_FILE).read_text(encoding="utf-8"))
             for n, ck in checkpoints.items()}
    keys = {n: _key(cards[n], target, budget, seed, specs, adapter) for n in checkpoints}
    rows: dict[str, Row] = {}
    for n, key in keys.items():
        hit = cache.get(key)
        if hit is not None:  # own_return from the card: a cache may predate it
            rows[n] = dataclasses.replace(_row(hit["row"], n), own_return=own_return(cards[n]))
    missing = {n: str(ck) for n, ck in checkpoints.items() if n not in rows}
    if missing:
        fresh = rank_sources(missing, env, knobs=knobs, budget=budget, probes=chosen,
                             seed=seed, adapter=adapter, pixels=pixels, progress=progress)
        for row in fresh.rows:
            row = dataclasses.replace(row, path=_relative(row.path, out), mean_rank=None)
            rows[row.label] = row
            cache[keys[row.label]] = {"key": json.loads(keys[row.label]), "row": row.to_dict()}
        write_json_atomic(cache_path, {"format": CACHE_FORMAT,
                                       "entries": [cache[k] for k in sorted(cache)]})
    labels = [p.label for p in chosen]
    ordered = [rows[n] for n in sorted(rows)]
    ranked = [dataclasses.replace(r, mean_rank=m)
              for r, m in zip(ordered, mean_ranks(ordered, labels), strict=True)]
    table = RankTable(target=target_words, budget=budget, seed=seed, probes=labels,
                      sort_by=labels[0], rows=sort_rows(ranked, labels[0]), specs=specs)
    doc = write_prediction(out, table.to_dict(), reps=reps, seed=0, res=res)
    return ExperimentRanking(doc=doc, table=table, probed=sorted(missing),
                             reused=sorted(n for n in rows if n not in missing),
                             rank_md=out / RANK_MD, rank_json=out / RANK_JSON)


def _key(card: Mapping[str, Any], target: Mapping[str, Any], budget: int, seed: int,
         specs: list[Any], adapter: Any) -> str:
    """What defines a candidate's probe row (its checkpoint's card given), as canonical
    JSON."""
    return json.dumps({"sha256": card.get("sha256"), "target": dict(target), "budget": budget,
                       "seed": seed, "probes": specs, "adapter": adapter},
                      sort_keys=True, separators=(",", ":"))


def _read_cache(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {json.dumps(e["key"], sort_keys=True, separators=(",", ":")): e
                for e in data.get("entries", [])}
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}  # unreadable: probe again (it is only a cache)


def _row(d: Mapping[str, Any], label: str) -> Row:
    return Row(label=label, path=d["path"], algo=d.get("algo"), source=d.get("source", ""),
               status=d["status"], reason=d.get("reason", ""),
               scores={k: ProbeScore(v.get("score"), int(v.get("target_steps", 0)),
                                     int(v.get("source_steps", 0)), v.get("note", ""),
                                     dict(v.get("details") or {}))
                       for k, v in (d.get("scores") or {}).items()},
               target_steps=int(d.get("target_steps", 0)),
               source_steps=int(d.get("source_steps", 0)))


def _relative(path: str, out: Path) -> str:
    try:
        return os.path.relpath(path, out)
    except ValueError:  # another drive (Windows)
        return path
