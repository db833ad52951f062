"""How often a progress bar on stderr redraws: live on a terminal, sparse in a log file."""

from __future__ import annotations

import sys
from typing import TypedDict

__all__ = ["BarTiming", "bar_interval", "bar_timing"]


def bar_interval() -> float:
    """Seconds between two redraws of a progress bar on stderr.

    0.5 on a terminal. 30 when stderr is a file or a pipe (``nohup ... > log 2>&1``), where
    every redraw is appended rather than drawn over: tqdm's own 0.1 s would add ten frames a
    second to the log.
    """
    return 0.5 if sys.stderr.isatty() else 30.0


class BarTiming(TypedDict):
    """tqdm's redraw intervals, in seconds."""

    mininterval: float
    maxinterval: float


def bar_timing() -> BarTiming:
    """tqdm's ``mininterval`` and ``maxinterval`` for a bar on stderr, as keyword arguments.

    ``mininterval`` is :func:`bar_interval`. ``maxinterval`` is never under it: tqdm's
    monitor thread forces a redraw of a bar that has not redrawn for ``maxinterval`` seconds
    (10 by default), which in a log file made a frame every 10-20 s instead of every 30.
    """
    interval = bar_interval()
    return BarTiming(mininterval=interval, maxinterval=max(interval, 10.0))
