"""Does a score predict a measured gain? Rank correlation and regret, with bootstrap CIs.

Pure functions over numpy arrays (no files, no torch), used to judge the probes of
``rltransfer rank`` against the real gains of an experiment's transfer runs:

- :func:`spearman`: Spearman's rank correlation of two vectors, ties given their mean rank
  (the same number as ``scipy.stats.spearmanr``).
- :func:`predicts`: for one probe, its Spearman correlation with the candidates' mean gains,
  a percentile bootstrap CI that resamples *seeds* (the same seeds for every candidate, so a
  scratch run shared by all the gains of one seed stays shared), and the regret of its top
  pick: the best candidate's mean gain minus the picked candidate's.

``gains`` is a ``(n_candidates, n_seeds)`` array of per-seed gains (method minus scratch with
the same seed), NaN where a candidate has no finished pair for that seed; a candidate's gain
is the mean over its seeds.

Example:
    >>> import numpy as np
    >>> gains = np.array([[1.0, 1.2], [2.0, 2.1], [3.0, 3.3]])   # 3 candidates, 2 seeds
    >>> p = predicts(np.array([0.1, 0.2, 0.3]), gains, reps=200, seed=0)
    >>> p["spearman"], p["low"], p["high"], p["regret"]
    (1.0, 1.0, 1.0, 0.0)
    >>> predicts(np.array([0.3, 0.2, 0.1]), gains, reps=200, seed=0)["spearman"]
    -1.0
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["DEFAULT_REPS", "predicts", "resampled_means", "spearman", "spearman_many"]

DEFAULT_REPS = 2000
"""Bootstrap resamples of the seeds, by default."""


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation of ``x`` and ``y`` (ties share their mean rank).

    The Pearson correlation of the ranks; NaN when either vector is constant or has fewer
    than 2 entries (no ranking to compare).

    Example:
        >>> spearman(np.array([1.0, 2.0, 3.0]), np.array([10.0, 30.0, 20.0]))
        0.5
        >>> spearman(np.array([1.0, 1.0, 3.0]), np.array([1.0, 2.0, 3.0]))  # a tie
        0.866...
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of one length, got {x.shape} and {y.shape}")
    return float(spearman_many(x, y[:, None])[0])


def spearman_many(x: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Spearman's correlation of ``x`` (``(n,)``) with each column of ``ys`` (``(n, k)``).

    NaN for a column that is constant (or when ``x`` is), or when ``n < 2``.
    """
    x = np.asarray(x, dtype=float)
    ys = np.asarray(ys, dtype=float)
    if ys.ndim != 2 or ys.shape[0] != x.shape[0]:
        raise ValueError(f"ys must be (n, k) with n = len(x) = {x.shape[0]}, got {ys.shape}")
    if x.shape[0] < 2:
        return np.full(ys.shape[1], np.nan)
    rx = stats.rankdata(x)
    ry = stats.rankdata(ys, axis=0)
    dx = rx - rx.mean()
    dy = ry - ry.mean(axis=0, keepdims=True)
    num = dx @ dy
    den = np.sqrt((dx @ dx) * (dy * dy).sum(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return np.clip(rho, -1.0, 1.0)


def resampled_means(gains: np.ndarray, *, reps: int = DEFAULT_REPS, seed: int = 0
                    ) -> np.ndarray:
    """Each candidate's mean gain over seeds drawn with replacement: ``(n_candidates, reps)``.

    One draw of ``n_seeds`` seed indices per resample serves every candidate (the seeds are
    shared). NaN entries (no finished pair) are skipped; a candidate left with no seed in a
    resample gets NaN there.
    """
    gains = np.asarray(gains, dtype=float)
    if gains.ndim != 2 or gains.shape[1] == 0:
        raise ValueError(f"gains must be (n_candidates, n_seeds), got {gains.shape}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, gains.shape[1], size=(reps, gains.shape[1]))
    picked = gains[:, idx]  # (n_candidates, reps, n_seeds)
    count = np.sum(~np.isnan(picked), axis=-1)
    total = np.nansum(picked, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, total / np.where(count > 0, count, 1), np.nan)


def _mean_gains(gains: np.ndarray) -> np.ndarray:
    count = np.sum(~np.isnan(gains), axis=1)
    total = np.nansum(gains, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, total / np.where(count > 0, count, 1), np.nan)


def predicts(scores: np.ndarray, gains: np.ndarray, *, reps: int = DEFAULT_REPS,
             seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """How well ``scores`` (higher = predicted better) predict the candidates' mean gains.

    Args:
        scores: one probe score per candidate, ``(n_candidates,)``, all finite.
        gains: per-seed gains, ``(n_candidates, n_seeds)``, NaN where missing; every
            candidate needs at least one.
        reps: bootstrap resamples of the seeds.
        seed: seeds the resampling (the same seed gives the same CI).
        level: CI coverage.

    Returns:
        ``{"spearman", "low", "high", "valid_reps", "pick", "best", "regret",
        "regret_low", "regret_high", "regret_fraction", "mean_gains"}``: the rank
        correlation of the scores with the mean gains and its percentile bootstrap CI over
        the resamples where every candidate kept a seed and the gains were not all tied
        (``valid_reps`` of them); ``pick``, the index of the top-scored candidate (ties: the
        first); ``best``, that of the highest mean gain; ``regret``, the best mean gain minus
        the picked one's (0 when the probe picks the best) with its bootstrap CI (the pick
        held fixed, the best taken anew in each resample); ``regret_fraction``, regret over
        the best mean gain (``None`` when that is not positive: no candidate helps, so a
        fraction of it means nothing). Non-finite numbers are ``None``.

    Raises:
        ValueError: shapes that do not match, fewer than 2 candidates, a non-finite score or
            a candidate without any gain.
    """
    scores = np.asarray(scores, dtype=float)
    gains = np.asarray(gains, dtype=float)
    if scores.ndim != 1 or gains.ndim != 2 or gains.shape[0] != scores.shape[0]:
        raise ValueError(f"scores (n,) and gains (n, n_seeds) do not match: {scores.shape} "
                         f"and {gains.shape}")
    if scores.shape[0] < 2:
        raise ValueError("at least 2 candidates are needed to compare rankings")
    if not np.all(np.isfinite(scores)):
        raise ValueError("every score must be finite; leave unscored candidates out")
    means = _mean_gains(gains)
    if np.any(np.isnan(means)):
        raise ValueError("every candidate needs at least one finite gain")
    pick = int(np.argmax(scores))  # the first of tied top scores
    best = int(np.argmax(means))
    rho = spearman(scores, means)
    boot = resampled_means(gains, reps=reps, seed=seed)
    whole = ~np.any(np.isnan(boot), axis=0)
    rhos = spearman_many(scores, boot[:, whole])
    rhos = rhos[~np.isnan(rhos)]
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = (np.percentile(rhos, [tail, 100.0 - tail]) if rhos.size
                 else (math.nan, math.nan))
    regrets = boot[:, whole].max(axis=0) - boot[pick, whole]
    r_low, r_high = (np.percentile(regrets, [tail, 100.0 - tail]) if regrets.size
                     else (math.nan, math.nan))
    regret = float(means[best] - means[pick])
    return {
        "spearman": _num(rho), "low": _num(low), "high": _num(high),
        "valid_reps": int(rhos.size), "reps": int(reps), "level": level, "seed": seed,
        "pick": pick, "best": best, "regret": _num(regret),
        "regret_low": _num(r_low), "regret_high": _num(r_high),
        "regret_fraction": _num(regret / means[best]) if means[best] > 0 else None,
        "mean_gains": [_num(m) for m in means],
    }


def _num(x: Any) -> float | None:
    """A JSON-safe float rounded to 12 significant digits (NaN and infinities: ``None``)."""
    if x is None:
        return None
    x = float(x)
    return float(f"{x:.12g}") if math.isfinite(x) else None
