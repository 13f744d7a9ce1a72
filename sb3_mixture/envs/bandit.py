"""A one-step continuous bandit with two reward modes, the better one narrowly so."""

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

MODES = ((-1.0, 1.0), (1.0, 1.5))
"""(location, height) of each reward bump"""
MODE_WIDTH = 0.2


def bimodal_reward(action: "float | np.ndarray") -> "float | np.ndarray":
    """``exp(-((a + 1) / 0.2)^2 / 2) + 1.5 * exp(-((a - 1) / 0.2)^2 / 2)``."""
    action = np.asarray(action, dtype=np.float64)
    total = sum(height * np.exp(-0.5 * ((action - location) / MODE_WIDTH) ** 2) for location, height in MODES)
    return float(total) if total.ndim == 0 else total


class BimodalBanditEnv(gym.Env):
    """
    One state, one step: the action ``a in [-2, 2]`` earns :func:`bimodal_reward`, a bump of height 1 at
    ``a = -1`` and one of height 1.5 at ``a = +1`` (both of width 0.2), nearly zero in between.

    Every episode is a single step that ends with ``terminated=True``. The observation is always ``[0.0]``.
    ``info["mode"]`` is -1 or +1 when the action is within two widths (0.4) of that bump, else 0.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self):
        super().__init__()
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = spaces.Box(-2.0, 2.0, shape=(1,), dtype=np.float32)

    def reset(self, *, seed: "int | None" = None, options: "dict[str, Any] | None" = None):
        super().reset(seed=seed)
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action: np.ndarray):
        value = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -2.0, 2.0))
        mode = next((int(location) for location, _ in MODES if abs(value - location) < 2 * MODE_WIDTH), 0)
        return np.zeros(1, dtype=np.float32), bimodal_reward(value), True, False, {"mode": mode}
