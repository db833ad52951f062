"""Checks on custom envs: every ``reset`` and ``step`` of an ``entry_point`` family is verified.

A custom env is the user's code, and its mistakes otherwise surface far from their cause: a
NaN reward turns into a NaN loss thousands of steps later, an observation of the wrong shape
into a matrix-size error inside torch. Every member of a family declared with an
``entry_point`` (a YAML ``entry_point:`` or :func:`rltransfer.envs.register_family`) is
wrapped in :class:`CheckedEnv`, which raises :class:`~rltransfer.envs.errors.EnvFault` at the
first call that

- raises (the original exception is chained: ``-v`` on the command line shows it),
- returns something other than ``(obs, info)`` from ``reset`` or ``(obs, reward, terminated,
  truncated, info)`` from ``step``,
- returns an observation of another shape than ``observation_space``, outside its bounds
  (compared after casting to the space's dtype, as the agent will see it), or not finite,
- returns a reward that is not a finite number, or flags that are not booleans.

The message names the family, its entry point, the call (``reset()``, or step k of episode
n), the bad value and what is accepted. :func:`probe` builds a member once per process and
runs one ``reset`` and one ``step`` through these checks, so :func:`rltransfer.envs.env_fn`
(hence every agent rltransfer builds) stops before training when a custom env is broken.
Built-in families (registered Gymnasium ids) are not wrapped. Depends on gymnasium and numpy.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rltransfer.envs.errors import EnvFault

__all__ = ["CheckedEnv", "observation_problem", "probe"]


class CheckedEnv(gym.Wrapper):
    """Verify every ``reset`` and ``step`` of a custom env (see the module docstring).

    Example:
        >>> env = CheckedEnv(gym.make("CartPole-v1"), "cartpole", "CartPole-v1")
        >>> env.reset(seed=0)[0].shape
        (4,)
    """

    def __init__(self, env: gym.Env, family: str, entry_point: str) -> None:
        super().__init__(env)
        self._name = f"env {family!r} ({entry_point})"
        self._episode = 0
        self._step = 0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self._episode += 1
        self._step = 0
        call = "reset()"
        out = self._call(call, self.env.reset, **kwargs)
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
            raise self._fault(call, f"returned {_short(out)}; reset must return (observation, "
                                    "info) with info a dict (the Gymnasium >= 0.26 API)")
        self._check_obs(call, out[0])
        return out

    def step(self, action: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        self._step += 1
        call = f"step {self._step} of episode {self._episode}"
        out = self._call(call, self.env.step, action)
        if not (isinstance(out, tuple) and len(out) == 5):
            raise self._fault(call, f"returned {_short(out)}; step must return (observation, "
                                    "reward, terminated, truncated, info), the Gymnasium "
                                    ">= 0.26 API")
        obs, reward, terminated, truncated, info = out
        self._check_obs(call, obs)
        try:
            value = float(reward)
        except (TypeError, ValueError):
            raise self._fault(call, f"returned reward {_short(reward)}; a reward must be a "
                                    "finite number") from None
        if not np.isfinite(value):
            raise self._fault(call, f"returned reward {value!r}; a reward must be a finite "
                                    "number")
        for flag, v in (("terminated", terminated), ("truncated", truncated)):
            if not isinstance(v, bool | np.bool_):
                raise self._fault(call, f"returned {flag}={_short(v)}; it must be a bool")
        if not isinstance(info, dict):
            raise self._fault(call, f"returned info {_short(info)}; it must be a dict")
        return out

    def _call(self, call: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EnvFault:
            raise
        except Exception as err:
            raise self._fault(call, f"raised {type(err).__name__}: {err}") from err

    def _check_obs(self, call: str, obs: Any) -> None:
        problem = observation_problem(self.env.observation_space, obs)
        if problem is not None:
            raise self._fault(call, f"returned {problem}")

    def _fault(self, call: str, problem: str) -> EnvFault:
        return EnvFault(f"{self._name}: {call} {problem}")


def observation_problem(space: spaces.Space, obs: Any) -> str | None:
    """What is wrong with ``obs`` as an observation of ``space``, in words; ``None`` if fine.

    Example:
        >>> box = spaces.Box(-1.0, 1.0, (2,), np.float32)
        >>> observation_problem(box, np.array([0.5, 3.0]))
        'an observation outside observation_space: element [1] = 3.0 is not in [-1.0, 1.0]'
        >>> observation_problem(box, np.zeros(2)) is None
        True
    """
    if not isinstance(space, spaces.Box):
        try:
            ok = space.contains(obs)
        except Exception:  # a space's own check may fail on a value of another type
            ok = False
        return None if ok else (f"observation {_short(obs)}, which is not in "
                                f"observation_space {space}")
    try:
        arr = np.asarray(obs)
    except Exception:
        return f"observation {_short(obs)}, which is not an array"
    if arr.shape != space.shape:
        return (f"an observation of shape {arr.shape}; observation_space {space} has shape "
                f"{space.shape}")
    if arr.dtype.kind not in "biuf":
        return (f"an observation of dtype {arr.dtype}; observation_space {space} holds "
                f"{space.dtype} numbers")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            idx = _first(bad)
            return (f"an observation with element {_index(idx)} = {arr[idx].item()!r}; "
                    "observations must be finite numbers")
    if np.issubdtype(space.dtype, np.floating):
        with np.errstate(over="ignore"):
            cast = arr.astype(space.dtype)
    else:
        cast = arr
    outside = (cast < space.low) | (cast > space.high)
    if outside.any():
        idx = _first(outside)
        low, high = np.broadcast_to(space.low, space.shape), np.broadcast_to(space.high,
                                                                            space.shape)
        return (f"an observation outside observation_space: element {_index(idx)} = "
                f"{arr[idx].item()!r} is not in [{low[idx].item()!r}, {high[idx].item()!r}]")
    return None


_PROBED: set[str] = set()


def probe(make: Callable[[], gym.Env], key: Any) -> None:
    """Build an env with ``make`` and run one ``reset`` and one ``step`` (once per ``key``
    and process): a broken custom env raises :class:`EnvFault` here, before any training.

    The action is drawn from a seeded copy of the action space, so no RNG the agent uses
    moves.
    """
    token = json.dumps(key, sort_keys=True, default=str)
    if token in _PROBED:
        return
    env = make()
    try:
        env.reset(seed=0)
        space = copy.deepcopy(env.action_space)
        space.seed(0)
        env.step(space.sample())
    finally:
        with contextlib.suppress(Exception):  # closing a broken env must not hide why it broke
            env.close()
    _PROBED.add(token)


def _first(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def _index(idx: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(i) for i in idx) + "]"


def _short(value: Any, limit: int = 80) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
