"""Progress of an experiment: runs done/total with an ETA, and each active run's steps.

The display polls the run folders (the last step of each active run's ``curve.csv``), so it
works the same for every backend, including Ray workers on other machines that write to a
shared filesystem. It advances in environment steps (the ETA is steps-based, so a long
pretraining and short runs weigh what they cost) and names the runs in flight.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from rltransfer._progress import bar_timing
from rltransfer.experiment.plan import SOURCE_KINDS, RunSpec
from rltransfer.rundir import CURVE, last_step

__all__ = ["Progress", "run_label"]


def run_label(spec: RunSpec) -> str:
    """A run in words: ``source`` (or ``source:<name>``), else ``<method>, seed <n>``."""
    if spec.kind in SOURCE_KINDS:
        return spec.method.replace("pretrain", "source")
    return f"{spec.method}, seed {spec.seed}"


class Progress:
    """A tqdm bar in environment steps; its label says runs done/total and the active runs.

    Disabled (``--no-progress``), it draws no bar and writes one plain line per finished run
    instead (``runs 23/40 done, 19:14:03: <id> (<method>, seed <n>)``), so that a log shows
    how far an experiment got without a bar's redraws.
    """

    def __init__(self, runs: list[RunSpec], *, skipped: int = 0, enabled: bool = True) -> None:
        self.runs = {r.run_id: r for r in runs}
        self.total_runs = len(runs) + skipped
        self.done_runs = skipped
        self.failed = 0
        self.finished_steps = 0
        self.active: dict[str, RunSpec] = {}
        self.bar: Any = None
        # a terminal gets a live line; a log file a line per finished run and every 30 s
        timing = bar_timing()
        self.interval = timing["mininterval"]
        self._last = 0.0
        if enabled and runs:
            total = sum(r.steps for r in runs)
            self.bar = tqdm(total=total, unit="step", unit_scale=True, dynamic_ncols=True,
                            file=sys.stderr, smoothing=0.05,
                            **timing,
                            bar_format="{desc} {percentage:3.0f}%|{bar:20}| {n_fmt}/{total_fmt}"
                                       " steps [{elapsed}<{remaining}]{postfix}")
            self._refresh(force=True)

    def started(self, spec: RunSpec) -> None:
        self.active[spec.run_id] = spec

    def finished(self, spec: RunSpec, ok: bool) -> None:
        self.active.pop(spec.run_id, None)
        self.done_runs += 1
        self.failed += 0 if ok else 1
        self.finished_steps += spec.steps
        if self.bar is None:
            self.write(f"runs {self.done_runs}/{self.total_runs} done, "
                       f"{time.strftime('%H:%M:%S')}: {spec.run_id} ({run_label(spec)})"
                       + ("" if ok else " FAILED"))
        self._refresh(force=True)

    def poll(self) -> None:
        self._refresh()

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self._refresh(force=True)
            self.bar.close()

    def _refresh(self, force: bool = False) -> None:
        if self.bar is None:
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        parts = []
        active_steps = 0
        for spec in self.active.values():
            is_source = spec.kind in SOURCE_KINDS
            if not is_source and not Path(spec.run_dir).is_dir():
                continue  # submitted, waiting for a free worker
            step = min(last_step(Path(spec.run_dir) / CURVE), spec.steps)
            if is_source and spec.cache_dir:
                step = max(step, _pretrain_step(spec))
            active_steps += step
            name = (spec.method.replace("pretrain", "source") if is_source
                    else f"{spec.method} s{spec.seed}")
            parts.append(f"{name} {_short(step)}/{_short(spec.steps)}")
        self.bar.set_description_str(
            f"runs {self.done_runs}/{self.total_runs}"
            + (f" ({self.failed} failed)" if self.failed else ""), refresh=False)
        self.bar.set_postfix_str(("active: " + " | ".join(parts)) if parts else "",
                                 refresh=False)
        self.bar.n = min(self.finished_steps + active_steps, self.bar.total)
        self.bar.refresh()


def _pretrain_step(spec: RunSpec) -> int:
    # the source trains in a hidden temporary folder next to its cache folder
    cache = Path(spec.cache_dir or "")
    best = 0
    for tmp in cache.parent.glob(f".{spec.run_id}.*"):
        best = max(best, last_step(tmp / CURVE))
    return min(best, spec.steps)


def _short(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    if n >= 1000:
        return f"{n / 1000:.1f}k"
    return str(n)
