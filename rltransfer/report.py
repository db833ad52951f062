"""Reports over an experiment's result files: report.md, curves.png, metrics.json, TensorBoard.

Reads the layout the experiment harness writes and nothing else (no stable-baselines3, no
torch), so a report can be rebuilt anywhere from a copied results folder::

    <out>/experiment.json
    <out>/runs/<run_id>/{config.json, curve.csv, done.json | error.txt, tb/}

Public API:

- :func:`load_results`: curves per method and seed, plus run statuses (finished, failed with
  an excerpt of the traceback, unfinished).
- :func:`build_report`: writes ``report.md``, ``curves.png`` and ``metrics.json`` (and, by
  default, the TensorBoard aggregates); what ``rltransfer report DIR`` runs.
- :func:`table`: a compact plain-text table of a metrics dict, for terminals.
- :func:`write_tensorboard_aggregate`: TensorBoard event files under ``<out>/tb/``.

TensorBoard layout written by :func:`write_tensorboard_aggregate` (``tensorboard --logdir
<out>/tb``):

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
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rltransfer import metrics as mt
from rltransfer._io import write_bytes_atomic

CURVE_BACKEND = "builtin"
"""Bootstrap backend of the per-evaluation CI bands (plot and TensorBoard aggregate): the
vectorized re-implementation in :mod:`rltransfer.metrics`, which draws the same resamples as
rliable and gives the same numbers (tests compare them), but needs one call per curve instead
of one rliable call per evaluation. The table's intervals use rliable itself."""

__all__ = [
    "AGGREGATE_TAGS",
    "Curve",
    "EVAL_TAG",
    "ReportPaths",
    "Results",
    "RunInfo",
    "build_report",
    "load_results",
    "safe_name",
    "table",
    "write_tensorboard_aggregate",
]

EVAL_TAG = "eval/return"
"""Tag of the per-run evaluation curves written under ``<out>/tb/<method>/seed_<k>/``."""

AGGREGATE_TAGS = (
    "aggregate/{method}/iqm",
    "aggregate/{method}/ci_low",
    "aggregate/{method}/ci_high",
)
"""Tags (formatted with the folder-safe method name) written under ``<out>/tb/aggregate/``."""

_RESERVED = {"aggregate", "pretrain"}

RunStatus = Literal["done", "failed", "unfinished"]


# --------------------------------------------------------------------------- loading


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
    rows: list[tuple[float, float, float]] = []
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if not row.get("step") or not row.get("mean_return"):
                continue
            wall = row.get("wall_time") or "nan"
            rows.append((float(row["step"]), float(row["mean_return"]), float(wall)))
    if not rows:
        return Curve(np.zeros(0), np.zeros(0), np.zeros(0))
    arr = np.asarray(rows, dtype=float)
    # Keep the last record of a repeated step (a resumed run may append it again).
    _, last = np.unique(arr[::-1, 0], return_index=True)
    arr = arr[::-1][last]
    return Curve(arr[:, 0], arr[:, 1], arr[:, 2])


def _error_excerpt(text: str, head: int = 1, tail: int = 3) -> str:
    lines = [ln.rstrip() for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) <= head + tail:
        return "\n".join(lines)
    return "\n".join([*lines[:head], "...", *lines[-tail:]])


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
    exp_path = out / "experiment.json"
    if not exp_path.is_file():
        raise FileNotFoundError(f"{exp_path} not found: is {out} an experiment output folder?")
    experiment = _read_json(exp_path)
    notes: list[str] = []
    runs: list[RunInfo] = []
    run_curves: dict[str, Curve] = {}
    run_configs: dict[str, dict[str, Any]] = {}
    run_done: dict[str, dict[str, Any]] = {}
    finished: dict[str, list[tuple[int | None, str]]] = {}

    run_dirs = sorted(p for p in (out / "runs").glob("*") if p.is_dir())
    for rd in run_dirs:
        cfg_path = rd / "config.json"
        if not cfg_path.is_file():
            notes.append(f"runs/{rd.name} has no config.json: skipped.")
            continue
        cfg = _read_json(cfg_path)
        run_id = str(cfg.get("run_id", rd.name))
        run_configs[run_id] = cfg
        curve = _read_curve(rd / "curve.csv") if (rd / "curve.csv").is_file() else None
        if curve is not None and curve.steps.size:
            run_curves[run_id] = curve
        status: RunStatus
        wall, error = None, None
        if (rd / "error.txt").is_file():
            status = "failed"
            error = _error_excerpt((rd / "error.txt").read_text(encoding="utf-8", errors="replace"))
        elif (rd / "done.json").is_file():
            status = "done"
            run_done[run_id] = _read_json(rd / "done.json")
            wall = run_done[run_id].get("wall_time")
            wall = None if wall is None else float(wall)
        else:
            status = "unfinished"
        seed = cfg.get("seed")
        info = RunInfo(
            run_id=run_id,
            kind=str(cfg.get("kind", "transfer")),
            method=str(cfg.get("method", "?")),
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


# --------------------------------------------------------------------------- formatting


def _fmt(x: float | None) -> str:
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


def _ci(d: Mapping[str, Any] | None, key: str = "iqm") -> str:
    if not d or d.get(key) is None:
        return "n/a"
    if d.get("low") is None or d.get("high") is None:
        return _fmt(d[key])
    return f"{_fmt(d[key])} [{_fmt(d['low'])}, {_fmt(d['high'])}]"


def _signed(d: Mapping[str, Any] | None) -> str:
    if not d or d.get("iqm") is None:
        return "n/a"
    s = _ci(d)
    return s if d["iqm"] < 0 else "+" + s


def _metrics_of(metrics: Mapping[str, Any]) -> Mapping[str, Any]:
    """Accept either :func:`rltransfer.metrics.compute`'s dict or a metrics.json dict."""
    if "methods" in metrics:
        return metrics
    inner = metrics.get("metrics")
    if isinstance(inner, Mapping) and "methods" in inner:
        return inner
    raise ValueError("not a metrics dict: expected a 'methods' key (or 'metrics.methods')")


def _speedup(d: Mapping[str, Any] | None) -> str:
    """``3.2× [2.1, 5.0]``: a time-to-threshold speed-up with its CI."""

    def f(x: float) -> str:
        if not math.isfinite(x):
            return "n/a"
        return f"{x:.2f}" if abs(x) < 1 else (f"{x:.1f}" if abs(x) < 100 else _fmt(x))

    if not d or d.get("value") is None:
        return "n/a"
    if d.get("low") is None or d.get("high") is None:
        return f"{f(d['value'])}×"
    return f"{f(d['value'])}× [{f(d['low'])}, {f(d['high'])}]"


def _ttt(entry: Mapping[str, Any]) -> str:
    t = entry["metrics"].get("time_to_threshold")
    if t is None:
        return "n/a"
    s = _ci(t)
    if t.get("censored"):
        s += f" ({t['censored']}/{entry['n_seeds']} censored)"
    return s


def table(metrics: Mapping[str, Any]) -> str:
    """A compact plain-text table for a terminal: one row per method.

    Values are IQM over seeds with the 95% CI in brackets; ``dAUC`` is the IQM difference
    method minus baseline; ``ratio`` the transfer ratio; ``TTT`` the sustained time to
    threshold; ``speed-up`` the baseline's time to threshold over the method's (higher is
    better); ``P(imp)`` the probability of improvement on AUC.

    Args:
        metrics: the dict returned by :func:`rltransfer.metrics.compute`, or a loaded
            metrics.json.
    """
    m = _metrics_of(metrics)
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
    ]
    rows = [header]
    for label, e in m["methods"].items():
        is_base = label == base
        rows.append(
            [
                label,
                str(e["n_seeds"]),
                _ci(e["metrics"]["jumpstart"]),
                _ci(e["metrics"]["final_return"]),
                _ci(e["metrics"]["auc"]),
                "-" if is_base else _signed(e.get("difference", {}).get("auc")),
                "-" if is_base else _ci(e.get("transfer_ratio"), "value"),
                _ttt(e),
                "-" if is_base else _speedup(e.get("time_to_threshold_speedup")),
                "-" if is_base else _ci(e.get("probability_of_improvement"), "value"),
                "baseline" if is_base else e.get("verdict", "n/a"),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class ReportPaths:
    """Files written by :func:`build_report`."""

    report_md: Path
    curves_png: Path
    metrics_json: Path
    tensorboard: Path | None = None
    """``<out>/tb`` when TensorBoard aggregates were written."""


def _wall_times(res: Results) -> dict[str, Any]:
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


def _plot_curves(
    res: Results, path: Path, *, seed: int, reps: int, threshold: float | None
) -> None:
    # The object-oriented API with an explicit Agg canvas: no pyplot, no global backend switch.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    baseline = res.experiment.get("baseline", "scratch")
    colors = iter(f"C{i}" for i in range(100))
    for label, returns in res.curves.items():
        center, low, high = mt.iqm_curve(returns, reps=reps, seed=seed, backend=CURVE_BACKEND)
        color = "black" if label == baseline else next(colors)
        n = returns.shape[0]
        ax.plot(res.steps, center, color=color, lw=1.8, label=f"{label} (n={n})")
        ax.fill_between(res.steps, low, high, color=color, alpha=0.2, lw=0)
    if threshold is not None:
        ax.axhline(threshold, color="grey", ls="--", lw=1, label=f"threshold {_fmt(threshold)}")
    if not res.curves:
        ax.text(0.5, 0.5, "no finished runs", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return (IQM over seeds)")
    ax.set_title(f"{res.experiment.get('pair', '')}: IQM with 95% bootstrap CI")
    ax.grid(alpha=0.3)
    if res.curves or threshold is not None:
        ax.legend(fontsize="small")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _verdict_line(label: str, e: Mapping[str, Any], base: str, level: float) -> str:
    v = e.get("verdict", "inconclusive")
    d = e.get("difference", {}).get(mt.PRIMARY_METRIC, {})
    pct = f"{level:.0%}"
    if v in ("positive", "negative"):
        direction = "higher" if v == "positive" else "lower"
        text = (
            f"**{label}: {v} transfer.** Its AUC (mean return over training) is {direction} "
            f"than {base}'s: difference {_signed(d)}, the {pct} CI lies entirely "
            f"{'above' if v == 'positive' else 'below'} 0."
        )
    elif d.get("low") is None:
        text = f"**{label}: inconclusive.** Too few seeds for a confidence interval."
    else:
        text = f"**{label}: inconclusive.** AUC difference {_signed(d)}: the {pct} CI contains 0."
    if e.get("n_seeds", 0) < mt.MIN_SEEDS_FOR_VERDICT and v == "inconclusive":
        text += f" (Fewer than {mt.MIN_SEEDS_FOR_VERDICT} seeds: inconclusive by rule.)"
    poi = e.get("probability_of_improvement")
    if poi and poi.get("value") is not None:
        text += f" P(improvement over {base}) = {_ci(poi, 'value')}."
    return "- " + text


def _config_block(config: Any) -> str:
    try:
        import yaml

        return "```yaml\n" + yaml.safe_dump(config, sort_keys=False).rstrip() + "\n```"
    except Exception:  # noqa: BLE001 - fall back to JSON for anything YAML cannot dump
        return "```json\n" + json.dumps(config, indent=2, default=str) + "\n```"


def _methods_section(res: Results) -> list[str]:
    """What each method starts from (source run, encoder), from the runs' config.json."""
    first: dict[str, dict[str, Any]] = {}
    sources: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for r in res.runs:
        cfg = res.run_configs.get(r.run_id)
        if cfg is None:
            continue
        if r.kind == "transfer":
            first.setdefault(r.method, cfg)
        else:
            sources[r.run_id] = (cfg, res.run_done.get(r.run_id, {}))
    if not first:
        return []

    def encoder(cfg: Mapping[str, Any]) -> str:
        pk = (cfg.get("preset") or {}).get("policy_kwargs") or {}
        name = pk.get("features_extractor")
        if not name:
            return "—"
        kw = pk.get("features_extractor_kwargs") or {}
        return f"`{name}`" + (f" {json.dumps(kw, sort_keys=True)}" if kw else "")

    def source_text(cfg: Mapping[str, Any], done: Mapping[str, Any]) -> str:
        env = cfg.get("env") or {}
        where = f"`{env.get('env')}`" + (f" {json.dumps(env['knobs'])}" if env.get("knobs")
                                         else "")
        if cfg.get("kind") == "pretrain-encoder":
            o = cfg.get("method_spec") or {}
            loss = (f"; loss {_fmt(done.get('first_loss'))} → {_fmt(done.get('final_loss'))}"
                    if done.get("final_loss") is not None else "")
            return (f"{o.get('objective')} encoder `{o.get('encoder')}` trained on "
                    f"{o.get('frames'):,} random-policy frames of {where}, "
                    f"{o.get('steps'):,} gradient steps{loss}")
        ret = (f"; final return {_fmt(done.get('final_return'))}"
               if done.get("final_return") is not None else "")
        return (f"{str(cfg.get('algo', '')).upper()} agent trained on {where} for "
                f"{cfg.get('steps'):,} steps{ret}")

    order = [m for m in res.experiment.get("methods") or [] if m in first]
    lines = ["## Methods", "",
             "| method | spec | starts from | encoder |", "|---|---|---|---|"]
    for label in [*order, *sorted(set(first) - set(order))]:
        cfg = first[label]
        sid = cfg.get("source_id")
        start = (f"run `{sid}`: {source_text(*sources[sid])}" if sid in sources
                 else (f"run `{sid}`" if sid else "its own initialization"))
        spec = json.dumps(cfg.get("method_spec"), sort_keys=True)
        lines.append(f"| {label} | `{spec}` | {start} | {encoder(cfg)} |")
    return lines + [""]


def _render_markdown(res: Results, doc: Mapping[str, Any]) -> str:
    exp = res.experiment
    m = doc["metrics"]
    lines: list[str] = [f"# Transfer report: {exp.get('name', res.out_dir.name)}", ""]
    ev = exp.get("eval") or {}
    facts = [
        f"pair `{exp.get('pair', '?')}`",
        f"algorithm `{exp.get('algo', '?')}`",
        f"budget {_fmt(exp.get('steps'))} steps" if exp.get("steps") is not None else None,
        (
            f"evaluation every {_fmt(ev.get('every'))} steps, {ev.get('episodes')} episodes"
            if ev
            else None
        ),
        f"seeds {exp.get('seeds')}" if exp.get("seeds") is not None else None,
        f"threshold {_fmt(exp.get('threshold'))}" if exp.get("threshold") is not None else None,
    ]
    lines += ["; ".join(f for f in facts if f) + ".", ""]
    lines += _methods_section(res)

    lines += ["## Results", ""]
    if m is None:
        lines += ["No finished transfer runs yet: no metrics.", ""]
    else:
        base = m["baseline"]
        level = m["ci"]["level"]
        lines += [
            f"Interquartile mean (IQM) over seeds with {level:.0%} stratified bootstrap CI "
            f"({m['ci']['reps']} resamples, seed {m['ci']['seed']}); AUC is the mean return "
            "over training"
            + (
                "; time to threshold is the first evaluation step from which the return stays "
                f"at or above {_fmt(m['threshold'])} for k = {m['sustain']} evaluations in a "
                f"row, censored at {_fmt(m['budget'])} steps when there is none; speed-up is "
                f"{base}'s time to threshold ÷ the method's (higher is better; a time of 0 "
                "counts as one evaluation interval)"
                if m.get("threshold") is not None
                else ""
            )
            + ". Definitions: README, section Metrics.",
            "",
            "| method | seeds | jumpstart | final return | AUC | time to threshold "
            "| speed-up | transfer ratio | P(improvement) | verdict |",
            "|---|---:|---|---|---|---|---|---|---|---|",
        ]
        for label, e in m["methods"].items():
            is_base = label == base
            lines.append(
                "| "
                + " | ".join(
                    [
                        f"**{label}**" if is_base else label,
                        str(e["n_seeds"]),
                        _ci(e["metrics"]["jumpstart"]),
                        _ci(e["metrics"]["final_return"]),
                        _ci(e["metrics"]["auc"]),
                        _ttt(e),
                        "—" if is_base else _speedup(e.get("time_to_threshold_speedup")),
                        "—" if is_base else _ci(e.get("transfer_ratio"), "value"),
                        "—" if is_base else _ci(e.get("probability_of_improvement"), "value"),
                        "baseline" if is_base else e.get("verdict", "n/a"),
                    ]
                )
                + " |"
            )
        others = [(k, e) for k, e in m["methods"].items() if k != base and "difference" in e]
        if others:
            lines += [
                "",
                f"### Difference from {base} (method − {base}, IQM difference and {level:.0%} CI)",
                "",
                "| method | Δ jumpstart | Δ final return | Δ AUC | Δ time to threshold |",
                "|---|---|---|---|---|",
            ]
            for label, e in others:
                d = e["difference"]
                lines.append(
                    "| "
                    + " | ".join(
                        [
                            label,
                            _signed(d.get("jumpstart")),
                            _signed(d.get("final_return")),
                            _signed(d.get("auc")),
                            _signed(d.get("time_to_threshold")),
                        ]
                    )
                    + " |"
                )
            lines += ["", "## Verdicts", ""]
            lines += [_verdict_line(k, e, base, level) for k, e in others]
            lines += [
                "",
                f"Rule: a method is *positive* when the {level:.0%} CI of its AUC minus "
                f"{base}'s AUC lies entirely above 0, *negative* when it lies entirely below 0, "
                f"and *inconclusive* otherwise or with fewer than {mt.MIN_SEEDS_FOR_VERDICT} "
                "seeds. The transfer ratio is (AUC − r_ref) / (AUC of "
                f"{base} − r_ref) with r_ref = {_fmt(m['reference_return'])}, the lowest "
                "evaluation return of any run.",
            ]
        lines += ["", "## Curves", "", "![IQM learning curves](curves.png)", ""]

    lines += ["## Runs", ""]
    counts = {s: sum(r.status == s for r in res.runs) for s in ("done", "failed", "unfinished")}
    lines += [
        f"{len(res.runs)} runs: {counts['done']} finished, {counts['failed']} failed, "
        f"{counts['unfinished']} unfinished.",
        "",
    ]
    if res.failed:
        lines += ["### Failed runs", ""]
        for r in res.failed:
            lines += [
                f"- `{r.run_id}` ({r.kind}, {r.method}, seed {r.seed}):",
                "",
                "  ```text",
                *[f"  {ln}" for ln in (r.error or "").splitlines()],
                "  ```",
            ]
        lines.append("")
    if res.unfinished:
        lines += ["### Unfinished runs", ""]
        lines += [
            f"- `{r.run_id}` ({r.kind}, {r.method}, seed {r.seed}), {r.n_evals} evaluations"
            for r in res.unfinished
        ]
        lines.append("")
    notes = [*doc["notes"], *(m["notes"] if m else [])]
    if m:
        notes += [f"{k}: {n}" for k, e in m["methods"].items() for n in e.get("notes", [])]
    if notes:
        lines += ["### Notes", "", *[f"- {n}" for n in notes], ""]

    wt = doc["wall_time"]
    lines += [
        "## Wall time",
        "",
        f"Total {_duration(wt['total'])} of run time (summed over runs; runs may have "
        f"run in parallel), of which pretraining {_duration(wt['pretrain'])}.",
        "",
        "| method | wall time |",
        "|---|---:|",
        *[f"| {k} | {_duration(v)} |" for k, v in wt["per_method"].items()],
        "",
        "## Config",
        "",
        _config_block(exp.get("config", {})),
        "",
        "## Versions",
        "",
        "| package | version |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in (exp.get("versions") or {}).items()],
        "",
    ]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


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
    paths = ReportPaths(out / "report.md", out / "curves.png", out / "metrics.json")
    write_bytes_atomic(
        paths.metrics_json,
        (json.dumps(doc, indent=2, allow_nan=False, default=_json_default) + "\n").encode(),
    )
    _plot_curves(res, paths.curves_png, seed=seed, reps=reps, threshold=threshold)
    write_bytes_atomic(paths.report_md, _render_markdown(res, doc).encode("utf-8"))
    if tensorboard:
        tb = write_tensorboard_aggregate(res, seed=seed, reps=reps)
        paths = ReportPaths(paths.report_md, paths.curves_png, paths.metrics_json, tb)
    return paths


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        v = x.item()
        return None if isinstance(v, float) and not math.isfinite(v) else v
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serializable: {type(x).__name__}")


# --------------------------------------------------------------------------- TensorBoard


def safe_name(label: str) -> str:
    """Folder-safe form of a method label: ``partial[actor]`` -> ``partial_actor``."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_.") or "method"
    return f"{name}_method" if name in _RESERVED else name


def _unique_names(labels: Iterable[str]) -> dict[str, str]:
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
    for p in logdir.glob("events.out.tfevents.*"):
        p.unlink()


def _write_events(logdir: Path, events: Sequence[Any]) -> None:
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    logdir.mkdir(parents=True, exist_ok=True)
    _clear_events(logdir)  # a rebuilt report replaces, never duplicates, its series
    writer = EventFileWriter(str(logdir))
    try:
        for ev in events:
            writer.add_event(ev)
    finally:
        writer.close()


def _scalar_event(tag: str, step: float, value: float, wall_time: float) -> Any:
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary

    return Event(
        wall_time=wall_time,
        step=int(step),
        summary=Summary(value=[Summary.Value(tag=tag, simple_value=float(value))]),
    )


def _layout_event(names: Mapping[str, str], wall_time: float) -> Any:
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
    from tensorboard.plugins.custom_scalar import layout_pb2, metadata

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
    for label, returns in res.curves.items():
        center, low, high = mt.iqm_curve(returns, reps=reps, seed=seed, backend=CURVE_BACKEND)
        name = names[label]
        for tag, series in ((iqm_tag, center), (low_tag, low), (high_tag, high)):
            events += [
                _scalar_event(tag.format(method=name), s, v, now)
                for s, v in zip(res.steps, series, strict=True)
            ]
    _write_events(tb / "aggregate", events)
    return tb
