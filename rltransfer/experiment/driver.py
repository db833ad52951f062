"""Running an experiment: plan, skip what is finished, schedule the rest, report.

Order: the source runs (the source agent's pretraining, named self-supervised sources) and
every run that needs none of them (``scratch``) are submitted at once; the runs that start from
a source are submitted as soon as that source finishes. If a source fails, the runs that start
from it are recorded as failed (their ``error.txt`` says why) and the others go on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rltransfer import rundir
from rltransfer._io import (
    HAVE_FLOCK,
    DiskFullError,
    flock,
    remove_abandoned_temps,
    write_json_atomic,
)
from rltransfer._versions import versions
from rltransfer.experiment.backends import make_backend
from rltransfer.experiment.config import Experiment, load_experiment, resolve_experiment
from rltransfer.experiment.plan import Plan, RunSpec, make_plan
from rltransfer.experiment.progress import Progress
from rltransfer.experiment.runner import clear_run
from rltransfer.rundir import ERROR, is_done

__all__ = ["ExperimentBusyError", "ExperimentResult", "FailedRun", "RunState", "held_by",
           "plan_states", "run"]

STALE = "runs.stale"
AGGREGATE_EVERY_S = 30.0


@dataclasses.dataclass(frozen=True)
class FailedRun:
    """A run that raised: its id, method, seed and the last line of its error."""

    run_id: str
    kind: str
    method: str
    seed: int
    error: str

    def __str__(self) -> str:
        return f"{self.run_id} ({self.method}, seed {self.seed}): {self.error}"


@dataclasses.dataclass
class ExperimentResult:
    """What :func:`run` did: the output folder, run counts, failures, metrics."""

    out: Path
    plan: Plan
    skipped: int
    """Runs already finished before this call (not executed again)."""
    executed: int
    """Runs executed by this call (finished or failed)."""
    failed: list[FailedRun]
    wall_time: float
    metrics: dict[str, Any] | None = None
    """The ``metrics`` of metrics.json (``None`` if the report could not be built)."""
    report: Any = None
    """The paths the report wrote (:class:`rltransfer.report.ReportPaths`), if any."""
    report_error: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failed

    def table(self) -> str:
        """The results table (IQM and 95% CI per method, against scratch)."""
        if not self.metrics:
            return "(no metrics: no finished transfer run" + (
                f"; report error: {self.report_error})" if self.report_error else ")")
        from rltransfer.report import table

        return table(self.metrics)

    def tensorboard_command(self) -> str:
        """The TensorBoard command for this experiment (see :func:`tensorboard_command`)."""
        return tensorboard_command(self.out)


def tensorboard_command(out: str | os.PathLike) -> str:
    """``tensorboard --logdir <out>/tb``, naming the executable beside this Python when it is
    not on PATH (a virtual environment that is not activated, as after ``make demo``)."""
    import shutil
    import sys

    exe = "tensorboard"
    local = Path(sys.executable).parent / "tensorboard"
    if local.exists() and shutil.which("tensorboard") != str(local):
        exe = str(local)
    return f"{exe} --logdir {Path(out).resolve() / 'tb'}"


def run(experiment: str | os.PathLike | Experiment | dict[str, Any], *,
        out: str | os.PathLike | None = None, workers: int | None = None, backend: str = "local",
        seeds: int | None = None, steps: int | None = None, ray_address: str | None = None,
        cache: str | os.PathLike | None = None, progress: bool = True,
        report: bool = True, sources_only: bool = False) -> ExperimentResult:
    """Run an experiment: every method x seed against scratch, then the report.

    Finished runs (``runs/<id>/done.json``) are skipped; unfinished ones are deleted and
    redone. A failing run is recorded (``error.txt``) and the others go on; check
    ``result.failed`` (a run whose values became NaN or infinite fails with
    :class:`rltransfer.training.DivergedError`'s "diverged at step N: ...").

    Raises :class:`ExperimentBusyError` at once when another process runs into ``out``, and
    :class:`rltransfer._io.DiskFullError` when the disk fills up while the driver writes its
    own files (``experiment.json``, the report); the files written before stay whole.

    Args:
        experiment: an experiment file, a config mapping, or a resolved :class:`Experiment`.
        out: the output folder (``experiment.json``, ``runs/``, ``tb/``, report files);
            default ``results/<experiment name>``.
        workers: parallel runs (default: the CPU count; ``0``: in this process).
        backend: ``"local"`` (process pool) or ``"ray"``.
        seeds: override the file's seeds (``0..seeds-1``).
        steps: override the file's target steps.
        ray_address: an existing Ray cluster (``"auto"``, ``"ray://host:10001"``);
            default: a local Ray with ``workers`` CPUs.
        cache: folder of cached source pretraining runs (default ``$RLTRANSFER_CACHE`` or
            ``<out>/../.sources``).
        progress: show the progress bar (stderr); without it, a line per finished run.
        report: build report.md, curves.png, metrics.json and the TensorBoard aggregates.
        sources_only: pretrain the sources the methods start from and stop (no target run,
            no report): to look at a source, e.g. against a seed rule the experiment file
            states, before any target run starts from it. A later full run skips them.

    Example:
        >>> result = run("experiments/cartpole_demo.yaml", out="results/demo")  # doctest: +SKIP
        >>> print(result.table())                                               # doctest: +SKIP
    """
    t_start = time.perf_counter()
    if isinstance(experiment, Experiment):
        exp = experiment
        if seeds is not None or steps is not None:
            cfg = exp.config_json()
            if cfg["pair"]:
                del cfg["source"], cfg["target"]
            exp = resolve_experiment(cfg, where=exp.name, seeds=seeds, steps=steps,
                                     path=exp.path)
    elif isinstance(experiment, dict):
        exp = resolve_experiment(experiment, seeds=seeds, steps=steps)
    else:
        exp = load_experiment(experiment, seeds=seeds, steps=steps)
    out = Path(out if out is not None else Path("results") / exp.name).resolve()
    plan = make_plan(exp, out, cache)
    if sources_only and not plan.sources:
        raise ValueError(f"experiment {exp.name!r} has no source to pretrain (its methods "
                         f"{exp.method_labels} start from no source agent or encoder); drop "
                         "sources_only (--sources-only)")
    with _lock(out):
        return _run_plan(plan, exp, out, workers=workers, backend=backend,
                         ray_address=ray_address, progress=progress,
                         report=report and not sources_only, t_start=t_start,
                         sources_only=sources_only)


@dataclasses.dataclass(frozen=True)
class RunState:
    """One run of a plan as it stands on disk (see :func:`plan_states`)."""

    spec: RunSpec
    state: str
    """``"finished"`` (``done.json``: a run skips it), ``"started"`` (a folder without
    ``done.json``: under way if a driver holds the output folder, else the next run redoes it
    from step 0) or ``"to run"``."""
    step: int
    """The last evaluated step (``spec.steps`` when finished, ``0`` when not started)."""


def plan_states(plan: Plan, *, sources_only: bool = False) -> list[RunState]:
    """Where each run of ``plan`` stands, read from its folder; writes nothing.

    What ``rltransfer run --dry-run`` prints, and how :func:`run` sorts the runs into skipped,
    redone and run: how many runs a rerun would skip and which are left, e.g. for an
    experiment run over several sittings. ``sources_only``: the source runs alone (what
    ``--sources-only`` runs).
    """
    states = []
    for spec in (list(plan.sources.values()) if sources_only else plan.all_runs):
        folder = Path(spec.run_dir)
        if is_done(folder):
            states.append(RunState(spec, "finished", spec.steps))
        elif folder.is_dir():
            states.append(RunState(spec, "started", min(rundir.last_step(folder / rundir.CURVE),
                                                        spec.steps)))
        else:
            states.append(RunState(spec, "to run", 0))
    return states


def held_by(out: str | os.PathLike) -> str | None:
    """``pid N on HOST, started T`` when a driver runs into ``out`` now, else ``None``.

    Reads the lock without taking it for longer than a test, and creates nothing.
    """
    path = Path(out) / LOCK
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDWR)
    try:
        if flock(fd, wait=False):
            return None  # nobody holds it (closing the file below lets it go)
        return _holder(path)
    finally:
        os.close(fd)


def _run_plan(plan: Plan, exp: Experiment, out: Path, *, workers: int | None, backend: str,
              ray_address: str | None, progress: bool, report: bool,
              t_start: float, sources_only: bool = False) -> ExperimentResult:
    _prepare_out(plan)
    _write_experiment_json(plan)

    states = plan_states(plan, sources_only=sources_only)
    todo = [s.spec for s in states if s.state != "finished"]
    skipped = len(states) - len(todo)
    redo = [s.spec for s in states if s.state == "started"]
    what = "source runs (--sources-only)" if sources_only else "runs"
    msg = f"{exp.name}: {len(states)} {what}; {skipped} already finished (skipped)"
    if redo:
        msg += f"; {len(redo)} unfinished or failed, redone"
    print(msg + f"; {len(todo)} to run", file=sys.stderr, flush=True)  # bar or no bar
    for r in redo:
        clear_run(r)

    failed: list[FailedRun] = []
    if todo:
        if workers is None and backend == "local":
            workers = os.cpu_count() or 1
        if workers is not None and backend == "local":
            workers = min(workers, len(todo))  # no idle processes to start
        be = make_backend(backend, workers, ray_address, workers_lock=out / WORKERS_LOCK)
        try:
            failed = _schedule(plan, todo, be, Progress(todo, skipped=skipped, enabled=progress),
                               out, report)
        except BaseException:
            be.close(cancel=True)
            raise
        be.close()

    result = ExperimentResult(out=out, plan=plan, skipped=skipped, executed=len(todo),
                              failed=failed, wall_time=time.perf_counter() - t_start)
    if report:
        _build_report(result)
    return result


# --------------------------------------------------------------------------- scheduling


def _schedule(plan: Plan, todo: list[RunSpec], be: Any, progress: Progress, out: Path,
              report: bool) -> list[FailedRun]:
    todo_ids = {r.run_id for r in todo}
    sources = {r.run_id: r for r in plan.sources.values()}
    waiting: dict[str, list[RunSpec]] = {}
    ready = []
    for r in todo:
        if r.source_id is not None and r.source_id in todo_ids:
            waiting.setdefault(r.source_id, []).append(r)
        else:
            ready.append(r)
    handles: dict[Any, RunSpec] = {}
    failed: list[FailedRun] = []
    last_aggregate = time.monotonic()

    def submit(specs: list[RunSpec]) -> None:
        for spec in specs:
            progress.started(spec)
            handles[be.submit(spec)] = spec

    try:
        submit(ready)  # the sources first, then scratch and what needs no pending source
        while handles:
            for h in be.wait(list(handles), timeout=0.5):
                spec = handles.pop(h)
                res = be.result(h, spec)
                ok = res.get("status") == "done"
                progress.finished(spec, ok)
                if not ok:
                    err = str(res.get("error", "failed")).strip().splitlines()
                    failed.append(FailedRun(spec.run_id, spec.kind, spec.method, spec.seed,
                                            err[-1] if err else "failed"))
                    progress.write(f"run {spec.run_id} ({spec.method}, seed {spec.seed}) "
                                   f"FAILED: {failed[-1].error} (see {spec.run_dir}/{ERROR})")
                if spec.run_id in sources:
                    deps = waiting.pop(spec.run_id, [])
                    if ok:
                        submit(deps)
                    else:
                        for dep in deps:
                            _skip_dependent(dep, spec)
                            progress.finished(dep, False)
                            failed.append(FailedRun(dep.run_id, dep.kind, dep.method, dep.seed,
                                                    f"source run {spec.run_id} failed"))
                if (report and ok and spec.kind == "transfer"
                        and time.monotonic() - last_aggregate > AGGREGATE_EVERY_S):
                    _aggregate(out)
                    last_aggregate = time.monotonic()
            progress.poll()
    finally:
        progress.close()
    return failed


def _skip_dependent(dep: RunSpec, source: RunSpec) -> None:
    clear_run(dep)
    rundir.write_error(dep.run_dir, f"not run: the source pretraining run {source.run_id} "
                                    f"failed; see {source.run_dir}/{ERROR}\n")
    rundir.write_config(dep.run_dir, dep.config_json())


# --------------------------------------------------------------------------- files

LOCK = ".lock"
WORKERS_LOCK = ".lock-workers"
ORPHAN_WAIT_S = 60.0


class ExperimentBusyError(ValueError):
    """Another process is running an experiment into the same output folder."""


@contextlib.contextmanager
def _lock(out: Path) -> Iterator[None]:
    """One driver per output folder: an exclusive ``flock`` on ``<out>/.lock``.

    The kernel releases the lock when its holder dies, however it dies (``kill -9``
    included), so a lock never goes stale and a pid that was reused cannot fool it. The file
    holds the holder's pid, host and start time, for the message a second driver prints.
    Then, before anything in the folder is touched, wait until no worker of an earlier,
    killed driver is alive (see :func:`wait_for_workers`).
    """
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not flock(fd, wait=False):
            raise ExperimentBusyError(
                f"{out} is in use by another rltransfer run ({_holder(path)}); wait for it to "
                "finish (or stop it), then run this again")
        os.ftruncate(fd, 0)
        os.write(fd, _json_line({"pid": os.getpid(), "host": _host(),
                                 "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                 "argv": sys.argv}))
        wait_for_workers(out)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (deleting it would race)


def wait_for_workers(out: Path, timeout: float = ORPHAN_WAIT_S) -> None:
    """Wait until no worker process of an earlier driver holds ``<out>/.lock-workers``.

    Each local worker holds a shared ``flock`` on that file for its whole life (taken when
    it starts, released by the kernel when it dies). Workers die with their driver (see
    :mod:`rltransfer.experiment.backends`), but this makes it a guarantee: a new driver
    never deletes or redoes a run folder that a worker of a killed driver still writes.
    """
    if not HAVE_FLOCK:  # pragma: no cover - no flock: the workers' parent watch remains
        return
    fd = os.open(out / WORKERS_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while not flock(fd, wait=False):
            if time.monotonic() > deadline:
                raise ExperimentBusyError(
                    f"{out}: worker processes of an earlier rltransfer run still hold "
                    f"{out / WORKERS_LOCK} after {timeout:.0f} s; stop them, then run "
                    "this again") from None
            time.sleep(0.05)
    finally:
        os.close(fd)


def _holder(path: Path) -> str:
    """``pid N on HOST since T`` from a lock file (retried briefly: it may be mid-write)."""
    import json

    for _ in range(20):
        try:
            info = json.loads(path.read_text())
            return f"pid {info['pid']} on {info['host']}, started {info['started']}"
        except (OSError, ValueError, KeyError, TypeError):
            time.sleep(0.05)
    return f"pid unknown: {path} is locked"


def _host() -> str:
    import socket

    return socket.gethostname()


def _json_line(data: dict[str, Any]) -> bytes:
    import json

    return (json.dumps(data) + "\n").encode()


def _prepare_out(plan: Plan) -> None:
    """Create ``out``; park run folders that are not in this plan in ``runs.stale/``.

    The report reads every folder under ``runs/``, so runs of another configuration (say,
    an earlier call with other ``--steps``) must not stay there; they are moved back when a
    later plan contains them again.
    """
    runs = plan.out / rundir.RUNS
    runs.mkdir(parents=True, exist_ok=True)
    for tmp in runs.glob(".*"):  # leftovers of an interrupted copy
        shutil.rmtree(tmp, ignore_errors=True)
    remove_abandoned_temps(plan.out)  # of a report or experiment.json write that was killed
    wanted = {r.run_id for r in plan.all_runs}
    stale = plan.out / STALE
    for d in list(runs.iterdir()):
        if d.is_dir() and d.name not in wanted:
            stale.mkdir(exist_ok=True)
            shutil.rmtree(stale / d.name, ignore_errors=True)
            os.rename(d, stale / d.name)
    if stale.is_dir():
        for rid in wanted:
            parked = stale / rid
            if parked.is_dir() and not (runs / rid).exists() and is_done(parked):
                os.rename(parked, runs / rid)
        with contextlib.suppress(OSError):
            stale.rmdir()  # only if empty


def _write_experiment_json(plan: Plan) -> None:
    exp = plan.experiment
    write_json_atomic(plan.out / rundir.EXPERIMENT, {
        "name": exp.name, "description": exp.description,
        "pair": exp.pair or f"{exp.source.env}->{exp.target.env}", "algo": exp.algo,
        "methods": exp.method_labels, "seeds": exp.seeds, "steps": exp.steps,
        "eval": {"every": exp.eval_every, "episodes": exp.eval_episodes},
        "threshold": exp.threshold, "sustain": exp.sustain, "baseline": "scratch",
        "source": ({"run_id": plan.source.run_id, "steps": exp.source_steps,
                    "seed": exp.source_seed, "cache": plan.source.cache_dir}
                   if plan.source else None),
        "sources": {name: {"run_id": r.run_id, "kind": r.kind, "cache": r.cache_dir}
                    for name, r in plan.sources.items()},
        "runs": {r.run_id: {"kind": r.kind, "method": r.method, "seed": r.seed}
                 for r in plan.all_runs},
        "config": exp.config_json(), "file": str(exp.path) if exp.path else None,
        "versions": versions(),
    })


def _aggregate(out: Path) -> None:
    try:
        from rltransfer.report import write_tensorboard_aggregate

        write_tensorboard_aggregate(out, reps=200)
    except Exception:  # a live TensorBoard aggregate is a convenience, never fatal
        pass


def _build_report(result: ExperimentResult) -> None:
    from rltransfer.report import build_report  # matplotlib, rliable: only when reporting

    try:
        result.report = build_report(result.out)
        result.metrics = result.report.metrics
    except DiskFullError:
        raise  # not a report problem: the caller must free space (the runs are all saved)
    except Exception as exc:
        result.report_error = f"{type(exc).__name__}: {exc}"


