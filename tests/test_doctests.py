"""Every docstring example in the package runs as written (``Example:`` sections, ``>>>``).

The modules are found by walking the package, so a new module's examples run without being
listed here. Each docstring's examples run in a fresh temporary folder (the current
directory), so an example may write ``out="src"`` and leave nothing behind.
"""

from __future__ import annotations

import doctest
import importlib
import os
import pkgutil

import pytest

import rltransfer

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(rltransfer.__path__, "rltransfer.")
    if not info.name.endswith("__main__")  # importing it runs the command line
)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def test_the_walk_finds_the_package():
    assert {"rltransfer.agent", "rltransfer.envs.catalogue", "rltransfer.report.tables"} <= set(
        MODULES)


@pytest.mark.parametrize("name", ["rltransfer", *MODULES])
def test_docstring_examples(name, tmp_path, monkeypatch):
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for i, test in enumerate(doctest.DocTestFinder().find(module, name)):
        if test.examples:
            folder = tmp_path / str(i)
            folder.mkdir()
            monkeypatch.chdir(folder)
            runner.run(test)
    monkeypatch.chdir(os.path.dirname(tmp_path))
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed"
