"""Making a member of an env: the env itself, its description and a picklable factory.

Each function takes the env already looked up, a :class:`EnvFamily` or a plain Gymnasium id
(see :func:`rltransfer.envs.catalogue.lookup`, which loads the catalogue first), so this
module never reaches back into the catalogue: :mod:`rltransfer.envs` and the catalogue's
:class:`~rltransfer.envs.Member` call it after their lookup.

Example:
    >>> from rltransfer.envs.catalogue import lookup
    >>> build(lookup("cartpole"), {"length": 1.0}).unwrapped.length
    1.0
    >>> description("CartPole-v1")["gym_id"]
    'CartPole-v1'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from rltransfer.envs.checks import probe
from rltransfer.envs.errors import EnvError
from rltransfer.envs.family import EnvFamily, _register, find_family
from rltransfer.envs.knobs import resolve_callable
from rltransfer.envs.pixels import PixelSpec, pixel_view

Target = EnvFamily | str
"""An env looked up: its family, or a plain Gymnasium id."""


def is_mujoco(fam: EnvFamily) -> bool:
    """Whether the family's members are MuJoCo envs (they render at the requested size)."""
    if fam.xml is not None:
        return True
    if fam.gym_id is not None and fam.gym_id in gym.registry:
        return "mujoco" in str(gym.spec(fam.gym_id).entry_point)
    return False


def build(
    target: Target,
    knobs: Mapping[str, Any] | None = None,
    *,
    pixels: PixelSpec | Mapping[str, Any] | bool | None = None,
    render_mode: str | None = None,
    **kwargs: Any,
) -> gym.Env:
    """The env of :func:`rltransfer.envs.make` for a family or Gymnasium id looked up."""
    spec = PixelSpec.parse(pixels)
    if not isinstance(target, EnvFamily):
        if spec is not None:
            render_mode = "rgb_array"
        try:
            if render_mode is not None:
                kwargs["render_mode"] = render_mode
            e = gym.make(target, **dict(knobs or {}), **kwargs)
        except TypeError as err:
            raise EnvError(f"env {target!r}: bad constructor keyword: {err}") from err
        return pixel_view(e, spec) if spec is not None else e
    fam = target
    drawer = None
    if fam.drawer:
        drawer = resolve_callable(fam.drawer, what=f"family {fam.name!r} drawer")
    if spec is not None and (spec.renderer == "render" or drawer is None):
        if spec.renderer == "numpy":
            raise EnvError(
                f"pixels.renderer: family {fam.name!r} has no numpy drawer; use 'render'"
            )
        render_mode = "rgb_array"
        if is_mujoco(fam):
            kwargs.setdefault("width", spec.width)
            kwargs.setdefault("height", spec.height)
    e = fam.make(knobs, render_mode=render_mode, env_kwargs=kwargs)
    return pixel_view(e, spec, drawer) if spec is not None else e


def description(
    target: Target,
    knobs: Mapping[str, Any] | None = None,
    *,
    pixels: PixelSpec | Mapping[str, Any] | bool | None = None,
) -> dict[str, Any]:
    """The description of :func:`rltransfer.envs.describe` for a family or Gymnasium id."""
    spec = PixelSpec.parse(pixels)
    px = spec.to_dict() if spec is not None else None
    if not isinstance(target, EnvFamily):
        return {
            "name": target,
            "family": None,
            "gym_id": target,
            "knobs": dict(sorted(dict(knobs or {}).items())),
            "pixels": px,
        }
    return {
        "name": target.name,
        "family": target.name,
        "gym_id": target.base,
        "knobs": target.resolve(knobs),
        "pixels": px,
    }


@dataclasses.dataclass(frozen=True)
class EnvFactory:
    """A picklable zero-argument env factory (for SB3 ``make_vec_env`` and worker processes).

    It carries its family's definition, so a family registered from Python in the parent
    also builds in a ``spawn`` worker (where it is registered again, for its Gymnasium id).
    """

    env: str
    knobs: dict[str, Any]
    pixels: dict[str, Any] | None = None
    family: EnvFamily | None = None
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __call__(self) -> gym.Env:
        if self.family is None:
            return build(self.env, self.knobs, pixels=self.pixels, **self.kwargs)
        if find_family(self.family.name) is None:
            _register(self.family)
        return build(self.family, self.knobs, pixels=self.pixels, **self.kwargs)


def factory(
    target: Target,
    knobs: Mapping[str, Any] | None = None,
    *,
    pixels: PixelSpec | Mapping[str, Any] | bool | None = None,
    **kwargs: Any,
) -> EnvFactory:
    """The factory of :func:`rltransfer.envs.env_fn` for a family or Gymnasium id.

    Knobs and the pixel view are validated now; a custom env (a family with an
    ``entry_point``) is built and run once now (once per process) by
    :func:`rltransfer.envs.checks.probe`.
    """
    description(target, knobs, pixels=pixels)
    spec = PixelSpec.parse(pixels)
    px = spec.to_dict() if spec is not None else None
    if not isinstance(target, EnvFamily):
        return EnvFactory(env=target, knobs=dict(knobs or {}), pixels=px, kwargs=dict(kwargs))
    if target.entry_point is not None:  # a custom env: run it once now
        probe(lambda: build(target, knobs, pixels=pixels, **kwargs),
              [target.name, target.base, target.source, dict(knobs or {}), px, kwargs])
    return EnvFactory(env=target.name, knobs=dict(knobs or {}), pixels=px, family=target,
                      kwargs=dict(kwargs))
