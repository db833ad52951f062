"""Env families: a base env plus named knobs, a registry of them, and Gymnasium ids for members.

A family is data (:class:`EnvFamily`, a pydantic model), so it validates when declared, prints
in ``rltransfer list`` and pickles into worker processes. Every family is also registered with
Gymnasium as ``rltransfer/<Title>-v0`` with the lazy string entry point
``rltransfer.envs:make_member``, so ``gymnasium.make`` and SB3's ``make_vec_env`` work.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rltransfer._validation import error_lines
from rltransfer.envs.adapter import Block, check_blocks
from rltransfer.envs.checks import CheckedEnv
from rltransfer.envs.errors import EnvError, unknown_name
from rltransfer.envs.knobs import (
    Knob,
    apply_attr_knobs,
    apply_callable_knobs,
    resolve_callable,
    split_knobs,
)
from rltransfer.envs.mujoco_knobs import apply_model_knobs, edited_xml

GYM_NAMESPACE = "rltransfer"


class PublishedScore(BaseModel):
    """A published score of one algorithm on a family's base env: the yardstick a source
    trained here is held to (reports print a source's final return beside it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    score: float
    """Mean evaluation return."""
    steps: int = Field(gt=0)
    """Training steps behind it."""
    env: str
    """The env it was measured on (``Hopper-v3``: an older version than the family's)."""
    reference: str
    """Where it is published."""


class EnvFamily(BaseModel):
    """A base env plus named knobs; ``family.make(**knobs)`` builds a member.

    Exactly one of ``gym_id`` (a registered Gymnasium id) or ``entry_point``
    (``"package.module:Class"``, ``"/abs/path/file.py:Class"`` or a callable returning an env)
    names the base env.

    Example:
        >>> import rltransfer.envs as rte
        >>> env = rte.get_family("cartpole").make(length=1.0, masspole=0.5)
        >>> env.unwrapped.polemass_length
        0.5
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str
    """Family name used everywhere (``"cartpole"``): lowercase, no spaces."""
    gym_id: str | None = None
    """Gymnasium id of the base env (``"CartPole-v1"``)."""
    entry_point: str | Callable[..., Any] | None = None
    """``package.module:Class`` or ``path/to/file.py:Class`` (or a callable) for custom envs."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """Fixed constructor keywords of every member."""
    knobs: dict[str, Knob] = Field(default_factory=dict)
    """The family's knobs by name."""
    xml: str | None = None
    """Base MuJoCo XML for ``xml`` knobs (a file name in Gymnasium's assets, or a path)."""
    max_episode_steps: int | None = None
    """Time limit for ``entry_point`` members (``gym_id`` members keep their registered one)."""
    drawer: str | None = None
    """``"module:function"`` drawing a frame with numpy: ``fn(unwrapped, height, width)``."""
    title: str | None = None
    """Name in the Gymnasium id ``rltransfer/<title>-v0`` (default: from ``gym_id`` or name)."""
    description: str = ""
    """One line for ``rltransfer list``."""
    obs_blocks: dict[str, Block] = Field(default_factory=dict)
    """Named observation blocks, ``name: index`` or ``name: "a:b"`` (half-open), for
    adapters between spaces (see :class:`rltransfer.envs.Adapter`)."""
    act_blocks: dict[str, Block] = Field(default_factory=dict)
    """Named action blocks, as ``obs_blocks``."""
    published: dict[str, PublishedScore] = Field(default_factory=dict)
    """Published scores on the base env by algorithm (``ppo``, ``sac``), e.g. the RL Zoo's."""
    source: str = "python"
    """Where the family was declared (a YAML file, or ``python``)."""

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not v or any(c.isspace() for c in v) or v != v.lower():
            raise ValueError(f"family name {v!r} must be lowercase without spaces")
        return v

    def model_post_init(self, _ctx: Any) -> None:
        if (self.gym_id is None) == (self.entry_point is None):
            raise EnvError(
                f"family {self.name!r}: give exactly one of 'gym_id' or 'entry_point' "
                f"(got gym_id={self.gym_id!r}, entry_point={self.entry_point!r})"
            )
        if any(k.kind == "xml" for k in self.knobs.values()) and self.xml is None:
            raise EnvError(f"family {self.name!r}: xml knobs need the family's 'xml' file")
        check_blocks(self.obs_blocks, f"family {self.name!r}: obs_blocks")
        check_blocks(self.act_blocks, f"family {self.name!r}: act_blocks")

    # ------------------------------------------------------------------ naming

    @property
    def gym_name(self) -> str:
        """The Gymnasium id of members: ``rltransfer/<Title>-v0``."""
        if self.title:
            title = self.title
        elif self.gym_id:
            title = self.gym_id.split("/")[-1].rsplit("-v", 1)[0]
        else:
            title = "".join(p.capitalize() for p in self.name.replace("_", "-").split("-"))
        return f"{GYM_NAMESPACE}/{title}-v0"

    @property
    def base(self) -> str:
        """The underlying env: the Gymnasium id or the entry point, as a string."""
        if self.gym_id is not None:
            return self.gym_id
        ep = self.entry_point
        assert ep is not None  # exactly one of gym_id and entry_point (model_post_init)
        return ep if isinstance(ep, str) else f"{ep.__module__}:{ep.__qualname__}"

    # ------------------------------------------------------------------ knobs

    def defaults(self) -> dict[str, Any]:
        """Every knob at its default value, sorted by name."""
        return {name: self.knobs[name].default for name in sorted(self.knobs)}

    def resolve(self, knobs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Validate ``knobs`` and fill in defaults: all knob values, sorted by name.

        Raises:
            EnvError: an unknown knob (the message lists the family's knobs) or a bad value.
        """
        values = self.defaults()
        for name, value in dict(knobs or {}).items():
            if name not in self.knobs:
                raise unknown_name("knob", name, self.knobs, where=f" for family {self.name!r}")
            values[name] = self.knobs[name].check(name, value)
        return values

    # ------------------------------------------------------------------ building

    def make(
        self,
        knobs: Mapping[str, Any] | None = None,
        *,
        render_mode: str | None = None,
        env_kwargs: Mapping[str, Any] | None = None,
        **knob_values: Any,
    ) -> gym.Env:
        """Build a member: ``family.make(length=1.0)`` or ``family.make({"length": 1.0})``.

        ``env_kwargs`` go to the constructor as they are (``width``/``height`` for MuJoCo).
        Pixel views are added by :func:`rltransfer.envs.make`, not here.
        """
        values = self.resolve({**dict(knobs or {}), **knob_values})
        changed = {n: v for n, v in values.items() if v != self.knobs[n].default}
        groups = split_knobs(self.knobs, values)
        kwargs: dict[str, Any] = dict(self.kwargs)
        for name, value in groups["ctor"].items():
            kwargs[self.knobs[name].arg or name] = value
        xml_changed = {n: v for n, v in groups["xml"].items() if n in changed}
        if xml_changed:
            assert self.xml is not None  # xml knobs need it (model_post_init)
            kwargs["xml_file"] = str(edited_xml(self.xml, self.knobs, xml_changed))
        kwargs.update(env_kwargs or {})
        if render_mode is not None:
            kwargs["render_mode"] = render_mode
        env = self._construct(kwargs)
        apply_attr_knobs(env, self.knobs, {n: v for n, v in groups["attr"].items() if n in changed})
        model_changed = {n: v for n, v in groups["mujoco"].items() if n in changed}
        if model_changed:
            apply_model_knobs(env, self.knobs, model_changed)
        return apply_callable_knobs(env, self.knobs, groups["callable"])

    def _construct(self, kwargs: dict[str, Any]) -> gym.Env:
        if self.gym_id is not None:
            try:
                return gym.make(self.gym_id, **kwargs)
            except gym.error.Error as err:
                raise EnvError(f"family {self.name!r}: gym_id {self.gym_id!r}: {err} (a gym_id "
                               "must be a Gymnasium id registered when the env is built)") from err
        assert self.entry_point is not None  # exactly one of gym_id and entry_point
        target = load_entry_point(self.entry_point)
        env = target(**kwargs)
        if not isinstance(env, gym.Env):
            raise EnvError(
                f"family {self.name!r}: entry point {self.base!r} returned "
                f"{type(env).__name__}, which is not a gymnasium.Env"
            )
        env = CheckedEnv(env, self.name, self.base)  # the user's code: check every call
        if self.max_episode_steps is not None:
            env = gym.wrappers.TimeLimit(env, self.max_episode_steps)
        return env


# ---------------------------------------------------------------------- entry points


def _load_file_module(path: Path) -> Any:
    key = "rltransfer_user_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, path)
    if spec is None or spec.loader is None:
        raise EnvError(f"entry point file {str(path)!r} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[key]
        raise EnvError(f"entry point file {str(path)!r} failed to import: {err!r}") from err
    return module


def absolute_entry_point(entry_point: str, base_dir: Path) -> str:
    """Make a ``path/to/file.py:Class`` entry point absolute (relative to ``base_dir``)."""
    path, sep, attr = entry_point.rpartition(":")
    if sep and path.endswith(".py") and not Path(path).is_absolute():
        return f"{(base_dir / path).resolve()}:{attr}"
    return entry_point


def load_entry_point(entry_point: str | Callable[..., Any]) -> Callable[..., Any]:
    """Resolve an entry point to a class or factory that builds a Gymnasium env.

    Accepts ``package.module:Class``, ``path/to/file.py:Class`` (relative to the current
    directory) or a callable.

    Raises:
        EnvError: saying whether the module could not be imported, the name is missing, or
            the object is not a Gymnasium env class or factory.
    """
    if callable(entry_point):
        obj: Any = entry_point
    else:
        path, sep, attr = str(entry_point).rpartition(":")
        if not sep or not path or not attr:
            raise EnvError(
                f"entry point {entry_point!r} is not 'package.module:Class' "
                "or 'path/to/file.py:Class'"
            )
        if path.endswith(".py"):
            file = Path(path).resolve()
            if not file.is_file():
                raise EnvError(f"entry point {entry_point!r}: file {str(file)!r} does not exist")
            module = _load_file_module(file)
            obj = module
            for part in attr.split("."):
                if not hasattr(obj, part):
                    raise EnvError(f"entry point {entry_point!r}: {file.name} has no {attr!r}")
                obj = getattr(obj, part)
        else:
            obj = resolve_callable(f"{path}:{attr}", what=f"entry point {entry_point!r}")
    if isinstance(obj, type) and not issubclass(obj, gym.Env):
        raise EnvError(
            f"entry point {entry_point!r} is the class {obj.__name__}, which is not a "
            "gymnasium.Env subclass"
        )
    if not callable(obj):
        raise EnvError(f"entry point {entry_point!r} is not a class or function")
    return obj


# ---------------------------------------------------------------------- registry

_FAMILIES: dict[str, EnvFamily] = {}


def _register(family: EnvFamily) -> EnvFamily:
    _FAMILIES[family.name] = family
    gym_id = family.gym_name
    if gym_id in gym.registry:
        del gym.registry[gym_id]
    gym.register(
        id=gym_id,
        entry_point="rltransfer.envs:make_member",
        kwargs={"family": family.name},
        disable_env_checker=True,
    )
    return family


def register_family(
    name: str,
    *,
    entry_point: str | Callable[..., Any] | None = None,
    gym_id: str | None = None,
    knobs: Mapping[str, Knob | Mapping[str, Any]] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    description: str = "",
    **options: Any,
) -> EnvFamily:
    """Declare an env family from Python; it then works with every verb.

    ``entry_point`` is ``package.module:Class``, ``path/to/file.py:Class`` (relative to the
    current directory) or a callable; ``gym_id`` names a registered Gymnasium env instead.
    ``knobs`` maps names to :class:`Knob` or dicts of its fields. ``options`` are further
    :class:`EnvFamily` fields (``xml``, ``max_episode_steps``, ``drawer``, ``title``).

    Example:
        >>> import rltransfer.envs as rte
        >>> fam = rte.register_family(
        ...     "my-cartpole", gym_id="CartPole-v1",
        ...     knobs={"length": {"kind": "attr", "default": 0.5, "range": [0.1, 2.0],
        ...                       "recompute": "rltransfer.envs.builtin:cartpole_derived"}})
        >>> rte.make("my-cartpole", {"length": 1.0}).unwrapped.length
        1.0
    """
    if isinstance(entry_point, str):
        entry_point = absolute_entry_point(entry_point, Path.cwd())
    try:
        family = EnvFamily(
            name=name,
            gym_id=gym_id,
            entry_point=entry_point,
            kwargs=dict(kwargs or {}),
            knobs={k: v if isinstance(v, Knob) else Knob(**v) for k, v in (knobs or {}).items()},
            description=description,
            **options,
        )
    except ValidationError as err:
        raise EnvError(f"family {name!r}: {_validation_message(err)}") from err
    if isinstance(family.entry_point, str) or callable(family.entry_point):
        load_entry_point(family.entry_point)  # fail now, with a clear message
    return _register(family)


def _validation_message(err: ValidationError) -> str:
    return "; ".join(error_lines(err, EnvFamily, Knob))


def find_family(name: str) -> EnvFamily | None:
    """The registered family called ``name`` (case-insensitive, or its Gymnasium id), or
    ``None``. Looks only at what is registered; :func:`rltransfer.envs.get_family` loads the
    catalogue first."""
    if name in _FAMILIES:
        return _FAMILIES[name]
    low = name.lower()
    for fam in _FAMILIES.values():
        if low in (fam.name, fam.gym_name.lower()):
            return fam
    return None

