"""The result of a ranking: one row per candidate, as text, Markdown or JSON.

Rows are sorted by one probe's score (higher first) or by ``mean_rank`` (each candidate's
rank under every probe, averaged; lower first). Candidates a probe could not score come
after those it scored, and unusable candidates come last, with the reason.

Example:
    >>> row = Row(label="a", path="ckpt/a", algo="ppo", source="cartpole length=0.25",
    ...           status="ok", scores={"jumpstart": ProbeScore(180.0, 200, 0)})
    >>> table = RankTable(target="cartpole", budget=200, seed=0, probes=["jumpstart"],
    ...                   sort_by="jumpstart", rows=[row])
    >>> table.best, table.to_dict()["rows"][0]["scores"]["jumpstart"]["score"]
    ('a', 180.0)
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

__all__ = ["MEAN_RANK", "ProbeScore", "RankTable", "Row", "mean_ranks", "own_return"]

MEAN_RANK = "mean_rank"
"""``sort_by`` value: each candidate's rank under every probe (1 = best), averaged."""
COST_TITLE = ("cost per candidate in env steps (the most any candidate spent; the total "
              "counts a rollout that probes share once)")
CAVEAT = ("higher = predicted better transfer; against real gains, the probes met issue "
          "#15's goal on CartPole and missed it on a Hopper target (docs/rank.md)")


@dataclasses.dataclass(frozen=True)
class ProbeScore:
    """One probe on one candidate: the score (``None``: not scored, ``note`` says why), the
    target and source environment steps the probe's rollouts took, and the numbers behind
    the score."""

    score: float | None
    target_steps: int
    source_steps: int
    note: str = ""
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {"score": self.score, "target_steps": self.target_steps,
                "source_steps": self.source_steps, "note": self.note,
                "details": dict(self.details)}


@dataclasses.dataclass(frozen=True)
class Row:
    """One candidate: where it is, what it was trained on, whether it fits the target
    (``status``: ``ok``, ``adapted`` through an adapter, or ``unusable`` with ``reason``),
    its probe scores, what it cost in all (each rollout counted once), and ``own_return``:
    its last evaluation on its own env, read from its card (no env step; ``None`` when the
    card has none). Not a probe: it shows a source that never learned its own task, which a
    probe on the target can miss (docs/results/rank_hopper)."""

    label: str
    path: str
    algo: str | None
    source: str
    status: Literal["ok", "adapted", "unusable"]
    reason: str = ""
    scores: Mapping[str, ProbeScore] = dataclasses.field(default_factory=dict)
    target_steps: int = 0
    source_steps: int = 0
    mean_rank: float | None = None
    own_return: float | None = None

    def score(self, probe: str) -> float | None:
        """The score of ``probe`` (or the mean rank), ``None`` when there is none."""
        if probe == MEAN_RANK:
            return self.mean_rank
        s = self.scores.get(probe)
        return None if s is None else s.score

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {"label": self.label, "path": self.path, "algo": self.algo,
                "source": self.source, "status": self.status, "reason": self.reason,
                "scores": {k: v.to_dict() for k, v in self.scores.items()},
                "target_steps": self.target_steps, "source_steps": self.source_steps,
                "mean_rank": self.mean_rank, "own_return": self.own_return}


def own_return(card: Mapping[str, Any]) -> float | None:
    """A checkpoint card's last evaluation on its own env (``evaluation.mean``), or ``None``.

    Example:
        >>> own_return({"evaluation": {"mean": 892.15, "episodes": 5}})
        892.15
        >>> own_return({"evaluation": None}) is None
        True
    """
    mean = (card.get("evaluation") or {}).get("mean")
    if isinstance(mean, bool) or not isinstance(mean, (int, float)) or not math.isfinite(mean):
        return None
    return float(mean)


def mean_ranks(rows: list[Row], probes: list[str]) -> list[float | None]:
    """Each row's rank under each probe (1 = highest score, ties share the mean rank),
    averaged over the probes that scored it; ``None`` for a row none scored.

    Example:
        >>> rows = [Row("a", "a", "ppo", "", "ok", scores={"p": ProbeScore(1.0, 0, 0),
        ...                                               "q": ProbeScore(5.0, 0, 0)}),
        ...         Row("b", "b", "ppo", "", "ok", scores={"p": ProbeScore(2.0, 0, 0),
        ...                                               "q": ProbeScore(5.0, 0, 0)})]
        >>> mean_ranks(rows, ["p", "q"])
        [1.75, 1.25]
    """
    per_row: list[list[float]] = [[] for _ in rows]
    for probe in probes:
        scored = [(i, r.score(probe)) for i, r in enumerate(rows)]
        values = [(i, s) for i, s in scored if s is not None and math.isfinite(s)]
        for i, s in values:
            higher = sum(1 for _, t in values if t > s)
            ties = sum(1 for _, t in values if t == s)
            per_row[i].append(higher + (ties + 1) / 2.0)
    return [float(np.mean(r)) if r else None for r in per_row]


@dataclasses.dataclass(frozen=True)
class RankTable:
    """Candidates ranked for one target: :meth:`text`, :meth:`markdown`, :meth:`to_dict`,
    :meth:`to_json`; ``str(table)`` is the text."""

    target: str
    """The target env and its knobs, in words."""
    budget: int
    """Target steps each probe could spend per candidate."""
    seed: int
    probes: list[str]
    """The probes' labels, in the order given."""
    sort_by: str
    """The probe whose score orders the rows (higher first), or ``mean_rank`` (lower
    first)."""
    rows: list[Row]
    specs: list[Any] = dataclasses.field(default_factory=list)
    """Each probe's spec (name, or ``{name: {options}}``)."""

    @property
    def best(self) -> str | None:
        """The label of the top candidate, ``None`` when no candidate was scored."""
        top = self.rows[0] if self.rows else None
        return top.label if top is not None and top.score(self.sort_by) is not None else None

    def ranking(self, probe: str | None = None) -> list[str]:
        """Labels of the scored candidates, best first, by ``probe`` (default:
        :attr:`sort_by`)."""
        probe = probe or self.sort_by
        return [r.label for r in sort_rows(self.rows, probe) if r.score(probe) is not None]

    def cost(self) -> dict[str, dict[str, int]]:
        """Per probe and in ``total``: the most target and source steps any candidate
        spent (``total`` counts each shared rollout once)."""
        usable = [r for r in self.rows if r.status != "unusable"]
        out = {}
        for p in self.probes:
            out[p] = {"target": max((r.scores[p].target_steps for r in usable
                                     if p in r.scores), default=0),
                      "source": max((r.scores[p].source_steps for r in usable
                                     if p in r.scores), default=0)}
        out["total"] = {"target": max((r.target_steps for r in usable), default=0),
                        "source": max((r.source_steps for r in usable), default=0)}
        return out

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-able: target, budget, seed, probes, sort key, cost, rows."""
        return {"target": self.target, "budget": self.budget, "seed": self.seed,
                "probes": list(self.probes), "specs": list(self.specs),
                "sort_by": self.sort_by, "higher_is_better": self.sort_by != MEAN_RANK,
                "cost": self.cost(), "caveat": CAVEAT,
                "rows": [r.to_dict() for r in self.rows]}

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON (missing scores are ``null``)."""
        return json.dumps(self.to_dict(), indent=2, default=_jsonable) + "\n"

    def _header(self) -> list[str]:
        order = "lower first" if self.sort_by == MEAN_RANK else "higher first"
        n = sum(r.status != "unusable" for r in self.rows)
        return [f"target {self.target}; budget {self.budget} target steps per probe; "
                f"seed {self.seed}; {n} of {len(self.rows)} candidates usable",
                f"sorted by {self.sort_by} ({order}); {CAVEAT}"]

    def _grid(self) -> tuple[list[str], list[list[str]]]:
        cols = ["rank", "candidate", "source", "algo", "own return", *self.probes]
        if len(self.probes) > 1:
            cols.append(MEAN_RANK)
        cols += ["target steps", "source steps"]
        body = []
        for i, r in enumerate(r for r in self.rows if r.status != "unusable"):
            cells = [str(i + 1), r.label + (" (adapted)" if r.status == "adapted" else ""),
                     r.source, r.algo or "?", _num(r.own_return)]
            cells += [_num(r.score(p)) for p in self.probes]
            if len(self.probes) > 1:
                cells.append(_num(r.mean_rank, digits=3))
            cells += [str(r.target_steps), str(r.source_steps)]
            body.append(cells)
        return cols, body

    def _notes(self) -> tuple[list[str], list[str]]:
        """``(notes, unusable)``: one line per note of a probe or adapter, one per unusable
        candidate with its reason."""
        notes = [f"{r.label}: {p}: {s.note}" for r in self.rows for p, s in r.scores.items()
                 if s.note]
        notes += [f"{r.label}: {r.reason}" for r in self.rows
                  if r.status == "adapted" and r.reason]
        unusable = [f"{r.label}: {r.reason}" for r in self.rows if r.status == "unusable"]
        return notes, unusable

    def text(self) -> str:
        """A fixed-width table with the header, the cost, notes and unusable candidates."""
        cols, body = self._grid()
        out = [*self._header(), "", *(_aligned(cols, body, left={1, 2, 3}) if body
                                      else ["(no usable candidate)"])]
        if body:
            cost = [[p, str(c["target"]), str(c["source"])] for p, c in self.cost().items()]
            out += ["", COST_TITLE + ":",
                    *("  " + ln for ln in _aligned(["probe", "target", "source"], cost,
                                                   left={0}))]
        notes, unusable = self._notes()
        for title, lines in (("notes", notes), ("unusable", unusable)):
            if lines:
                out += ["", f"{title}:", *(f"  {ln}" for ln in lines)]
        return "\n".join(out).rstrip() + "\n"

    def markdown(self) -> str:
        """The same as Markdown: the header as a paragraph, the ranking and the cost as
        tables, notes and unusable candidates as lists."""
        cols, body = self._grid()
        head = self._header()
        out = [f"**{head[0]}**", "", head[1], ""]
        out += _md_table(cols, body, left={1, 2, 3}) if body else ["(no usable candidate)"]
        if body:
            cost = [[p, str(c["target"]), str(c["source"])] for p, c in self.cost().items()]
            out += ["", COST_TITLE + ":", "", *_md_table(["probe", "target", "source"], cost,
                                                          left={0})]
        notes, unusable = self._notes()
        for title, lines in (("Notes", notes), ("Unusable", unusable)):
            if lines:
                out += ["", f"{title}:", "", *(f"- {_md_cell(ln)}" for ln in lines)]
        return "\n".join(out).rstrip() + "\n"

    def __str__(self) -> str:
        return self.text()


def sort_rows(rows: list[Row], by: str) -> list[Row]:
    """Usable rows scored by ``by`` (best first), then usable rows it did not score, then
    unusable rows; ties keep the label order."""
    sign = 1.0 if by == MEAN_RANK else -1.0

    def key(r: Row) -> tuple[int, float, str]:
        s = r.score(by)
        if r.status == "unusable":
            return (2, 0.0, r.label)
        if s is None or not math.isfinite(s):
            return (1, 0.0, r.label)
        return (0, sign * s, r.label)

    return sorted(rows, key=key)


def _aligned(cols: list[str], body: list[list[str]], left: set[int]) -> list[str]:
    widths = [max([len(c), *(len(row[i]) for row in body)]) for i, c in enumerate(cols)]
    return ["  ".join(c.ljust(w) if i in left else c.rjust(w)
                      for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()
            for cells in [cols, *body]]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def _md_table(cols: list[str], body: list[list[str]], left: set[int]) -> list[str]:
    rule = "|" + "|".join("---" if i in left else "---:" for i in range(len(cols))) + "|"
    return ["| " + " | ".join(cols) + " |", rule,
            *("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in body)]


def _num(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}"


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
