"""Backends: where runs execute. The same :func:`rltransfer.experiment.runner.execute` runs
everywhere and writes the same files; a backend only decides which process calls it.

- ``local`` (default): a process pool (``spawn`` start method, ``workers`` processes, one
  torch thread each). Workers die with the driver, even a ``kill -9`` of the driver alone,
  and hold ``<out>/.lock-workers`` while they live, so a new driver never races them.
  ``workers=0`` runs everything in the calling process, one run after another (for
  debugging).
- ``ray``: each run is a Ray task with ``num_cpus=1`` on an existing cluster
  (``ray_address``) or on a local Ray started with ``num_cpus=workers``. The nodes need not
  share a disk with the driver or with each other: a task runs in a private folder of its
  node (``$RLTRANSFER_WORKDIR`` or the temporary folder), the source run it starts from
  travels to it through Ray's object store (put once, fetched by the nodes that need it),
  and its run folder and TensorBoard events come back in the task's result, for the driver
  to write (:func:`execute_shipped`, :func:`receive`). A source the driver has cached
  already is copied on the driver. The progress display sees a Ray run's steps only when
  it ends.

A backend is three calls: ``submit(spec) -> handle``, ``wait(handles, timeout) -> done``,
``result(handle) -> dict``; and ``close()``.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import dataclasses
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rltransfer import rundir
from rltransfer._io import disk_full_names, flock
from rltransfer.experiment.plan import SOURCE_KINDS, RunSpec
from rltransfer.experiment.runner import cache_valid, clear_run, execute, source_lock

__all__ = ["BACKENDS", "Backend", "InlineBackend", "LocalBackend", "RayBackend",
           "make_backend"]

BACKENDS = ("local", "ray")


def _init_worker(parent: int | None = None, workers_lock: str | None = None) -> None:
    """Pool initializer: one thread for torch and the BLAS libraries it calls; die with the
    driver; hold the output folder's workers lock for life."""
    _exit_with_parent(parent)
    if workers_lock is not None:
        _hold_workers_lock(workers_lock)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    os.environ.setdefault("MUJOCO_GL", "egl")
    # torch here, after the thread settings above, and not with the module: the driver
    # imports this module and stays torch-free (torch costs 2-3 s to import)
    import torch

    torch.set_num_threads(1)


def _exit_with_parent(parent: int | None = None) -> None:
    """End this worker when the process that started it dies (a ``kill -9`` of the driver).

    Otherwise an orphaned worker would go on writing into a run folder that the next
    invocation deletes and redoes. On Linux the kernel sends SIGKILL the moment the driver
    dies (``PR_SET_PDEATHSIG``); elsewhere a thread checks the parent every 0.2 s. Either
    way the next driver also waits for the workers lock (:func:`_hold_workers_lock`).
    """
    parent = os.getppid() if parent is None else parent
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the driver died before this worker got here
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(0.2)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="rltransfer-parent-watch", daemon=True).start()


_WORKERS_LOCK_FD: int | None = None


def _hold_workers_lock(path: str) -> None:
    """A shared ``flock`` on ``<out>/.lock-workers`` until this process ends (see
    :func:`rltransfer.experiment.driver.wait_for_workers`)."""
    global _WORKERS_LOCK_FD
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    flock(fd, shared=True)
    _WORKERS_LOCK_FD = fd  # never closed: the kernel releases it when the worker dies


class Backend:
    """The interface; see the module docstring."""

    name = "backend"
    workers = 1

    def submit(self, spec: RunSpec) -> Any:
        raise NotImplementedError

    def wait(self, handles: Iterable[Any], timeout: float) -> list[Any]:
        raise NotImplementedError

    def result(self, handle: Any, spec: RunSpec) -> dict[str, Any]:
        raise NotImplementedError

    def close(self, cancel: bool = False) -> None:
        pass


class _Done:
    """A finished in-process 'future'."""

    def __init__(self, value: dict[str, Any]) -> None:
        self.value = value


class InlineBackend(Backend):
    """Runs each run in the calling process when it is submitted (``workers=0``)."""

    name = "inline"
    workers = 1

    def submit(self, spec: RunSpec) -> _Done:
        return _Done(execute(spec))

    def wait(self, handles: Iterable[Any], timeout: float) -> list[Any]:
        return list(handles)

    def result(self, handle: _Done, spec: RunSpec) -> dict[str, Any]:
        return handle.value


class LocalBackend(Backend):
    """A pool of ``workers`` spawned processes."""

    name = "local"

    def __init__(self, workers: int, workers_lock: str | os.PathLike | None = None) -> None:
        self.workers = workers
        lock = None if workers_lock is None else str(workers_lock)
        self.pool = cf.ProcessPoolExecutor(max_workers=workers,
                                           mp_context=multiprocessing.get_context("spawn"),
                                           initializer=_init_worker,
                                           initargs=(os.getpid(), lock))

    def submit(self, spec: RunSpec) -> cf.Future:
        return self.pool.submit(execute, spec)

    def wait(self, handles: Iterable[Any], timeout: float) -> list[Any]:
        done, _ = cf.wait(list(handles), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return list(done)

    def result(self, handle: cf.Future, spec: RunSpec) -> dict[str, Any]:
        try:
            return handle.result()
        except Exception as exc:  # the worker process died (killed, out of memory...)
            return _crashed(spec, exc)

    def close(self, cancel: bool = False) -> None:
        self.pool.shutdown(wait=not cancel, cancel_futures=cancel)


class RayBackend(Backend):
    """Ray tasks (``num_cpus=1``) on an existing cluster or a local Ray."""

    name = "ray"

    def __init__(self, workers: int, address: str | None = None) -> None:
        try:
            import ray  # an optional extra (rltransfer[ray]), imported when chosen
        except ImportError:
            raise ValueError("backend 'ray' needs Ray: pip install 'rltransfer[ray]'") from None
        self.ray = ray
        self.owned = False
        if not ray.is_initialized():
            env_vars = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            if address:
                ray.init(address=address, runtime_env={"env_vars": env_vars},
                         log_to_driver=False)
            else:  # a new local Ray, even if this machine runs a cluster (no address given)
                ray.init(address="local", num_cpus=workers, include_dashboard=False,
                         log_to_driver=False, runtime_env={"env_vars": env_vars})
            self.owned = True
        self.workers = int(ray.cluster_resources().get("CPU", workers))
        self.task = ray.remote(num_cpus=1, max_retries=0)(execute_shipped)
        self.shipped: dict[str, Any] = {}
        """Source run folder -> the object ref of its files (put into Ray once)."""

    def submit(self, spec: RunSpec) -> Any:
        if (spec.kind in SOURCE_KINDS and spec.cache_dir is not None
                and cache_valid(Path(spec.cache_dir))):
            return _Done(execute(spec))  # cached on the driver: a copy, no node needed
        source = None
        if spec.source_dir is not None:
            if spec.source_dir not in self.shipped:
                self.shipped[spec.source_dir] = self.ray.put(pack(spec.source_dir))
            source = self.shipped[spec.source_dir]
        return self.task.remote(spec, source)

    def wait(self, handles: Iterable[Any], timeout: float) -> list[Any]:
        handles = list(handles)
        local = [h for h in handles if isinstance(h, _Done)]
        if local or not handles:
            return local
        done, _ = self.ray.wait(handles, num_returns=1, timeout=timeout)
        # collect every other finished one too
        more, _ = self.ray.wait([h for h in handles if h not in done],
                                num_returns=len(handles) - len(done), timeout=0)
        return list(done) + list(more)

    def result(self, handle: Any, spec: RunSpec) -> dict[str, Any]:
        if isinstance(handle, _Done):
            return handle.value
        try:
            value = self.ray.get(handle)
        except Exception as exc:  # the task's worker died
            return _crashed(spec, exc)
        receive(spec, value.pop("files"))
        return value

    def close(self, cancel: bool = False) -> None:
        if self.owned:
            self.ray.shutdown()


# --------------------------------------------------------------------------- shipping

WORKDIR_ENV = "RLTRANSFER_WORKDIR"
"""Where a Ray task keeps its run while it trains (default: the node's temporary folder)."""


def pack(folder: str | os.PathLike) -> dict[str, bytes]:
    """Every file under ``folder`` as ``{relative posix path: bytes}`` (empty if missing)."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def unpack(files: Mapping[str, bytes], folder: str | os.PathLike) -> None:
    """Write ``files`` (as :func:`pack` gives them) under ``folder``."""
    folder = Path(folder)
    for rel, data in files.items():
        path = folder / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise ValueError(f"refusing to write {rel!r} outside {folder}")
        with disk_full_names(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


def execute_shipped(spec: RunSpec, source: Mapping[str, bytes] | None = None) -> dict[str, Any]:
    """:func:`execute` on a node that shares no disk with the driver (the Ray backend).

    The run happens in a private folder of this node (under ``$RLTRANSFER_WORKDIR`` or the
    temporary folder): ``source`` (the files of the source run a transfer run starts from)
    is written there first, and
    the run folder and its TensorBoard logs come back in the result (``files``), for the
    driver to write (:func:`receive`). The folder is deleted afterwards.
    """
    base = Path(tempfile.mkdtemp(prefix=f"rltransfer-{spec.run_id}-",
                                 dir=os.environ.get(WORKDIR_ENV) or None))
    try:
        local = dataclasses.replace(
            spec, run_dir=str(base / "run"), tb_dir=str(base / "tb"),
            source_dir=str(base / "source") if spec.source_dir is not None else None,
            cache_dir=str(base / "cache" / spec.run_id) if spec.cache_dir is not None else None)
        if source:
            assert local.source_dir is not None  # a transfer run's spec names its source folder
            unpack(source, local.source_dir)
        result = execute(local)
        if spec.cache_dir is not None and rundir.is_done(local.run_dir):  # the driver's path
            rundir.write_done(local.run_dir, {**rundir.read_done(local.run_dir),
                                              "cache": spec.cache_dir})
        result["files"] = {"run": pack(local.run_dir), "tb": pack(local.tb_dir)}
        return result
    finally:
        shutil.rmtree(base, ignore_errors=True)


def receive(spec: RunSpec, files: Mapping[str, Mapping[str, bytes]]) -> None:
    """Write what :func:`execute_shipped` sent back into the driver's folders: the run folder
    whole (a temporary folder renamed into place, so it is never seen half written), its
    TensorBoard logs, and a finished source into the driver's cache."""
    clear_run(spec)
    run_dir = Path(spec.run_dir)
    _place(files.get("run", {}), run_dir)
    unpack(files.get("tb", {}), spec.tb_dir)
    if spec.cache_dir is not None and rundir.is_done(run_dir):
        cache = Path(spec.cache_dir)
        with source_lock(cache):
            if not cache_valid(cache):
                _place(files.get("run", {}), cache)


def _place(files: Mapping[str, bytes], dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        unpack(files, tmp)
        shutil.rmtree(dest, ignore_errors=True)
        os.rename(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def make_backend(name: str, workers: int | None, address: str | None = None, *,
                 workers_lock: str | os.PathLike | None = None) -> Backend:
    """A backend by name; ``workers`` defaults to the CPU count (0: in-process).

    ``workers_lock``: a file each local worker holds a shared ``flock`` on for its life
    (the driver passes ``<out>/.lock-workers``).
    """
    if name not in BACKENDS:
        raise ValueError(f"backend {name!r} is unknown; choose from {list(BACKENDS)}")
    if workers is not None and workers < 0:
        raise ValueError(f"workers={workers!r}: must be >= 0 (0 runs in-process)")
    n = (os.cpu_count() or 1) if workers is None else workers
    if name == "ray":
        return RayBackend(max(n, 1), address)
    if address:
        raise ValueError("--ray-address is only for --backend ray")
    return InlineBackend() if n == 0 else LocalBackend(n, workers_lock)


def _crashed(spec: RunSpec, exc: BaseException) -> dict[str, Any]:
    tb = "".join(traceback.format_exception(exc))
    text = f"the process running this run died: {type(exc).__name__}: {exc}\n\n{tb}"
    with contextlib.suppress(OSError):
        rundir.write_error(spec.run_dir, text)
    return {"run_id": spec.run_id, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
            "traceback": text}
