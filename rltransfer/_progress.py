"""How often a progress bar on stderr redraws: live on a terminal, sparse in a log file."""

from __future__ import annotations

import sys

__all__ = ["bar_interval"]


def bar_interval() -> float:
    """Seconds between two redraws of a tqdm bar on stderr (its ``mininterval``).

    0.5 on a terminal. 30 when stderr is a file or a pipe (``nohup ... > log 2>&1``), where
    every redraw is appended rather than drawn over: tqdm's own 0.1 s would add ten frames a
    second to the log.
    """
    return 0.5 if sys.stderr.isatty() else 30.0
