"""TensorBoard export: every run's evaluation curve and the IQM bands, as event files.

Layout written by :func:`write_tensorboard_aggregate` (``tensorboard --logdir <out>/tb``):

- ``<out>/tb/<method>/seed_<k>/``, tag ``eval/return``: each transfer run's evaluation return
  against environment steps (finished or not), so methods sit side by side in the run list
  and seeds group under them. ``<method>`` is the label made folder-safe (:func:`safe_name`,
  e.g. ``partial[actor]`` -> ``partial_actor``).
- ``<out>/tb/pretrain/seed_<k>/``, tag ``eval/return``: source (pretrain) runs.
- ``<out>/tb/aggregate/``, tags ``aggregate/<method>/iqm``, ``aggregate/<method>/ci_low`` and
  ``aggregate/<method>/ci_high``: IQM over finished seeds at each evaluation and its 95%
  stratified bootstrap CI; plus the custom-scalars layout (tag ``custom_scalars__config__``):
  category "rltransfer: IQM over seeds, 95% CI" with one Margin chart per method (the band)
  and one Multiline chart of every method's IQM, and category "rltransfer: runs" with a
  Multiline chart of ``eval/return`` for every method and seed.

Events are written with the ``tensorboard`` package's protobufs and event file writer (no
torch, no TensorFlow).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.plugins.custom_scalar import layout_pb2, metadata
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from rltransfer.report.results import Results, iqm_bands, load_results

EVAL_TAG = "eval/return"
"""Tag of the per-run evaluation curves written under ``<out>/tb/<method>/seed_<k>/``."""

AGGREGATE_TAGS = (
    "aggregate/{method}/iqm",
    "aggregate/{method}/ci_low",
    "aggregate/{method}/ci_high",
)
"""Tags (formatted with the folder-safe method name) written under ``<out>/tb/aggregate/``."""

_RESERVED = {"aggregate", "pretrain"}
"""Folder names under ``<out>/tb/`` that a method's folder must not take."""


def safe_name(label: str) -> str:
    """Folder-safe form of a method label: ``partial[actor]`` -> ``partial_actor``."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_.") or "method"
    return f"{name}_method" if name in _RESERVED else name


def _unique_names(labels: Iterable[str]) -> dict[str, str]:
    """Label -> :func:`safe_name`, made unique by a ``_2``, ``_3``... suffix."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for label in labels:
        name, k = safe_name(label), 2
        candidate = name
        while candidate in used:
            candidate, k = f"{name}_{k}", k + 1
        used.add(candidate)
        names[label] = candidate
    return names


def _clear_events(logdir: Path) -> None:
    """Delete the event files in ``logdir`` (not those of its subfolders)."""
    for p in logdir.glob("events.out.tfevents.*"):
        p.unlink()


def _write_events(logdir: Path, events: Sequence[Any]) -> None:
    """Replace ``logdir``'s event files by one file holding ``events``."""
    logdir.mkdir(parents=True, exist_ok=True)
    _clear_events(logdir)  # a rebuilt report replaces, never duplicates, its series
    writer = EventFileWriter(str(logdir))
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


def _layout_event(names: Mapping[str, str], wall_time: float) -> Any:
    """The custom-scalars layout ``Event``: a band chart per method, IQM and runs charts."""
    iqm_tag, low_tag, high_tag = AGGREGATE_TAGS
    bands = [
        layout_pb2.Chart(
            title=f"{label}: IQM and 95% CI",
            margin=layout_pb2.MarginChartContent(
                series=[
                    layout_pb2.MarginChartContent.Series(
                        value=iqm_tag.format(method=name),
                        lower=low_tag.format(method=name),
                        upper=high_tag.format(method=name),
                    )
                ]
            ),
        )
        for label, name in names.items()
    ]
    bands.append(
        layout_pb2.Chart(
            title="all methods: IQM over seeds",
            multiline=layout_pb2.MultilineChartContent(tag=[r"^aggregate/.*/iqm$"]),
        )
    )
    runs = layout_pb2.Chart(
        title="evaluation return: every method and seed",
        multiline=layout_pb2.MultilineChartContent(tag=[f"^{re.escape(EVAL_TAG)}$"]),
    )
    layout = layout_pb2.Layout(
        category=[
            layout_pb2.Category(title="rltransfer: IQM over seeds, 95% CI", chart=bands),
            layout_pb2.Category(title="rltransfer: runs", chart=[runs]),
        ]
    )
    tensor = TensorProto(
        dtype="DT_STRING",
        string_val=[layout.SerializeToString()],
        tensor_shape=TensorShapeProto(),
    )
    summary = Summary(
        value=[
            Summary.Value(
                tag=metadata.CONFIG_SUMMARY_TAG,
                tensor=tensor,
                metadata=SummaryMetadata.FromString(
                    metadata.create_summary_metadata().SerializeToString()
                ),
            )
        ]
    )
    return Event(wall_time=wall_time, step=0, summary=summary)


def write_tensorboard_aggregate(
    results: Results | str | os.PathLike[str], *, seed: int = 0, reps: int = 2000
) -> Path:
    """Write TensorBoard events under ``<out>/tb/`` (see the module docstring for the layout).

    Per-run copies of every transfer run's curve (``<out>/tb/<method>/seed_<k>/``, tag
    ``eval/return``), pretrain runs under ``<out>/tb/pretrain/seed_<k>/``, and in
    ``<out>/tb/aggregate/`` the IQM over finished seeds with its 95% CI bounds per method plus
    a custom-scalars layout with one Margin (band) chart per method. Rewriting replaces the
    previous event files in those folders; ``runs/<id>/tb`` is never touched.

    Args:
        results: a :class:`Results` or an experiment output folder.
        seed, reps: bootstrap seed and replicates for the CI bands.

    Returns:
        ``<out>/tb``.
    """
    res = results if isinstance(results, Results) else load_results(results)
    tb = res.out_dir / "tb"
    transfer_labels = [r.method for r in res.runs if r.kind == "transfer"]
    labels = list(dict.fromkeys([*res.curves, *transfer_labels]))
    names = _unique_names(labels)

    used_dirs: set[Path] = set()
    for r in res.runs:
        curve = res.run_curves.get(r.run_id)
        if curve is None:
            continue
        group = names[r.method] if r.kind == "transfer" else "pretrain"
        leaf = f"seed_{r.seed}" if r.seed is not None else r.run_id
        logdir = tb / group / leaf
        if logdir in used_dirs:
            logdir = tb / group / f"{leaf}_{r.run_id}"
        used_dirs.add(logdir)
        walls = np.where(np.isfinite(curve.wall_time), curve.wall_time, 0.0)
        _write_events(
            logdir,
            [
                _scalar_event(EVAL_TAG, s, v, float(w))
                for s, v, w in zip(curve.steps, curve.returns, walls, strict=True)
            ],
        )

    now = time.time()
    events = [_layout_event({k: names[k] for k in res.curves}, now)]
    iqm_tag, low_tag, high_tag = AGGREGATE_TAGS
    for label, (center, low, high) in iqm_bands(res, seed=seed, reps=reps).items():
        name = names[label]
        for tag, series in ((iqm_tag, center), (low_tag, low), (high_tag, high)):
            events += [
                _scalar_event(tag.format(method=name), s, v, now)
                for s, v in zip(res.steps, series, strict=True)
            ]
    _write_events(tb / "aggregate", events)
    return tb
