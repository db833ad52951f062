"""Bad input, one table: every case runs the real command line in-process and checks that it

- exits with the documented status: 2 for bad input (a flag, a value, a file), 1 for a run
  that started and failed (a custom env whose code misbehaves);
- prints exactly one error line (no traceback) naming the input, the value and what is
  accepted (the case's regex);
- writes or overwrites nothing: everything under the test's folder, a valid checkpoint and
  an existing output folder included (commands get ``--out`` pointing at them, often with
  ``--overwrite``), is byte-identical afterwards.

Categories: the command line (flags, values, paths), experiment files, env catalogue files,
preset files, checkpoints, custom envs. README.md, "Command line", documents the statuses.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import struct
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import rltransfer.envs as rte
from rltransfer.checkpoint import sha256_file
from rltransfer.cli import main

USER, RUN = 2, 1  # exit statuses: bad input, run failure


@dataclass
class Case:
    id: str
    category: str
    argv: list[str]
    """``{tmp}``, ``{ckpt}`` (a valid checkpoint) and ``{out}`` (an existing output folder)
    are filled in."""
    code: int
    match: str
    """Regex the single error line must match (``re.search``)."""
    setup: Callable[[Path], None] | None = None
    """Writes the bad file(s) into the test folder."""
    env: dict[str, str] = field(default_factory=dict)
    """Environment variables (``{tmp}`` filled in)."""


# ---------------------------------------------------------------------- building blocks

PRETRAIN = ["pretrain", "--env", "CartPole-v1", "--steps", "64", "--seed", "0", "--out",
            "{ckpt}", "--overwrite", "--no-progress", "--eval-episodes", "1"]
TRANSFER = ["transfer", "--source", "{ckpt}", "--env", "CartPole-v1", "--steps", "0", "--seed",
            "0", "--out", "{out}", "--overwrite", "--no-progress", "--eval-episodes", "1",
            "--on-mismatch", "reinit"]
RUN_EXP = ["run", "{tmp}/exp.yaml", "--out", "{out}", "--workers", "0", "--no-progress"]


def _replace(argv: list[str], flag: str, value: str | None) -> list[str]:
    """``argv`` with ``flag``'s value replaced (or the flag dropped when ``value`` is None)."""
    out = list(argv)
    i = out.index(flag)
    if value is None:
        del out[i:i + 2]
    else:
        out[i + 1] = value
    return out


def _write(rel: str, text: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return setup


def _write_bytes(rel: str, data: bytes) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        (tmp / rel).write_bytes(data)
    return setup


EXP = """\
    pair: cartpole/long-heavy-pole
    algo: ppo
    methods: [scratch, finetune]
    seeds: 1
    steps: 1000
    eval: {every: 500, episodes: 1}
"""


def _exp(extra: str = "", drop: str | None = None) -> Callable[[Path], None]:
    """An experiment file: the valid one above, with ``drop`` removed and ``extra`` added."""
    lines = [ln for ln in textwrap.dedent(EXP).splitlines()
             if drop is None or not ln.startswith(f"{drop}:")]
    return _write("exp.yaml", "\n".join(lines) + "\n" + textwrap.dedent(extra))


def _catalogue(text: str) -> Callable[[Path], None]:
    return _write("cat/bad.yaml", text)


CATALOGUE_ENV = {"RLTRANSFER_ENVS": "{tmp}/cat/bad.yaml"}

# -- checkpoints: edits of a copy of a valid one (``{ckpt}``), the card's hash forged where
#    the point is what the parser does with a file whose sha256 "matches"


def _card(tmp: Path) -> dict:
    return json.loads((tmp / "ckpt" / "card.json").read_text())


def _save_card(tmp: Path, card: dict) -> None:
    (tmp / "ckpt" / "card.json").write_text(json.dumps(card))


def _forge_hash(tmp: Path, name: str = "model.safetensors") -> None:
    card = _card(tmp)
    digest = sha256_file(tmp / "ckpt" / name)
    card["files"][name] = digest
    if name == "model.safetensors":
        card["sha256"] = digest
    _save_card(tmp, card)


def _edit_card(fn: Callable[[dict], object]) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        card = _card(tmp)
        fn(card)
        _save_card(tmp, card)
    return setup


def _truncate(forge: bool) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        f = tmp / "ckpt" / "model.safetensors"
        f.write_bytes(f.read_bytes()[:-100])
        if forge:
            _forge_hash(tmp)
    return setup


def _absurd_header(tmp: Path) -> None:
    f = tmp / "ckpt" / "model.safetensors"
    f.write_bytes(struct.pack("<Q", 2**60) + b'{"w": {}}')
    _forge_hash(tmp)


def _header_offsets_beyond_file(tmp: Path) -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [1 << 40],
                               "data_offsets": [0, 4 << 40]}}).encode()
    f = tmp / "ckpt" / "model.safetensors"
    f.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    _forge_hash(tmp)


def _header_unknown_dtype(tmp: Path) -> None:
    header = json.dumps({"w": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}).encode()
    f = tmp / "ckpt" / "model.safetensors"
    f.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    _forge_hash(tmp)


def _weights_as(dtype: torch.dtype) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        from safetensors.torch import load_file

        f = tmp / "ckpt" / "model.safetensors"
        save_file({k: v.to(dtype) for k, v in load_file(str(f)).items()}, str(f))
        _forge_hash(tmp)
    return setup


def _symlink_out(tmp: Path) -> None:
    outside = tmp / "elsewhere.safetensors"
    shutil.copy(tmp / "ckpt" / "model.safetensors", outside)
    (tmp / "ckpt" / "model.safetensors").unlink()
    (tmp / "ckpt" / "model.safetensors").symlink_to(outside)


def _pickle_in_disguise(tmp: Path) -> None:
    from helpers import Payload

    torch.save({"x": Payload(tmp / "PWNED")}, tmp / "ckpt" / "model.safetensors")
    _forge_hash(tmp)


def _card_obs_space(shape: int) -> Callable[[Path], None]:
    def edit(card: dict) -> None:
        card["observation_space"] = {"type": "Box", "shape": [shape], "dtype": "float32",
                                     "low": -1.0, "high": 1.0}
    return _edit_card(edit)




# -- custom envs: one module of small envs, each wrong in one way

ENVS_PY = """\
    import gymnasium as gym
    import numpy as np


    class Good(gym.Env):
        def __init__(self):
            self.observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
            self.action_space = gym.spaces.Discrete(2)
            self.t = 0

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return np.zeros(3, np.float32), {}

        def step(self, action):
            self.t += 1
            return self.obs(), self.reward(), False, self.t >= 100, {}

        def obs(self):
            return np.zeros(3, np.float32)

        def reward(self):
            return 1.0


    class ResetRaises(Good):
        def reset(self, *, seed=None, options=None):
            raise RuntimeError("the simulator is not running")


    class StepRaises(Good):
        def step(self, action):
            raise KeyError("joint_7")


    class WrongShape(Good):
        def obs(self):
            return np.zeros(4, np.float32)


    class OutOfBounds(Good):
        def obs(self):
            return np.array([0.0, 7.5, 0.0], np.float32)


    class NanObs(Good):
        def obs(self):
            return np.array([0.0, 0.0, np.nan], np.float32)


    class NanReward(Good):
        def reward(self):
            return float("nan")


    class NanRewardLater(Good):
        def reward(self):
            return float("nan") if self.t >= 50 else 1.0


    class OldApi(Good):
        def reset(self, *, seed=None, options=None):
            return np.zeros(3, np.float32)


    class NotAnEnv:
        pass
"""


def _custom(cls: str, module: str = "my_envs.py", text: str = ENVS_PY) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        _write(f"cat/{module}", text)(tmp)
        _catalogue(f"""\
            families:
              my-env:
                entry_point: {module}:{cls}
        """)(tmp)
    return setup


CUSTOM_PRETRAIN = _replace(PRETRAIN, "--env", "my-env")


# ---------------------------------------------------------------------- the table

CASES = [
    # ---- the command line: flags, values, paths
    Case("unknown-verb", "cli", ["frobnicate"], USER,
         r"argument VERB: invalid choice: 'frobnicate' \(choose from .*pretrain"),
    Case("unknown-flag", "cli", [*PRETRAIN, "--stepz", "5"], USER,
         r"unrecognized arguments: --stepz 5"),
    Case("steps-not-a-number", "cli", _replace(PRETRAIN, "--steps", "ten"), USER,
         r"argument --steps: invalid value 'ten': expected a whole number >= 0"),
    Case("steps-negative", "cli", _replace(TRANSFER, "--steps", "-5"), USER,
         r"argument --steps: invalid value '-5': expected a whole number >= 0"),
    Case("seed-negative", "cli", _replace(PRETRAIN, "--seed", "-1"), USER,
         r"argument --seed: invalid value '-1': expected a whole number >= 0"),
    Case("seed-missing", "cli", _replace(PRETRAIN, "--seed", None), USER,
         r"the following arguments are required: --seed"),
    Case("eval-episodes-zero", "cli", [*PRETRAIN, "--eval-episodes", "0"], USER,
         r"argument --eval-episodes: invalid value '0': expected a whole number >= 1"),
    Case("eval-every-zero", "cli", [*TRANSFER, "--eval-every", "0"], USER,
         r"argument --eval-every: invalid value '0': expected a whole number >= 1"),
    Case("algo-unknown", "cli", [*PRETRAIN, "--algo", "dqn"], USER,
         r"argument --algo: invalid choice: 'dqn' \(choose from .*ppo.*sac"),
    Case("method-unknown", "cli", [*TRANSFER, "--method", "finetuen"], USER,
         r"argument --method: invalid choice: 'finetuen' \(choose from .*finetune"),
    Case("device-unknown", "cli", [*PRETRAIN, "--device", "banana"], USER,
         r"argument --device: invalid value 'banana': expected a torch device such as cpu"),
    Case("lr-scale-negative", "cli", [*TRANSFER, "--method", "frozen", "--lr-scale", "-0.5"],
         USER, r"argument --lr-scale: invalid value '-0.5': expected a finite number > 0"),
    Case("knob-without-value", "cli",
         [*_replace(PRETRAIN, "--env", "cartpole"), "--knob", "length"], USER,
         r"--knob: 'length' is not of the form name=value"),
    Case("knob-unknown", "cli",
         [*_replace(PRETRAIN, "--env", "cartpole"), "--knob", "lenght=1.0"], USER,
         r"unknown knob 'lenght' for family 'cartpole'; did you mean 'length'.*Known knobs"),
    Case("knob-out-of-range", "cli",
         [*_replace(PRETRAIN, "--env", "cartpole"), "--knob", "length=99"], USER,
         r"knob 'length': value 99 is out of range \[0\.2, 1\.5\]"),
    Case("env-unknown", "cli", _replace(PRETRAIN, "--env", "cartpol"), USER,
         r"unknown env family or Gymnasium id 'cartpol'; did you mean 'cartpole'"),
    Case("pixels-not-json", "cli", [*PRETRAIN, "--pixels", "{size: 64"], USER,
         r"--pixels '\{size: 64' is not valid JSON"),
    Case("pixels-bad-size", "cli", [*PRETRAIN, "--pixels", '{"size": -3}'], USER,
         r"pixels\.height: value -3 is not a positive integer"),
    Case("method-option-bad-value", "cli",
         [*TRANSFER, "--method", "kickstart", "--method-options", '{"schedule": "cosine"}'],
         USER, r"method 'kickstart': option schedule: value 'cosine': Input should be "
               r"'constant', 'linear' or 'performance'"),
    Case("role-unknown", "cli", [*TRANSFER, "--method", "partial", "--roles", "actr"], USER,
         r"'actr'.*did you mean 'actor'"),
    Case("out-exists", "cli", [a for a in PRETRAIN if a != "--overwrite"], USER,
         r"--out '.*/ckpt' exists; pass --overwrite to replace it"),
    Case("out-under-a-file", "cli", _replace(PRETRAIN, "--out", "{tmp}/notes.txt/ckpt"), USER,
         r"--out '.*notes\.txt/ckpt': '.*notes\.txt' is a file, not a folder",
         setup=_write("notes.txt", "my notes\n")),
    Case("transfer-out-exists", "cli", [a for a in TRANSFER if a != "--overwrite"], USER,
         r"--out '.*/out' exists; pass --overwrite"),
    Case("source-missing", "cli", _replace(TRANSFER, "--source", "{tmp}/nope"), USER,
         r"checkpoint '.*/nope' is not a folder \(expected card\.json and model\.safetensors"),
    Case("workers-negative", "cli", _replace(RUN_EXP, "--workers", "-1"), USER,
         r"argument --workers: invalid value '-1': expected a whole number >= 0",
         setup=_exp()),
    Case("experiment-unknown", "cli", ["run", "cartpole_dmeo", "--out", "{out}"], USER,
         r"experiment 'cartpole_dmeo' is neither a file nor a shipped experiment \(did you "
         r"mean 'cartpole_demo'\?\)"),
    Case("run-seeds-zero", "cli", [*RUN_EXP, "--seeds", "0"], USER,
         r"--seeds 0: must be a number of seeds >= 1", setup=_exp()),
    Case("report-not-an-experiment", "cli", ["report", "{out}"], USER,
         r"experiment\.json not found: is .*out an experiment output folder"),
    Case("import-not-a-zip", "cli",
         ["import-sb3", "{tmp}/agent.zip", "--env", "CartPole-v1", "--out", "{tmp}/new"], USER,
         r"agent\.zip: not a zip file", setup=_write("agent.zip", "not a zip\n")),

    # ---- experiment files
    Case("exp-unknown-field", "experiment", RUN_EXP, USER,
         r"exp\.yaml: sedes: unknown field \(did you mean 'seeds'\?\); accepted fields: "
         r"adapter, algo",
         setup=_exp("sedes: 3\n")),
    Case("exp-method-unknown", "experiment", RUN_EXP, USER,
         r"exp\.yaml: methods\[1\]: 'finetuen': .*did you mean 'finetune'",
         setup=_exp("methods: [scratch, finetuen]\n", drop="methods")),
    Case("exp-seeds-repeat", "experiment", RUN_EXP, USER,
         r"exp\.yaml: seeds: value \[1, 1\]: .*seeds must be distinct",
         setup=_exp("seeds: [1, 1]\n", drop="seeds")),
    Case("exp-steps-type", "experiment", RUN_EXP, USER,
         r"exp\.yaml: steps: value 'many': Input should be a valid integer",
         setup=_exp("steps: many\n", drop="steps")),
    Case("exp-eval-every-above-steps", "experiment", RUN_EXP, USER,
         r"exp\.yaml: eval\.every: 5000 is more than steps=1000",
         setup=_exp("eval: {every: 5000}\n", drop="eval")),
    Case("exp-pair-unknown", "experiment", RUN_EXP, USER,
         r"exp\.yaml: pair: 'cartpole/long-pol': unknown pair .*did you mean",
         setup=_exp("pair: cartpole/long-pol\n", drop="pair")),
    Case("exp-not-yaml", "experiment", RUN_EXP, USER,
         r"exp\.yaml: not valid YAML: .*line 2",
         setup=_write("exp.yaml", "pair: cartpole/long-heavy-pole\nmethods: [scratch\n")),
    Case("exp-not-a-mapping", "experiment", RUN_EXP, USER,
         r"exp\.yaml: expected a mapping of fields \(pair, algo, methods.*got list",
         setup=_write("exp.yaml", "- pair: cartpole/long-heavy-pole\n")),
    Case("exp-not-utf8", "experiment", RUN_EXP, USER,
         r"exp\.yaml: not a UTF-8 text file .*an experiment file is YAML text",
         setup=_write_bytes("exp.yaml", b"pair: \xff\xfe cartpole\n")),
    Case("exp-knob-out-of-range", "experiment", RUN_EXP, USER,
         r"exp\.yaml: target: knob 'length': value 3 is out of range \[0\.2, 1\.5\]",
         setup=_exp("source: {env: cartpole}\ntarget: {env: cartpole, knobs: {length: 3.0}}\n",
                    drop="pair")),
    Case("exp-override-unknown", "experiment", RUN_EXP, USER,
         r"exp\.yaml: overrides: .*n_env: unknown field \(did you mean 'n_envs'\?\)",
         setup=_exp("overrides: {n_env: 2}\n")),
    Case("exp-source-unknown", "experiment", RUN_EXP, USER,
         r"exp\.yaml: methods\[1\]: source: 'ssl' is not a source; choose from \['agent'\]",
         setup=_exp("methods: [scratch, {method: frozen, source: ssl}]\n", drop="methods")),

    # ---- env catalogue files (RLTRANSFER_ENVS)
    Case("cat-path-missing", "catalogue", ["list"], USER,
         r"RLTRANSFER_ENVS: path '.*/nowhere' is neither a file nor a folder",
         env={"RLTRANSFER_ENVS": "{tmp}/nowhere"}),
    Case("cat-not-yaml", "catalogue", ["list"], USER,
         r"bad\.yaml: not valid YAML: .*line", setup=_catalogue("families: {a: [\n"),
         env=CATALOGUE_ENV),
    Case("cat-top-level-key", "catalogue", ["list"], USER,
         r"unknown top-level key 'familes' in .*bad\.yaml; did you mean 'families'",
         setup=_catalogue("familes: {}\n"), env=CATALOGUE_ENV),
    Case("cat-range-reversed", "catalogue", ["list"], USER,
         r"bad\.yaml: family 'pole': .*range low 2\.0 is above high 1\.0",
         setup=_catalogue("""\
             families:
               pole:
                 gym_id: CartPole-v1
                 knobs: {length: {kind: attr, default: 1.5, range: [2.0, 1.0]}}
         """), env=CATALOGUE_ENV),
    Case("cat-knob-kind", "catalogue", ["list"], USER,
         r"bad\.yaml: family 'pole': knobs\.length\.kind: value 'magic': Input should be "
         r"'ctor', 'attr'",
         setup=_catalogue("""\
             families:
               pole:
                 gym_id: CartPole-v1
                 knobs: {length: {kind: magic, default: 0.5}}
         """), env=CATALOGUE_ENV),
    Case("cat-pair-unknown-family", "catalogue", ["list"], USER,
         r"bad\.yaml: pair 'pole/long'\.target: unknown env family or Gymnasium id 'pole'",
         setup=_catalogue("""\
             pairs:
               pole/long:
                 source: {env: cartpole}
                 target: {env: pole}
                 threshold: 475
                 budget: 1000
         """), env=CATALOGUE_ENV),
    Case("cat-budget-negative", "catalogue", ["list"], USER,
         r"bad\.yaml: pair 'pole/long'\.budget: value -5 is not a positive integer",
         setup=_catalogue("""\
             pairs:
               pole/long: {source: cartpole, target: cartpole, threshold: 475, budget: -5}
         """), env=CATALOGUE_ENV),
    Case("cat-gym-id-and-entry-point", "catalogue", ["list"], USER,
         r"family 'pole': give exactly one of 'gym_id' or 'entry_point'",
         setup=_catalogue("""\
             families:
               pole: {gym_id: CartPole-v1, entry_point: my_envs.py:Good}
         """), env=CATALOGUE_ENV),
    Case("cat-name-uppercase", "catalogue", ["list"], USER,
         r"family 'Pole'.*must be lowercase without spaces",
         setup=_catalogue("families:\n  Pole: {gym_id: CartPole-v1}\n"), env=CATALOGUE_ENV),
    Case("cat-duplicate-family", "catalogue", ["list"], USER,
         r"bad\.yaml: family 'cartpole' is already declared in .*classic\.yaml",
         setup=_catalogue("families:\n  cartpole: {gym_id: CartPole-v1}\n"), env=CATALOGUE_ENV),
    Case("cat-gym-id-unknown", "catalogue", _replace(PRETRAIN, "--env", "pole"), USER,
         r"family 'pole': gym_id 'NoSuchEnv-v9': .*NoSuchEnv.* must be a Gymnasium id registered",
         setup=_catalogue("families:\n  pole: {gym_id: NoSuchEnv-v9}\n"), env=CATALOGUE_ENV),

    # ---- preset files (--preset FILE, RLTRANSFER_AGENTS)
    Case("preset-unknown-key", "preset", [*PRETRAIN, "--preset", "{tmp}/p.yaml"], USER,
         r"p\.yaml: learning_rat: unknown field \(did you mean 'learning_rate'\?\)",
         setup=_write("p.yaml", "learning_rat: 0.001\n")),
    Case("preset-wrong-type", "preset", [*PRETRAIN, "--preset", "{tmp}/p.yaml"], USER,
         r"p\.yaml: n_steps: value 'many': Input should be a valid integer",
         setup=_write("p.yaml", "n_steps: many\n")),
    Case("preset-bad-schedule", "preset", [*PRETRAIN, "--preset", "{tmp}/p.yaml"], USER,
         r"p\.yaml: learning_rate: value 'cos_0\.1': .*use a number or 'lin_<number>'",
         setup=_write("p.yaml", "learning_rate: cos_0.1\n")),
    Case("preset-out-of-range", "preset", [*PRETRAIN, "--preset", "{tmp}/p.yaml"], USER,
         r"p\.yaml: gamma: value 2: Input should be less than or equal to 1",
         setup=_write("p.yaml", "gamma: 2\n")),
    Case("preset-not-a-mapping", "preset", [*PRETRAIN, "--preset", "{tmp}/p.yaml"], USER,
         r"p\.yaml: expected a mapping of hyperparameters, got \[",
         setup=_write("p.yaml", "- n_steps: 64\n")),
    Case("preset-not-yaml", "preset", [*PRETRAIN, "--preset", "{tmp}/p.yaml"], USER,
         r"p\.yaml: not valid YAML: ", setup=_write("p.yaml", "n_steps: [64\n")),
    Case("preset-name-unknown", "preset", [*PRETRAIN, "--preset", "cartpol"], USER,
         r"preset='cartpol' is not a ppo preset or a YAML file; closest: \['cartpole'"),
    Case("preset-folder-bad-activation", "preset", PRETRAIN, USER,
         r"ppo\.yaml: default: policy_kwargs\.activation_fn: value 'sigmoid': Input should be",
         setup=_write("agents/ppo.yaml",
                      "default: {policy_kwargs: {activation_fn: sigmoid}}\n"),
         env={"RLTRANSFER_AGENTS": "{tmp}/agents"}),

    # ---- checkpoints (--source, inspect)
    Case("ckpt-truncated", "checkpoint", TRANSFER, USER,
         r"sha256 of model\.safetensors is [0-9a-f]{64}, the card says [0-9a-f]{64}; the file "
         r"was modified or corrupted", setup=_truncate(forge=False)),
    Case("ckpt-truncated-forged-hash", "checkpoint", ["inspect", "{ckpt}"], USER,
         r"model\.safetensors is not a valid safetensors file: tensor '.*' .*claims bytes "
         r"\[\d+, \d+\) of a \d+-byte data section", setup=_truncate(forge=True)),
    Case("ckpt-card-missing", "checkpoint", TRANSFER, USER,
         r"checkpoint '.*/ckpt' has no card\.json",
         setup=lambda tmp: (tmp / "ckpt" / "card.json").unlink()),
    Case("ckpt-card-not-json", "checkpoint", ["inspect", "{ckpt}"], USER,
         r"card\.json: not valid JSON \(.*\); the card is the JSON object",
         setup=_write("ckpt/card.json", "{'algo': 'ppo'}\n")),
    Case("ckpt-card-not-an-object", "checkpoint", TRANSFER, USER,
         r"card\.json: a card is a JSON object .*not an array",
         setup=_write("ckpt/card.json", '["ppo"]\n')),
    Case("ckpt-card-file-outside", "checkpoint", TRANSFER, USER,
         r"card\.json: 'files' names '\.\./elsewhere'; a checkpoint holds only "
         r"model\.safetensors and extras\.safetensors",
         setup=_edit_card(lambda c: c["files"].update({"../elsewhere": "00"}))),
    Case("ckpt-spaces-contradict-weights", "checkpoint", TRANSFER, USER,
         r"the weights contradict card\.json: mlp_extractor\.policy_net\.0\.weight has shape "
         r"\(16, 4\) .* needs \(16, 5\)", setup=_card_obs_space(5)),
    Case("ckpt-space-garbage", "checkpoint", TRANSFER, USER,
         r"card\.json does not describe a policy: space .* is not a valid space",
         setup=_edit_card(lambda c: c.update(
             observation_space={"type": "Box", "shape": "four", "dtype": "float32"}))),
    Case("ckpt-header-absurd-size", "checkpoint", TRANSFER, USER,
         r"model\.safetensors is not a valid safetensors file: its header claims "
         r"1152921504606846976 bytes, but the file has \d+", setup=_absurd_header),
    Case("ckpt-header-offsets-beyond-file", "checkpoint", TRANSFER, USER,
         r"tensor 'w' \(F32, shape \[1099511627776\]\) claims bytes \[0, 4398046511104\)",
         setup=_header_offsets_beyond_file),
    Case("ckpt-header-unknown-dtype", "checkpoint", ["inspect", "{ckpt}"], USER,
         r"tensor 'w' has dtype 'F128'; accepted: BOOL, U8", setup=_header_unknown_dtype),
    Case("ckpt-symlink-outside", "checkpoint", TRANSFER, USER,
         r"model\.safetensors is a symbolic link to '.*elsewhere\.safetensors', outside the "
         r"checkpoint folder", setup=_symlink_out),
    Case("ckpt-wrong-dtype", "checkpoint", TRANSFER, USER,
         r"the weights contradict card\.json: .* has dtype float64 in model\.safetensors; the "
         r"policy needs float32", setup=_weights_as(torch.float64)),
    Case("ckpt-pickle-in-disguise", "checkpoint", TRANSFER, USER,
         r"model\.safetensors is not a valid safetensors file: its header claims \d+ bytes.*"
         r"never unpickles", setup=_pickle_in_disguise),
    Case("ckpt-extras-missing", "checkpoint", TRANSFER, USER,
         r"checkpoint '.*/ckpt': extras\.safetensors is missing", setup=_edit_card(
             lambda c: c["files"].update({"extras.safetensors": "0" * 64}))),

    # ---- custom envs (an entry point in a catalogue file)
    Case("env-module-import-fails", "custom env", CUSTOM_PRETRAIN, USER,
         r"entry point file '.*broken\.py' failed to import: ModuleNotFoundError\(\"No module "
         r"named 'simulator_sdk'\"\)",
         setup=_custom("Env", "broken.py", "import simulator_sdk\n"), env=CATALOGUE_ENV),
    Case("env-class-missing", "custom env", CUSTOM_PRETRAIN, USER,
         r"entry point '.*my_envs\.py:Missing': my_envs\.py has no 'Missing'",
         setup=_custom("Missing"), env=CATALOGUE_ENV),
    Case("env-not-an-env", "custom env", CUSTOM_PRETRAIN, USER,
         r"entry point '.*my_envs\.py:NotAnEnv' is the class NotAnEnv, which is not a "
         r"gymnasium\.Env subclass", setup=_custom("NotAnEnv"), env=CATALOGUE_ENV),
    Case("env-reset-raises", "custom env", CUSTOM_PRETRAIN, RUN,
         r"env 'my-env' \(.*my_envs\.py:ResetRaises\): reset\(\) raised RuntimeError: the "
         r"simulator is not running", setup=_custom("ResetRaises"), env=CATALOGUE_ENV),
    Case("env-step-raises", "custom env", CUSTOM_PRETRAIN, RUN,
         r"env 'my-env' .*: step 1 of episode 1 raised KeyError: 'joint_7'",
         setup=_custom("StepRaises"), env=CATALOGUE_ENV),
    Case("env-obs-wrong-shape", "custom env", CUSTOM_PRETRAIN, RUN,
         r"env 'my-env' .*: step 1 of episode 1 returned an observation of shape \(4,\); "
         r"observation_space .* has shape \(3,\)", setup=_custom("WrongShape"),
         env=CATALOGUE_ENV),
    Case("env-obs-out-of-bounds", "custom env", CUSTOM_PRETRAIN, RUN,
         r"step 1 of episode 1 returned an observation outside observation_space: element "
         r"\[1\] = 7\.5 is not in \[-1\.0, 1\.0\]", setup=_custom("OutOfBounds"),
         env=CATALOGUE_ENV),
    Case("env-obs-nan", "custom env", CUSTOM_PRETRAIN, RUN,
         r"step 1 of episode 1 returned an observation with element \[2\] = nan; "
         r"observations must be finite", setup=_custom("NanObs"), env=CATALOGUE_ENV),
    Case("env-reward-nan", "custom env", CUSTOM_PRETRAIN, RUN,
         r"env 'my-env' .*: step 1 of episode 1 returned reward nan; a reward must be a finite "
         r"number", setup=_custom("NanReward"), env=CATALOGUE_ENV),
    Case("env-reward-nan-during-training", "custom env", CUSTOM_PRETRAIN, RUN,
         r"env 'my-env' .*: step 50 of episode 1 returned reward nan",
         setup=_custom("NanRewardLater"), env=CATALOGUE_ENV),
    Case("env-transfer-into-broken-env", "custom env", _replace(TRANSFER, "--env", "my-env"),
         RUN, r"env 'my-env' .*: step 1 of episode 1 returned an observation outside "
              r"observation_space", setup=_custom("OutOfBounds"), env=CATALOGUE_ENV),
    Case("env-old-gym-api", "custom env", CUSTOM_PRETRAIN, RUN,
         r"reset\(\) returned array\(.*\); reset must return \(observation, info\)",
         setup=_custom("OldApi"), env=CATALOGUE_ENV),
]

assert len({c.id for c in CASES}) == len(CASES), "case ids must be distinct"


# ---------------------------------------------------------------------- the test


def _snapshot(root: Path) -> dict[str, object]:
    """Every path under ``root``: file bytes, link targets, folders."""
    out: dict[str, object] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = ("link", str(p.readlink()))
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = p.read_bytes()
    return out


def _fill(text: str, tmp: Path) -> str:
    return (text.replace("{ckpt}", str(tmp / "ckpt")).replace("{out}", str(tmp / "out"))
            .replace("{tmp}", str(tmp)))


@pytest.fixture
def workspace(tmp_path, ppo_source, monkeypatch):
    """A folder holding a valid checkpoint (``ckpt``) and an existing output folder (``out``),
    the current directory, with no bytecode written and the shipped catalogue restored after."""
    shutil.copytree(ppo_source, tmp_path / "ckpt")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "curve.csv").write_text("step,mean_return\n0,9.5\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # importing a user's env module
    monkeypatch.setenv("RLTRANSFER_CACHE", str(tmp_path / "cache"))
    yield tmp_path
    monkeypatch.delenv("RLTRANSFER_ENVS", raising=False)
    rte.reload()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, workspace: Path, monkeypatch, capsys):
    tmp = workspace
    if case.setup is not None:
        case.setup(tmp)
    for name, value in case.env.items():
        monkeypatch.setenv(name, _fill(value, tmp))
    if "RLTRANSFER_ENVS" in case.env:  # read the catalogue again; a broken one raises later
        with contextlib.suppress(rte.EnvError):
            rte.reload()
    before = _snapshot(tmp)
    capsys.readouterr()

    try:
        code = main([_fill(a, tmp) for a in case.argv])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code

    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, f"expected one error line, got:\n{err}"
    assert re.match(r"rltransfer( [\w-]+)?: error: ", lines[0]), lines[0]
    assert re.search(case.match, lines[0]), f"{case.match!r} not in:\n{lines[0]}"
    assert code == case.code, f"exit status {code}, expected {case.code}: {lines[0]}"
    after = _snapshot(tmp)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"written or changed: {changed}"
    assert not (tmp / "PWNED").exists()


def test_the_table_covers_every_category_and_forty_inputs():
    counts: dict[str, int] = {}
    for c in CASES:
        counts[c.category] = counts.get(c.category, 0) + 1
    assert set(counts) == {"cli", "experiment", "catalogue", "preset", "checkpoint",
                           "custom env"}
    assert len(CASES) >= 40 and min(counts.values()) >= 5, counts


def test_the_commands_work_without_their_one_bad_input(workspace, monkeypatch, capsys):
    """Each case changes one thing in a command that works: the unchanged commands succeed
    (so every case fails for its own bad input, not for another)."""
    from rltransfer.experiment.config import load_experiment

    tmp = workspace
    assert main([_fill(a, tmp) for a in PRETRAIN]) == 0
    assert main([_fill(a, tmp) for a in TRANSFER]) == 0
    _exp()(tmp)
    assert load_experiment(tmp / "exp.yaml").steps == 1000
    _custom("Good")(tmp)
    monkeypatch.setenv("RLTRANSFER_ENVS", _fill(CATALOGUE_ENV["RLTRANSFER_ENVS"], tmp))
    rte.reload()
    assert main([_fill(a, tmp) for a in _replace(CUSTOM_PRETRAIN, "--out", "{tmp}/mine")]) == 0
    assert capsys.readouterr().err == ""


def test_verbose_adds_the_traceback_and_keeps_the_status(workspace, capsys):
    code = main(["-v", "pretrain", "--env", "cartpole", "--knob", "lenght=1", "--steps", "1",
                 "--seed", "0", "--out", str(workspace / "new")])
    err = capsys.readouterr().err
    assert code == USER
    assert "Traceback" in err and "EnvError" in err
    assert err.strip().splitlines()[-1].startswith("rltransfer pretrain: error: unknown knob")


def test_an_unexpected_error_is_a_run_failure_on_one_line(monkeypatch, capsys):
    import rltransfer.cli as cli

    def broken() -> str:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "format_methods", broken)
    assert main(["list", "methods"]) == RUN
    err = capsys.readouterr().err
    assert err.strip() == ("rltransfer list: error: ZeroDivisionError: division by zero "
                           "(run with -v for the traceback)")
