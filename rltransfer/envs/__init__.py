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
from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from rltransfer.envs.adapter import Adapter, AdapterError, ResolvedAdapter
from rltransfer.envs.catalogue import (
    Member,
    Pair,
    builtin_dir,
    ensure_loaded,
    families,
    get_family,
    get_pair,
    load_file,
    lookup,
    pairs,
    register_pair,
    reload,
)
from rltransfer.envs.errors import EnvError, EnvFault
from rltransfer.envs.family import EnvFamily, PublishedScore, register_family
from rltransfer.envs.knobs import Knob
from rltransfer.envs.listing import format_catalogue, parse_knob_args
from rltransfer.envs.making import EnvFactory, build, description, factory
from rltransfer.envs.pixels import PixelSpec

__all__ = [
    "Adapter",
    "AdapterError",
    "ResolvedAdapter",
    "EnvError",
    "EnvFault",
    "EnvFactory",
    "EnvFamily",
    "PublishedScore",
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
    return build(lookup(env), knobs, pixels=pixels, render_mode=render_mode, **kwargs)


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
    return description(lookup(env), knobs, pixels=pixels)


def env_fn(
    env: str,
    knobs: Mapping[str, Any] | None = None,
    *,
    pixels: PixelSpec | Mapping[str, Any] | bool | None = None,
    **kwargs: Any,
) -> EnvFactory:
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
    return factory(lookup(env), knobs, pixels=pixels, **kwargs)


def make_member(family: str, render_mode: str | None = None, **knobs: Any) -> gym.Env:
    """Gymnasium entry point of ``rltransfer/<Title>-v0``: knobs arrive as keywords.

    A ``pixels=`` keyword (a dict) asks for the pixel view.

    Example:
        >>> import gymnasium as gym
        >>> import rltransfer.envs  # registers the ids
        >>> gym.make("rltransfer/CartPole-v0", length=1.0).unwrapped.length
        1.0
    """
    pixels = knobs.pop("pixels", None)
    return make(family, knobs, pixels=pixels, render_mode=render_mode)


def _register_ids_on_import() -> None:
    # a broken user catalogue file: the error is raised again on first use
    with contextlib.suppress(EnvError):
        ensure_loaded()


_register_ids_on_import()
