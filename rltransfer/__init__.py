"""rltransfer: transfer learning for reinforcement learning.

Pretrain policies, value functions and vision encoders on source Gymnasium envs, start PPO
and SAC agents (stable-baselines3) on related target tasks from them, and measure with
confidence intervals over seeds how much sooner they learn than agents started from scratch.

Example (budgets of one PPO update, to show the calls; real ones are 10^4-10^6 steps):
    >>> import rltransfer as rlt
    >>> src = rlt.pretrain("cartpole", algo="ppo", steps=256, seed=0, out="src",
    ...                    eval_episodes=2, progress_bar=False)
    >>> model = rlt.transfer(src, "cartpole", knobs={"length": 1.0}, method="finetune",
    ...                      seed=1)
    >>> model.learn(256).num_timesteps
    256

Public names are imported lazily, so ``import rltransfer`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "pretrain": "rltransfer.agent:pretrain",
    "transfer": "rltransfer.agent:transfer",
    "build_agent": "rltransfer.agent:build_agent",
    "learn_with_eval": "rltransfer.agent:learn_with_eval",
    "train_and_save": "rltransfer.agent:train_and_save",
    "save_agent": "rltransfer.agent:save_agent",
    "load_agent": "rltransfer.agent:load_agent",
    "import_sb3": "rltransfer.agent:import_sb3",
    "extract_encoder": "rltransfer.agent:extract_encoder",
    "load_checkpoint": "rltransfer.checkpoint:load_checkpoint",
    "save_checkpoint": "rltransfer.checkpoint:save_checkpoint",
    "Checkpoint": "rltransfer.checkpoint:Checkpoint",
    "CheckpointError": "rltransfer.checkpoint:CheckpointError",
    "get_method": "rltransfer.methods:get_method",
    "TransferError": "rltransfer.methods:TransferError",
    "DivergedError": "rltransfer.training:DivergedError",
    "DiskFullError": "rltransfer._io:DiskFullError",
    "make": "rltransfer.envs:make",
    "register_family": "rltransfer.envs:register_family",
    "get_pair": "rltransfer.envs:get_pair",
    "run": "rltransfer.experiment:run",
    "rank_sources": "rltransfer.rank:rank_sources",
    "RankTable": "rltransfer.rank:RankTable",
    "rank_experiment": "rltransfer.rank:rank_experiment",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'rltransfer' has no attribute {name!r}")
    module, attr = target.split(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
