"""Determinism (issue #13.5): on CPU the same seed gives bitwise-identical curves and
checkpoints, across two fresh processes and across the local and Ray backends.

Two tiny experiments: PPO on CartPole (the source pretraining, then scratch, finetune and
kickstart, a training-time method, on the target) and SAC on Pendulum (scratch with
``normalize: true``, so its checkpoint has an ``extras.safetensors``). "Identical" means,
for every run: the rows of ``curve.csv`` without ``wall_time``, as text; the sha256 of
every weights file of the checkpoint; the card without ``created`` and the source's path;
``done.json`` without its times and cache path.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import PPO_TINY, SAC_TINY

EXPERIMENTS: dict[str, dict[str, Any]] = {
    "ppo": {
        "name": "det_ppo", "source": {"env": "CartPole-v1"}, "target": {"env": "CartPole-v1"},
        "algo": "ppo", "overrides": PPO_TINY, "methods": ["scratch", "finetune", "kickstart"],
        "seeds": 1, "steps": 1024, "source_steps": 512, "eval": {"every": 512, "episodes": 2},
        "threshold": 100,
    },
    "sac": {
        "name": "det_sac", "source": {"env": "Pendulum-v1"}, "target": {"env": "Pendulum-v1"},
        "algo": "sac", "overrides": {**SAC_TINY, "normalize": True}, "methods": ["scratch"],
        "seeds": 1, "steps": 400, "eval": {"every": 200, "episodes": 1}, "threshold": -200,
    },
}
RUNS = {"ppo": 4, "sac": 1}  # ppo: pretrain + 3 methods


def _cli(exp: Path, out: Path, cache: Path, *, workers: int, hashseed: str) -> None:
    """``python -m rltransfer run`` in a fresh process."""
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    proc = subprocess.run(
        [sys.executable, "-m", "rltransfer", "run", str(exp), "--out", str(out),
         "--cache", str(cache), "--workers", str(workers), "--no-progress"],
        env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint(out: Path) -> dict[str, dict[str, Any]]:
    """What must be bitwise identical, per run id (see the module docstring)."""
    runs = {}
    for d in sorted((out / "runs").iterdir()):
        with open(d / "curve.csv", newline="") as fh:
            rows = list(csv.reader(fh))
        keep = [i for i, name in enumerate(rows[0]) if name != "wall_time"]
        assert len(keep) == len(rows[0]) - 1, rows[0]
        card = json.loads((d / "checkpoint" / "card.json").read_text())
        card.pop("created")
        card.pop("train_wall_time", None)  # a duration, like "created" a time
        (card.get("source") or {}).pop("path", None)
        done = json.loads((d / "done.json").read_text())
        for key in ("wall_time", "finished", "cache"):
            done.pop(key, None)
        runs[d.name] = {
            "curve": [",".join(r[i] for i in keep) for r in rows],
            "weights": {p.name: _sha(p) for p in sorted((d / "checkpoint").glob("*.safetensors"))},
            "card": card,
            "done": done,
        }
    return runs


def assert_identical(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> None:
    assert sorted(a) == sorted(b)
    for run_id in a:
        for part in ("curve", "weights", "card", "done"):
            assert a[run_id][part] == b[run_id][part], f"run {run_id}: {part} differs"


@pytest.fixture(scope="module")
def first(tmp_path_factory) -> dict[str, tuple[Path, dict[str, dict[str, Any]]]]:
    """Both experiments run by ``rltransfer run --workers 1`` (the process pool): the
    experiment file and the fingerprint of its output, per experiment."""
    root = tmp_path_factory.mktemp("determinism")
    done = {}
    for key, data in EXPERIMENTS.items():
        exp = root / f"{key}.yaml"
        exp.write_text(yaml.safe_dump(data, sort_keys=False))
        _cli(exp, root / f"a_{key}", root / "cache_a", workers=1, hashseed="1")
        runs = fingerprint(root / f"a_{key}")
        assert len(runs) == RUNS[key]
        # not trivially equal: every run has weights of its own, and the curve moved
        assert len({r["weights"]["model.safetensors"] for r in runs.values()}) == len(runs)
        done[key] = (exp, runs)
    (sac,) = done["sac"][1].values()
    assert set(sac["weights"]) == {"model.safetensors", "extras.safetensors"}
    return done


def test_two_processes_write_identical_runs(first, tmp_path):
    """A second fresh process (in-process runs, another hash seed, its own source cache, so the
    source is trained again) writes the same bytes as the first (a pool of one worker)."""
    for key, (exp, runs) in first.items():
        _cli(exp, tmp_path / key, tmp_path / "cache", workers=0, hashseed="2")
        assert_identical(fingerprint(tmp_path / key), runs)


def test_ray_backend_writes_identical_runs(first, tmp_path):
    ray = pytest.importorskip("ray")
    from rltransfer.experiment import run

    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        for key, (exp, runs) in first.items():
            result = run(exp, out=tmp_path / key, backend="ray", workers=2,
                         cache=tmp_path / "cache", report=False, progress=False)
            assert result.ok and result.executed == RUNS[key], result.failed
            assert_identical(fingerprint(tmp_path / key), runs)
    finally:
        ray.shutdown()
