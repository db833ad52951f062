"""The docs are checked like code: their examples run, their commands exist, their links resolve.

Pages: README.md and every Markdown page of the docs site (``docs/``, without the committed
experiment results under ``docs/results/``). ``mkdocs build --strict`` (in ``make test``)
checks the links between pages and the references into the API; these tests check the rest:

- every ``python`` block runs: a page's blocks in order, sharing their names, in a fresh
  process whose working folder is empty. A block preceded by a ``<!-- skip -->`` line only
  illustrates and is not run;
- every ``rltransfer ...`` line of a ``bash`` block names a real verb and only flags that
  verb accepts, and every YAML block that is a whole experiment file validates;
- every registered method and option is on the methods page, and every name of
  ``import rltransfer`` on the API reference's index;
- the README's relative links (into ``docs/`` and the repository) resolve, anchors included.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README = REPO / "README.md"
SKIP = "<!-- skip -->"


def _pages() -> list[Path]:
    site = [p for p in sorted(DOCS.rglob("*.md")) if p.relative_to(DOCS).parts[0] != "results"]
    return [README, *site]


def _blocks(page: Path, lang: str) -> list[tuple[int, str, bool]]:
    """``(first line number of the code, code, skipped)`` of each ```lang fenced block."""
    lines = page.read_text(encoding="utf-8").split("\n")
    out, i = [], 0
    while i < len(lines):
        fence = re.match(r"^(\s*)(`{3,})\s*(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        indent, ticks, info = fence.groups()
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(ticks):
            j += 1
        if info == lang:
            before = [line.strip() for line in lines[:i] if line.strip()]
            skipped = bool(before) and before[-1] == SKIP
            code = "\n".join(line[len(indent):] for line in lines[i + 1 : j])
            out.append((i + 2, code, skipped))
        i = j + 1
    return out


def _rel(page: Path) -> str:
    return page.relative_to(REPO).as_posix()


PYTHON_PAGES = [p for p in _pages() if any(not s for _, _, s in _blocks(p, "python"))]

# Runs a page's blocks in one namespace; each block compiled under the page's name with its
# own line numbers, so a traceback points into the Markdown file.
RUNNER = """
import json, sys
import torch
torch.set_num_threads(1)
namespace = {"__name__": "__main__"}
for path, line, code in json.load(sys.stdin):
    print(f"--- {path}:{line}", flush=True)
    exec(compile("\\n" * (line - 1) + code, path, "exec"), namespace)
"""


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=_rel)
def test_python_examples_run(page, tmp_path):
    blocks = [(_rel(page), line, code) for line, code, skipped in _blocks(page, "python")
              if not skipped]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MUJOCO_GL": "egl",
           "MPLBACKEND": "Agg", "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    for var in ("RLTRANSFER_ENVS", "RLTRANSFER_AGENTS", "RLTRANSFER_CACHE"):
        env.pop(var, None)
    proc = subprocess.run([sys.executable, "-c", RUNNER], input=json.dumps(blocks), text=True,
                          cwd=tmp_path, env=env, capture_output=True, timeout=600)
    assert proc.returncode == 0, (f"an example of {_rel(page)} failed:\n"
                                  f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")


def test_the_pages_hold_python_examples_and_skip_few():
    runs = {_rel(p): [s for _, _, s in _blocks(p, "python")] for p in _pages()}
    assert sum(len(v) for v in runs.values()) >= 15
    skipped = sum(sum(v) for v in runs.values())
    assert skipped <= 3, f"{skipped} python blocks are skipped: most examples must run"


# ---------------------------------------------------------------------- commands


def _verbs() -> dict[str, set[str]]:
    from rltransfer.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    top = set(parser._option_string_actions)
    return {verb: top | set(p._option_string_actions) for verb, p in sub.choices.items()}


def _command_lines(page: Path) -> list[tuple[int, list[str]]]:
    """``(line, tokens after 'rltransfer')`` of each rltransfer command in bash blocks."""
    out = []
    for start, code, _ in _blocks(page, "bash"):
        text = re.sub(r"\\\n\s*", " ", code)  # join continuation lines
        for k, line in enumerate(text.split("\n")):
            tokens = shlex.split(line, comments=True)
            if tokens[:3] == ["python", "-m", "rltransfer"]:
                tokens = ["rltransfer", *tokens[3:]]
            if tokens[:1] == ["rltransfer"]:
                out.append((start + k, tokens[1:]))
    return out


@pytest.mark.parametrize("page", [p for p in _pages() if _command_lines(p)], ids=_rel)
def test_commands_name_real_verbs_and_flags(page):
    verbs = _verbs()
    problems = []
    for line, tokens in _command_lines(page):
        args = [t for t in tokens if not t.startswith("-")]
        verb = args[0] if args else None
        if verb not in verbs:
            problems.append(f"{_rel(page)}:{line}: unknown verb {verb!r} in {tokens}")
            continue
        for t in tokens:
            flag = t.split("=", 1)[0]
            if flag.startswith("--") and flag not in verbs[verb]:
                problems.append(f"{_rel(page)}:{line}: rltransfer {verb} has no flag {flag}")
    assert not problems, "\n".join(problems)


def test_experiment_files_in_the_docs_validate():
    from rltransfer.experiment.config import resolve_experiment

    checked = 0
    for page in _pages():
        for line, code, _ in _blocks(page, "yaml"):
            data = yaml.safe_load(code)
            if isinstance(data, dict) and ("pair" in data or "source" in data):
                resolve_experiment(data, where=f"{_rel(page)}:{line}")
                checked += 1
    assert checked >= 1


# ---------------------------------------------------------------------- reference


def test_every_method_and_option_is_on_the_methods_page():
    from rltransfer.methods import METHODS

    text = (DOCS / "methods.md").read_text(encoding="utf-8")
    missing = [f"{name}.{field}" if field else name
               for name, cls in METHODS.items()
               for field in ["", *cls.model_fields]
               if f"`{field or name}`" not in text]
    assert not missing, f"docs/methods.md does not mention: {missing}"


def test_every_top_level_name_is_in_the_api_index():
    import rltransfer

    text = (DOCS / "api" / "index.md").read_text(encoding="utf-8")
    missing = [n for n in rltransfer.__all__ if n != "__version__" and f"`rlt.{n}`" not in text]
    assert not missing, f"docs/api/index.md does not list: {missing}"


def test_every_api_page_is_in_the_site_navigation():
    nav = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    pages = [p.relative_to(DOCS).as_posix() for p in _pages()[1:]]
    assert not [p for p in pages if p not in nav], "pages missing from mkdocs.yml's nav"


# ---------------------------------------------------------------------- links


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading (and MkDocs' for the headings these pages use)."""
    text = re.sub(r"[`*_\[\]]", "", heading).strip().lower()
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(h) for h in re.findall(r"^#+\s+(.*)$", text, flags=re.M)}


def test_readme_links_resolve():
    text = re.sub(r"```.*?```", "", README.read_text(encoding="utf-8"), flags=re.S)
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    docs_links, broken = 0, []
    for link in links:
        if re.match(r"^[a-z]+:", link):
            continue
        path, _, anchor = link.partition("#")
        target = (REPO / path).resolve() if path else README
        missing_anchor = bool(anchor) and target.suffix == ".md" and (
            not target.exists() or anchor not in _anchors(target))
        if not target.exists() or missing_anchor:
            broken.append(link)
        docs_links += path.startswith("docs/") and "results" not in path
    assert not broken, f"README.md links that do not resolve: {broken}"
    assert docs_links >= 5, "the README should link into the docs site's guides"
