"""
The diversity mechanism of the mixture's critic heads (docs/algorithm.md section 11, experimental): one object,
:class:`DiscriminatorDiversity`, with its networks, optimiser, gate, update and save/load, that ``train()`` calls in one
line (:class:`NoDiversity` without one), and the pure functions it is made of.

The mechanism here is a SMERL-style charge. SMERL (Kumar, Kumar, Levine, Finn, *One Solution is Not All You Need:
Few-Shot Extrapolation via Structured MaxEnt RL*, NeurIPS 2020, <https://arxiv.org/abs/2010.14484>) pays latent z the
reward ``r + w 1[R(z) >= R* - eps] (log q(z|s') - log p(z))``, q a discriminator over states: only the latents whose return
is near the best are pushed apart. Here the latent is the mixture component i (one component acts for a whole
episode), the latents compared are the components near the best return, and head i's target gets component i's
charge (SMERL's reward, bounded and shifted down so that it never pays: :func:`diversity_charge`).

Shapes: B transitions, N components (and critic heads), ``obs_dim`` flat observation features.
"""

import math
from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.torch_layers import create_mlp
from torch import nn

from sb3_mixture.options import NOVELTY, DiversityOptions, check_diversity_features
from sb3_mixture.sacm.acting import ComponentChoice, best_recent_return, near_best
from sb3_mixture.sacm.losses import optimizer_step
from sb3_mixture.sacm.policies import MixturePolicy
from sb3_mixture.sacm.update_stats import UpdateStats


class StateDiscriminator(nn.Module):
    """
    ``q(i|s)``: which component's episode a state comes from, an MLP with ReLU and N output logits.

    :param obs_dim: features of a flat float observation (the features extractor's output size, if one is given)
    :param n_components: number of components N
    :param net_arch: hidden layer sizes
    :param features_extractor: applied to the (preprocessed) observation first, e.g. one of the policy's class for
        image or Dict observations; None: the observation is already flat
    """

    def __init__(self, obs_dim: int, n_components: int, net_arch: list[int], features_extractor: "nn.Module | None" = None):
        super().__init__()
        self.n_components = n_components
        self.features_extractor = features_extractor if features_extractor is not None else nn.Flatten()
        self.net = nn.Sequential(*create_mlp(obs_dim, n_components, net_arch, activation_fn=nn.ReLU))

    def forward(self, obs: th.Tensor) -> th.Tensor:
        """Logits of ``q(.|s)``: (B, obs_dim) -> (B, N)."""
        return self.net(self.features_extractor(obs))

    def log_probs(self, obs: th.Tensor) -> th.Tensor:
        """``log q(i|s)`` of every component: (B, obs_dim) -> (B, N), each row normalised."""
        return th.log_softmax(self(obs), dim=-1)


def discriminator_loss(log_probs: th.Tensor, components: th.Tensor) -> th.Tensor:
    """
    Cross-entropy of the acting component, ``-mean_b log q(c_b|s'_b)`` (docs/algorithm.md section 11): SMERL's
    discriminator is trained by maximum likelihood of the latent that visited the state.

    :param log_probs: ``log q(.|s')`` at the stored next observations, (B, N)
    :param components: the component that acted in each transition, (B,) long (from a one-hot mask:
        ``head_masks.argmax(dim=-1)``)
    :return: scalar
    """
    return -log_probs.gather(-1, components.long().unsqueeze(-1)).mean()


def diversity_charge(log_probs: th.Tensor, gate: th.Tensor, weight: float, log_prior: "th.Tensor | None" = None) -> th.Tensor:
    """
    Every head's charge at every transition,
    ``charge_i(s') = w gate_i (clip(log q_G(i|s') - log p_G(i), -log K, log K) - log K)``: SMERL's reward among the K
    components of the gate G (those near the best return), bounded and shifted down by its bound so that it is never
    positive (docs/algorithm.md section 11), added to head i's target ``y_i = r + charge_i(s') + ...``. ``q_G`` and
    ``p_G`` are q and p conditioned on G: ``q_G(i|s') = q(i|s') / sum_{j in G} q(j|s')``.

    Zero where the discriminator is sure s' is component i's among the near-best, ``-w log K`` where q_G is the prior
    (a state every near-best component shares), ``-2 w log K`` at most where it takes s' for another near-best
    component's; zero for all when at most one component is near the best (nothing to differ from).

    - The clip: a confident q otherwise charges without bound for the states the other components visit (a pilot with
      w = 1 on the two-route task collapsed).
    - The shift: SMERL's positive reward pays a component for every step it spends on states of its own, so it pays
      for lingering there instead of ending the episode (a pilot with the gate open from the start parked its
      components, 12% success); a charge per step, like the task's step cost, never does. The shift changes no
      comparison between the states of an episode of a given length.
    - Conditioning on G: a component far from the best (one relearning after the task changed) does not charge the
      near-best for sharing their states. Unconditioned, the only component left on the open route after a block paid
      for the states the relearning ones explored on it, and lost its route (issue 23, seed 2).

    :param log_probs: ``log q(.|s')`` at the next observations, (B, N), computed without gradient (a target)
    :param gate: which components are charged, (N,) bool (nonzero: open): those near the best return
        (:func:`sb3_mixture.sacm.acting.near_best`)
    :param weight: ``w >= 0`` (:func:`sb3_mixture.options.validate_diversity_weight`)
    :param log_prior: ``log p(i)``, (N,): how often each component acted in the data q learns from
        (:func:`acting_log_prior`); None: uniform, ``log(1/N)``
    :return: (B, N)
    """
    n_components = log_probs.shape[-1]
    gate = gate.to(device=log_probs.device).bool()
    open_count = int(gate.sum())
    if open_count <= 1:
        return th.zeros_like(log_probs)
    prior = log_probs.new_full((n_components,), -math.log(n_components)) if log_prior is None else log_prior.to(log_probs)
    log_q_open = log_probs - th.logsumexp(log_probs[:, gate], dim=-1, keepdim=True)
    log_p_open = prior - th.logsumexp(prior[gate], dim=-1)
    bound = math.log(open_count)
    return weight * gate.to(log_probs.dtype) * ((log_q_open - log_p_open).clamp(-bound, bound) - bound)


def acting_log_prior(components: th.Tensor, n_components: int) -> th.Tensor:
    """
    ``log p(i)``, (N,): the share of the transitions each component acted in, with one pseudo-count each (a component
    absent from the batch keeps a finite log). A bandit does not choose components uniformly, and q learns the
    components' shares along with their states: log q(i|s') - log p(i) is then the evidence that s' is component
    i's, not how often i acts.

    :param components: the acting component of each transition, (B,) long
    """
    counts = th.bincount(components, minlength=n_components).to(th.float32) + 1.0
    return th.log(counts / counts.sum())


class DiversityStep(NamedTuple):
    """What one update of the diversity mechanism gives ``train()``."""

    charge: "th.Tensor | None"
    """every head's charge at every transition of the batch, added to its target, (B, N); None without a charge"""
    loss: th.Tensor
    """the mechanism's own loss before its step (the discriminator's), scalar; 0 without one"""


class DiversityMechanism(nn.Module):
    """
    What ``SACM`` asks of a diversity mechanism (docs/algorithm.md section 11): ``observe`` each training step's states
    (before the step, with the component acting in each env), ``update`` once per gradient step (its own learning, and
    every head's charge on the batch), ``record`` its logs, and its state as a module (saved as ``diversity``, with
    ``diversity.optimizer`` if it has one). This base is no mechanism at all: no charge, no state.
    """

    optimizer: "th.optim.Optimizer | None" = None
    n_components: int
    start: int
    """environment steps before the gate opens (returns mean little before)"""
    margin: float
    """the gate's ``return_margin``"""

    def gate(self, choice: ComponentChoice, num_timesteps: int) -> th.Tensor:
        """Which components are charged (and, for the novelty charge, ranked), (N,) bool: those near the best recent
        return (:func:`~sb3_mixture.sacm.acting.near_best`), none before ``start`` steps."""
        if num_timesteps < self.start:
            return th.zeros(self.n_components, dtype=th.bool)
        return near_best(choice.recent_returns(), self.margin)

    def observe(self, observations: Any, components: np.ndarray) -> None:
        """The states the training envs act in at this step, and each env's acting component, (n_envs,)."""

    def update(self, replay_data: Any, choice: ComponentChoice, num_timesteps: int) -> DiversityStep:
        return DiversityStep(None, replay_data.rewards.new_zeros(()))

    def record(self, logger: Logger, stats: UpdateStats) -> None:
        """Log what the mechanism did over an update (means over its gradient steps)."""


class NoDiversity(DiversityMechanism):
    """No diversity mechanism (``diversity_weight=0``)."""


def diversity_for(policy: MixturePolicy, options: DiversityOptions, lr: float) -> DiversityMechanism:
    """The diversity mechanism the options ask for (docs/algorithm.md sections 11 and 13), built for ``policy``."""
    if options.weight == 0.0:
        return NoDiversity()
    check_diversity_features(options.features, policy.observation_space)
    if options.mechanism == NOVELTY:
        return NoveltyDiversity(policy.observation_space, policy.n_components, options).to(policy.device)
    return DiscriminatorDiversity.for_policy(policy, options.weight, options.start, options.margin, lr)


class DiscriminatorDiversity(DiversityMechanism):
    """
    The SMERL-style charge as one object (docs/algorithm.md section 11): the discriminator ``q(i|s)`` on features of
    the policy's kind, its optimiser, the gate (the components near the best recent return, once ``start`` steps have
    passed) and the update. Saved with the model as ``diversity`` and ``diversity.optimizer``.

    :param observation_space: the env's, to preprocess the stored observations as the policy does
    :param normalize_images: as the policy's
    :param features_extractor: a fresh extractor of the policy's class (flat, image or Dict observations)
    :param features_dim: its output size
    :param n_components: N
    :param net_arch: the discriminator's hidden layers
    :param weight: ``w > 0``
    :param start: environment steps before the gate opens (returns mean little before)
    :param margin: the gate's ``return_margin``
    :param optimizer_class: the policy's optimiser class, with ``optimizer_kwargs`` and the learning rate ``lr``
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        normalize_images: bool,
        features_extractor: nn.Module,
        features_dim: int,
        n_components: int,
        net_arch: list[int],
        weight: float,
        start: int,
        margin: float,
        optimizer_class: type[th.optim.Optimizer],
        optimizer_kwargs: dict[str, Any],
        lr: float,
    ):
        super().__init__()
        self.observation_space = observation_space
        self.normalize_images = normalize_images
        self.n_components, self.weight, self.start, self.margin = n_components, weight, start, margin
        self.discriminator = StateDiscriminator(features_dim, n_components, net_arch, features_extractor)
        self.optimizer = optimizer_class(self.discriminator.parameters(), lr=lr, **optimizer_kwargs)

    @classmethod
    def for_policy(
        cls, policy: MixturePolicy, weight: float, start: int, margin: float, lr: float
    ) -> "DiscriminatorDiversity":
        """The charge with a discriminator of the policy's kind: its features extractor class, hidden layers, optimiser
        and device."""
        extractor = policy.make_features_extractor()
        return cls(
            policy.observation_space,
            policy.normalize_images,
            extractor,
            extractor.features_dim,
            policy.n_components,
            policy.actor_kwargs["net_arch"],
            weight,
            start,
            margin,
            policy.optimizer_class,
            policy.optimizer_kwargs,
            lr,
        ).to(policy.device)

    def update(self, replay_data: Any, choice: ComponentChoice, num_timesteps: int) -> DiversityStep:
        """
        One step of q on the acting components of the batch (``replay_data.head_masks``), and every head's charge at
        every transition from q before its step.
        """
        next_observations = preprocess_obs(replay_data.next_observations, self.observation_space, self.normalize_images)
        log_probs = self.discriminator.log_probs(next_observations)
        acting = replay_data.head_masks.argmax(dim=-1)
        loss = discriminator_loss(log_probs, acting)
        optimizer_step(self.optimizer, loss, "discriminator loss")
        log_prior = acting_log_prior(acting, self.discriminator.n_components)
        charge = diversity_charge(log_probs.detach(), self.gate(choice, num_timesteps), self.weight, log_prior)
        return DiversityStep(charge, loss.detach())

    @staticmethod
    def record(logger: Logger, stats: UpdateStats) -> None:
        """Log the discriminator's loss and each head's mean charge (means over an update's gradient steps)."""
        logger.record("train/discriminator_loss", stats.diversity_loss.item())
        for index, charge in enumerate(stats.mean_charges.tolist()):
            logger.record(f"train/diversity_charge_{index}", charge)


# The ordered novelty charge (docs/algorithm.md section 13) ----------------------------------------------------------

NOVELTY_STATES = 512
"""States of each component's recent training steps that the novelty charge keeps (a memory size, not a task unit)"""
NOVELTY_RADIUS = 1.0
"""Distance, in standard deviations of the visited states' features, at which a state stops being charged as
another component's"""
NOVELTY_KEEP = 1 / 6
"""Share of the best component's gain over the lowest return seen that a component must keep to be ranked and
charged (a share of the returns' own spread, not a task unit)"""


def select_features(observations: Any, features: "list[int] | list[str] | None") -> th.Tensor:
    """
    The features the novelty charge sees, (B, F) float32: the flattened observation, or the entries ``features`` of it
    (indices into a flattened Box observation, or Dict keys, each flattened and concatenated in the given order).

    :param observations: a batch, (B, ...) array or tensor, or a dict of them
    """
    if isinstance(observations, dict):
        keys = sorted(observations) if features is None else features
        # reshape, not flatten: a Discrete entry comes as (B,) from the envs and as (B, 1) from the replay buffer
        parts = [th.as_tensor(observations[key]).float().reshape(len(observations[key]), -1) for key in keys]
        return th.cat(parts, dim=1)
    flat = th.as_tensor(observations).float().reshape(len(observations), -1)
    return flat if features is None else flat[:, list(features)]


def feature_count(observation_space: spaces.Space, features: "list[int] | list[str] | None") -> int:
    """How many features :func:`select_features` gives for observations of ``observation_space``."""
    if isinstance(observation_space, spaces.Dict):
        keys = sorted(observation_space.spaces) if features is None else features
        return sum(int(np.prod(observation_space.spaces[key].shape)) for key in keys)
    return int(np.prod(observation_space.shape)) if features is None else len(features)


def merge_moments(
    mean: th.Tensor, var: th.Tensor, count: th.Tensor, batch: th.Tensor
) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """
    The mean and (population) variance of every feature over all states seen so far, updated with a batch (the
    parallel algorithm of Chan et al.; what SB3's ``RunningMeanStd`` computes).

    :param mean: (F,)
    :param var: (F,)
    :param count: states seen so far, a 1-element tensor
    :param batch: (B, F)
    """
    batch_count = batch.shape[0]
    batch_mean, batch_var = batch.mean(dim=0), batch.var(dim=0, unbiased=False)
    total = count + batch_count
    delta = batch_mean - mean
    new_mean = mean + delta * batch_count / total
    new_var = (var * count + batch_var * batch_count + delta**2 * count * batch_count / total) / total
    return new_mean, new_var, total


def standardize(features: th.Tensor, mean: th.Tensor, var: th.Tensor) -> th.Tensor:
    """Features in standard deviations from the mean of the visited states; a feature that never varied counts 0."""
    std = var.sqrt()
    return th.where(std > 1e-8, (features - mean) / std.clamp(min=1e-8), th.zeros_like(features))


def nearest_distances(states: th.Tensor, reference: th.Tensor) -> th.Tensor:
    """
    Euclidean distance from each state to the nearest reference state, (B,); infinite without a reference state.

    :param states: (B, F)
    :param reference: (M, F)
    """
    if reference.shape[0] == 0:
        return th.full((states.shape[0],), float("inf"), dtype=states.dtype, device=states.device)
    return th.cdist(states, reference).min(dim=1).values


def novelty_charge(distances: th.Tensor, scale: "th.Tensor | float", radius: float = NOVELTY_RADIUS) -> th.Tensor:
    """
    ``charge_i(s') = -scale max(0, 1 - d_i(s') / radius)`` (docs/algorithm.md section 13): the full ``scale`` on a state
    of the components ranked before i, less the further s' lies from them, nothing from ``radius`` on. Never positive.

    :param distances: ``d_i(s')``, the distance of each next state to the states of the near-best components ranked
        before i, (B, N); infinite for a component with none (nothing to differ from)
    :param scale: the charge on a shared state, in reward units (``w`` times the batch's mean absolute reward)
    """
    return -scale * th.clamp(1.0 - distances / radius, min=0.0)


def near_best_in_spread(
    component_returns: th.Tensor, return_floor: "th.Tensor | float", keep: float = NOVELTY_KEEP
) -> th.Tensor:
    """
    The novelty charge's gate G (docs/algorithm.md section 13): the components whose recent return keeps at least the
    share ``keep`` of the best's gain over the lowest return seen, ``R_i - floor >= keep (R* - floor)``, R* the best
    over the components with data. Adding a constant to every return or multiplying them all by a positive number
    changes nothing, unlike SMERL's ``R* - eps |R*|`` (:func:`~sb3_mixture.sacm.acting.near_best`), which admits every
    component whenever every return is positive. A component without data (NaN) is outside G.

    :param component_returns: each component's recent return, (N,), NaN where it has none
    :param return_floor: the lowest recent return any component has had so far (at most every R_i)
    :return: (N,) bool
    """
    returns, best = best_recent_return(component_returns)
    if best is None:
        return th.zeros_like(returns, dtype=th.bool)
    floor = th.as_tensor(return_floor, dtype=th.float64)
    # NaN >= x is False, so a component without data is left out
    return returns - floor >= keep * (best - floor)


def update_seniority(gate: th.Tensor, joined_at: th.Tensor, now: int) -> th.Tensor:
    """
    When each component last joined the near-best set, (N,): ``now`` for one that joins at this step, unchanged for
    one that stays, -1 for one outside it (docs/algorithm.md section 13).

    :param gate: the near-best set, (N,) bool
    :param joined_at: the previous step's, (N,), -1 for the components that were outside it
    """
    joining = gate & (joined_at < 0)
    return th.where(gate, th.where(joining, th.full_like(joined_at, float(now)), joined_at), th.full_like(joined_at, -1.0))


def seniority_ranking(gate: th.Tensor, joined_at: th.Tensor) -> list[int]:
    """The near-best components, the longest in the set first (ties, e.g. all joining at one step: by index)."""
    return sorted((int(i) for i in gate.nonzero()[:, 0]), key=lambda i: (float(joined_at[i]), i))


class NoveltyDiversity(DiversityMechanism):
    """
    The ordered novelty charge as one object (docs/algorithm.md section 13): the states each component recently
    acted in, the running mean and variance of their features, the gate (the components near the best recent return,
    after ``start`` steps) and every head's charge. No network, no optimiser; its state is saved with the model as
    ``diversity`` (floating tensors only).

    The gate is relative to the returns' spread (:func:`near_best_in_spread`), so that a component stuck far below the
    best leaves it whatever the rewards' offset. The near-best components are ranked by seniority, in the manner of
    reward-switching methods' priority order (RSPO, SIPO): by the step at which each last joined the near-best set,
    then by index (:func:`seniority_ranking`).
    Component i is charged for next states near the states of the components ranked before it, so the first learns
    the task alone and each later one is pushed off the routes taken before it. A component that leaves the set (its
    route was blocked) loses its rank, so one that relearns a surviving component's route later ranks after it and
    never pushes it off.

    :param observation_space: the env's
    :param n_components: N
    :param options: ``weight`` (w > 0), ``start`` and ``features`` (its gate is :func:`near_best_in_spread`, not
        ``return_margin``, which stays the choice's)
    """

    def __init__(self, observation_space: spaces.Space, n_components: int, options: DiversityOptions):
        super().__init__()
        self.n_components = n_components
        self.weight, self.start, self.features = options.weight, options.start, options.features
        n_features = feature_count(observation_space, self.features)
        self.register_buffer("states", th.zeros(n_components, NOVELTY_STATES, n_features))
        # Counters in float64: exact to 2^53 steps (float32 would stop counting at 2^24)
        self.register_buffer("state_counts", th.zeros(n_components, dtype=th.float64))
        self.register_buffer("feature_mean", th.zeros(n_features))
        self.register_buffer("feature_var", th.ones(n_features))
        self.register_buffer("feature_count", th.zeros(1))
        # The step at which each component last joined the near-best set; -1 while it is out of it
        self.register_buffer("joined_at", th.full((n_components,), -1.0, dtype=th.float64))
        # The lowest recent return seen; the largest finite float until there is one (state dicts stay finite)
        self.register_buffer("return_floor", th.tensor(th.finfo(th.float64).max, dtype=th.float64))

    def gate(self, choice: ComponentChoice, num_timesteps: int) -> th.Tensor:
        """G: the components near the best recent return relative to the returns' spread (:func:`near_best_in_spread`),
        none before ``start`` steps. Every call lowers the floor to the lowest recent return seen so far."""
        returns = choice.recent_returns().to(th.float64)
        seen = returns[~th.isnan(returns)]
        if seen.numel() > 0:
            self.return_floor = th.minimum(self.return_floor, seen.min().to(self.return_floor.device))
        if num_timesteps < self.start:
            return th.zeros(self.n_components, dtype=th.bool)
        return near_best_in_spread(returns, self.return_floor.cpu())

    def observe(self, observations: Any, components: np.ndarray) -> None:
        features = select_features(observations, self.features).to(self.states.device)
        self.feature_mean, self.feature_var, self.feature_count = merge_moments(
            self.feature_mean, self.feature_var, self.feature_count, features
        )
        for env_index, component in enumerate(components):
            slot = int(self.state_counts[component]) % NOVELTY_STATES
            self.states[component, slot] = features[env_index]
            self.state_counts[component] += 1

    def distances(self, next_features: th.Tensor, ranked: list[int]) -> th.Tensor:
        """``d_i(s')`` of every head at every next state, in standard deviations, (B, N) (:func:`novelty_charge`), for
        the near-best components in their rank order ``ranked``."""
        states = standardize(next_features, self.feature_mean, self.feature_var)
        distances = th.full((states.shape[0], self.n_components), float("inf"), device=states.device)
        for position, component in enumerate(ranked[1:], start=1):
            kept = [self.states[j, : min(int(self.state_counts[j]), NOVELTY_STATES)] for j in ranked[:position]]
            reference = standardize(th.cat(kept), self.feature_mean, self.feature_var)
            distances[:, component] = nearest_distances(states, reference)
        return distances

    def update(self, replay_data: Any, choice: ComponentChoice, num_timesteps: int) -> DiversityStep:
        gate = self.gate(choice, num_timesteps).to(self.joined_at.device)
        self.joined_at = update_seniority(gate, self.joined_at, num_timesteps)
        next_features = select_features(replay_data.next_observations, self.features).to(self.states.device)
        distances = self.distances(next_features, seniority_ranking(gate, self.joined_at))
        # In reward units, so that w means the same on every task: a share of the batch's mean absolute reward
        scale = self.weight * replay_data.rewards.abs().mean()
        charge = novelty_charge(distances, scale)
        return DiversityStep(charge, replay_data.rewards.new_zeros(()))

    @staticmethod
    def record(logger: Logger, stats: UpdateStats) -> None:
        for index, charge in enumerate(stats.mean_charges.tolist()):
            logger.record(f"train/diversity_charge_{index}", charge)
