"""Soft Actor-Critic with a mixture policy (SACM), docs/algorithm.md sections 3-6."""

import contextlib
import io
import pathlib
from collections.abc import Iterator
from typing import Any, ClassVar, NamedTuple, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.base_class import maybe_make_env
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import polyak_update

from sb3_mixture.buffers import MixtureDictReplayBuffer, MixtureReplayBuffer
from sb3_mixture.conversion import check_saved_algorithm, mixture_from_sac
from sb3_mixture.entropy import MixtureSamples, draw_mixture_samples, entropy_terms, weighted_entropy
from sb3_mixture.mixture import draw_components, gaussian_kl, weight_entropy
from sb3_mixture.options import POLICY_OPTIONS, SOFT_VALUE_WEIGHTS, MixtureOptions, validate_ent_coef, validate_options
from sb3_mixture.sacm.acting import near_best, soft_value_log_weights_at
from sb3_mixture.sacm.actor import MixtureParams
from sb3_mixture.sacm.critic import MixtureCritic
from sb3_mixture.sacm.diversity import (
    StateDiscriminator,
    acting_log_prior,
    discriminator_loss,
    diversity_bonus,
)
from sb3_mixture.sacm.losses import actor_loss, critic_loss, mixture_next_values, own_next_values, temperature_loss
from sb3_mixture.sacm.policies import CnnPolicy, MixturePolicy, MlpPolicy, MultiInputPolicy

SelfSACM = TypeVar("SelfSACM", bound="SACM")


class UpdateStats(NamedTuple):
    """What one gradient step logs (``train/...``), each a tensor without gradient."""

    actor_loss: th.Tensor
    critic_loss: th.Tensor
    ent_coef_loss: th.Tensor
    entropy: th.Tensor
    """the estimator's mixture entropy, mean over the batch"""
    entropy_marginal: th.Tensor
    """the components' own entropies weighted by w, mean over the batch"""
    weight_entropy: th.Tensor
    """H(w(s)), mean over the batch"""
    ent_coefs: th.Tensor
    """alpha_i, (N,)"""
    mean_weights: th.Tensor
    """each component's mean weight over the batch, (N,)"""
    discriminator_loss: th.Tensor
    """the diversity bonus's discriminator loss (0 without a bonus)"""
    mean_bonus: th.Tensor
    """each head's mean diversity bonus over the batch, (N,)"""

    @staticmethod
    def mean(steps: "list[UpdateStats]") -> "UpdateStats":
        """Field by field, the mean over gradient steps."""
        return UpdateStats(*(th.stack(values).mean(dim=0) for values in zip(*steps, strict=True)))


class SACM(SAC):
    """
    Soft Actor-Critic Mixture: SAC with an N-component Gaussian-mixture actor.

    Paper: "Maximum Entropy Reinforcement Learning with Mixture Policies"; the algorithm as implemented is
    stated in docs/algorithm.md. Takes every argument of SB3's :class:`~stable_baselines3.SAC`, plus the mixture's
    own: ``n_components``, ``mixture_weights`` (fixed, ``"learned"`` or ``"soft_value"``),
    ``mixture_weight_floor``, ``entropy_estimator``, ``critic_data``, ``component_schedule``,
    ``deterministic_component``, ``return_window``, ``return_exploration``, ``return_margin``, ``diversity_weight``,
    ``diversity_start``, ``component_sampling`` and ``matmul_precision``, each described in
    docs/modules/sacm.md ("Parameters"), and checked at construction by :func:`sb3_mixture.options.validate_options`.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: MixturePolicy

    def __init__(
        self,
        policy: "str | type[MixturePolicy]",
        env: "GymEnv | str",
        learning_rate: "float | Schedule" = 3e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 100,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: "int | tuple[int, str]" = 1,
        gradient_steps: int = 1,
        action_noise: "ActionNoise | None" = None,
        replay_buffer_class: "type[ReplayBuffer] | None" = None,
        replay_buffer_kwargs: "dict[str, Any] | None" = None,
        optimize_memory_usage: bool = False,
        n_steps: int = 1,
        ent_coef: "str | float" = "auto",
        target_update_interval: int = 1,
        target_entropy: "str | float" = "auto",
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        use_sde_at_warmup: bool = False,
        stats_window_size: int = 100,
        tensorboard_log: "str | None" = None,
        policy_kwargs: "dict[str, Any] | None" = None,
        verbose: int = 0,
        seed: "int | None" = None,
        device: "th.device | str" = "auto",
        n_components: int = 3,
        mixture_weights: "list[float] | str | None" = None,
        mixture_weight_floor: "float | None" = None,
        entropy_estimator: str = "mixed_marginal",
        critic_data: str = "shared",
        component_schedule: str = "step",
        deterministic_component: "str | int" = "mode",
        component_sampling: str = "all",
        matmul_precision: str = "fp32",
        return_window: int = 10,
        return_exploration: float = 0.1,
        return_margin: float = 0.05,
        diversity_weight: float = 0.0,
        diversity_start: int = 0,
        _init_setup_model: bool = True,
    ):
        # Every argument is checked here, once, at construction, so that bad input never reaches train()
        options = self.check_options(
            n_components=n_components,
            mixture_weights=mixture_weights,
            mixture_weight_floor=mixture_weight_floor,
            entropy_estimator=entropy_estimator,
            critic_data=critic_data,
            component_schedule=component_schedule,
            deterministic_component=deterministic_component,
            component_sampling=component_sampling,
            matmul_precision=matmul_precision,
            return_window=return_window,
            return_exploration=return_exploration,
            return_margin=return_margin,
            diversity_weight=diversity_weight,
            diversity_start=diversity_start,
            replay_buffer_class=replay_buffer_class,
            n_steps=n_steps,
        )
        # Flat attributes, as SB3 keeps its hyperparameters: saved with the model and read back by load()
        self.__dict__.update(vars(options))
        ent_coef = validate_ent_coef(ent_coef)
        policy_kwargs = dict(policy_kwargs or {})
        for key in POLICY_OPTIONS:
            if key in policy_kwargs and policy_kwargs[key] != getattr(self, key):
                raise ValueError(f"pass {key} to SACM directly, not in policy_kwargs (got {key}={policy_kwargs[key]!r} there)")
        if env is not None:
            env = maybe_make_env(env, verbose)
            if not isinstance(env.action_space, spaces.Box):
                raise ValueError(
                    f"SACM needs a continuous (gymnasium.spaces.Box) action space, got {type(env.action_space).__name__}"
                )

        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=tau,
            gamma=gamma,
            train_freq=train_freq,
            gradient_steps=gradient_steps,
            action_noise=action_noise,
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            optimize_memory_usage=optimize_memory_usage,
            n_steps=n_steps,
            ent_coef=ent_coef,
            target_update_interval=target_update_interval,
            target_entropy=target_entropy,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            use_sde_at_warmup=use_sde_at_warmup,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
        )
        if _init_setup_model:
            self._setup_model()

    @classmethod
    def check_options(cls, **options: Any) -> MixtureOptions:
        """
        The mixture's arguments (and SAC's ``replay_buffer_class`` and ``n_steps``) checked as this algorithm's
        constructor checks them, by :func:`sb3_mixture.options.validate_options`: the tuner asks the same question.
        """
        per_head_entropy = cls._head_entropies is not SACM._head_entropies
        return validate_options(**options, algorithm=cls.__name__, per_head_entropy=per_head_entropy)

    def _setup_model(self) -> None:
        for key in POLICY_OPTIONS:
            self.policy_kwargs[key] = getattr(self, key)
        if self.critic_data != "shared" or self.diversity_weight > 0.0:
            # The package's buffer stores each transition's acting component: own-data heads and the discriminator
            if self.replay_buffer_class is None:
                is_dict = isinstance(self.observation_space, spaces.Dict)
                self.replay_buffer_class = MixtureDictReplayBuffer if is_dict else MixtureReplayBuffer
            self.replay_buffer_kwargs.update(n_components=self.n_components)
        super()._setup_model()
        # Saved with the model, so that load() can tell which algorithm wrote a file (SACM and S2ACM files look alike)
        self.algorithm_name = type(self).__name__
        # One temperature per component (docs/algorithm.md section 5), starting where SAC would start its single one
        if self.log_ent_coef is not None:
            initial_log_ent_coef = self.log_ent_coef.detach()
            self.log_ent_coef = initial_log_ent_coef.expand(self.n_components).clone().requires_grad_(True)
            self.ent_coef_optimizer = th.optim.Adam([self.log_ent_coef], lr=self.lr_schedule(1))
        self._sync_acting_temperatures()
        self._component_counts = np.zeros(self.n_components, dtype=np.int64)
        # What each training env's episode in progress has earned so far (component_schedule other than "step")
        self._episode_returns: np.ndarray | None = None
        # The diversity bonus's discriminator q(i|s) (docs/algorithm.md section 11), on features of the policy's kind
        self.discriminator: StateDiscriminator | None = None
        if self.diversity_weight > 0.0:
            extractor = self.policy.make_features_extractor()
            net_arch = self.policy.actor_kwargs["net_arch"]
            self.discriminator = StateDiscriminator(extractor.features_dim, self.n_components, net_arch, extractor)
            self.discriminator.to(self.device)
            self.discriminator.optimizer = self.policy.optimizer_class(  # type: ignore[assignment]
                self.discriminator.parameters(), lr=self.lr_schedule(1), **self.policy.optimizer_kwargs
            )

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts, variables = super()._get_torch_save_params()
        if self.discriminator is not None:
            state_dicts += ["discriminator", "discriminator.optimizer"]
        return state_dicts, variables

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, BaseCallback]:
        if reset_num_timesteps or self._last_obs is None:
            # SB3 resets the envs: every env starts a new episode, so the schedule starts afresh
            self.policy.component_choice.training_schedule.reset()
            self._episode_returns = None
        self._sync_acting_temperatures()  # after load() or from_sac(), which set the temperatures afterwards
        return super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)

    # Acting -----------------------------------------------------------------------------------------------------

    def _sample_action(
        self,
        learning_starts: int,
        action_noise: "ActionNoise | None" = None,
        n_envs: int = 1,
    ) -> tuple[np.ndarray, np.ndarray]:
        choice = self.policy.component_choice
        # The training envs act with their own schedule: evaluations in between (callbacks) use predict's
        with choice.training_envs():
            if self.num_timesteps < learning_starts and not (self.use_sde and self.use_sde_at_warmup):
                # Warm-up actions are uniform, but the schedule still runs so that every transition has a component
                observation, _ = self.policy.obs_to_tensor(self._last_obs)
                with th.no_grad():
                    choice.next_components(self.policy.mixture_log_weights(observation))
            action, buffer_action = super()._sample_action(learning_starts, action_noise, n_envs)
        acting = choice.last_components
        assert acting is not None
        self._component_counts += np.bincount(acting, minlength=self.n_components)
        if isinstance(self.replay_buffer, (MixtureReplayBuffer, MixtureDictReplayBuffer)):
            self.replay_buffer.set_acting_components(acting)
        return action, buffer_action

    def _store_transition(
        self,
        replay_buffer: ReplayBuffer,
        buffer_action: np.ndarray,
        new_obs: "np.ndarray | dict[str, np.ndarray]",
        reward: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)
        choice = self.policy.component_choice
        if self.component_schedule != "step":
            # One component acts for a whole episode: what the episode earned (the env's own reward, before any
            # VecNormalize) is that component's (docs/algorithm.md section 12)
            original = self._vec_normalize_env.get_original_reward() if self._vec_normalize_env is not None else reward
            if self._episode_returns is None or len(self._episode_returns) != len(dones):
                self._episode_returns = np.zeros(len(dones))
            self._episode_returns += original
            components = choice.training_schedule.components
            assert components is not None
            for env_index in np.flatnonzero(dones):
                choice.record_episode(int(components[env_index]), float(self._episode_returns[env_index]))
                self._episode_returns[env_index] = 0.0
        choice.episodes_started(dones, training=True)

    def dump_logs(self) -> None:
        total = self._component_counts.sum()
        if total > 0:
            for index, count in enumerate(self._component_counts):
                self.logger.record(f"rollout/component_share_{index}", count / total)
            self._component_counts[:] = 0
        for index, recent in enumerate(self.policy.component_choice.recent_returns().tolist()):
            if np.isfinite(recent):
                self.logger.record(f"rollout/component_return_{index}", recent)
        super().dump_logs()

    # Training ---------------------------------------------------------------------------------------------------

    def _draw_samples(
        self, means: th.Tensor, log_stds: th.Tensor, log_weights: th.Tensor, latent: th.Tensor
    ) -> MixtureSamples:
        """
        One sample per component per state (``"all"``), or one from a component ~ w per state (``"sample"``); with
        gSDE, from the current exploration matrices (one per component for the whole batch, as in SAC).
        """
        components = None
        if self.component_sampling == "sample" and self.n_components > 1:
            # Only fixed weights allow it (sb3_mixture/options.py): every state's component from the one weight vector
            components = draw_components(self.actor.log_mixture_weights, means.shape[0]).view(-1, 1)
        additive_noise = self.actor.exploration_noise(latent) if self.use_sde else None
        return draw_mixture_samples(means, log_stds, log_weights, components, additive_noise=additive_noise)

    def _head_entropies(self, samples: MixtureSamples, terms: th.Tensor) -> th.Tensor:
        """Entropy bonus of each critic head's target, (B, N): SACM gives every head the full estimate."""
        return weighted_entropy(samples, terms).unsqueeze(-1).expand(-1, self.n_components)

    def _network_precision(self) -> contextlib.AbstractContextManager:
        """Autocast for the network passes of ``train()`` with ``matmul_precision="bf16"``; outputs are cast back."""
        if self.matmul_precision == "bf16":
            return th.autocast(device_type=self.device.type, dtype=th.bfloat16)
        return contextlib.nullcontext()

    def _mixture_params(self, observations: th.Tensor) -> MixtureParams:
        """The actor's mixture at the batch's states, in float32."""
        with self._network_precision():
            params = self.actor.mixture_params(observations)
        return MixtureParams(*(param.float() for param in params))

    def _q_values(self, critic: MixtureCritic, observations: th.Tensor, actions: th.Tensor) -> th.Tensor:
        with self._network_precision():
            q_values = critic.q_values(observations, actions)
        return q_values.float()

    def _sync_acting_temperatures(self) -> None:
        """Soft-value weights act with the alpha_i (docs/algorithm.md section 10): the policy keeps a copy to act with."""
        if self.mixture_weights == SOFT_VALUE_WEIGHTS:
            self.policy.component_choice.component_temperatures.copy_(self._temperatures())

    def _soft_value_log_weights(
        self, observations: th.Tensor, samples: MixtureSamples, means: th.Tensor, log_stds: th.Tensor, alphas: th.Tensor
    ) -> th.Tensor:
        """w(s) from the soft values of the batch's own samples, one per component (docs/algorithm.md section 10)."""
        pre_squash = samples.pre_squash.detach().unsqueeze(2)
        return soft_value_log_weights_at(
            self.critic_target, observations, means.detach(), log_stds.detach(), pre_squash, alphas, self.mixture_weight_floor
        )

    def _temperatures(self) -> th.Tensor:
        """Current alpha_i of every component, (N,), detached."""
        if self.log_ent_coef is not None:
            return th.exp(self.log_ent_coef.detach())
        return self.ent_coef_tensor.expand(self.n_components)

    def _critic_target(self, replay_data: Any, alphas: th.Tensor, bonus: "th.Tensor | None" = None) -> th.Tensor:
        """
        y_i = r + bonus_i(s') + gamma (1 - done) v_i(s'), (B, N): docs/algorithm.md section 3 (section 10 with soft-value
        weights; the diversity bonus of section 11, (B, N), if any).
        """
        observations = replay_data.next_observations
        discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
        with th.no_grad():
            means, log_stds, log_weights, latent = self._mixture_params(observations)
            samples = self._draw_samples(means, log_stds, log_weights, latent)
            next_q = self._q_values(self.critic_target, observations, samples.actions).min(dim=0).values  # (B, M, N)
            if self.mixture_weights == SOFT_VALUE_WEIGHTS:
                next_value = own_next_values(next_q, samples, alphas)
            else:
                terms = entropy_terms(self.entropy_estimator, samples, log_weights, means, log_stds)
                next_value = mixture_next_values(next_q, samples, log_weights, alphas, self._head_entropies(samples, terms))
            rewards = replay_data.rewards if bonus is None else replay_data.rewards + bonus
            return rewards + (1 - replay_data.dones) * discounts * next_value

    def _diversity_step(self, replay_data: Any) -> "tuple[th.Tensor | None, th.Tensor]":
        """
        One step of the discriminator q(i|s') on the acting components of the batch, and every head's bonus at every
        transition, (B, N), from q before its step (docs/algorithm.md section 11); (None, 0) without a bonus.
        """
        if self.discriminator is None:
            return None, th.zeros((), device=self.device)
        next_observations = preprocess_obs(replay_data.next_observations, self.observation_space, self.policy.normalize_images)
        log_probs = self.discriminator.log_probs(next_observations)
        acting = replay_data.head_masks.argmax(dim=-1)
        loss = discriminator_loss(log_probs, acting)
        self._optimizer_step(self.discriminator.optimizer, loss, "discriminator loss")
        log_prior = acting_log_prior(acting, self.n_components)
        return diversity_bonus(log_probs.detach(), self._diversity_gate(), self.diversity_weight, log_prior), loss.detach()

    def _diversity_gate(self) -> th.Tensor:
        """Which components are charged: those whose recent return is near the best, once ``diversity_start``
        environment steps have passed (the gate shut before, while returns mean little), (N,) bool."""
        if self.num_timesteps < self.diversity_start:
            return th.zeros(self.n_components, dtype=th.bool)
        return near_best(self.policy.component_choice.recent_returns().cpu(), self.return_margin)

    def _own_min_q(self, observations: th.Tensor, samples: MixtureSamples) -> th.Tensor:
        """min_k Q_{k,c_m}(s, a_m): every sample judged by its own component's head, (B, M)."""
        q_values = self._q_values(self.critic, observations, samples.actions)  # (K, B, M, N)
        head_index = samples.components.unsqueeze(0).unsqueeze(-1).expand(q_values.shape[0], -1, -1, 1)
        return th.gather(q_values, -1, head_index).squeeze(-1).min(dim=0).values

    @contextlib.contextmanager
    def _critic_frozen(self) -> Iterator[None]:
        self.critic.q_ensemble.requires_grad_(False)
        try:
            yield
        finally:
            self.critic.q_ensemble.requires_grad_(True)

    def _optimizer_step(self, optimizer: th.optim.Optimizer, loss: th.Tensor, name: str) -> None:
        self._check_finite(loss, name)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def _update_stats(
        self,
        policy_loss: th.Tensor,
        q_loss: th.Tensor,
        ent_coef_loss: th.Tensor,
        q_disc_loss: th.Tensor,
        bonus: "th.Tensor | None",
        samples: MixtureSamples,
        terms: th.Tensor,
        log_weights: th.Tensor,
        alphas: th.Tensor,
    ) -> UpdateStats:
        """What one update logs (averaged over the gradient steps and recorded by :meth:`_record_train_stats`)."""
        with th.no_grad():
            # With soft-value weights the samples' weights are 1/N: the mixture's entropy weighs them by w(s)
            soft_value = self.mixture_weights == SOFT_VALUE_WEIGHTS
            entropy_samples = samples._replace(sample_weights=log_weights.exp()) if soft_value else samples
            return UpdateStats(
                actor_loss=policy_loss.detach(),
                critic_loss=q_loss.detach(),
                ent_coef_loss=ent_coef_loss.detach(),
                entropy=weighted_entropy(entropy_samples, terms).mean(),
                entropy_marginal=(samples.sample_weights * -samples.own_log_prob).sum(dim=-1).mean(),
                weight_entropy=weight_entropy(log_weights).mean(),
                ent_coefs=alphas,
                mean_weights=log_weights.exp().mean(dim=0),
                discriminator_loss=q_disc_loss,
                mean_bonus=th.zeros(self.n_components, device=self.device) if bonus is None else bonus.mean(dim=0),
            )

    @staticmethod
    def _check_finite(loss: th.Tensor, name: str) -> None:
        if not th.isfinite(loss):
            raise RuntimeError(
                f"SACM: the {name} is {loss.item()} (NaN or inf); training stopped before the update. "
                "Check the rewards and observations for NaN/inf, or lower the learning rate."
            )

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers += [self.ent_coef_optimizer]
        if self.discriminator is not None:
            optimizers += [self.discriminator.optimizer]
        self._update_learning_rate(optimizers)

        stats: list[UpdateStats] = []
        for gradient_step in range(gradient_steps):
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            if self.use_sde:
                # New exploration matrices every gradient step, as SAC does
                self.actor.reset_noise()

            # Samples of the components at the current states and their entropy terms (docs/algorithm.md sections 2, 4)
            alphas = self._temperatures()
            means, log_stds, log_weights, latent = self._mixture_params(replay_data.observations)
            samples = self._draw_samples(means, log_stds, log_weights, latent)
            if self.mixture_weights == SOFT_VALUE_WEIGHTS:
                # w(s) enters the estimator only; the samples keep weight 1/N (docs/algorithm.md section 10)
                log_weights = self._soft_value_log_weights(replay_data.observations, samples, means, log_stds, alphas)
            terms = entropy_terms(self.entropy_estimator, samples, log_weights, means, log_stds)

            # Temperatures (eq. 13)
            ent_coef_loss = th.zeros((), device=self.device)
            if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
                ent_coef_loss = temperature_loss(self.log_ent_coef, samples, self.target_entropy)
                self._optimizer_step(self.ent_coef_optimizer, ent_coef_loss, "entropy coefficient loss")
                self._sync_acting_temperatures()

            # Discriminator and each head's diversity bonus (docs/algorithm.md section 11)
            bonus, q_disc_loss = self._diversity_step(replay_data)

            # Critic (docs/algorithm.md section 3)
            target_q = self._critic_target(replay_data, alphas, bonus)
            current_q = self._q_values(self.critic, replay_data.observations, replay_data.actions)  # (K, B, N)
            head_masks = replay_data.head_masks if self.critic_data == "own" else None
            q_loss = critic_loss(current_q, target_q, head_masks)
            self._optimizer_step(self.critic.optimizer, q_loss, "critic loss")

            # Actor (eqs. 11-12), judged by the critic after its step. The critic's weights get no gradient from it
            # (SAC computes and discards one): a third less work here.
            with self._critic_frozen():
                policy_loss = actor_loss(self._own_min_q(replay_data.observations, samples), terms, samples, alphas)
                self._optimizer_step(self.actor.optimizer, policy_loss, "actor loss")

            if gradient_step % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)
            stats.append(
                self._update_stats(policy_loss, q_loss, ent_coef_loss, q_disc_loss, bonus, samples, terms, log_weights, alphas)
            )

        self._n_updates += gradient_steps
        self._record_train_stats(UpdateStats.mean(stats), means.detach(), log_stds.detach())

    def _record_train_stats(self, stats: "UpdateStats", means: th.Tensor, log_stds: th.Tensor) -> None:
        # Temperatures as used by the updates (before their own step), like SAC's train/ent_coef
        alphas, mean_weights = stats.ent_coefs.tolist(), stats.mean_weights.tolist()
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/ent_coef", float(np.dot(mean_weights, alphas)))
        for index, alpha in enumerate(alphas):
            self.logger.record(f"train/ent_coef_{index}", alpha)
        self.logger.record("train/actor_loss", stats.actor_loss.item())
        self.logger.record("train/critic_loss", stats.critic_loss.item())
        if self.ent_coef_optimizer is not None:
            self.logger.record("train/ent_coef_loss", stats.ent_coef_loss.item())
        self.logger.record("train/entropy", stats.entropy.item())
        self.logger.record("train/entropy_marginal", stats.entropy_marginal.item())
        if self.discriminator is not None:
            self.logger.record("train/discriminator_loss", stats.discriminator_loss.item())
            for index, bonus in enumerate(stats.mean_bonus.tolist()):
                self.logger.record(f"train/diversity_bonus_{index}", bonus)
        # Mean H(w(s)) over the batches and each component's mean weight: constant unless the weights are learned
        self.logger.record("train/weight_entropy", stats.weight_entropy.item())
        for index, weight in enumerate(mean_weights):
            self.logger.record(f"train/mixture_weight_{index}", weight)
        if self.n_components > 1:
            # Spread of the components on the last batch: mean closed-form KL over ordered pairs i != j
            kl = gaussian_kl(means, log_stds).mean(dim=0)
            self.logger.record("train/component_kl", float(kl.sum() / (self.n_components * (self.n_components - 1))))

    # Loading, and starting from SAC ---------------------------------------------------------------------------

    @classmethod
    def load(  # type: ignore[override]
        cls: type[SelfSACM],
        path: "str | pathlib.Path | io.BufferedIOBase",
        env: "GymEnv | None" = None,
        device: "th.device | str" = "auto",
        custom_objects: "dict[str, Any] | None" = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        **kwargs: Any,
    ) -> SelfSACM:
        """SB3's ``load``, after checking that the file was saved by this algorithm (one clear line if not)."""
        check_saved_algorithm(cls.__name__, path)
        return super().load(path, env, device, custom_objects, print_system_info, force_reset, **kwargs)

    @classmethod
    def from_sac(
        cls: type[SelfSACM],
        sac: SAC,
        n_components: int = 3,
        copy_replay_buffer: bool = False,
        env: "GymEnv | None" = None,
        **kwargs: Any,
    ) -> SelfSACM:
        """
        A mixture whose every component starts as a trained SAC model's policy, and every critic head as its Q.

        The new model takes the SAC model's hyperparameters (``kwargs`` override any of them and set the mixture's
        own, e.g. ``entropy_estimator``), its networks (each component a copy of SAC's Gaussian, each critic head
        a copy of SAC's Q-value, in the critics and their targets), its Adam moments, its temperature (for every
        component) and its step counters. With ``n_components=1`` it predicts and trains exactly as the SAC model
        would. Continue with ``learn(..., reset_num_timesteps=False)``.

        :param sac: a trained ``stable_baselines3.SAC`` (with or without gSDE)
        :param n_components: number of components N, all starting identical
        :param copy_replay_buffer: give the new model a copy of the SAC model's replay buffer (needs
            ``critic_data="shared"``)
        :param env: the environment; by default the SAC model's own (with its wrappers, e.g. ``VecNormalize``)
        """
        return mixture_from_sac(cls, sac, n_components, copy_replay_buffer, env, **kwargs)

    def learn(
        self: SelfSACM,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: "str | None" = None,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfSACM:
        """SAC's ``learn``; tensorboard runs are named after the algorithm ("SACM", "S2ACM") unless ``tb_log_name`` is set."""
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name or type(self).__name__,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )
