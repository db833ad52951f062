"""Property-based tests of the three YAML loaders (experiments, env catalogue, presets).

Whatever document a user writes (arbitrary YAML, broken YAML, or a real shipped file with a
key dropped, a value of another type, an unknown key inserted), a loader either accepts it
or raises its own validation error: :class:`~rltransfer.experiment.config.ExperimentError`,
:class:`~rltransfer.envs.EnvError` or :class:`~rltransfer.presets.PresetError`. Never a
``TypeError``, ``KeyError``, ``AttributeError`` or anything else that would reach the user
as a traceback.
"""

from __future__ import annotations

import contextlib
import copy
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rltransfer.envs as rte
from rltransfer._data import data_dir
from rltransfer.envs import EnvError
from rltransfer.experiment.config import ExperimentError, load_experiment, resolve_experiment
from rltransfer.presets import PresetError, load_presets, resolve_preset

# RLTRANSFER_FUZZ_EXAMPLES=2000 for a longer, randomized search (CI: 60, derandomized).
_DEEP = int(os.environ.get("RLTRANSFER_FUZZ_EXAMPLES", "0"))
SETTINGS = settings(max_examples=_DEEP or 60, deadline=None, derandomize=not _DEEP,
                    database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

# Field names of the three schemas, so generated documents reach past the first check.
EXPERIMENT_KEYS = ["name", "description", "pair", "source", "target", "algo", "preset",
                   "overrides", "methods", "sources", "seeds", "steps", "eval", "threshold",
                   "sustain", "source_steps", "source_seed", "on_mismatch", "env", "knobs",
                   "pixels", "every", "episodes", "method", "label", "kind", "roles"]
CATALOGUE_KEYS = ["families", "pairs", "gym_id", "entry_point", "knobs", "kind", "default",
                  "range", "choices", "source", "target", "env", "threshold", "budget",
                  "pixels", "size", "xml", "bodies", "field", "cartpole", "cartpole/x"]
PRESET_KEYS = ["default", "cartpole", "policy", "n_envs", "n_steps", "batch_size",
               "learning_rate", "policy_kwargs", "net_arch", "activation_fn", "normalize",
               "gamma", "clip_range", "ent_coef", "match", "features_extractor"]

SCALARS = (st.none() | st.booleans() | st.integers(-(10**12), 10**12)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from(["ppo", "sac", "scratch", "finetune", "cartpole", "lin_0.1",
                              "CartPole-v1", "cartpole/long-heavy-pole", "-1", "inf"]))


def documents(keys: list[str]) -> st.SearchStrategy[Any]:
    """Arbitrary YAML data: scalars, lists and mappings nested a few levels deep."""
    key = st.sampled_from(keys) | st.text(max_size=8) | st.integers(-3, 3) | st.none()
    return st.recursive(
        SCALARS,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(key, inner, max_size=5),
        max_leaves=25)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys / indices) to a value inside ``doc``."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _parent(doc: Any, path: tuple) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


@st.composite
def mutated(draw: st.DrawFn, originals: list[Any], keys: list[str]) -> Any:
    """A real document with 1-4 mutations: a key dropped, a value replaced by another type,
    an unknown key inserted, or a list item removed."""
    doc = copy.deepcopy(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["drop", "retype", "insert"]))
        if not path:  # the root
            if op == "retype":
                doc = draw(documents(keys))
            elif op == "insert" and isinstance(doc, dict):
                doc[draw(st.text(min_size=1, max_size=8))] = draw(SCALARS)
            continue
        parent = _parent(doc, path)
        if op == "drop":
            del parent[path[-1]]
        elif op == "retype":
            parent[path[-1]] = draw(documents(keys))
        else:
            value = parent[path[-1]]
            if isinstance(value, dict):
                value[draw(st.sampled_from(keys) | st.text(min_size=1, max_size=8))] = draw(
                    documents(keys))
            elif isinstance(value, list):
                value.append(draw(documents(keys)))
            else:
                parent[path[-1]] = {draw(st.sampled_from(keys)): value}
    return doc


def _yaml_files(folder: Path) -> list[Any]:
    return [yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*.yaml"))]


EXPERIMENTS = _yaml_files(data_dir("experiments"))
CATALOGUES = _yaml_files(data_dir("envs")) + _yaml_files(data_dir("envs") / "examples")
PRESET_FILES = _yaml_files(data_dir("agents"))
PRESET_ENTRIES = [e for f in PRESET_FILES for e in f.values() if isinstance(e, dict)]


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def _write(folder: Path, text: str | bytes, suffix: str = ".yaml") -> Path:
    path = folder / f"doc-{uuid.uuid4().hex[:8]}{suffix}"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# raw file contents: any text (often not YAML at all) or bytes (often not UTF-8)
TEXTS = st.text(max_size=60) | st.binary(max_size=40)


# ---------------------------------------------------------------------- experiments


def _experiment_only_raises_its_error(tmp_path: Path, doc: Any) -> None:
    if isinstance(doc, dict):
        with contextlib.suppress(ExperimentError):
            resolve_experiment(doc)
    with contextlib.suppress(ExperimentError):
        load_experiment(_write(tmp_path, _dump(doc)))


@SETTINGS
@given(doc=documents(EXPERIMENT_KEYS))
def test_experiment_loader_arbitrary_documents(tmp_path, doc):
    _experiment_only_raises_its_error(tmp_path, doc)


@SETTINGS
@given(doc=mutated(EXPERIMENTS, EXPERIMENT_KEYS))
def test_experiment_loader_mutated_real_files(tmp_path, doc):
    _experiment_only_raises_its_error(tmp_path, doc)


@SETTINGS
@given(text=TEXTS)
def test_experiment_loader_arbitrary_text(tmp_path, text):
    with contextlib.suppress(ExperimentError):
        load_experiment(_write(tmp_path, text))


# ---------------------------------------------------------------------- env catalogue


@pytest.fixture
def catalogue_env(monkeypatch):
    """Restore the shipped catalogue after the test, whatever the generated files did."""
    yield monkeypatch
    monkeypatch.delenv(rte.catalogue.ENV_VAR, raising=False)
    rte.reload()


def _catalogue_only_raises_its_error(tmp_path: Path, monkeypatch, text: str | bytes) -> None:
    path = _write(tmp_path, text)
    monkeypatch.setenv(rte.catalogue.ENV_VAR, str(path))
    with contextlib.suppress(EnvError):
        rte.reload()
        for pair in rte.pairs():
            pair.target.describe()
    os.unlink(path)


@SETTINGS
@given(doc=documents(CATALOGUE_KEYS))
def test_catalogue_loader_arbitrary_documents(tmp_path, catalogue_env, doc):
    _catalogue_only_raises_its_error(tmp_path, catalogue_env, _dump(doc))


@SETTINGS
@given(doc=mutated(CATALOGUES, CATALOGUE_KEYS))
def test_catalogue_loader_mutated_real_files(tmp_path, catalogue_env, doc):
    # the shipped files declare the shipped families again: rename them so the mutation,
    # not the duplicate, is what the loader meets
    if isinstance(doc, dict) and isinstance(doc.get("families"), dict):
        doc["families"] = {f"{k}-x" if isinstance(k, str) else k: v
                           for k, v in doc["families"].items()}
    if isinstance(doc, dict) and isinstance(doc.get("pairs"), dict):
        doc["pairs"] = {f"{k}-x" if isinstance(k, str) else k: v for k, v in doc["pairs"].items()}
    _catalogue_only_raises_its_error(tmp_path, catalogue_env, _dump(doc))


@SETTINGS
@given(text=TEXTS)
def test_catalogue_loader_arbitrary_text(tmp_path, catalogue_env, text):
    _catalogue_only_raises_its_error(tmp_path, catalogue_env, text)


# ---------------------------------------------------------------------- presets


def _preset_only_raises_its_error(tmp_path: Path, doc: Any, algo: str) -> None:
    text = _dump(doc)
    with contextlib.suppress(PresetError):
        resolve_preset("cartpole", algo, _write(tmp_path, text))
    with contextlib.suppress(PresetError):
        load_presets(algo, _write(tmp_path, text))
    if isinstance(doc, dict):
        with contextlib.suppress(PresetError):
            resolve_preset("cartpole", algo, None, overrides=doc)


@SETTINGS
@given(doc=documents(PRESET_KEYS), algo=st.sampled_from(["ppo", "sac"]))
def test_preset_loader_arbitrary_documents(tmp_path, doc, algo):
    _preset_only_raises_its_error(tmp_path, doc, algo)


@SETTINGS
@given(doc=mutated(PRESET_ENTRIES + PRESET_FILES, PRESET_KEYS),
       algo=st.sampled_from(["ppo", "sac"]))
def test_preset_loader_mutated_real_files(tmp_path, doc, algo):
    _preset_only_raises_its_error(tmp_path, doc, algo)


@SETTINGS
@given(text=TEXTS, algo=st.sampled_from(["ppo", "sac"]))
def test_preset_loader_arbitrary_text(tmp_path, text, algo):
    for path in (_write(tmp_path, text), _write(tmp_path, text, ".yml")):
        for load in (lambda p: resolve_preset("cartpole", algo, p),
                     lambda p: load_presets(algo, p)):
            with contextlib.suppress(PresetError):
                load(path)
