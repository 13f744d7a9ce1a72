"""
Which mixture component acts, and with which weights (docs/algorithm.md sections 6 and 10): the one home of the
acting rules, held by the policy (:class:`ComponentChoice`).

- The weights: the actor's own (fixed or learned), or the components' soft values read from the target critic.
- The stochastic choice: a component per environment, redrawn at every step or at each episode start
  (:class:`ComponentSchedule`), from the weights or, with ``component_schedule="returns"``, by a bandit over the
  returns each component earned in its recent training episodes (:func:`bandit_components`).
- The deterministic choice: the mode component, the one with the best recent return, or a fixed one.
- ``use_component``: one component, whatever the rules say.
"""

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.type_aliases import PyTorchObs
from stable_baselines3.common.vec_env import VecNormalize
from torch import nn

from sb3_mixture.entropy import MixtureSamples
from sb3_mixture.mixture import (
    component_soft_values,
    draw_components,
    gaussian_log_prob,
    mode_components,
    sample_pre_squash,
    soft_value_log_weights,
    squash_log_jacobian,
)
from sb3_mixture.options import BEST_RETURN, SOFT_VALUE_WEIGHTS, STATE_DEPENDENT_WEIGHTS, ActingOptions
from sb3_mixture.sacm.actor import MixtureParams
from sb3_mixture.sacm.critic import MixtureCritic

SOFT_VALUE_SAMPLES = 8
"""Samples per component behind the soft values V_i(s) that set the acting weights with mixture_weights="soft_value\""""
PREDICT_MARGIN = 0.05
"""Stochastic predict with component_schedule="returns" draws among the components within this fraction of the best
recent return, or within return_margin if narrower: SMERL's eps = 0.05 R* (Kumar et al., 2020), its test for a
near-optimal latent (docs/algorithm.md section 12)"""


def soft_value_log_weights_at(
    critic: MixtureCritic,
    obs: PyTorchObs,
    means: th.Tensor,
    log_stds: th.Tensor,
    pre_squash: th.Tensor,
    alphas: th.Tensor,
    floor: float,
) -> th.Tensor:
    """
    ``log w(s)`` from the components' own soft values (docs/algorithm.md section 10), (B, N), without gradient:
    ``V_i(s) = E_{a ~ pi_i}[min_k Q_{k,i}(s, a) - alpha_i log pi_i(a|s)]`` from head i of ``critic`` (the target
    critic), estimated on the S given samples of component i; ``w = (1 - N eps) softmax(V / alpha) + eps`` with alpha
    the mean of the temperatures.

    :param means: pre-squash component means at ``obs``, (B, N, D)
    :param log_stds: their log-stds (with gSDE, the stds of each state), (B, N, D)
    :param pre_squash: S pre-squash samples of every component, (B, N, S, D)
    :param alphas: the temperatures alpha_i, (N,)
    :param floor: ``eps`` in ``[0, 1/N)``
    """
    batch_size, n_components, n_samples, action_dim = pre_squash.shape
    with th.no_grad():
        own_log_prob = gaussian_log_prob(pre_squash, means.unsqueeze(2), log_stds.unsqueeze(2))
        own_log_prob = own_log_prob - squash_log_jacobian(pre_squash)
        actions = th.tanh(pre_squash).view(batch_size, n_components * n_samples, action_dim)
        q_values = critic.q_values(obs, actions).min(dim=0).values  # (B, N * S, N heads)
        q_values = q_values.view(batch_size, n_components, n_samples, n_components)
        own_q = q_values.diagonal(dim1=1, dim2=3).permute(0, 2, 1)  # head i at component i's samples, (B, N, S)
        values = component_soft_values(own_q, own_log_prob, alphas)
        return soft_value_log_weights(values, alphas.mean(), floor)


def sample_soft_value_log_weights(
    critic: MixtureCritic, obs: PyTorchObs, params: MixtureParams, samples: MixtureSamples, alphas: th.Tensor, floor: float
) -> th.Tensor:
    """``log w(s)`` of an update, from the soft values of the batch's own samples, one per component (docs/algorithm.md
    section 10; :func:`soft_value_log_weights_at`), without gradient, (B, N)."""
    pre_squash = samples.pre_squash.detach().unsqueeze(2)
    return soft_value_log_weights_at(critic, obs, params.means.detach(), params.log_stds.detach(), pre_squash, alphas, floor)


def window_means(returns: th.Tensor, counts: th.Tensor) -> th.Tensor:
    """
    Each component's recent return: the mean of its window of episode returns (docs/algorithm.md section 12), (N,),
    NaN for a component without one.

    :param returns: each component's ring buffer of its last K training-episode returns, filled from slot 0, (N, K)
    :param counts: how many episodes each component has had, (N,): the first ``min(count, K)`` slots hold returns
    """
    window = returns.shape[1]
    filled = th.arange(window).unsqueeze(0) < counts.unsqueeze(1)  # (N, K)
    total = th.where(filled, returns, th.zeros_like(returns)).sum(dim=1)
    return total / filled.sum(dim=1)  # 0 / 0: NaN without an episode


def best_recent_return(component_returns: "th.Tensor | np.ndarray") -> "tuple[th.Tensor, th.Tensor | None]":
    """The components' recent returns as float64, (N,), and R*, the best of those with data (not NaN); None when no
    component has any. What the gates on returns (:func:`near_best`, the novelty charge's) start from."""
    returns = th.as_tensor(component_returns, dtype=th.float64)
    has_data = ~th.isnan(returns)
    return returns, (returns[has_data].max() if has_data.any() else None)


def near_best(component_returns: "th.Tensor | np.ndarray", margin: float) -> th.Tensor:
    """
    Which components' recent returns are near the best, SMERL's ``1[R_i >= R* - eps]`` with ``eps = margin |R*|``
    (docs/algorithm.md sections 11 and 12): ``R* = max_i R_i`` over the components with data. The bandit draws among
    these components, and the diversity charge applies to them.

    ``|R*|`` makes the margin a fraction of the best return whatever its sign (with ``R* < 0``, ``R* - margin R*``
    would lie above R*). A component without data (NaN) is not near the best; no component is when none has data.

    :param component_returns: each component's recent training-episode return R_i, (N,), NaN where it has none
    :param margin: in [0, 1] (``return_margin``, checked by :func:`sb3_mixture.options.validate_acting`)
    :return: (N,) bool
    """
    returns, best = best_recent_return(component_returns)
    if best is None:
        return th.zeros_like(returns, dtype=th.bool)
    # NaN >= x is False, so a component without data is left out
    return returns >= best - margin * best.abs()


def bandit_components(means: th.Tensor, count: int, exploration: float, margin: float = 0.0) -> th.Tensor:
    """
    ``count`` components for new episodes, (count,), by an epsilon-greedy bandit over the recent returns
    (docs/algorithm.md section 12): a component without any episode yet first (the lowest index), else with probability
    ``exploration`` a uniformly drawn component, else one drawn uniformly among those near the best recent return
    (:func:`near_best`; with ``margin=0``, the best and its exact ties).

    :param means: each component's recent return (:func:`window_means`), (N,), NaN where it has none
    """
    n_components = means.shape[0]
    untried = th.isnan(means)
    if untried.any():
        components = th.full((count,), int(untried.nonzero()[0, 0]), dtype=th.long)
    else:
        candidates = near_best(means, margin).nonzero()[:, 0]
        components = candidates[th.randint(len(candidates), (count,))]
    explore = th.rand(count) < exploration
    components[explore] = th.randint(n_components, (int(explore.sum()),))
    return components


class ComponentSchedule:
    """
    The acting component of every environment and when it is redrawn: at every step (``"step"``) or at each episode
    start (``"episode"``, ``"returns"``), and whenever the number of environments changes.

    Episode starts reach it through :meth:`mark_episode_start`, because SB3's call chain from ``collect_rollouts`` to
    the policy does not pass them on.

    :param schedule: ``"step"``, ``"episode"`` or ``"returns"`` (already validated)
    """

    def __init__(self, schedule: str):
        self.schedule = schedule
        self.components: np.ndarray | None = None
        """acting component of each env, (n_envs,); None before the first step"""
        self.episode_start: np.ndarray | None = None
        """which envs start an episode at the next step (None: unknown, i.e. none)"""

    def reset(self) -> None:
        """Forget every draw: the next step draws afresh for every env (the envs were reset)."""
        self.components = self.episode_start = None

    def mark_episode_start(self, episode_start: "np.ndarray | None") -> None:
        self.episode_start = None if episode_start is None else np.asarray(episode_start, dtype=bool)

    def advance(self, n_envs: int, draw: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """
        One step: redraw the components that are due and return the acting component of each env, (n_envs,).

        :param draw: ``draw(redraw)``: new components for the envs where the mask ``redraw`` (n_envs,) is True
        """
        episode_start, self.episode_start = self.episode_start, None
        if self.components is None or len(self.components) != n_envs:
            self.components = np.zeros(n_envs, dtype=np.int64)
            redraw = np.ones(n_envs, dtype=bool)
        elif self.schedule == "step":
            redraw = np.ones(n_envs, dtype=bool)
        else:
            redraw = np.zeros(n_envs, dtype=bool) if episode_start is None else episode_start.copy()
        if redraw.any():
            self.components[redraw] = draw(redraw)
        return self.components.copy()


class ComponentChoice(nn.Module):
    """
    Which component acts and with which weights (docs/algorithm.md sections 6, 10 and 12): the policy's acting rules.

    A module so that its state is saved with the policy: the temperatures the soft-value weights act with, and with an
    episodic schedule each component's recent training-episode returns. It keeps two schedules: the training envs'
    (selected by :meth:`training_envs`, which the algorithm wraps its rollout steps in) and ``predict``'s, so that
    evaluations between rollouts never disturb the training envs' draws.

    It owns its rollout hooks, which the algorithm calls one line each: :meth:`start_training` when learning starts,
    :meth:`observe_training_step` after every training step (the rewards and episode ends it keeps the returns from)
    and :meth:`record_rollout` when the algorithm dumps its logs.

    :param options: the acting options (:func:`sb3_mixture.options.validate_acting`). With
        ``component_schedule="returns"`` the bandit's training draws pick among the components whose recent return is
        within ``return_margin`` of the best's (:func:`near_best`), ``predict``'s among those within the narrower of it
        and ``PREDICT_MARGIN``
    :param action_dim: action dimensions D
    """

    def __init__(self, options: ActingOptions, action_dim: int):
        super().__init__()
        self.options = options
        self.n_components = options.n_components
        self.state_dependent_weights = options.mixture_weights in STATE_DEPENDENT_WEIGHTS
        self.soft_value_weights = options.mixture_weights == SOFT_VALUE_WEIGHTS
        self.episodic = options.component_schedule != "step"
        self.override: int | None = None
        """the component set by :meth:`use_component`, None outside it"""
        self.training_schedule = ComponentSchedule(options.component_schedule)
        self.predict_schedule = ComponentSchedule(options.component_schedule)
        self._schedule = self.predict_schedule
        self.last_components: np.ndarray | None = None
        """the components of the last stochastic step, one per environment"""
        self._training_counts = np.zeros(self.n_components, dtype=np.int64)
        self._returns_in_progress: np.ndarray | None = None
        self._warned_episode_start = False
        if self.episodic:
            # One component acts for a whole episode, so its return is that component's. The last return_window
            # training-episode returns of each component (a ring buffer, filled from slot 0) and how many it has had;
            # floats without NaN, as every entry of a policy's state_dict (SB3's save/load tests randomise them)
            self.register_buffer("episode_returns", th.zeros(self.n_components, options.return_window))
            self.register_buffer("episode_counts", th.zeros(self.n_components))
        if self.soft_value_weights:
            # alpha_i as the algorithm last tuned them (it writes them here, and they are saved): acting needs them
            self.register_buffer("component_temperatures", th.ones(self.n_components))
            # Deterministic acting estimates V_i(s) on fixed standard-normal draws, the same at every call (and, drawn
            # from their own seeded generator, in every process), so that it is a function of the observation
            generator = th.Generator().manual_seed(0)
            noise = th.randn(SOFT_VALUE_SAMPLES, action_dim, generator=generator)
            self.register_buffer("value_noise", noise, persistent=False)

    @property
    def deterministic_component(self) -> "str | int":
        return self.options.deterministic_component

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any) -> None:
        # Files saved before the statistics became episodic-only floats hold them for every schedule, NaN where empty
        if not self.episodic:
            for name in ("episode_returns", "episode_counts"):
                state_dict.pop(prefix + name, None)
        elif prefix + "episode_returns" in state_dict:
            state_dict[prefix + "episode_returns"] = state_dict[prefix + "episode_returns"].nan_to_num(0.0)
        super()._load_from_state_dict(state_dict, prefix, *args)

    # The weights ---------------------------------------------------------------------------------------------------

    def log_weights(
        self, obs: PyTorchObs, params: MixtureParams, critic_target: MixtureCritic, deterministic: bool = False
    ) -> th.Tensor:
        """
        ``log w(s)`` the mixture acts with at each state, (B, N): the actor's own weights, or the soft-value weights
        (estimated on fresh samples, or with ``deterministic`` on the fixed ``value_noise``).
        """
        if not self.soft_value_weights:
            return params.log_weights
        means, log_stds = params.means.unsqueeze(2), params.log_stds.unsqueeze(2)
        shape = (means.shape[0], self.n_components, SOFT_VALUE_SAMPLES, means.shape[-1])
        noise = self.value_noise.expand(shape) if deterministic else th.randn(shape, device=means.device)
        pre_squash = sample_pre_squash(means, log_stds, noise)
        alphas = self.component_temperatures
        return soft_value_log_weights_at(
            critic_target, obs, params.means, params.log_stds, pre_squash, alphas, self.options.mixture_weight_floor
        )

    # Stochastic acting ---------------------------------------------------------------------------------------------

    def next_components(self, log_weights: th.Tensor) -> np.ndarray:
        """
        Advance the schedule in use by one step and return the acting component of each env, (n_envs,): a redraw
        draws from the weights of its env's state.

        :param log_weights: ``log w(s)`` at each env's observation, (n_envs, N)
        """
        n_envs = log_weights.shape[0]
        if self.override is not None:
            components = np.full(n_envs, self.override, dtype=np.int64)
        else:
            components = self._schedule.advance(n_envs, lambda redraw: self._draw(log_weights, redraw))
        self.last_components = components
        if self._schedule is self.training_schedule:
            self._training_counts += np.bincount(components, minlength=self.n_components)
        return components

    def _draw(self, log_weights: th.Tensor, redraw: np.ndarray) -> np.ndarray:
        if self.options.choose_by_returns:
            # Exploring keeps the statistics fresh, and only training episodes write them: predict does not explore.
            # A wide margin keeps every component training; predict plays only those SMERL counts as near-optimal
            training = self._schedule is self.training_schedule
            exploration = self.options.return_exploration if training else 0.0
            margin = self.options.return_margin if training else min(self.options.return_margin, PREDICT_MARGIN)
            return bandit_components(self.recent_returns(), int(redraw.sum()), exploration, margin).numpy()
        # Fixed weights draw every row from the one weight vector at once
        rows = log_weights[th.as_tensor(redraw, device=log_weights.device)] if self.state_dependent_weights else log_weights[0]
        return draw_components(rows, int(redraw.sum())).cpu().numpy()

    @contextmanager
    def training_envs(self) -> Iterator[None]:
        """Act with the training envs' schedule (the algorithm's rollout steps)."""
        previous, self._schedule = self._schedule, self.training_schedule
        try:
            yield
        finally:
            self._schedule = previous

    def episodes_started(self, episode_start: "np.ndarray | None") -> None:
        """Which envs of ``predict`` start an episode at their next step (``predict``'s ``episode_start``)."""
        self._schedule.mark_episode_start(episode_start)

    def predict_without_episode_start(self, deterministic: bool) -> None:
        """
        ``predict`` was called without ``episode_start``. An episodic schedule then keeps each env's component across
        episodes (``evaluate_policy`` passes it; a manual loop often does not): say so once.
        """
        # Before its first draw the schedule draws for every env anyway: a one-off predict is fine
        quiet = deterministic or self._schedule is self.training_schedule or self._schedule.components is None
        if self.episodic and not (quiet or self.override is not None or self._warned_episode_start):
            self._warned_episode_start = True
            warnings.warn(
                f"component_schedule={self.options.component_schedule!r} draws a component at each episode start, and "
                "predict() was called without episode_start: every env keeps its component until predict is told "
                "which envs start an episode (pass episode_start=..., as evaluate_policy does)",
                stacklevel=4,  # the caller of model.predict
            )

    # Rollout hooks: the algorithm's training steps -------------------------------------------------------------------

    def training_components(self) -> np.ndarray:
        """The component acting in each training env at the current step, (n_envs,) (a method, not a property: tools
        such as torch.jit.trace probe a module's attributes, and this one exists only once training steps)."""
        if self.training_schedule.components is None:
            raise RuntimeError("no training step yet: the training envs have no acting component")
        return self.training_schedule.components

    def start_training(self, envs_reset: bool) -> None:
        """Learning starts; ``envs_reset``: SB3 reset the training envs, so every env starts a new episode."""
        if envs_reset:
            self.training_schedule.reset()
            self._returns_in_progress = None

    def observe_training_step(
        self, rewards: np.ndarray, dones: np.ndarray, vec_normalize_env: "VecNormalize | None" = None
    ) -> None:
        """
        A training step ended: with an episodic schedule, what each env's episode has earned so far (the env's own
        reward, before any ``VecNormalize``) and, at its end, the episode's return as its component's
        (docs/algorithm.md section 12); the envs whose episode ended draw anew at their next step.
        """
        if self.episodic:
            original = vec_normalize_env.get_original_reward() if vec_normalize_env is not None else rewards
            if self._returns_in_progress is None or len(self._returns_in_progress) != len(dones):
                self._returns_in_progress = np.zeros(len(dones))
            self._returns_in_progress += original
            components = self.training_components()
            for env_index in np.flatnonzero(dones):
                self.record_episode(int(components[env_index]), float(self._returns_in_progress[env_index]))
                self._returns_in_progress[env_index] = 0.0
        self.training_schedule.mark_episode_start(dones)

    def record_rollout(self, logger: Logger) -> None:
        """Log each component's share of the training steps since the last dump and its recent return."""
        total = self._training_counts.sum()
        if total > 0:
            for index, count in enumerate(self._training_counts):
                logger.record(f"rollout/component_share_{index}", count / total)
            self._training_counts[:] = 0
        if self.episodic:
            for index, recent in enumerate(self.recent_returns().tolist()):
                if np.isfinite(recent):
                    logger.record(f"rollout/component_return_{index}", recent)

    # The returns the components earn -------------------------------------------------------------------------------

    def record_episode(self, component: int, episode_return: float) -> None:
        """A training episode that ``component`` acted in from start to end earned ``episode_return``."""
        window = self.episode_returns.shape[1]
        self.episode_returns[component, int(self.episode_counts[component]) % window] = episode_return
        self.episode_counts[component] += 1

    def recent_returns(self) -> th.Tensor:
        """
        Each component's mean return over its last ``return_window`` training episodes, (N,), NaN without one (and for
        every component with the ``"step"`` schedule, whose episodes belong to no one component).
        """
        if not self.episodic:
            return th.full((self.n_components,), float("nan"))
        return window_means(self.episode_returns.cpu(), self.episode_counts.cpu())

    def best_return_component(self) -> "int | None":
        """The component with the best recent training return (the lowest index on ties), None before any episode."""
        recent = self.recent_returns()
        if th.isnan(recent).all():
            return None
        return int(recent.nan_to_num(nan=-float("inf")).argmax())

    # Deterministic acting ------------------------------------------------------------------------------------------

    def deterministic_components(self, params: MixtureParams, log_weights: th.Tensor) -> th.Tensor:
        """The component whose mean a deterministic action plays, (B,): as :meth:`use_component` or
        ``deterministic_component`` says."""
        component = self.override if self.override is not None else self.deterministic_component
        if component == "mode":
            return mode_components(params.means, params.log_stds, log_weights)
        if component == BEST_RETURN:
            # Without any recorded episode the first component plays
            best = self.best_return_component()
            return th.full((params.means.shape[0],), best or 0, dtype=th.long, device=params.means.device)
        return th.full((params.means.shape[0],), int(component), dtype=th.long, device=params.means.device)

    # One component -------------------------------------------------------------------------------------------------

    @contextmanager
    def use_component(self, component: int) -> Iterator[None]:
        """Act with one component only (stochastic and deterministic)."""
        if not 0 <= component < self.n_components:
            raise ValueError(f"component must be in [0, {self.n_components}), got {component}")
        previous, self.override = self.override, component
        try:
            yield
        finally:
            self.override = previous
