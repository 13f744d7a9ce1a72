"""When the acting component of each environment is redrawn (``component_schedule``, docs/algorithm.md section 6)."""

from collections.abc import Callable

import numpy as np
import torch as th

ComponentSampler = Callable[[int, "th.Tensor | None"], th.Tensor]
"""``sample(count, log_weights)``: ``count`` component indices drawn from the weights (of each row, if given)"""


class ComponentSchedule:
    """
    The acting component of every environment and when it is redrawn: at every step (``"step"``), at each episode
    start (``"episode"``) or every k steps (an int k), and whenever the number of environments changes.

    The algorithm owns one for its training envs and the policy one for ``predict``, so evaluations between
    rollouts never disturb the training envs' draws. Episode starts reach it through :meth:`mark_episode_start` (the
    algorithm after each stored transition, the policy from ``predict(episode_start=...)``), because SB3's call chain
    from ``collect_rollouts`` to the policy does not pass them on.

    :param schedule: ``"step"``, ``"episode"`` or an int k >= 1 (already validated)
    :param sample: draws component indices (:meth:`MixtureActor.sample_components`)
    """

    def __init__(self, schedule: "str | int", sample: ComponentSampler):
        self.schedule = schedule
        self.sample = sample
        self.components: np.ndarray | None = None
        """acting component of each env, (n_envs,); None before the first step"""
        self.steps_since_draw: np.ndarray | None = None
        self.episode_start: np.ndarray | None = None
        """which envs start an episode at the next step (None: unknown, i.e. none)"""

    def reset(self) -> None:
        """Forget every draw: the next step draws afresh for every env (the envs were reset)."""
        self.components = self.steps_since_draw = self.episode_start = None

    def mark_episode_start(self, episode_start: "np.ndarray | None") -> None:
        self.episode_start = None if episode_start is None else np.asarray(episode_start, dtype=bool)

    def advance(self, n_envs: int, log_weights: "th.Tensor | None" = None) -> np.ndarray:
        """
        One step: redraw the components that are due and return the acting component of each env, (n_envs,).

        :param log_weights: ``log w(s)`` at each env's observation, (n_envs, N): a redraw draws from w(s) (needed
            with state-dependent weights)
        """
        episode_start, self.episode_start = self.episode_start, None
        if self.components is None or len(self.components) != n_envs:
            self.components = np.zeros(n_envs, dtype=np.int64)
            self.steps_since_draw = np.zeros(n_envs, dtype=np.int64)
            redraw = np.ones(n_envs, dtype=bool)
        elif self.schedule == "step":
            redraw = np.ones(n_envs, dtype=bool)
        else:
            assert self.steps_since_draw is not None
            redraw = np.zeros(n_envs, dtype=bool) if episode_start is None else episode_start.copy()
            if isinstance(self.schedule, int):
                redraw |= self.steps_since_draw >= self.schedule
        assert self.steps_since_draw is not None
        if redraw.any():
            rows = None if log_weights is None else log_weights[th.as_tensor(redraw, device=log_weights.device)]
            self.components[redraw] = self.sample(int(redraw.sum()), rows).cpu().numpy()
            self.steps_since_draw[redraw] = 0
        self.steps_since_draw += 1
        return self.components.copy()
