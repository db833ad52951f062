"""The learning-curve plot, curves.png: IQM over seeds with its 95% bootstrap CI per method.

Drawn with matplotlib's object-oriented API on an explicit Agg canvas (no pyplot, no global
backend switch), so building a report never opens a window or changes the caller's backend.
"""

from __future__ import annotations

import io
import os

from rltransfer._io import write_bytes_atomic
from rltransfer.report.results import Results, iqm_bands
from rltransfer.report.tables import fmt_number


def plot_curves(
    res: Results,
    path: str | os.PathLike[str],
    *,
    seed: int,
    reps: int,
    threshold: float | None,
) -> None:
    """Write the IQM learning curves of every method with their CI bands to a PNG.

    The baseline (``experiment.json``'s ``baseline``, default scratch) is drawn in black, the
    other methods in matplotlib's color cycle; the threshold, when given, as a dashed line.
    The file is replaced atomically.

    Args:
        res: the loaded results.
        path: the PNG to write (``<out>/curves.png``).
        seed, reps: bootstrap seed and replicates of the bands (:func:`iqm_bands`).
        threshold: the experiment's threshold, or None.
    """
    # matplotlib is imported here, not with the module: every ``rltransfer`` command (--help
    # included) imports the report package, and matplotlib costs 0.3 s more (measured in a
    # fresh process after ``import rltransfer.report``).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    baseline = res.experiment.get("baseline", "scratch")
    colors = iter(f"C{i}" for i in range(100))
    for label, (center, low, high) in iqm_bands(res, seed=seed, reps=reps).items():
        color = "black" if label == baseline else next(colors)
        n = res.curves[label].shape[0]
        ax.plot(res.steps, center, color=color, lw=1.8, label=f"{label} (n={n})")
        ax.fill_between(res.steps, low, high, color=color, alpha=0.2, lw=0)
    if threshold is not None:
        label = f"threshold {fmt_number(threshold)}"
        ax.axhline(threshold, color="grey", ls="--", lw=1, label=label)
    if not res.curves:
        ax.text(0.5, 0.5, "no finished runs", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return (IQM over seeds)")
    ax.set_title(f"{res.experiment.get('pair', '')}: IQM with 95% bootstrap CI")
    ax.grid(alpha=0.3)
    if res.curves or threshold is not None:
        ax.legend(fontsize="small")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    write_bytes_atomic(path, buf.getvalue())
