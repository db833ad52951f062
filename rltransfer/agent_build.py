"""Build stable-baselines3 agents and their envs from presets.

- :func:`build_agent`: an SB3 model for an env from its preset, with an explicit seed; what
  rltransfer knows about it travels as ``model.rltransfer`` (:class:`AgentInfo`).
- :func:`make_env` / :func:`make_eval_env`: seeded VecEnvs of an env member, normalized as
  the preset says; the evaluation env holds the statistics fixed.

The verbs of :mod:`rltransfer.agent` build through here, and
:mod:`rltransfer.agent_checkpoint` saves and loads what was built.

Example:
    >>> model = build_agent("cartpole", algo="ppo", seed=0, overrides={"n_steps": 64})
    >>> type(model).__name__, model.n_steps, model.get_env().num_envs  # the preset's 8 envs
    ('TransferPPO', 64, 8)
    >>> agent_info(model).env_description()["knobs"]["length"]
    0.5
    >>> make_eval_env(model).num_envs
    1
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import (
    DummyVecEnv,
    VecEnv,
    VecNormalize,
    VecTransposeImage,
    is_vecenv_wrapped,
)

from rltransfer import envs as rl_envs
from rltransfer.encoders import random_shift
from rltransfer.methods import BuildSpec
from rltransfer.presets import NormalizeSpec, Preset, check_algo, resolve_preset
from rltransfer.sb3 import LEARNERS, Learner

ALGORITHMS: dict[str, type[Learner]] = LEARNERS
"""The learner per algorithm: stable-baselines3's PPO and SAC, one subclass each that runs
transfer methods (:mod:`rltransfer.sb3`); without a method they train exactly as SB3's."""
EVAL_SEED_OFFSET = 1_000_003


@dataclass
class AgentInfo:
    """What rltransfer knows about a model it built (kept as ``model.rltransfer``)."""

    env: str
    knobs: dict[str, Any]
    pixels: dict[str, Any] | None
    algo: str
    preset: Preset
    seed: int
    normalize: dict[str, Any] | None = None
    transfer: dict[str, Any] | None = None
    source: dict[str, Any] | None = None
    structure: dict[str, Any] | None = None
    """A method's change to the network's structure (``progressive``), which a checkpoint
    records so the model can be rebuilt."""
    extra: dict[str, Any] = field(default_factory=dict)

    def env_description(self) -> dict[str, Any]:
        return rl_envs.describe(self.env, self.knobs, **_pix(self.pixels))


def make_env(env: str, knobs: Mapping[str, Any] | None = None, *, n_envs: int = 1,
             seed: int = 0, pixels: Mapping[str, Any] | None = None,
             normalize: NormalizeSpec | Mapping[str, Any] | None = None, gamma: float = 0.99,
             training: bool = True) -> VecEnv:
    """A seeded VecEnv of ``n_envs`` copies of an env member, normalized when asked."""
    factory = rl_envs.env_fn(env, dict(knobs or {}), **_pix(pixels))
    venv = make_vec_env(factory, n_envs=n_envs, seed=seed, vec_env_cls=DummyVecEnv)
    if normalize:
        spec = _norm_spec(normalize)
        venv = VecNormalize(venv, training=training, norm_obs=spec.norm_obs,
                            norm_reward=spec.norm_reward and training, clip_obs=spec.clip_obs,
                            clip_reward=spec.clip_reward, gamma=gamma)
    return venv


def build_agent(env: str, *, algo: str = "ppo", seed: int, knobs: Mapping[str, Any] | None = None,
                pixels: Mapping[str, Any] | None = None,
                preset: str | os.PathLike | Mapping[str, Any] | Preset | None = None,
                overrides: Mapping[str, Any] | None = None,
                normalize: NormalizeSpec | Mapping[str, Any] | None | bool = True,
                tensorboard_log: str | os.PathLike | None = None, device: str = "cpu",
                verbose: int = 0, method: Any = None) -> Learner:
    """A freshly initialized SB3 model for ``env`` from its preset, seeded with ``seed``.

    ``normalize``: ``True`` follows the preset; ``None``/``False`` disables normalization;
    a spec overrides the preset's. ``method``: a transfer method whose ``configure`` hook may
    add learner keyword arguments (see :func:`transfer`).
    """
    algo = check_algo(algo)
    knobs = dict(knobs or {})
    desc = rl_envs.describe(env, knobs, **_pix(pixels))
    if isinstance(preset, Preset):
        p = preset if not overrides else resolve_preset(
            env, algo, preset.model_dump(exclude_unset=True), overrides=overrides)
    else:
        p = resolve_preset(env, algo, preset, family=desc.get("family"),
                           gym_id=desc.get("gym_id"), pixels=bool(pixels), overrides=overrides)
    norm = p.normalize_spec() if normalize is True else (normalize or None)
    venv = make_env(env, knobs, n_envs=p.n_envs, seed=seed, pixels=pixels, normalize=norm,
                    gamma=p.gamma)
    if algo == "sac" and not isinstance(venv.action_space, spaces.Box):
        raise ValueError(f"algo='sac' needs a continuous (Box) action space; env {env!r} has "
                         f"{venv.action_space}. Use algo='ppo' for this env.")
    build = BuildSpec(algo=algo, preset=p)
    if method is not None:
        method.configure(build)
    model = ALGORITHMS[algo](
        p.policy, venv, seed=seed, device=device, verbose=verbose,
        tensorboard_log=str(tensorboard_log) if tensorboard_log else None,
        policy_kwargs=p.policy_kwargs.to_kwargs(), **{**p.hyperparams(), **build.algo_kwargs},
    )
    if p.augment_shift:
        install_random_shift(model, p.augment_shift)
    norm_card = None
    if isinstance(venv, VecNormalize):
        assert norm is not None  # make_env normalizes only when given a spec
        spec = _norm_spec(norm)
        norm_card = {**spec.model_dump(), "gamma": p.gamma, "epsilon": venv.epsilon,
                     "update": True}
    model.rltransfer = AgentInfo(env=env, knobs=knobs, pixels=dict(pixels) if pixels else None,
                                 algo=algo, preset=p, seed=seed, normalize=norm_card)
    return model


def install_random_shift(model: BaseAlgorithm, pad: int) -> int:
    """DrQ-style augmentation: randomly shift the images every features extractor sees while
    the policy is in training mode (SB3's gradient updates), never in rollouts or evaluation.

    Installed as forward pre-hooks, so parameter names and checkpoints are unchanged.
    Returns the number of extractors hooked.
    """
    def hook(module: torch.nn.Module, args: tuple) -> tuple | None:
        if module.training and args and args[0].dim() == 4:
            return (random_shift(args[0], pad), *args[1:])
        return None

    seen = set()
    for name, module in model.policy.named_modules():
        if name.endswith("features_extractor") and id(module) not in seen:
            seen.add(id(module))
            module.register_forward_pre_hook(hook)
    return len(seen)


def make_eval_env(model: BaseAlgorithm) -> VecEnv:
    """An evaluation VecEnv built like the model's training env (normalization frozen)."""
    info = agent_info(model)
    venv = make_env(info.env, info.knobs, n_envs=1, seed=info.seed + EVAL_SEED_OFFSET,
                    pixels=info.pixels, normalize=info.normalize, gamma=info.preset.gamma,
                    training=False)
    train_env = model.get_env()
    if train_env is not None and is_vecenv_wrapped(train_env, VecTransposeImage):  # as SB3 does
        venv = VecTransposeImage(venv)
    return venv


def _norm_spec(normalize: NormalizeSpec | Mapping[str, Any]) -> NormalizeSpec:
    """A NormalizeSpec from a spec or a card's ``normalize`` entry (extra keys ignored)."""
    if isinstance(normalize, NormalizeSpec):
        return normalize
    return NormalizeSpec(**{k: v for k, v in dict(normalize).items()
                            if k in NormalizeSpec.model_fields})


def agent_info(model: BaseAlgorithm) -> AgentInfo:
    """What rltransfer knows about ``model`` (``ValueError`` if it did not build it)."""
    info = getattr(model, "rltransfer", None)
    if info is None:
        raise ValueError("this model was not built by rltransfer (build_agent/transfer); "
                         "its env and preset are unknown")
    return info


def _pix(pixels: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"pixels": dict(pixels)} if pixels else {}
