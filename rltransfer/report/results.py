"""Loading an experiment's result files: run statuses, curves, configs.

Reads the layout the experiment harness writes and nothing else::

    <out>/experiment.json
    <out>/runs/<run_id>/{config.json, curve.csv, done.json | error.txt}

:func:`load_results` gives a :class:`Results`: each method's finished curves cut to the
evaluation steps they share (what :func:`rltransfer.metrics.compute` takes), and every run
with its status (finished, failed with an excerpt of the traceback, unfinished).
:func:`iqm_bands` gives the per-evaluation IQM with its CI band that the plot and the
TensorBoard aggregate draw.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rltransfer import metrics as mt
from rltransfer import rundir
from rltransfer.metrics.bootstrap import Backend
from rltransfer.rundir import RunStatus

CURVE_BACKEND: Backend = "builtin"
"""Bootstrap backend of the per-evaluation CI bands (plot and TensorBoard aggregate): the
vectorized re-implementation in :mod:`rltransfer.metrics`, which draws the same resamples as
rliable and gives the same numbers (tests compare them), but needs one call per curve instead
of one rliable call per evaluation. The table's intervals use rliable itself."""


@dataclass(frozen=True)
class RunInfo:
    """One run folder, as found on disk."""

    run_id: str
    kind: str
    """"pretrain" or "transfer" (only transfer runs enter the metrics)."""
    method: str
    seed: int | None
    status: RunStatus
    wall_time: float | None = None
    """Seconds, from done.json (finished runs only)."""
    error: str | None = None
    """First and last lines of error.txt (failed runs only)."""
    n_evals: int = 0


@dataclass(frozen=True)
class Curve:
    """One run's evaluation curve, as read from curve.csv."""

    steps: np.ndarray
    returns: np.ndarray
    wall_time: np.ndarray
    forward_velocity: np.ndarray | None = None
    """Mean forward velocity per evaluation (MuJoCo locomotion envs), else ``None``."""


@dataclass(frozen=True)
class Results:
    """An experiment's results, ready for :func:`rltransfer.metrics.compute`."""

    out_dir: Path
    experiment: dict[str, Any]
    steps: np.ndarray
    """Evaluation steps common to every finished transfer run, ``(n_evals,)``."""
    curves: dict[str, np.ndarray]
    """Method label -> evaluation returns of its finished transfer runs, ``(n_seeds, n_evals)``."""
    seeds: dict[str, list[int | None]]
    """Method label -> the seed of each row of ``curves[label]``."""
    runs: list[RunInfo]
    run_curves: dict[str, Curve] = field(default_factory=dict)
    """Run id -> its untruncated curve, for every run that has a curve.csv (any status)."""
    run_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Run id -> its config.json, for every run listed in ``runs``."""
    run_done: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Run id -> its done.json, for every finished run."""
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[RunInfo]:
        """Runs that wrote an error.txt."""
        return [r for r in self.runs if r.status == "failed"]

    @property
    def unfinished(self) -> list[RunInfo]:
        """Runs with neither done.json nor error.txt (still running, or interrupted)."""
        return [r for r in self.runs if r.status == "unfinished"]


def _read_json(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def _read_curve(path: Path) -> Curve:
    c = rundir.read_curve(path)
    return Curve(c["step"], c["mean_return"], c["wall_time"], c.get("forward_velocity"))


def _error_excerpt(text: str, head: int = 1, tail: int = 3) -> str:
    lines = [ln.rstrip() for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) <= head + tail:
        return "\n".join(lines)
    return "\n".join([*lines[:head], "...", *lines[-tail:]])


def _source_label(name: str) -> str:
    """A source run's label from its name in experiment.json: ``pretrain`` (``agent``),
    ``pretrain, seed 3`` (``agent/seed_3``, a source per transfer seed), ``source:<name>``."""
    if name == "agent":
        return "pretrain"
    if name.startswith("agent/seed_"):
        return f"pretrain, seed {name.removeprefix('agent/seed_')}"
    return f"source:{name}"


def load_results(out_dir: str | os.PathLike[str]) -> Results:
    """Read an experiment output folder.

    Finished transfer runs (``done.json`` present) give the curves; their curves are cut to
    the evaluation steps they all share (noted in ``Results.notes`` when that drops any).
    Runs with ``error.txt`` are listed as failed with an excerpt of the traceback, runs with
    neither file as unfinished.

    Args:
        out_dir: the experiment output folder (holding ``experiment.json`` and ``runs/``).

    Raises:
        FileNotFoundError: when ``experiment.json`` is missing.
    """
    out = Path(out_dir)
    exp_path = out / rundir.EXPERIMENT
    if not exp_path.is_file():
        raise FileNotFoundError(f"{exp_path} not found: is {out} an experiment output folder?")
    experiment = _read_json(exp_path)
    notes: list[str] = []
    runs: list[RunInfo] = []
    run_curves: dict[str, Curve] = {}
    run_configs: dict[str, dict[str, Any]] = {}
    run_done: dict[str, dict[str, Any]] = {}
    finished: dict[str, list[tuple[int | None, str]]] = {}

    # a source run may have been made for another experiment (the cache is shared by
    # content): its label here is the one this experiment gives it, not its config's
    source_labels = {str(s.get("run_id")): _source_label(name)
                     for name, s in (experiment.get("sources") or {}).items()
                     if isinstance(s, dict)}
    run_dirs = sorted(p for p in (out / rundir.RUNS).glob("*") if p.is_dir())
    for rd in run_dirs:
        if not (rd / rundir.CONFIG).is_file():
            notes.append(f"runs/{rd.name} has no {rundir.CONFIG}: skipped.")
            continue
        cfg = rundir.read_config(rd)
        run_id = str(cfg.get("run_id", rd.name))
        run_configs[run_id] = cfg
        curve = _read_curve(rd / rundir.CURVE) if (rd / rundir.CURVE).is_file() else None
        if curve is not None and curve.steps.size:
            run_curves[run_id] = curve
        status: RunStatus = rundir.run_status(rd)
        wall, error = None, None
        if status == "failed":
            error = _error_excerpt(rundir.read_error(rd))
        elif status == "done":
            run_done[run_id] = rundir.read_done(rd)
            wall = run_done[run_id].get("wall_time")
            wall = None if wall is None else float(wall)
        seed = cfg.get("seed")
        info = RunInfo(
            run_id=run_id,
            kind=str(cfg.get("kind", "transfer")),
            method=source_labels.get(run_id, str(cfg.get("method", "?"))),
            seed=None if seed is None else int(seed),
            status=status,
            wall_time=wall,
            error=error,
            n_evals=0 if curve is None else int(curve.steps.size),
        )
        runs.append(info)
        if info.kind == "transfer" and status == "done":
            if run_id not in run_curves:
                notes.append(f"run {run_id} is finished but has no curve: skipped.")
                continue
            finished.setdefault(info.method, []).append((info.seed, run_id))

    # Method order: as declared in experiment.json, then any others alphabetically.
    declared = [str(m) for m in experiment.get("methods", [])]
    order = [m for m in declared if m in finished] + sorted(set(finished) - set(declared))

    steps = np.zeros(0)
    curves: dict[str, np.ndarray] = {}
    seeds: dict[str, list[int | None]] = {}
    if finished:
        chosen: dict[str, list[tuple[int | None, str]]] = {}
        for m in order:
            kept: list[tuple[int | None, str]] = []
            seen: dict[int, str] = {}
            for s, rid in sorted(finished[m], key=lambda t: (t[0] is None, t[0] or 0, t[1])):
                if s is not None and s in seen:
                    notes.append(f"{m}: two finished runs for seed {s}; kept {seen[s]}.")
                    continue
                if s is not None:
                    seen[s] = rid
                kept.append((s, rid))
            chosen[m] = kept
        all_ids = [rid for m in order for _, rid in chosen[m]]
        common = set(run_curves[all_ids[0]].steps.tolist())
        for rid in all_ids[1:]:
            common &= set(run_curves[rid].steps.tolist())
        steps = np.array(sorted(common), dtype=float)
        longest = max(run_curves[rid].steps.size for rid in all_ids)
        if steps.size < longest:
            notes.append(
                f"curves differ in their evaluation steps: all metrics use the {steps.size} "
                f"evaluations every finished run shares"
                + (f" (steps {steps[0]:.0f} to {steps[-1]:.0f})." if steps.size else ".")
            )
        if steps.size == 0:
            notes.append("finished runs share no evaluation step: no metrics.")
        else:
            if steps[0] != 0:
                notes.append(f"the first common evaluation is at step {steps[0]:.0f}, not 0.")
            for m in order:
                rows = []
                for _, rid in chosen[m]:
                    c = run_curves[rid]
                    rows.append(c.returns[np.isin(c.steps, steps)])
                curves[m] = np.vstack(rows)
                seeds[m] = [s for s, _ in chosen[m]]

    return Results(
        out_dir=out,
        experiment=experiment,
        steps=steps,
        curves=curves,
        seeds=seeds,
        runs=runs,
        run_curves=run_curves,
        run_configs=run_configs,
        run_done=run_done,
        notes=notes,
    )


def iqm_bands(
    res: Results, *, seed: int, reps: int
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Method label -> ``(iqm, low, high)`` over its finished seeds at each of ``res.steps``.

    The 95% stratified bootstrap CI of the IQM at each evaluation
    (:func:`rltransfer.metrics.iqm_curve` on :data:`CURVE_BACKEND`), in ``res.curves`` order.

    Args:
        res: the loaded results.
        seed, reps: bootstrap seed and replicates.
    """
    return {
        label: mt.iqm_curve(returns, reps=reps, seed=seed, backend=CURVE_BACKEND)
        for label, returns in res.curves.items()
    }
