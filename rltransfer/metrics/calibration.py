"""How well the reports' intervals and verdicts hold, measured on a pool of real runs.

A *pool* is many seeds of ``scratch`` and of one transfer method on one pair, the method's
seeds grouped by the source run they start from (``source_seeds`` in the experiment file).
Five-seed experiments are drawn from the pool with replacement, as a reader's experiment is
drawn from all the seeds that could have been run, and each draw's intervals are checked
against the *pool's value* (the same statistic over the whole pool):

- :func:`coverage`: how often each interval covers, for the IQM difference of AUC, the IQM
  of AUC and the time-to-threshold speed-up, with the method's seeds from distinct sources
  (one source per seed) or all from one source (the old default);
- :func:`family_error`: families of 6 or 12 "methods" that are all scratch, and how often a
  verdict rule calls at least one of them positive or negative (the family-wise error rate);
- :func:`power`: how often Holm's procedure finds the pool's real effect, by seeds and
  family size.

Pure numpy over per-run numbers; ``rltransfer calibrate DIR`` runs it on an experiment
folder and writes ``calibration.md`` and ``calibration.json`` there.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np

from rltransfer.metrics.bootstrap import IQM, IQM_DIFF, Stat, bootstrap_ci, iqm, iqm_ratio
from rltransfer.metrics.trimmed import DfRule, Interval, holm, ratio_ci, trimmed_ci, yuen_ci

LEVEL = 0.95
ALPHA = 0.05


@dataclasses.dataclass(frozen=True)
class Pool:
    """Per-run numbers of a pool: ``auc`` and floored ``ttt`` (time to threshold, a time of
    0 counted as one evaluation interval, as the reports do) of ``scratch`` and of the
    method, and each method run's source (``groups``)."""

    scratch_auc: np.ndarray
    method_auc: np.ndarray
    scratch_ttt: np.ndarray
    method_ttt: np.ndarray
    groups: np.ndarray
    """Source index of each method run, ``(n_method,)``."""
    scratch_censored: np.ndarray
    method_censored: np.ndarray

    def __post_init__(self) -> None:
        if self.scratch_auc.size < 2 or self.method_auc.size < 2:
            raise ValueError(f"a pool needs at least 2 runs of each, got {self.scratch_auc.size}"
                             f" scratch and {self.method_auc.size} of the method")
        if self.groups.shape != self.method_auc.shape:
            raise ValueError("groups must give one source per method run")

    @property
    def n_sources(self) -> int:
        return int(np.unique(self.groups).size)

    def values(self) -> dict[str, float]:
        """The pool's values: what every interval drawn from it should cover."""
        return {
            "auc_difference": iqm(self.method_auc) - iqm(self.scratch_auc),
            "auc_method": iqm(self.method_auc),
            "auc_scratch": iqm(self.scratch_auc),
            "speedup": iqm(self.scratch_ttt) / iqm(self.method_ttt),
        }


def _col(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=float)[:, None]


def _percentile(stat: Stat, *samples: np.ndarray, seed: int) -> Interval:
    point, low, high, _ = bootstrap_ci(stat, *(_col(s) for s in samples), reps=2000,
                                       seed=seed, level=LEVEL, backend="builtin")
    return Interval(float(point[0]), float(low[0]), float(high[0]))


INTERVALS: dict[str, dict[str, Callable[..., Interval]]] = {
    "auc_difference": {
        "percentile": lambda m, s, seed: _percentile(IQM_DIFF, m, s, seed=seed),
        "yuen_welch": lambda m, s, seed: yuen_ci(m, s, level=LEVEL, df="welch"),
        "yuen_hsu": lambda m, s, seed: yuen_ci(m, s, level=LEVEL, df="hsu"),
    },
    "auc_method": {
        "percentile": lambda m, s, seed: _percentile(IQM, m, seed=seed),
        "trimmed_t": lambda m, s, seed: trimmed_ci(m, level=LEVEL),
    },
    "auc_scratch": {
        "percentile": lambda m, s, seed: _percentile(IQM, s, seed=seed),
        "trimmed_t": lambda m, s, seed: trimmed_ci(s, level=LEVEL),
    },
    "speedup": {
        "percentile": lambda m, s, seed: _percentile(iqm_ratio(0.0), s, m, seed=seed),
        "ratio_t": lambda m, s, seed: ratio_ci(s, m, level=LEVEL),
    },
}
"""Per quantity, the candidate intervals of a draw (method's values, scratch's values,
bootstrap seed): rliable's stratified percentile bootstrap (``percentile``, 2000 resamples,
the reports' interval before), Yuen's trimmed t with Welch's or Hsu's degrees of freedom,
the one-sample trimmed t (Tukey-McLaughlin) and the delta-method ratio t."""

ADOPTED = {"auc_difference": "yuen_hsu", "auc_method": "percentile",
           "auc_scratch": "percentile", "speedup": "percentile"}
"""The interval the reports use for each quantity (:func:`rltransfer.metrics.compute`)."""


def draw_method(pool: Pool, n: int, rng: np.random.Generator, *,
                design: str = "per_seed") -> np.ndarray:
    """Indices of ``n`` method runs: ``per_seed`` takes them from ``n`` distinct sources
    (with repeats only when the pool has fewer sources than ``n``), one run of each;
    ``one_source`` takes all from one source, with replacement."""
    sources = np.unique(pool.groups)
    if design == "one_source":
        members = np.flatnonzero(pool.groups == rng.choice(sources))
        return rng.choice(members, n, replace=True)
    if design != "per_seed":
        raise ValueError(f"design must be 'per_seed' or 'one_source', got {design!r}")
    picked = rng.choice(sources, n, replace=n > sources.size)
    return np.array([rng.choice(np.flatnonzero(pool.groups == g)) for g in picked])


def _rate(hits: int, total: int) -> dict[str, float]:
    """A proportion and its Monte Carlo standard error."""
    p = hits / total
    return {"rate": p, "mc_error": math.sqrt(p * (1 - p) / total), "draws": total}


def coverage(pool: Pool, *, n_seeds: int = 5, draws: int = 4000, seed: int = 0,
             designs: Sequence[str] = ("per_seed", "one_source"),
             progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """How often each 95% interval of an ``n_seeds``-seed draw covers the pool's value.

    Returns:
        ``{design: {quantity: {interval: {"rate", "mc_error", "draws", "width"}}}}`` with the
        median width of the intervals, plus ``"values"`` (the pool's values).
    """
    rng = np.random.default_rng(seed)
    truth = pool.values()
    out: dict[str, Any] = {"values": truth}
    for design in designs:
        hits = {q: {k: 0 for k in ivs} for q, ivs in INTERVALS.items()}
        widths: dict[str, dict[str, list[float]]] = {q: {k: [] for k in ivs}
                                                     for q, ivs in INTERVALS.items()}
        valid = {q: {k: 0 for k in ivs} for q, ivs in INTERVALS.items()}
        for d in range(draws):
            s = rng.choice(pool.scratch_auc.size, n_seeds, replace=True)
            m = draw_method(pool, n_seeds, rng, design=design)
            data = {"auc": (pool.method_auc[m], pool.scratch_auc[s]),
                    "ttt": (pool.method_ttt[m], pool.scratch_ttt[s])}
            for q, ivs in INTERVALS.items():
                xm, xs = data["ttt" if q == "speedup" else "auc"]
                for k, fn in ivs.items():
                    iv = fn(xm, xs, d)
                    if not (math.isfinite(iv.low) and math.isfinite(iv.high)):
                        continue
                    valid[q][k] += 1
                    hits[q][k] += int(iv.low <= truth[q] <= iv.high)
                    widths[q][k].append(iv.high - iv.low)
            if progress is not None:
                progress(1)
        out[design] = {
            q: {k: {**_rate(hits[q][k], max(valid[q][k], 1)),
                    "width": float(np.median(widths[q][k])) if widths[q][k] else None}
                for k in ivs}
            for q, ivs in INTERVALS.items()
        }
    return out


def _verdicts(method_samples: Sequence[np.ndarray], base: np.ndarray, rule: str,
              seed: int) -> np.ndarray:
    """Which methods a rule calls positive or negative (``True``) against ``base``."""
    if rule == "percentile":
        ivs = [_percentile(IQM_DIFF, x, base, seed=seed + i) for i, x in
               enumerate(method_samples)]
        return np.array([iv.low > 0 or iv.high < 0 for iv in ivs])
    kind, _, df = rule.partition("_")
    if kind not in ("yuen", "holm") or df not in ("welch", "hsu"):
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    tests = [yuen_ci(x, base, level=LEVEL, df=cast(DfRule, df)) for x in method_samples]
    if kind == "yuen":
        return np.array([iv.low > 0 or iv.high < 0 for iv in tests])
    return holm(np.array([iv.p for iv in tests]), alpha=ALPHA)


RULES = ("percentile", "yuen_welch", "yuen_hsu", "holm_welch", "holm_hsu")
"""Verdict rules: the old one (each method's percentile bootstrap interval excludes 0), each
method's Yuen interval excludes 0 (unadjusted; Welch's or Hsu's degrees of freedom), and
Holm's procedure over the family with Yuen's test (``holm_hsu``: the reports')."""


def family_error(scratch: np.ndarray, *, family_sizes: Sequence[int] = (6, 12),
                 n_seeds: int = 5, draws: int = 4000, seed: int = 0,
                 progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """The family-wise error rate of each rule under the null: a baseline and ``k`` methods,
    all drawn from the pool's scratch runs; the rate at which a rule calls at least one
    method positive or negative.

    Returns:
        ``{str(k): {rule: {"rate", "mc_error", "draws"}}}``.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for k in family_sizes:
        errors = dict.fromkeys(RULES, 0)
        for d in range(draws):
            base = scratch[rng.choice(scratch.size, n_seeds, replace=True)]
            methods = [scratch[rng.choice(scratch.size, n_seeds, replace=True)]
                       for _ in range(k)]
            for rule in RULES:
                errors[rule] += int(_verdicts(methods, base, rule, d * 100).any())
            if progress is not None:
                progress(1)
        out[str(k)] = {rule: _rate(errors[rule], draws) for rule in RULES}
    return out


def power(pool: Pool, *, seeds: Sequence[int] = (3, 5, 10, 20),
          family_sizes: Sequence[int] = (1, 6, 12), draws: int = 1000,
          seed: int = 0, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """How often the reports' rule (Holm's procedure over Yuen's tests with Hsu's degrees of
    freedom) calls the method positive, in a family of the method and
    ``k - 1`` null methods (scratch in disguise), with ``n`` seeds each, the method's seeds
    from distinct sources.

    Returns:
        ``{str(k): {str(n): {"rate", "mc_error", "draws"}}}``.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for k in family_sizes:
        out[str(k)] = {}
        for n in seeds:
            found = 0
            for _ in range(draws):
                base = pool.scratch_auc[rng.choice(pool.scratch_auc.size, n, replace=True)]
                method = pool.method_auc[draw_method(pool, n, rng)]
                nulls = [pool.scratch_auc[rng.choice(pool.scratch_auc.size, n, replace=True)]
                         for _ in range(k - 1)]
                tests = [yuen_ci(x, base, level=LEVEL, df="hsu") for x in [method, *nulls]]
                rejected = holm(np.array([t.p for t in tests]), alpha=ALPHA)
                found += int(rejected[0] and tests[0].point > 0)
                if progress is not None:
                    progress(1)
            out[str(k)][str(n)] = _rate(found, draws)
    return out


__all__ = ["ADOPTED", "INTERVALS", "RULES", "Pool", "coverage", "draw_method", "family_error",
           "power"]
