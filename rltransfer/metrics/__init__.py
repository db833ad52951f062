"""Transfer metrics over learning curves, aggregated over seeds with bootstrap CIs.

Pure functions over numpy arrays, in the style of rliable: no files, no hidden state, no
stable-baselines3 and no torch, so a report can be rebuilt anywhere. Three modules, whose
public API this package re-exports:

- :mod:`rltransfer.metrics.per_run`: one number per learning curve.
- :mod:`rltransfer.metrics.bootstrap`: IQM and stratified bootstrap CIs over seeds.
- :mod:`rltransfer.metrics.compare`: every method against the baseline, with verdicts.

and one more, :mod:`rltransfer.metrics.prediction`: whether a score predicts a measured gain
(Spearman's rank correlation with a bootstrap CI over seeds, the regret of the top pick),
which judges the probes of ``rltransfer rank``.

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

from rltransfer.metrics.bootstrap import bootstrap_ci, iqm, iqm_curve, rliable_available
from rltransfer.metrics.compare import (
    MIN_SEEDS_FOR_VERDICT,
    PRIMARY_METRIC,
    Verdict,
    compute,
    verdict,
)
from rltransfer.metrics.per_run import (
    DEFAULT_FINAL_K,
    DEFAULT_SUSTAIN,
    HIGHER_IS_BETTER,
    METRICS,
    auc,
    curve_dip,
    encoder_collapsed,
    final_return,
    jumpstart,
    per_run_metrics,
    time_to_threshold,
)

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
    "curve_dip",
    "encoder_collapsed",
    "final_return",
    "iqm",
    "iqm_curve",
    "jumpstart",
    "per_run_metrics",
    "rliable_available",
    "time_to_threshold",
    "verdict",
]
