"""Installs that work: the shipped data (env catalogue, presets, experiments) and where it is found.

The wheel tests build an sdist from the checkout and a wheel from that sdist (the route of
``python -m build``; offline: ``--no-build-isolation`` with the installed setuptools), check
both carry the data, then install the wheel's files into a fresh venv and run the command from
an unrelated folder with the checkout made unimportable.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

from rltransfer._data import NAMES, DataNotFoundError, data_dir
from rltransfer.experiment.cli import resolve_experiment, shipped_experiments

REPO = Path(__file__).resolve().parents[1]

# the files shipped from each data folder (setup.py's DATA and MANIFEST.in say the same)
PATTERNS = {"envs": ["**/*.yaml", "**/*.md", "**/*.py"], "agents": ["**/*.yaml"],
            "experiments": ["*.yaml"]}


def _repo_data_files() -> list[str]:
    """``<folder>/<relative path>`` of every data file the packages must carry."""
    files = {f"{name}/{p.relative_to(REPO / name).as_posix()}"
             for name, patterns in PATTERNS.items() for pattern in patterns
             for p in (REPO / name).glob(pattern) if "__pycache__" not in p.parts}
    return sorted(files)


# ---------------------------------------------------------------------- data_dir


def test_data_dir_reads_the_checkout_in_a_source_install():
    # the tests run from the checkout (editable install): its live top-level folders
    for name in NAMES:
        assert data_dir(name) == REPO / name
    assert (data_dir("envs") / "examples" / "point_mass.yaml").is_file()


def test_data_dir_prefers_the_installed_copy_and_says_when_both_are_missing(tmp_path,
                                                                           monkeypatch):
    import rltransfer._data as d

    pkg, checkout = tmp_path / "site" / "rltransfer" / "_data", tmp_path / "site"
    pkg.mkdir(parents=True)
    monkeypatch.setattr(d, "_PACKAGED", pkg)
    monkeypatch.setattr(d, "_CHECKOUT", checkout)
    with pytest.raises(DataNotFoundError, match=r"envs/ data folder is missing"):
        data_dir("envs")
    (checkout / "envs").mkdir()  # a folder named envs next to the package is no checkout...
    with pytest.raises(DataNotFoundError):
        data_dir("envs")
    (checkout / "pyproject.toml").write_text("")  # ...unless a pyproject.toml says so
    assert data_dir("envs") == checkout / "envs"
    (pkg / "envs").mkdir()  # an installed copy wins
    assert data_dir("envs") == pkg / "envs"
    with pytest.raises(ValueError, match="unknown data folder 'tests'"):
        data_dir("tests")


def test_run_takes_a_shipped_experiment_by_name_or_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing named experiments/ here
    demo = REPO / "experiments" / "cartpole_demo.yaml"
    assert shipped_experiments()["cartpole_demo"] == demo
    for value in ("cartpole_demo", "cartpole_demo.yaml", "experiments/cartpole_demo.yaml"):
        assert resolve_experiment(value) == demo, value
    mine = tmp_path / "cartpole_demo.yaml"  # an existing file wins over a shipped name
    mine.write_text("name: mine\n")
    assert resolve_experiment("cartpole_demo.yaml") == Path("cartpole_demo.yaml")
    assert resolve_experiment(mine) == mine
    with pytest.raises(FileNotFoundError) as err:
        resolve_experiment("cartpole_dmo")
    msg = str(err.value)
    assert "'cartpole_dmo'" in msg and "did you mean 'cartpole_demo'" in msg
    assert "cartpole_long_pole" in msg and "pendulum_heavy_sac" in msg
    with pytest.raises(FileNotFoundError, match="'results/nope.yaml' is neither a file"):
        resolve_experiment("results/nope.yaml")


def test_run_command_names_an_unknown_experiment(capsys):
    from rltransfer.cli import main

    assert main(["run", "no_such_experiment"]) == 2
    err = capsys.readouterr().err
    assert "'no_such_experiment'" in err
    assert "shipped experiments: calibration_pool_cartpole, cartpole_demo," in err


# ---------------------------------------------------------------------- built packages


def _pip_env() -> dict[str, str]:
    return {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1"}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """An sdist built from the checkout and a wheel built from that sdist."""
    out = tmp_path_factory.mktemp("dist")
    sdist_name = subprocess.run(
        [sys.executable, "-c", "import sys, setuptools.build_meta as b; "
                               "print(b.build_sdist(sys.argv[1]))", str(out)],
        cwd=REPO, capture_output=True, text=True, check=True, timeout=120,
    ).stdout.strip().splitlines()[-1]
    sdist = out / sdist_name
    with tarfile.open(sdist) as tar:
        tar.extractall(out / "src", filter="data")
    (src,) = (out / "src").iterdir()
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(out / "wheel"), str(src)],
        cwd=out, capture_output=True, text=True, timeout=300, env=_pip_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = (out / "wheel").glob("rltransfer-*.whl")
    return {"sdist": sdist, "wheel": wheel}


def test_sdist_and_wheel_carry_the_catalogue_presets_and_experiments(built):
    expected = _repo_data_files()
    for must in ("envs/classic.yaml", "envs/examples/point_mass.yaml",
                 "envs/examples/point_mass.py", "agents/ppo.yaml", "agents/sac.yaml",
                 "experiments/cartpole_demo.yaml"):
        assert must in expected
    with tarfile.open(built["sdist"]) as tar:
        sdist = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert not [f for f in expected if f not in sdist]
    assert "setup.py" in sdist and "MANIFEST.in" in sdist

    with zipfile.ZipFile(built["wheel"]) as whl:
        names = set(whl.namelist())
        meta = whl.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry_points = whl.read(
            next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert not [f for f in expected if f"rltransfer/_data/{f}" not in names]
    # the data folders are inside the package, never top-level importable names
    assert {n.split("/")[0] for n in names if "/" in n} == {
        "rltransfer", built["wheel"].name.split("-py3")[0] + ".dist-info"}
    assert "rltransfer = rltransfer.cli:main" in entry_points
    for line in ("License-Expression: MIT", "Provides-Extra: ray", "Provides-Extra: dev",
                 "Classifier: Development Status :: 3 - Alpha",
                 "Classifier: Topic :: Scientific/Engineering :: Artificial Intelligence",
                 "Project-URL: Issues,", "Keywords: reinforcement-learning"):
        assert line in meta, line


def test_the_wheel_works_from_an_unrelated_folder(built, tmp_path):
    # a fresh venv; the wheel's files come first on its path, then the project venv's
    # site-packages (only for the dependencies: its editable-install hook is a .pth file
    # there, and .pth files of a folder added this way are not run)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run(
        [python, "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True).stdout.strip())
    installed = tmp_path / "installed"
    with zipfile.ZipFile(built["wheel"]) as whl:
        whl.extractall(installed)
    (site / "a_rltransfer_wheel.pth").write_text(f"{installed}\n")
    (site / "b_dependencies.pth").write_text(f"{sysconfig.get_paths()['purelib']}\n")

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "RLTRANSFER_"))}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MUJOCO_GL="egl")

    def rlt(*args: str) -> str:
        # -I: isolated (no cwd, no PYTHONPATH, no user site): the checkout cannot leak in
        proc = subprocess.run([python, "-I", *args], cwd=work, env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc.stdout

    where = rlt("-c", "import rltransfer, rltransfer._data as d\n"
                      "from rltransfer.experiment.cli import resolve_experiment as r\n"
                      "print(rltransfer.__file__)\n"
                      "for n in d.NAMES: print(d.data_dir(n))\n"
                      "print(r('cartpole_demo'))").split()
    assert all(Path(p).is_relative_to(installed) for p in where), where
    assert not any(Path(p).is_relative_to(REPO) for p in where), where

    listing = rlt("-m", "rltransfer", "list")
    for name in ("cartpole", "pendulum", "cartpole/long-heavy-pole", "pendulum/heavy"):
        assert name in listing, listing

    out = work / "ckpt"
    printed = rlt("-m", "rltransfer", "pretrain", "--env", "cartpole", "--steps", "256",
                  "--seed", "0", "--eval-episodes", "2", "--no-progress", "--out", str(out))
    assert "checkpoint:" in printed
    assert (out / "card.json").is_file()
    assert sorted(p.name for p in work.iterdir()) == ["ckpt"]  # nothing else written here
