"""Env families, knobs, pixel views and the catalogue of source→target pairs.

An env is named by a family (``"cartpole"``, ``"hopper"``; see ``rltransfer list``) plus knob
values, or by a plain Gymnasium id (``"CartPole-v1"``; knobs then go to the constructor).
Family members are also Gymnasium envs ``rltransfer/<Title>-v0`` (registered on import).

Example:
    >>> import rltransfer.envs as rte
    >>> env = rte.make("cartpole", {"length": 1.0, "masspole": 0.5})
    >>> obs, info = env.reset(seed=0)
    >>> rte.describe("cartpole", {"length": 1.0})["knobs"]["length"]
    1.0
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym

from rltransfer.envs.catalogue import (
    Member,
    Pair,
    builtin_dir,
    ensure_loaded,
    families,
    get_family,
    get_pair,
    load_file,
    pairs,
    register_pair,
    reload,
)
from rltransfer.envs.errors import EnvError, EnvFault
from rltransfer.envs.family import (
    EnvFamily,
    _register,
    find_family,
    make_member,
    register_family,
)
from rltransfer.envs.knobs import Knob, resolve_callable
from rltransfer.envs.listing import format_catalogue, parse_knob_args
from rltransfer.envs.pixels import PixelSpec, pixel_view

__all__ = [
    "EnvError",
    "EnvFault",
    "EnvFactory",
    "EnvFamily",
    "Knob",
    "Member",
    "Pair",
    "PixelSpec",
    "builtin_dir",
    "describe",
    "env_fn",
    "families",
    "format_catalogue",
    "get_family",
    "get_pair",
    "load_file",
    "make",
    "make_member",
    "pairs",
    "parse_knob_args",
    "register_family",
    "register_pair",
    "reload",
]


def _lookup(env: str) -> EnvFamily | None:
    """The family named ``env``; ``None`` for a plain Gymnasium id; else :class:`EnvError`."""
    if not isinstance(env, str):
        raise EnvError(f"env: value {env!r} is not a family name or Gymnasium id")
    ensure_loaded()
    fam = find_family(env)
    if fam is not None:
        return fam
    if env in gym.registry:
        return None
    names = [f.name for f in families()]
    close = difflib.get_close_matches(env, names + [i for i in gym.registry], n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise EnvError(
        f"unknown env family or Gymnasium id {env!r}{hint} Known families: "
        f"{', '.join(names)} (or any registered Gymnasium id)"
    )


def _is_mujoco(fam: EnvFamily) -> bool:
    if fam.xml is not None:
        return True
    if fam.gym_id is not None and fam.gym_id in gym.registry:
        return "mujoco" in str(gym.spec(fam.gym_id).entry_point)
    return False


def make(
    env: str,
    knobs: Mapping[str, Any] | None = None,
    *,
    pixels: PixelSpec | Mapping[str, Any] | bool | None = None,
    render_mode: str | None = None,
    **kwargs: Any,
) -> gym.Env:
    """Build a family member (or a plain Gymnasium env) with knob values, maybe as pixels.

    Args:
        env: family name (``"cartpole"``), its id ``"rltransfer/CartPole-v0"``, or a plain
            Gymnasium id (then ``knobs`` are constructor keywords).
        knobs: knob values; the rest keep their defaults.
        pixels: a :class:`PixelSpec` or mapping (``{"size": 64, "grayscale": True,
            "frame_stack": 4}``) for image observations; ``None`` keeps the state.
        render_mode: passed to the env.
        **kwargs: more constructor keywords, as they are.

    Raises:
        EnvError: unknown family/id (closest names listed), unknown knob (the family's knobs
            listed), value out of range (the range given), bad pixel spec or entry point.

    Example:
        >>> import rltransfer.envs as rte
        >>> env = rte.make("pendulum", {"m": 2.0}, pixels={"size": 64})
        >>> env.reset(seed=0)[0].shape, env.observation_space.dtype
        ((64, 64, 3), dtype('uint8'))
    """
    spec = PixelSpec.parse(pixels)
    fam = _lookup(env)
    if fam is None:
        if spec is not None:
            render_mode = "rgb_array"
        try:
            if render_mode is not None:
                kwargs["render_mode"] = render_mode
            e = gym.make(env, **dict(knobs or {}), **kwargs)
        except TypeError as err:
            raise EnvError(f"env {env!r}: bad constructor keyword: {err}") from err
        return pixel_view(e, spec) if spec is not None else e
    drawer = None
    if fam.drawer:
        drawer = resolve_callable(fam.drawer, what=f"family {fam.name!r} drawer")
    if spec is not None and (spec.renderer == "render" or drawer is None):
        if spec.renderer == "numpy":
            raise EnvError(
                f"pixels.renderer: family {fam.name!r} has no numpy drawer; use 'render'"
            )
        render_mode = "rgb_array"
        if _is_mujoco(fam):
            kwargs.setdefault("width", spec.width)
            kwargs.setdefault("height", spec.height)
    e = fam.make(knobs, render_mode=render_mode, env_kwargs=kwargs)
    return pixel_view(e, spec, drawer) if spec is not None else e


def describe(
    env: str,
    knobs: Mapping[str, Any] | None = None,
    *,
    pixels: PixelSpec | Mapping[str, Any] | bool | None = None,
) -> dict[str, Any]:
    """The canonical, JSON-able description of a member, for checkpoint cards and run ids.

    ``{"name", "family", "gym_id", "knobs" (all of them, defaults included, sorted),
    "pixels"}``; the same input always gives the same dict.

    Example:
        >>> import rltransfer.envs as rte
        >>> d = rte.describe("pendulum", {"m": 2.0})
        >>> d["family"], d["gym_id"], d["knobs"]
        ('pendulum', 'Pendulum-v1', {'g': 10.0, 'l': 1.0, 'm': 2.0})
    """
    spec = PixelSpec.parse(pixels)
    fam = _lookup(env)
    px = spec.to_dict() if spec is not None else None
    if fam is None:
        return {
            "name": env,
            "family": None,
            "gym_id": env,
            "knobs": dict(sorted(dict(knobs or {}).items())),
            "pixels": px,
        }
    return {
        "name": fam.name,
        "family": fam.name,
        "gym_id": fam.base,
        "knobs": fam.resolve(knobs),
        "pixels": px,
    }


@dataclasses.dataclass(frozen=True)
class EnvFactory:
    """A picklable zero-argument env factory (for SB3 ``make_vec_env`` and worker processes).

    It carries its family's definition, so a family registered from Python in the parent
    also builds in a ``spawn`` worker.
    """

    env: str
    knobs: dict[str, Any]
    pixels: dict[str, Any] | None = None
    family: EnvFamily | None = None
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __call__(self) -> gym.Env:
        if self.family is not None:
            ensure_loaded()
            if find_family(self.family.name) is None:
                _register(self.family)
        return make(self.env, self.knobs, pixels=self.pixels, **self.kwargs)


def env_fn(
    env: str,
    knobs: Mapping[str, Any] | None = None,
    *,
    pixels: PixelSpec | Mapping[str, Any] | bool | None = None,
    **kwargs: Any,
) -> Callable[[], gym.Env]:
    """A picklable zero-argument factory of ``make(env, knobs, pixels=pixels)``.

    Knobs are validated now, so mistakes surface in the parent process. A custom env (a
    family with an ``entry_point``) is also built and run for one ``reset`` and one ``step``
    now (once per process), through the checks of :mod:`rltransfer.envs.checks`: a broken
    env raises :class:`EnvFault` here rather than in the middle of training.

    Example:
        >>> import pickle
        >>> import rltransfer.envs as rte
        >>> fn = pickle.loads(pickle.dumps(rte.env_fn("cartpole", {"length": 1.0})))
        >>> fn().unwrapped.length
        1.0
    """
    describe(env, knobs, pixels=pixels)
    spec = PixelSpec.parse(pixels)
    fam = _lookup(env)
    if fam is not None and fam.entry_point is not None:  # a custom env: run it once now
        from rltransfer.envs.checks import probe

        probe(lambda: make(env, knobs, pixels=pixels, **kwargs),
              [fam.name, fam.base, fam.source, dict(knobs or {}),
               spec.to_dict() if spec is not None else None, kwargs])
    return EnvFactory(
        env=env,
        knobs=dict(knobs or {}),
        pixels=spec.to_dict() if spec is not None else None,
        family=fam,
        kwargs=dict(kwargs),
    )


def _register_ids_on_import() -> None:
    # a broken user catalogue file: the error is raised again on first use
    with contextlib.suppress(EnvError):
        ensure_loaded()


_register_ids_on_import()
