"""The critic of SACM: twin Q-networks with one output per mixture component (docs/algorithm.md section 3)."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BaseModel, ContinuousCritic
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import PyTorchObs
from torch import nn

from sb3_mixture.torch_layers import EnsembleMLP


class MixtureCritic(ContinuousCritic):
    """
    ``n_critics`` Q-networks, each with one output per mixture component (docs/algorithm.md section 3).

    Head i of every network is the soft Q-function of component i. The networks are one
    :class:`EnsembleMLP`, so all ``n_critics x n_components`` heads cost one batched call.
    ``forward`` keeps SB3's contract: a tuple with one (B, n_components) tensor per network.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: list[int],
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        n_critics: int = 2,
        share_features_extractor: bool = True,
        n_components: int = 3,
    ):
        # ContinuousCritic.__init__ would build n_critics separate Sequential networks: build the ensemble instead
        BaseModel.__init__(
            self, observation_space, action_space, features_extractor=features_extractor, normalize_images=normalize_images
        )
        self.share_features_extractor = share_features_extractor
        self.n_critics = n_critics
        self.n_components = n_components
        self.action_dim = get_action_dim(self.action_space)
        self.q_ensemble = EnsembleMLP(n_critics, features_dim + self.action_dim, n_components, net_arch, activation_fn)
        self.q_networks = []

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(dict(n_critics=self.n_critics, n_components=self.n_components))
        return data

    def q_values(self, obs: PyTorchObs, actions: th.Tensor) -> th.Tensor:
        """
        All heads of all networks.

        :param actions: (B, D), or (B, M, D) for M actions per state
        :return: (n_critics, B, N), or (n_critics, B, M, N)
        """
        with th.set_grad_enabled(not self.share_features_extractor and th.is_grad_enabled()):
            features = self.extract_features(obs, self.features_extractor)
        if actions.dim() == 2:
            return self.q_ensemble(th.cat([features, actions], dim=1))
        return self.q_ensemble.forward_state_actions(features, actions)

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """The Q-networks' weights take no gradient inside (the actor's update: gradients reach the actions only)."""
        self.q_ensemble.requires_grad_(False)
        try:
            yield
        finally:
            self.q_ensemble.requires_grad_(True)

    def forward(self, obs: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, ...]:
        return tuple(self.q_values(obs, actions).unbind(0))

    def q1_forward(self, obs: th.Tensor, actions: th.Tensor) -> th.Tensor:
        with th.no_grad():
            return self.q_values(obs, actions)[0]
