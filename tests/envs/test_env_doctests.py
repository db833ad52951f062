"""The ``Example:`` sections of the public API run as written."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "rltransfer.envs",
    "rltransfer.envs.errors",
    "rltransfer.envs.knobs",
    "rltransfer.envs.family",
    "rltransfer.envs.mujoco_knobs",
    "rltransfer.envs.pixels",
    "rltransfer.envs.builtin",
    "rltransfer.envs.catalogue",
    "rltransfer.envs.making",
    "rltransfer.envs.listing",
    "rltransfer.envs.checks",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
