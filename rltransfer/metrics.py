"""Transfer metrics over learning curves, aggregated over seeds with bootstrap CIs.

Pure functions over numpy arrays, in the style of rliable: no files, no hidden state, no
stable-baselines3 and no torch, so a report can be rebuilt anywhere.

Per-run metrics (Taylor & Stone, 2009) take the evaluation steps ``steps`` (shape
``(n_evals,)``, first entry 0 = before any training) and the evaluation returns ``returns``
(shape ``(n_evals,)`` or ``(n_seeds, n_evals)``; the last axis is time):

- :func:`jumpstart`: the return of the first evaluation (step 0).
- :func:`final_return`: the mean of the last ``k`` evaluations (``k = 3`` by default).
- :func:`auc`: the trapezoid area under the curve divided by the step span, i.e. the mean
  return over training, in return units, comparable across budgets.
- :func:`time_to_threshold`: the first evaluation step from which the return stays
  ``>= threshold`` for ``sustain`` evaluations in a row (that one and the ``sustain - 1``
  after it, all within the budget; ``sustain = 3`` by default), censored at ``budget`` (and
  flagged) when there is none. A jumpstart above the threshold followed by a collapse is
  not a time of 0.

Against the baseline, the time-to-threshold *speed-up* is IQM(baseline's times) / IQM(the
method's times), higher is better; a time of 0 is credited with one evaluation interval (the
first positive evaluation step) so the ratio stays finite (see :func:`compute`).

Aggregation over seeds (Agarwal et al., 2021) is the interquartile mean (IQM) with a 95%
stratified percentile bootstrap CI, computed with ``rliable.library.get_interval_estimates``;
see :func:`bootstrap_ci` for the fallback used where ``rliable.library`` cannot be imported.
:func:`compute` puts everything together, including the verdict per method (:func:`verdict`).

Example:
    >>> import numpy as np
    >>> steps = np.array([0, 10, 20])
    >>> auc(steps, np.array([0.0, 1.0, 1.0]))
    0.75
    >>> time_to_threshold(steps, np.array([0.0, 1.0, 1.0]), threshold=1.0, sustain=2)
    (10.0, False)

    A jumpstart above the threshold followed by a collapse is not a time of 0:

    >>> steps = np.arange(6) * 10
    >>> jump_then_collapse = np.array([500.0, 90.0, 200.0, 480.0, 490.0, 495.0])
    >>> time_to_threshold(steps, jump_then_collapse, threshold=475)  # sustain=3
    (30.0, False)
    >>> time_to_threshold(steps, jump_then_collapse, threshold=475, sustain=1)  # first crossing
    (0.0, False)
    >>> late = np.array([500.0, 90.0, 200.0, 300.0, 490.0, 495.0])  # 2 evaluations above, not 3
    >>> time_to_threshold(steps, late, threshold=475)  # censored at the budget (last step)
    (50.0, True)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from rliable import metrics as rl_metrics
from scipy import stats

__all__ = [
    "DEFAULT_FINAL_K",
    "DEFAULT_SUSTAIN",
    "HIGHER_IS_BETTER",
    "METRICS",
    "MIN_SEEDS_FOR_VERDICT",
    "PRIMARY_METRIC",
    "Verdict",
    "auc",
    "bootstrap_ci",
    "compute",
    "final_return",
    "iqm",
    "iqm_curve",
    "jumpstart",
    "per_run_metrics",
    "rliable_available",
    "time_to_threshold",
    "verdict",
]

Verdict = Literal["positive", "negative", "inconclusive"]
Backend = Literal["auto", "rliable", "builtin"]

DEFAULT_FINAL_K = 3
"""Number of last evaluations averaged by :func:`final_return`."""

DEFAULT_SUSTAIN = 3
"""Evaluations in a row that must stay at or above the threshold (:func:`time_to_threshold`)."""

PRIMARY_METRIC = "auc"
"""The metric whose difference to scratch decides the verdict (shift-invariant, uses the
whole curve, so it rewards both a jumpstart and faster learning)."""

MIN_SEEDS_FOR_VERDICT = 3
"""Fewer seeds than this in either method gives an 'inconclusive' verdict: with 2 seeds
per method a percentile bootstrap CI excludes 0 whenever both seeds of one method beat both
seeds of the other, which happens by chance one time in six."""

METRICS: tuple[str, ...] = ("jumpstart", "final_return", "auc", "time_to_threshold")
"""Per-run metrics, in table order."""

HIGHER_IS_BETTER: dict[str, bool] = {
    "jumpstart": True,
    "final_return": True,
    "auc": True,
    "time_to_threshold": False,
}


# --------------------------------------------------------------------------- per run


def _as_steps(steps: np.ndarray) -> np.ndarray:
    steps = np.asarray(steps, dtype=float)
    if steps.ndim != 1 or steps.size == 0:
        raise ValueError(f"steps must be a non-empty 1-D array, got shape {steps.shape}")
    if np.any(np.diff(steps) <= 0):
        raise ValueError("steps must be strictly increasing")
    return steps


def _as_returns(returns: np.ndarray, n_evals: int | None = None) -> np.ndarray:
    returns = np.asarray(returns, dtype=float)
    if returns.ndim not in (1, 2):
        raise ValueError(f"returns must be (n_evals,) or (n_seeds, n_evals), got {returns.shape}")
    if n_evals is not None and returns.shape[-1] != n_evals:
        raise ValueError(f"returns have {returns.shape[-1]} evaluations but steps have {n_evals}")
    return returns


def _scalar(x: np.ndarray) -> float | np.ndarray:
    return float(x) if np.ndim(x) == 0 else x


def jumpstart(steps: np.ndarray, returns: np.ndarray) -> float | np.ndarray:
    """Return of the first evaluation (step 0, before any training on the target).

    Args:
        steps: evaluation steps, shape ``(n_evals,)``.
        returns: evaluation returns, shape ``(n_evals,)`` or ``(n_seeds, n_evals)``.

    Returns:
        A float, or one value per seed.
    """
    steps = _as_steps(steps)
    returns = _as_returns(returns, steps.size)
    return _scalar(returns[..., 0])


def final_return(returns: np.ndarray, k: int = DEFAULT_FINAL_K) -> float | np.ndarray:
    """Asymptotic performance: mean of the last ``k`` evaluation returns.

    Averaging a few evaluations damps the noise of a single one. When the curve has fewer
    than ``k`` evaluations, all of them are averaged.

    Args:
        returns: shape ``(n_evals,)`` or ``(n_seeds, n_evals)``.
        k: number of final evaluations to average (>= 1).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    returns = _as_returns(returns)
    return _scalar(returns[..., -k:].mean(axis=-1))


def auc(steps: np.ndarray, returns: np.ndarray) -> float | np.ndarray:
    """Area under the curve normalized by the step span: the mean return over training.

    ``trapezoid(returns, steps) / (steps[-1] - steps[0])``, in return units, so it can be
    compared across budgets and with :func:`final_return`. With a single evaluation it is
    that evaluation's return.

    Args:
        steps: evaluation steps, shape ``(n_evals,)``, strictly increasing.
        returns: shape ``(n_evals,)`` or ``(n_seeds, n_evals)``.
    """
    steps = _as_steps(steps)
    returns = _as_returns(returns, steps.size)
    if steps.size == 1:
        return _scalar(returns[..., 0])
    area = np.trapezoid(returns, steps, axis=-1)
    return _scalar(area / (steps[-1] - steps[0]))


def time_to_threshold(
    steps: np.ndarray,
    returns: np.ndarray,
    threshold: float,
    budget: float | None = None,
    sustain: int = DEFAULT_SUSTAIN,
) -> tuple[float | np.ndarray, bool | np.ndarray]:
    """Sustained time to threshold: the first step from which the return stays ``>= threshold``.

    The time is the first evaluation step ``steps[i]`` such that evaluations ``i, i + 1, ...,
    i + sustain - 1`` all have a return ``>= threshold``. All ``sustain`` of them must exist
    at steps ``<= budget``: a run that reaches the threshold only in its last ``sustain - 1``
    evaluations, or only after the budget, is censored. ``sustain = 1`` is the first crossing.

    Args:
        steps: evaluation steps, shape ``(n_evals,)``.
        returns: shape ``(n_evals,)`` or ``(n_seeds, n_evals)``.
        threshold: the target return.
        budget: value given to runs that never sustain the threshold (right-censoring), and
            the last step whose evaluation counts; defaults to the last evaluation step.
        sustain: evaluations in a row that must be at or above the threshold (``>= 1``).

    Returns:
        ``(time, censored)``: the step (float) and whether it was censored at ``budget``;
        arrays of one entry per seed for 2-D ``returns``.

    Example:
        >>> steps = np.array([0, 10, 20, 30, 40])
        >>> time_to_threshold(steps, np.array([[9, 0, 9, 9, 9], [9, 9, 0, 9, 9]]), 5)
        (array([20., 40.]), array([False,  True]))
    """
    if isinstance(sustain, bool) or not isinstance(sustain, (int, np.integer)) or sustain < 1:
        raise ValueError(f"sustain must be an integer >= 1, got {sustain!r}")
    sustain = int(sustain)
    steps = _as_steps(steps)
    returns = _as_returns(returns, steps.size)
    budget = float(steps[-1]) if budget is None else float(budget)
    hit = (returns >= threshold) & (steps <= budget)
    n = steps.size
    # ok[..., i]: evaluations i .. i + sustain - 1 all hit (windows running past the end: no).
    ok = np.zeros(hit.shape, dtype=bool)
    if n >= sustain:
        runs = np.concatenate(
            [np.zeros((*hit.shape[:-1], 1), dtype=int), np.cumsum(hit, axis=-1)], axis=-1
        )
        ok[..., : n - sustain + 1] = (runs[..., sustain:] - runs[..., : n - sustain + 1]) == sustain
    reached = ok.any(axis=-1)
    first = steps[np.argmax(ok, axis=-1)]
    time = np.where(reached, first, budget)
    censored = ~reached
    if np.ndim(time) == 0:
        return float(time), bool(censored)
    return time.astype(float), censored


def per_run_metrics(
    steps: np.ndarray,
    returns: np.ndarray,
    *,
    threshold: float | None = None,
    budget: float | None = None,
    final_k: int = DEFAULT_FINAL_K,
    sustain: int = DEFAULT_SUSTAIN,
) -> dict[str, np.ndarray]:
    """All per-run metrics for a ``(n_seeds, n_evals)`` block of curves.

    ``threshold``, ``budget`` and ``sustain`` are those of :func:`time_to_threshold`,
    ``final_k`` that of :func:`final_return`.

    Returns:
        ``{"jumpstart", "final_return", "auc"}`` and, when ``threshold`` is given,
        ``"time_to_threshold"`` and ``"censored"`` (bool), each of shape ``(n_seeds,)``.
    """
    returns = np.atleast_2d(_as_returns(returns))
    out = {
        "jumpstart": np.asarray(jumpstart(steps, returns)),
        "final_return": np.asarray(final_return(returns, final_k)),
        "auc": np.asarray(auc(steps, returns)),
    }
    if threshold is not None:
        ttt, cens = time_to_threshold(steps, returns, threshold, budget, sustain)
        out["time_to_threshold"] = np.asarray(ttt)
        out["censored"] = np.asarray(cens)
    return out


# --------------------------------------------------------------------------- aggregates


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean (25% trimmed mean) of all scores (``rliable.metrics.aggregate_iqm``).

    With fewer than 4 scores nothing is trimmed, so it is the plain mean.
    """
    return float(rl_metrics.aggregate_iqm(np.asarray(scores, dtype=float)))


@dataclass(frozen=True)
class _Stat:
    """A statistic of one or more ``(n_runs, n_tasks)`` samples.

    ``one`` takes the samples and returns a 1-D array (rliable's convention); ``many`` takes
    the same samples with a leading axis of bootstrap replicates and returns
    ``(reps, n_params)``: used by the vectorized builtin bootstrap.
    """

    one: Callable[..., np.ndarray]
    many: Callable[..., np.ndarray]

    def __call__(self, *samples: np.ndarray) -> np.ndarray:
        return self.one(*samples)


def _trim(x: np.ndarray, axis: int | None) -> np.ndarray:
    return np.asarray(stats.trim_mean(x, proportiontocut=0.25, axis=axis))


def _flat(x: np.ndarray) -> np.ndarray:
    return x.reshape(x.shape[0], -1)


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(a, dtype=float) / np.asarray(b, dtype=float)


_IQM = _Stat(
    one=lambda x: np.array([rl_metrics.aggregate_iqm(x)]),
    many=lambda x: _trim(_flat(x), axis=1)[:, None],
)

_IQM_DIFF = _Stat(
    one=lambda x, y: np.array([rl_metrics.aggregate_iqm(x) - rl_metrics.aggregate_iqm(y)]),
    many=lambda x, y: (_trim(_flat(x), axis=1) - _trim(_flat(y), axis=1))[:, None],
)

_IQM_CURVE = _Stat(
    one=lambda x: _trim(x, axis=0),
    many=lambda x: _trim(x, axis=1),
)


def _iqm_ratio(shift: float) -> _Stat:
    return _Stat(
        one=lambda x, y: np.array(
            [_safe_div(rl_metrics.aggregate_iqm(x) - shift, rl_metrics.aggregate_iqm(y) - shift)]
        ),
        many=lambda x, y: _safe_div(
            _trim(_flat(x), axis=1) - shift, _trim(_flat(y), axis=1) - shift
        )[:, None],
    )


def _poi_many(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # Mann-Whitney U / (n_x n_y) per task, averaged over tasks: rliable's definition.
    gt = (x[:, :, None, :] > y[:, None, :, :]).mean(axis=(1, 2))
    eq = (x[:, :, None, :] == y[:, None, :, :]).mean(axis=(1, 2))
    return (gt + 0.5 * eq).mean(axis=1)[:, None]


_POI = _Stat(
    one=lambda x, y: np.array([rl_metrics.probability_of_improvement(x, y)]),
    many=_poi_many,
)


@functools.cache
def _rliable_library() -> Any:
    """``rliable.library``, or None where it cannot be imported.

    rliable.library imports ``arch``; arch < 8 fails to import with pandas >= 3 (a TypeError
    from ``pandas.util._decorators.deprecate_kwarg``), so any exception means "unavailable".
    """
    try:
        from rliable import library
    except Exception:  # noqa: BLE001 - any import failure of arch/rliable means unavailable
        return None
    return library


def rliable_available() -> bool:
    """Whether ``rliable.library`` (and so its stratified bootstrap) can be imported here."""
    return _rliable_library() is not None


def _resolve_backend(backend: Backend) -> Literal["rliable", "builtin"]:
    if backend == "auto":
        return "rliable" if rliable_available() else "builtin"
    if backend == "rliable" and not rliable_available():
        raise ImportError(
            "rliable.library cannot be imported (arch < 8 with pandas >= 3?); "
            "use backend='builtin' or install arch>=8"
        )
    if backend not in ("rliable", "builtin"):
        raise ValueError(f"backend must be 'auto', 'rliable' or 'builtin', got {backend!r}")
    return backend


def _percentiles(level: float) -> list[float]:
    alpha = (1.0 - level) / 2.0  # same arithmetic as arch's percentile method
    return [100 * alpha, 100 * (1.0 - alpha)]


def _builtin_bootstrap(
    stat: _Stat, samples: Sequence[np.ndarray], reps: int, seed: int, level: float
) -> tuple[np.ndarray, np.ndarray]:
    # Same draws as rliable's StratifiedBootstrap / StratifiedIndependentBootstrap after
    # np.random.seed(seed): per replicate and per sample, choice(n_runs, shape), i.e. one run
    # index per (replicate, run slot, task), so each task (stratum) is resampled on its own.
    rs = np.random.RandomState(seed)
    n_runs = {s.shape[0] for s in samples}
    if len(n_runs) == 1:
        # One range for every draw: legacy choice/randint consumes the stream element by
        # element, so one batched call equals rliable's per-replicate calls (and is fast).
        sizes = [s.size for s in samples]
        flat = rs.choice(n_runs.pop(), (reps, sum(sizes)), replace=True)
        parts = np.split(flat, np.cumsum(sizes)[:-1], axis=1)
        draws = [p.reshape(reps, *s.shape) for p, s in zip(parts, samples, strict=True)]
    else:
        draws = [np.empty((reps, *s.shape), dtype=np.int64) for s in samples]
        for r in range(reps):
            for idx, s in zip(draws, samples, strict=True):
                idx[r] = rs.choice(s.shape[0], s.shape, replace=True)
    resampled = []
    for s, idx in zip(samples, draws, strict=True):
        strata = np.ogrid[tuple(slice(n) for n in s.shape[1:])]
        resampled.append(s[(idx, *strata)])
    values = np.asarray(stat.many(*resampled), dtype=float)
    lo, hi = _percentiles(level)
    # A replicate with an undefined value (a ratio over 0) leaves the bound NaN/inf: the
    # caller reports it as missing rather than as a number.
    with np.errstate(invalid="ignore"):
        low = np.array([np.percentile(values[:, j], lo) for j in range(values.shape[1])])
        high = np.array([np.percentile(values[:, j], hi) for j in range(values.shape[1])])
    return low, high


def _rliable_bootstrap(
    stat: _Stat, samples: Sequence[np.ndarray], reps: int, seed: int, level: float
) -> tuple[np.ndarray, np.ndarray]:
    library = _rliable_library()
    data: np.ndarray | tuple[np.ndarray, ...] = samples[0] if len(samples) == 1 else tuple(samples)
    # rliable draws its resampling indices from numpy's *global* RNG (its random_state
    # argument is not used by the stratified resampler), so seed it and restore it after.
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        with np.errstate(invalid="ignore", divide="ignore"):
            _, intervals = library.get_interval_estimates(
                {"x": data}, stat.one, reps=reps, confidence_interval_size=level
            )
    finally:
        np.random.set_state(state)
    ci = np.asarray(intervals["x"], dtype=float).reshape(2, -1)
    return ci[0], ci[1]


def bootstrap_ci(
    stat: Callable[..., np.ndarray],
    *samples: np.ndarray,
    reps: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    backend: Backend = "auto",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Point estimate and stratified percentile bootstrap CI of a statistic.

    Args:
        stat: a statistic of the samples returning a 1-D array; one of this module's
            statistics (IQM, IQM difference, ratio, probability of improvement) or any
            rliable-style callable (those run on the rliable backend only).
        *samples: one or more ``(n_runs, n_tasks)`` arrays; several samples are resampled
            independently of each other (``StratifiedIndependentBootstrap``).
        reps: bootstrap replicates.
        seed: seeds the resampling; the same seed gives the same interval.
        level: coverage of the interval.
        backend: ``"rliable"`` (``rliable.library.get_interval_estimates``), ``"builtin"``
            (a vectorized re-implementation drawing the same indices, so the same numbers) or
            ``"auto"`` (rliable when importable).

    Returns:
        ``(point, low, high, backend_used)``; each array has one entry per statistic output.
    """
    samples = tuple(np.asarray(s, dtype=float) for s in samples)
    if any(s.ndim < 2 or s.shape[0] == 0 for s in samples):
        raise ValueError("samples must be non-empty (n_runs, n_tasks, ...) arrays")
    used = _resolve_backend(backend)
    point = np.atleast_1d(np.asarray(stat(*samples), dtype=float))
    if used == "builtin":
        if not isinstance(stat, _Stat):
            raise TypeError("the builtin bootstrap supports this module's statistics only")
        low, high = _builtin_bootstrap(stat, samples, reps, seed, level)
    else:
        low, high = _rliable_bootstrap(stat, samples, reps, seed, level)
    return point, low, high, used


def iqm_curve(
    returns: np.ndarray,
    *,
    reps: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    backend: Backend = "auto",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IQM over seeds at each evaluation, with a per-evaluation bootstrap CI.

    Args:
        returns: ``(n_seeds, n_evals)``.

    Returns:
        ``(iqm, low, high)``, each ``(n_evals,)``. With a single seed the band collapses onto
        the curve.
    """
    returns = np.atleast_2d(np.asarray(returns, dtype=float))
    if returns.shape[0] == 1:
        return returns[0].copy(), returns[0].copy(), returns[0].copy()
    point, low, high, _ = bootstrap_ci(
        _IQM_CURVE, returns, reps=reps, seed=seed, level=level, backend=backend
    )
    return point, low, high


# --------------------------------------------------------------------------- verdict


def verdict(low: float | None, high: float | None, *, higher_is_better: bool = True) -> Verdict:
    """Transfer verdict from the CI of a difference (method minus scratch).

    "positive" when the whole interval lies on the better side of 0 (strictly), "negative"
    when it lies wholly on the worse side, otherwise (0 inside, or no interval)
    "inconclusive".

    Args:
        low, high: bounds of the CI of ``metric(method) - metric(scratch)``.
        higher_is_better: False for metrics such as time to threshold.
    """
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "inconclusive"
    if low > 0:
        return "positive" if higher_is_better else "negative"
    if high < 0:
        return "negative" if higher_is_better else "positive"
    return "inconclusive"


# --------------------------------------------------------------------------- compute


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
        seed, reps, level: bootstrap seed, replicates and CI coverage.
        final_k: evaluations averaged by :func:`final_return`.
        min_seeds: fewer seeds in a method or in the baseline makes its verdict inconclusive.
        backend: bootstrap backend, see :func:`bootstrap_ci`.

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
        primary metric), ``verdict`` and ``notes`` (which say when the speed-up is a bound).
        Missing numbers (no CI with one seed, undefined ratios) are None.
    """
    steps = _as_steps(steps)
    curves = {m: np.atleast_2d(_as_returns(r, steps.size)) for m, r in results.items()}
    if not curves:
        raise ValueError("results is empty")
    budget = float(steps[-1]) if budget is None else float(budget)
    used = _resolve_backend(backend)
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
        }
        for name in metric_names:
            if n >= 2:
                p, lo, hi, _ = boot(_IQM, col(ps[name]))
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
                )
            )
        out_methods[method] = entry

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
            "method": "stratified percentile bootstrap over seeds, IQM",
            "backend": used,
        },
        "notes": notes,
        "methods": out_methods,
    }


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
) -> dict[str, Any]:
    """Difference, ratios, probability of improvement and verdict of one method."""
    has_ci = min(n, n_base) >= 2
    notes: list[str] = []

    def col(values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=float)[:, None]

    def est(stat: _Stat, x: np.ndarray, y: np.ndarray) -> tuple[float, float | None, float | None]:
        if has_ci:
            p, lo, hi, _ = boot(stat, col(x), col(y))
            return float(p[0]), float(lo[0]), float(hi[0])
        return float(stat(col(x), col(y))[0]), None, None

    difference = {}
    for name in metric_names:
        difference[name] = _interval(*est(_IQM_DIFF, ps[name], base[name]))

    ratio = _interval(*est(_iqm_ratio(reference), ps["auc"], base["auc"]))
    if ratio["iqm"] is None:
        notes.append("transfer ratio undefined: the baseline's AUC equals the reference return.")
    out: dict[str, Any] = {
        "difference": difference,
        "transfer_ratio": {"value": ratio["iqm"], "low": ratio["low"], "high": ratio["high"]},
    }
    if "time_to_threshold" in metric_names:
        out["time_to_threshold_speedup"], speed_notes = _speedup(
            ps, base, floor, baseline, lambda x, y: est(_iqm_ratio(0.0), x, y)
        )
        notes += speed_notes
    poi = _interval(*est(_POI, ps[PRIMARY_METRIC], base[PRIMARY_METRIC]))
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
) -> tuple[dict[str, float | None], list[str]]:
    """Time-to-threshold speed-up IQM(baseline's times) / IQM(method's times), and its notes."""
    notes: list[str] = []
    t_method = np.asarray(ps["time_to_threshold"], dtype=float)
    t_base = np.asarray(base["time_to_threshold"], dtype=float)
    if floor is not None:
        sides = (("this method", t_method, ps["censored"], "lower"),
                 (baseline, t_base, base["censored"], "upper"))
        for who, t, censored, bound in sides:
            k = int(np.sum((t < floor) & ~np.asarray(censored, dtype=bool)))
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
    return {"value": s["iqm"], "low": s["low"], "high": s["high"]}, notes
