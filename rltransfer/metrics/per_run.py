"""Per-run transfer metrics (Taylor & Stone, 2009): one number per learning curve.

Each function takes the evaluation steps ``steps`` (shape ``(n_evals,)``, first entry 0 =
before any training) and the evaluation returns ``returns`` (shape ``(n_evals,)`` or
``(n_seeds, n_evals)``; the last axis is time), and gives one value per curve:
:func:`jumpstart`, :func:`final_return`, :func:`auc`, :func:`time_to_threshold`;
:func:`per_run_metrics` computes them all for a block of seeds. Pure numpy.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

DEFAULT_FINAL_K = 3
"""Number of last evaluations averaged by :func:`final_return`."""

DEFAULT_SUSTAIN = 3
"""Evaluations in a row that must stay at or above the threshold (:func:`time_to_threshold`)."""

METRICS: tuple[str, ...] = ("jumpstart", "final_return", "auc", "time_to_threshold")
"""Per-run metrics, in table order."""

HIGHER_IS_BETTER: dict[str, bool] = {
    "jumpstart": True,
    "final_return": True,
    "auc": True,
    "time_to_threshold": False,
}
"""Per-run metric -> whether a higher value is better."""


def as_steps(steps: np.ndarray) -> np.ndarray:
    """``steps`` as a float array, checked to be 1-D, non-empty and strictly increasing."""
    steps = np.asarray(steps, dtype=float)
    if steps.ndim != 1 or steps.size == 0:
        raise ValueError(f"steps must be a non-empty 1-D array, got shape {steps.shape}")
    if np.any(np.diff(steps) <= 0):
        raise ValueError("steps must be strictly increasing")
    return steps


def as_returns(returns: np.ndarray, n_evals: int | None = None) -> np.ndarray:
    """``returns`` as a float array, checked to be ``(n_evals,)`` or ``(n_seeds, n_evals)``."""
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

    Example:
        >>> jumpstart(np.array([0, 10, 20]), np.array([[5.0, 6.0, 9.0], [7.0, 8.0, 9.0]]))
        array([5., 7.])
    """
    steps = as_steps(steps)
    returns = as_returns(returns, steps.size)
    return _scalar(returns[..., 0])


def final_return(returns: np.ndarray, k: int = DEFAULT_FINAL_K) -> float | np.ndarray:
    """Asymptotic performance: mean of the last ``k`` evaluation returns.

    Averaging a few evaluations damps the noise of a single one. When the curve has fewer
    than ``k`` evaluations, all of them are averaged.

    Args:
        returns: shape ``(n_evals,)`` or ``(n_seeds, n_evals)``.
        k: number of final evaluations to average (>= 1).

    Example:
        >>> final_return(np.array([1.0, 2.0, 4.0, 6.0]), k=2)
        5.0
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    returns = as_returns(returns)
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
    steps = as_steps(steps)
    returns = as_returns(returns, steps.size)
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
    steps = as_steps(steps)
    returns = as_returns(returns, steps.size)
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
    return time.astype(float), np.asarray(censored)


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
    returns = np.atleast_2d(as_returns(returns))
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


def curve_dip(steps: np.ndarray, returns: np.ndarray) -> dict[str, float | None]:
    """How far the IQM curve over seeds falls below its start after step 0.

    Returns ``{"jumpstart", "lowest", "step", "fraction"}``: the IQM return at step 0, the
    lowest IQM return at a later evaluation, its step, and ``lowest / jumpstart`` (``None``
    when the jumpstart is not positive). A transferred agent that collapses before it
    relearns shows a small fraction; one that never falls below half its start, >= 0.5.

    Example:
        >>> curve_dip(np.array([0, 10, 20]), np.array([[400.0, 100.0, 500.0]]))
        {'jumpstart': 400.0, 'lowest': 100.0, 'step': 10.0, 'fraction': 0.25}
    """
    steps = as_steps(steps)
    returns = np.atleast_2d(as_returns(returns, steps.size))
    center = np.asarray(stats.trim_mean(returns, proportiontocut=0.25, axis=0), dtype=float)
    start = float(center[0])
    if center.size < 2:
        return {"jumpstart": start, "lowest": None, "step": None, "fraction": None}
    i = int(np.argmin(center[1:])) + 1
    lowest = float(center[i])
    return {"jumpstart": start, "lowest": lowest, "step": float(steps[i]),
            "fraction": lowest / start if start > 0 else None}


COLLAPSE_FRACTION = 0.98
"""A contrastive encoder whose final loss is at least this fraction of chance has collapsed."""


def encoder_collapsed(objective: str | None, final_loss: float | None,
                      batch_size: int | None) -> bool:
    """Whether a self-supervised encoder's training ended at chance level (learned nothing).

    For the contrastive objective (cross-entropy over the ``batch_size`` frames of a batch)
    chance is ``ln(batch_size)``: a final loss at ``COLLAPSE_FRACTION`` of it or above means
    the features no longer tell frames apart. Other objectives: ``False`` (no known chance).

    Example:
        >>> encoder_collapsed("contrastive", 4.852, 128), encoder_collapsed("contrastive", 2.8, 128)
        (True, False)
    """
    if objective != "contrastive" or final_loss is None or not batch_size or batch_size < 2:
        return False
    return float(final_loss) >= COLLAPSE_FRACTION * float(np.log(batch_size))
