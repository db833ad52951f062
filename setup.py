"""Build hook: ship the top-level data folders inside the package (metadata: pyproject.toml).

``envs/`` (the env catalogue, examples included), ``agents/`` (presets) and
``experiments/*.yaml`` stay top-level folders of the repository, not importable packages; a
wheel carries copies of them at ``rltransfer/_data/<folder>/``, which
:func:`rltransfer._data.data_dir` finds. An editable install copies nothing: it reads the
checkout's live folders. ``MANIFEST.in`` puts the same files in the sdist.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent

# folder -> glob patterns of the files shipped (keep in step with MANIFEST.in)
DATA = {
    "envs": ["**/*.yaml", "**/*.md", "**/*.py"],  # examples/ holds a custom env's .py
    "agents": ["**/*.yaml"],
    "experiments": ["*.yaml"],
}


class build_py_with_data(build_py):
    """``build_py`` that also copies :data:`DATA` to ``<build_lib>/rltransfer/_data/``."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # like build_py itself: editable installs use the checkout
            return
        for folder, patterns in DATA.items():
            dest_root = Path(self.build_lib, "rltransfer", "_data", folder)
            if dest_root.exists():  # a reused build/ must not ship files deleted since
                shutil.rmtree(dest_root)
            for pattern in patterns:
                for src in sorted((ROOT / folder).glob(pattern)):
                    dest = dest_root / src.relative_to(ROOT / folder)
                    self.mkpath(str(dest.parent))
                    self.copy_file(str(src), str(dest))


setup(cmdclass={"build_py": build_py_with_data})
