"""Soft Actor-Critic with a mixture policy (SACM), docs/algorithm.md sections 3-6."""

import contextlib
import io
import math
import pathlib
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.base_class import maybe_make_env
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import polyak_update

from sb3_mixture.buffers import CRITIC_DATA, MixtureDictReplayBuffer, MixtureReplayBuffer
from sb3_mixture.conversion import check_saved_algorithm, mixture_from_sac
from sb3_mixture.entropy import ENTROPY_ESTIMATORS, MixtureSamples, draw_mixture_samples, entropy_terms, weighted_entropy
from sb3_mixture.mixture import (
    LEARNED_WEIGHTS,
    gaussian_kl,
    validate_mixture_weights,
    validate_weight_floor,
    weight_entropy,
)
from sb3_mixture.sacm.policies import (
    CnnPolicy,
    MixtureCritic,
    MixturePolicy,
    MlpPolicy,
    MultiInputPolicy,
    validate_component_schedule,
    validate_deterministic_component,
)

SelfSACM = TypeVar("SelfSACM", bound="SACM")

COMPONENT_SAMPLING = ("all", "sample")
MATMUL_PRECISION = ("fp32", "bf16")
# Mixture settings that live on the policy; SACM takes them as its own arguments and forwards them
_POLICY_MIXTURE_KWARGS = (
    "n_components",
    "mixture_weights",
    "mixture_weight_floor",
    "component_schedule",
    "deterministic_component",
)


def _validate_choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def _validate_ent_coef(ent_coef: "str | float") -> "str | float":
    if isinstance(ent_coef, str):
        if ent_coef == "auto":
            return ent_coef
        if ent_coef.startswith("auto_"):
            try:
                if float(ent_coef[len("auto_") :]) > 0.0:
                    return ent_coef
            except ValueError:
                pass
    elif isinstance(ent_coef, (int, float)) and not isinstance(ent_coef, bool) and math.isfinite(ent_coef) and ent_coef > 0:
        return float(ent_coef)
    raise ValueError(f"ent_coef must be 'auto', 'auto_<initial value > 0>' or a float > 0, got {ent_coef!r}")


class SACM(SAC):
    """
    Soft Actor-Critic Mixture: SAC with an N-component Gaussian-mixture actor.

    Paper: "Maximum Entropy Reinforcement Learning with Mixture Policies"; the algorithm as implemented is
    stated in docs/algorithm.md. Takes every argument of SB3's :class:`~stable_baselines3.SAC`, plus:

    :param n_components: number of mixture components N (an int >= 1)
    :param mixture_weights: fixed mixing weights, N positive floats summing to 1 (uniform if None), or
        ``"learned"``: state-dependent weights w(s) from a gating head on the actor's trunk, trained with the actor
        (docs/algorithm.md section 8; needs ``component_sampling="all"``)
    :param mixture_weight_floor: with learned weights, the least weight ``eps`` of every component,
        ``w = (1 - N eps) softmax(g) + eps``, in ``[0, 1/N)``: a guard against a component (and its critic head)
        being starved of data. None (default): 0.05 with learned weights (at most 0.5/N), 0 with fixed ones
    :param entropy_estimator: ``"mixed_marginal"`` (the paper's eq. 8, default), ``"pairwise_kl"`` (eq. 5 with
        closed-form KL), ``"marginal"`` (the lower bound H(pi|W), eq. 3) or ``"pairwise_bhattacharyya"``
    :param critic_data: which transitions each critic head learns from: ``"shared"`` (all), ``"bootstrap"``
        (a Bernoulli(``bootstrap_mask_prob``) mask per head, drawn when stored) or ``"own"`` (only the
        transitions its own component acted in)
    :param bootstrap_mask_prob: probability that a head learns from a transition with ``critic_data="bootstrap"``
    :param component_schedule: when the acting component is redrawn: ``"step"`` (every step, Algorithm 1),
        ``"episode"`` (at each episode start) or an int k (every k steps)
    :param deterministic_component: component played by ``predict(deterministic=True)``: ``"mode"`` (the mean
        with the highest mixture density), ``"best_q"`` (the highest min-Q) or a fixed index
    :param component_sampling: ``"all"`` (one sample per component per state, Algorithm 1) or ``"sample"``
        (one component ~ w per state: an unbiased estimate of the same losses at SAC's cost)
    :param matmul_precision: ``"fp32"`` (default) or ``"bf16"``: run the networks' forward and backward passes
        in ``train()`` under bfloat16 autocast (weights, optimiser and all loss arithmetic stay float32). An
        opt-in for speed on CPUs with native bf16 matmuls; its effect on returns is in benchmarks/results.
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
        bootstrap_mask_prob: float = 0.5,
        component_schedule: "str | int" = "step",
        deterministic_component: "str | int" = "mode",
        component_sampling: str = "all",
        matmul_precision: str = "fp32",
        _init_setup_model: bool = True,
    ):
        # Every argument is checked here, at construction, so that bad input never reaches train()
        self.mixture_weights = validate_mixture_weights(mixture_weights, n_components)
        self.n_components = int(n_components)
        self.mixture_weight_floor = validate_weight_floor(mixture_weight_floor, self.n_components, self.mixture_weights)
        self.entropy_estimator = _validate_choice("entropy_estimator", entropy_estimator, ENTROPY_ESTIMATORS)
        self.critic_data = _validate_choice("critic_data", critic_data, CRITIC_DATA)
        self.component_sampling = _validate_choice("component_sampling", component_sampling, COMPONENT_SAMPLING)
        self.matmul_precision = _validate_choice("matmul_precision", matmul_precision, MATMUL_PRECISION)
        self.component_schedule = validate_component_schedule(component_schedule)
        self.deterministic_component = validate_deterministic_component(deterministic_component, n_components)
        if self.mixture_weights == LEARNED_WEIGHTS and self.component_sampling == "sample" and self.n_components > 1:
            raise ValueError(
                "component_sampling='sample' is not supported with mixture_weights='learned': one sampled component "
                "per state gives the gating head no pathwise gradient; use component_sampling='all'"
            )
        if not isinstance(bootstrap_mask_prob, (int, float)) or not 0.0 < bootstrap_mask_prob <= 1.0:
            raise ValueError(f"bootstrap_mask_prob must be a float in (0, 1], got {bootstrap_mask_prob!r}")
        self.bootstrap_mask_prob = float(bootstrap_mask_prob)
        ent_coef = _validate_ent_coef(ent_coef)
        if critic_data != "shared":
            mixture_buffers = (MixtureReplayBuffer, MixtureDictReplayBuffer)
            if replay_buffer_class is not None and not issubclass(replay_buffer_class, mixture_buffers):
                her = " (HerReplayBuffer relabels goals, so a stored acting component or mask no longer fits)"
                raise ValueError(
                    f"critic_data={critic_data!r} needs SACM's own replay buffer; replay_buffer_class="
                    f"{replay_buffer_class.__name__} is only supported with critic_data='shared'"
                    + (her if "Her" in replay_buffer_class.__name__ else "")
                )
            if n_steps != 1:
                raise ValueError(f"critic_data={critic_data!r} supports only n_steps=1, got n_steps={n_steps}")
        policy_kwargs = dict(policy_kwargs or {})
        for key in _POLICY_MIXTURE_KWARGS:
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

    def _setup_model(self) -> None:
        for key in _POLICY_MIXTURE_KWARGS:
            self.policy_kwargs[key] = getattr(self, key)
        if self.critic_data != "shared":
            if self.replay_buffer_class is None:
                is_dict = isinstance(self.observation_space, spaces.Dict)
                self.replay_buffer_class = MixtureDictReplayBuffer if is_dict else MixtureReplayBuffer
            self.replay_buffer_kwargs.update(
                n_components=self.n_components, critic_data=self.critic_data, bootstrap_mask_prob=self.bootstrap_mask_prob
            )
        super()._setup_model()
        # Saved with the model, so that load() can tell which algorithm wrote a file (SACM and S2ACM files look alike)
        self.algorithm_name = type(self).__name__
        # One temperature per component (docs/algorithm.md section 5), starting where SAC would start its single one
        if self.log_ent_coef is not None:
            initial_log_ent_coef = self.log_ent_coef.detach()
            self.log_ent_coef = initial_log_ent_coef.expand(self.n_components).clone().requires_grad_(True)
            self.ent_coef_optimizer = th.optim.Adam([self.log_ent_coef], lr=self.lr_schedule(1))
        self._component_counts = np.zeros(self.n_components, dtype=np.int64)
        self._pending_episode_start: np.ndarray | None = None
        self._rollout_episode_start: np.ndarray | None = None
        self._training_schedule_state: tuple[np.ndarray | None, np.ndarray | None] = (None, None)

    def _excluded_save_params(self) -> list[str]:
        return [
            *super()._excluded_save_params(),
            "_pending_episode_start",
            "_rollout_episode_start",
            "_training_schedule_state",
        ]

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
            self._training_schedule_state = (None, None)
            self._pending_episode_start = None
        return super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)

    # Acting -----------------------------------------------------------------------------------------------------

    def predict(
        self,
        observation: "np.ndarray | dict[str, np.ndarray]",
        state: "tuple[np.ndarray, ...] | None" = None,
        episode_start: "np.ndarray | None" = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, "tuple[np.ndarray, ...] | None"]:
        # During rollouts SB3 calls predict without episode_start: feed it the episode starts seen by _store_transition
        # (only that call: a user's predict between two learn calls must not consume the training envs' starts)
        if episode_start is None and self._rollout_episode_start is not None and not deterministic:
            episode_start, self._rollout_episode_start = self._rollout_episode_start, None
        return super().predict(observation, state, episode_start, deterministic)

    def _sample_action(
        self,
        learning_starts: int,
        action_noise: "ActionNoise | None" = None,
        n_envs: int = 1,
    ) -> tuple[np.ndarray, np.ndarray]:
        # The training envs' schedule is ours: evaluations in between (callbacks) act through the same policy
        self.policy.set_schedule_state(self._training_schedule_state)
        episode_start, self._pending_episode_start = self._pending_episode_start, None
        if self.num_timesteps < learning_starts and not (self.use_sde and self.use_sde_at_warmup):
            # Warm-up actions are uniform, but the schedule still runs so that every transition has a component
            self.policy.select_acting_components(n_envs, episode_start, self._acting_log_weights())
        else:
            self._rollout_episode_start = episode_start  # for the predict call in SAC's _sample_action
        try:
            action, buffer_action = super()._sample_action(learning_starts, action_noise, n_envs)
        finally:
            self._rollout_episode_start = None
        self._training_schedule_state = self.policy.get_schedule_state()
        acting = self.policy.acting_components
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
        self._pending_episode_start = np.asarray(dones, dtype=bool)

    def dump_logs(self) -> None:
        total = self._component_counts.sum()
        if total > 0:
            for index, count in enumerate(self._component_counts):
                self.logger.record(f"rollout/component_share_{index}", count / total)
            self._component_counts[:] = 0
        super().dump_logs()

    def _acting_log_weights(self) -> "th.Tensor | None":
        """``log w(s)`` at the training envs' current observations with learned weights (None with fixed ones)."""
        if not self.actor.learned_weights or self._last_obs is None:
            return None
        observation, _ = self.policy.obs_to_tensor(self._last_obs)
        with th.no_grad():
            return self.actor.mixture_log_weights(observation)

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
            components = self.actor.sample_components(means.shape[0], log_weights).view(-1, 1)
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

    def _mixture_params(self, observations: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
        """Means, log-stds (B, N, D), log mixing weights (B, N) and the trunk's output (B, L), in float32."""
        with self._network_precision():
            params = self.actor.mixture_params_latent(observations)
        return tuple(param.float() for param in params)  # type: ignore[return-value]

    def _q_values(self, critic: MixtureCritic, observations: th.Tensor, actions: th.Tensor) -> th.Tensor:
        with self._network_precision():
            q_values = critic.q_values(observations, actions)
        return q_values.float()

    def _temperatures(self) -> th.Tensor:
        """Current alpha_i of every component, (N,), detached."""
        if self.log_ent_coef is not None:
            return th.exp(self.log_ent_coef.detach())
        return self.ent_coef_tensor.expand(self.n_components)

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
        self._update_learning_rate(optimizers)

        learned_weights = self.actor.learned_weights
        stats: list[th.Tensor] = []
        for gradient_step in range(gradient_steps):
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
            if self.use_sde:
                # New exploration matrices every gradient step, as SAC does
                self.actor.reset_noise()

            # Actor samples at the current states (docs/algorithm.md section 4); with learned weights, log w(s) is in the graph
            # both as the samples' weights and inside the estimator's log sum_j w_j pi_j (docs/algorithm.md section 8)
            means, log_stds, log_weights, latent = self._mixture_params(replay_data.observations)
            samples = self._draw_samples(means, log_stds, log_weights, latent)
            terms = entropy_terms(self.entropy_estimator, samples, log_weights, means, log_stds)
            own_log_prob = samples.own_log_prob

            # Temperatures, eq. 13: each alpha_i is driven by its own component's log-density
            alphas = self._temperatures()
            ent_coef_loss = th.zeros((), device=self.device)
            if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
                entropy_gap = (own_log_prob + self.target_entropy).detach()
                if learned_weights:
                    # Each alpha_i averages over the states in proportion to w_i(s), the states its component acts in
                    state_weights = samples.sample_weights.detach()
                    per_component = (state_weights * entropy_gap).sum(dim=0) / state_weights.sum(dim=0).clamp(min=1e-8)
                    ent_coef_loss = -(self.log_ent_coef * per_component).sum()
                else:
                    ent_coef_loss = -(self.log_ent_coef[samples.components] * entropy_gap).sum(dim=-1).mean()
                self._check_finite(ent_coef_loss, "entropy coefficient loss")
                self.ent_coef_optimizer.zero_grad()
                ent_coef_loss.backward()
                self.ent_coef_optimizer.step()

            # Critic targets, docs/algorithm.md section 3: Rao-Blackwellised over the next actions of the components
            with th.no_grad():
                next_means, next_log_stds, next_log_weights, next_latent = self._mixture_params(replay_data.next_observations)
                next_samples = self._draw_samples(next_means, next_log_stds, next_log_weights, next_latent)
                next_terms = entropy_terms(self.entropy_estimator, next_samples, next_log_weights, next_means, next_log_stds)
                next_q = self._q_values(self.critic_target, replay_data.next_observations, next_samples.actions)
                next_q = next_q.min(dim=0).values  # (B, M, N)
                next_value = (next_samples.sample_weights.unsqueeze(-1) * next_q).sum(dim=1)
                # alpha(s') = sum_j w_j(s') alpha_j, (B, 1)
                mixture_alpha = (next_log_weights.exp() * alphas).sum(dim=-1, keepdim=True)
                next_value = next_value + mixture_alpha * self._head_entropies(next_samples, next_terms)
                target_q = replay_data.rewards + (1 - replay_data.dones) * discounts * next_value

            current_q = self._q_values(self.critic, replay_data.observations, replay_data.actions)  # (K, B, N)
            squared_error = (current_q - target_q) ** 2
            head_masks = getattr(replay_data, "head_masks", None)
            if head_masks is None:
                critic_loss = 0.5 * squared_error.mean(dim=1).sum()
            else:
                per_head = (squared_error * head_masks).sum(dim=1) / head_masks.sum(dim=0).clamp(min=1.0)
                critic_loss = 0.5 * per_head.sum()
            self._check_finite(critic_loss, "critic loss")
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            self.critic.optimizer.step()

            # Actor loss, eqs. 11-12: component i pays alpha_i * l_i with l_i = -H_i, judged by its own head.
            # The critic's weights get no gradient from it (SAC computes and discards one): a third less work here.
            self.critic.q_ensemble.requires_grad_(False)
            try:
                q_pi = self._q_values(self.critic, replay_data.observations, samples.actions)  # (K, B, M, N)
                head_index = samples.components.unsqueeze(0).unsqueeze(-1).expand(q_pi.shape[0], -1, -1, 1)
                min_q_pi = th.gather(q_pi, -1, head_index).squeeze(-1).min(dim=0).values  # (B, M)
                per_sample = alphas[samples.components] * (-terms) - min_q_pi
                actor_loss = (samples.sample_weights * per_sample).sum(dim=-1).mean()
                self._check_finite(actor_loss, "actor loss")
                self.actor.optimizer.zero_grad()
                actor_loss.backward()
            finally:
                self.critic.q_ensemble.requires_grad_(True)
            self.actor.optimizer.step()

            if gradient_step % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

            with th.no_grad():
                entropy = weighted_entropy(samples, terms).mean()
                marginal = (samples.sample_weights * -own_log_prob).sum(dim=-1).mean()
                losses = th.stack(
                    [
                        actor_loss.detach(),
                        critic_loss.detach(),
                        ent_coef_loss.detach(),
                        entropy,
                        marginal,
                        weight_entropy(log_weights).mean(),
                    ]
                )
                stats.append(th.cat([losses, alphas, log_weights.exp().mean(dim=0)]))

        self._n_updates += gradient_steps
        self._record_train_stats(th.stack(stats).mean(dim=0).cpu().numpy(), means.detach(), log_stds.detach())

    def _record_train_stats(self, stats: np.ndarray, means: th.Tensor, log_stds: th.Tensor) -> None:
        # Temperatures as used by the updates (before their own step), like SAC's train/ent_coef
        actor_loss, critic_loss, ent_coef_loss, entropy, marginal, mean_weight_entropy = stats[:6].tolist()
        alphas, mean_weights = stats[6 : 6 + self.n_components], stats[6 + self.n_components :]
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/ent_coef", float(np.dot(mean_weights, alphas)))
        for index, alpha in enumerate(alphas):
            self.logger.record(f"train/ent_coef_{index}", float(alpha))
        self.logger.record("train/actor_loss", actor_loss)
        self.logger.record("train/critic_loss", critic_loss)
        if self.ent_coef_optimizer is not None:
            self.logger.record("train/ent_coef_loss", ent_coef_loss)
        self.logger.record("train/entropy", entropy)
        self.logger.record("train/entropy_marginal", marginal)
        # Mean H(w(s)) over the batches and each component's mean weight: constant unless the weights are learned
        self.logger.record("train/weight_entropy", mean_weight_entropy)
        for index, weight in enumerate(mean_weights):
            self.logger.record(f"train/mixture_weight_{index}", float(weight))
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
