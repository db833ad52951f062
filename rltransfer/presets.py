"""Agent presets: algorithm hyperparameters and network per env, read from ``agents/*.yaml``.

A preset is data (YAML, never evaluated) validated on load by typed pydantic models: an
unknown key or a wrong type is an error that names the file, the entry, the field, the value
and what is accepted. Schedules are written as data too: ``lin_0.001`` is a linear decay from
0.001 to 0 over the call to ``learn`` (as in RL Baselines3 Zoo).

Example:
    >>> p = get_preset("cartpole", "ppo")
    >>> p.n_envs, p.hyperparams()["n_steps"]
    (8, 32)
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rltransfer._data import data_dir
from rltransfer._validation import format_validation_error
from rltransfer._validation import read_yaml as _read_yaml

ALGOS = ("ppo", "sac")
ACTIVATIONS = {
    "tanh": "Tanh",
    "relu": "ReLU",
    "elu": "ELU",
    "leaky_relu": "LeakyReLU",
    "gelu": "GELU",
    "silu": "SiLU",
}


class PresetError(ValueError):
    """A preset is unknown or invalid."""


class Linear:
    """Linear schedule from ``initial`` to 0 over one call to ``learn`` (picklable)."""

    def __init__(self, initial: float) -> None:
        self.initial = float(initial)

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.initial

    def __repr__(self) -> str:
        return f"lin_{self.initial}"


Schedule = float | str


def _check_schedule(value: Any) -> Any:
    if isinstance(value, str):
        if not value.startswith("lin_"):
            raise ValueError(f"schedule {value!r} not understood; use a number or 'lin_<number>'")
        try:
            float(value[4:])
        except ValueError:
            raise ValueError(f"schedule {value!r}: {value[4:]!r} is not a number") from None
    return value


def resolve_schedule(value: Schedule) -> float | Linear:
    """``0.001`` stays a float; ``'lin_0.001'`` becomes a :class:`Linear` schedule."""
    if isinstance(value, str):
        return Linear(float(value[4:]))
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class PolicySpec(_Strict):
    """Network of the policy, as JSON-able data (stored in checkpoint cards)."""

    net_arch: list[int] | dict[str, list[int]] | None = None
    """Hidden layer sizes: ``[64, 64]`` shared shape, or ``{pi: [...], vf: [...]}`` (PPO),
    ``{pi: [...], qf: [...]}`` (SAC)."""
    activation_fn: Literal["tanh", "relu", "elu", "leaky_relu", "gelu", "silu"] | None = None
    """Activation between hidden layers (SB3 default: tanh for PPO, relu for SAC)."""
    ortho_init: bool | None = None
    log_std_init: float | None = None
    features_extractor: str | None = None
    """Encoder name from :mod:`rltransfer.encoders` (``nature_cnn``, ``impala_cnn``, ...)."""
    features_extractor_kwargs: dict[str, Any] | None = None
    share_features_extractor: bool | None = None
    normalize_images: bool | None = None
    n_critics: int | None = Field(default=None, ge=1)

    def to_kwargs(self) -> dict[str, Any]:
        """SB3 ``policy_kwargs``: names resolved to classes, unset fields left to SB3."""
        # torch (and the encoders, which need it) only here: the experiment config validates
        # presets through this module and stays torch-free (torch costs 2-3 s to import)
        import torch.nn as nn

        out: dict[str, Any] = {}
        for key, value in self.model_dump(exclude_none=True).items():
            if key == "activation_fn":
                out[key] = getattr(nn, ACTIVATIONS[value])
            elif key not in ("features_extractor", "features_extractor_kwargs"):
                out[key] = value
        if self.features_extractor:
            from rltransfer.encoders import policy_kwargs

            out.update(policy_kwargs(self.features_extractor, self.features_extractor_kwargs))
        elif self.features_extractor_kwargs:
            out["features_extractor_kwargs"] = self.features_extractor_kwargs
        return out


class NormalizeSpec(_Strict):
    """Observation/reward normalization (SB3 ``VecNormalize``), as RL Zoo uses for MuJoCo."""

    norm_obs: bool = True
    norm_reward: bool = True
    clip_obs: float = 10.0
    clip_reward: float = 10.0


class _Common(_Strict):
    source: str = ""
    """Where the values come from (for example an RL Zoo entry)."""
    match: list[str] = Field(default_factory=list)
    """Gymnasium ids this entry also serves."""
    policy: Literal["MlpPolicy", "CnnPolicy", "MultiInputPolicy"] = "MlpPolicy"
    n_envs: int = Field(default=1, ge=1)
    normalize: bool | NormalizeSpec = False
    policy_kwargs: PolicySpec = Field(default_factory=PolicySpec)
    learning_rate: Schedule = 3e-4
    gamma: float = Field(default=0.99, gt=0, le=1)
    use_sde: bool = False
    sde_sample_freq: int = -1
    augment_shift: int | None = Field(default=None, ge=1)
    """Pixel policies: DrQ-style random shift (pad in pixels) of the observations the
    encoder sees during gradient updates; rollouts and evaluation see them unshifted."""

    _check_lr = field_validator("learning_rate")(_check_schedule)

    def normalize_spec(self) -> NormalizeSpec | None:
        """The normalization settings, or None when the preset does not normalize."""
        if self.normalize is True:
            return NormalizeSpec()
        return self.normalize or None

    def hyperparams(self) -> dict[str, Any]:
        """Keyword arguments for the SB3 algorithm constructor (schedules resolved)."""
        skip = {"source", "match", "policy", "n_envs", "normalize", "policy_kwargs", "algo",
                "augment_shift"}
        out = {}
        for key, value in self.model_dump().items():
            if key in skip:
                continue
            out[key] = resolve_schedule(value) if key in _SCHEDULES else value
        return out


_SCHEDULES = {"learning_rate", "clip_range", "clip_range_vf"}


class PPOPreset(_Common):
    """PPO hyperparameters (see ``stable_baselines3.PPO``)."""

    algo: Literal["ppo"] = "ppo"
    n_steps: int = Field(default=2048, ge=1)
    batch_size: int = Field(default=64, ge=1)
    n_epochs: int = Field(default=10, ge=1)
    gae_lambda: float = Field(default=0.95, ge=0, le=1)
    clip_range: Schedule = 0.2
    clip_range_vf: Schedule | None = None
    normalize_advantage: bool = True
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None

    _check_clip = field_validator("clip_range", "clip_range_vf")(_check_schedule)


class SACPreset(_Common):
    """SAC hyperparameters (see ``stable_baselines3.SAC``)."""

    algo: Literal["sac"] = "sac"
    buffer_size: int = Field(default=1_000_000, ge=1)
    learning_starts: int = Field(default=100, ge=0)
    batch_size: int = Field(default=256, ge=1)
    tau: float = Field(default=0.005, gt=0, le=1)
    train_freq: int = Field(default=1, ge=1)
    gradient_steps: int = 1
    ent_coef: float | str = "auto"
    target_update_interval: int = Field(default=1, ge=1)
    target_entropy: float | str = "auto"
    use_sde_at_warmup: bool = False

    @field_validator("ent_coef", "target_entropy")
    @classmethod
    def _auto(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.startswith("auto"):
            raise ValueError(f"{value!r} not understood; use a number, 'auto' or 'auto_<init>'")
        return value


Preset = PPOPreset | SACPreset
_MODELS: dict[str, type[PPOPreset] | type[SACPreset]] = {"ppo": PPOPreset, "sac": SACPreset}


def agents_dirs() -> list[Path]:
    """Folders searched for ``<algo>.yaml``: ``$RLTRANSFER_AGENTS`` entries, then ``agents/``."""
    extra = [Path(p) for p in os.environ.get("RLTRANSFER_AGENTS", "").split(os.pathsep) if p]
    return [*extra, data_dir("agents")]


def check_algo(algo: str) -> str:
    """Normalize an algorithm name; error listing the supported ones."""
    name = str(algo).lower()
    if name not in ALGOS:
        raise PresetError(f"algo={algo!r} is not supported; choose one of {list(ALGOS)}")
    return name


def parse_preset(data: Mapping[str, Any], algo: str, *, where: str = "preset") -> Preset:
    """Validate one preset entry (a mapping) for ``algo``; errors name ``where`` and the field."""
    algo = check_algo(algo)
    if not isinstance(data, Mapping):
        raise PresetError(f"{where}: expected a mapping of hyperparameters, got {data!r}")
    try:
        return _MODELS[algo].model_validate(dict(data))
    except ValidationError as exc:
        raise PresetError(format_validation_error(exc, where, "configuration",
                                                  _MODELS[algo])) from None


def read_yaml(path: Path) -> Any:
    """The data of a preset YAML file; an unreadable file or broken YAML is a
    :class:`PresetError` naming the file (``yaml.safe_load``: data only)."""
    return _read_yaml(path, PresetError, "a preset file")


def load_presets(algo: str, path: str | os.PathLike | None = None) -> dict[str, Preset]:
    """All presets for ``algo`` from ``path`` or the first ``<algo>.yaml`` on the search path."""
    algo = check_algo(algo)
    if path is None:
        candidates = [d / f"{algo}.yaml" for d in agents_dirs()]
        found = [c for c in candidates if c.is_file()]
        if not found:
            raise PresetError(f"no {algo}.yaml in {[str(c.parent) for c in candidates]}")
        path = found[0]
    path = Path(path)
    raw = read_yaml(path) or {}
    if not isinstance(raw, Mapping):
        raise PresetError(f"{path}: expected a mapping of preset names to hyperparameters")
    return {str(name): parse_preset(entry, algo, where=f"{path}: {name}")
            for name, entry in raw.items()}


def get_preset(env: str, algo: str, *, family: str | None = None,
               gym_id: str | None = None, pixels: bool = False) -> Preset:
    """The preset for ``env`` (a family name or Gymnasium id), falling back to ``default``.

    The lookup tries, in order: ``env`` itself, the family name, an entry whose ``match``
    lists the Gymnasium id, then ``default``. For a pixel view (``pixels=True``) it tries
    ``<env>-pixels`` and ``<family>-pixels`` first and falls back to ``pixels``.

    Example:
        >>> p = get_preset("CartPole-v1", "ppo")  # the cartpole entry matches the Gymnasium id
        >>> p.n_envs, p.n_steps, p.source
        (8, 32, 'rl-baselines3-zoo ppo.yml CartPole-v1 (tuned)')
    """
    presets = load_presets(algo)
    if pixels:
        for key in (f"{env}-pixels", f"{family}-pixels", "pixels"):
            if key in presets:
                return presets[key]
    for name in (env, family, env.lower() if env else None):
        if name and name in presets:
            return presets[name]
    for preset in presets.values():
        if env in preset.match or (gym_id and gym_id in preset.match):
            return preset
    if "default" in presets:
        return presets["default"]
    close = difflib.get_close_matches(env, list(presets), n=3)
    raise PresetError(f"no {algo} preset for env {env!r} and no 'default'; closest: {close}")


def resolve_preset(env: str, algo: str, preset: str | os.PathLike | Mapping[str, Any] | None,
                   *, family: str | None = None, gym_id: str | None = None,
                   pixels: bool = False, overrides: Mapping[str, Any] | None = None) -> Preset:
    """A preset from a name, a YAML file, a mapping, or None (the env's own), plus overrides.

    ``overrides`` (for example ``{"n_envs": 1}`` or ``{"policy_kwargs": {"net_arch": [32]}}``)
    are merged on top and validated with the rest.

    Example:
        >>> p = resolve_preset("cartpole", "ppo", None, overrides={"n_envs": 1})
        >>> p.n_envs, p.n_steps
        (1, 32)
        >>> resolve_preset("cartpole", "ppo", None, overrides={"n_step": 64})
        Traceback (most recent call last):
        ...
        rltransfer.presets.PresetError: ...n_step...
    """
    algo = check_algo(algo)
    if preset is None:
        base = get_preset(env, algo, family=family, gym_id=gym_id, pixels=pixels)
    elif isinstance(preset, Mapping):
        base = parse_preset(preset, algo, where="preset")
    elif Path(preset).suffix in (".yaml", ".yml") and Path(preset).is_file():
        base = parse_preset(read_yaml(Path(preset)), algo, where=str(preset))
    else:
        presets = load_presets(algo)
        if str(preset) not in presets:
            close = difflib.get_close_matches(str(preset), list(presets), n=3)
            raise PresetError(f"preset={preset!r} is not a {algo} preset or a YAML file; "
                              f"closest: {close}; known: {sorted(presets)}")
        base = presets[str(preset)]
    if not overrides:
        return base
    merged = base.model_dump(exclude_unset=True)
    for key, value in overrides.items():
        if key == "policy_kwargs" and isinstance(value, Mapping):
            merged["policy_kwargs"] = {**merged.get("policy_kwargs", {}), **value}
        else:
            merged[key] = value
    return parse_preset(merged, algo, where="preset with overrides")
