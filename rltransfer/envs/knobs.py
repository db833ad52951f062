"""Knobs: named, validated parameters of an env family, and how each kind is applied.

A knob is data (a pydantic model, so it validates on load and pickles for worker processes).
Five kinds:

- ``ctor``: a constructor keyword (``arg``, default: the knob's name).
- ``attr``: an attribute of the unwrapped env (``attr``); ``recompute`` names a
  ``"module:function"`` called as ``fn(unwrapped_env)`` afterwards to refresh derived values
  (CartPole's ``polemass_length``).
- ``mujoco``: a scale of a MuJoCo model field (``field``) for the bodies, geoms, joints or
  actuators in ``names`` (all of them when omitted).
- ``xml``: a scale of limb geometry in the MuJoCo XML (``bodies``; ``mode`` length or radius).
- ``callable``: ``function`` (a callable or ``"module:function"``) called as
  ``fn(env, value)``; it edits the env in place or returns a new (wrapped) env.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

import gymnasium as gym
from pydantic import BaseModel, ConfigDict, model_validator

from rltransfer.envs.errors import EnvError

KnobKind = Literal["ctor", "attr", "mujoco", "xml", "callable"]
MujocoField = Literal["body_mass", "geom_friction", "dof_damping", "actuator_gear", "gravity"]
Scalar = bool | int | float | str


class Lift(BaseModel):
    """Raise a root body when limbs get longer: ``pos.z += (scale - 1) * by``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    body: str
    """Name of the body to raise (usually the torso)."""
    by: float
    """Height change per unit of scale change (about the leg's length at scale 1)."""


class Knob(BaseModel):
    """One named parameter of an env family: its kind, default and valid values.

    Example:
        >>> k = Knob(kind="attr", default=0.5, range=(0.1, 2.0), description="half pole length")
        >>> k.check("length", 1.0)
        1.0
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    kind: KnobKind
    """How the value reaches the env: ctor, attr, mujoco, xml or callable."""
    default: Scalar
    """Value of the unmodified env (1.0 for scales)."""
    range: tuple[float, float] | None = None
    """Inclusive [low, high] for numeric knobs."""
    choices: tuple[Scalar, ...] | None = None
    """Allowed values, for categorical knobs (checked instead of ``range``)."""
    description: str = ""
    """One line shown by ``rltransfer list``."""
    arg: str | None = None
    """ctor: the constructor keyword (default: the knob's name)."""
    attr: str | None = None
    """attr: the attribute of the unwrapped env (default: the knob's name)."""
    recompute: str | Callable[..., Any] | None = None
    """attr: ``"module:function"`` called as ``fn(unwrapped)`` after attributes are set."""
    field: MujocoField | None = None
    """mujoco: which model field to scale."""
    names: tuple[str, ...] | None = None
    """mujoco: body/geom/joint/actuator names (joint names also select their actuators)."""
    bodies: tuple[str, ...] | None = None
    """xml: the bodies whose geometry is scaled."""
    mode: Literal["length", "radius"] = "length"
    """xml: scale limb lengths (positions, fromto, half-lengths) or radii."""
    lift: Lift | None = None
    """xml (length): raise this body so longer legs do not start inside the floor."""
    function: str | Callable[..., Any] | None = None
    """callable: ``fn(env, value)``; a callable or ``"module:function"``."""

    @model_validator(mode="after")
    def _consistent(self) -> Knob:
        needs = {"mujoco": "field", "xml": "bodies", "callable": "function"}
        if self.kind in needs and getattr(self, needs[self.kind]) is None:
            raise ValueError(f"a {self.kind!r} knob needs {needs[self.kind]!r}")
        if self.range is not None and self.range[0] > self.range[1]:
            raise ValueError(f"range low {self.range[0]} is above high {self.range[1]}")
        if self.choices is None and self.range is not None and isinstance(self.default, str):
            raise ValueError("a string knob takes 'choices', not 'range'")
        self.check("default", self.default)
        return self

    @property
    def accepted(self) -> str:
        """What values are accepted, in words."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.range is not None:
            kind = "an integer" if self._integral else "a number"
            return f"{kind} in [{_num(self.range[0])}, {_num(self.range[1])}]"
        return f"a {type(self.default).__name__}"

    @property
    def _integral(self) -> bool:
        return isinstance(self.default, int) and not isinstance(self.default, bool)

    def check(self, name: str, value: Any) -> Scalar:
        """Validate ``value`` for the knob called ``name``; return it normalized.

        Raises:
            EnvError: the value is of the wrong type, out of range or not among the choices.
        """
        if self.choices is not None:
            for c in self.choices:
                if c == value and isinstance(c, bool) == isinstance(value, bool):
                    return c
            raise EnvError(f"knob {name!r}: value {value!r} is not {self.accepted}")
        if isinstance(self.default, bool):
            if isinstance(value, bool):
                return value
            raise EnvError(f"knob {name!r}: value {value!r} is not a bool (true or false)")
        if isinstance(self.default, str):
            if isinstance(value, str):
                return value
            raise EnvError(f"knob {name!r}: value {value!r} is not a string")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise EnvError(f"knob {name!r}: value {value!r} is not {self.accepted}")
        if not math.isfinite(float(value)):
            raise EnvError(f"knob {name!r}: value {value!r} is not {self.accepted}")
        if self._integral:
            if float(value) != int(value):
                raise EnvError(f"knob {name!r}: value {value!r} is not {self.accepted}")
            value = int(value)
        else:
            value = float(value)
        if self.range is not None and not self.range[0] <= value <= self.range[1]:
            raise EnvError(
                f"knob {name!r}: value {_num(value)} is out of range "
                f"[{_num(self.range[0])}, {_num(self.range[1])}]"
            )
        return value


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def resolve_callable(ref: str | Callable[..., Any], *, what: str) -> Callable[..., Any]:
    """``"package.module:name"`` (or a callable) → the callable; :class:`EnvError` if missing."""
    if callable(ref):
        return ref
    module, sep, attr = str(ref).partition(":")
    if not sep or not module or not attr:
        raise EnvError(f"{what}: {ref!r} is not of the form 'package.module:function'")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as err:
        raise EnvError(f"{what}: cannot import module {module!r} of {ref!r}: {err}") from err
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise EnvError(f"{what}: module {module!r} has no attribute {attr!r} (from {ref!r})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise EnvError(f"{what}: {ref!r} is not callable")
    return obj


def split_knobs(knobs: Mapping[str, Knob], values: Mapping[str, Any]) -> dict[str, dict]:
    """Group ``{name: value}`` by knob kind: ``{"ctor": {...}, "attr": {...}, ...}``."""
    out: dict[str, dict] = {k: {} for k in ("ctor", "attr", "mujoco", "xml", "callable")}
    for name, value in values.items():
        out[knobs[name].kind][name] = value
    return out


def apply_attr_knobs(env: gym.Env, knobs: Mapping[str, Knob], values: Mapping[str, Any]) -> None:
    """Set attribute knobs on ``env.unwrapped`` and run each distinct ``recompute`` hook once."""
    base = env.unwrapped
    hooks: list[Callable[..., Any]] = []
    for name, value in values.items():
        knob = knobs[name]
        attr = knob.attr or name
        if not hasattr(base, attr):
            raise EnvError(f"knob {name!r}: {type(base).__name__} has no attribute {attr!r} to set")
        setattr(base, attr, value)
        if knob.recompute is not None:
            hook = resolve_callable(knob.recompute, what=f"knob {name!r} recompute")
            if hook not in hooks:
                hooks.append(hook)
    for hook in hooks:
        hook(base)


def apply_callable_knobs(
    env: gym.Env, knobs: Mapping[str, Knob], values: Mapping[str, Any]
) -> gym.Env:
    """Call each callable knob as ``fn(env, value)``; a returned env replaces ``env``."""
    for name, value in values.items():
        function = knobs[name].function
        assert function is not None  # a callable knob needs one (Knob's validator)
        fn = resolve_callable(function, what=f"knob {name!r} function")
        out = fn(env, value)
        if out is not None:
            if not isinstance(out, gym.Env):
                raise EnvError(
                    f"knob {name!r}: function returned {type(out).__name__}, "
                    "expected None or a gymnasium.Env"
                )
            env = out
    return env
