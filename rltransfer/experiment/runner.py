"""Executing one run, in whatever process a backend gives it.

:func:`execute` is the only entry point a backend calls. It uses one torch thread, writes the
run folder and never raises: an exception becomes ``error.txt`` (the traceback) and a
``failed`` status. The folder of a run::

    config.json   what defines the run (written first)
    curve.csv     evaluation curve, appended as training goes
    checkpoint/   the final agent (written atomically by save_agent)
    done.json     written last and atomically: the only proof that the run finished
    error.txt     the traceback, if the run raised (then no done.json)

A folder without ``done.json`` is incomplete; whoever executes the run again deletes it first,
and with it the run's TensorBoard events. Those go to ``RunSpec.tb_dir``
(``<out>/tb/<method>/seed_<k>``) itself, one TensorBoard run: SB3's training scalars, what the
method logs and the evaluation curve (``eval/mean_return``), all through the model's logger.

The source pretraining trains into a temporary folder in the cache, renamed to
``<cache>/<run_id>`` once complete; a cached source with ``done.json`` whose checkpoint
verifies (:func:`rltransfer.checkpoint.load_checkpoint`) is reused, then copied into the
experiment's own ``runs/<run_id>/`` so the results folder stands alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rltransfer._io import disk_full_names, write_json_atomic, write_text_atomic
from rltransfer.experiment.plan import SOURCE_KINDS, RunSpec

__all__ = ["clear_run", "execute", "is_done"]

DONE = "done.json"
ERROR = "error.txt"
CONFIG = "config.json"
CURVE = "curve.csv"
CHECKPOINT = "checkpoint"


def is_done(run_dir: str | os.PathLike) -> bool:
    """Whether a run folder holds a finished run (its ``done.json``)."""
    return (Path(run_dir) / DONE).is_file()


def clear_run(spec: RunSpec) -> None:
    """Delete whatever an earlier, unfinished attempt of this run left behind: its run folder
    and the TensorBoard events in its ``tb_dir`` (a folder of this run alone), so a redone
    run shows each step once."""
    shutil.rmtree(spec.run_dir, ignore_errors=True)
    tb = Path(spec.tb_dir)
    if tb.is_dir():
        for p in tb.glob("events.out.tfevents.*"):
            p.unlink(missing_ok=True)
        for p in tb.glob(f"{spec.run_id}_*"):  # SB3's own subfolders (the layout before #14)
            shutil.rmtree(p, ignore_errors=True)


def execute(spec: RunSpec) -> dict[str, Any]:
    """Run ``spec`` to its end; returns ``{"run_id", "status": "done"|"failed", ...}``.

    Never raises (a ``KeyboardInterrupt`` aside): a failure is written to ``error.txt``.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    try:
        info = _pretrain(spec) if spec.kind in SOURCE_KINDS else _transfer(spec)
        return {"run_id": spec.run_id, "status": "done",
                "wall_time": round(time.perf_counter() - t0, 3), **info}
    except Exception as exc:
        tb = traceback.format_exc()
        try:
            Path(spec.run_dir).mkdir(parents=True, exist_ok=True)
            (Path(spec.run_dir) / DONE).unlink(missing_ok=True)
            write_text_atomic(Path(spec.run_dir) / ERROR, tb)
        except OSError:
            pass
        return {"run_id": spec.run_id, "status": "failed",
                "error": f"{type(exc).__name__}: {exc}", "traceback": tb,
                "wall_time": round(time.perf_counter() - t0, 3)}
    finally:
        torch.set_num_threads(threads)


def _start(spec: RunSpec) -> Path:
    clear_run(spec)
    run_dir = Path(spec.run_dir)
    run_dir.mkdir(parents=True)
    write_json_atomic(run_dir / CONFIG, spec.config_json())
    return run_dir


def _finish(run_dir: Path, t0: float, wall_time: float | None = None, **extra: Any) -> None:
    wall = round(time.perf_counter() - t0, 3) if wall_time is None else wall_time
    write_json_atomic(run_dir / DONE, {
        "wall_time": wall, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra})


def _train(spec: RunSpec, run_dir: Path, source: str | None) -> dict[str, Any]:
    """Build (transfer), train with evaluation, save the final agent; returns done extras."""
    from rltransfer.agent import learn_with_eval, save_agent, transfer
    from rltransfer.training import log_to

    env = spec.env
    preset = {k: v for k, v in spec.preset.items() if k != "algo"}
    model = transfer(source, env["env"], method=spec.method_spec or "scratch", seed=spec.seed,
                     algo=spec.algo, knobs=env.get("knobs") or None, pixels=env.get("pixels"),
                     preset=preset, on_mismatch=spec.on_mismatch, device="cpu")
    # SB3's training scalars and the evaluation curve: one TensorBoard run, in tb_dir itself
    logger = log_to(model, spec.tb_dir)
    try:
        t0 = time.perf_counter()
        rows = learn_with_eval(model, spec.steps, eval_every=spec.eval_every,
                               eval_episodes=spec.eval_episodes, curve_csv=run_dir / CURVE)
        if rows[-1]["step"] < spec.steps:  # the schedule missed the end: evaluate the final agent
            rows.append(_final_evaluation(model, spec, run_dir / CURVE,
                                          time.perf_counter() - t0))
    finally:
        logger.close()
    last = rows[-1]
    evaluation = {"mean": last["mean_return"], "std": last["std_return"],
                  "episodes": int(last["episodes"]), "step": int(last["step"])}
    save_agent(model, run_dir / CHECKPOINT, evaluation=evaluation,
               extra={"run_id": spec.run_id})
    tlog = getattr(model, "rltransfer_log", None)
    return {"steps": int(model.num_timesteps), "final_return": last["mean_return"],
            "jumpstart": rows[0]["mean_return"], "evaluations": len(rows),
            "transfer": tlog.summary() if tlog is not None else None}


def _train_encoder(spec: RunSpec, run_dir: Path) -> dict[str, Any]:
    """A self-supervised source: collect frames in the source env, pretrain, save the encoder.

    Writes ``checkpoint/`` (the encoder alone, with its card) and ``loss.csv`` (the loss of
    every gradient step); the loss also goes to TensorBoard under ``ssl/loss``.
    """
    from rltransfer.checkpoint import load_checkpoint
    from rltransfer.ssl import pretrain_encoder_cli

    o = dict(spec.method_spec)
    env = spec.env
    path = pretrain_encoder_cli(
        env["env"], env.get("knobs") or None, pixels=env.get("pixels"), encoder=o["encoder"],
        encoder_kwargs=o.get("encoder_kwargs"), objective=o["objective"], frames=o["frames"],
        steps=o["steps"], seed=o["seed"], out=run_dir / CHECKPOINT, tb_dir=spec.tb_dir,
        batch_size=o["batch_size"], lr=o["lr"], positive=o["positive"], progress_bar=False,
        loss_csv=run_dir / "loss.csv")
    card = load_checkpoint(path).card
    return {"steps": int(o["frames"]), "gradient_steps": int(o["steps"]),
            "first_loss": card.get("first_loss"), "final_loss": card.get("final_loss")}


def _final_evaluation(model: Any, spec: RunSpec, curve: Path, wall: float) -> dict[str, Any]:
    import csv
    import math

    from rltransfer.agent import EVAL_SEED_OFFSET, make_eval_env
    from rltransfer.training import CURVE_HEADER, DivergedError, evaluate, log_eval

    stats = evaluate(model, make_eval_env(model), episodes=spec.eval_episodes,
                     seed=spec.seed + EVAL_SEED_OFFSET)
    row = {"step": int(model.num_timesteps), "mean_return": stats["mean"],
           "std_return": stats["std"], "episodes": spec.eval_episodes,
           "wall_time": round(wall, 3)}
    if not (math.isfinite(row["mean_return"]) and math.isfinite(row["std_return"])):
        raise DivergedError(row["step"], f"the evaluation return is {row['mean_return']}")
    with disk_full_names(curve), open(curve, "a", newline="") as fh:
        csv.writer(fh).writerow([row[k] for k in CURVE_HEADER])
    log_eval(model.logger, row)
    return row


def _transfer(spec: RunSpec) -> dict[str, Any]:
    t0 = time.perf_counter()
    run_dir = _start(spec)
    source = None
    if spec.source_dir is not None:
        if not is_done(spec.source_dir):
            raise RuntimeError(f"source run {spec.source_id} has not finished "
                               f"({spec.source_dir} has no {DONE})")
        source = str(Path(spec.source_dir) / CHECKPOINT)
    info = _train(spec, run_dir, source)
    _finish(run_dir, t0, **info)
    return info


def _pretrain(spec: RunSpec) -> dict[str, Any]:
    """Train the source into the cache (or reuse it), then copy it into ``runs/<id>``.

    The cache may be shared by experiments running at the same time: a lock per source
    (``<cache>/.<run_id>.lock``, ``flock``, released by the kernel when its holder dies)
    lets one of them train it while the others wait and then reuse it, and lets the trainer
    delete what a killed trainer left (``.<run_id>.*`` temporary folders).
    """
    t0 = time.perf_counter()
    cache = Path(spec.cache_dir or spec.run_dir)
    with _source_lock(cache):
        cached = _cache_valid(cache)
        if not cached:
            shutil.rmtree(cache, ignore_errors=True)
            for leftover in cache.parent.glob(f".{spec.run_id}.*"):
                if leftover.is_dir():  # a killed trainer's temporary folder
                    shutil.rmtree(leftover, ignore_errors=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{spec.run_id}.", dir=cache.parent))
            try:
                tmp_spec = _with_dir(spec, tmp)
                write_json_atomic(tmp / CONFIG, spec.config_json())
                clear_run(spec)  # an earlier attempt's run folder and SB3 logs
                if spec.kind == "pretrain-encoder":
                    info = _train_encoder(tmp_spec, tmp)
                else:
                    info = _train(tmp_spec, tmp, None)
                _finish(tmp, t0, **info)
                try:
                    os.rename(tmp, cache)
                except OSError:  # without flock: another experiment finished it first
                    if not _cache_valid(cache):
                        raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    # Copy into the experiment's own run folder; done.json last.
    run_dir = Path(spec.run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.run_id}.", dir=run_dir.parent))
    try:
        _copy_files(cache, tmp, shown=run_dir, skip=(DONE,))
        os.rename(tmp, run_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    done = json.loads((cache / DONE).read_text())
    extra = {k: v for k, v in done.items() if k not in ("wall_time", "finished")}
    extra.update(cached=cached, cache=str(cache))
    # wall_time: the pretraining's own compute time, whether trained now or cached
    _finish(run_dir, t0, wall_time=done.get("wall_time"), **extra)
    return {"cached": cached}


@contextlib.contextmanager
def _source_lock(cache: Path) -> Iterator[None]:
    """Hold ``<cache parent>/.<run_id>.lock`` (exclusive; waits for another holder)."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # no flock (Windows): the rename below still keeps the cache whole
        yield
        return
    fd = os.open(cache.parent / f".{cache.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _copy_files(src: Path, dst: Path, *, shown: Path, skip: tuple[str, ...] = ()) -> None:
    """Copy the files under ``src`` into ``dst``; a full disk names the file under ``shown``."""
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if rel.name in skip and len(rel.parts) == 1:
            continue
        with disk_full_names(shown / rel):
            if path.is_dir():
                (dst / rel).mkdir(parents=True, exist_ok=True)
            else:
                (dst / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dst / rel)


def _cache_valid(cache: Path) -> bool:
    if not is_done(cache):
        return False
    from rltransfer.checkpoint import load_checkpoint

    try:
        load_checkpoint(cache / CHECKPOINT)
    except (ValueError, OSError):
        return False
    return True


def _with_dir(spec: RunSpec, run_dir: Path) -> RunSpec:
    import dataclasses

    return dataclasses.replace(spec, run_dir=str(run_dir))
