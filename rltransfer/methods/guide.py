"""A guide in the training env: the teacher policy acts instead of the agent when told to.

:class:`GuideWrapper` is a ``VecEnvWrapper`` (it overrides ``reset``, ``step_async`` and
``step_wait``) around the *training* env only. Before each step it asks its schedule which
envs the guide drives; there it replaces the agent's action by the teacher's and marks the
step's info with ``rlt_guided`` and the executed ``rlt_action``. Every such step is an
ordinary environment step of ``learn()``: it counts toward the budget and is on the curve.

PPO keeps guided steps out of its policy loss (``GuidedRolloutBuffer``, marked by
:class:`MarkGuidedSteps`); SAC stores the executed action in its replay buffer.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from rltransfer.sb3.ppo import GuidedRolloutBuffer

__all__ = ["GuideSchedule", "GuideWrapper", "MarkGuidedSteps", "episode_limit"]


class GuideSchedule(Protocol):
    """Says where the guide acts: ``guided(episode_steps)`` is a bool per env, asked before
    every step; ``new_episode(env_index)`` is called when an env starts an episode."""

    def guided(self, episode_steps: np.ndarray) -> np.ndarray: ...

    def new_episode(self, index: int) -> None: ...


class GuideWrapper(VecEnvWrapper):
    """The teacher acts in the envs its schedule names; the agent in the others.

    Args:
        venv: the training env.
        teacher: a policy with SB3's ``predict`` (the frozen source policy).
        schedule: a :class:`GuideSchedule`.
        deterministic: whether the teacher acts deterministically (default: it samples,
            with its own exploration noise).
    """

    def __init__(self, venv: VecEnv, teacher: Any, schedule: GuideSchedule, *,
                 deterministic: bool = False) -> None:
        super().__init__(venv)
        self.teacher = teacher
        self.schedule = schedule
        self.deterministic = deterministic
        self.episode_steps = np.zeros(self.num_envs, dtype=np.int64)
        self.guided_now = np.zeros(self.num_envs, dtype=bool)
        self.guided_steps = 0
        """Environment steps the guide took, summed over envs."""
        self._obs: Any = None
        self._executed: np.ndarray | None = None

    def reset(self) -> Any:
        obs = self.venv.reset()
        self._obs = obs
        self.episode_steps[:] = 0
        for i in range(self.num_envs):
            self.schedule.new_episode(i)
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self.guided_now = np.asarray(self.schedule.guided(self.episode_steps.copy()), dtype=bool)
        if self.guided_now.any():
            guide, _ = self.teacher.predict(self._obs, deterministic=self.deterministic)
            actions = np.array(actions, copy=True)
            guide = np.asarray(guide).reshape(actions.shape)
            actions[self.guided_now] = guide[self.guided_now]
        self._executed = actions
        self.venv.step_async(actions)

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        for i in np.flatnonzero(self.guided_now):
            assert self._executed is not None  # step_async set it
            infos[i]["rlt_guided"] = True
            infos[i]["rlt_action"] = np.array(self._executed[i], copy=True)
        self.guided_steps += int(self.guided_now.sum())
        self.episode_steps += 1
        for i in np.flatnonzero(dones):
            self.episode_steps[i] = 0
            self.schedule.new_episode(int(i))
        self._obs = obs
        return obs, rewards, dones, infos


class MarkGuidedSteps(BaseCallback):
    """PPO: flags the rollout-buffer slot of every guided step (``GuidedRolloutBuffer``).

    SB3 calls ``on_step`` after the env step and before it adds the step to the buffer, so
    the slot is ``buffer.pos``.
    """

    def _on_step(self) -> bool:
        buffer = getattr(self.model, "rollout_buffer", None)
        if isinstance(buffer, GuidedRolloutBuffer) and buffer.pos < buffer.buffer_size:
            infos = self.locals.get("infos") or []
            buffer.guided[buffer.pos] = [bool(i.get("rlt_guided", False)) for i in infos]
        return True


def episode_limit(venv: VecEnv) -> int | None:
    """The env's step limit (``spec.max_episode_steps``), if it declares one."""
    try:
        spec = venv.get_attr("spec", indices=[0])[0]
    except (AttributeError, IndexError):
        return None
    return getattr(spec, "max_episode_steps", None)
