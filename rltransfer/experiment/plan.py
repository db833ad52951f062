"""The plan: an experiment expanded into runs, each with a stable id derived from its content.

A run's id is the first 12 hex digits of the sha256 of the canonical JSON of everything that
defines it: the env description (family, every knob value, pixel view), the algorithm, the
full resolved preset, the method and its options, the seed, the step budget, the evaluation
schedule and, for transfer runs, the id of the source pretraining run. The output path is not
part of it, so the same run has the same id in any folder, on any machine.

The source pretraining is a run too (kind ``pretrain``); its checkpoint is cached by id in a
shared folder, so experiments that share a source train it once. ``scratch`` runs do not
depend on it. A named self-supervised source (``sources:`` in the experiment file) is a run
of kind ``pretrain-encoder``, cached the same way; the methods that start from it depend on
it alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rltransfer import envs
from rltransfer.experiment.config import (
    AGENT_SOURCE,
    SOURCE_EVAL_EPISODES,
    SOURCE_EVAL_POINTS,
    Experiment,
    Member,
    SSLSourceSpec,
)
from rltransfer.rundir import RUNS, TENSORBOARD, method_folders, safe_name

__all__ = ["PLAN_FORMAT", "SOURCE_KINDS", "Plan", "RunSpec", "default_cache", "make_plan",
           "run_id_of", "safe_name", "source_key"]

SOURCE_KINDS = ("pretrain", "pretrain-encoder")
"""Run kinds that produce a source checkpoint (not part of the metrics)."""
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


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything a worker needs to execute one run (picklable, JSON-able)."""

    run_id: str
    kind: str
    """``"pretrain"`` (the source agent), ``"pretrain-encoder"`` (a self-supervised source)
    or ``"transfer"``."""
    method: str
    """The method label (``"pretrain"`` for the source agent, ``"pretrain, seed <k>"`` for
    each of its seeds with ``source_seeds``, ``"source:<name>"`` for a
    named source)."""
    method_spec: Any
    """The method spec (transfer), or the options of a ``pretrain-encoder`` run."""
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
    """This run's TensorBoard run, its events alone (``<out>/tb/<method>/seed_<k>``)."""
    source_dir: str | None = None
    """The source run folder whose ``checkpoint/`` this run loads."""
    cache_dir: str | None = None
    """Pretrain only: the cache folder of this source (``<cache>/<run_id>``)."""
    adapter: dict[str, Any] | None = None
    """Transfer from the source agent only: the adapter between its spaces and the target's
    (``{obs, act, mirror}``), else ``None``."""

    def config_json(self) -> dict[str, Any]:
        """The run's config.json."""
        return {
            "run_id": self.run_id, "kind": self.kind, "method": self.method,
            "method_spec": self.method_spec, "seed": self.seed, "env": self.env,
            "algo": self.algo, "preset": self.preset, "steps": self.steps,
            "eval": {"every": self.eval_every, "episodes": self.eval_episodes},
            "on_mismatch": self.on_mismatch, "source_id": self.source_id,
            "identity": self.identity,
            **({"adapter": self.adapter} if self.adapter is not None else {}),
        }


@dataclasses.dataclass(frozen=True)
class Plan:
    """The runs of an experiment: the source pretraining (if any method needs it) first."""

    experiment: Experiment
    out: Path
    cache: Path
    sources: dict[str, RunSpec]
    """The source runs some method starts from, by name (``agent``: the RL pretraining;
    ``agent/seed_<k>`` for each of its seeds where transfer seeds have sources of their own)."""
    runs: list[RunSpec]
    """Transfer runs, method by method, seed by seed."""

    @property
    def source(self) -> RunSpec | None:
        """The source agent's pretraining run, if any method starts from it and one source
        serves every transfer seed (``None`` with ``source_seeds``: see :attr:`sources`)."""
        return self.sources.get(AGENT_SOURCE)

    @property
    def all_runs(self) -> list[RunSpec]:
        return list(self.sources.values()) + list(self.runs)

    def get(self, run_id: str) -> RunSpec:
        for r in self.all_runs:
            if r.run_id == run_id:
                return r
        raise KeyError(run_id)


def source_key(name: str, seed: int) -> str:
    """The key in :attr:`Plan.sources` of source ``name`` pretrained with ``seed``, where each
    transfer seed has its own source (``source_seeds``): ``agent/seed_3``."""
    return f"{name}/seed_{seed}"


def default_cache(out: str | os.PathLike) -> Path:
    """``$RLTRANSFER_CACHE`` if set, else ``<out>/../.sources``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return Path(out).resolve().parent / ".sources"


def make_plan(exp: Experiment, out: str | os.PathLike,
              cache: str | os.PathLike | None = None) -> Plan:
    """Expand ``exp`` into runs with stable ids; paths under ``out``."""
    out = Path(out).resolve()
    cache_dir = Path(cache).expanduser().resolve() if cache else default_cache(out)
    runs_dir = out / RUNS
    tb_root = out / TENSORBOARD

    def describe(m: Member) -> dict[str, Any]:
        return envs.describe(m.env, m.knobs, **({"pixels": m.pixels} if m.pixels else {}))

    def preset_identity(p: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in p.items() if k not in ("source", "match")}

    def agent_source(member: Member, preset: dict[str, Any], seed: int, steps: int,
                     label: str, tb: str) -> RunSpec:
        """The pretrain run of an RL source agent: the experiment's ``agent`` or a named one."""
        every = max(steps // SOURCE_EVAL_POINTS, 1)
        identity = {
            "format": PLAN_FORMAT, "kind": "pretrain", "env": describe(member),
            "algo": exp.algo, "preset": preset_identity(preset), "seed": seed,
            "steps": steps, "eval": {"every": every, "episodes": SOURCE_EVAL_EPISODES},
        }
        rid = run_id_of(identity)
        return RunSpec(
            run_id=rid, kind="pretrain", method=label, method_spec=None,
            seed=seed, env=member.to_json(), algo=exp.algo, preset=preset, steps=steps,
            eval_every=every, eval_episodes=SOURCE_EVAL_EPISODES,
            on_mismatch=exp.on_mismatch, source_id=None, identity=identity,
            run_dir=str(runs_dir / rid), tb_dir=str(tb_root / "pretrain" / tb),
            cache_dir=str(cache_dir / rid),
        )

    sources: dict[str, RunSpec] = {}
    if exp.needs_source:
        if exp.source_seeds is None:
            sources[AGENT_SOURCE] = agent_source(
                exp.source, exp.source_preset, exp.source_seed, exp.source_steps, "pretrain",
                f"seed_{exp.source_seed}")
        else:  # one source agent per transfer seed (or per group of them)
            for seed in exp.seeds:
                k = exp.source_seed_for(seed)
                assert k is not None
                if source_key(AGENT_SOURCE, k) not in sources:
                    sources[source_key(AGENT_SOURCE, k)] = agent_source(
                        exp.source, exp.source_preset, k, exp.source_steps,
                        f"pretrain, seed {k}", f"seed_{k}")
    for name in exp.used_sources:
        if name in exp.named_agents:
            agent = exp.named_agents[name]
            sources[name] = agent_source(agent.member, agent.preset, agent.seed, agent.steps,
                                         f"source:{name}", safe_name(name))
        elif name != AGENT_SOURCE:
            sources[name] = _ssl_source(exp, name, exp.target_preset, describe(exp.source),
                                        runs_dir, tb_root, cache_dir)


    folders = method_folders(exp.method_labels)
    target_desc = describe(exp.target)
    runs = []
    seen: dict[str, str] = {}
    for m in exp.setups:
        preset = m.resolved
        for seed in exp.seeds:
            src = None
            if m.source is not None:
                k = exp.source_seed_for(seed) if m.source == AGENT_SOURCE else None
                src = sources[m.source if k is None else source_key(m.source, k)]
            identity = {
                "format": PLAN_FORMAT, "kind": "transfer", "env": target_desc,
                "algo": exp.algo, "preset": preset_identity(preset), "method": m.spec,
                "seed": seed, "steps": exp.steps,
                "eval": {"every": exp.eval_every, "episodes": exp.eval_episodes},
                "on_mismatch": exp.on_mismatch,
                "source": src.run_id if src else None,
            }
            adapter = exp.adapter if m.source == AGENT_SOURCE else None
            if adapter is not None:  # only then: ids of same-space runs stay as they were
                identity["adapter"] = adapter
            rid = run_id_of(identity)
            if rid in seen and seen[rid] != m.label:
                raise ValueError(f"methods {seen[rid]!r} and {m.label!r} are the same runs "
                                 "(same method, source and preset); keep one of them")
            seen[rid] = m.label
            runs.append(RunSpec(
                run_id=rid, kind="transfer", method=m.label, method_spec=m.spec, seed=seed,
                env=exp.target.to_json(), algo=exp.algo, preset=preset, steps=exp.steps,
                eval_every=exp.eval_every, eval_episodes=exp.eval_episodes,
                on_mismatch=exp.on_mismatch,
                source_id=src.run_id if src else None, identity=identity,
                run_dir=str(runs_dir / rid),
                tb_dir=str(tb_root / folders[m.label] / f"seed_{seed}"),
                source_dir=src.run_dir if src else None, adapter=adapter,
            ))
    return Plan(experiment=exp, out=out, cache=cache_dir, sources=sources, runs=runs)


def _ssl_source(exp: Experiment, name: str, target_preset: dict[str, Any],
                env_desc: dict[str, Any], runs_dir: Path, tb_root: Path,
                cache_dir: Path) -> RunSpec:
    """The ``pretrain-encoder`` run of the named source ``name``."""
    spec = exp.sources[name]
    assert isinstance(spec, SSLSourceSpec)  # named agents are planned by make_plan
    pk = target_preset.get("policy_kwargs") or {}
    encoder = spec.encoder or pk.get("features_extractor")
    if encoder is None:
        raise ValueError(f"sources.{name}: the target preset has no features_extractor by "
                         "name; give `encoder` (e.g. nature_cnn)")
    kwargs = (spec.encoder_kwargs if spec.encoder is not None
              else spec.encoder_kwargs or pk.get("features_extractor_kwargs"))
    options = {**spec.model_dump(mode="json", exclude={"encoder", "encoder_kwargs"}),
               "encoder": encoder, "encoder_kwargs": kwargs or None}
    identity = {"format": PLAN_FORMAT, "kind": "pretrain-encoder", "env": env_desc,
                "options": options}
    rid = run_id_of(identity)
    return RunSpec(
        run_id=rid, kind="pretrain-encoder", method=f"source:{name}", method_spec=options,
        seed=spec.seed, env=exp.source.to_json(), algo=exp.algo, preset={},
        steps=spec.frames, eval_every=spec.frames, eval_episodes=0,
        on_mismatch=exp.on_mismatch, source_id=None, identity=identity,
        run_dir=str(runs_dir / rid), tb_dir=str(tb_root / "pretrain" / safe_name(name)),
        cache_dir=str(cache_dir / rid),
    )
