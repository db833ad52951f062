"""``rltransfer calibrate DIR``: the interval and verdict study on a pool folder, as files.

:func:`load_pool` turns an experiment folder of many seeds (``scratch`` and one method, the
method's seeds with sources of their own) into a :class:`rltransfer.metrics.calibration.Pool`
with the same per-run numbers the reports use; :func:`write_calibration` runs the study and
writes ``calibration.json`` and ``calibration.md`` beside the folder's report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rltransfer import metrics as mt
from rltransfer._io import write_bytes_atomic
from rltransfer.metrics import calibration as cal
from rltransfer.report.results import load_results
from rltransfer.report.tables import fmt_number

__all__ = ["load_pool", "render_calibration", "study_size", "write_calibration"]


def load_pool(out_dir: str | os.PathLike[str], method: str = "finetune",
              baseline: str = "scratch") -> tuple[cal.Pool, dict[str, Any]]:
    """The pool of an experiment folder, and what it is (``{"n_scratch", "n_method",
    "n_sources", "method", "threshold", "budget", "censored_scratch", "censored_method"}``).

    Raises:
        ValueError: naming the method or baseline that has too few finished runs, or a
            folder without a threshold.
    """
    res = load_results(out_dir)
    exp = res.experiment
    if exp.get("threshold") is None:
        raise ValueError(f"{out_dir}: the experiment has no threshold: no time to threshold")
    for label in (baseline, method):
        if res.curves.get(label) is None or len(res.curves[label]) < 2:
            found = {k: len(v) for k, v in res.curves.items()}
            raise ValueError(f"{out_dir}: method {label!r} has fewer than 2 finished runs "
                             f"(finished runs per method: {found})")
    threshold, budget = float(exp["threshold"]), float(exp["steps"])
    sustain = int(exp.get("sustain", mt.DEFAULT_SUSTAIN))
    positive = res.steps[res.steps > 0]
    floor = float(positive[0])

    def numbers(label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        m = mt.per_run_metrics(res.steps, res.curves[label], threshold=threshold,
                               budget=budget, sustain=sustain)
        return m["auc"], np.maximum(m["time_to_threshold"], floor), m["censored"]

    s_auc, s_ttt, s_cens = numbers(baseline)
    m_auc, m_ttt, m_cens = numbers(method)
    by_run = {r.run_id: r for r in res.runs}
    sources = []
    for rid, cfg in res.run_configs.items():
        r = by_run.get(rid)
        if r is not None and r.kind == "transfer" and r.method == method and r.status == "done":
            sources.append((r.seed, str(cfg.get("source_id"))))
    seeds = res.seeds[method]
    source_of = dict(sources)
    names = sorted(set(source_of.values()))
    groups = np.array([names.index(source_of[s]) for s in seeds])
    pool = cal.Pool(s_auc, m_auc, s_ttt, m_ttt, groups, s_cens, m_cens)
    about = {"method": method, "baseline": baseline, "n_scratch": int(s_auc.size),
             "n_method": int(m_auc.size), "n_sources": pool.n_sources,
             "threshold": threshold, "budget": budget, "sustain": sustain, "floor": floor,
             "censored_scratch": int(s_cens.sum()), "censored_method": int(m_cens.sum()),
             "experiment": exp.get("name")}
    return pool, about


QUANTITIES = {
    "auc_difference": "IQM difference of AUC (method − scratch)",
    "auc_method": "IQM of AUC, the method",
    "auc_scratch": "IQM of AUC, scratch",
    "speedup": "time-to-threshold speed-up",
}
DESIGNS = {"per_seed": "one source per seed (5 distinct sources)",
           "one_source": "one source for all 5 seeds"}
FAMILY_SIZES = (6, 12)
"""Family sizes of the family-wise error study."""
POWER_SEEDS = (3, 5, 10, 20)
POWER_FAMILIES = (1, 6, 12)
"""Seeds and family sizes of the power study (``draws // 4`` draws each)."""


def study_size(draws: int) -> int:
    """Draws :func:`write_calibration` makes in all (for a progress bar)."""
    return (draws * len(DESIGNS) + draws * len(FAMILY_SIZES)
            + (draws // 4) * len(POWER_SEEDS) * len(POWER_FAMILIES))


def write_calibration(out_dir: str | os.PathLike[str], *, method: str = "finetune",
                      draws: int = 4000, n_seeds: int = 5, seed: int = 0,
                      progress: Callable[[int], None] | None = None,
                      ) -> tuple[Path, dict[str, Any]]:
    """Run the study on a pool folder and write ``calibration.json`` and ``calibration.md``.

    Returns:
        The path of calibration.md and the JSON document.
    """
    pool, about = load_pool(out_dir, method)
    doc = {
        "pool": about,
        "settings": {"draws": draws, "n_seeds": n_seeds, "seed": seed, "level": cal.LEVEL,
                     "alpha": cal.ALPHA},
        "coverage": cal.coverage(pool, n_seeds=n_seeds, draws=draws, seed=seed,
                                 designs=tuple(DESIGNS), progress=progress),
        "family_error": cal.family_error(pool.scratch_auc, family_sizes=FAMILY_SIZES,
                                         n_seeds=n_seeds, draws=draws, seed=seed + 1,
                                         progress=progress),
        "power": cal.power(pool, seeds=POWER_SEEDS, family_sizes=POWER_FAMILIES,
                           draws=draws // 4, seed=seed + 2, progress=progress),
    }
    out = Path(out_dir)
    text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    write_bytes_atomic(out / "calibration.json", text.encode())
    md = out / "calibration.md"
    write_bytes_atomic(md, render_calibration(doc).encode("utf-8"))
    return md, doc


def _pct(r: dict[str, Any]) -> str:
    return f"{100 * r['rate']:.1f}% ± {100 * r['mc_error']:.1f}"


INTERVAL_WORDS = {
    "percentile": "percentile bootstrap (rliable, 2,000 resamples)",
    "yuen_welch": "Yuen's trimmed t, Welch's df",
    "yuen_hsu": "Yuen's trimmed t, Hsu's df min(h) − 1",
    "trimmed_t": "one-sample trimmed t (Tukey-McLaughlin)",
    "ratio_t": "delta-method t on the log ratio, Welch's df",
}
RULE_WORDS = {
    "percentile": "each method's percentile bootstrap CI excludes 0 (the reports' rule before)",
    "yuen_welch": "each method's Yuen interval (Welch's df) excludes 0, unadjusted",
    "yuen_hsu": "each method's Yuen interval (Hsu's df) excludes 0, unadjusted (the raw "
                "verdict now)",
    "holm_welch": "Holm's procedure over the family, Yuen's test with Welch's df",
    "holm_hsu": "Holm's procedure over the family, Yuen's test with Hsu's df (adopted: the "
                "family-wise verdict)",
}


def render_calibration(doc: dict[str, Any]) -> str:
    """calibration.md: the pool, then coverage, family-wise error and power tables."""
    p, st = doc["pool"], doc["settings"]
    n = st["n_seeds"]
    lines = [
        f"# Calibration of the intervals and verdicts: {p['experiment']}",
        "",
        f"Pool: {p['n_scratch']} runs of {p['baseline']} and {p['n_method']} of {p['method']} "
        f"from {p['n_sources']} source runs; threshold {fmt_number(p['threshold'])} (sustained "
        f"{p['sustain']} evaluations), budget {fmt_number(p['budget'])} steps; censored at the "
        f"budget: {p['censored_scratch']} of {p['baseline']}'s runs, {p['censored_method']} of "
        f"{p['method']}'s. {st['draws']:,} experiments of {n} seeds per method drawn from the "
        f"pool with replacement (seed {st['seed']}); an interval *covers* when it contains the "
        "pool's value (the same statistic over the whole pool). ± is the Monte Carlo standard "
        "error of the rate. Made by `rltransfer calibrate DIR` (docs/metrics.md).",
        "",
        "Pool values: " + "; ".join(f"{QUANTITIES[q]} {fmt_number(v)}"
                                    for q, v in doc["coverage"]["values"].items()) + ".",
        "",
        f"## Coverage of the nominal {st['level']:.0%} intervals, {n} seeds",
        "",
        "| design | quantity | interval | coverage | median width |",
        "|---|---|---|---|---|",
    ]
    for design, words in DESIGNS.items():
        cov = doc["coverage"].get(design)
        if cov is None:
            continue
        for q, label in QUANTITIES.items():
            for k, r in cov[q].items():
                name = INTERVAL_WORDS.get(k, k)
                if cal.ADOPTED.get(q) == k:
                    name = f"**{name}** (adopted)"
                lines.append(f"| {words} | {label} | {name} | {_pct(r)} "
                             f"| {fmt_number(r['width'])} |")
    lines += [
        "",
        f"## Family-wise error under the null, {n} seeds",
        "",
        "A baseline and k methods, every one of them drawn from the scratch runs: the rate at "
        "which a rule calls at least one method positive or negative (should be at most "
        f"{st['alpha']:.0%}).",
        "",
        "| rule | " + " | ".join(f"k = {k}" for k in doc["family_error"]) + " |",
        "|---|" + "---|" * len(doc["family_error"]),
    ]
    for rule, words in RULE_WORDS.items():
        lines.append(f"| {words} | " + " | ".join(_pct(v[rule]) for v in
                                                   doc["family_error"].values()) + " |")
    seeds = list(next(iter(doc["power"].values())))
    lines += [
        "",
        "## Power of the adopted rule",
        "",
        f"The rate at which the adopted rule (Holm's procedure over Yuen's tests, Hsu's df) "
        f"calls {p['method']} positive, in a family of "
        f"{p['method']} and k − 1 methods that are scratch in disguise, with n seeds each "
        f"({p['method']}'s from distinct sources), against the pool's effect of "
        f"{fmt_number(doc['coverage']['values']['auc_difference'])} AUC.",
        "",
        "| family size k | " + " | ".join(f"n = {s}" for s in seeds) + " |",
        "|---|" + "---|" * len(seeds),
    ]
    for k, row in doc["power"].items():
        lines.append(f"| {k} | " + " | ".join(_pct(row[s]) for s in seeds) + " |")
    return "\n".join(lines) + "\n"
