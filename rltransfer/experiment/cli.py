"""Verbs of the experiment harness: ``run``, ``report``, ``summary``, ``calibrate`` and ``demo``.

:func:`add_commands` registers them on the ``rltransfer`` parser (see :mod:`rltransfer.cli`).
Each verb's function returns the exit code: ``run`` and ``demo`` exit 1 when a run failed,
naming it, or when the disk filled up ("disk full while writing <path>"); bad input, and an
output folder another ``rltransfer run`` is using, raise :class:`ValueError` subclasses, which
the main entry point prints without a traceback (exit 2).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from pathlib import Path

from tqdm import tqdm

from rltransfer import rundir
from rltransfer._data import data_dir
from rltransfer._io import DiskFullError
from rltransfer._progress import bar_timing
from rltransfer.experiment.config import Experiment, load_experiment
from rltransfer.experiment.driver import held_by, plan_states, run, tensorboard_command
from rltransfer.experiment.plan import make_plan
from rltransfer.experiment.progress import run_label
from rltransfer.report import build_report, table
from rltransfer.report.calibration import study_size, write_calibration
from rltransfer.report.markdown import describe_source
from rltransfer.report.summary import summary_table
from rltransfer.report.tables import fmt_number

__all__ = ["DEMO", "add_commands", "cmd_demo", "cmd_report", "cmd_run", "resolve_experiment",
           "shipped_experiments", "source_line"]

DEMO = "cartpole_demo"
"""The shipped experiment ``rltransfer demo`` runs."""


def shipped_experiments() -> dict[str, Path]:
    """The example experiments shipped with rltransfer (``experiments/*.yaml``), by name."""
    return {p.stem: p for p in sorted(data_dir("experiments").glob("*.yaml"))}


def resolve_experiment(value: str | os.PathLike) -> Path:
    """The experiment file ``value`` names: a path, else the name of a shipped experiment.

    A name is a file name of the shipped ``experiments/`` folder, with or without ``.yaml``
    (``experiments/<name>.yaml``, as the docs write it, works from any folder too). An
    existing file always wins. Anything else is an error naming ``value`` and listing the
    shipped experiments.

    Example:
        >>> resolve_experiment("cartpole_demo").name
        'cartpole_demo.yaml'
    """
    path = Path(value).expanduser()
    if path.is_file():
        return path
    shipped = shipped_experiments()
    parts = path.parts
    if len(parts) == 1 or (len(parts) == 2 and parts[0] == "experiments"):
        name = parts[-1].removesuffix(".yaml")
        if name in shipped:
            return shipped[name]
    close = difflib.get_close_matches(path.name.removesuffix(".yaml"), list(shipped), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise FileNotFoundError(
        f"experiment {str(value)!r} is neither a file nor a shipped experiment{hint}; shipped "
        f"experiments: {', '.join(shipped) or '(none)'}")


def _workers(text: str) -> int:
    """--workers: a whole number >= 0, checked before anything is written."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a whole number "
                                         ">= 0 (0 runs everything in this process)")
    return value


def _add_run_args(p: argparse.ArgumentParser, *, workers_help: str) -> None:
    p.add_argument("--workers", type=_workers, default=None, help=workers_help)
    p.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="local: a process pool (default); ray: Ray tasks on --ray-address or "
                        "a local Ray with --workers CPUs")
    p.add_argument("--ray-address", default=None,
                   help="address of an existing Ray cluster (e.g. auto, ray://host:10001)")
    p.add_argument("--cache", default=None,
                   help="folder of cached source pretraining runs (default: $RLTRANSFER_CACHE "
                        "or OUT/../.sources)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar: a line per finished run instead (for logs)")


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``run``, ``report`` and ``demo`` on the subparsers of the main parser."""
    p = sub.add_parser(
        "run", help="run an experiment: every method x seed vs scratch, then the report",
        description="Run an experiment (a YAML file, or the name of a shipped one such as "
                    "cartpole_demo): pretrain the source (cached by "
                    "content), train every method x seed on the target, evaluating on "
                    "schedule, then write report.md, curves.png and metrics.json. A rerun "
                    "skips finished runs; a failed run is recorded and the others go on.")
    p.add_argument("file", metavar="EXPERIMENT",
                   help="experiment YAML file, or the name of a shipped experiment "
                        "(e.g. cartpole_demo; an unknown name lists them)")
    p.add_argument("--out", default=None,
                   help="output folder (default: results/<experiment name>)")
    p.add_argument("--seeds", type=int, default=None,
                   help="run seeds 0..K-1 instead of the file's seeds (quick looks)")
    p.add_argument("--steps", type=int, default=None,
                   help="target training steps instead of the file's (quick looks)")
    p.add_argument("--sources-only", action="store_true",
                   help="pretrain the sources the methods start from, print each one's final "
                        "evaluation (return beside the published score, forward velocity) and "
                        "stop: to check a source against the file's seed rule before any "
                        "target run; a later full run skips them")
    p.add_argument("--dry-run", action="store_true",
                   help="run nothing: list each run of the plan as finished (skipped by a "
                        "run), started or to run, with the env steps left (also while another "
                        "run writes into --out)")
    _add_run_args(p, workers_help="parallel runs (default: CPU count; 0: in this process)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="rebuild the report of an experiment output folder",
                       description="Rebuild report.md, curves.png, metrics.json and the "
                                   "TensorBoard aggregates from an experiment's result files "
                                   "(works while it runs, and on a copied folder).")
    p.add_argument("dir", help="experiment output folder (holding experiment.json)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("summary", help="one results table over many experiment folders",
                       description="Print the markdown results table (one row per experiment: "
                                   "pair, algorithm, budget, best method by AUC difference, "
                                   "its speed-up and AUC difference with 95% CIs, verdict) "
                                   "from each folder's metrics.json.")
    p.add_argument("dirs", nargs="+", help="experiment output folders (holding metrics.json)")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("calibrate", help="measure how well the report's intervals and "
                                         "verdicts hold, on a pool of many seeds",
                       description="Draw many small experiments from an experiment folder of "
                                   "many seeds (scratch and one method whose seeds start from "
                                   "sources of their own, e.g. calibration_pool_cartpole) and "
                                   "measure how often each 95%% interval covers the pool's "
                                   "value, how often a verdict rule errs under the null, and "
                                   "the adopted rule's power; writes calibration.md and "
                                   "calibration.json into the folder.")
    p.add_argument("dir", help="the pool's experiment folder (holding experiment.json)")
    p.add_argument("--method", default="finetune",
                   help="the transfer method of the pool (default finetune)")
    p.add_argument("--draws", type=_positive, default=4000,
                   help="experiments drawn per measurement (default 4000)")
    p.add_argument("--n-seeds", type=_positive, default=5,
                   help="seeds per method in a drawn experiment (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("demo", help="the CartPole demo experiment (a few minutes on 2 cores)",
                       description="Run the shipped experiment cartpole_demo "
                                   "(experiments/cartpole_demo.yaml): pretrain on CartPole, "
                                   "transfer to a long, heavy pole with scratch, finetune and "
                                   "partial[actor] over 3 seeds, print the table.")
    p.add_argument("--out", default="results/demo", help="output folder (default results/demo)")
    _add_run_args(p, workers_help="parallel runs (default: CPU count)")
    p.set_defaults(func=cmd_demo)


def cmd_run(args: argparse.Namespace) -> int:
    exp = load_experiment(resolve_experiment(args.file), seeds=args.seeds, steps=args.steps)
    out = args.out or os.path.join("results", exp.name)
    if args.dry_run:
        print(dry_run_text(exp, out, cache=args.cache, sources_only=args.sources_only))
        return 0
    return _run(exp, out, args)


def dry_run_text(exp: Experiment, out: str | os.PathLike,
                 cache: str | os.PathLike | None = None, sources_only: bool = False) -> str:
    """What ``rltransfer run --dry-run`` prints: each run of the plan (its source runs alone
    with ``sources_only``), finished, started or to run, and how many env steps are left;
    reads the folder, writes nothing."""
    plan = make_plan(exp, out, cache)
    states = plan_states(plan, sources_only=sources_only)
    count = {k: sum(s.state == k for s in states) for k in ("finished", "started", "to run")}
    left = sum(s.spec.steps for s in states if s.state != "finished")
    holder = held_by(out)
    started = ("started (under way: a driver holds the folder, "
               f"{holder})" if holder else "started, not finished (a run redoes them)")
    what = "source runs (--sources-only)" if sources_only else "runs"
    lines = [f"{exp.name} in {Path(out).resolve()}: {len(states)} {what}; "
             f"{count['finished']} finished (a run skips them), {count['started']} {started}, "
             f"{count['to run']} to run; {left:,} env steps in the runs not finished"]
    for s in states:
        spec = s.spec
        lines.append(f"  {s.state:<9} {spec.run_id}  {run_label(spec):<40} "
                     f"{s.step:,}/{spec.steps:,} steps")
    return "\n".join(lines)


def _positive(text: str) -> int:
    """A whole number >= 1, checked before anything runs."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a whole number >= 1")
    return value


def cmd_calibrate(args: argparse.Namespace) -> int:
    """The interval and verdict study (:mod:`rltransfer.report.calibration`) on a pool."""
    with tqdm(total=study_size(args.draws), desc="calibrate", unit="draw", **bar_timing()) as bar:

        def advance(k: int) -> None:
            bar.update(k)

        md, _ = write_calibration(args.dir, method=args.method, draws=args.draws,
                                  n_seeds=args.n_seeds, seed=args.seed, progress=advance)
    print(md.read_text())
    print(f"written: {md} and {md.with_suffix('.json')}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    return _run(load_experiment(resolve_experiment(DEMO)), args.out, args)


def cmd_report(args: argparse.Namespace) -> int:
    paths = build_report(args.dir)
    doc = json.loads(Path(paths.metrics_json).read_text())
    if doc.get("metrics"):
        print(table(doc["metrics"]))
    else:
        print("no finished transfer run yet: no metrics")
    print(f"\nreport: {paths.report_md}\nplots: {paths.curves_png}\n"
          f"metrics: {paths.metrics_json}\n"
          f"TensorBoard: {tensorboard_command(args.dir)}")
    failed = [r for r in doc.get("runs", []) if r.get("status") == "failed"]
    return 1 if failed else 0


def source_line(run_dir: str | os.PathLike) -> str:
    """One source run in words: what it trained on, its final evaluation beside the published
    score and, for locomotion, its forward velocity then; or why it has none."""
    d = Path(run_dir)
    if not rundir.is_done(d):
        failed = (d / rundir.ERROR).is_file()
        return f"run {d.name}: " + (f"FAILED (see {d / rundir.ERROR})" if failed
                                    else "not finished")
    text = describe_source(rundir.read_config(d), rundir.read_done(d))
    curve = d / rundir.CURVE
    velocity = rundir.read_curve(curve).get("forward_velocity") if curve.is_file() else None
    if velocity is not None and len(velocity):
        text += f"; forward velocity {fmt_number(float(velocity[-1]))} m/s"
    return f"run {d.name}: {text}"


def cmd_summary(args: argparse.Namespace) -> int:
    """One row per folder with a report; an experiment still in progress (its finished runs
    committed, no report yet) is named on stderr and left out, so that
    ``rltransfer summary docs/results/*/`` works while one is being run over sittings."""
    reported = []
    for d in args.dirs:
        folder = Path(d)
        if (folder / "metrics.json").is_file():
            reported.append(d)
        elif (folder / rundir.EXPERIMENT).is_file():
            planned = json.loads((folder / rundir.EXPERIMENT).read_text()).get("runs") or {}
            finished = sum(rundir.is_done(folder / rundir.RUNS / rid) for rid in planned)
            print(f"rltransfer summary: left out {d}: an experiment in progress ({finished} of "
                  f"{len(planned)} runs finished, no report yet)", file=sys.stderr)
        else:
            raise ValueError(f"{d!r} holds no metrics.json; give experiment output folders "
                             "(run `rltransfer report DIR` first)")
    if not reported:
        raise ValueError("no folder given holds a report (metrics.json): nothing to summarize")
    print(summary_table(reported))
    return 0


def _run(exp: Experiment, out: str, args: argparse.Namespace) -> int:
    sources_only = getattr(args, "sources_only", False)
    try:
        result = run(exp, out=out, workers=args.workers, backend=args.backend,
                     ray_address=args.ray_address, cache=args.cache,
                     progress=not args.no_progress, sources_only=sources_only)
    except DiskFullError as exc:  # the driver's own files (experiment.json): nothing half kept
        print(f"rltransfer {args.command}: error: {exc}", file=sys.stderr)
        return 1
    print(f"\n{exp.name}: {result.executed} runs executed, {result.skipped} already finished "
          f"(skipped), in {result.wall_time:.0f} s\n")
    if sources_only:
        for name, spec in result.plan.sources.items():
            print(f"{name}: {source_line(spec.run_dir)}")
        return 1 if result.failed else 0
    print(result.table())
    if result.report is not None:
        print(f"\nreport: {result.report.report_md}")
    elif result.report_error:
        print(f"\nreport not built: {result.report_error}")
    print(f"TensorBoard: {result.tensorboard_command()}")
    if result.failed:
        print(f"\n{len(result.failed)} run(s) FAILED (tracebacks in runs/<id>/error.txt):")
        for f in result.failed:
            print(f"  {f}")
        return 1
    return 0
