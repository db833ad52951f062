"""The plan: an experiment expanded into runs, each with a stable id derived from its content.

A run's id is the first 12 hex digits of the sha256 of the canonical JSON of everything that
defines it: the env description (family, every knob value, pixel view), the algorithm, the
full resolved preset, the method and its options, the seed, the step budget, the evaluation
schedule and, for transfer runs, the id of the source pretraining run. The output path is not
part of it, so the same run has the same id in any folder, on any machine.

The source pretraining is a run too (kind ``pretrain``); its checkpoint is cached by id in a
shared folder, so experiments that share a source train it once. ``scratch`` runs do not
depend on it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rltransfer.experiment.config import (
    SOURCE_EVAL_EPISODES,
    SOURCE_EVAL_POINTS,
    Experiment,
    Member,
    resolved_preset,
)

__all__ = ["PLAN_FORMAT", "Plan", "RunSpec", "default_cache", "make_plan", "run_id_of",
           "safe_name"]

PLAN_FORMAT = 1
"""Bumped when the meaning of a run's content changes (old run ids then no longer match)."""
CACHE_ENV = "RLTRANSFER_CACHE"
ID_LENGTH = 12


def canonical_json(data: Any) -> str:
    """Deterministic JSON: sorted keys, no spaces, tuples as lists."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def run_id_of(identity: Mapping[str, Any]) -> str:
    """The short sha256 of a run's identity."""
    return hashlib.sha256(canonical_json(identity).encode()).hexdigest()[:ID_LENGTH]


def safe_name(label: str) -> str:
    """A method label as a folder name (the same rule as :func:`rltransfer.report.safe_name`)."""
    try:
        from rltransfer.report import safe_name as report_safe_name
    except ImportError:  # pragma: no cover - report module missing
        import re

        return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_.") or "method"
    return report_safe_name(label)


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything a worker needs to execute one run (picklable, JSON-able)."""

    run_id: str
    kind: str
    """``"pretrain"`` or ``"transfer"``."""
    method: str
    """The method label (``"pretrain"`` for the source run)."""
    method_spec: Any
    seed: int
    env: dict[str, Any]
    """``{env, knobs, pixels}`` of the env this run trains on."""
    algo: str
    preset: dict[str, Any]
    """The full resolved preset (overrides merged)."""
    steps: int
    eval_every: int
    eval_episodes: int
    on_mismatch: str
    source_id: str | None
    """The pretrain run this run starts from (``None`` for scratch and the pretrain itself)."""
    identity: dict[str, Any]
    """What the id hashes."""
    run_dir: str
    tb_dir: str
    """SB3 TensorBoard folder of this run (``<out>/tb/<method>/seed_<k>``)."""
    source_dir: str | None = None
    """The source run folder whose ``checkpoint/`` this run loads."""
    cache_dir: str | None = None
    """Pretrain only: the cache folder of this source (``<cache>/<run_id>``)."""

    def config_json(self) -> dict[str, Any]:
        """The run's config.json."""
        return {
            "run_id": self.run_id, "kind": self.kind, "method": self.method,
            "method_spec": self.method_spec, "seed": self.seed, "env": self.env,
            "algo": self.algo, "preset": self.preset, "steps": self.steps,
            "eval": {"every": self.eval_every, "episodes": self.eval_episodes},
            "on_mismatch": self.on_mismatch, "source_id": self.source_id,
            "identity": self.identity,
        }


@dataclasses.dataclass(frozen=True)
class Plan:
    """The runs of an experiment: the source pretraining (if any method needs it) first."""

    experiment: Experiment
    out: Path
    cache: Path
    source: RunSpec | None
    runs: list[RunSpec]
    """Transfer runs, method by method, seed by seed."""

    @property
    def all_runs(self) -> list[RunSpec]:
        return ([self.source] if self.source else []) + list(self.runs)

    def get(self, run_id: str) -> RunSpec:
        for r in self.all_runs:
            if r.run_id == run_id:
                return r
        raise KeyError(run_id)


def default_cache(out: str | os.PathLike) -> Path:
    """``$RLTRANSFER_CACHE`` if set, else ``<out>/../.sources``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return Path(out).resolve().parent / ".sources"


def make_plan(exp: Experiment, out: str | os.PathLike,
              cache: str | os.PathLike | None = None) -> Plan:
    """Expand ``exp`` into runs with stable ids; paths under ``out``."""
    from rltransfer import envs
    from rltransfer.methods import get_method

    out = Path(out).resolve()
    cache_dir = Path(cache).expanduser().resolve() if cache else default_cache(out)
    runs_dir = out / "runs"
    tb_root = out / "tb"

    def describe(m: Member) -> dict[str, Any]:
        return envs.describe(m.env, m.knobs, **({"pixels": m.pixels} if m.pixels else {}))

    def preset_identity(p: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in p.items() if k not in ("source", "match")}

    source = None
    if exp.needs_source:
        preset = resolved_preset(exp.source, exp.algo, exp.preset, exp.overrides)
        every = max(exp.source_steps // SOURCE_EVAL_POINTS, 1)
        identity = {
            "format": PLAN_FORMAT, "kind": "pretrain", "env": describe(exp.source),
            "algo": exp.algo, "preset": preset_identity(preset), "seed": exp.source_seed,
            "steps": exp.source_steps,
            "eval": {"every": every, "episodes": SOURCE_EVAL_EPISODES},
        }
        rid = run_id_of(identity)
        source = RunSpec(
            run_id=rid, kind="pretrain", method="pretrain", method_spec=None,
            seed=exp.source_seed, env=exp.source.to_json(), algo=exp.algo, preset=preset,
            steps=exp.source_steps, eval_every=every, eval_episodes=SOURCE_EVAL_EPISODES,
            on_mismatch=exp.on_mismatch, source_id=None, identity=identity,
            run_dir=str(runs_dir / rid),
            tb_dir=str(tb_root / "pretrain" / f"seed_{exp.source_seed}"),
            cache_dir=str(cache_dir / rid),
        )

    target_desc = describe(exp.target)
    preset = resolved_preset(exp.target, exp.algo, exp.preset, exp.overrides)
    runs = []
    for spec, label in zip(exp.methods, exp.method_labels, strict=True):
        moves = get_method(spec).moves_weights
        for seed in exp.seeds:
            identity = {
                "format": PLAN_FORMAT, "kind": "transfer", "env": target_desc,
                "algo": exp.algo, "preset": preset_identity(preset), "method": spec,
                "seed": seed, "steps": exp.steps,
                "eval": {"every": exp.eval_every, "episodes": exp.eval_episodes},
                "on_mismatch": exp.on_mismatch,
                "source": source.run_id if moves and source else None,
            }
            rid = run_id_of(identity)
            runs.append(RunSpec(
                run_id=rid, kind="transfer", method=label, method_spec=spec, seed=seed,
                env=exp.target.to_json(), algo=exp.algo, preset=preset, steps=exp.steps,
                eval_every=exp.eval_every, eval_episodes=exp.eval_episodes,
                on_mismatch=exp.on_mismatch,
                source_id=source.run_id if moves and source else None, identity=identity,
                run_dir=str(runs_dir / rid),
                tb_dir=str(tb_root / safe_name(label) / f"seed_{seed}"),
                source_dir=source.run_dir if moves and source else None,
            ))
    return Plan(experiment=exp, out=out, cache=cache_dir, source=source, runs=runs)
