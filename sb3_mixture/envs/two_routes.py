"""A 2-D navigation task with two equally good routes around an obstacle, one of which can be blocked."""

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

ROUTES = ("left", "right")

# Rectangles are (x_min, y_min, x_max, y_max)
Rectangle = tuple[float, float, float, float]


def segment_hits_rectangle(start: np.ndarray, end: np.ndarray, rectangle: Rectangle, margin: float = 1e-9) -> bool:
    """
    Whether the segment ``start -> end`` passes through the open interior of ``rectangle``.

    Touching an edge or running along it does not count, so that a shortest path may go around a corner
    exactly. Slab method: the parameter interval where the segment is inside the closed rectangle, then its
    midpoint tested against the interior (shrunk by ``margin`` so that rounding does not create hits).
    """
    t_low, t_high = 0.0, 1.0
    for axis in range(2):
        low, high = rectangle[axis], rectangle[axis + 2]
        origin, delta = float(start[axis]), float(end[axis] - start[axis])
        if abs(delta) < 1e-12:
            if not low < origin < high:
                return False
            continue
        t0, t1 = (low - origin) / delta, (high - origin) / delta
        if t0 > t1:
            t0, t1 = t1, t0
        t_low, t_high = max(t_low, t0), min(t_high, t1)
        if t_low > t_high:
            return False
    middle = start + 0.5 * (t_low + t_high) * (end - start)
    return all(rectangle[axis] + margin < middle[axis] < rectangle[axis + 2] - margin for axis in range(2))


class TwoRoutesEnv(gym.Env):
    """
    A point in a 2-D box goes from the bottom to a goal at the top, around a central obstacle: left or right.

    Geometry (defaults): the box is ``[-5, 5]^2``; the start is ``(0, -4)`` plus ``Normal(0, start_noise^2)`` noise
    per coordinate; the goal is the disk of radius ``goal_radius`` around ``(0, 4)``; the obstacle is the rectangle
    ``[-3, 3] x [-1, 1]``, which blocks the straight line and leaves a gap of width 2 on each side, between it and
    the box. The task is mirror symmetric in ``x``: the left and the right route are equally long and earn the same
    return.

    - Observation: the position, in the box.
    - Action: a velocity in ``[-1, 1]^2`` (clipped); the move is ``step_size * action`` (0.75). A move that would enter a wall
      (the obstacle or the blocking wall) is cancelled: the point stays where it was. A move out of the box is
      clipped to the box.
    - Reward: ``progress_scale * (d(s) - d(s')) - step_cost``, plus ``goal_bonus`` on the step that reaches the goal,
      where ``d`` is the shortest-path distance to the goal centre around the walls of the current task (computed
      on the visibility graph of the wall corners). This is potential-based shaping, so it changes no ranking of
      routes, and since ``d`` goes around the walls it has no local optimum in front of them: the straight-line
      distance would make the spot just below the obstacle a trap. With ``shaping_sees_block=False`` the distance
      ignores the blocking wall (the reward then does not tell the agent about the block: the dead end in front of
      it becomes a local optimum that only exploration can get out of). Defaults: ``progress_scale=3``,
      ``step_cost=0.3``, ``goal_bonus=30``; a route takes about 14 steps and earns about 55 (``3 * 10.5`` of progress
      from the start, minus the step costs, plus the bonus), random actions earn about -7, an episode that ends in
      front of a blocking wall about -20. (With a third of these rewards SB3's SAC with its automatic temperature
      needed about 9000 steps instead of 4000 to learn the task: the entropy bonus, which starts at temperature 1,
      outweighs small rewards for longer.)
    - Episode end: ``terminated`` when the point is within ``goal_radius`` of the goal centre, ``truncated`` after
      ``max_steps`` steps.
    - ``info``: ``"route"`` (``"left"`` or ``"right"``: the side of ``x = 0`` the point was on when it first was
      strictly inside the obstacle's ``y`` range, i.e. the gap it went through; None before that), ``"side"`` (the
      side the point was on when ``|x|`` first exceeded half the obstacle's half-width: the route attempted, also
      for an episode that ends in the dead end in front of a blocking wall; None before that), ``"is_success"``
      (the goal was reached on this step), ``"position"``, ``"distance_to_goal"`` (``d`` at the new position) and
      ``"collided"`` (the move was cancelled).

    Option ``blocked_route`` (``"left"``, ``"right"`` or None): closes that side's gap with a wall spanning from the
    box's edge into the obstacle over the obstacle's ``y`` range, so only the other route reaches the goal. It can
    be changed on an existing instance with :meth:`set_blocked_route` (takes effect at once: reset afterwards, a
    point inside the new wall is not pushed out) or ``reset(options={"blocked_route": ...})``; an options dict
    without that key keeps the current setting.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        blocked_route: "str | None" = None,
        bound: float = 5.0,
        obstacle_half_width: float = 3.0,
        obstacle_half_height: float = 1.0,
        start_y: float = -4.0,
        goal_y: float = 4.0,
        goal_radius: float = 1.0,
        step_size: float = 0.75,
        start_noise: float = 0.1,
        progress_scale: float = 3.0,
        step_cost: float = 0.3,
        goal_bonus: float = 30.0,
        max_steps: int = 40,
        shaping_sees_block: bool = True,
    ):
        super().__init__()
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        if not 0 < obstacle_half_width < bound:
            raise ValueError(f"obstacle_half_width must be in (0, bound={bound}), got {obstacle_half_width}")
        if not start_y < -obstacle_half_height < obstacle_half_height < goal_y - goal_radius:
            raise ValueError("the start must be below the obstacle and the goal disk above it")
        self.bound = float(bound)
        self.obstacle: Rectangle = (-obstacle_half_width, -obstacle_half_height, obstacle_half_width, obstacle_half_height)
        self.start = np.array([0.0, start_y])
        self.goal = np.array([0.0, goal_y])
        self.goal_radius = float(goal_radius)
        self.step_size = float(step_size)
        self.start_noise = float(start_noise)
        self.progress_scale = float(progress_scale)
        self.step_cost = float(step_cost)
        self.goal_bonus = float(goal_bonus)
        self.max_steps = int(max_steps)
        self.shaping_sees_block = bool(shaping_sees_block)
        self.observation_space = spaces.Box(-self.bound, self.bound, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._position = self.start.copy()
        self._steps = 0
        self._route: str | None = None
        self._side: str | None = None
        self.blocked_route: str | None = None
        self.set_blocked_route(blocked_route)

    # Geometry ---------------------------------------------------------------------------------------------------

    def set_blocked_route(self, blocked_route: "str | None") -> None:
        """Close the ``"left"`` or ``"right"`` gap with a wall, or open both (None). Takes effect at once."""
        if blocked_route is not None and blocked_route not in ROUTES:
            raise ValueError(f"blocked_route must be one of 'left', 'right' or None, got {blocked_route!r}")
        self.blocked_route = blocked_route
        self.walls: list[Rectangle] = [self.obstacle]
        if blocked_route is not None:
            x_min, y_min, x_max, y_max = self.obstacle
            # Overlapping the obstacle (not just touching it) so that no path squeezes through a shared edge, and
            # reaching past the box for the same reason: a point clipped to the box edge would slide along the wall
            overlap, outside = 0.5 * x_max, self.bound + 1.0
            wall = (
                (-outside, y_min, x_min + overlap, y_max)
                if blocked_route == "left"
                else (x_max - overlap, y_min, outside, y_max)
            )
            self.walls.append(wall)
        self._shaping_walls = self.walls if self.shaping_sees_block else [self.obstacle]
        self._nodes, self._node_distances = self._distance_graph(self._shaping_walls)
        # The shaping of the next step starts from the new distance, not the old task's
        self._distance = self.distance_to_goal(self._position)

    def _visible(self, start: np.ndarray, end: np.ndarray, walls: list[Rectangle]) -> bool:
        return not any(segment_hits_rectangle(start, end, wall) for wall in walls)

    def _distance_graph(self, walls: list[Rectangle]) -> tuple[np.ndarray, np.ndarray]:
        """The wall corners inside the box and, for each, its shortest-path distance to the goal centre (Dijkstra)."""
        corners = [
            np.array([x, y])
            for x_min, y_min, x_max, y_max in walls
            for x in (x_min, x_max)
            for y in (y_min, y_max)
            if -self.bound < x < self.bound and -self.bound < y < self.bound
        ]
        nodes = [self.goal, *corners]
        count = len(nodes)
        edges = np.full((count, count), np.inf)
        for i in range(count):
            for j in range(i + 1, count):
                if self._visible(nodes[i], nodes[j], walls):
                    edges[i, j] = edges[j, i] = float(np.linalg.norm(nodes[i] - nodes[j]))
        distances = np.full(count, np.inf)
        distances[0] = 0.0
        done = np.zeros(count, dtype=bool)
        for _ in range(count):
            current = int(np.argmin(np.where(done, np.inf, distances)))
            if not np.isfinite(distances[current]):
                break
            done[current] = True
            distances = np.minimum(distances, distances[current] + edges[current])
        return np.array(nodes), distances

    def distance_to_goal(self, position: np.ndarray) -> float:
        """Shortest-path distance from ``position`` to the goal centre around the shaping walls (inf if cut off)."""
        position = np.asarray(position, dtype=np.float64)
        best = np.inf
        for node, distance in zip(self._nodes, self._node_distances, strict=True):
            if np.isfinite(distance) and self._visible(position, node, self._shaping_walls):
                best = min(best, distance + float(np.linalg.norm(position - node)))
        return best

    def collides(self, start: np.ndarray, end: np.ndarray) -> bool:
        """Whether the move ``start -> end`` enters a wall of the current task."""
        return not self._visible(np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64), self.walls)

    # Gymnasium API ----------------------------------------------------------------------------------------------

    def _info(self, success: bool, collided: bool) -> dict[str, Any]:
        return {
            "route": self._route,
            "side": self._side,
            "is_success": success,
            "position": self._position.astype(np.float32),
            "distance_to_goal": self._distance,
            "collided": collided,
        }

    def reset(self, *, seed: "int | None" = None, options: "dict[str, Any] | None" = None):
        super().reset(seed=seed)
        if options and "blocked_route" in options:
            self.set_blocked_route(options["blocked_route"])
        noise = self.start_noise * self.np_random.standard_normal(2)
        self._position = np.clip(self.start + noise, -self.bound, self.bound)
        self._steps = 0
        self._route = None
        self._side = None
        self._distance = self.distance_to_goal(self._position)
        return self._position.astype(np.float32), self._info(False, False)

    def step(self, action: np.ndarray):
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        target = np.clip(self._position + self.step_size * action, -self.bound, self.bound)
        collided = self.collides(self._position, target)
        if not collided:
            self._position = target
        self._steps += 1
        y_min, y_max = self.obstacle[1], self.obstacle[3]
        # Strictly inside the y range: a point resting on the obstacle's bottom edge has not gone through a gap
        if self._route is None and y_min < self._position[1] < y_max:
            self._route = "left" if self._position[0] < 0 else "right"
        if self._side is None and abs(self._position[0]) > 0.5 * self.obstacle[2]:
            self._side = "left" if self._position[0] < 0 else "right"
        previous, self._distance = self._distance, self.distance_to_goal(self._position)
        # No progress term from or to an infinite distance (a point left inside a wall added by set_blocked_route)
        progress = previous - self._distance if np.isfinite(previous) and np.isfinite(self._distance) else 0.0
        terminated = bool(np.linalg.norm(self._position - self.goal) <= self.goal_radius)
        reward = self.progress_scale * progress - self.step_cost + (self.goal_bonus if terminated else 0.0)
        truncated = not terminated and self._steps >= self.max_steps
        return self._position.astype(np.float32), float(reward), terminated, truncated, self._info(terminated, collided)
