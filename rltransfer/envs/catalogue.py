"""The catalogue: families and source→target pairs, read from YAML data files.

Built-in files are the ``*.yaml`` in the shipped ``envs/`` folder (the repository's top-level
``envs/``, copied into installed packages: see :func:`rltransfer._data.data_dir`); more come from
the paths (files or folders) in the ``RLTRANSFER_ENVS`` environment variable, separated by
``os.pathsep``. YAML is data only: it is parsed with ``yaml.safe_load`` and validated, never
evaluated. A file holds two optional mappings::

    families:
      cartpole:
        gym_id: CartPole-v1
        knobs:
          length: {kind: attr, default: 0.5, range: [0.2, 1.5]}
    pairs:
      cartpole/long-pole:
        source: {env: cartpole}
        target: {env: cartpole, knobs: {length: 1.0}}
        threshold: 475
        budget: 100000

A pair whose spaces differ declares an ``adapter`` (see :class:`rltransfer.envs.Adapter`):
which source observation and action dimensions the target's correspond to.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
from pydantic import ValidationError

from rltransfer._data import data_dir
from rltransfer._validation import format_validation_error, read_yaml
from rltransfer.envs.adapter import Adapter, AdapterError, ResolvedAdapter
from rltransfer.envs.errors import EnvError, unknown_name
from rltransfer.envs.family import (
    _FAMILIES,
    EnvFamily,
    _register,
    _validation_message,
    absolute_entry_point,
    find_family,
)
from rltransfer.envs.making import EnvFactory, Target, build, description, factory

ENV_VAR = "RLTRANSFER_ENVS"


def builtin_dir() -> Path:
    """The ``envs/`` folder holding the built-in catalogue (and its ``examples/``)."""
    return data_dir("envs")


@dataclasses.dataclass(frozen=True)
class Member:
    """One side of a pair: an env (family or Gymnasium id), knob values and an optional pixel view.

    Example:
        >>> import rltransfer.envs as rte
        >>> m = rte.get_pair("cartpole/long-heavy-pole").target
        >>> m.make().unwrapped.length
        1.0
    """

    env: str
    """Family name or Gymnasium id."""
    knobs: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Knob values that differ from the family's defaults."""
    pixels: dict[str, Any] | None = None
    """Pixel view (see :class:`rltransfer.envs.PixelSpec`), or ``None`` for state observations."""

    def make(self, **kwargs: Any) -> gym.Env:
        """Build this member (see :func:`rltransfer.envs.make`)."""
        return build(lookup(self.env), self.knobs, pixels=self.pixels, **kwargs)

    def env_fn(self) -> EnvFactory:
        """A picklable zero-argument factory of this member (see :func:`rltransfer.envs.env_fn`)."""
        return factory(lookup(self.env), self.knobs, pixels=self.pixels)

    def describe(self) -> dict[str, Any]:
        """The canonical description (see :func:`rltransfer.envs.describe`)."""
        return description(lookup(self.env), self.knobs, pixels=self.pixels)


@dataclasses.dataclass(frozen=True)
class Pair:
    """A named transfer task: train on ``source``, then on ``target``.

    Example:
        >>> import rltransfer.envs as rte
        >>> pair = rte.get_pair("pendulum/heavy")
        >>> pair.target.knobs, pair.threshold
        ({'m': 1.5}, -250.0)
    """

    name: str
    """Pair name, ``family/variant``."""
    source: Member
    """The env the agent is pretrained on."""
    target: Member
    """The env it is transferred to."""
    threshold: float
    """Episode return on the target that counts as solved (for time-to-threshold)."""
    budget: int
    """Default number of target training steps."""
    description: str = ""
    """One line for ``rltransfer list``."""
    source_file: str = "python"
    """Where the pair was declared."""
    adapter: Adapter | None = None
    """How source dimensions correspond to the target's, when the spaces differ."""

    def resolve_adapter(self, adapter: Adapter | Mapping[str, Any] | None = None
                        ) -> ResolvedAdapter | None:
        """The pair's adapter (or ``adapter``, overriding it) checked against both members'
        spaces; ``None`` when neither is given.

        Example:
            >>> r = get_pair("invertedpendulum/to-double").resolve_adapter()
            >>> r.obs  # per target dim, the source dim it reads (-1: new)
            (0, 1, -1, -1, -1, 2, 3, -1, -1)
        """
        spec = parse_adapter(adapter, f"pair {self.name!r}") if adapter is not None \
            else self.adapter
        if spec is None:
            return None
        return resolve_members(spec, self.source, self.target, where=f"pair {self.name!r}")


_PAIRS: dict[str, Pair] = {}
_STATE = {"loaded": False}


# ---------------------------------------------------------------------- parsing


def _catalogue_files() -> list[Path]:
    files = sorted(builtin_dir().glob("*.yaml"))
    for item in os.environ.get(ENV_VAR, "").split(os.pathsep):
        if not item.strip():
            continue
        p = Path(item).expanduser()
        if p.is_dir():
            files += sorted(p.glob("*.yaml")) + sorted(p.glob("*.yml"))
        elif p.is_file():
            files.append(p)
        else:
            raise EnvError(f"{ENV_VAR}: path {item!r} is neither a file nor a folder")
    seen: list[Path] = []
    for f in files:
        if f.resolve() not in seen:
            seen.append(f.resolve())
    return seen


def _read(path: Path) -> dict[str, Any]:
    data = read_yaml(path, EnvError, "a catalogue file") or {}
    if not isinstance(data, dict):
        raise EnvError(f"{path}: top level must be a mapping with 'families' and/or 'pairs'")
    for key in data:
        if key not in ("families", "pairs"):
            raise unknown_name("top-level key", key, ["families", "pairs"], where=f" in {path}")
    for key in ("families", "pairs"):
        if not isinstance(data.get(key) or {}, dict):
            raise EnvError(f"{path}: {key!r} must be a mapping of name to entry")
    return data


def parse_family(name: str, entry: Any, path: Path) -> EnvFamily:
    """Validate one ``families:`` entry of the YAML file ``path``."""
    if not isinstance(entry, dict):
        raise EnvError(f"{path}: family {name!r}: entry must be a mapping, got {entry!r}")
    entry = dict(entry)
    if isinstance(entry.get("entry_point"), str):
        entry["entry_point"] = absolute_entry_point(entry["entry_point"], path.parent)
    xml = entry.get("xml")
    if isinstance(xml, str) and (path.parent / xml).is_file():
        entry["xml"] = str((path.parent / xml).resolve())
    try:
        return EnvFamily(name=name, source=str(path), **entry)
    except ValidationError as err:
        raise EnvError(f"{path}: family {name!r}: {_validation_message(err)}") from err
    except EnvError as err:
        raise EnvError(f"{path}: {err}") from err
    except TypeError as err:
        raise EnvError(f"{path}: family {name!r}: {err}") from err


def _member(value: Any, where: str) -> Member:
    if isinstance(value, str):
        return Member(env=value)
    if not isinstance(value, dict):
        raise EnvError(f"{where}: value {value!r} is not a family name or a mapping")
    for key in value:
        if key not in ("env", "knobs", "pixels"):
            raise unknown_name("member field", key, ["env", "knobs", "pixels"], where=f" ({where})")
    if not isinstance(value.get("env"), str):
        raise EnvError(f"{where}.env: value {value.get('env')!r} is not a family name or env id")
    knobs = value.get("knobs") or {}
    if not isinstance(knobs, dict):
        raise EnvError(f"{where}.knobs: value {knobs!r} is not a mapping")
    pixels = value.get("pixels")
    if pixels is not None and pixels is not True and not isinstance(pixels, dict):
        raise EnvError(f"{where}.pixels: value {pixels!r} is not a mapping, true or null")
    if pixels is True:
        pixels = {}
    return Member(env=value["env"], knobs=dict(knobs), pixels=pixels)


def parse_pair(name: str, entry: Any, path: Path | str) -> Pair:
    """Validate one ``pairs:`` entry (structure only; members are checked by :func:`check_pair`)."""
    where = f"{path}: pair {name!r}"
    if not isinstance(entry, dict):
        raise EnvError(f"{where}: entry must be a mapping, got {entry!r}")
    fields = ["source", "target", "threshold", "budget", "description", "adapter"]
    for key in entry:
        if key not in fields:
            raise unknown_name("pair field", key, fields, where=f" ({where})")
    for key in ("source", "target", "threshold", "budget"):
        if key not in entry:
            raise EnvError(f"{where}: field {key!r} is missing")
    threshold, budget = entry["threshold"], entry["budget"]
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise EnvError(f"{where}.threshold: value {threshold!r} is not a number")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0:
        raise EnvError(f"{where}.budget: value {budget!r} is not a positive integer (steps)")
    return Pair(
        name=name,
        source=_member(entry["source"], f"{where}.source"),
        target=_member(entry["target"], f"{where}.target"),
        threshold=float(threshold),
        budget=budget,
        description=str(entry.get("description", "")),
        source_file=str(path),
        adapter=parse_adapter(entry.get("adapter"), where),
    )


def parse_adapter(value: Any, where: str) -> Adapter | None:
    """An :class:`Adapter` from a mapping (``None`` stays ``None``); errors name ``where``."""
    if value is None or isinstance(value, Adapter):
        return value
    if not isinstance(value, Mapping):
        raise AdapterError(f"{where}.adapter: value {value!r} is not a mapping with obs, act, "
                           "mirror")
    try:
        return Adapter.model_validate(dict(value))
    except ValidationError as err:
        raise AdapterError(format_validation_error(err, f"{where}.adapter", "adapter",
                                                   Adapter)) from None


def member_spaces(member: Member) -> tuple[Any, Any, tuple[dict, dict]]:
    """``(observation space, action space, (obs_blocks, act_blocks))`` of a member (built once
    and closed; a plain Gymnasium id has no blocks)."""
    env = member.make()
    try:
        obs_space, act_space = env.observation_space, env.action_space
    finally:
        env.close()
    return obs_space, act_space, family_blocks(member.env, member.pixels)


def family_blocks(env: str | None, pixels: Any = None) -> tuple[dict, dict]:
    """``(obs_blocks, act_blocks)`` of an env's family; none for a plain Gymnasium id, an
    unknown name or a pixel view (whose observation is an image)."""
    if not env or pixels:
        return {}, {}
    ensure_loaded()
    fam = find_family(env)
    return (dict(fam.obs_blocks), dict(fam.act_blocks)) if fam is not None else ({}, {})


def resolve_members(spec: Adapter, source: Member, target: Member, *,
                    where: str = "adapter") -> ResolvedAdapter:
    """``spec`` resolved against the spaces and blocks of two members."""
    so, sa, sb = member_spaces(source)
    to, ta, tb = member_spaces(target)
    return spec.resolve(source_obs=so, target_obs=to, source_act=sa, target_act=ta,
                        source_blocks=sb, target_blocks=tb, where=where)


def check_pair(pair: Pair) -> None:
    """Check that both members name known envs with valid knobs and pixel views, and that
    the adapter's names are blocks of the members' families (its shapes are checked against
    the spaces when it is resolved: that builds the envs)."""
    for side in ("source", "target"):
        m: Member = getattr(pair, side)
        try:
            m.describe()
        except EnvError as err:
            raise EnvError(f"{pair.source_file}: pair {pair.name!r}.{side}: {err}") from err
    if pair.adapter is not None:
        _check_adapter_names(pair)


def _check_adapter_names(pair: Pair) -> None:
    def blocks(m: Member, kind: str) -> dict[str, Any]:
        t = lookup(m.env)
        return dict(getattr(t, kind)) if isinstance(t, EnvFamily) else {}

    ad = pair.adapter
    assert ad is not None
    checks = [("obs", ad.obs, "obs_blocks"), ("act", ad.act, "act_blocks"),
              ("mirror", ad.mirror, "act_blocks")]
    for field, value, kind in checks:
        if not value:
            continue
        items = (list(value.items()) if isinstance(value, Mapping)
                 else [(None, v) for v in value])
        for key, ref in items:
            for side, names, name in (("target", blocks(pair.target, kind), key),
                                      ("source", blocks(pair.source, kind), ref)):
                for n in (name if isinstance(name, list) else [name]):
                    if (isinstance(n, str) and not n.strip().isdigit() and ":" not in n
                            and n not in names):
                        env = getattr(pair, side).env
                        raise AdapterError(
                            f"{pair.source_file}: pair {pair.name!r}: adapter.{field}: {n!r} "
                            f"is not a block of the {side} {env!r}; valid names: "
                            f"{sorted(names)}")


# ---------------------------------------------------------------------- loading


def ensure_loaded() -> None:
    """Load the built-in catalogue and ``RLTRANSFER_ENVS`` once (atomically: all or nothing)."""
    if _STATE["loaded"]:
        return
    fams: dict[str, EnvFamily] = {}
    prs: dict[str, Pair] = {}
    for path in _catalogue_files():
        data = _read(path)
        for name, entry in (data.get("families") or {}).items():
            if name in fams:
                raise EnvError(
                    f"{path}: family {name!r} is already declared in {fams[name].source}"
                )
            fams[name] = parse_family(str(name), entry, path)
        for name, entry in (data.get("pairs") or {}).items():
            if name in prs:
                raise EnvError(
                    f"{path}: pair {name!r} is already declared in {prs[name].source_file}"
                )
            prs[name] = parse_pair(str(name), entry, path)
    for fam in fams.values():
        if fam.name not in _FAMILIES or _FAMILIES[fam.name].source != "python":
            _register(fam)
    _STATE["loaded"] = True
    try:
        for pair in prs.values():
            check_pair(pair)
    except EnvError:
        for name in fams:
            _FAMILIES.pop(name, None)
        _STATE["loaded"] = False
        raise
    for name, pair in prs.items():
        _PAIRS.setdefault(name, pair)


def reload() -> None:
    """Forget families and pairs read from files and read them again (after editing YAML or
    changing ``RLTRANSFER_ENVS``); families and pairs registered from Python stay."""
    for name in [n for n, f in _FAMILIES.items() if f.source != "python"]:
        del _FAMILIES[name]
    for name in [n for n, p in _PAIRS.items() if p.source_file != "python"]:
        del _PAIRS[name]
    _STATE["loaded"] = False
    ensure_loaded()


def load_file(path: str | os.PathLike[str]) -> tuple[list[EnvFamily], list[Pair]]:
    """Add the families and pairs of one more YAML file; return what it declared.

    Example:
        >>> import rltransfer.envs as rte
        >>> fams, prs = rte.load_file(rte.builtin_dir() / "examples" / "point_mass.yaml")
        >>> [f.name for f in fams]
        ['point-mass']
    """
    ensure_loaded()
    p = Path(path).resolve()
    data = _read(p)
    fams = [parse_family(str(n), e, p) for n, e in (data.get("families") or {}).items()]
    for fam in fams:
        _register(fam)
    prs = [parse_pair(str(n), e, p) for n, e in (data.get("pairs") or {}).items()]
    for pair in prs:
        check_pair(pair)
        _PAIRS[pair.name] = pair
    return fams, prs


def register_pair(
    name: str,
    source: Member | Mapping[str, Any] | str,
    target: Member | Mapping[str, Any] | str,
    *,
    threshold: float,
    budget: int,
    description: str = "",
    adapter: Adapter | Mapping[str, Any] | None = None,
) -> Pair:
    """Declare a pair from Python (``adapter``: see :class:`rltransfer.envs.Adapter`).

    Example:
        >>> import rltransfer.envs as rte
        >>> p = rte.register_pair("cartpole/my-pole", "cartpole",
        ...                       {"env": "cartpole", "knobs": {"length": 0.8}},
        ...                       threshold=475, budget=50_000)
        >>> p.target.knobs
        {'length': 0.8}
    """
    ensure_loaded()

    def as_dict(m: Member | Mapping[str, Any] | str) -> Any:
        return dataclasses.asdict(m) if isinstance(m, Member) else m

    entry = {
        "source": as_dict(source),
        "target": as_dict(target),
        "threshold": threshold,
        "budget": budget,
        "description": description,
        "adapter": adapter,
    }
    pair = parse_pair(name, entry, "python")
    check_pair(pair)
    _PAIRS[name] = pair
    return pair


def get_pair(name: str) -> Pair:
    """The pair called ``name``.

    Raises:
        EnvError: unknown name; the message lists the closest pair names.

    Example:
        >>> pair = get_pair("cartpole/long-heavy-pole")
        >>> pair.target.knobs, pair.threshold, pair.budget
        ({'length': 1.0, 'masspole': 0.5}, 475.0, 100000)
    """
    ensure_loaded()
    if name not in _PAIRS:
        raise unknown_name("pair", name, _PAIRS)
    return _PAIRS[name]


def pairs() -> list[Pair]:
    """All pairs, sorted by name."""
    ensure_loaded()
    return [_PAIRS[k] for k in sorted(_PAIRS)]


def get_family(name: str) -> EnvFamily:
    """The family called ``name`` (case-insensitive; its ``rltransfer/<Title>-v0`` id works too).

    Raises:
        EnvError: unknown name; the message lists the closest family names.

    Example:
        >>> import rltransfer.envs as rte
        >>> sorted(rte.get_family("pendulum").knobs)
        ['g', 'l', 'm']
    """
    ensure_loaded()
    found = find_family(name)
    if found is None:
        raise unknown_name("env family", name, _FAMILIES)
    return found


def families() -> list[EnvFamily]:
    """All registered families, sorted by name."""
    ensure_loaded()
    return [_FAMILIES[k] for k in sorted(_FAMILIES)]


def lookup(env: str) -> Target:
    """The family called ``env`` (catalogue loaded first), or ``env`` itself when it is a
    plain Gymnasium id.

    Raises:
        EnvError: neither; the message lists the closest family names and Gymnasium ids.

    Example:
        >>> lookup("CartPole").name, lookup("CartPole-v1")
        ('cartpole', 'CartPole-v1')
    """
    if not isinstance(env, str):
        raise EnvError(f"env: value {env!r} is not a family name or Gymnasium id")
    ensure_loaded()
    fam = find_family(env)
    if fam is not None:
        return fam
    if env in gym.registry:
        return env
    names = [f.name for f in families()]
    close = difflib.get_close_matches(env, names + [i for i in gym.registry], n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise EnvError(
        f"unknown env family or Gymnasium id {env!r}{hint} Known families: "
        f"{', '.join(names)} (or any registered Gymnasium id)"
    )


__all__ = [
    "ENV_VAR",
    "family_blocks",
    "member_spaces",
    "parse_adapter",
    "resolve_members",
    "Member",
    "Pair",
    "builtin_dir",
    "ensure_loaded",
    "families",
    "find_family",
    "get_family",
    "get_pair",
    "load_file",
    "lookup",
    "pairs",
    "register_pair",
    "reload",
]
