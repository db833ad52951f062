"""Env families (placeholder until the families module lands): plain Gymnasium ids only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym


def make(env: str, knobs: Mapping[str, Any] | None = None, **kwargs: Any) -> gym.Env:
    """Build ``env`` (a Gymnasium id for now) with ``knobs`` as constructor keywords."""
    return gym.make(env, **dict(knobs or {}), **kwargs)


def describe(env: str, knobs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """JSON-able description of an env member, for checkpoint cards and run configs."""
    return {"name": env, "family": None, "knobs": dict(knobs or {})}
