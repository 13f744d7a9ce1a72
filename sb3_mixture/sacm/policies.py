"""Policies for SACM: a mixture-of-squashed-Gaussians actor and twin critics with one Q-head per component."""

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BaseModel, ContinuousCritic
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor, FlattenExtractor, NatureCNN
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.sac.policies import Actor, SACPolicy
from torch import nn

from sb3_mixture.mixture import (
    LOG_STD_MAX,
    LOG_STD_MIN,
    component_soft_values,
    cross_log_probs,
    gated_log_weights,
    gather_components,
    gaussian_log_prob,
    mixture_log_prob,
    sample_pre_squash,
    sde_log_stds,
    sde_noise,
    sde_std,
    soft_value_log_weights,
    squash_log_jacobian,
)
from sb3_mixture.options import (
    LEARNED_WEIGHTS,
    SOFT_VALUE_WEIGHTS,
    STATE_DEPENDENT_WEIGHTS,
    validate_deterministic_component,
)
from sb3_mixture.sacm.schedule import ComponentSchedule
from sb3_mixture.torch_layers import EnsembleMLP

# Samples per component behind the soft values V_i(s) that set the acting weights with mixture_weights="soft_value"
ACTING_VALUE_SAMPLES = 8


@functools.cache
def fused_adam_supported(device_type: str = "cpu") -> bool:
    """
    Whether this torch's Adam can run fused on tensors of ``device_type`` (on the CPU from torch 2.4 on).

    Found by trying one step on a one-element tensor rather than from version strings: builds differ, and torch has
    moved the check between the constructor and ``step``. Cached: one probe per process and device type.
    """
    try:
        param = th.zeros(1, device=device_type, requires_grad=True)
        optimizer = th.optim.Adam([param], fused=True)
        param.grad = th.zeros_like(param)
        optimizer.step()
    except (RuntimeError, TypeError, ValueError):
        return False
    return True


class MixtureParams(NamedTuple):
    """The mixture at a batch of states (:meth:`MixtureActor.mixture_params`)."""

    means: th.Tensor
    """pre-squash component means, (B, N, D)"""
    log_stds: th.Tensor
    """clamped log-stds (with gSDE, of each state), (B, N, D)"""
    log_weights: th.Tensor
    """log mixing weights, (B, N)"""
    latent: th.Tensor
    """the trunk's output z(s), gSDE's features, (B, L)"""


class MixtureActor(Actor):
    """
    Actor of SACM: ``n_components`` tanh-squashed diagonal Gaussians over one shared trunk (docs/algorithm.md section 1).

    ``mu`` and ``log_std`` are SAC's heads widened to ``n_components * action_dim`` outputs, so a
    one-component mixture has exactly SAC's parameters. ``action_log_prob`` keeps SB3's contract:
    an action drawn from the mixture and its mixture log-density.

    With ``mixture_weights="learned"`` (docs/algorithm.md section 8) a zero-initialised linear gating head ``gate`` on the
    same trunk gives the weights of each state, ``w(s) = (1 - N eps) softmax(g(s)) + eps``, uniform at the start.

    With ``use_sde=True`` (gSDE, docs/algorithm.md section 9) every component has its own log-std matrix, ``log_std``
    of shape (N, L, D) (or (N, L, 1) without ``full_std``), and its own exploration matrix theta_i, resampled by
    ``reset_noise``; its pre-squash noise is ``z(s) theta_i`` with ``z(s)`` the trunk's output (learned features, as
    in SAC), so its std at a state is ``sqrt(sum_k z_k(s)^2 std_{i,k}^2)``.

    ``forward(obs, deterministic=True)`` plays the mean of the component chosen by :meth:`deterministic_components`,
    the one place that choice is made: ``predict(deterministic=True)`` goes through it, and so does SB3's export
    recipe, which wraps ``policy.actor(observation, deterministic=True)`` (README, "Exporting models").

    :param n_components: number of mixture components
    :param mixture_weights: fixed mixing weights (uniform if None), or ``"learned"``
    :param mixture_weight_floor: ``eps``, the least weight of a component with learned weights, in ``[0, 1/N)``
    """

    # How a deterministic action picks its component (docs/algorithm.md section 6). A MixturePolicy sets both from its
    # deterministic_component and use_component (their only writer) and hands its critic over for "best_q"
    deterministic_component: "str | int" = "mode"
    component_override: "int | None" = None

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
        mixture_weights: "list[float] | str | None" = None,
        mixture_weight_floor: float = 0.0,
    ):
        # Checked once by the algorithm (sb3_mixture/options.py); None stands for uniform weights
        weights = [1.0 / n_components] * n_components if mixture_weights is None else mixture_weights
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
        self.mixture_weights = weights
        self.mixture_weight_floor = float(mixture_weight_floor)
        self.learned_weights = weights == LEARNED_WEIGHTS
        # Learned or soft-value weights: w(s) differs between states, so draws need each row's log-weights
        self.state_dependent_weights = weights in STATE_DEPENDENT_WEIGHTS
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
        if self.learned_weights:
            self.gate = nn.Linear(last_layer_dim, n_components)
            # Zero logits: the mixture starts with uniform weights, like the fixed-weight default
            nn.init.zeros_(self.gate.weight)
            nn.init.zeros_(self.gate.bias)
        # With learned or soft-value weights the buffer is a uniform placeholder (the policy supplies w(s))
        fixed_weights = weights if isinstance(weights, list) else [1.0 / n_components] * n_components
        if weights == SOFT_VALUE_WEIGHTS:
            # alpha_i as the algorithm last tuned them (it writes them here, and they are saved): acting needs them
            self.register_buffer("component_temperatures", th.ones(n_components))
        # Fixed, derived from the constructor arguments: not part of the state dict
        self.register_buffer("log_mixture_weights", th.log(th.tensor(fixed_weights, dtype=th.float32)), persistent=False)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            dict(
                n_components=self.n_components,
                mixture_weights=self.mixture_weights,
                mixture_weight_floor=self.mixture_weight_floor,
            )
        )
        return data

    def mixture_params(self, obs: PyTorchObs) -> "MixtureParams":
        """
        The mixture at each state, from one forward pass: pre-squash means and clamped log-stds of every component,
        each (B, N, D), the log mixing weights (B, N) (the fixed weights repeated, or the gate's; a uniform placeholder
        with soft-value weights, which :meth:`state_log_weights` computes) and the trunk's output z(s), (B, L).
        """
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

    def mixture_log_weights(self, obs: PyTorchObs) -> th.Tensor:
        """``log w(s)``, (B, N): the weights the mixture acts with at each state, for every kind of ``mixture_weights``."""
        means, log_stds, log_weights, _ = self.mixture_params(obs)
        return self.state_log_weights(obs, means, log_stds, log_weights)

    def get_action_dist_params(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor, dict[str, th.Tensor]]:
        """
        The mixture's parameters: means and log standard deviations of shape (B, N, D), ``log_weights`` (B, N) and
        ``latent_sde`` (B, L), the features gSDE's noise is computed from.
        """
        means, log_stds, log_weights, latent = self.mixture_params(obs)
        return means, log_stds, {"log_weights": log_weights, "latent_sde": latent}

    def sample_components(self, batch_size: int, log_weights: "th.Tensor | None" = None) -> th.Tensor:
        """
        One component index per row, drawn from the mixing weights, (batch_size,).

        :param log_weights: ``log w(s)`` of each row, (batch_size, N): needed with learned or soft-value weights,
            ignored with fixed ones (which draw all rows at once, from one stream)
        """
        if not self.state_dependent_weights:
            return th.multinomial(self.log_mixture_weights.exp(), batch_size, replacement=True)
        if log_weights is None:
            raise ValueError(f"{self.mixture_weights} mixing weights depend on the state: pass the log_weights of each row")
        return th.multinomial(log_weights.detach().exp(), 1).view(batch_size)

    def mode_components(self, means: th.Tensor, log_stds: th.Tensor, log_weights: "th.Tensor | None" = None) -> th.Tensor:
        """
        Index of the component whose mean action has the highest mixture density (docs/algorithm.md section 6), (B,).

        :param log_weights: ``log w(s)``, (B, N); the fixed weights if None
        """
        cross = cross_log_probs(means, means, log_stds)
        weights = self.log_mixture_weights if log_weights is None else log_weights
        density = mixture_log_prob(cross, squash_log_jacobian(means), weights)
        return density.argmax(dim=-1)

    def act(
        self,
        means: th.Tensor,
        log_stds: th.Tensor,
        components: th.Tensor,
        deterministic: bool = False,
        latent: "th.Tensor | None" = None,
    ) -> th.Tensor:
        """
        Squashed action of the given component per row: its mean if deterministic, else a sample.

        :param latent: the trunk's output ``z(s)``, (B, L): needed for a gSDE sample
        """
        index = components.view(-1, 1)
        pre_squash = gather_components(means, index)[:, 0]
        if not deterministic:
            pre_squash = pre_squash + self.component_noise(log_stds, index, latent)[:, 0]
        return th.tanh(pre_squash)

    def component_noise(self, log_stds: th.Tensor, components: th.Tensor, latent: "th.Tensor | None") -> th.Tensor:
        """Pre-squash noise of the given components, (B, M, D): gSDE's ``z(s) theta_i``, or ``sigma_i(s) eps``."""
        if self.use_sde:
            if latent is None:
                raise ValueError("a gSDE sample needs the trunk's output: pass latent")
            return gather_components(self.exploration_noise(latent), components)
        stds = th.exp(gather_components(log_stds, components))
        return stds * th.randn_like(stds)

    def use_critic(self, critic: "MixtureCritic", critic_target: "MixtureCritic | None" = None) -> None:
        """
        The critic that judges the components for ``deterministic_component="best_q"``, and the target critic whose
        heads give the soft values of ``mixture_weights="soft_value"``.
        """
        # Kept out of the module tree (no nn.Module attribute): the critics' weights must not become the actor's
        # parameters, join its optimiser or its state dict
        self.__dict__["_best_q_critic"] = critic
        self.__dict__["_soft_value_critic_module"] = critic_target

    def _soft_value_critic(self) -> "MixtureCritic":
        critic = self.__dict__.get("_soft_value_critic_module")
        if critic is None:
            raise ValueError(
                "mixture_weights='soft_value' needs the target critic: build the actor through a MixturePolicy, "
                "or hand it one with use_critic(critic, critic_target)"
            )
        return critic

    # Mixing weights at a state (docs/algorithm.md sections 1, 8 and 10) -------------------------------------------

    def soft_value_log_weights(
        self,
        obs: PyTorchObs,
        means: th.Tensor,
        log_stds: th.Tensor,
        pre_squash: "th.Tensor | None" = None,
        alphas: "th.Tensor | None" = None,
    ) -> th.Tensor:
        """
        ``log w(s)`` from the components' own soft values (docs/algorithm.md section 10), (B, N), without gradient:
        ``V_i(s) = E_{a ~ pi_i}[min_k Qbar_{k,i}(s, a) - alpha_i log pi_i(a|s)]`` from head i of the target critic,
        estimated on S samples per component; ``w = (1 - N eps) softmax(V / alpha) + eps`` with alpha the mean of
        the temperatures.

        :param means: pre-squash component means at ``obs``, (B, N, D)
        :param log_stds: their log-stds (with gSDE, the stds of each state), (B, N, D)
        :param pre_squash: S pre-squash samples of every component, (B, N, S, D); None draws
            :data:`ACTING_VALUE_SAMPLES` of them
        :param alphas: the temperatures alpha_i, (N,); None: ``component_temperatures``, as the algorithm last wrote them
        """
        batch_size, n_components, action_dim = means.shape
        with th.no_grad():
            if pre_squash is None:
                noise = th.randn(batch_size, n_components, ACTING_VALUE_SAMPLES, action_dim, device=means.device)
                pre_squash = sample_pre_squash(means.unsqueeze(2), log_stds.unsqueeze(2), noise)  # (B, N, S, D)
            n_samples = pre_squash.shape[2]
            own_log_prob = gaussian_log_prob(pre_squash, means.unsqueeze(2), log_stds.unsqueeze(2))
            own_log_prob = own_log_prob - squash_log_jacobian(pre_squash)
            actions = th.tanh(pre_squash).view(batch_size, n_components * n_samples, action_dim)
            q_values = self._soft_value_critic().q_values(obs, actions).min(dim=0).values  # (B, N * S, N heads)
            q_values = q_values.view(batch_size, n_components, n_samples, n_components)
            own_q = q_values.diagonal(dim1=1, dim2=3).permute(0, 2, 1)  # head i at component i's samples, (B, N, S)
            alphas = self.component_temperatures if alphas is None else alphas
            values = component_soft_values(own_q, own_log_prob, alphas)
            return soft_value_log_weights(values, alphas.mean(), self.mixture_weight_floor)

    def state_log_weights(self, obs: PyTorchObs, means: th.Tensor, log_stds: th.Tensor, log_weights: th.Tensor) -> th.Tensor:
        """The ``log w(s)`` the mixture acts with: ``log_weights`` of :meth:`mixture_params` (fixed or learned), or
        the soft-value weights."""
        if self.mixture_weights == SOFT_VALUE_WEIGHTS:
            return self.soft_value_log_weights(obs, means, log_stds)
        return log_weights

    def deterministic_components(
        self, obs: PyTorchObs, means: th.Tensor, log_stds: th.Tensor, log_weights: "th.Tensor | None" = None
    ) -> th.Tensor:
        """
        The component whose mean a deterministic action plays, (B,): the ``use_component`` override if set, else as
        ``deterministic_component`` says (docs/algorithm.md section 6).

        :param log_weights: ``log w(s)``, (B, N), for ``"mode"``; the fixed weights if None
        """
        batch_size = means.shape[0]
        if self.component_override is not None:
            return th.full((batch_size,), self.component_override, dtype=th.long, device=means.device)
        if self.deterministic_component == "mode":
            return self.mode_components(means, log_stds, log_weights)
        if self.deterministic_component == "best_q":
            return self._best_q_components(obs, means)
        return th.full((batch_size,), int(self.deterministic_component), dtype=th.long, device=means.device)

    def _best_q_components(self, obs: PyTorchObs, means: th.Tensor) -> th.Tensor:
        critic = self.__dict__.get("_best_q_critic")
        if critic is None:
            raise ValueError(
                "deterministic_component='best_q' needs the critic: build the actor through a MixturePolicy, "
                "or hand it one with use_critic(critic)"
            )
        # The critic's weights enter as values, not as its parameters: the choice is an argmax, with no gradient to pass
        # on, and an actor traced or exported on its own (SB3's recipe wraps policy.actor) holds them as constants,
        # which a tracer can only do for tensors that do not require grad. TorchScript's tracer would record detach()
        # on the parameter (so hold the parameter itself) but does not record .data; torch.export traces detach().
        tracing = th.jit.is_tracing()
        if tracing and not critic.share_features_extractor and any(True for _ in critic.features_extractor.parameters()):
            raise ValueError(
                "a traced actor with deterministic_component='best_q' needs a critic whose features extractor has no "
                "weights of its own (e.g. MlpPolicy, or share_features_extractor=True)"
            )
        features = critic.extract_features(obs, critic.features_extractor)
        ensemble = critic.q_ensemble
        weights = [weight.data if tracing else weight.detach() for weight in ensemble.weights]
        biases = [bias.data if tracing else bias.detach() for bias in ensemble.biases]
        q_values = ensemble.forward_state_actions(features, th.tanh(means), weights, biases)  # (K, B, N actions, N heads)
        # Head i judges component i's mean action; pessimistic over the critics
        return q_values.diagonal(dim1=-2, dim2=-1).min(dim=0).values.argmax(dim=-1)

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        means, log_stds, log_weights, latent = self.mixture_params(obs)
        log_weights = self.state_log_weights(obs, means, log_stds, log_weights)
        if deterministic:
            components = self.deterministic_components(obs, means, log_stds, log_weights)
        elif self.component_override is not None:
            components = th.full((means.shape[0],), self.component_override, dtype=th.long, device=means.device)
        else:
            components = self.sample_components(means.shape[0], log_weights)
        return self.act(means, log_stds, components, deterministic, latent)

    def action_log_prob(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor]:
        """An action drawn from the mixture (component ~ w(s), then a ~ pi_i) and its mixture log-density."""
        means, log_stds, log_weights, latent = self.mixture_params(obs)
        log_weights = self.state_log_weights(obs, means, log_stds, log_weights)
        components = self.sample_components(means.shape[0], log_weights).view(-1, 1)
        pre_squash = gather_components(means, components) + self.component_noise(log_stds, components, latent)
        cross = cross_log_probs(pre_squash, means, log_stds)
        log_prob = mixture_log_prob(cross, squash_log_jacobian(pre_squash), log_weights)
        return th.tanh(pre_squash[:, 0]), log_prob[:, 0]


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

    def forward(self, obs: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, ...]:
        return tuple(self.q_values(obs, actions).unbind(0))

    def q1_forward(self, obs: th.Tensor, actions: th.Tensor) -> th.Tensor:
        with th.no_grad():
            return self.q_values(obs, actions)[0]


class MixturePolicy(SACPolicy):
    """
    SAC's policy with a mixture actor and per-component critic heads.

    Stochastic acting (docs/algorithm.md section 6) draws a component per environment according to
    ``component_schedule`` and samples from it; ``predict`` honours ``episode_start`` for the
    ``"episode"`` schedule. Deterministic acting plays the mean of the component chosen by
    ``deterministic_component``.

    :param n_components: number of mixture components
    :param mixture_weights: fixed mixing weights (uniform if None), ``"learned"`` (a gating head, docs/algorithm.md
        section 8) or ``"soft_value"`` (from the components' soft values, section 10)
    :param mixture_weight_floor: least weight of a component with state-dependent weights, in ``[0, 1/N)``
    :param component_schedule: ``"step"``, ``"episode"`` or an int k (a new component every k steps)
    :param deterministic_component: ``"mode"``, ``"best_q"`` or a fixed component index
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
        component_schedule: "str | int" = "step",
        deterministic_component: "str | int" = "mode",
        full_std: bool = True,
    ):
        # Needed by make_actor/make_critic, which SACPolicy.__init__ calls
        self.full_std = bool(full_std)
        # Checked once by the algorithm (sb3_mixture/options.py): the policy trusts what it is given
        self.n_components = int(n_components)
        self.mixture_weights = [1.0 / n_components] * n_components if mixture_weights is None else mixture_weights
        self.mixture_weight_floor = float(mixture_weight_floor)
        self.component_schedule = component_schedule
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
        # The schedule predict() acts with (not saved: a loaded policy draws afresh); during rollouts the algorithm
        # lends its own (using_schedule), so that evaluations in between keep apart from the training envs' draws
        self.schedule = ComponentSchedule(self.component_schedule, self.actor.sample_components)
        self._active_schedule = self.schedule
        self.acting_components: np.ndarray | None = None
        """the components of the last stochastic step, one per environment"""
        # The deterministic choice and the soft-value weights are the actor's (so that policy.actor alone acts as
        # predict): it gets the setting, the critic that "best_q" asks and the target critic of the soft values
        self.actor.deterministic_component = deterministic_component
        self.actor.use_critic(self.critic, self.critic_target)

    @property
    def deterministic_component(self) -> "str | int":
        """Component played by deterministic actions: ``"mode"``, ``"best_q"`` or an index (held by the actor)."""
        return self.actor.deterministic_component

    @deterministic_component.setter
    def deterministic_component(self, deterministic_component: "str | int") -> None:
        self.actor.deterministic_component = validate_deterministic_component(deterministic_component, self.n_components)

    @property
    def component_override(self) -> "int | None":
        """The component set by :meth:`use_component`, None outside it (held by the actor)."""
        return self.actor.component_override

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            dict(
                n_components=self.n_components,
                mixture_weights=self.mixture_weights,
                mixture_weight_floor=self.mixture_weight_floor,
                component_schedule=self.component_schedule,
                deterministic_component=self.deterministic_component,
                full_std=self.full_std,
            )
        )
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
        if not 0 <= component < self.n_components:
            raise ValueError(f"component must be in [0, {self.n_components}), got {component}")
        previous, self.actor.component_override = self.actor.component_override, component
        try:
            yield
        finally:
            self.actor.component_override = previous

    @contextmanager
    def using_schedule(self, schedule: ComponentSchedule) -> Iterator[None]:
        """Act with another component schedule, e.g. the algorithm's for its training envs."""
        previous, self._active_schedule = self._active_schedule, schedule
        try:
            yield
        finally:
            self._active_schedule = previous

    def next_components(self, n_envs: int, log_weights: "th.Tensor | None" = None) -> np.ndarray:
        """
        Advance the component schedule in use by one step and return the acting component of each env.

        :param log_weights: ``log w(s)`` at each env's observation, (n_envs, N): a redraw draws from w(s)
            (needed with learned or soft-value weights)
        """
        if self.component_override is not None:
            components = np.full(n_envs, self.component_override, dtype=np.int64)
        else:
            components = self._active_schedule.advance(n_envs, log_weights)
        self.acting_components = components
        return components

    def predict(
        self,
        observation: "np.ndarray | dict[str, np.ndarray]",
        state: "tuple[np.ndarray, ...] | None" = None,
        episode_start: "np.ndarray | None" = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, "tuple[np.ndarray, ...] | None"]:
        if episode_start is not None:
            # SB3's predict does not hand episode_start on to _predict: the schedule keeps it for its next step
            self._active_schedule.mark_episode_start(episode_start)
        return super().predict(observation, state, episode_start, deterministic)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        if deterministic:
            # The actor's own deterministic action: one code path for predict and an exported policy.actor
            return self.actor(observation, deterministic=True)
        means, log_stds, log_weights, latent = self.actor.mixture_params(observation)
        log_weights = self.actor.state_log_weights(observation, means, log_stds, log_weights)
        components = th.as_tensor(self.next_components(means.shape[0], log_weights), device=means.device)
        return self.actor.act(means, log_stds, components, deterministic, latent)


MlpPolicy = MixturePolicy


class CnnPolicy(MixturePolicy):
    """:class:`MixturePolicy` with SB3's ``NatureCNN`` features extractor, for image observations."""

    def __init__(self, *args: Any, features_extractor_class: type[BaseFeaturesExtractor] = NatureCNN, **kwargs: Any):
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)


class MultiInputPolicy(MixturePolicy):
    """:class:`MixturePolicy` with SB3's ``CombinedExtractor``, for Dict observations."""

    def __init__(self, *args: Any, features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor, **kwargs: Any):
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)
