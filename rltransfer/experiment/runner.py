"""Executing one run, in whatever process a backend gives it.

:func:`execute` is the only entry point a backend calls. It uses one torch thread, writes the
run folder (its layout: :mod:`rltransfer.rundir`) and never raises: an exception becomes
``error.txt`` (the traceback) and a ``failed`` status. A folder without ``done.json`` is
incomplete; whoever executes the run again deletes it first.

Training goes through the agent layer's one path: a source run is
:func:`rltransfer.agent.pretrain`, a transfer run :func:`rltransfer.agent.transfer` followed
by :func:`rltransfer.agent.train_and_save`, each with the run's resolved preset as is.
Deleting an unfinished run deletes its TensorBoard events too. Those go to ``RunSpec.tb_dir``
(``<out>/tb/<method>/seed_<k>``) itself, one TensorBoard run: SB3's training scalars, what the
method logs and the evaluation curve (``eval/mean_return``), all through the model's logger.

The source pretraining trains into a temporary folder in the cache, renamed to
``<cache>/<run_id>`` once complete; a cached source with ``done.json`` whose checkpoint
verifies (:func:`rltransfer.checkpoint.load_checkpoint`) is reused, then copied into the
experiment's own ``runs/<run_id>/`` so the results folder stands alone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from rltransfer import rundir
from rltransfer._io import disk_full_names, locked
from rltransfer.experiment.plan import SOURCE_KINDS, RunSpec
from rltransfer.rundir import CHECKPOINT, CURVE, DONE, LOSS, is_done

__all__ = ["cache_valid", "clear_run", "execute", "source_lock"]


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
        with contextlib.suppress(OSError):
            rundir.write_error(spec.run_dir, tb)
        return {"run_id": spec.run_id, "status": "failed",
                "error": f"{type(exc).__name__}: {exc}", "traceback": tb,
                "wall_time": round(time.perf_counter() - t0, 3)}
    finally:
        torch.set_num_threads(threads)


def _start(spec: RunSpec) -> Path:
    clear_run(spec)
    run_dir = Path(spec.run_dir)
    run_dir.mkdir(parents=True)
    rundir.write_config(run_dir, spec.config_json())
    return run_dir


def _finish(run_dir: Path, t0: float, wall_time: float | None = None, **extra: Any) -> None:
    wall = round(time.perf_counter() - t0, 3) if wall_time is None else wall_time
    rundir.write_done(run_dir, {"wall_time": wall, **extra})


def _train(spec: RunSpec, run_dir: Path, source: str | None) -> dict[str, Any]:
    """Build (pretrain or transfer), train with evaluation, save the final agent; returns the
    extras of ``done.json``."""
    from rltransfer.agent import pretrain, train_and_save, transfer
    from rltransfer.checkpoint import load_checkpoint
    from rltransfer.presets import parse_preset

    env = spec.env
    common: dict[str, Any]  # keyword arguments of pretrain/transfer and of train_and_save
    train: dict[str, Any]
    common = {"seed": spec.seed, "algo": spec.algo, "knobs": env.get("knobs") or None,
              "pixels": env.get("pixels"), "device": "cpu",
              "preset": parse_preset(spec.preset, spec.algo, where=f"run {spec.run_id}")}
    train = {"eval_every": spec.eval_every, "eval_episodes": spec.eval_episodes,
             "curve_csv": run_dir / CURVE, "progress_bar": False,
             "tensorboard_log": spec.tb_dir, "extra": {"run_id": spec.run_id}}
    tlog = None
    if spec.kind == "pretrain":
        ckpt = pretrain(env["env"], steps=spec.steps, out=run_dir / CHECKPOINT, **train,
                        **common)
        returns = rundir.read_curve(run_dir / CURVE)["mean_return"].tolist()
        steps = int(load_checkpoint(ckpt).card["steps"])
    else:
        model = transfer(source, env["env"], method=spec.method_spec or "scratch",
                         on_mismatch=spec.on_mismatch, adapter=spec.adapter, **common)
        rows = train_and_save(model, spec.steps, out=run_dir / CHECKPOINT, **train)
        returns, steps = [r["mean_return"] for r in rows], int(model.num_timesteps)
        tlog = model.rltransfer_log
    return {"steps": steps, "final_return": returns[-1], "jumpstart": returns[0],
            "evaluations": len(returns), "transfer": tlog.summary() if tlog else None}


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
        loss_csv=run_dir / LOSS)
    card = load_checkpoint(path).card
    return {"steps": int(o["frames"]), "gradient_steps": int(o["steps"]),
            "first_loss": card.get("first_loss"), "final_loss": card.get("final_loss")}


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
    with source_lock(cache):
        cached = cache_valid(cache)
        if not cached:
            shutil.rmtree(cache, ignore_errors=True)
            for leftover in cache.parent.glob(f".{spec.run_id}.*"):
                if leftover.is_dir():  # a killed trainer's temporary folder
                    shutil.rmtree(leftover, ignore_errors=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{spec.run_id}.", dir=cache.parent))
            try:
                tmp_spec = _with_dir(spec, tmp)
                rundir.write_config(tmp, spec.config_json())
                clear_run(spec)  # an earlier attempt's run folder and SB3 logs
                if spec.kind == "pretrain-encoder":
                    info = _train_encoder(tmp_spec, tmp)
                else:
                    info = _train(tmp_spec, tmp, None)
                _finish(tmp, t0, **info)
                try:
                    os.rename(tmp, cache)
                except OSError:  # without flock: another experiment finished it first
                    if not cache_valid(cache):
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
    done = rundir.read_done(cache)
    extra = {k: v for k, v in done.items() if k not in ("wall_time", "finished")}
    extra.update(cached=cached, cache=str(cache))
    # wall_time: the pretraining's own compute time, whether trained now or cached
    _finish(run_dir, t0, wall_time=done.get("wall_time"), **extra)
    return {"cached": cached}


def source_lock(cache: Path) -> contextlib.AbstractContextManager[None]:
    """Hold ``<cache parent>/.<run_id>.lock`` (exclusive; waits for another holder)."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    return locked(cache.parent / f".{cache.name}.lock")


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


def cache_valid(cache: Path) -> bool:
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
