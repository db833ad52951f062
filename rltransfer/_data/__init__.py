"""Where rltransfer's shipped data lives: the one place that knows.

The data are the env catalogue (``envs/``, examples included), the agent presets
(``agents/``) and the example experiments (``experiments/*.yaml``). In the repository they are
top-level folders; a built wheel or sdist install carries copies in this package, at
``rltransfer/_data/<name>/``, put there by ``setup.py``'s ``build_py`` (an editable install
gets no copies, so it keeps reading the checkout's live files).

Example:
    >>> from rltransfer._data import data_dir
    >>> (data_dir("envs") / "classic.yaml").is_file()
    True
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["NAMES", "DataNotFoundError", "data_dir"]

NAMES = ("envs", "agents", "experiments")
"""The data folders."""

_PACKAGED = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGED.parents[1]  # the folder holding the ``rltransfer`` package


class DataNotFoundError(FileNotFoundError):
    """A data folder is in neither the installed package nor a source checkout."""


def data_dir(name: str) -> Path:
    """The folder of the shipped data ``name`` (one of :data:`NAMES`).

    An installed copy (wheel, sdist) comes first; else the source checkout's top-level folder
    (a checkout is recognized by the ``pyproject.toml`` next to the ``rltransfer`` package).
    """
    if name not in NAMES:
        raise ValueError(f"unknown data folder {name!r}; choose one of {list(NAMES)}")
    packaged = _PACKAGED / name
    if packaged.is_dir():
        return packaged
    checkout = _CHECKOUT / name
    if checkout.is_dir() and (_CHECKOUT / "pyproject.toml").is_file():
        return checkout
    raise DataNotFoundError(
        f"rltransfer's {name}/ data folder is missing: looked in {packaged} (installed "
        f"copy) and {checkout} (source checkout). Reinstall rltransfer from a wheel or sdist "
        "(`pip install rltransfer`) or install the checkout (`pip install -e .`).")
