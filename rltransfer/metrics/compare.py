"""Methods against the baseline: differences, ratios, speed-up, verdicts, all in one dict.

:func:`compute` takes every method's ``(n_seeds, n_evals)`` curves, computes the per-run
metrics (:mod:`rltransfer.metrics.per_run`), aggregates them over seeds with IQM and
bootstrap CIs (:mod:`rltransfer.metrics.bootstrap`), and compares each method with the
baseline: IQM difference, transfer ratio, time-to-threshold speed-up, probability of
improvement and the verdict (:func:`verdict`). The result is JSON-able: what metrics.json
holds under ``"metrics"``.

Against the baseline, the time-to-threshold *speed-up* is IQM(baseline's times) / IQM(the
method's times), higher is better; a time of 0 is credited with one evaluation interval (the
first positive evaluation step) so the ratio stays finite.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from rltransfer.metrics.bootstrap import (
    IQM,
    IQM_DIFF,
    POI,
    Backend,
    Stat,
    bootstrap_ci,
    iqm,
    iqm_ratio,
    resolve_backend,
)
from rltransfer.metrics.per_run import (
    DEFAULT_FINAL_K,
    DEFAULT_SUSTAIN,
    HIGHER_IS_BETTER,
    METRICS,
    as_returns,
    as_steps,
    curve_dip,
    per_run_metrics,
)
from rltransfer.metrics.trimmed import holm, yuen_ci

Verdict = Literal["positive", "negative", "inconclusive"]
"""A method's transfer verdict against the baseline."""

IntervalKind = Literal["yuen", "percentile"]
"""How :func:`compute` gives the interval of a difference from the baseline: ``"yuen"`` (the
default, adopted for the reports: Yuen's trimmed t with Hsu's conservative degrees of
freedom, :func:`rltransfer.metrics.trimmed.yuen_ci`, which also gives the p-value Holm's
procedure adjusts) or ``"percentile"`` (rliable's stratified percentile bootstrap, the
reports' interval before). One method's IQM, the speed-up, the transfer ratio and the
probability of improvement keep the percentile bootstrap either way: on the CartPole pool
it covered them as well as the t intervals measured beside it, or better (docs/metrics.md)."""

FAMILY_ALPHA = 0.05
"""Family-wise error rate of the adjusted verdicts: Holm's procedure over an experiment's
methods (all of them against scratch, on the AUC difference, with Yuen's test)."""

SpeedupKind = Literal["estimate", "lower_bound", "upper_bound", "at_step_0", "not_measured"]
"""What a speed-up is, given censored and step-0 times: an estimate; a lower bound
(scratch's times censored at the budget, or some of the method's held from step 0); an
upper bound (the method's censored, or scratch's held from step 0); ``at_step_0`` (the
method's IQM time is 0: only the lower bound scratch's time / one evaluation interval
exists); ``not_measured`` (bounds on both sides: neither a bound nor an estimate)."""

PRIMARY_METRIC = "auc"
"""The metric whose difference to scratch decides the verdict (shift-invariant, uses the
whole curve, so it rewards both a jumpstart and faster learning)."""

MIN_SEEDS_FOR_VERDICT = 3
"""Fewer seeds than this in either method gives an 'inconclusive' verdict: with 2 seeds
per method a percentile bootstrap CI excludes 0 whenever both seeds of one method beat both
seeds of the other, which happens by chance one time in six."""


def verdict(low: float | None, high: float | None, *, higher_is_better: bool = True) -> Verdict:
    """Transfer verdict from the CI of a difference (method minus scratch).

    "positive" when the whole interval lies on the better side of 0 (strictly), "negative"
    when it lies wholly on the worse side, otherwise (0 inside, or no interval)
    "inconclusive".

    Args:
        low: lower bound of the CI of ``metric(method) - metric(scratch)``.
        high: upper bound of that CI.
        higher_is_better: False for metrics such as time to threshold.

    Example:
        >>> verdict(0.5, 3.0), verdict(-1.0, 2.0)
        ('positive', 'inconclusive')
        >>> verdict(10.0, 30.0, higher_is_better=False)  # it took longer than scratch
        'negative'
    """
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "inconclusive"
    if low > 0:
        return "positive" if higher_is_better else "negative"
    if high < 0:
        return "negative" if higher_is_better else "positive"
    return "inconclusive"


def _num(x: Any) -> float | None:
    """JSON-safe float: NaN and infinities become None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _interval(point: float, low: float | None, high: float | None) -> dict[str, float | None]:
    return {"iqm": _num(point), "low": _num(low), "high": _num(high)}


def compute(
    results: Mapping[str, np.ndarray],
    steps: np.ndarray,
    *,
    threshold: float | None = None,
    budget: float | None = None,
    baseline: str = "scratch",
    seed: int = 0,
    reps: int = 2000,
    level: float = 0.95,
    final_k: int = DEFAULT_FINAL_K,
    min_seeds: int = MIN_SEEDS_FOR_VERDICT,
    backend: Backend = "auto",
    sustain: int = DEFAULT_SUSTAIN,
    interval: IntervalKind = "yuen",
) -> dict[str, Any]:
    """All metrics per method, against the baseline, as a JSON-able dict.

    Args:
        results: method label -> evaluation returns ``(n_seeds, n_evals)`` (seeds may differ
            in number between methods, never in evaluations).
        steps: the common evaluation steps ``(n_evals,)``, starting at 0.
        threshold: return for time to threshold; None skips that metric.
        budget: censoring value for time to threshold; defaults to ``steps[-1]``.
        sustain: evaluations in a row at or above the threshold (:func:`time_to_threshold`).
        baseline: the control method ("scratch").
        seed: bootstrap seed.
        reps: bootstrap replicates.
        level: CI coverage.
        final_k: evaluations averaged by :func:`final_return`.
        min_seeds: fewer seeds in a method or in the baseline makes its verdict inconclusive.
        backend: bootstrap backend, see :func:`bootstrap_ci`.
        interval: ``"yuen"`` (default) or ``"percentile"``: the interval of the differences,
            see :data:`IntervalKind`.

    Returns:
        ``{"baseline", "primary_metric", "threshold", "budget", "sustain", "final_k",
        "reference_return", "steps", "ci": {...}, "notes": [...], "methods": {label: {...}}}``;
        ``reference_return`` is r_ref of the transfer ratio (the lowest return in ``results``).
        Per method: ``n_seeds``; ``per_seed`` (raw per-run values); ``metrics``
        (``{metric: {"iqm", "low", "high"}}``, time to threshold also with ``"censored"``,
        the number of censored seeds); and for non-baseline methods ``difference``
        (same shape, IQM(method) - IQM(baseline)), ``transfer_ratio``,
        ``time_to_threshold_speedup`` (``{"value", "low", "high"}``: IQM of the baseline's
        times over IQM of the method's, higher is better; each time is floored at the first
        positive evaluation step, one evaluation interval, so a method above the threshold
        from step 0 on gives a finite lower bound), ``probability_of_improvement`` (on the
        primary metric), ``verdict`` (its own interval against 0), ``verdict_holm`` (Holm's
        procedure over the family of every method against the baseline, at
        :data:`FAMILY_ALPHA`; None with ``interval="percentile"``, which has no p-value) and
        ``notes`` (which say when the speed-up is a bound). The speed-up also has ``kind``
        (:data:`SpeedupKind`) and ``bound`` (scratch's time over one evaluation interval, for
        ``at_step_0``). ``family`` names the methods Holm's procedure adjusts over.
        Missing numbers (no CI with one seed, undefined ratios) are None.

    Example (five seeds per method, four evaluations; finetune starts ~190 higher):
        >>> steps = np.array([0, 100, 200, 300])
        >>> rng = np.random.default_rng(0)
        >>> scratch = np.linspace(10, 300, 4) + rng.normal(0, 5, (5, 4))
        >>> finetune = np.linspace(200, 500, 4) + rng.normal(0, 5, (5, 4))
        >>> m = compute({"scratch": scratch, "finetune": finetune}, steps, reps=200)
        >>> m["baseline"], m["methods"]["finetune"]["verdict"]
        ('scratch', 'positive')
        >>> sorted(m["methods"]["finetune"]["metrics"])  # no threshold: no time to threshold
        ['auc', 'final_return', 'jumpstart']
    """
    steps = as_steps(steps)
    curves = {m: np.atleast_2d(as_returns(r, steps.size)) for m, r in results.items()}
    if not curves:
        raise ValueError("results is empty")
    budget = float(steps[-1]) if budget is None else float(budget)
    used = resolve_backend(backend)
    notes: list[str] = []
    if used == "builtin" and backend == "auto":
        notes.append(
            "rliable.library could not be imported (arch < 8 with pandas >= 3?): CIs come "
            "from rltransfer's re-implementation of rliable's stratified bootstrap."
        )
    reference = float(min(np.min(c) for c in curves.values()))
    metric_names = [m for m in METRICS if threshold is not None or m != "time_to_threshold"]
    boot = functools.partial(bootstrap_ci, reps=reps, seed=seed, level=level, backend=used)

    per_seed = {
        m: per_run_metrics(
            steps, c, threshold=threshold, budget=budget, final_k=final_k, sustain=sustain
        )
        for m, c in curves.items()
    }
    positive = steps[steps > 0]
    floor = float(positive[0]) if positive.size else None

    def col(values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=float)[:, None]

    out_methods: dict[str, Any] = {}
    few = sorted(m for m, c in curves.items() if c.shape[0] < min_seeds)
    if few:
        notes.append(
            f"fewer than {min_seeds} seeds for {', '.join(few)}: CIs are unreliable and the "
            "verdicts involving them are inconclusive."
        )
    if baseline not in curves:
        notes.append(f"baseline {baseline!r} has no finished runs: no differences or verdicts.")

    for method, c in curves.items():
        n = c.shape[0]
        ps = per_seed[method]
        entry: dict[str, Any] = {
            "n_seeds": n,
            "per_seed": {k: [_num(v) if k != "censored" else bool(v) for v in ps[k]] for k in ps},
            "metrics": {},
            "dip": curve_dip(steps, c),
        }
        for name in metric_names:
            if n >= 2:
                p, lo, hi, _ = boot(IQM, col(ps[name]))
                entry["metrics"][name] = _interval(p[0], lo[0], hi[0])
            else:
                entry["metrics"][name] = _interval(iqm(ps[name]), None, None)
        if threshold is not None:
            entry["metrics"]["time_to_threshold"]["censored"] = int(ps["censored"].sum())

        if method != baseline and baseline in curves:
            entry.update(
                _against_baseline(
                    ps,
                    per_seed[baseline],
                    n,
                    curves[baseline].shape[0],
                    metric_names,
                    reference,
                    min_seeds,
                    boot,
                    floor,
                    baseline,
                    interval,
                    level,
                )
            )
        out_methods[method] = entry
    family = _adjust(out_methods, baseline, interval, min_seeds)

    return {
        "baseline": baseline,
        "primary_metric": PRIMARY_METRIC,
        "threshold": _num(threshold),
        "budget": budget,
        "sustain": sustain,
        "final_k": final_k,
        "reference_return": reference,
        "steps": [float(s) for s in steps],
        "ci": {
            "level": level,
            "reps": reps,
            "seed": seed,
            "method": CI_METHODS[interval],
            "interval": interval,
            "backend": used,
        },
        "family": family,
        "notes": notes,
        "methods": out_methods,
    }


CI_METHODS: dict[str, str] = {
    "yuen": "IQM over seeds; differences: Yuen's trimmed t with Hsu's conservative degrees "
            "of freedom; one method's IQM and ratios: stratified percentile bootstrap",
    "percentile": "stratified percentile bootstrap over seeds, IQM",
}
"""What ``metrics.json``'s ``ci.method`` says for each :data:`IntervalKind`."""


def _adjust(methods: dict[str, Any], baseline: str, interval: IntervalKind,
            min_seeds: int) -> dict[str, Any]:
    """Holm's verdicts over the family of every method against the baseline (set in place
    as ``verdict_holm``), and the family's description. A method with fewer than
    ``min_seeds`` seeds (or against a baseline with fewer) counts in the family and is never
    rejected."""
    labels = [k for k, e in methods.items() if k != baseline and "verdict" in e]
    n_base = methods[baseline]["n_seeds"] if baseline in methods else 0
    family = {"methods": labels, "size": len(labels), "alpha": FAMILY_ALPHA,
              "metric": PRIMARY_METRIC,
              "rule": ("Holm over the family, Yuen's trimmed t test of the AUC difference"
                       if interval == "yuen" else None)}
    if interval != "yuen":
        for k in labels:
            methods[k]["verdict_holm"] = None
        return family
    diffs = [methods[k]["difference"][PRIMARY_METRIC] for k in labels]
    p = np.array([d.get("p") if min(methods[k]["n_seeds"], n_base) >= min_seeds else None
                  for k, d in zip(labels, diffs, strict=True)], dtype=float)
    for k, d, rejected in zip(labels, diffs, holm(p, alpha=FAMILY_ALPHA), strict=True):
        methods[k]["verdict_holm"] = (
            "inconclusive" if not rejected or not d["iqm"]
            else "positive" if d["iqm"] > 0 else "negative")
    return family


def _against_baseline(
    ps: Mapping[str, np.ndarray],
    base: Mapping[str, np.ndarray],
    n: int,
    n_base: int,
    metric_names: Sequence[str],
    reference: float,
    min_seeds: int,
    boot: Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray, str]],
    floor: float | None,
    baseline: str,
    interval: IntervalKind = "yuen",
    level: float = 0.95,
) -> dict[str, Any]:
    """Difference, ratios, probability of improvement and verdict of one method."""
    has_ci = min(n, n_base) >= 2
    notes: list[str] = []

    def col(values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=float)[:, None]

    def est(stat: Stat, x: np.ndarray, y: np.ndarray) -> tuple[float, float | None, float | None]:
        if has_ci:
            p, lo, hi, _ = boot(stat, col(x), col(y))
            return float(p[0]), float(lo[0]), float(hi[0])
        return float(stat(col(x), col(y))[0]), None, None

    def yuen(x: np.ndarray, y: np.ndarray) -> dict[str, float | None]:
        point = float(IQM_DIFF(col(x), col(y))[0])  # rliable's IQM, as every other number
        if not has_ci:
            return {**_interval(point, None, None), "p": None}
        iv = yuen_ci(x, y, level=level)
        return {**_interval(point, iv.low, iv.high), "p": _num(iv.p)}

    difference = {}
    for name in metric_names:
        if interval == "yuen":
            difference[name] = yuen(ps[name], base[name])
        else:
            difference[name] = _interval(*est(IQM_DIFF, ps[name], base[name]))

    ratio = _interval(*est(iqm_ratio(reference), ps["auc"], base["auc"]))
    if ratio["iqm"] is None:
        notes.append("transfer ratio undefined: the baseline's AUC equals the reference return.")
    out: dict[str, Any] = {
        "difference": difference,
        "transfer_ratio": {"value": ratio["iqm"], "low": ratio["low"], "high": ratio["high"]},
    }
    if "time_to_threshold" in metric_names:
        out["time_to_threshold_speedup"], speed_notes = _speedup(
            ps, base, floor, baseline, lambda x, y: est(iqm_ratio(0.0), x, y)
        )
        notes += speed_notes
    poi = _interval(*est(POI, ps[PRIMARY_METRIC], base[PRIMARY_METRIC]))
    out["probability_of_improvement"] = {
        "value": poi["iqm"],
        "low": poi["low"],
        "high": poi["high"],
        "metric": PRIMARY_METRIC,
    }
    d = difference[PRIMARY_METRIC]
    if min(n, n_base) < min_seeds:
        out["verdict"] = "inconclusive"
        notes.append(f"verdict inconclusive by rule: fewer than {min_seeds} seeds.")
    else:
        out["verdict"] = verdict(
            d["low"], d["high"], higher_is_better=HIGHER_IS_BETTER[PRIMARY_METRIC]
        )
    out["notes"] = notes
    return out


def _speedup(
    ps: Mapping[str, np.ndarray],
    base: Mapping[str, np.ndarray],
    floor: float | None,
    baseline: str,
    ratio: Callable[[np.ndarray, np.ndarray], tuple[float, float | None, float | None]],
) -> tuple[dict[str, Any], list[str]]:
    """Time-to-threshold speed-up IQM(baseline's times) / IQM(method's times), and its notes."""
    notes: list[str] = []
    t_method = np.asarray(ps["time_to_threshold"], dtype=float)
    t_base = np.asarray(base["time_to_threshold"], dtype=float)
    raw_method, raw_base = t_method, t_base
    floored = {"lower": 0, "upper": 0}
    if floor is not None:
        sides = (
            ("this method", t_method, ps["censored"], "lower"),
            (baseline, t_base, base["censored"], "upper"),
        )
        for who, t, censored, bound in sides:
            k = int(np.sum((t < floor) & ~np.asarray(censored, dtype=bool)))
            floored[bound] += k
            if k:
                notes.append(
                    f"time to threshold is 0 for {k}/{t.size} seeds of {who} (the threshold is "
                    f"sustained from step 0): the speed-up credits them with one evaluation "
                    f"interval ({floor:g} steps), so it is a {bound} bound."
                )
        t_method, t_base = np.maximum(t_method, floor), np.maximum(t_base, floor)
    s = _interval(*ratio(t_base, t_method))
    if s["iqm"] is None:
        notes.append("time-to-threshold speed-up undefined: this method's time is 0.")
    c_method, c_base = int(np.sum(ps["censored"])), int(np.sum(base["censored"]))
    if c_base:
        notes.append(
            f"time to threshold is censored at the budget for {c_base}/{t_base.size} seeds of "
            f"{baseline}: its IQM is a lower bound and the speed-up is a lower bound."
        )
    if c_method:
        notes.append(
            f"time to threshold is censored at the budget for {c_method}/{t_method.size} seeds "
            "of this method: its IQM is a lower bound and the speed-up is an upper bound."
        )
    if c_base and c_method:
        notes.append(
            "with censoring on both sides the speed-up is neither a bound nor an estimate."
        )
    lower = bool(c_base or floored["lower"])
    upper = bool(c_method or floored["upper"])
    kind: SpeedupKind = ("not_measured" if lower and upper else "lower_bound" if lower
                         else "upper_bound" if upper else "estimate")
    at_zero: float | None = None
    if floor is not None and kind != "not_measured" and iqm(raw_method) < floor:
        kind = "at_step_0"
        at_zero = _num(iqm(raw_base) / floor)
        notes.append(
            f"this method holds the threshold from step 0 (IQM time 0): its speed-up is "
            f"reported as at step 0, with the lower bound {baseline}'s IQM time / one "
            f"evaluation interval = {fmt_ratio(at_zero)}, not as an estimate."
        )
    elif kind == "not_measured":
        notes.append("the speed-up is reported as not measured (bounds on both sides).")
    return {"value": s["iqm"], "low": s["low"], "high": s["high"], "kind": kind,
            "bound": at_zero}, notes


def fmt_ratio(x: float | None) -> str:
    """``15×``, ``2.3×``: a ratio in notes (``n/a`` when undefined)."""
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.1f}×" if x < 100 else f"{x:,.0f}×"
