"""Soft Actor-Critic with a mixture policy (SACM), docs/algorithm.md sections 3-6."""

import inspect
import io
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

from sb3_mixture.buffers import MixtureDictReplayBuffer, MixtureReplayBuffer
from sb3_mixture.conversion import check_saved_algorithm, mixture_from_sac, renamed_legacy_parameters
from sb3_mixture.entropy import MixtureSamples, entropy_terms, weighted_entropy
from sb3_mixture.options import (
    DISCRIMINATOR,
    POLICY_OPTIONS,
    RETURN_EXPLORATION,
    RETURN_MARGIN,
    RETURN_WINDOW,
    SOFT_VALUE_WEIGHTS,
    DiversityOptions,
    MixtureOptions,
    needs_acting_components,
    validate_ent_coef,
    validate_options,
)
from sb3_mixture.sacm.acting import sample_soft_value_log_weights
from sb3_mixture.sacm.actor import MixtureParams
from sb3_mixture.sacm.critic import MixtureCritic
from sb3_mixture.sacm.diversity import NoDiversity, diversity_for
from sb3_mixture.sacm.losses import (
    actor_loss,
    critic_loss,
    mixture_next_values,
    optimizer_step,
    own_min_q,
    own_next_values,
    temperature_loss,
)
from sb3_mixture.sacm.policies import CnnPolicy, MixturePolicy, MlpPolicy, MultiInputPolicy
from sb3_mixture.sacm.update_stats import UpdateLosses, UpdateStats, record_update_stats, step_stats
from sb3_mixture.torch_layers import network_precision

MIXTURE_BUFFERS = (MixtureReplayBuffer, MixtureDictReplayBuffer)
SAC_ARGUMENTS = tuple(name for name in inspect.signature(SAC.__init__).parameters if name not in ("self", "_init_setup_model"))
OPTION_ARGUMENTS = (*MixtureOptions.argument_names(), "replay_buffer_class", "n_steps")
SelfSACM = TypeVar("SelfSACM", bound="SACM")


class SACM(SAC):
    """
    Soft Actor-Critic Mixture: SAC with an N-component Gaussian-mixture actor.

    Paper: "Maximum Entropy Reinforcement Learning with Mixture Policies"; the algorithm as implemented is stated in
    docs/algorithm.md. Takes every argument of SB3's :class:`~stable_baselines3.SAC`, plus the mixture's own:
    ``n_components``, ``mixture_weights`` (fixed, ``"learned"`` or ``"soft_value"``), ``mixture_weight_floor``,
    ``entropy_estimator``, ``critic_data``, ``component_schedule``, ``deterministic_component``, ``return_window``,
    ``return_exploration``, ``return_margin``, ``diversity_weight``, ``diversity_start``, ``diversity_mechanism``,
    ``diversity_features``, ``component_sampling`` and ``matmul_precision``, each described in docs/modules/sacm.md
    ("Parameters"), and checked at construction by :func:`sb3_mixture.options.validate_options`.
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
        return_window: int = RETURN_WINDOW,
        return_exploration: float = RETURN_EXPLORATION,
        return_margin: float = RETURN_MARGIN,
        diversity_weight: float = 0.0,
        diversity_start: int = 0,
        diversity_mechanism: str = DISCRIMINATOR,
        diversity_features: "list[int] | list[str] | None" = None,
        _init_setup_model: bool = True,
    ):
        # Every argument is checked here, once, so that bad input never reaches train(). The signature lists every
        # argument for users and their tools; the checks and SAC take them on by name
        arguments = dict(locals())
        options = self.check_options(**{name: arguments[name] for name in OPTION_ARGUMENTS})
        # Flat attributes, as SB3 keeps its hyperparameters: saved with the model and read back by load()
        self.__dict__.update(options.flat())
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

        sac_arguments = {name: arguments[name] for name in SAC_ARGUMENTS if name in arguments}
        sac_arguments.update(env=env, ent_coef=ent_coef, policy_kwargs=policy_kwargs)
        super().__init__(**sac_arguments, _init_setup_model=False)
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
        if needs_acting_components(self.critic_data, self.diversity_weight, self.diversity_mechanism):
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
        # The diversity charge (docs/algorithm.md sections 11 and 13), or none
        self.diversity = diversity_for(self.policy, DiversityOptions.of(self), self.lr_schedule(1))

    def set_parameters(self, load_path_or_dict: Any, exact_match: bool = True, device: "th.device | str" = "auto") -> None:
        if isinstance(load_path_or_dict, dict):  # what load() passes: a file's parameters, maybe an older layout's
            load_path_or_dict = renamed_legacy_parameters(load_path_or_dict)
        super().set_parameters(load_path_or_dict, exact_match, device)

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts, variables = super()._get_torch_save_params()
        if not isinstance(self.diversity, NoDiversity):
            state_dicts += ["diversity"] + (["diversity.optimizer"] if self.diversity.optimizer is not None else [])
        return state_dicts, variables

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, BaseCallback]:
        # SB3 resets the envs in these cases: every env starts a new episode
        self.policy.component_choice.start_training(envs_reset=reset_num_timesteps or self._last_obs is None)
        self._sync_acting_temperatures()  # after load() or from_sac(), which set the temperatures afterwards
        return super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)

    # Acting -----------------------------------------------------------------------------------------------------

    def _sample_action(
        self, learning_starts: int, action_noise: "ActionNoise | None" = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        # The training envs act with their own schedule: evaluations in between (callbacks) use predict's
        with self.policy.component_choice.training_envs():
            if self.num_timesteps < learning_starts and not (self.use_sde and self.use_sde_at_warmup):
                # Warm-up actions are uniform, but the schedule still runs so that every transition has a component
                self.policy.draw_components(self._last_obs)  # type: ignore[arg-type]
            action, buffer_action = super()._sample_action(learning_starts, action_noise, n_envs)
        # Read now: callbacks run before the transition is stored, and an evaluation in one would act in between
        acting = self.policy.acting_components
        if isinstance(self.replay_buffer, MIXTURE_BUFFERS):
            self.replay_buffer.set_acting_components(acting)  # type: ignore[arg-type]
        self.diversity.observe(self._last_obs, acting)  # type: ignore[arg-type]
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
        self.policy.component_choice.observe_training_step(reward, dones, self._vec_normalize_env)

    def dump_logs(self) -> None:
        self.policy.component_choice.record_rollout(self.logger)
        super().dump_logs()

    # Training ---------------------------------------------------------------------------------------------------

    def _head_entropies(self, samples: MixtureSamples, terms: th.Tensor) -> th.Tensor:
        """Entropy bonus of each critic head's target, (B, N): SACM gives every head the full estimate."""
        return weighted_entropy(samples, terms).unsqueeze(-1).expand(-1, self.n_components)

    def _mixture_params(self, observations: th.Tensor) -> MixtureParams:
        """The actor's mixture at the batch's states, in float32."""
        with network_precision(self.matmul_precision, self.device):
            params = self.actor.mixture_params(observations)
        return MixtureParams(*(param.float() for param in params))

    def _q_values(self, critic: MixtureCritic, observations: th.Tensor, actions: th.Tensor) -> th.Tensor:
        with network_precision(self.matmul_precision, self.device):
            return critic.q_values(observations, actions).float()

    def _sync_acting_temperatures(self) -> None:
        """Soft-value weights act with the alpha_i (docs/algorithm.md section 10): the policy keeps a copy to act with."""
        if self.mixture_weights == SOFT_VALUE_WEIGHTS:
            self.policy.component_choice.component_temperatures.copy_(self._temperatures())

    def _temperatures(self) -> th.Tensor:
        """Current alpha_i of every component, (N,), detached."""
        if self.log_ent_coef is not None:
            return th.exp(self.log_ent_coef.detach())
        return self.ent_coef_tensor.expand(self.n_components)

    def _critic_target(self, replay_data: Any, alphas: th.Tensor, charge: "th.Tensor | None" = None) -> th.Tensor:
        """
        y_i = r + charge_i(s') + gamma (1 - done) v_i(s'), (B, N): docs/algorithm.md section 3 (section 10 with
        soft-value weights; the diversity charge of section 11, (B, N), if any).
        """
        observations = replay_data.next_observations
        discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
        with th.no_grad():
            params = self._mixture_params(observations)
            samples = self.actor.training_samples(params, self.component_sampling)
            next_q = self._q_values(self.critic_target, observations, samples.actions).min(dim=0).values  # (B, M, N)
            if self.mixture_weights == SOFT_VALUE_WEIGHTS:
                next_value = own_next_values(next_q, samples, alphas)
            else:
                terms = entropy_terms(self.entropy_estimator, samples, params.log_weights, params.means, params.log_stds)
                head_entropies = self._head_entropies(samples, terms)
                next_value = mixture_next_values(next_q, samples, params.log_weights, alphas, head_entropies)
            rewards = replay_data.rewards if charge is None else replay_data.rewards + charge
            return rewards + (1 - replay_data.dones) * discounts * next_value

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer, self.ent_coef_optimizer, self.diversity.optimizer]
        self._update_learning_rate([optimizer for optimizer in optimizers if optimizer is not None])

        stats: list[UpdateStats] = []
        for gradient_step in range(gradient_steps):
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            if self.use_sde:
                # New exploration matrices every gradient step, as SAC does
                self.actor.reset_noise()

            # Samples of the components at the current states and their entropy terms (docs/algorithm.md sections 2, 4)
            alphas = self._temperatures()
            params = self._mixture_params(replay_data.observations)
            samples = self.actor.training_samples(params, self.component_sampling)
            log_weights = params.log_weights
            if self.mixture_weights == SOFT_VALUE_WEIGHTS:
                # w(s) enters the estimator only; the samples keep weight 1/N (docs/algorithm.md section 10)
                log_weights = sample_soft_value_log_weights(
                    self.critic_target, replay_data.observations, params, samples, alphas, self.mixture_weight_floor
                )
            terms = entropy_terms(self.entropy_estimator, samples, log_weights, params.means, params.log_stds)

            # Temperatures (eq. 13)
            ent_coef_loss = th.zeros((), device=self.device)
            if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
                ent_coef_loss = temperature_loss(self.log_ent_coef, samples, self.target_entropy)
                optimizer_step(self.ent_coef_optimizer, ent_coef_loss, "entropy coefficient loss")
                self._sync_acting_temperatures()

            # The diversity mechanism's own step, and each head's charge (docs/algorithm.md section 11)
            diversity = self.diversity.update(replay_data, self.policy.component_choice, self.num_timesteps)

            # Critic (docs/algorithm.md section 3)
            target_q = self._critic_target(replay_data, alphas, diversity.charge)
            current_q = self._q_values(self.critic, replay_data.observations, replay_data.actions)  # (K, B, N)
            head_masks = replay_data.head_masks if self.critic_data == "own" else None
            q_loss = critic_loss(current_q, target_q, head_masks)
            optimizer_step(self.critic.optimizer, q_loss, "critic loss")

            # Actor (eqs. 11-12), judged by the critic after its step. The critic's weights get no gradient from it
            # (SAC computes and discards one): a third less work here.
            with self.critic.frozen():
                q_values = self._q_values(self.critic, replay_data.observations, samples.actions)  # (K, B, M, N)
                policy_loss = actor_loss(own_min_q(q_values, samples.components), terms, samples, alphas)
                optimizer_step(self.actor.optimizer, policy_loss, "actor loss")

            if gradient_step % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)
            soft_value = self.mixture_weights == SOFT_VALUE_WEIGHTS
            losses = UpdateLosses(policy_loss, q_loss, ent_coef_loss, diversity.loss)
            stats.append(step_stats(losses, samples, terms, log_weights, alphas, diversity.charge, soft_value))

        self._n_updates += gradient_steps
        mean_stats = UpdateStats.mean(stats)
        tuned = self.ent_coef_optimizer is not None
        record_update_stats(self.logger, mean_stats, self._n_updates, params.means.detach(), params.log_stds.detach(), tuned)
        self.diversity.record(self.logger, mean_stats)

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
        tb_log_name = tb_log_name or type(self).__name__
        return super().learn(total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar)
