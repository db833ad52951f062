"""Building a report: metrics.json, curves.png, report.md and the TensorBoard aggregates.

:func:`build_report` is what ``rltransfer report DIR`` runs: it loads the results
(:mod:`~rltransfer.report.results`), computes the metrics (:func:`rltransfer.metrics.compute`),
and writes metrics.json, then curves.png (:mod:`~rltransfer.report.plots`), rank.json and
rank.md when ``rltransfer rank --experiment`` has written them before
(:mod:`~rltransfer.report.prediction`), report.md (:mod:`~rltransfer.report.markdown`) and
the TensorBoard aggregates (:mod:`~rltransfer.report.tensorboard`). Each file is replaced
atomically, and the same runs and bootstrap seed give the same bytes in report.md,
metrics.json, curves.png, rank.json and rank.md.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rltransfer import metrics as mt
from rltransfer._io import write_bytes_atomic
from rltransfer.report.markdown import render_markdown
from rltransfer.report.plots import plot_curves
from rltransfer.report.prediction import refresh_prediction
from rltransfer.report.results import Results, load_results
from rltransfer.report.tensorboard import write_tensorboard_aggregate


@dataclass(frozen=True)
class ReportPaths:
    """Files written by :func:`build_report`."""

    report_md: Path
    curves_png: Path
    metrics_json: Path
    tensorboard: Path | None = None
    """``<out>/tb`` when TensorBoard aggregates were written."""
    metrics: dict[str, Any] | None = None
    """The ``metrics`` of ``metrics.json``, as written (non-finite numbers as ``None``)."""


def _wall_times(res: Results) -> dict[str, Any]:
    """Run time summed over finished runs: in total, of pretraining, per method."""
    per_method: dict[str, float] = {}
    pretrain = 0.0
    for r in res.runs:
        if r.wall_time is None:
            continue
        if r.kind == "transfer":
            per_method[r.method] = per_method.get(r.method, 0.0) + r.wall_time
        else:
            pretrain += r.wall_time
    order = [*res.curves, *sorted(set(per_method) - set(res.curves))]
    per_method = {m: per_method[m] for m in order if m in per_method}
    total = pretrain + sum(per_method.values())
    return {"total": total, "pretrain": pretrain, "per_method": per_method}


def build_report(
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    reps: int = 2000,
    tensorboard: bool = True,
) -> ReportPaths:
    """Rebuild ``report.md``, ``curves.png`` and ``metrics.json`` from an experiment's results.

    This is what ``rltransfer report DIR`` runs. Safe to run while the experiment is still
    going (unfinished runs are listed, not counted). Files are replaced atomically.

    Threshold, budget (``steps``) and ``sustain`` (evaluations in a row for the time to
    threshold) come from experiment.json; ``sustain`` defaults to
    :data:`rltransfer.metrics.DEFAULT_SUSTAIN` for results written before it existed.

    Args:
        out_dir: the experiment output folder.
        seed: bootstrap seed (the same seed gives the same CIs).
        reps: bootstrap replicates.
        tensorboard: also write the TensorBoard aggregates (:func:`write_tensorboard_aggregate`).

    Returns:
        The paths written.
    """
    res = load_results(out_dir)
    exp = res.experiment
    threshold = exp.get("threshold")
    threshold = None if threshold is None else float(threshold)
    budget = exp.get("steps")
    baseline = str(exp.get("baseline", "scratch"))
    # Results written before the sustained definition have no "sustain": the default.
    sustain = int(exp.get("sustain", mt.DEFAULT_SUSTAIN))
    metrics = None
    if res.curves:
        metrics = mt.compute(
            res.curves,
            res.steps,
            threshold=threshold,
            budget=None if budget is None else float(budget),
            baseline=baseline,
            seed=seed,
            reps=reps,
            sustain=sustain,
        )
        for label, entry in metrics["methods"].items():
            entry["seeds"] = res.seeds[label]
    doc: dict[str, Any] = {
        "experiment": {
            k: exp.get(k)
            for k in ("name", "pair", "algo", "methods", "seeds", "steps", "eval", "threshold")
        }
        | {"baseline": baseline, "sustain": sustain},
        "metrics": metrics,
        "runs": [asdict(r) for r in res.runs],
        "notes": list(res.notes),
        "wall_time": _wall_times(res),
        "versions": exp.get("versions") or {},
    }
    out = res.out_dir
    text = json.dumps(doc, indent=2, allow_nan=False, default=_json_default) + "\n"
    paths = ReportPaths(out / "report.md", out / "curves.png", out / "metrics.json",
                        metrics=json.loads(text)["metrics"])
    write_bytes_atomic(paths.metrics_json, text.encode())
    plot_curves(res, paths.curves_png, seed=seed, reps=reps, threshold=threshold)
    prediction = _refresh_prediction(res)
    write_bytes_atomic(paths.report_md,
                       render_markdown(res, doc, prediction=prediction).encode("utf-8"))
    if tensorboard:
        tb = write_tensorboard_aggregate(res, seed=seed, reps=reps)
        paths = dataclasses.replace(paths, tensorboard=tb)
    return paths


def _refresh_prediction(res: Results) -> dict[str, Any] | None:
    """``rank.json`` and ``rank.md`` rebuilt from the stored probe table and the runs (when
    ``rltransfer rank --experiment`` wrote them), for report.md's section; ``{"error": ...}``
    when they cannot be (the old files are then left as they were)."""
    try:
        return refresh_prediction(res.out_dir, res=res)
    except (ValueError, KeyError, TypeError) as exc:  # PredictionError, a damaged rank.json
        return {"error": f"{type(exc).__name__}: {exc}"}


def _json_default(x: Any) -> Any:
    """numpy scalars and arrays and paths as JSON values (non-finite floats as null)."""
    if isinstance(x, np.generic):
        v = x.item()
        return None if isinstance(v, float) and not math.isfinite(v) else v
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serializable: {type(x).__name__}")
