"""One table over many experiments: the README's results table.

:func:`summary_table` reads each experiment folder's ``metrics.json`` (nothing else, so it
works on the committed ``docs/results/*``) and writes one markdown row per experiment: the
pair, the algorithm, the budget, the best method by the primary metric (AUC difference to
scratch), that method's speed-up in time to threshold (marked as an estimate, a bound, "at
step 0" or "not measured", with how many seeds' times were censored at the budget, on either
side) and its AUC difference with their 95% CIs, its verdict, its family-wise verdict (Holm
over all of the experiment's methods, with the family's size), and the command that
regenerates the row.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rltransfer.report.tables import censored, fmt_number, fmt_signed, fmt_speedup

HEADER = (
    "| experiment | pair | algo | budget | best method (by ΔAUC) | speed-up to threshold "
    "| ΔAUC vs scratch | verdict | family-wise | regenerate |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


def best_method(metrics: Mapping[str, Any]) -> str | None:
    """The non-baseline method with the largest IQM AUC difference to the baseline."""
    best, best_d = None, None
    for label, e in metrics["methods"].items():
        d = (e.get("difference") or {}).get(metrics.get("primary_metric", "auc"), {})
        if d.get("iqm") is not None and (best_d is None or d["iqm"] > best_d):
            best, best_d = label, d["iqm"]
    return best


def summary_row(folder: str | os.PathLike[str], command: str | None = None) -> str:
    """The markdown row of one experiment folder (holding ``metrics.json``)."""
    folder = Path(folder)
    doc = json.loads((folder / "metrics.json").read_text())
    exp, m = doc["experiment"], doc.get("metrics")
    name = exp.get("name") or folder.name
    seeds = list(exp.get("seeds") or [])
    flag = f" --seeds {len(seeds)}" if seeds and seeds == list(range(len(seeds))) else ""
    cmd = command or f"`rltransfer run {name}{flag} --out {folder.as_posix()}`"
    cells = [f"[{name}]({folder.as_posix()}/README.md)", f"`{exp.get('pair')}`",
             str(exp.get("algo")), fmt_number(exp.get("steps"))]
    label = best_method(m) if m else None
    if label is None:
        return "| " + " | ".join([*cells, "—", "—", "—", "no result", "—", cmd]) + " |"
    e = m["methods"][label]
    d = e["difference"][m.get("primary_metric", "auc")]
    speed = fmt_speedup(e.get("time_to_threshold_speedup")) + _censored(m, e) \
        if m.get("threshold") is not None else "no threshold"
    family = m.get("family") or {}
    holm = (f"{e['verdict_holm']} (of {family.get('size')})" if e.get("verdict_holm")
            else "—")
    return "| " + " | ".join([*cells, label, speed, fmt_signed(d), e.get("verdict", "—"),
                              holm, cmd]) + " |"


def _censored(metrics: Mapping[str, Any], e: Mapping[str, Any]) -> str:
    """`` (censored: scratch 5/5, method 2/5)`` when a time to threshold was censored at the
    budget on either side: the speed-up is then a lower bound (scratch's side), an upper bound
    (the method's) or, with both, neither (the report's notes say which)."""
    base = metrics["methods"].get(metrics.get("baseline", "scratch"), {})
    sides = [(who, *censored(x)) for who, x in (("scratch", base), ("method", e))]
    if not any(k for _, k, _ in sides):
        return ""
    return " (censored: " + ", ".join(f"{who} {k}/{n}" for who, k, n in sides if k) + ")"


def summary_table(folders: Iterable[str | os.PathLike[str]]) -> str:
    """:data:`HEADER` and one :func:`summary_row` per folder."""
    return "\n".join([HEADER, *(summary_row(f) for f in folders)])


__all__ = ["HEADER", "best_method", "summary_row", "summary_table"]
