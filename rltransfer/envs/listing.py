"""Text for ``rltransfer list`` and parsing of the CLI's ``--knob name=value``."""

from __future__ import annotations

from typing import Any

import yaml

from rltransfer.envs.catalogue import families, pairs
from rltransfer.envs.errors import EnvError
from rltransfer.envs.knobs import Knob


def parse_knob_args(items: list[str] | None) -> dict[str, Any]:
    """Parse repeatable ``--knob name=value`` arguments; values are YAML scalars.

    Values go through ``yaml.safe_load`` (``1.5`` → float, ``3`` → int, ``true`` → bool,
    anything else a string); nothing is evaluated.

    Example:
        >>> parse_knob_args(["length=1.5", "masspole=0.5", "disabled_leg=2"])
        {'length': 1.5, 'masspole': 0.5, 'disabled_leg': 2}
    """
    out: dict[str, Any] = {}
    for item in items or []:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise EnvError(f"--knob: {item!r} is not of the form name=value (e.g. length=1.5)")
        if name in out:
            raise EnvError(f"--knob: {name!r} is given twice")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            raise EnvError(f"--knob {name}: value {raw!r} is not a YAML scalar: {err}") from err
        if isinstance(value, list | dict):
            raise EnvError(f"--knob {name}: value {raw!r} must be a single number, bool or word")
        out[name] = value
    return out


def _knob_line(name: str, knob: Knob) -> str:
    if knob.choices is not None:
        accepted = "{" + ", ".join(str(c) for c in knob.choices) + "}"
    elif knob.range is not None:
        accepted = f"[{knob.range[0]:g}, {knob.range[1]:g}]"
    else:
        accepted = type(knob.default).__name__
    desc = f"  {knob.description}" if knob.description else ""
    return f"    {name:<18} {knob.kind:<8} default {knob.default!s:<7} {accepted:<16}{desc}"


def format_catalogue() -> str:
    """The text ``rltransfer list`` prints: families with their knobs, then pairs.

    Example:
        >>> text = format_catalogue()
        >>> "cartpole/long-heavy-pole" in text and "masspole" in text
        True
    """
    lines = ["Env families (knob  kind  default  range; use --env FAMILY --knob name=value):", ""]
    for fam in families():
        head = f"  {fam.name}  ({fam.base}; gymnasium id {fam.gym_name})"
        lines.append(head)
        if fam.description:
            lines.append(f"    {fam.description}")
        for algo, pub in sorted(fam.published.items()):
            lines.append(f"    published {algo.upper()} score on {pub.env} at {pub.steps:,} steps: "
                         f"{pub.score:,.0f} ({pub.reference})")
        if not fam.knobs:
            lines.append("    (no knobs)")
        for name in sorted(fam.knobs):
            lines.append(_knob_line(name, fam.knobs[name]))
        lines.append("")
    lines += ["Pairs (source -> target; solved at return >= threshold; default budget):", ""]
    for pair in pairs():
        lines.append(f"  {pair.name}")
        for side in ("source", "target"):
            m = getattr(pair, side)
            knobs = ", ".join(f"{k}={v}" for k, v in sorted(m.knobs.items())) or "defaults"
            px = f" [pixels {m.pixels}]" if m.pixels is not None else ""
            lines.append(f"    {side:<7} {m.env} ({knobs}){px}")
        lines.append(f"    solved at {pair.threshold:g}, budget {pair.budget:,} steps")
        if pair.description:
            lines.append(f"    {pair.description}")
    return "\n".join(lines).rstrip() + "\n"
