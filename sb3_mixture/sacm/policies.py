"""Policies for SACM: SAC's policy with a mixture actor, per-component critic heads and the rules of which component acts."""

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor, FlattenExtractor, NatureCNN
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.sac.policies import SACPolicy
from torch import nn

from sb3_mixture.options import (
    POLICY_OPTIONS,
    RETURN_EXPLORATION,
    RETURN_MARGIN,
    RETURN_WINDOW,
    ActingOptions,
    validate_acting,
)
from sb3_mixture.sacm.acting import ComponentChoice
from sb3_mixture.sacm.actor import MixtureActor
from sb3_mixture.sacm.critic import MixtureCritic
from sb3_mixture.torch_layers import fused_adam_supported


class MixturePolicy(SACPolicy):
    """
    SAC's policy with a mixture actor, per-component critic heads and the acting rules (:class:`ComponentChoice`).

    Stochastic acting (docs/algorithm.md section 6) draws a component per environment according to
    ``component_schedule`` and samples from it; ``predict`` honours ``episode_start`` for the ``"episode"`` schedule.
    Deterministic acting plays the mean of the component chosen by ``deterministic_component``; it is a function of the
    observation and the saved state alone, and ``policy(observation, deterministic=True)`` is that action in [-1, 1]
    (what an exported policy runs, docs/export.md).

    :param n_components: number of mixture components
    :param mixture_weights: fixed mixing weights (uniform if None), ``"learned"`` (a gating head, docs/algorithm.md
        section 8) or ``"soft_value"`` (from the components' soft values, section 10)
    :param mixture_weight_floor: least weight of a component with state-dependent weights, in ``[0, 1/N)``
    :param component_schedule: ``"step"``, ``"episode"`` or ``"returns"`` (episodic, chosen by a bandit over the
        components' recent returns, docs/algorithm.md section 12)
    :param deterministic_component: ``"mode"``, ``"best_return"`` or a fixed component index
    :param return_window: with ``"returns"``, the episodes of each component its recent return averages
    :param return_exploration: with ``"returns"``, the probability of a uniformly drawn component at an episode start
    :param return_margin: with ``"returns"``, the bandit draws among the components whose recent return is within this
        fraction of the best's
    :param full_std: with gSDE, one std per latent feature and action dimension (True, SAC's default) or per latent
        feature only
    """

    actor: MixtureActor
    critic: MixtureCritic
    critic_target: MixtureCritic

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: "list[int] | dict[str, list[int]] | None" = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        use_sde: bool = False,
        log_std_init: float = -3,
        use_expln: bool = False,
        clip_mean: float = 2.0,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: "dict[str, Any] | None" = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: "dict[str, Any] | None" = None,
        n_critics: int = 2,
        share_features_extractor: bool = False,
        n_components: int = 3,
        mixture_weights: "list[float] | str | None" = None,
        mixture_weight_floor: float = 0.0,
        component_schedule: str = "step",
        deterministic_component: "str | int" = "mode",
        return_window: int = RETURN_WINDOW,
        return_exploration: float = RETURN_EXPLORATION,
        return_margin: float = RETURN_MARGIN,
        full_std: bool = True,
    ):
        # Needed by make_actor/make_critic, which SACPolicy.__init__ calls. The algorithm has checked every option
        # (sb3_mixture/options.py); the same check builds the acting options here (and turns None into uniform weights)
        arguments = dict(locals())
        self.full_std = bool(full_std)
        self.acting_options: ActingOptions = validate_acting(**{name: arguments[name] for name in POLICY_OPTIONS})
        self.n_components = self.acting_options.n_components
        self.mixture_weights = self.acting_options.mixture_weights
        self.mixture_weight_floor = self.acting_options.mixture_weight_floor
        # The optimisers are built while the networks are on the CPU (SB3 moves the policy to its device afterwards)
        if optimizer_kwargs is None and optimizer_class is th.optim.Adam and fused_adam_supported("cpu"):
            # One fused kernel per parameter instead of a dozen small ops: same update, less overhead on the CPU
            optimizer_kwargs = {"fused": True}
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=net_arch,
            activation_fn=activation_fn,
            use_sde=use_sde,
            log_std_init=log_std_init,
            use_expln=use_expln,
            clip_mean=clip_mean,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            n_critics=n_critics,
            share_features_extractor=share_features_extractor,
        )
        self.component_choice = ComponentChoice(self.acting_options, get_action_dim(action_space))

    @property
    def deterministic_component(self) -> "str | int":
        """Component played by deterministic actions: ``"mode"``, ``"best_return"`` or an index."""
        return self.acting_options.deterministic_component

    @deterministic_component.setter
    def deterministic_component(self, deterministic_component: "str | int") -> None:
        # The constructor's rules, e.g. "best_return" only with component_schedule="returns"
        changed = dataclasses.replace(self.acting_options, deterministic_component=deterministic_component)
        self.acting_options = self.component_choice.options = validate_acting(**dataclasses.asdict(changed))

    @property
    def acting_components(self) -> "np.ndarray | None":
        """The components of the last stochastic step, one per environment."""
        return self.component_choice.last_components

    def draw_components(self, observation: "np.ndarray | dict[str, np.ndarray]") -> np.ndarray:
        """Advance the acting schedule in use by one step at ``observation`` (one row per env) without acting."""
        obs_tensor, _ = self.obs_to_tensor(observation)
        with th.no_grad():
            return self.component_choice.next_components(self.mixture_log_weights(obs_tensor))

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(dataclasses.asdict(self.acting_options), full_std=self.full_std)
        return data

    def make_actor(self, features_extractor: "BaseFeaturesExtractor | None" = None) -> MixtureActor:
        actor_kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        actor_kwargs.update(
            n_components=self.n_components,
            mixture_weights=self.mixture_weights,
            mixture_weight_floor=self.mixture_weight_floor,
            full_std=self.full_std,
        )
        return MixtureActor(**actor_kwargs).to(self.device)

    def make_critic(self, features_extractor: "BaseFeaturesExtractor | None" = None) -> MixtureCritic:
        critic_kwargs = self._update_features_extractor(self.critic_kwargs, features_extractor)
        return MixtureCritic(**critic_kwargs, n_components=self.n_components).to(self.device)

    @contextmanager
    def use_component(self, component: int) -> Iterator[None]:
        """Act with one component only (stochastic and deterministic), e.g. to evaluate it alone."""
        with self.component_choice.use_component(component):
            yield

    def mixture_log_weights(self, obs: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        """``log w(s)``, (B, N): the weights the policy acts with at each state, for every kind of ``mixture_weights``."""
        return self.component_choice.log_weights(obs, self.actor.mixture_params(obs), self.critic_target, deterministic)

    def predict(
        self,
        observation: "np.ndarray | dict[str, np.ndarray]",
        state: "tuple[np.ndarray, ...] | None" = None,
        episode_start: "np.ndarray | None" = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, "tuple[np.ndarray, ...] | None"]:
        if episode_start is not None:
            # SB3's predict does not hand episode_start on to _predict: the schedule keeps it for its next step
            self.component_choice.episodes_started(episode_start)
        else:
            self.component_choice.predict_without_episode_start(deterministic)
        return super().predict(observation, state, episode_start, deterministic)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        params = self.actor.mixture_params(observation)
        log_weights = self.component_choice.log_weights(observation, params, self.critic_target, deterministic)
        if deterministic:
            components = self.component_choice.deterministic_components(params, log_weights)
        else:
            components = th.as_tensor(self.component_choice.next_components(log_weights), device=params.means.device)
        return self.actor.act(params, components, deterministic)


MlpPolicy = MixturePolicy


class CnnPolicy(MixturePolicy):
    """:class:`MixturePolicy` with SB3's ``NatureCNN`` features extractor, for image observations."""

    def __init__(self, *args: Any, features_extractor_class: type[BaseFeaturesExtractor] = NatureCNN, **kwargs: Any):
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)


class MultiInputPolicy(MixturePolicy):
    """:class:`MixturePolicy` with SB3's ``CombinedExtractor``, for Dict observations."""

    def __init__(self, *args: Any, features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor, **kwargs: Any):
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)
