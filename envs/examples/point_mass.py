"""An example custom env for rltransfer: a point mass pushed towards a goal on a plane.

Nothing here imports rltransfer: any Gymnasium env works. ``point_mass.yaml`` next to this
file declares it as the family ``point-mass`` with two knobs (``mass``, a constructor
keyword, and ``drag``, an attribute) and a pair. Use it with::

    RLTRANSFER_ENVS=envs/examples rltransfer list
    RLTRANSFER_ENVS=envs/examples rltransfer pretrain --env point-mass --knob mass=2.0
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class PointMassEnv(gym.Env):
    """Push a point mass (continuous 2-D force) to the origin; reward is minus the distance."""

    metadata = {"render_modes": []}

    def __init__(self, mass: float = 1.0, dt: float = 0.05, render_mode: str | None = None):
        self.mass = mass
        self.drag = 0.1
        self.dt = dt
        self.render_mode = render_mode
        high = np.array([2.0, 2.0, 5.0, 5.0], dtype=np.float32)
        self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        self._state = np.zeros(4)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._state = np.concatenate([self.np_random.uniform(-1.5, 1.5, 2), np.zeros(2)])
        return self._obs(), {}

    def step(self, action):
        force = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        pos, vel = self._state[:2], self._state[2:]
        vel = vel + self.dt * (force - self.drag * vel) / self.mass
        pos = np.clip(pos + self.dt * vel, -2.0, 2.0)
        self._state = np.concatenate([pos, np.clip(vel, -5.0, 5.0)])
        dist = float(np.linalg.norm(pos))
        return self._obs(), -dist, dist < 0.05, False, {"distance": dist}

    def _obs(self) -> np.ndarray:
        return self._state.astype(np.float32)
