"""TensorBoard: one run per method and seed, and one aggregate run per method.

The layout under ``<out>/tb/`` (``tensorboard --logdir <out>/tb``):

- ``<method>/seed_<k>/``: one TensorBoard run per transfer run, written live by the run
  itself (:mod:`rltransfer.experiment.runner`): SB3's training scalars (``rollout/*``,
  ``train/*``, ``time/*``), what the method logs (``jsrl/h``, ...) and the evaluation curve,
  tag ``eval/mean_return`` (:data:`EVAL_TAG`), against environment steps. ``<method>`` is the
  label made folder-safe (:func:`method_folders`: ``partial[actor]`` -> ``partial_actor``).
- ``pretrain/seed_<k>/``: the source pretraining, the same way; ``pretrain/<name>/``: a
  named self-supervised source (``ssl/loss``).
- ``_aggregate/<method>/``: one run per method, tags ``aggregate/iqm``, ``aggregate/ci_low``
  and ``aggregate/ci_high`` (:data:`AGGREGATE_TAGS`): the IQM over finished seeds at each
  evaluation and its 95% stratified bootstrap CI. Every method has the same tags, so
  TensorBoard draws all methods in one chart per tag, each in its run's colour. Each of these
  runs also holds the custom-scalars layout (tag ``custom_scalars__config__``; TensorBoard
  merges identical ones): category "rltransfer: IQM over seeds, 95% CI" with a Margin chart
  of every method's band and a Multiline chart of every method's IQM, and category
  "rltransfer: runs" with a Multiline chart of ``eval/mean_return`` for every method and seed.

:func:`write_tensorboard_aggregate` writes the aggregates, replacing their earlier events.
It never touches a run's own events; a run that has none in its folder (a source reused from
the cache, a results folder copied without ``tb/``) gets its evaluation curve from
``curve.csv`` in an event file of the report's own (name ending in :data:`REPORT_SUFFIX`),
replaced at each rebuild and deleted with the run's events when the run is redone.

Events are written with the ``tensorboard`` package's protobufs and event file writer (no
torch, no TensorFlow).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.plugins.custom_scalar import layout_pb2, metadata
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from rltransfer import rundir
from rltransfer.report.results import Results, iqm_bands, load_results
from rltransfer.rundir import method_folders

EVAL_TAG = "eval/mean_return"
"""Tag of a run's evaluation curve (the one :mod:`rltransfer.training` logs live)."""

AGGREGATE_DIR = "_aggregate"
"""Folder under ``<out>/tb/`` holding one aggregate run per method (no method folder can be
named so: :func:`safe_name` strips leading underscores)."""

AGGREGATE_TAGS = ("aggregate/iqm", "aggregate/ci_low", "aggregate/ci_high")
"""Tags of every ``_aggregate/<method>`` run: IQM over seeds, 95% CI low and high."""

REPORT_SUFFIX = ".rltransfer-report"
"""Ending of the event files the report writes into a run's folder (only where the run
wrote none); the report replaces only these."""

_EVENTS = "events.out.tfevents.*"
_REPORT_EVENTS = f"{_EVENTS}{REPORT_SUFFIX}"
def _write_events(logdir: Path, events: Sequence[Any], *, suffix: str = "",
                  replace: str = _EVENTS) -> None:
    """Delete ``logdir``'s event files matching ``replace``, then write ``events`` to one
    new file (name ending in ``suffix``)."""
    logdir.mkdir(parents=True, exist_ok=True)
    for p in logdir.glob(replace):  # a rebuilt report replaces, never duplicates, its series
        p.unlink(missing_ok=True)
    writer = EventFileWriter(str(logdir), filename_suffix=suffix)
    try:
        for ev in events:
            writer.add_event(ev)
    finally:
        writer.close()


def _scalar_event(tag: str, step: float, value: float, wall_time: float) -> Any:
    """An ``Event`` holding one scalar summary."""
    return Event(
        wall_time=wall_time,
        step=int(step),
        summary=Summary(value=[Summary.Value(tag=tag, simple_value=float(value))]),
    )


def _layout_event(wall_time: float) -> Any:
    """The custom-scalars layout ``Event``: every method's band, every method's IQM, every
    run's evaluation return (one line or band per TensorBoard run, in its colour)."""
    iqm_tag, low_tag, high_tag = AGGREGATE_TAGS
    band = layout_pb2.Chart(
        title="every method: IQM over seeds and 95% CI",
        margin=layout_pb2.MarginChartContent(series=[
            layout_pb2.MarginChartContent.Series(value=iqm_tag, lower=low_tag, upper=high_tag)
        ]),
    )
    iqm = layout_pb2.Chart(
        title="every method: IQM over seeds",
        multiline=layout_pb2.MultilineChartContent(tag=[f"^{re.escape(iqm_tag)}$"]),
    )
    runs = layout_pb2.Chart(
        title="evaluation return: every method and seed",
        multiline=layout_pb2.MultilineChartContent(tag=[f"^{re.escape(EVAL_TAG)}$"]),
    )
    layout = layout_pb2.Layout(category=[
        layout_pb2.Category(title="rltransfer: IQM over seeds, 95% CI", chart=[band, iqm]),
        layout_pb2.Category(title="rltransfer: runs", chart=[runs]),
    ])
    tensor = TensorProto(
        dtype="DT_STRING",
        string_val=[layout.SerializeToString()],
        tensor_shape=TensorShapeProto(),
    )
    summary = Summary(value=[Summary.Value(
        tag=metadata.CONFIG_SUMMARY_TAG,
        tensor=tensor,
        metadata=SummaryMetadata.FromString(metadata.create_summary_metadata().SerializeToString()),
    )])
    return Event(wall_time=wall_time, step=0, summary=summary)


def _has_own_events(logdir: Path) -> bool:
    """Whether a run wrote events into ``logdir`` itself (not the report's copies)."""
    return any(not p.name.endswith(REPORT_SUFFIX) for p in logdir.glob(_EVENTS))


def write_tensorboard_aggregate(
    results: Results | str | os.PathLike[str], *, seed: int = 0, reps: int = 2000
) -> Path:
    """Write the TensorBoard aggregates under ``<out>/tb/`` (layout: the module docstring).

    One run per method, ``<out>/tb/_aggregate/<method>/``, with the IQM over its finished
    seeds and the 95% CI bounds, plus the custom-scalars layout; aggregates of methods no
    longer in the results are deleted. The runs' own events are never touched: a run whose
    folder has none gets its ``curve.csv`` as ``eval/mean_return`` in a report file instead.
    Rewriting replaces the earlier report files, never duplicates them.

    Args:
        results: a :class:`Results` or an experiment output folder.
        seed: bootstrap seed for the CI bands.
        reps: bootstrap replicates for the CI bands.

    Returns:
        ``<out>/tb``.
    """
    res = results if isinstance(results, Results) else load_results(results)
    tb = res.out_dir / rundir.TENSORBOARD
    declared = [str(m) for m in res.experiment.get("methods", [])]
    folders = method_folders([*declared, *res.curves,
                              *(r.method for r in res.runs if r.kind == "transfer")])

    for r in res.runs:
        curve = res.run_curves.get(r.run_id)
        if curve is None or r.kind not in ("transfer", "pretrain"):
            continue
        group = folders[r.method] if r.kind == "transfer" else "pretrain"
        logdir = tb / group / (f"seed_{r.seed}" if r.seed is not None else r.run_id)
        if _has_own_events(logdir):  # written live by the run: the curve is there
            for p in logdir.glob(_REPORT_EVENTS):  # a copy written before the run was redone
                p.unlink(missing_ok=True)
            continue
        walls = np.where(np.isfinite(curve.wall_time), curve.wall_time, 0.0)
        _write_events(logdir, [
            _scalar_event(EVAL_TAG, s, v, float(w))
            for s, v, w in zip(curve.steps, curve.returns, walls, strict=True)
        ], suffix=REPORT_SUFFIX, replace=_REPORT_EVENTS)

    now = time.time()
    agg = tb / AGGREGATE_DIR
    bands = iqm_bands(res, seed=seed, reps=reps)
    for label, series in bands.items():
        events = [_layout_event(now)]
        for tag, values in zip(AGGREGATE_TAGS, series, strict=True):
            events += [_scalar_event(tag, s, v, now)
                       for s, v in zip(res.steps, values, strict=True)]
        _write_events(agg / folders[label], events)
    keep = {folders[label] for label in bands}
    for stale in (agg.iterdir() if agg.is_dir() else ()):
        if stale.is_dir() and stale.name not in keep:  # a method no longer in the results
            shutil.rmtree(stale, ignore_errors=True)
    legacy = tb / "aggregate"  # the single aggregate run of the layout before #14
    if legacy.is_dir() and not any(p.is_dir() for p in legacy.iterdir()):
        shutil.rmtree(legacy, ignore_errors=True)
    return tb
