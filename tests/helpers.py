"""Small shared settings for fast tests (tiny networks, tiny rollouts) and a tiny pixel env."""

import gymnasium as gym
import numpy as np
from gymnasium import spaces

PPO_TINY = {"n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 2,
            "policy_kwargs": {"net_arch": {"pi": [16, 16], "vf": [16, 16]}}}
SAC_TINY = {"learning_starts": 64, "batch_size": 32, "buffer_size": 2000,
            "policy_kwargs": {"net_arch": [16, 16]}}


class MovingSquare(gym.Env):
    """A 32x32 RGB frame with a 6x6 square the 4 actions move; 20-step episodes."""

    metadata = {"render_modes": []}
    observation_space = spaces.Box(0, 255, (32, 32, 3), np.uint8)
    action_space = spaces.Discrete(4)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.integers(0, 26, size=2)
        self.t = 0
        return self._frame(), {}

    def step(self, action):
        moves = np.array([[-2, 0], [2, 0], [0, -2], [0, 2]])
        self.pos = np.clip(self.pos + moves[int(action)], 0, 26)
        self.t += 1
        reward = -float(np.abs(self.pos - 13).sum()) / 26.0
        return self._frame(), reward, False, self.t >= 20, {}

    def _frame(self):
        frame = np.zeros((32, 32, 3), np.uint8)
        frame[..., 2] = 40
        r, c = self.pos
        frame[r : r + 6, c : c + 6] = (255, 200, 0)
        return frame


class Payload:
    """Unpickling this creates a marker file: proof that a pickle payload ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))
