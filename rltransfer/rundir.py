"""The run folder: the one place that knows its file names and formats (torch-free).

An experiment folder holds ``experiment.json``, ``runs/<run_id>/`` and ``tb/``. Every run of
an experiment (and ``rltransfer transfer --out``) writes one folder::

    config.json   what defines the run (written first)
    curve.csv     the evaluation curve, one row per evaluation, appended as training goes
    checkpoint/   the final agent (written atomically by ``save_agent``)
    loss.csv      self-supervised sources only: the loss of every gradient step
    done.json     written last and atomically: the only proof that the run finished
    error.txt     the traceback, if the run raised (then no done.json)

The runner writes through this module; the driver, the progress display and the report read
through it. Nothing else spells these names.

>>> import tempfile
>>> run = Path(tempfile.mkdtemp())
>>> run_status(run)
'unfinished'
>>> append_curve(run / CURVE, {"step": 0, "mean_return": 9.5, "std_return": 0.5,
...                            "episodes": 10, "wall_time": 0.1})
>>> append_curve(run / CURVE, {"step": 500, "mean_return": 20.0, "std_return": 1.0,
...                            "episodes": 10, "wall_time": 2.0})
>>> last_step(run / CURVE)
500
>>> read_curve(run / CURVE)["mean_return"].tolist()
[9.5, 20.0]
>>> write_done(run, {"wall_time": 2.5})
>>> run_status(run), read_done(run)["wall_time"]
('done', 2.5)
"""

from __future__ import annotations

import csv
import json
import os
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rltransfer._io import disk_full_names, write_json_atomic, write_text_atomic

__all__ = ["CHECKPOINT", "CONFIG", "CURVE", "CURVE_HEADER", "CURVE_OPTIONAL", "DONE", "ERROR",
           "EXPERIMENT", "LOSS", "RUNS", "TENSORBOARD", "method_folders", "safe_name",
           "RunStatus", "append_curve", "is_done", "last_step", "read_config", "read_curve",
           "read_done", "read_error", "run_status", "write_config", "write_done",
           "write_error"]

EXPERIMENT = "experiment.json"
"""In the experiment folder: the plan and versions, written before any run."""
RUNS = "runs"
"""In the experiment folder: one run folder per run id."""
TENSORBOARD = "tb"
"""In the experiment folder: the TensorBoard logs."""

CONFIG = "config.json"
CURVE = "curve.csv"
CHECKPOINT = "checkpoint"
LOSS = "loss.csv"
DONE = "done.json"
ERROR = "error.txt"

CURVE_HEADER = ("step", "mean_return", "std_return", "episodes", "wall_time")
"""The columns of ``curve.csv``, in order."""
CURVE_OPTIONAL = ("forward_velocity",)
"""Columns a curve has only where they mean something, after the others: ``forward_velocity``,
the mean forward velocity of the evaluation episodes (MuJoCo locomotion envs)."""

RunStatus = Literal["done", "failed", "unfinished"]
"""A run's state on disk: ``error.txt`` written (failed), ``done.json`` written, or neither."""


_RESERVED = {"aggregate", "pretrain"}
"""Folder names under ``<out>/tb/`` that a method's folder must not take."""


def safe_name(label: str) -> str:
    """Folder-safe form of a method label: ``partial[actor]`` -> ``partial_actor``."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_.") or "method"
    return f"{name}_method" if name in _RESERVED else name


def method_folders(labels: Iterable[str]) -> dict[str, str]:
    """Label -> its folder under ``<out>/tb/``: :func:`safe_name`, made unique in the order
    given by a ``_2``, ``_3``... suffix (the plan passes the experiment's methods in order,
    so the report, reading them from ``experiment.json``, finds the same folders)."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for label in labels:
        if label in names:
            continue
        name, k = safe_name(label), 2
        candidate = name
        while candidate in used:
            candidate, k = f"{name}_{k}", k + 1
        used.add(candidate)
        names[label] = candidate
    return names


def is_done(run_dir: str | os.PathLike) -> bool:
    """Whether ``run_dir`` holds a finished run (its ``done.json``)."""
    return (Path(run_dir) / DONE).is_file()


def run_status(run_dir: str | os.PathLike) -> RunStatus:
    """``failed`` if ``error.txt`` exists, else ``done`` if ``done.json`` does, else
    ``unfinished`` (still running, or interrupted)."""
    run_dir = Path(run_dir)
    if (run_dir / ERROR).is_file():
        return "failed"
    return "done" if (run_dir / DONE).is_file() else "unfinished"


def _read_json(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def write_config(run_dir: str | os.PathLike, config: Mapping[str, Any]) -> None:
    """Write ``config.json`` (atomically)."""
    write_json_atomic(Path(run_dir) / CONFIG, config)


def read_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's ``config.json``."""
    return _read_json(Path(run_dir) / CONFIG)


def write_done(run_dir: str | os.PathLike, info: Mapping[str, Any]) -> None:
    """Mark the run finished: ``done.json`` with ``info`` and the time it finished."""
    write_json_atomic(Path(run_dir) / DONE, {
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **info})


def read_done(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's ``done.json``."""
    return _read_json(Path(run_dir) / DONE)


def write_error(run_dir: str | os.PathLike, traceback_text: str) -> None:
    """Mark the run failed: ``error.txt`` with the traceback, and no ``done.json``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / DONE).unlink(missing_ok=True)
    write_text_atomic(run_dir / ERROR, traceback_text)


def read_error(run_dir: str | os.PathLike) -> str:
    """The traceback in ``error.txt``."""
    return (Path(run_dir) / ERROR).read_text(encoding="utf-8", errors="replace")


def append_curve(path: str | os.PathLike, row: Mapping[str, Any]) -> None:
    """Append one evaluation row to a curve CSV (the header first if the file is new).

    A new file's header is :data:`CURVE_HEADER` plus the :data:`CURVE_OPTIONAL` columns the
    row has; rows appended to an existing file follow that file's header (a resumed run
    keeps its file's format; a column the row lacks is left empty).
    """
    path = Path(path)
    with disk_full_names(path):
        new = not path.exists()
        if new:
            path.parent.mkdir(parents=True, exist_ok=True)
            header = [*CURVE_HEADER, *(k for k in CURVE_OPTIONAL if k in row)]
        else:
            with open(path, encoding="utf-8", newline="") as fh:
                header = next(csv.reader(fh), []) or list(CURVE_HEADER)
        with open(path, "a", newline="") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(header)
            writer.writerow([row.get(k, "") for k in header])


def read_curve(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A curve CSV as arrays keyed by column, in step order (optional columns when the file
    has them).

    Rows cut short (a process killed mid-write) are ignored; a step written twice (a resumed
    run that appended it again) keeps its last row.
    """
    rows: list[list[float]] = []
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        columns = [*CURVE_HEADER, *(k for k in CURVE_OPTIONAL
                                    if k in (reader.fieldnames or []))]
        for rec in reader:
            if not rec.get("step") or not rec.get("mean_return"):
                continue
            try:
                rows.append([float(rec.get(k) or "nan") for k in columns])
            except ValueError:
                continue
    if not rows:
        return {k: np.zeros(0) for k in columns}
    arr = np.asarray(rows, dtype=float)
    _, last = np.unique(arr[::-1, 0], return_index=True)
    arr = arr[::-1][last]  # np.unique sorts by step
    return {k: arr[:, i] for i, k in enumerate(columns)}


def last_step(path: str | os.PathLike) -> int:
    """The step of the last complete row of a curve CSV (0 if none); reads only its tail."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(size - 512, 0))
            tail = fh.read().decode("utf-8", "replace")
    except OSError:
        return 0
    lines = [ln for ln in tail.split("\n")[:-1] if ln and ln[0].isdigit()]
    if not lines:
        return 0
    try:
        return int(float(lines[-1].split(",", 1)[0]))
    except ValueError:
        return 0
