"""The experiment harness: experiment files, plans of runs, backends, resume, reports.

One call answers "how much does transfer help on this pair, with which method?"::

    import rltransfer as rlt
    result = rlt.run("experiments/cartpole_demo.yaml", out="results/demo", workers=2)
    print(result.table())

- :mod:`~rltransfer.experiment.config`: the experiment file schema and its validation.
- :mod:`~rltransfer.experiment.plan`: runs with stable ids derived from their content.
- :mod:`~rltransfer.experiment.runner`: one run in one process, writing its folder.
- :mod:`~rltransfer.experiment.backends`: ``local`` (process pool) and ``ray``.
- :mod:`~rltransfer.experiment.driver`: scheduling, resume, failures, the report.

The command line: ``rltransfer run FILE --out DIR``, ``rltransfer report DIR``,
``rltransfer demo`` (see :mod:`rltransfer.experiment.cli`).
"""

from __future__ import annotations

from rltransfer.experiment.config import (
    Experiment,
    ExperimentConfig,
    ExperimentError,
    load_experiment,
)
from rltransfer.experiment.driver import ExperimentResult, FailedRun, run
from rltransfer.experiment.plan import Plan, RunSpec, make_plan

__all__ = [
    "Experiment",
    "ExperimentConfig",
    "ExperimentError",
    "ExperimentResult",
    "FailedRun",
    "Plan",
    "RunSpec",
    "load_experiment",
    "make_plan",
    "run",
]
