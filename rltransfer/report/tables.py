"""Number formatting and the plain-text table of a metrics dict, for terminals.

The ``fmt_*`` helpers turn numbers and ``{"iqm", "low", "high"}`` intervals of
:func:`rltransfer.metrics.compute`'s dict into short strings (report.md uses them too);
:func:`table` lays a metrics dict out as one row per method.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def fmt_number(x: float | None) -> str:
    """A number at a readable precision (``1,234``, ``123``, ``12.3``, ``1.23``), or ``n/a``."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_ci(d: Mapping[str, Any] | None, key: str = "iqm") -> str:
    """``12.3 [10.1, 14.5]``: ``d[key]`` and its CI ``d["low"]``, ``d["high"]`` when it has one."""
    if not d or d.get(key) is None:
        return "n/a"
    if d.get("low") is None or d.get("high") is None:
        return fmt_number(d[key])
    return f"{fmt_number(d[key])} [{fmt_number(d['low'])}, {fmt_number(d['high'])}]"


def fmt_signed(d: Mapping[str, Any] | None) -> str:
    """:func:`fmt_ci` of a difference, with a ``+`` in front of a non-negative IQM."""
    if not d or d.get("iqm") is None:
        return "n/a"
    s = fmt_ci(d)
    return s if d["iqm"] < 0 else "+" + s


def metrics_of(metrics: Mapping[str, Any]) -> Mapping[str, Any]:
    """Accept either :func:`rltransfer.metrics.compute`'s dict or a metrics.json dict."""
    if "methods" in metrics:
        return metrics
    inner = metrics.get("metrics")
    if isinstance(inner, Mapping) and "methods" in inner:
        return inner
    raise ValueError("not a metrics dict: expected a 'methods' key (or 'metrics.methods')")


SPEEDUP_MARKS = {"lower_bound": "≥ ", "upper_bound": "≤ "}
"""How a speed-up that is a bound is marked (``≥ 1.2× [1.0, 1.4]``): its ``kind``."""


def fmt_speedup(d: Mapping[str, Any] | None) -> str:
    """``3.2× [2.1, 5.0]``: a time-to-threshold speed-up with its CI, marked by its ``kind``:
    ``≥`` a lower bound, ``≤`` an upper bound, ``at step 0 (≥ 15×)`` for a method that holds
    the threshold from step 0, ``not measured`` with bounds on both sides.

    Example:
        >>> fmt_speedup({"value": 3.2, "low": 2.1, "high": 5.0, "kind": "estimate"})
        '3.2× [2.1, 5.0]'
        >>> fmt_speedup({"value": 15.0, "low": 12.0, "high": 19.7, "kind": "at_step_0",
        ...              "bound": 15.0})
        'at step 0 (≥ 15.0×)'
    """

    def f(x: float) -> str:
        if not math.isfinite(x):
            return "n/a"
        return f"{x:.2f}" if abs(x) < 1 else (f"{x:.1f}" if abs(x) < 100 else fmt_number(x))

    kind = (d or {}).get("kind")
    if kind == "not_measured":
        return "not measured"
    if kind == "at_step_0":
        bound = (d or {}).get("bound")
        return "at step 0" + (f" (≥ {f(bound)}×)" if bound is not None else "")
    if not d or d.get("value") is None:
        return "n/a"
    mark = SPEEDUP_MARKS.get(str(kind), "")
    if d.get("low") is None or d.get("high") is None:
        return f"{mark}{f(d['value'])}×"
    return f"{mark}{f(d['value'])}× [{f(d['low'])}, {f(d['high'])}]"


def censored(entry: Mapping[str, Any]) -> tuple[int, int]:
    """A method entry's seeds whose time to threshold was censored at the budget, and its
    seeds: ``(2, 5)``."""
    t = entry.get("metrics", {}).get("time_to_threshold") or {}
    return t.get("censored", 0), entry.get("n_seeds", 0)


def fmt_ttt(entry: Mapping[str, Any]) -> str:
    """A method entry's time to threshold with its CI and how many seeds were censored."""
    t = entry["metrics"].get("time_to_threshold")
    if t is None:
        return "n/a"
    s = fmt_ci(t)
    k, n = censored(entry)
    if k:
        s += f" ({k}/{n} censored)"
    return s


def fmt_duration(seconds: float) -> str:
    """``12.3 s``, ``4.5 min`` or ``1.25 h``."""
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def table(metrics: Mapping[str, Any]) -> str:
    """A compact plain-text table for a terminal: one row per method.

    Values are IQM over seeds with the 95% CI in brackets; ``dAUC`` is the IQM difference
    method minus baseline; ``ratio`` the transfer ratio; ``TTT`` the sustained time to
    threshold; ``speed-up`` the baseline's time to threshold over the method's (higher is
    better); ``P(imp)`` the probability of improvement on AUC; ``verdict`` from the method's
    own interval of the AUC difference, ``family-wise`` after Holm's procedure over all the
    experiment's methods.

    Args:
        metrics: the dict returned by :func:`rltransfer.metrics.compute`, or a loaded
            metrics.json.

    Example:
        >>> import numpy as np
        >>> from rltransfer.metrics import compute
        >>> rng = np.random.default_rng(0)
        >>> curves = {"scratch": np.linspace(10, 300, 4) + rng.normal(0, 5, (5, 4)),
        ...           "finetune": np.linspace(200, 500, 4) + rng.normal(0, 5, (5, 4))}
        >>> print(table(compute(curves, np.array([0, 100, 200, 300]), reps=200)))
        method    n  jumpstart ... verdict   family-wise
        --------  -  ...
        scratch   5  ... baseline  -
        finetune  5  ... positive  positive
    """
    m = metrics_of(metrics)
    base = m["baseline"]
    header = [
        "method",
        "n",
        "jumpstart",
        "final",
        "AUC",
        "dAUC",
        "ratio",
        "TTT",
        "speed-up",
        "P(imp)",
        "verdict",
        "family-wise",
    ]
    rows = [header]
    for label, e in m["methods"].items():
        is_base = label == base
        rows.append(
            [
                label,
                str(e["n_seeds"]),
                fmt_ci(e["metrics"]["jumpstart"]),
                fmt_ci(e["metrics"]["final_return"]),
                fmt_ci(e["metrics"]["auc"]),
                "-" if is_base else fmt_signed(e.get("difference", {}).get("auc")),
                "-" if is_base else fmt_ci(e.get("transfer_ratio"), "value"),
                fmt_ttt(e),
                "-" if is_base else fmt_speedup(e.get("time_to_threshold_speedup")),
                "-" if is_base else fmt_ci(e.get("probability_of_improvement"), "value"),
                "baseline" if is_base else e.get("verdict", "n/a"),
                "-" if is_base else (e.get("verdict_holm") or "n/a"),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
