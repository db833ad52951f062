"""``rank_sources``: score candidate sources on a target with cheap probes, and rank them.

The flow, per candidate, after every input is checked (no env step is taken before):

1. the checkpoint is loaded and verified (a tampered or forged one is refused, as
   everywhere in rltransfer, with :class:`~rltransfer.checkpoint.CheckpointError`);
2. its spaces are compared with the target's: equal, it is used as it is; different, it is
   mapped through the adapter when one is given (``adapter=``, ``--pair``) and listed as
   unusable, with the space, both shapes and the remedy, when none is (or it does not fit);
3. the candidate is built as an SB3 model on the target's spaces (its checkpoint's
   normalization statistics held fixed);
4. each distinct rollout the probes ask for is collected once, on a fresh env seeded with
   ``seed`` (the same episodes for every candidate), and every probe scores from them.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.vec_env import VecTransposeImage
from tqdm.auto import tqdm

from rltransfer import envs as rl_envs
from rltransfer._progress import bar_timing
from rltransfer.agent import during_run
from rltransfer.agent_build import build_agent, make_env
from rltransfer.agent_checkpoint import check_weights, load_agent, load_normalization
from rltransfer.checkpoint import CARD_FILE, Checkpoint, load_checkpoint
from rltransfer.envs.adapter import Adapter, AdapterError, ResolvedAdapter
from rltransfer.envs.catalogue import family_blocks, parse_adapter
from rltransfer.methods import TransferError
from rltransfer.methods.adapter import adapt_checkpoint
from rltransfer.rank.base import Candidate, Probe, RankError, Rollout, RolloutRequest
from rltransfer.rank.registry import get_probe, probe_names
from rltransfer.rank.rollout import collect
from rltransfer.rank.table import (
    MEAN_RANK,
    ProbeScore,
    RankTable,
    Row,
    mean_ranks,
    own_return,
    sort_rows,
)

__all__ = ["DEFAULT_BUDGET", "DEFAULT_PROBES", "SOURCE_SEED_OFFSET", "find_candidates",
           "rank_sources"]

DEFAULT_BUDGET = 2000
"""Target steps each probe may spend per candidate, by default."""
DEFAULT_PROBES = ("jumpstart", "value_consistency", "dynamics_gap", "state_overlap")
"""The probes run by default, in this order (the table is sorted by the first)."""
SOURCE_SEED_OFFSET = 7919
"""Rollouts on a candidate's own env are seeded with ``seed + SOURCE_SEED_OFFSET``."""

CandidateInput = str | os.PathLike | Checkpoint


def rank_sources(candidates: CandidateInput | Iterable[CandidateInput]
                 | Mapping[str, CandidateInput], target: str, *,
                 knobs: Mapping[str, Any] | None = None, budget: int = DEFAULT_BUDGET,
                 probes: Sequence[str | Mapping[str, Any] | Probe] = DEFAULT_PROBES,
                 seed: int = 0,
                 adapter: str | Adapter | Mapping[str, Any] | None = None,
                 pixels: Mapping[str, Any] | None = None, sort_by: str | None = None,
                 progress: bool = False) -> RankTable:
    """Score every candidate source on the target with cheap probes; a :class:`RankTable`.

    Args:
        candidates: checkpoint folders (as ``rltransfer pretrain`` writes them), folders
            that hold several (searched recursively; hidden folders skipped), or loaded
            :class:`~rltransfer.checkpoint.Checkpoint` objects; or a mapping ``{label:
            checkpoint}`` that names each one.
        target: the target env (family name or Gymnasium id) with ``knobs`` and, for a
            pixel view, ``pixels``.
        budget: target environment steps each probe may spend per candidate (>= 1).
            Probes that read the same rollout share it: with the default probes a
            candidate costs ``budget`` target steps in all, plus ``budget`` steps on its own
            env for ``dynamics_gap`` and ``state_overlap`` (reported apart).
        probes: names, ``{name: {options}}`` mappings or probe objects
            (:data:`rltransfer.rank.PROBES`).
        seed: seeds the target env (every candidate meets the same episodes), the source
            envs (``seed + SOURCE_SEED_OFFSET``) and any sampling.
        adapter: for candidates whose spaces differ from the target's: a pair name whose
            adapter to use (``"invertedpendulum/to-double"``), an
            :class:`~rltransfer.envs.Adapter` or its mapping. Candidates with the target's
            spaces are used as they are.
        sort_by: a probe's label (higher first) or ``"mean_rank"`` (each candidate's rank
            under every probe, averaged; lower first). Default: the first probe.
        progress: show a progress bar (env steps) on stderr.

    Raises:
        RankError: an unknown probe or option, a budget below 1, a ``sort_by`` that is no
            probe, a candidate path that does not exist or a folder with no checkpoint.
        CheckpointError: a candidate whose files fail their checksums or contradict their
            card.

    A probe scores ``n/a`` (with a note) where it cannot apply: a candidate of an algorithm
    it does not read, a source env that cannot be built here. Whether the scores predict
    the real gain of a transfer run is measured by :func:`~rltransfer.rank.rank_experiment`:
    on a Hopper target they did not (docs/results/rank_hopper/README.md).

    Example (two untrained candidates, a tiny budget, to show the call):
        >>> from rltransfer.agent import build_agent, save_agent
        >>> for name, length in (("short", 0.3), ("long", 1.0)):
        ...     _ = save_agent(build_agent("cartpole", seed=0, knobs={"length": length}),
        ...                    f"sources/{name}")
        >>> table = rank_sources("sources", "cartpole", knobs={"length": 1.0}, budget=100,
        ...                      probes=["jumpstart", "value_consistency"])
        >>> sorted(table.ranking()), table.cost()["total"]
        (['long', 'short'], {'target': 100, 'source': 0})
    """
    budget = _check_budget(budget)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise RankError(f"seed={seed!r}: must be a whole number >= 0")
    seed = int(seed)
    chosen = _probes(probes)
    labels = [p.label for p in chosen]
    sort_key = _sort_key(sort_by, labels)
    knobs = dict(knobs or {})
    target_words = _env_words(rl_envs.describe(target, knobs, pixels=pixels))
    env = rl_envs.make(target, knobs, pixels=pixels)
    try:
        target_obs, target_act = _as_policy_sees(env.observation_space), env.action_space
    finally:
        env.close()
    found = find_candidates(candidates)
    loaded = [(label, check_weights(c if isinstance(c, Checkpoint) else load_checkpoint(c)))
              for label, c in found]
    spec = _adapter_spec(adapter)
    requests = {p.label: p.rollouts(budget) for p in chosen}
    for p in chosen:
        spent = sum(r.steps for r in requests[p.label] if r.where == "target")
        if spent > budget:
            raise RankError(f"probe {p.label!r} asks for {spent} target steps, over the "
                            f"budget of {budget}")
    plans = [_plan(label, ckpt, target, pixels, target_obs, target_act, spec)
             for label, ckpt in loaded]
    per_candidate = sum(r.steps for r in {r for rs in requests.values() for r in rs})
    total = per_candidate * sum(resolved is not None or reason is None
                                for resolved, reason in plans)
    bar = tqdm(total=total, unit="step", unit_scale=True, file=sys.stderr,
               disable=not progress, dynamic_ncols=True, desc="rank",
               **bar_timing())
    rows = []
    try:
        for (label, ckpt), (resolved, reason) in zip(loaded, plans, strict=True):
            if resolved is None and reason is not None:
                rows.append(_unusable(label, ckpt, reason))
                continue
            bar.set_postfix_str(label, refresh=False)
            start = bar.n
            rows.append(_score(label, ckpt, resolved, reason, chosen, requests, target=target,
                               knobs=knobs, pixels=pixels, seed=seed, budget=budget,
                               on_step=bar.update))
            bar.update(start + per_candidate - bar.n)  # what a probe could not use
    finally:
        bar.close()
    ranks = mean_ranks(rows, labels)
    rows = [_with_rank(r, m) for r, m in zip(rows, ranks, strict=True)]
    return RankTable(target=target_words, budget=budget, seed=seed, probes=labels,
                     sort_by=sort_key, rows=sort_rows(rows, sort_key),
                     specs=[p.spec() for p in chosen])


# --------------------------------------------------------------------------- inputs


def find_candidates(candidates: CandidateInput | Iterable[CandidateInput]
                    | Mapping[str, CandidateInput]) -> list[tuple[str, str | Checkpoint]]:
    """``(label, checkpoint folder or Checkpoint)`` for every candidate given.

    A folder holding ``card.json`` is one candidate, labelled by its name; any other folder
    is searched for checkpoint folders (hidden folders, such as interrupted writes, are
    skipped), each labelled by its path inside it. Labels that would repeat are replaced by
    the full paths. The same folder given twice counts once. A mapping ``{label:
    checkpoint}`` names each candidate itself (each value must be one checkpoint).

    Example:
        >>> find_candidates([])
        Traceback (most recent call last):
        ...
        rltransfer.rank.base.RankError: candidates: none given; give checkpoint folders or
        a folder that holds them
    """
    if isinstance(candidates, Mapping):
        return [(str(label), _one_checkpoint(label, c)) for label, c in candidates.items()]
    if isinstance(candidates, str | os.PathLike | Checkpoint):
        candidates = [candidates]
    items = list(candidates)
    if not items:
        raise RankError("candidates: none given; give checkpoint folders or a folder that "
                        "holds them")
    out: list[tuple[str, str | Checkpoint]] = []
    seen: set[Path] = set()

    def add(label: str, path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            out.append((label, str(path)))

    for item in items:
        if isinstance(item, Checkpoint):
            name = Path(item.path).name if item.path else f"checkpoint{len(out) + 1}"
            out.append((name, item))
            continue
        path = Path(item).expanduser()
        if not path.exists():
            raise RankError(f"candidates: {str(item)!r} does not exist; give checkpoint "
                            "folders or a folder that holds them")
        if path.is_file() and path.name in (CARD_FILE, "model.safetensors"):
            path = path.parent
        if (path / CARD_FILE).is_file():
            add(path.resolve().name, path)
            continue
        if not path.is_dir():
            raise RankError(f"candidates: {str(item)!r} is a file, not a checkpoint folder "
                            f"(one with {CARD_FILE}) or a folder that holds them")
        inside = sorted(_checkpoint_folders(path))
        if not inside:
            raise RankError(f"candidates: no checkpoint found in {str(item)!r} (no folder "
                            f"with {CARD_FILE} inside); give checkpoint folders as "
                            "`rltransfer pretrain` writes them")
        for folder in inside:
            add(folder.relative_to(path).as_posix(), folder)
    # labels must tell candidates apart
    counts: dict[str, int] = {}
    for label, _ in out:
        counts[label] = counts.get(label, 0) + 1
    return [(label if counts[label] == 1 else str(c if isinstance(c, str) else c.path), c)
            for label, c in out]


def _one_checkpoint(label: Any, item: Any) -> str | Checkpoint:
    if isinstance(item, Checkpoint):
        return item
    path = Path(item).expanduser()
    if path.is_file() and path.name in (CARD_FILE, "model.safetensors"):
        path = path.parent
    if not (path / CARD_FILE).is_file():
        raise RankError(f"candidates[{label!r}]: {str(item)!r} is not a checkpoint folder "
                        f"(one with {CARD_FILE})")
    return str(path)


def _checkpoint_folders(root: Path) -> Iterable[Path]:
    for current, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if CARD_FILE in files and Path(current) != root:
            dirs[:] = []  # a checkpoint holds no checkpoints
            yield Path(current)


def _check_budget(budget: Any) -> int:
    if isinstance(budget, bool) or not isinstance(budget, int | np.integer) or budget < 1:
        raise RankError(f"budget={budget!r}: must be a whole number of target env steps "
                        f">= 1 (default {DEFAULT_BUDGET})")
    return int(budget)


def _probes(probes: Any) -> list[Probe]:
    if isinstance(probes, str | Mapping | Probe):
        probes = [probes]
    chosen = [get_probe(p) for p in probes]
    if not chosen:
        raise RankError(f"probes: none given; choose from {probe_names()}")
    labels = [p.label for p in chosen]
    twice = sorted({n for n in labels if labels.count(n) > 1})
    if twice:
        raise RankError(f"probes: {twice} given more than once; each probe is a column")
    return chosen


def _sort_key(sort_by: str | None, labels: list[str]) -> str:
    if sort_by is None:
        return labels[0]
    if sort_by not in [*labels, MEAN_RANK]:
        raise RankError(f"sort_by={sort_by!r}: not a probe of this ranking; accepted: "
                        f"{[*labels, MEAN_RANK]}")
    return sort_by


def _adapter_spec(adapter: Any) -> tuple[Adapter, str] | None:
    """The adapter to map mismatched candidates through, and where it comes from."""
    if adapter is None:
        return None
    if isinstance(adapter, str):
        pair = rl_envs.get_pair(adapter)
        if pair.adapter is None:
            raise RankError(f"adapter: pair {adapter!r} declares no adapter; pairs with one: "
                            f"{[p.name for p in rl_envs.pairs() if p.adapter is not None]}")
        return pair.adapter, f"pair {adapter!r}"
    spec = parse_adapter(adapter, "rank")
    return (spec, "adapter") if spec is not None else None


# --------------------------------------------------------------------------- one candidate


def _space_words(space: spaces.Space) -> str:
    if isinstance(space, spaces.Box):
        dtype = "" if np.issubdtype(space.dtype, np.floating) else f" {space.dtype}"
        return f"Box{tuple(space.shape)}{dtype}"
    if isinstance(space, spaces.Discrete):
        return f"Discrete({space.n})"
    return str(space)


def _as_policy_sees(space: spaces.Space) -> spaces.Space:
    """An image space channel-first, as SB3 transposes it for its policies (and as a card
    records it)."""
    if is_image_space(space) and not is_image_space_channels_first(space):  # type: ignore[arg-type]
        return VecTransposeImage.transpose_space(space)  # type: ignore[arg-type]
    return space


def _fits(a: spaces.Space, b: spaces.Space) -> bool:
    """Same kind, shape and (discrete) size; Box bounds may differ."""
    if type(a) is not type(b):
        return False
    if isinstance(a, spaces.Box):
        return a.shape == b.shape and a.dtype == b.dtype
    if isinstance(a, spaces.Discrete):
        return int(a.n) == int(b.n)  # type: ignore[attr-defined]
    if isinstance(a, spaces.MultiDiscrete):
        return np.array_equal(a.nvec, b.nvec)  # type: ignore[attr-defined]
    return a == b


def _plan(label: str, ckpt: Checkpoint, target: str, pixels: Any, target_obs: spaces.Space,
          target_act: spaces.Space, spec: tuple[Adapter, str] | None
          ) -> tuple[ResolvedAdapter | None, str | None]:
    """``(None, None)`` for a candidate that fits the target as it is, ``(adapter, how)``
    for one mapped through the adapter, ``(None, reason)`` for an unusable one."""
    card = ckpt.card
    if card.get("kind", "agent") != "agent":
        return None, (f"a kind={card.get('kind')!r} checkpoint holds no policy or critic to "
                      "probe; give agent checkpoints")
    obs, act = ckpt.observation_space(), ckpt.action_space()
    misfits = [f"{what} space {_space_words(mine)} does not fit the target's "
               f"{_space_words(theirs)}"
               for what, mine, theirs in (("observation", obs, target_obs),
                                          ("action", act, target_act))
               if not _fits(mine, theirs)]
    if not misfits:
        return None, None
    if spec is None:
        return None, "; ".join(misfits) + (" (give an adapter: --pair NAME, or adapter= in "
                                           "Python)")
    if card.get("structure"):
        return None, "; ".join(misfits) + (f" and {spec[1]} cannot map a checkpoint with a "
                                           "changed structure (progressive)")
    src_env = card.get("env") or {}
    try:
        resolved = spec[0].resolve(
            source_obs=obs, target_obs=target_obs, source_act=act, target_act=target_act,
            source_blocks=family_blocks(src_env.get("family"), src_env.get("pixels")),
            target_blocks=family_blocks(target, pixels), where=spec[1])
    except AdapterError as exc:
        return None, "; ".join(misfits) + f", and the adapter does not fit: {exc}"
    return resolved, f"mapped through the adapter of {spec[1]}"


def _env_words(desc: Mapping[str, Any], relative_to: Mapping[str, Any] | None = None) -> str:
    """``name knob=value ...``: the knobs that differ from ``relative_to``'s (same family)
    or from the family's defaults."""
    name = desc.get("name") or "?"
    knobs = desc.get("knobs") or {}
    base: Mapping[str, Any] = {}
    if relative_to is not None and relative_to.get("family") == desc.get("family") \
            and desc.get("family"):
        base = relative_to.get("knobs") or {}
    elif desc.get("family"):
        try:
            base = rl_envs.describe(desc["family"]).get("knobs") or {}
        except rl_envs.EnvError:
            base = {}
    shown = [f"{k}={v}" for k, v in sorted(knobs.items()) if base.get(k, object()) != v]
    pix = " pixels" if desc.get("pixels") else ""
    if not shown and base:
        return f"{name}{pix} (as the target)" if relative_to is not None \
            else f"{name}{pix} (defaults)"
    return " ".join([f"{name}{pix}", *shown])


def _unusable(label: str, ckpt: Checkpoint, reason: str) -> Row:
    return Row(label=label, path=str(ckpt.path or label), algo=ckpt.card.get("algo"),
               source=_env_words(ckpt.card.get("env") or {}), status="unusable",
               reason=reason, own_return=own_return(ckpt.card))


def _with_rank(row: Row, rank: float | None) -> Row:
    return dataclasses.replace(row, mean_rank=rank)


def _on_target(ckpt: Checkpoint, target: str, knobs: dict[str, Any], pixels: Any,
               resolved: ResolvedAdapter | None, seed: int) -> Any:
    """The candidate as an SB3 model on the target's spaces, normalization held fixed."""
    if resolved is None:
        model = load_agent(ckpt, env=target, knobs=knobs, seed=seed)
    else:
        card = ckpt.card
        preset = {k: v for k, v in card["preset"].items() if k != "algo"}
        model = build_agent(target, algo=card["algo"], seed=seed, knobs=knobs, pixels=pixels,
                            preset=preset, normalize=card.get("normalize") or None)
        adapted = adapt_checkpoint(ckpt, model, resolved)
        model.policy.load_state_dict(adapted.tensors, strict=True)
        if card.get("normalize"):
            load_normalization(model, adapted, update=False)
        log_ent_coef = getattr(model, "log_ent_coef", None)
        if "log_ent_coef" in ckpt.extras and log_ent_coef is not None:
            with torch.no_grad():
                log_ent_coef.copy_(ckpt.extras["log_ent_coef"])
    venv = model.get_vec_normalize_env()
    if venv is not None:
        venv.training = False
    model.policy.set_training_mode(False)
    return model


def _source_loader(ckpt: Checkpoint, label: str, seed: int) -> Callable[[], Any]:
    def load() -> Any:
        try:
            model = load_agent(ckpt, seed=seed)
        except (rl_envs.EnvError, ValueError, KeyError) as exc:
            first = (str(exc).splitlines() or [""])[0]
            raise RankError(f"candidate {label!r}: its own env cannot be built here "
                            f"({first})") from None
        model.policy.set_training_mode(False)
        return model

    return load


def _score(label: str, ckpt: Checkpoint, resolved: ResolvedAdapter | None, how: str | None,
           chosen: list[Probe], requests: dict[str, tuple[RolloutRequest, ...]], *,
           target: str, knobs: dict[str, Any], pixels: Any, seed: int, budget: int,
           on_step: Callable[[int], Any]) -> Row:
    algo = ckpt.card.get("algo")
    try:
        agent = _on_target(ckpt, target, knobs, pixels, resolved, seed)
    except (TransferError, AdapterError, RuntimeError) as exc:
        first = (str(exc).splitlines() or [""])[0]
        return _unusable(label, ckpt, f"cannot be built on the target's spaces: {first}")
    cand = Candidate(label=label, checkpoint=ckpt, agent=agent, adapter=resolved, seed=seed,
                     budget=budget, load_source=_source_loader(ckpt, label, seed))
    applies = {p.label: algo in p.algos for p in chosen}
    needed = list(dict.fromkeys(r for p in chosen if applies[p.label]
                                for r in requests[p.label]))
    source_note = ""
    with during_run("ranking"):
        for request in needed:
            if request.where == "target":
                cand.rollouts[request] = _rollout_on_target(agent, request, target, knobs,
                                                            pixels, seed, on_step)
            else:
                try:
                    source = cand.source_agent()
                except RankError as exc:
                    source_note = str(exc)
                    on_step(request.steps)
                    continue
                cand.rollouts[request] = _rollout_on_source(source, ckpt, request, seed,
                                                            on_step)
        scores = {}
        for p in chosen:
            scores[p.label] = _run_probe(p, cand, requests[p.label], applies[p.label],
                                         source_note)
    spent = {r: ro.steps for r, ro in cand.rollouts.items()}
    target_steps = sum(n for r, n in spent.items() if r.where == "target")
    source_steps = sum(n for r, n in spent.items() if r.where == "source")
    return Row(label=label, path=str(ckpt.path or label), algo=algo,
               source=_env_words(ckpt.card.get("env") or {}),
               status="adapted" if resolved is not None else "ok", reason=how or "",
               scores=scores, target_steps=target_steps, source_steps=source_steps,
               own_return=own_return(ckpt.card))


def _run_probe(probe: Probe, cand: Candidate, requests: tuple[RolloutRequest, ...],
               applies: bool, source_note: str) -> ProbeScore:
    if not applies:
        return ProbeScore(None, 0, 0, note=f"reads {list(probe.algos)} agents, not "
                                           f"{cand.algo!r} ones")
    missing = [r for r in requests if r not in cand.rollouts]
    target_steps = sum(cand.rollouts[r].steps for r in requests
                       if r.where == "target" and r in cand.rollouts)
    source_steps = sum(cand.rollouts[r].steps for r in requests
                       if r.where == "source" and r in cand.rollouts)
    if missing:
        return ProbeScore(None, target_steps, source_steps, note=source_note or
                          "a rollout it needs could not be collected")
    result = probe.score(cand)
    score = result.score
    note = result.note
    if score is not None and not np.isfinite(score):
        note = f"the score is {score} (the networks give non-finite values)"
        score = None
    return ProbeScore(None if score is None else float(score), target_steps, source_steps,
                      note=note, details=dict(result.details))


def _rollout_on_target(agent: Any, request: RolloutRequest, target: str,
                       knobs: dict[str, Any], pixels: Any, seed: int,
                       on_step: Callable[[int], Any]) -> Rollout:
    venv = make_env(target, knobs, n_envs=1, seed=seed, pixels=pixels, normalize=None)
    try:
        return collect(agent, venv, request, seed=seed, on_step=on_step)
    finally:
        venv.close()


def _rollout_on_source(source: Any, ckpt: Checkpoint, request: RolloutRequest, seed: int,
                       on_step: Callable[[int], Any]) -> Rollout:
    env = ckpt.card.get("env") or {}
    s = seed + SOURCE_SEED_OFFSET
    venv = make_env(env["name"], env.get("knobs") or {}, n_envs=1, seed=s,
                    pixels=env.get("pixels"), normalize=None)
    try:
        return collect(source, venv, request, seed=s, on_step=on_step)
    finally:
        venv.close()
