"""Does a probe predict? The probes of ``rltransfer rank`` against an experiment's real gains.

Issue #15 point 2. An experiment whose methods transfer from several agent sources (the
*candidates*: ``sources: {name: {kind: agent, ...}}`` used as ``{method: finetune, source:
name}``, and the experiment's own source agent when a method starts from it) measures the real
gain of each candidate; ``rltransfer rank --experiment DIR``
(:func:`rltransfer.rank.rank_experiment`) scores the same candidates with the probes, and this
module compares the two. Torch-free: it reads result files and a probe table (the dict of
:meth:`rltransfer.rank.RankTable.to_dict`), so ``rltransfer report`` can rebuild it anywhere.

- **Real gain**, per candidate and method: per seed, the method's AUC (mean evaluation return
  over training) minus scratch's AUC *for the same seed*, averaged over the seeds where both
  runs finished; likewise the steps saved to the (sustained) threshold, and the speed-up
  (scratch's mean time to threshold over the method's). Per candidate, the *best other
  method* is the method other than ``finetune`` with the highest mean AUC gain.
- **Per probe** and gain: Spearman's rank correlation between the probe's score and the
  candidates' mean gains, with a percentile bootstrap CI that resamples seeds
  (:func:`rltransfer.metrics.prediction.predicts`); the regret of its top pick (the best
  candidate's mean gain minus the picked one's), also as a fraction of the best gain; the
  probe's cost in target env steps per candidate as a fraction of one transfer run's steps.
- **The goal** (issue #15): rho >= 0.8, a top pick within 10% of the best candidate's gain,
  at most 5% of a run's env steps. Each probe's verdict says which parts hold, either way.

Files, in the experiment folder: ``rank.json`` (everything, the probe table included) and
``rank.md``; :func:`write_prediction` writes both, and :func:`refresh_prediction` rebuilds
them from ``rank.json``'s probe table and the runs on disk (``rltransfer report`` does, so
they follow runs that finish later). The same inputs give the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rltransfer import metrics as mt
from rltransfer import rundir
from rltransfer._io import write_text_atomic
from rltransfer.metrics.prediction import DEFAULT_REPS, predicts
from rltransfer.report.results import Results, load_results
from rltransfer.report.tables import fmt_number

__all__ = ["BEST_OTHER", "GOAL", "MIN_CANDIDATES", "PROBE_CACHE", "RANK_JSON", "RANK_MD",
           "AgentSource", "PredictionError", "agent_sources", "evaluate_probes",
           "measured_gains", "prediction_table", "refresh_prediction", "render_prediction",
           "step_count", "verdict_lines", "write_prediction"]

RANK_JSON = "rank.json"
"""In the experiment folder: the probe table, the real gains and every probe's prediction."""
RANK_MD = "rank.md"
"""In the experiment folder: the same, as a page."""
PROBE_CACHE = "rank_probes.json"
"""In the experiment folder: every probe row computed so far, keyed by what defines it, so a
rerun takes no env step (written by :func:`rltransfer.rank.rank_experiment`)."""
FORMAT = 1
MIN_CANDIDATES = 3
"""Candidates with finished transfer runs needed to judge a ranking."""
GOAL = {"spearman": 0.8, "regret_fraction": 0.10, "cost_fraction": 0.05}
"""Issue #15's goal: rank correlation, regret over the best gain, probe cost over a run."""
BEST_OTHER = "best other"
"""The gain of each candidate's best method other than finetune (by mean AUC gain)."""
FINETUNE = "finetune"
MEAN_RANK = "mean_rank"
METRICS = ("auc", "ttt_saved")
"""The gains compared: AUC difference (the goal's) and steps saved to the threshold."""
METRIC_WORDS = {"auc": "AUC gain", "ttt_saved": "steps saved to the threshold"}


class PredictionError(ValueError):
    """An experiment folder this analysis cannot use; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class AgentSource:
    """A candidate: an agent source some method of the experiment transfers from."""

    name: str
    """Its name under ``sources:`` (``agent``: the experiment's own source agent)."""
    run_id: str
    """Its pretraining run."""
    env: dict[str, Any]
    """``{env, knobs, pixels}`` it was trained on."""
    checkpoint: Path | None
    """Its checkpoint folder (in ``runs/<run_id>/`` or the source cache); ``None`` while its
    pretraining has not finished."""

    @property
    def words(self) -> str:
        """``cartpole length=0.25 masspole=0.1``: its env and the knobs it sets."""
        knobs = self.env.get("knobs") or {}
        pix = " pixels" if self.env.get("pixels") else ""
        return " ".join([f"{self.env.get('env', '?')}{pix}",
                         *(f"{k}={v}" for k, v in sorted(knobs.items()))])


def agent_sources(out_dir: str | os.PathLike, experiment: Mapping[str, Any]
                  ) -> dict[str, AgentSource]:
    """The agent sources of an experiment (the candidates), by name, from experiment.json.

    Only sources some method uses are in experiment.json; self-supervised encoders are not
    candidates (they have no policy to probe). A source's checkpoint is looked up in the
    experiment's ``runs/<run_id>/`` (finished runs only), then in the source cache.
    """
    out = Path(out_dir)
    found: dict[str, AgentSource] = {}
    named = (experiment.get("config") or {}).get("sources") or {}
    for name, s in sorted((experiment.get("sources") or {}).items()):
        if s.get("kind") != "pretrain":
            continue
        rid = str(s["run_id"])
        run = out / rundir.RUNS / rid
        ckpt = None
        for folder in (run, Path(s["cache"]) if s.get("cache") else None):
            if folder is not None and rundir.is_done(folder) \
                    and (folder / rundir.CHECKPOINT).is_dir():
                ckpt = folder / rundir.CHECKPOINT
                break
        env: dict[str, Any] = {}
        if (run / rundir.CONFIG).is_file():
            env = dict(rundir.read_config(run).get("env") or {})
        elif name in named:
            env = {k: named[name].get(k) for k in ("env", "knobs", "pixels")}
        found[name] = AgentSource(name=name, run_id=rid, env=env, checkpoint=ckpt)
    return found


def _spec_name(spec: Any) -> str:
    if isinstance(spec, Mapping) and len(spec) == 1:
        return str(next(iter(spec)))
    return str(spec)


def _first_config(res: Results, label: str) -> dict[str, Any]:
    for r in res.runs:
        if r.kind == "transfer" and r.method == label and r.status == "done":
            return res.run_configs[r.run_id]
    return {}


def measured_gains(res: Results) -> dict[str, Any]:
    """The real gain of every candidate under every method that starts from it.

    Returns ``{"candidates", "scratch", "groups", "best_other", "notes"}``: the names of the
    candidates with at least one finished pair; scratch's seeds, AUC and time to threshold
    per seed; per method *group* (the label without ``@<candidate>``; ``finetune`` is the
    one whose spec is finetune) and candidate: its label, the paired seeds, the AUC gain and
    the steps saved (per seed, keyed by the seed as text, and their mean), the censored
    seeds and the speed-up; per candidate, its best group other than finetune.

    Raises:
        PredictionError: no agent source, no finished scratch run, or fewer than
            :data:`MIN_CANDIDATES` candidates with a finished transfer run paired with one.
    """
    exp = res.experiment
    name = exp.get("name", res.out_dir.name)
    cands = agent_sources(res.out_dir, exp)
    if not cands:
        raise PredictionError(
            f"{res.out_dir}: no method of experiment {name!r} transfers from an agent source, "
            "so there is no candidate to rank; name several under `sources: {NAME: {kind: "
            "agent, knobs: ...}}` and start methods from them (`{method: finetune, source: "
            "NAME}`), as experiments/rank_cartpole.yaml does")
    base = str(exp.get("baseline", "scratch"))
    if base not in res.curves:
        raise PredictionError(
            f"{res.out_dir}: no finished {base} run; the real gain of a candidate is its "
            f"run's AUC minus {base}'s with the same seed, so wait for (or run) the {base} "
            "runs")
    steps = res.steps
    threshold = exp.get("threshold")
    budget = float(exp["steps"]) if exp.get("steps") is not None else None
    sustain = int(exp.get("sustain", mt.DEFAULT_SUSTAIN))
    floor = float(steps[steps > 0][0]) if np.any(steps > 0) else 1.0

    def per_seed(label: str) -> tuple[dict[int, float], dict[int, float], dict[int, bool]]:
        curves = res.curves[label]
        seeds = [int(s) for s in res.seeds[label] if s is not None]
        auc = np.atleast_1d(mt.auc(steps, curves))
        aucs = {s: float(a) for s, a in zip(seeds, auc, strict=False)}
        if threshold is None:
            return aucs, {}, {}
        t, c = mt.time_to_threshold(steps, curves, float(threshold), budget, sustain)
        return (aucs, {s: float(v) for s, v in zip(seeds, np.atleast_1d(t), strict=False)},
                {s: bool(v) for s, v in zip(seeds, np.atleast_1d(c), strict=False)})

    s_auc, s_ttt, s_cens = per_seed(base)
    by_run: dict[str, list[str]] = {}
    for c in cands.values():
        by_run.setdefault(c.run_id, []).append(c.name)
    groups: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    for label in res.curves:
        if label == base:
            continue
        cfg = _first_config(res, label)
        names = by_run.get(str(cfg.get("source_id")))
        if not names:
            continue  # starts from no agent source (an encoder, its own initialization)
        cand = next((n for n in names if label.endswith(f"@{n}")), names[0])
        group = label.removesuffix(f"@{cand}")
        g = groups.setdefault(group, {"finetune": _spec_name(cfg.get("method_spec")) ==
                                      FINETUNE, "per_candidate": {}})
        if cand in g["per_candidate"]:
            notes.append(f"{label}: {cand} already has {g['per_candidate'][cand]['label']} "
                         f"in group {group}; {label} is left out")
            continue
        m_auc, m_ttt, m_cens = per_seed(label)
        paired = sorted(set(m_auc) & set(s_auc))
        if not paired:
            notes.append(f"{label}: no seed finished by both it and {base}")
            continue
        entry: dict[str, Any] = {
            "label": label, "seeds": paired,
            "auc": _gain({s: m_auc[s] - s_auc[s] for s in paired}),
        }
        if threshold is not None:
            entry["ttt_saved"] = _gain({s: s_ttt[s] - m_ttt[s] for s in paired})
            entry["censored"] = sum(m_cens[s] for s in paired)
            mean_m = float(np.mean([max(m_ttt[s], floor) for s in paired]))
            mean_s = float(np.mean([max(s_ttt[s], floor) for s in paired]))
            entry["speedup"] = _num(mean_s / mean_m)
        g["per_candidate"][cand] = entry
    # finetune first, then the others in the experiment's method order
    groups = dict(sorted(groups.items(), key=lambda kv: not kv[1]["finetune"]))
    measured = sorted({c for g in groups.values() for c in g["per_candidate"]})
    if len(measured) < MIN_CANDIDATES:
        have = ", ".join(f"{c} ({sum(c in g['per_candidate'] for g in groups.values())} "
                         "methods)" for c in sorted(cands)) or "none"
        raise PredictionError(
            f"{res.out_dir}: {len(measured)} candidate(s) with a finished transfer run paired "
            f"with a {base} run of the same seed; at least {MIN_CANDIDATES} are needed to "
            f"judge a ranking (candidates: {have}); wait for more runs to finish")
    best_other: dict[str, str] = {}
    for cand in measured:
        options = [(g["per_candidate"][cand]["auc"]["mean"], -i, k)
                   for i, (k, g) in enumerate(groups.items())
                   if not g["finetune"] and cand in g["per_candidate"]]
        if options:
            best_other[cand] = max(options)[2]
    scratch: dict[str, Any] = {"seeds": sorted(s_auc),
                               "auc": {str(s): _num(v) for s, v in sorted(s_auc.items())}}
    if threshold is not None:
        scratch["ttt"] = {str(s): _num(v) for s, v in sorted(s_ttt.items())}
        scratch["censored"] = sum(s_cens.values())
    return {"candidates": measured, "scratch": scratch, "groups": groups,
            "best_other": best_other, "notes": notes}


def _gain(values: Mapping[int, float]) -> dict[str, Any]:
    return {"per_seed": {str(s): _num(v) for s, v in sorted(values.items())},
            "mean": _num(float(np.mean(list(values.values()))))}


def _views(gains: Mapping[str, Any]) -> list[str]:
    """The gains each probe is judged against: every group, then the best other method when
    there are several others."""
    groups = list(gains["groups"])
    others = [k for k in groups if not gains["groups"][k]["finetune"]]
    return groups + ([BEST_OTHER] if len(others) > 1 else [])


def _view_entry(gains: Mapping[str, Any], view: str, cand: str) -> Mapping[str, Any] | None:
    if view == BEST_OTHER:
        group = gains["best_other"].get(cand)
        return None if group is None else gains["groups"][group]["per_candidate"][cand]
    return gains["groups"][view]["per_candidate"].get(cand)


def _probe_scores(table: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """probe label (and ``mean_rank``, negated so higher is better) -> candidate -> score."""
    out: dict[str, dict[str, float]] = {}
    probes = list(table.get("probes") or [])
    for p in [*probes, *([MEAN_RANK] if len(probes) > 1 else [])]:
        out[p] = {}
        for row in table.get("rows") or []:
            if row.get("status") == "unusable":
                continue
            s = (-row["mean_rank"] if row.get("mean_rank") is not None else None) \
                if p == MEAN_RANK else ((row.get("scores") or {}).get(p) or {}).get("score")
            if s is not None and math.isfinite(s):
                out[p][row["label"]] = float(s)
    return out


def evaluate_probes(res: Results, table: Mapping[str, Any], *, reps: int = DEFAULT_REPS,
                    seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """The ``rank.json`` document: real gains, every probe's prediction of them, verdicts.

    Args:
        res: the experiment's results (:func:`rltransfer.report.load_results`).
        table: the probe table (:meth:`rltransfer.rank.RankTable.to_dict`), its rows
            labelled by candidate name.
        reps: bootstrap resamples of the seeds
            (:func:`~rltransfer.metrics.prediction.predicts`).
        seed: the bootstrap's seed.
        level: the CIs' coverage.

    Raises:
        PredictionError: as :func:`measured_gains`.
    """
    gains = measured_gains(res)
    exp = res.experiment
    cands = agent_sources(res.out_dir, exp)
    run_steps = exp.get("steps")
    scores = _probe_scores(table)
    cost = table.get("cost") or {}
    probed = {r["label"] for r in table.get("rows") or []}
    notes = list(gains["notes"])
    unprobed = [c for c in gains["candidates"] if c not in probed]
    if unprobed:
        notes.append(f"not probed yet (their source had not finished when `rltransfer rank "
                     f"--experiment` ran; run it again): {', '.join(unprobed)}")
    predictions = []
    for probe, by_cand in scores.items():
        c = cost.get("total" if probe == MEAN_RANK else probe) or {}
        target_steps = int(c.get("target", 0))
        fraction = target_steps / run_steps if run_steps else None
        for view in _views(gains):
            for metric in METRICS:
                entries = [(cand, by_cand[cand], _view_entry(gains, view, cand))
                           for cand in gains["candidates"] if cand in by_cand]
                pairs = [(cand, s, e) for cand, s, e in entries if e is not None and metric in e]
                if not pairs:
                    continue
                entry: dict[str, Any] = {
                    "probe": probe, "gain": view, "metric": metric,
                    "candidates": [p[0] for p in pairs],
                    "cost": {"target": target_steps, "source": int(c.get("source", 0)),
                             "fraction": _num(fraction) if fraction is not None else None},
                }
                if len(pairs) >= MIN_CANDIDATES:
                    per_seed = sorted({int(s) for _, _, e in pairs
                                       for s in e[metric]["per_seed"]})
                    g = np.array([[_nan(e[metric]["per_seed"].get(str(s)))
                                   for s in per_seed] for _, _, e in pairs], dtype=float)
                    p = predicts(np.array([s for _, s, _ in pairs]), g, reps=reps, seed=seed,
                                 level=level)
                    entry.update(p)
                    entry["pick"] = pairs[p["pick"]][0]
                    entry["best"] = pairs[p["best"]][0]
                    entry["mean_gains"] = dict(zip(entry["candidates"], p["mean_gains"],
                                                   strict=True))
                if metric == "auc":
                    entry["goal"] = _goal(entry)
                predictions.append(entry)
    return {
        "format": FORMAT,
        "experiment": exp.get("name", res.out_dir.name),
        "target": (exp.get("config") or {}).get("target"),
        "run_steps": run_steps,
        "threshold": exp.get("threshold"),
        "sustain": int(exp.get("sustain", mt.DEFAULT_SUSTAIN)),
        "probe_settings": {"budget": table.get("budget"), "seed": table.get("seed"),
                           "probes": list(table.get("specs") or table.get("probes") or [])},
        "bootstrap": {"reps": reps, "seed": seed, "level": level},
        "goal": dict(GOAL),
        "sources": {n: {"run_id": c.run_id, "env": c.env, "words": c.words,
                        "finished": c.checkpoint is not None, "probed": n in probed}
                    for n, c in cands.items()},
        "gains": gains,
        "predictions": predictions,
        "probe_table": dict(table),
        "notes": notes,
    }


def _goal(e: Mapping[str, Any]) -> dict[str, Any]:
    """Whether a prediction of the AUC gain meets issue #15's goal, and why (either way)."""
    n = len(e["candidates"])
    if e.get("spearman", "missing") == "missing":
        return {"met": None, "why": [f"not judged: {n} candidate(s) scored and measured, "
                                     f"{MIN_CANDIDATES} needed"]}
    why, met = [], True
    rho = e["spearman"]
    if rho is None:
        met = False
        why.append("ρ undefined (the scores or the gains are all tied)")
    else:
        ok = rho >= GOAL["spearman"]
        met &= ok
        why.append(f"ρ {rho:.2f} {'>=' if ok else '<'} {GOAL['spearman']}")
        if ok and (e.get("low") is None or e["low"] < GOAL["spearman"]):
            why[-1] += f" (CI lower bound {_fmt(e.get('low'))}: not established at " \
                       f"{e['level']:.0%})"
    frac = e.get("regret_fraction")
    if e["regret"] == 0:
        why.append("top pick is the best candidate")
    elif frac is None:
        met = False
        why.append(f"regret {_fmt(e['regret'])}, and no candidate beats scratch (best gain "
                   f"{_fmt(e['mean_gains'][e['best']])}), so 'within 10% of it' is undefined")
    else:
        ok = frac <= GOAL["regret_fraction"]
        met &= ok
        why.append(f"regret {frac:.0%} of the best gain {'<=' if ok else '>'} "
                   f"{GOAL['regret_fraction']:.0%}")
    f = e["cost"]["fraction"]
    if f is None:
        met = False
        why.append("cost unknown (no run budget)")
    else:
        ok = f <= GOAL["cost_fraction"] + 1e-12
        met &= ok
        why.append(f"cost {f:.1%} of a run {'<=' if ok else '>'} {GOAL['cost_fraction']:.0%}")
    return {"met": bool(met), "why": why}


# --------------------------------------------------------------------------- files


def write_prediction(out_dir: str | os.PathLike, table: Mapping[str, Any], *,
                     reps: int = DEFAULT_REPS, seed: int = 0,
                     res: Results | None = None) -> dict[str, Any]:
    """Compute :func:`evaluate_probes` and write ``rank.json`` and ``rank.md`` atomically.

    Returns the document. Raises :class:`PredictionError` (nothing written) when the folder
    cannot be judged yet.
    """
    res = load_results(out_dir) if res is None else res
    doc = evaluate_probes(res, table, reps=reps, seed=seed)
    out = Path(out_dir)
    write_text_atomic(out / RANK_JSON, json.dumps(doc, indent=2, sort_keys=True,
                                                  allow_nan=False) + "\n")
    write_text_atomic(out / RANK_MD, render_prediction(doc))
    return doc


def refresh_prediction(out_dir: str | os.PathLike, res: Results | None = None
                       ) -> dict[str, Any] | None:
    """Rebuild ``rank.json`` and ``rank.md`` from ``rank.json``'s probe table and the runs on
    disk (no env step); ``None`` when the folder has no ``rank.json``."""
    path = Path(out_dir) / RANK_JSON
    if not path.is_file():
        return None
    old = json.loads(path.read_text(encoding="utf-8"))
    boot = old.get("bootstrap") or {}
    return write_prediction(out_dir, old["probe_table"], reps=int(boot.get("reps", DEFAULT_REPS)),
                            seed=int(boot.get("seed", 0)), res=res)


# --------------------------------------------------------------------------- rank.md


def step_count(x: int | None) -> str:
    """A step count with thousands separators (``5,000``), ``n/a`` when unknown."""
    return "n/a" if x is None else f"{int(x):,}"


def _fmt(x: float | None) -> str:
    return fmt_number(x)


def _signed(x: float | None) -> str:
    return "n/a" if x is None else ("+" if x >= 0 else "") + fmt_number(x)


def _rho(e: Mapping[str, Any]) -> str:
    if "spearman" not in e:
        return f"n/a ({len(e['candidates'])} candidates)"
    if e["spearman"] is None:
        return "undefined (ties)"
    ci = f" [{e['low']:.2f}, {e['high']:.2f}]" if e.get("low") is not None else ""
    return f"{e['spearman']:.2f}{ci}"


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def prediction_table(doc: Mapping[str, Any], metric: str = "auc") -> list[str]:
    """The Markdown table of every probe's prediction of one gain (``auc``: with the goal)."""
    rows = [e for e in doc["predictions"] if e["metric"] == metric]
    if not rows:
        return ["(no prediction: no candidate both scored and measured)"]
    goal = metric == "auc"
    head = ["probe", "gain of", "n", "Spearman ρ [95% CI]", "top pick (its gain)",
            "best (its gain)", "regret", "regret / best", "target steps (of a run)",
            "source steps"] + (["goal"] if goal else [])
    lines = [_md_row(head), "|" + "|".join(["---"] * 2 + ["---:"] + ["---"] * 3
                                            + ["---:"] * 4 + (["---"] if goal else [])) + "|"]
    for e in rows:
        gains = e.get("mean_gains") or {}
        pick = f"{e['pick']} ({_signed(gains.get(e['pick']))})" if "pick" in e else "n/a"
        best = f"{e['best']} ({_signed(gains.get(e['best']))})" if "best" in e else "n/a"
        regret = _fmt(e.get("regret")) if "regret" in e else "n/a"
        if e.get("regret_low") is not None and e.get("regret") not in (None, 0):
            regret += f" [{_fmt(e['regret_low'])}, {_fmt(e['regret_high'])}]"
        frac = e.get("regret_fraction")
        frac_text = f"{frac:.0%}" if frac is not None else ("0%" if e.get("regret") == 0
                                                            else "n/a")
        c = e["cost"]
        cost = f"{c['target']:,}" + (f" ({c['fraction']:.1%})" if c["fraction"] is not None
                                     else "")
        cells = [e["probe"], e["gain"], str(len(e["candidates"])), _rho(e), pick, best, regret,
                 frac_text, cost, f"{c['source']:,}"]
        if goal:
            g = e["goal"]
            cells.append({True: "**met**", False: "missed", None: "not judged"}[g["met"]])
        lines.append(_md_row(cells))
    return lines


def _auc_table(doc: Mapping[str, Any]) -> list[str]:
    gains = doc["gains"]
    groups = list(gains["groups"])
    best = len(_views(gains)) > len(groups)
    head = ["candidate", "source", *(f"{g}: Δ AUC (seeds)" for g in groups),
            *([BEST_OTHER] if best else [])]
    lines = [_md_row(head), "|---|---|" + "---:|" * len(groups) + ("---|" if best else "")]
    for cand in gains["candidates"]:
        cells = [cand, doc["sources"].get(cand, {}).get("words", "?")]
        for g in groups:
            e = gains["groups"][g]["per_candidate"].get(cand)
            cells.append("—" if e is None else f"{_signed(e['auc']['mean'])} ({len(e['seeds'])})")
        if best:
            cells.append(gains["best_other"].get(cand, "—"))
        lines.append(_md_row(cells))
    return lines


def _ttt_table(doc: Mapping[str, Any]) -> list[str]:
    gains = doc["gains"]
    groups = list(gains["groups"])
    lines = [_md_row(["candidate", *(f"{g}: speed-up, steps saved" for g in groups)]),
             "|---|" + "---:|" * len(groups)]
    for cand in gains["candidates"]:
        cells = [cand]
        for g in groups:
            e = gains["groups"][g]["per_candidate"].get(cand)
            if e is None:
                cells.append("—")
                continue
            cens = f", {e['censored']}/{len(e['seeds'])} censored" if e.get("censored") else ""
            sp = e.get("speedup")
            cells.append(f"{'n/a' if sp is None else f'{sp:.2f}×'}, "
                         f"{_signed(e['ttt_saved']['mean'])}{cens}")
        lines.append(_md_row(cells))
    return lines


def _probe_score_table(table: Mapping[str, Any]) -> list[str]:
    probes = list(table.get("probes") or [])
    rows = [r for r in table.get("rows") or [] if r.get("status") != "unusable"]
    if not rows:
        return ["(no candidate probed)"]
    extra = [MEAN_RANK] if len(probes) > 1 else []
    head = ["candidate", "source", "own return", *probes, *extra, "target steps",
            "source steps"]
    lines = [_md_row(head), "|---|---|" + "---:|" * (len(head) - 2)]
    for r in sorted(rows, key=lambda r: r["label"]):
        own = r.get("own_return")
        cells = [r["label"], r.get("source", ""), "n/a" if own is None else f"{own:,.4g}"]
        for p in probes:
            s = ((r.get("scores") or {}).get(p) or {}).get("score")
            cells.append("n/a" if s is None else f"{s:.4g}")
        if extra:
            cells.append("n/a" if r.get("mean_rank") is None else f"{r['mean_rank']:.3g}")
        cells += [f"{r.get('target_steps', 0):,}", f"{r.get('source_steps', 0):,}"]
        lines.append(_md_row(cells))
    notes = [f"{r['label']}: {p}: {s['note']}" for r in table.get("rows") or []
             for p, s in sorted((r.get("scores") or {}).items()) if s.get("note")]
    notes += [f"{r['label']}: unusable: {r.get('reason', '')}" for r in table.get("rows") or []
              if r.get("status") == "unusable"]
    return lines + (["", *(f"- {n}" for n in notes)] if notes else [])


def verdict_lines(doc: Mapping[str, Any]) -> list[str]:
    """One line per probe: for each gain, whether it meets the goal and why."""
    by_probe: dict[str, list[str]] = {}
    for e in doc["predictions"]:
        if e["metric"] != "auc":
            continue
        g = e["goal"]
        state = {True: "meets the goal", False: "misses the goal", None: "not judged"}[g["met"]]
        by_probe.setdefault(e["probe"], []).append(
            f"{e['gain']}: {state} ({'; '.join(g['why'])})")
    return [f"- **{p}**: " + ". ".join(parts) + "." for p, parts in by_probe.items()]


def render_prediction(doc: Mapping[str, Any]) -> str:
    """``rank.md``: the verdicts, the real gains, each probe's prediction, the probe scores
    and how it is all computed."""
    gains = doc["gains"]
    ps = doc["probe_settings"]
    target = doc.get("target") or {}
    run_steps = doc.get("run_steps")
    budget = ps.get("budget")
    sources = doc["sources"]
    n_probed = sum(s["probed"] for s in sources.values())
    boot = doc["bootstrap"]
    t_words = f"`{target.get('env', '?')}`" + (
        f" {json.dumps(target['knobs'], sort_keys=True)}" if target.get("knobs") else "")
    frac = (f" ({budget / run_steps:.1%} of one transfer run's {run_steps:,} steps)"
            if budget and run_steps else "")
    others = [g for g, v in gains["groups"].items() if not v["finetune"]]
    lines = [
        f"# Does a probe predict? {doc['experiment']}", "",
        f"Target {t_words}; {len(sources)} candidate sources, {len(gains['candidates'])} with "
        f"finished transfer runs; scratch seeds {gains['scratch']['seeds']}. Probes: budget "
        f"{step_count(budget)} target steps per candidate{frac}, seed {ps.get('seed')}; "
        f"{n_probed} of {len(sources)} candidates probed.",
        "",
        f"**Goal (issue #15):** a probe whose Spearman rank correlation with the real gain is "
        f"at least {GOAL['spearman']}, whose top pick is within {GOAL['regret_fraction']:.0%} "
        f"of the best candidate's gain, at a cost of at most {GOAL['cost_fraction']:.0%} of "
        "one transfer run's environment steps (target steps per candidate; the steps some "
        "probes take on a candidate's own env are listed apart).",
        "",
        "## Verdicts (AUC gain)", "",
        *verdict_lines(doc), "",
        "## Prediction of the AUC gain", "",
        *prediction_table(doc, "auc"), "",
    ]
    if doc.get("threshold") is not None:
        lines += ["## Prediction of the steps saved to the threshold", "",
                  *prediction_table(doc, "ttt_saved"), ""]
    lines += [
        "## Real gain per candidate", "",
        "Δ AUC: per seed, the method's AUC (mean evaluation return over training) minus "
        "scratch's AUC for the same seed, averaged over the seeds where both finished (their "
        "number in brackets)."
        + (f" {BEST_OTHER}: the method other than finetune with the highest mean Δ AUC for "
           f"that candidate (of: {', '.join(others)}), chosen on all seeds and held fixed in "
           "the bootstrap." if len(others) > 1 else ""),
        "",
        *_auc_table(doc), "",
    ]
    if doc.get("threshold") is not None:
        lines += [
            f"Speed-up: scratch's mean sustained time to threshold "
            f"({fmt_number(doc['threshold'])}, {doc['sustain']} evaluations in a row) over the "
            "method's, on the paired seeds (a time of 0 counts as one evaluation interval; a "
            "censored run counts as the budget). Steps saved: scratch's time minus the "
            "method's, per seed, averaged.", "",
            *_ttt_table(doc), "",
        ]
    lines += ["## Probe scores", "",
              "Higher = predicted better transfer (mean_rank: lower first). Own return: "
              "each candidate's last evaluation on its own env, from its card; not a probe "
              "(no env step), shown because a source that never learned its own task can "
              "still score well on the target.", "",
              *_probe_score_table(doc["probe_table"]), "",
              "## How it is computed", "",
              f"- Spearman ρ between a probe's score and the candidates' mean gain (ties share "
              f"their mean rank); its {boot['level']:.0%} CI is a percentile bootstrap over "
              f"seeds ({boot['reps']} resamples, seed {boot['seed']}): each resample draws the "
              "seeds with replacement, the same draw for every candidate (a seed's scratch run "
              "is shared by all its gains), recomputes each candidate's mean gain and ρ. "
              "Resamples where the gains tie, or a candidate draws none of its seeds, are "
              "left out.",
              "- The CI covers the seeds of the transfer runs only: each candidate was "
              "pretrained once (one source seed) and probed once (one probe seed), and "
              "neither is resampled.",
              "- Regret: the best candidate's mean gain minus that of the probe's top pick "
              "(ties in score: the first candidate by name), with a bootstrap CI (the pick "
              "held fixed, the best taken anew in each resample); regret / best is the goal's "
              "10%, undefined when no candidate beats scratch.",
              "- Cost: the most target env steps the probe spent on any candidate (probes "
              "that read one rollout share it), over one transfer run's steps.",
              "- mean_rank: each candidate's rank under every probe, averaged (negated to "
              "be a score); its cost is that of all the probes together."]
    if doc["notes"]:
        lines += ["", "## Notes", "", *(f"- {n}" for n in doc["notes"])]
    return "\n".join(lines).rstrip() + "\n"


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return float(f"{x:.12g}") if math.isfinite(x) else None



def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)
