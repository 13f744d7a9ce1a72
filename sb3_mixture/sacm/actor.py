"""The actor of SACM: the network and the mixture distribution it outputs at a state (docs/algorithm.md section 1)."""

from typing import Any, NamedTuple

import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.type_aliases import PyTorchObs
from stable_baselines3.sac.policies import Actor
from torch import nn

from sb3_mixture.entropy import MixtureSamples, draw_mixture_samples
from sb3_mixture.mixture import (
    LOG_STD_MAX,
    LOG_STD_MIN,
    cross_log_probs,
    draw_components,
    gated_log_weights,
    gather_components,
    mixture_log_prob,
    mode_components,
    sde_log_stds,
    sde_noise,
    sde_std,
    squash_log_jacobian,
)
from sb3_mixture.options import LEARNED_WEIGHTS, SOFT_VALUE_WEIGHTS


class MixtureParams(NamedTuple):
    """The mixture at a batch of states (:meth:`MixtureActor.mixture_params`)."""

    means: th.Tensor
    """pre-squash component means, (B, N, D)"""
    log_stds: th.Tensor
    """clamped log-stds (with gSDE, of each state), (B, N, D)"""
    log_weights: th.Tensor
    """the actor's own log mixing weights: the fixed ones repeated, or the gate's, (B, N)"""
    latent: th.Tensor
    """the trunk's output z(s), gSDE's features, (B, L)"""


class MixtureActor(Actor):
    """
    Actor of SACM: ``n_components`` tanh-squashed diagonal Gaussians over one shared trunk (docs/algorithm.md section 1).

    ``mu`` and ``log_std`` are SAC's heads widened to ``n_components * action_dim`` outputs, so a one-component mixture
    has exactly SAC's parameters. With ``mixture_weights="learned"`` (section 8) a zero-initialised linear gating head
    ``gate`` on the same trunk gives the weights of each state, ``w(s) = (1 - N eps) softmax(g(s)) + eps``, uniform at
    the start. With ``use_sde=True`` (gSDE, section 9) every component has its own log-std matrix, ``log_std`` of shape
    (N, L, D) (or (N, L, 1) without ``full_std``), and its own exploration matrix theta_i, resampled by
    ``reset_noise``; its pre-squash noise is ``z(s) theta_i``.

    The actor is the distribution and nothing else: which component acts, and with which weights when they come from
    the critic (``mixture_weights="soft_value"``), is the policy's :class:`~sb3_mixture.sacm.acting.ComponentChoice`.
    Alone, as SB3's ``Actor``, it acts with its own weights: ``forward`` samples the mixture, or plays the mean of its
    mode component (``deterministic=True``); ``action_log_prob`` returns a sample and its mixture log-density.

    :param n_components: number of mixture components
    :param mixture_weights: fixed mixing weights (a list, checked by the algorithm), ``"learned"`` or ``"soft_value"``
    :param mixture_weight_floor: ``eps``, the least weight of a component with learned weights, in ``[0, 1/N)``
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: list[int],
        features_extractor: nn.Module,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        use_sde: bool = False,
        log_std_init: float = -3,
        full_std: bool = True,
        use_expln: bool = False,
        clip_mean: float = 2.0,
        normalize_images: bool = True,
        n_components: int = 3,
        mixture_weights: "list[float] | str" = LEARNED_WEIGHTS,
        mixture_weight_floor: float = 0.0,
    ):
        super().__init__(
            observation_space,
            action_space,
            net_arch,
            features_extractor,
            features_dim,
            activation_fn=activation_fn,
            use_sde=False,
            log_std_init=log_std_init,
            full_std=full_std,
            use_expln=use_expln,
            clip_mean=clip_mean,
            normalize_images=normalize_images,
        )
        self.n_components = n_components
        self.mixture_weights = mixture_weights
        self.mixture_weight_floor = float(mixture_weight_floor)
        self.action_dim = get_action_dim(self.action_space)
        last_layer_dim = net_arch[-1] if len(net_arch) > 0 else features_dim
        self.mu = nn.Linear(last_layer_dim, n_components * self.action_dim)
        # SAC's Actor stored use_sde=False (it built no gSDE parts): this actor builds its own
        self.use_sde = bool(use_sde)
        self.log_std: nn.Linear | nn.Parameter
        if self.use_sde:
            std_columns = self.action_dim if full_std else 1
            self.log_std = nn.Parameter(th.full((n_components, last_layer_dim, std_columns), float(log_std_init)))
            self.reset_noise()
        else:
            self.log_std = nn.Linear(last_layer_dim, n_components * self.action_dim)
        self.gate: nn.Linear | None = None
        if mixture_weights == LEARNED_WEIGHTS:
            self.gate = nn.Linear(last_layer_dim, n_components)
            # Zero logits: the mixture starts with uniform weights, like the fixed-weight default
            nn.init.zeros_(self.gate.weight)
            nn.init.zeros_(self.gate.bias)
        # Learned and soft-value weights leave this a uniform placeholder. Derived from the constructor arguments, so
        # not part of the state dict
        fixed_weights = mixture_weights if isinstance(mixture_weights, list) else [1.0 / n_components] * n_components
        self.register_buffer("log_mixture_weights", th.log(th.tensor(fixed_weights, dtype=th.float32)), persistent=False)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            n_components=self.n_components,
            mixture_weights=self.mixture_weights,
            mixture_weight_floor=self.mixture_weight_floor,
        )
        return data

    def mixture_params(self, obs: PyTorchObs) -> MixtureParams:
        """The mixture at each state, from one forward pass (:class:`MixtureParams`)."""
        features = self.extract_features(obs, self.features_extractor)
        latent_pi = self.latent_pi(features)
        shape = (-1, self.n_components, self.action_dim)
        means = self.mu(latent_pi).view(shape)
        if self.use_sde:
            if self.clip_mean > 0.0:
                # SAC's Hardtanh on gSDE means: keeps them where tanh still has a gradient
                means = th.clamp(means, -self.clip_mean, self.clip_mean)
            log_stds = sde_log_stds(latent_pi, self.sde_std())
        else:
            log_stds = th.clamp(self.log_std(latent_pi), LOG_STD_MIN, LOG_STD_MAX).view(shape)
        if self.gate is not None:
            log_weights = gated_log_weights(self.gate(latent_pi), self.mixture_weight_floor)
        else:
            log_weights = self.log_mixture_weights.expand(means.shape[0], -1)
        return MixtureParams(means, log_stds, log_weights, latent_pi)

    def get_action_dist_params(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor, dict[str, th.Tensor]]:
        """
        SAC's ``Actor`` API for the mixture: the components' pre-squash means and log-stds, (B, N, D) each (with gSDE,
        the log-stds of each state), and in the keyword arguments the actor's log mixing weights ``log_weights``,
        (B, N), and with gSDE SAC's ``latent_sde``. Not one Gaussian: SB3's ``SquashedDiagGaussianDistribution`` cannot
        take them; :meth:`mixture_params` gives the same as one value.
        """
        params = self.mixture_params(obs)
        kwargs = {"log_weights": self._own_log_weights(params)}
        if self.use_sde:
            kwargs["latent_sde"] = params.latent
        return params.means, params.log_stds, kwargs

    # gSDE (docs/algorithm.md section 9) ----------------------------------------------------------------------------

    def sde_std(self) -> th.Tensor:
        """Std of every exploration-matrix entry, (N, L, D)."""
        if not isinstance(self.log_std, nn.Parameter):
            raise ValueError("sde_std() is only available with use_sde=True (gSDE)")
        std = sde_std(self.log_std, self.use_expln)
        return std if self.full_std else std * th.ones(1, 1, self.action_dim, device=std.device)

    def get_std(self) -> th.Tensor:
        """As SAC's ``Actor.get_std``: the gSDE stds, here one (L, D) matrix per component, (N, L, D)."""
        return self.sde_std()

    def reset_noise(self, batch_size: int = 1) -> None:
        """
        Draw new exploration matrices, as SB3's gSDE does: one per component for a whole batch
        (``exploration_mat``, (N, L, D)) and one per component for each of ``batch_size`` envs
        (``exploration_matrices``, (batch_size, N, L, D)).
        """
        if not self.use_sde:
            raise ValueError("reset_noise() is only available with use_sde=True (gSDE)")
        std = self.sde_std()
        distribution = th.distributions.Normal(th.zeros_like(std), std)
        # rsample: in train() the actions' gradient reaches log_std through the matrix, as in SAC
        self.exploration_mat = distribution.rsample()
        self.exploration_matrices = distribution.rsample((batch_size,))

    def exploration_noise(self, latent: th.Tensor) -> th.Tensor:
        """
        Pre-squash gSDE noise ``z(s) theta_i`` of every component, (B, N, D): one matrix per env when the batch is the
        envs' (as many rows as ``reset_noise(batch_size)`` drew, more than one), else the batch matrix (SB3's rule).
        """
        per_env = latent.shape[0] > 1 and latent.shape[0] == self.exploration_matrices.shape[0]
        return sde_noise(latent, self.exploration_matrices if per_env else self.exploration_mat)

    # Sampling ---------------------------------------------------------------------------------------------------

    def component_noise(self, params: MixtureParams, components: th.Tensor) -> th.Tensor:
        """Pre-squash noise of the given components, (B, M, D): gSDE's ``z(s) theta_i``, or ``sigma_i(s) eps``."""
        if self.use_sde:
            return gather_components(self.exploration_noise(params.latent), components)
        stds = th.exp(gather_components(params.log_stds, components))
        return stds * th.randn_like(stds)

    def act(self, params: MixtureParams, components: th.Tensor, deterministic: bool = False) -> th.Tensor:
        """Squashed action of the given component of each row, (B, D): its mean if deterministic, else a sample."""
        index = components.view(-1, 1)
        pre_squash = gather_components(params.means, index)[:, 0]
        if not deterministic:
            pre_squash = pre_squash + self.component_noise(params, index)[:, 0]
        return th.tanh(pre_squash)

    def training_samples(self, params: MixtureParams, component_sampling: str) -> MixtureSamples:
        """
        The samples of an update (docs/algorithm.md sections 2 and 4): one per component per state (``"all"``), or one
        from a component ~ w per state (``"sample"``); with gSDE, from the current exploration matrices (one per
        component for the whole batch, as in SAC).
        """
        components = None
        if component_sampling == "sample" and self.n_components > 1:
            # Only fixed weights allow it (sb3_mixture/options.py): every state's component from the one weight vector
            components = draw_components(self.log_mixture_weights, params.means.shape[0]).view(-1, 1)
        additive_noise = self.exploration_noise(params.latent) if self.use_sde else None
        return draw_mixture_samples(
            params.means, params.log_stds, params.log_weights, components, additive_noise=additive_noise
        )

    def _own_log_weights(self, params: MixtureParams) -> th.Tensor:
        """The actor's weights, (B, N), for acting alone (refused with soft-value weights, which need the critic)."""
        if self.mixture_weights == SOFT_VALUE_WEIGHTS:
            raise ValueError(
                "with mixture_weights='soft_value' the mixing weights come from the critic: act through the policy "
                "(model.predict, or model.policy(observation, deterministic)), not through policy.actor alone"
            )
        return params.log_weights

    def _draw_weights(self, log_weights: th.Tensor) -> th.Tensor:
        """What :func:`draw_components` draws from: the fixed weights once, (N,), or the gate's of each row, (B, N)."""
        return log_weights if self.gate is not None else self.log_mixture_weights

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        params = self.mixture_params(obs)
        log_weights = self._own_log_weights(params)
        if deterministic:
            components = mode_components(params.means, params.log_stds, log_weights)
        else:
            components = draw_components(self._draw_weights(log_weights), params.means.shape[0])
        return self.act(params, components, deterministic)

    def action_log_prob(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor]:
        """An action drawn from the mixture (component ~ w(s), then a ~ pi_i) and its mixture log-density."""
        params = self.mixture_params(obs)
        log_weights = self._own_log_weights(params)
        components = draw_components(self._draw_weights(log_weights), params.means.shape[0]).view(-1, 1)
        pre_squash = gather_components(params.means, components) + self.component_noise(params, components)
        cross = cross_log_probs(pre_squash, params.means, params.log_stds)
        log_prob = mixture_log_prob(cross, squash_log_jacobian(pre_squash), log_weights)
        return th.tanh(pre_squash[:, 0]), log_prob[:, 0]
