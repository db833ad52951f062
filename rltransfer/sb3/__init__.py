"""What stable-baselines3's names and internals mean, per algorithm, and the learners.

One module per algorithm (:mod:`~rltransfer.sb3.ppo`, :mod:`~rltransfer.sb3.sac`) says which
parameter plays which part, which optimizers train them, where the actor and the entropy
coefficient are, and defines the learner (``TransferPPO``, ``TransferSAC``: one subclass of
SB3's class each) whose ``train()`` adds the loss terms a transfer method registers. Methods
ask these modules; they do not spell SB3's names themselves.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from stable_baselines3 import PPO, SAC

from rltransfer.sb3 import ppo, sac
from rltransfer.sb3.common import AddLoss, LossTerm, MethodRuntime, ParamInfo, divergence

__all__ = ["LEARNERS", "AddLoss", "Learner", "LossTerm", "MethodRuntime", "ParamInfo",
           "algo_name", "divergence", "internals"]

Learner = ppo.TransferPPO | sac.TransferSAC
"""The type of a model rltransfer builds: stable-baselines3's PPO or SAC, one subclass each."""
LEARNERS: dict[str, type[Learner]] = {"ppo": ppo.TransferPPO, "sac": sac.TransferSAC}
"""The learner class of each algorithm name."""
_MODULES: dict[str, ModuleType] = {"ppo": ppo, "sac": sac}


def algo_name(model: Any) -> str:
    """``"ppo"`` or ``"sac"`` for an SB3 model (any subclass of PPO or SAC)."""
    if isinstance(model, SAC):
        return "sac"
    if isinstance(model, PPO):
        return "ppo"
    raise ValueError(f"{type(model).__name__} is not a PPO or SAC model; rltransfer supports "
                     "['ppo', 'sac']")


def internals(algo: str | Any) -> ModuleType:
    """The module that knows ``algo``'s internals (an algorithm name or a model)."""
    name = algo if isinstance(algo, str) else algo_name(algo)
    try:
        return _MODULES[name.lower()]
    except KeyError:
        raise ValueError(f"no internals for algo={name!r}; supported: {list(_MODULES)}") from None
