"""The one error type of :mod:`rltransfer.envs`, and helpers that word it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class EnvError(ValueError):
    """Bad env input: an unknown family, knob or pair, a value out of range, a broken entry point.

    Messages name the field, the value and what would be accepted.

    Example:
        >>> import rltransfer.envs as rte
        >>> try:
        ...     rte.make("cartpol")
        ... except rte.EnvError as err:
        ...     "cartpole" in str(err)
        True
    """


def unknown_name(what: str, value: Any, options: Iterable[str], *, where: str = "") -> EnvError:
    """An :class:`EnvError` for an unknown ``what`` named ``value``, listing the closest options."""
    options = sorted(set(options))
    close = difflib.get_close_matches(str(value), options, n=3, cutoff=0.5)
    # case-insensitive prefix matches help too ("Hopper" -> "hopper")
    low = str(value).lower()
    close += [o for o in options if o.lower() == low and o not in close]
    msg = f"unknown {what} {value!r}{where}"
    if close:
        msg += f"; did you mean {', '.join(repr(c) for c in close)}?"
    shown = options if len(options) <= 40 else options[:40] + ["..."]
    msg += f" Known {what}s: {', '.join(shown) if shown else '(none)'}"
    return EnvError(msg)


class EnvFault(RuntimeError):
    """A custom env misbehaved while it ran: ``reset``/``step`` raised, or returned an
    observation outside its declared space, a NaN, or something that is not the Gymnasium API.

    Not an input error (the family was declared correctly; its code failed when called), so
    the command line exits with status 1, like any run that started and failed. The message
    names the family, its entry point, the call (``reset()`` or step k of episode n), the bad
    value and what is accepted. See :mod:`rltransfer.envs.checks`.
    """
