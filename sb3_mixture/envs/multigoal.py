"""The multi-goal point-mass task of soft Q-learning (Haarnoja et al., 2017, section 6.1)."""

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

GOALS = np.array([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0], [0.0, -5.0]], dtype=np.float32)


class MultiGoalEnv(gym.Env):
    """
    A 2-D point that moves by its action; four goals at (5, 0), (-5, 0), (0, 5) and (0, -5).

    - Observation: the position, in ``[-7, 7]^2`` (positions are clipped to it).
    - Action: the velocity, in ``[-1, 1]^2`` (clipped); ``s' = s + a``.
    - Start: ``Normal(0, init_std^2 I)`` around the origin.
    - Reward: ``-(action_cost * |a|^2 + distance_cost * min_g |s' - g|^2)``, plus ``goal_bonus`` on the step
      that reaches a goal.
    - Episode end: ``terminated`` when ``s'`` is within ``goal_radius`` of a goal, ``truncated`` after
      ``max_steps`` steps.
    - ``info``: ``"goal"`` (index into :data:`GOALS` of the goal reached on this step, -1 if none),
      ``"is_success"`` (a goal was reached), ``"position"`` and ``"distance_to_goal"`` (to the nearest goal).
    - ``removed_goals`` (or :meth:`set_removed_goals` on a live env): indices into :data:`GOALS` that no longer count:
      they neither end the episode nor pay, and the distance cost is to the nearest remaining goal.

    Defaults are issue 4's: ``action_cost=1``, ``distance_cost=0.1``, ``goal_bonus=1``, 30 steps. The soft Q-learning
    paper's code (rail-berkeley/softlearning, ``MultiGoalEnv``) uses ``action_cost=30``, ``distance_cost=1``,
    ``goal_bonus=10``, ``init_std=0.1``, radius 1, the same box and squared distance; pass those to reproduce it.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        action_cost: float = 1.0,
        distance_cost: float = 0.1,
        goal_bonus: float = 1.0,
        goal_radius: float = 1.0,
        init_std: float = 0.1,
        max_steps: int = 30,
        bound: float = 7.0,
        removed_goals: "tuple[int, ...]" = (),
    ):
        super().__init__()
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        self.action_cost = float(action_cost)
        self.distance_cost = float(distance_cost)
        self.goal_bonus = float(goal_bonus)
        self.goal_radius = float(goal_radius)
        self.init_std = float(init_std)
        self.max_steps = int(max_steps)
        self.bound = float(bound)
        self.set_removed_goals(removed_goals)
        self.observation_space = spaces.Box(-self.bound, self.bound, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._position = np.zeros(2, dtype=np.float32)
        self._steps = 0

    def set_removed_goals(self, removed_goals: "tuple[int, ...] | list[int]") -> None:
        """Take these goals (indices into :data:`GOALS`) out of the task; at least one goal must remain."""
        removed = sorted({int(index) for index in removed_goals})
        if any(not 0 <= index < len(GOALS) for index in removed) or len(removed) >= len(GOALS):
            raise ValueError(
                f"removed_goals must be distinct indices in [0, {len(GOALS)}) leaving at least one goal, got {removed_goals!r}"
            )
        self.removed_goals = tuple(removed)
        self.goal_indices = np.array([index for index in range(len(GOALS)) if index not in removed])
        self.goals = GOALS[self.goal_indices].copy()

    def _goal_distances(self, position: np.ndarray) -> np.ndarray:
        return np.linalg.norm(self.goals - position.astype(np.float64), axis=-1)

    def _info(self, goal: int) -> dict[str, Any]:
        return {
            "goal": goal,
            "is_success": goal >= 0,
            "position": self._position.copy(),
            "distance_to_goal": float(self._goal_distances(self._position).min()),
        }

    def reset(self, *, seed: "int | None" = None, options: "dict[str, Any] | None" = None):
        super().reset(seed=seed)
        start = self.init_std * self.np_random.standard_normal(2)
        self._position = np.clip(start, -self.bound, self.bound).astype(np.float32)
        self._steps = 0
        return self._position.copy(), self._info(-1)

    def reward(self, position: np.ndarray, action: np.ndarray) -> float:
        """The step reward without the goal bonus, at the new position."""
        squared_distance = float(self._goal_distances(np.asarray(position)).min() ** 2)
        return -(self.action_cost * float(np.sum(np.square(action, dtype=np.float64))) + self.distance_cost * squared_distance)

    def step(self, action: np.ndarray):
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        position = np.clip(self._position.astype(np.float64) + action, -self.bound, self.bound)
        self._position = position.astype(np.float32)
        self._steps += 1
        distances = self._goal_distances(self._position)
        nearest = int(distances.argmin())
        terminated = bool(distances[nearest] < self.goal_radius)
        reward = self.reward(self._position, action) + (self.goal_bonus if terminated else 0.0)
        truncated = not terminated and self._steps >= self.max_steps
        goal = int(self.goal_indices[nearest]) if terminated else -1
        return self._position.copy(), reward, terminated, truncated, self._info(goal)
