"""Aggregates over seeds: interquartile mean and stratified percentile bootstrap CIs.

Following Agarwal et al. (2021) and rliable: :func:`iqm` is the 25% trimmed mean, and
:func:`bootstrap_ci` gives a statistic's point estimate with its stratified percentile
bootstrap CI, computed with ``rliable.library.get_interval_estimates`` or with a vectorized
re-implementation that draws the same resamples (the fallback where ``rliable.library``
cannot be imported, and the fast path for per-evaluation bands, :func:`iqm_curve`).

The statistics (:data:`IQM`, :data:`IQM_DIFF`, :data:`IQM_CURVE`, :data:`POI`,
:func:`iqm_ratio`) are :class:`Stat` objects: one function for a sample, one for a batch of
bootstrap replicates. Pure functions of numpy arrays; the only cached value is whether
``rliable.library`` imports.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from rliable import metrics as rl_metrics
from scipy import stats

Backend = Literal["auto", "rliable", "builtin"]
"""Bootstrap backend: ``"rliable"``, ``"builtin"`` or ``"auto"`` (see :func:`bootstrap_ci`)."""


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean (25% trimmed mean) of all scores (``rliable.metrics.aggregate_iqm``).

    With fewer than 4 scores nothing is trimmed, so it is the plain mean.

    Example:
        >>> iqm(np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 100.0]))  # the outlier is trimmed
        4.5
    """
    return float(rl_metrics.aggregate_iqm(np.asarray(scores, dtype=float)))


@dataclass(frozen=True)
class Stat:
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


IQM = Stat(
    one=lambda x: np.array([rl_metrics.aggregate_iqm(x)]),
    many=lambda x: _trim(_flat(x), axis=1)[:, None],
)
"""IQM of all scores of one sample."""

IQM_DIFF = Stat(
    one=lambda x, y: np.array([rl_metrics.aggregate_iqm(x) - rl_metrics.aggregate_iqm(y)]),
    many=lambda x, y: (_trim(_flat(x), axis=1) - _trim(_flat(y), axis=1))[:, None],
)
"""IQM of the first sample minus IQM of the second."""

IQM_CURVE = Stat(
    one=lambda x: _trim(x, axis=0),
    many=lambda x: _trim(x, axis=1),
)
"""IQM over runs of each column (each evaluation of a ``(n_seeds, n_evals)`` block)."""


def iqm_ratio(shift: float) -> Stat:
    """``(IQM(x) - shift) / (IQM(y) - shift)``, NaN or infinite where ``IQM(y) == shift``."""
    return Stat(
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


POI = Stat(
    one=lambda x, y: np.array([rl_metrics.probability_of_improvement(x, y)]),
    many=_poi_many,
)
"""Probability of improvement P(X > Y) + P(X = Y) / 2 (rliable's definition)."""


@functools.cache
def _rliable_library() -> Any:
    """``rliable.library``, or None where it cannot be imported.

    rliable.library imports ``arch``; arch < 8 fails to import with pandas >= 3 (a TypeError
    from ``pandas.util._decorators.deprecate_kwarg``), so any exception means "unavailable".
    Imported on first use, not with this module: it costs 1.4-1.9 s after
    ``import rltransfer.cli`` (measured in a fresh process), and every ``rltransfer`` command,
    ``--help`` included, imports the metrics.
    """
    try:
        from rliable import library
    except Exception:  # noqa: BLE001 - any import failure of arch/rliable means unavailable
        return None
    return library


def rliable_available() -> bool:
    """Whether ``rliable.library`` (and so its stratified bootstrap) can be imported here."""
    return _rliable_library() is not None


def resolve_backend(backend: Backend) -> Literal["rliable", "builtin"]:
    """The bootstrap backend that ``backend`` means here ("auto": rliable when importable).

    Raises:
        ImportError: for "rliable" where ``rliable.library`` cannot be imported.
        ValueError: for an unknown backend.
    """
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
    stat: Stat, samples: Sequence[np.ndarray], reps: int, seed: int, level: float
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
        key = (idx, *strata)  # not inline: mypy 2.4 takes s[(idx, *strata)] for 3.11 syntax
        resampled.append(s[key])
    values = np.asarray(stat.many(*resampled), dtype=float)
    lo, hi = _percentiles(level)
    # A replicate with an undefined value (a ratio over 0) leaves the bound NaN/inf: the
    # caller reports it as missing rather than as a number.
    with np.errstate(invalid="ignore"):
        low = np.array([np.percentile(values[:, j], lo) for j in range(values.shape[1])])
        high = np.array([np.percentile(values[:, j], hi) for j in range(values.shape[1])])
    return low, high


def _rliable_bootstrap(
    stat: Callable[..., np.ndarray],
    samples: Sequence[np.ndarray],
    reps: int,
    seed: int,
    level: float,
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
                {"x": data}, stat, reps=reps, confidence_interval_size=level
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

    Example:
        >>> scores = np.array([[10.0], [12.0], [11.0], [13.0], [50.0]])  # 5 seeds, 1 task
        >>> point, low, high, used = bootstrap_ci(IQM, scores, reps=200, seed=0)
        >>> float(point[0]), bool(low[0] <= point[0] <= high[0])
        (12.0, True)
    """
    samples = tuple(np.asarray(s, dtype=float) for s in samples)
    if any(s.ndim < 2 or s.shape[0] == 0 for s in samples):
        raise ValueError("samples must be non-empty (n_runs, n_tasks, ...) arrays")
    used = resolve_backend(backend)
    point = np.atleast_1d(np.asarray(stat(*samples), dtype=float))
    if used == "builtin":
        if not isinstance(stat, Stat):
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
        IQM_CURVE, returns, reps=reps, seed=seed, level=level, backend=backend
    )
    return point, low, high
