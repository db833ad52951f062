"""Tiny experiments on CartPole-v1: a few hundred steps, so each run takes about a second."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

TINY: dict[str, Any] = {
    "name": "tiny",
    "source": {"env": "CartPole-v1"},
    "target": {"env": "CartPole-v1"},
    "algo": "ppo",
    "overrides": {"n_envs": 1, "n_steps": 128, "batch_size": 64, "n_epochs": 2},
    "methods": ["scratch", "finetune"],
    "seeds": 2,
    "steps": 256,
    "source_steps": 256,
    "eval": {"every": 128, "episodes": 1},
    "threshold": 100,
}


@pytest.fixture(scope="session")
def tiny_config() -> dict[str, Any]:
    """The tiny experiment config (do not edit: use ``tiny``)."""
    return TINY


@pytest.fixture
def tiny(tiny_config) -> dict[str, Any]:
    """A fresh copy of the tiny experiment config (edit freely)."""
    return yaml.safe_load(yaml.safe_dump(tiny_config))


@pytest.fixture
def write_yaml(tmp_path: Path):
    """Write a config mapping as an experiment file; returns its path."""

    def write(data: dict[str, Any], name: str = "exp.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write


@pytest.fixture
def fast_report(monkeypatch):
    """The report with few bootstrap replicates (the default 2000 take tens of seconds)."""
    report = pytest.importorskip("rltransfer.report")
    monkeypatch.setattr(report, "build_report",
                        functools.partial(report.build_report, reps=100))
    return report
