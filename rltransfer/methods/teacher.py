"""A state teacher for a pixel student: the privileged-teacher recipe of robot learning.

The target agent sees pixels; the source policy saw the state. The training env hands the
student its frames and keeps, beside them, the state each frame was drawn from
(:class:`StateView`, reading the pixel view's ``state_observation()``); the teacher is
fed that state, never the pixels (:class:`StateTeacher`):

- ``jsrl`` (its guide acts in the env) asks the teacher for actions on the current states;
- ``kickstart`` (PPO) distils on the minibatch's states, which the rollout buffer stores
  beside the frames (:class:`RecordStates` writes them,
  :class:`~rltransfer.sb3.ppo.GuidedRolloutBuffer` keeps them).

Evaluation uses its own env, without any of this: the student alone, from pixels.
:func:`rltransfer.transfer` installs it when a method with a teacher goes from a state
source to a pixel view of the same env.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from rltransfer.checkpoint import Checkpoint
from rltransfer.methods.base import TransferError
from rltransfer.sb3 import algo_name
from rltransfer.sb3.ppo import GuidedRolloutBuffer

__all__ = ["RecordStates", "StateTeacher", "StateView", "install_state_teacher"]


class StateView(VecEnvWrapper):
    """The training env, unchanged for the agent, that also keeps the state behind each
    observation: ``states`` (of the observations just returned) and ``acting_states`` (of
    the observations the agent is acting on in the current step)."""

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv)
        self.states: np.ndarray | None = None
        self.acting_states: np.ndarray | None = None

    def _query(self) -> np.ndarray:
        try:
            return np.stack(self.venv.env_method("state_observation")).astype(np.float32)
        except AttributeError:
            raise TransferError("a state teacher needs a pixel view built by rltransfer "
                                "(its envs have no state_observation())") from None

    def reset(self) -> Any:
        obs = self.venv.reset()
        self.states = self._query()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self.acting_states = self.states
        self.venv.step_async(actions)

    def step_wait(self) -> Any:
        out = self.venv.step_wait()
        self.states = self._query()
        return out


class StateTeacher:
    """The source policy (on the state env), fed the states a :class:`StateView` keeps.

    ``predict`` is SB3's, on the current states (the observation it is given only fixes
    the batch size); :meth:`batch_obs` gives the states of PPO's current minibatch. States
    are normalized as the source was trained (its VecNormalize statistics, if any).
    """

    def __init__(self, policy: Any, view: StateView, source: Checkpoint,
                 buffer: Any = None) -> None:
        self.policy = policy
        self.view = view
        self.buffer = buffer
        norm = source.card.get("normalize") or {}
        mean = source.extras.get("vecnormalize.obs_rms.mean")
        self._norm = None
        if norm.get("norm_obs") and mean is not None:
            var = source.extras["vecnormalize.obs_rms.var"].numpy()
            self._norm = (mean.numpy(), np.sqrt(var + float(norm.get("epsilon", 1e-8))),
                          float(norm.get("clip_obs", 10.0)))

    def teacher_obs(self, states: np.ndarray) -> np.ndarray:
        """Raw states as the source policy saw them."""
        if self._norm is None:
            return np.asarray(states, dtype=np.float32)
        mean, std, clip = self._norm
        return np.clip((states - mean) / std, -clip, clip).astype(np.float32)

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[np.ndarray, Any]:
        states = self.view.states
        if states is None or len(states) != len(obs):
            raise TransferError("state teacher: the env's states do not match the "
                                "observations it is asked about (was the env reset?)")
        return self.policy.predict(self.teacher_obs(states), state, episode_start,
                                   deterministic)

    def batch_obs(self, n: int) -> torch.Tensor:
        """The teacher's observations of the minibatch being trained on (``n`` samples)."""
        states = getattr(self.buffer, "batch_teacher_obs", None)
        if states is None or len(states) != n:
            raise TransferError("state teacher: the rollout buffer holds no states for this "
                                "minibatch (it must be a GuidedRolloutBuffer fed by "
                                "RecordStates)")
        return torch.as_tensor(self.teacher_obs(states), device=self.policy.device)


class RecordStates(BaseCallback):
    """PPO: writes the states of the step about to be added into the rollout buffer.

    SB3 calls ``on_step`` after the env step and before it adds the step (whose observation
    is the one acted on), so those are the view's ``acting_states``.
    """

    def __init__(self, view: StateView) -> None:
        super().__init__()
        self.view = view

    def _on_step(self) -> bool:
        buffer = getattr(self.model, "rollout_buffer", None)
        if isinstance(buffer, GuidedRolloutBuffer) and self.view.acting_states is not None:
            buffer.record_teacher_obs(self.view.acting_states)
        return True


def install_state_teacher(model: Any, policy: Any, source: Checkpoint,
                          distils: bool) -> tuple[StateTeacher, list[BaseCallback]]:
    """Wrap ``model``'s training env in a :class:`StateView`; the teacher on it, and the
    callbacks that feed a distilling method (``distils``) the minibatch's states."""
    algo = algo_name(model)
    buffer = getattr(model, "rollout_buffer", None)
    if distils and (algo != "ppo" or not isinstance(buffer, GuidedRolloutBuffer)):
        raise TransferError(
            "a state teacher distils on PPO only (its rollout buffer keeps the states beside "
            f"the frames; a {algo} replay buffer does not): use algo ppo, or jsrl")
    view = StateView(model.env)
    model.env = view
    model._last_obs = None  # learn() resets through the view
    teacher = StateTeacher(policy, view, source, buffer)
    return teacher, ([RecordStates(view)] if distils else [])
