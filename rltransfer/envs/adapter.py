"""Adapters between spaces: how a source's observation and action dimensions correspond to a
target's, declared as data and resolved into index arrays once.

An :class:`Adapter` is written in a pair (``envs/*.yaml``) or an experiment file. Each of
``obs`` and ``act`` is either

- a list with one entry per *target* dimension: the source dimension it reads (an index, or
  the name of a one-dimension block), or ``null`` for a new dimension; or
- a mapping ``target dims: source dims``, each side an index, a block name, a slice
  ``"a:b"`` or (source side) a list of those; target dimensions not named are new.

Block names are the ``obs_blocks`` / ``act_blocks`` an env family declares (``hopper``:
``leg_pos``, ``leg_vel``...). ``mirror`` maps *new* target action dimensions to a source
action dimension whose output row they start from (a walker's left leg from the hopper's
leg). Source dimensions no target dimension reads are dropped. Omitting ``obs`` (or ``act``)
means the identity, which needs equal shapes.

:meth:`Adapter.resolve` checks the mapping against the four spaces and the two families'
blocks and returns a :class:`ResolvedAdapter`: for every target dimension its source index
(``-1``: new). Errors name the pair, the field, the value and the valid names.

Example:
    >>> from gymnasium import spaces
    >>> ad = Adapter(obs={0: 0, "2:4": [1, 2]})
    >>> box = lambda n: spaces.Box(-1, 1, (n,))
    >>> r = ad.resolve(source_obs=box(3), target_obs=box(5), source_act=box(1),
    ...                target_act=box(1))
    >>> r.obs, r.act
    ((0, -1, 1, 2, -1), (0,))
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from pydantic import BaseModel, ConfigDict, Field

from rltransfer.envs.errors import EnvError

__all__ = ["Adapter", "AdapterError", "Block", "ResolvedAdapter", "block_indices",
           "check_blocks"]

Block = int | str
"""A family's named block: one index, or a half-open slice ``"a:b"``."""
DimRef = int | str
"""One side of a correspondence: an index, a block name or a slice ``"a:b"``."""
_SLICE = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


class AdapterError(EnvError):
    """A mapping that names a dimension a space lacks, or leaves the shapes inconsistent."""


class Adapter(BaseModel):
    """How the source's observation and action dimensions correspond to the target's.

    Example (the hopper's leg drives a walker's right leg; the left leg mirrors it):
        >>> Adapter(act={"right_leg": "leg"}, mirror={"left_leg": "leg"}).mirror
        {'left_leg': 'leg'}
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    obs: list[DimRef | None] | dict[DimRef, DimRef | list[DimRef]] | None = None
    """Observation: per target dimension its source dimension (``null``: new), or a mapping
    ``target dims: source dims``. Omitted: the identity (equal shapes)."""
    act: list[DimRef | None] | dict[DimRef, DimRef | list[DimRef]] | None = None
    """Actions (Box spaces), in the same forms. Omitted: the identity (equal shapes)."""
    mirror: dict[DimRef, DimRef | list[DimRef]] = Field(default_factory=dict)
    """New target action dimensions that start as a copy of a source action dimension's
    output row (mean and log-std), ``target dims: source dims``."""

    def to_json(self) -> dict[str, Any]:
        """The spec as written (JSON-able, keys as strings where YAML allowed ints)."""
        out: dict[str, Any] = {}
        for name in ("obs", "act", "mirror"):
            value = getattr(self, name)
            if value is None or (name == "mirror" and not value):
                continue
            out[name] = ({str(k): v for k, v in value.items()} if isinstance(value, Mapping)
                         else list(value))
        return out

    def resolve(self, *, source_obs: spaces.Space, target_obs: spaces.Space,
                source_act: spaces.Space, target_act: spaces.Space,
                source_blocks: tuple[Mapping[str, Block], Mapping[str, Block]] | None = None,
                target_blocks: tuple[Mapping[str, Block], Mapping[str, Block]] | None = None,
                where: str = "adapter") -> ResolvedAdapter:
        """Check the mapping against the spaces and blocks; index arrays for every target dim.

        ``source_blocks``/``target_blocks``: ``(obs_blocks, act_blocks)`` of each side's
        family (none for a plain Gymnasium id). ``where`` prefixes every error (the pair).
        """
        sb = source_blocks or ({}, {})
        tb = target_blocks or ({}, {})
        obs = _resolve_space("obs", self.obs, source_obs, target_obs, sb[0], tb[0], where)
        act = _resolve_space("act", self.act, source_act, target_act, sb[1], tb[1], where)
        mirrored: list[int] = []
        if self.mirror:
            if act is None:
                raise AdapterError(f"{where}: adapter.mirror: the action spaces are not Box "
                                   "vectors; only continuous actions can be mirrored")
            act = list(act)
            n_src, n_tgt = _dim(source_act), _dim(target_act)
            for key, value in self.mirror.items():
                tgt = _refs(key, n_tgt, tb[1], "target action", f"{where}: adapter.mirror")
                src = _refs(value, n_src, sb[1], "source action", f"{where}: adapter.mirror")
                if len(src) == 1:
                    src = src * len(tgt)
                if len(src) != len(tgt):
                    raise AdapterError(
                        f"{where}: adapter.mirror: {key!r} is {len(tgt)} target dims but "
                        f"{value!r} is {len(src)} source dims; the shapes must agree")
                for t, s in zip(tgt, src, strict=True):
                    if act[t] != -1:
                        raise AdapterError(
                            f"{where}: adapter.mirror: target action dim {t} ({key!r}) already "
                            f"reads source dim {act[t]}; mirror only new dims")
                    act[t] = s
                    mirrored.append(t)
        return ResolvedAdapter(
            obs=tuple(obs) if obs is not None else tuple(range(_dim(target_obs))),
            act=tuple(act) if act is not None else None,
            mirror=tuple(sorted(mirrored)),
            source_obs_dim=_dim(source_obs),
            source_act_dim=_dim(source_act) if act is not None else None,
            spec=self.to_json())


@dataclasses.dataclass(frozen=True)
class ResolvedAdapter:
    """An adapter checked against its spaces: for each target dimension, its source index.

    ``obs[t]`` / ``act[t]`` is the source dimension target dimension ``t`` reads, ``-1`` when
    it is new. ``act`` is ``None`` when actions are not Box vectors (they must then be equal).
    ``mirror`` lists the target action dimensions that copy a source row without
    corresponding to it (the teacher's distribution on them is not distilled).
    """

    obs: tuple[int, ...]
    act: tuple[int, ...] | None
    mirror: tuple[int, ...]
    source_obs_dim: int
    source_act_dim: int | None
    spec: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def new_obs(self) -> list[int]:
        """Target observation dimensions with no source counterpart."""
        return [t for t, s in enumerate(self.obs) if s < 0]

    @property
    def dropped_obs(self) -> list[int]:
        """Source observation dimensions no target dimension reads."""
        return sorted(set(range(self.source_obs_dim)) - {s for s in self.obs if s >= 0})

    def obs_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """``(target dims, source dims)`` of the shared observation dimensions."""
        pairs = [(t, s) for t, s in enumerate(self.obs) if s >= 0]
        return (np.array([p[0] for p in pairs], dtype=np.int64),
                np.array([p[1] for p in pairs], dtype=np.int64))

    def act_pairs(self, mirrors: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """``(target dims, source dims)`` of the action dimensions that read a source one
        (mirrors included unless ``mirrors=False``)."""
        if self.act is None:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        pairs = [(t, s) for t, s in enumerate(self.act)
                 if s >= 0 and (mirrors or t not in self.mirror)]
        return (np.array([p[0] for p in pairs], dtype=np.int64),
                np.array([p[1] for p in pairs], dtype=np.int64))

    def source_obs(self, obs: np.ndarray) -> np.ndarray:
        """The source's observation for target observations ``obs`` (last axis mapped back;
        dropped source dimensions read 0, their mean once observations are normalized)."""
        obs = np.asarray(obs)
        out = np.zeros((*obs.shape[:-1], self.source_obs_dim), dtype=obs.dtype)
        tgt, src = self.obs_pairs()
        out[..., src] = obs[..., tgt]
        return out

    @property
    def is_identity(self) -> bool:
        """Whether the adapter maps every dimension to itself (same shapes)."""
        same_obs = self.obs == tuple(range(self.source_obs_dim))
        same_act = self.act is None or (self.act == tuple(range(self.source_act_dim or 0))
                                        and not self.mirror)
        return same_obs and same_act

    def to_json(self) -> dict[str, Any]:
        """The spec and the resolved indices, for checkpoint cards."""
        return {"spec": self.spec, "obs": list(self.obs),
                "act": list(self.act) if self.act is not None else None,
                "mirror": list(self.mirror), "source_obs_dim": self.source_obs_dim,
                "source_act_dim": self.source_act_dim}


# --------------------------------------------------------------------------- blocks


def block_indices(name: str, block: Block, dim: int | None = None) -> list[int]:
    """The indices of one declared block (``3`` or ``"2:5"``); checked against ``dim``."""
    if isinstance(block, bool):
        raise EnvError(f"block {name!r}: value {block!r} is not an index or a slice 'a:b'")
    if isinstance(block, int):
        idx = [block]
    else:
        m = _SLICE.match(str(block))
        if not m or int(m.group(1)) >= int(m.group(2)):
            raise EnvError(f"block {name!r}: value {block!r} is not an index or a slice 'a:b' "
                           "with a < b")
        idx = list(range(int(m.group(1)), int(m.group(2))))
    if min(idx) < 0 or (dim is not None and max(idx) >= dim):
        span = f"0..{dim - 1}" if dim else "none"
        raise EnvError(f"block {name!r}: value {block!r} is outside the space "
                       f"({dim} dims: {span})")
    return idx


def check_blocks(blocks: Mapping[str, Block], what: str) -> dict[str, Block]:
    """Validate a family's ``obs_blocks``/``act_blocks`` (form only, not the space)."""
    for name, block in blocks.items():
        if _SLICE.match(str(name)) or str(name).lstrip("-").isdigit():
            raise EnvError(f"{what}: block name {name!r} looks like an index or a slice; "
                           "give it a word")
        block_indices(name, block)
    return dict(blocks)


# --------------------------------------------------------------------------- resolving


def _dim(space: spaces.Space) -> int:
    if isinstance(space, spaces.Box) and len(space.shape) == 1:
        return int(space.shape[0])
    return -1


def _resolve_space(field: str, value: Any, source: spaces.Space, target: spaces.Space,
                   source_blocks: Mapping[str, Block], target_blocks: Mapping[str, Block],
                   where: str) -> list[int] | None:
    """Per target dimension its source index (-1: new); ``None`` for equal non-Box spaces."""
    what = "observation" if field == "obs" else "action"
    at = f"{where}: adapter.{field}"
    n_src, n_tgt = _dim(source), _dim(target)
    if value is None:
        if n_src < 0 or n_tgt < 0:
            if source != target:
                raise AdapterError(f"{at}: the {what} spaces differ ({source} -> {target}) and "
                                   "only Box vectors can be mapped")
            return None
        if n_src != n_tgt:
            raise AdapterError(f"{at}: missing, but the {what} spaces differ ({n_src} -> "
                               f"{n_tgt} dims); give the mapping (target dims: source dims)"
                               + _names_hint(source_blocks, target_blocks))
        return list(range(n_tgt))
    for side, n, space in (("source", n_src, source), ("target", n_tgt, target)):
        if n < 0:
            raise AdapterError(f"{at}: the {side} {what} space {space} is not a Box vector; "
                               "an adapter maps flat vectors only")
    out = [-1] * n_tgt
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != n_tgt:
            raise AdapterError(f"{at}: a list needs one entry per target {what} dim "
                               f"({n_tgt}); got {len(value)}")
        pairs = []
        for t, ref in enumerate(value):
            if ref is None:
                continue
            src = _refs(ref, n_src, source_blocks, f"source {what}", f"{at}[{t}]")
            if len(src) != 1:
                raise AdapterError(f"{at}[{t}]: {ref!r} is {len(src)} source dims; a list "
                                   "entry names one")
            pairs.append((t, src[0]))
    else:
        pairs = []
        for key, ref in value.items():
            tgt = _refs(key, n_tgt, target_blocks, f"target {what}", at)
            src = _refs(ref, n_src, source_blocks, f"source {what}", f"{at}.{key}")
            if len(tgt) != len(src):
                raise AdapterError(f"{at}: {key!r} is {len(tgt)} target dims but {ref!r} is "
                                   f"{len(src)} source dims; the shapes must agree")
            pairs += list(zip(tgt, src, strict=True))
    seen_src: dict[int, int] = {}
    for t, s in pairs:
        if out[t] != -1:
            raise AdapterError(f"{at}: target {what} dim {t} is mapped twice")
        if s in seen_src:
            raise AdapterError(f"{at}: source {what} dim {s} feeds target dims {seen_src[s]} "
                               f"and {t}; each source dim is read at most once"
                               + (" (use mirror for actions)" if field == "act" else ""))
        out[t] = s
        seen_src[s] = t
    return out


def _refs(ref: Any, dim: int, blocks: Mapping[str, Block], what: str, at: str) -> list[int]:
    """The indices ``ref`` names in a space of ``dim`` dims with named ``blocks``."""
    if isinstance(ref, list | tuple):
        return [i for r in ref for i in _refs(r, dim, blocks, what, at)]
    if isinstance(ref, bool):
        raise AdapterError(f"{at}: value {ref!r} is not an index, a block name or 'a:b'")
    if isinstance(ref, int) or (isinstance(ref, str) and ref.strip().isdigit()):
        i = int(ref)
        if not 0 <= i < dim:
            raise AdapterError(f"{at}: index {i} is outside the {what} space ({dim} dims: "
                               f"0..{dim - 1})" + _valid(blocks))
        return [i]
    if isinstance(ref, str) and ref in blocks:
        try:
            return block_indices(ref, blocks[ref], dim)
        except EnvError as err:
            raise AdapterError(f"{at}: the {what} {err}") from None
    if isinstance(ref, str) and _SLICE.match(ref):
        a, b = (int(x) for x in _SLICE.match(ref).groups())  # type: ignore[union-attr]
        if a >= b or b > dim:
            raise AdapterError(f"{at}: slice {ref!r} is outside the {what} space ({dim} dims: "
                               f"0..{dim - 1})")
        return list(range(a, b))
    raise AdapterError(f"{at}: {ref!r} is not a dim of the {what} space" + _valid(blocks)
                       + f" or indices 0..{dim - 1} / slices 'a:b'")


def _valid(blocks: Mapping[str, Block]) -> str:
    return f"; valid names: {sorted(blocks)}" if blocks else "; it has no named blocks"


def _names_hint(source: Mapping[str, Block], target: Mapping[str, Block]) -> str:
    if not (source or target):
        return ""
    return f" (source names: {sorted(source)}; target names: {sorted(target)})"
