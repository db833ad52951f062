"""Atomic file writes (temporary file in the same folder, fsync, rename).

Readers never see half a file: either the old content or the new. Standard library only, so
every module (the torch-free report included) can use it.

A full disk (``ENOSPC``, or a quota: ``EDQUOT``) while writing raises :class:`DiskFullError`
("disk full while writing <path>"); the temporary file is removed and the previous content of
``path``, if any, stays as it was.

Fault injection: ``RLTRANSFER_SLOW_WRITES=<seconds>`` makes every atomic write (these and
checkpoint files) pause that long halfway through its temporary file, so that a test can
``kill -9`` a process while a file is half written (``benchmarks/kill9.py`` does).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

_fcntl: ModuleType | None
try:
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - Windows
    _fcntl = None

HAVE_FLOCK = _fcntl is not None
"""Whether this platform has ``flock`` (every POSIX system; not Windows)."""

_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class DiskFullError(OSError):
    """The disk (or the user's quota) filled up while writing ``path``.

    Whatever was being written was discarded; files written before are intact.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__(errno.ENOSPC, f"disk full while writing {path}", str(path))
        self.path = str(path)

    def __str__(self) -> str:
        return f"disk full while writing {self.path}"

    def __reduce__(self) -> tuple[type[DiskFullError], tuple[str]]:  # picklable across processes
        return (type(self), (self.path,))


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is an ``OSError`` for a full disk or quota."""
    return isinstance(exc, OSError) and exc.errno in _FULL


@contextlib.contextmanager
def disk_full_names(path: str | os.PathLike) -> Iterator[None]:
    """Turn a full-disk ``OSError`` raised inside into :class:`DiskFullError` naming ``path``."""
    try:
        yield
    except DiskFullError:
        raise
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFullError(path) from exc
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    Raises :class:`DiskFullError` when the disk fills up (the temporary file is removed,
    ``path`` keeps its previous content).
    """
    path = Path(path)
    with disk_full_names(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
        try:
            flock(fd, wait=False)  # held until written and renamed: see remove_abandoned_temps
            with open(fd, "wb") as fh:
                write_in_halves(fh, data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


TMP_SUFFIX = ".tmp"


def remove_abandoned_temps(folder: str | os.PathLike, min_age: float = 1.0) -> int:
    """Delete the temporary files that killed writers left in ``folder``; returns how many.

    A writer holds a ``flock`` on its temporary file until the rename, and the kernel drops it
    when the writer dies, so a temporary file whose lock can be taken (and that is older than
    ``min_age`` seconds, which covers the instant between its creation and its lock) has no
    live writer. Without ``flock`` (Windows) nothing is deleted.
    """
    if not HAVE_FLOCK:
        return 0
    removed = 0
    for tmp in Path(folder).glob(f".*{TMP_SUFFIX}"):
        try:
            if time.time() - tmp.stat().st_mtime < min_age:
                continue
            fd = os.open(tmp, os.O_RDONLY)
        except OSError:
            continue
        try:
            if flock(fd, wait=False):
                tmp.unlink(missing_ok=True)
                removed += 1
        finally:
            os.close(fd)
    return removed


def flock(fd: int, *, shared: bool = False, wait: bool = True) -> bool:
    """Lock the open file ``fd`` with ``flock``: the one locking primitive of rltransfer.

    The kernel releases the lock when ``fd`` is closed or its process dies, however it dies
    (``kill -9`` included), so a lock never goes stale. ``shared`` takes a shared lock,
    ``wait=False`` returns ``False`` at once if another process holds a conflicting one.
    Returns ``True`` once held. Without ``flock`` (Windows) an exclusive lock falls back to
    ``msvcrt.locking`` and a shared one is not taken (``True``; see :data:`HAVE_FLOCK`).
    """
    if _fcntl is None:  # pragma: no cover - Windows
        if shared:
            return True
        if sys.platform != "win32":  # (and mypy knows msvcrt's functions on Windows only)
            raise OSError(errno.ENOLCK, "no file locking here: neither fcntl nor msvcrt")
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK if not wait else msvcrt.LK_LOCK, 1)
        except OSError:
            return False
        return True
    op = (_fcntl.LOCK_SH if shared else _fcntl.LOCK_EX) | (0 if wait else _fcntl.LOCK_NB)
    try:
        _fcntl.flock(fd, op)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def locked(path: str | os.PathLike, *, shared: bool = False) -> Iterator[None]:
    """Hold a :func:`flock` on the file ``path`` (created if missing) for the ``with`` block,
    waiting for other holders first."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        flock(fd, shared=shared)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (deleting it would race)


def write_in_halves(fh: Any, data: bytes) -> None:
    """``fh.write(data)``; with ``RLTRANSFER_SLOW_WRITES`` set, half, a pause, the rest."""
    try:
        pause = float(os.environ.get("RLTRANSFER_SLOW_WRITES") or 0.0)
    except ValueError:
        pause = 0.0
    if pause > 0:
        half = len(data) // 2
        fh.write(data[:half])
        fh.flush()
        time.sleep(pause)
        data = data[half:]
    fh.write(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def json_text(data: Mapping[str, Any]) -> str:
    """Stable, readable JSON (sorted keys, indented); numpy scalars and paths allowed."""
    return json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n"


def write_json_atomic(path: str | os.PathLike, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` atomically."""
    write_text_atomic(path, json_text(data))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")
