"""Read the package's docstrings as Markdown for the docs site (a griffe extension).

The docstrings are Google style with a few reStructuredText habits that Markdown would show
raw: roles (:func:`x`), literal blocks introduced by ``::``, simple tables drawn with
``===`` and ``Example:`` sections (griffe reads ``Examples:`` as code). This extension
rewrites those, for the site only (the package is not touched): roles become code spans,
``::`` blocks become fenced code, simple tables become Markdown tables, ``Example:`` becomes
``Examples:``. Cross-references that must be checked are written in the guides as autorefs.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import griffe

ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|exc|obj):`(~?)([^`]+)`")
BORDER = re.compile(r"^\s*=+(?: +=+)+\s*$")
EXAMPLE = re.compile(r"^(\s*)Examples?(?: \((.*)\))?:\s*$", re.MULTILINE)
"""``Example:`` or ``Example (what it shows):`` (griffe reads only ``Examples:`` as code)."""


def _example(match: re.Match) -> str:
    indent, what = match.groups()
    return f"{indent}{what[0].upper()}{what[1:]}:\n\n{indent}Examples:" if what else (
        f"{indent}Examples:")


def _role(match: re.Match) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


def _table(lines: list[str]) -> list[str]:
    """A reST simple table (border, header, border, rows, border) as a Markdown table."""
    border = lines[0]
    spans = [m.span() for m in re.finditer(r"=+", border)]
    starts = [s for s, _ in spans]

    def cells(line: str) -> list[str]:
        ends = [*starts[1:], None]
        return [line[s:e].strip() for s, e in zip(starts, ends, strict=True)]

    body = [line for line in lines[1:] if not BORDER.match(line)]
    header, rows = cells(body[0]), []
    for line in body[1:]:
        row = cells(line)
        if rows and not row[0]:  # a continuation line: its text joins the row above
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], row, strict=True)]
        else:
            rows.append(row)
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(row) + " |" for row in rows]


def to_markdown(text: str) -> str:
    """``text`` with reST roles, literal blocks and simple tables rewritten as Markdown."""
    lines = EXAMPLE.sub(_example, ROLE.sub(_role, text)).split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if BORDER.match(line):  # a simple table: up to its third border line
            j, borders = i, 0
            while j < len(lines) and borders < 3:
                borders += bool(BORDER.match(lines[j]))
                j += 1
            out += _table(lines[i:j])
            i = j
            continue
        if line.rstrip().endswith("::") and not line.lstrip().startswith(">>>"):
            out.append(line.rstrip()[:-1] if line.strip() != "::" else "")
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            k = j
            while k < len(lines) and (not lines[k].strip() or lines[k][:1] in " \t"):
                k += 1
            while k > j and not lines[k - 1].strip():
                k -= 1
            if k > j:
                block = textwrap.dedent("\n".join(lines[j:k]))
                out += ["", "```", *block.split("\n"), "```", ""]
                i = k
                continue
            i += 1
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


class RstToMarkdown(griffe.Extension):
    """Rewrite every docstring griffe loads (see :func:`to_markdown`)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
