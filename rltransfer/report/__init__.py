"""Reports over an experiment's result files: report.md, curves.png, metrics.json, TensorBoard.

Reads the layout the experiment harness writes and nothing else (no stable-baselines3, no
torch), so a report can be rebuilt anywhere from a copied results folder::

    <out>/experiment.json
    <out>/runs/<run_id>/{config.json, curve.csv, done.json | error.txt}

Public API (re-exported from the package's modules):

- :func:`load_results` (:mod:`~rltransfer.report.results`): curves per method and seed, plus
  run statuses (finished, failed with an excerpt of the traceback, unfinished).
- :func:`build_report` (:mod:`~rltransfer.report.build`): writes ``report.md``
  (:mod:`~rltransfer.report.markdown`), ``curves.png`` (:mod:`~rltransfer.report.plots`) and
  ``metrics.json`` (and, by default, the TensorBoard aggregates); what ``rltransfer report
  DIR`` runs.
- :func:`table` (:mod:`~rltransfer.report.tables`): a compact plain-text table of a metrics
  dict, for terminals.
- :mod:`~rltransfer.report.prediction`: whether the probes of ``rltransfer rank`` predict
  the real gains of an experiment's candidate sources (``rank.json``, ``rank.md``; rebuilt
  by :func:`build_report` once ``rltransfer rank --experiment`` has written them).
- :func:`write_tensorboard_aggregate` (:mod:`~rltransfer.report.tensorboard`): one
  TensorBoard run per method under ``<out>/tb/_aggregate/``, beside the runs' own
  ``<out>/tb/<method>/seed_<k>/``; that module's docstring gives the layout.
"""

from __future__ import annotations

from rltransfer.report.build import ReportPaths, build_report
from rltransfer.report.results import Curve, Results, RunInfo, load_results
from rltransfer.report.tables import table
from rltransfer.report.tensorboard import (
    AGGREGATE_DIR,
    AGGREGATE_TAGS,
    EVAL_TAG,
    write_tensorboard_aggregate,
)
from rltransfer.rundir import method_folders, safe_name

__all__ = [
    "AGGREGATE_DIR",
    "AGGREGATE_TAGS",
    "Curve",
    "EVAL_TAG",
    "ReportPaths",
    "Results",
    "RunInfo",
    "build_report",
    "load_results",
    "method_folders",
    "safe_name",
    "table",
    "write_tensorboard_aggregate",
]
