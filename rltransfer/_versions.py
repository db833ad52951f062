"""Versions of rltransfer and the libraries that shape its results, read without importing
them (so the experiment driver stays torch-free)."""

from __future__ import annotations

import importlib.util
import platform
import re
from importlib import metadata
from pathlib import Path

__all__ = ["versions"]

_DISTRIBUTIONS = {"stable_baselines3": "stable-baselines3", "torch": "torch",
                  "torchvision": "torchvision", "gymnasium": "gymnasium", "numpy": "numpy",
                  "mujoco": "mujoco"}


def _dist_version(name: str) -> str | None:
    """An installed distribution's version (``None``: not installed)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _full_version(module: str, dist: str) -> str | None:
    """``module.__version__`` as its ``version.py`` spells it (torch and torchvision add the
    build, e.g. ``+cpu``, which their distribution metadata lacks), without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return _dist_version(dist)
    path = Path(next(iter(spec.submodule_search_locations))) / "version.py"
    match = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]",
                      path.read_text() if path.is_file() else "", re.MULTILINE)
    return match.group(1) if match else _dist_version(dist)


def versions() -> dict[str, str | None]:
    """``{"rltransfer": ..., "torch": ..., ..., "python": ...}`` (``None``: not installed).

    >>> v = versions()
    >>> v["python"] == platform.python_version() and v["numpy"] is not None
    True
    """
    from rltransfer import __version__

    return {"rltransfer": __version__,
            **{key: _dist_version(dist) for key, dist in _DISTRIBUTIONS.items()},
            "torch": _full_version("torch", "torch"),
            "torchvision": _full_version("torchvision", "torchvision"),
            "python": platform.python_version()}
