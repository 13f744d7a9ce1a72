"""What a SACM/S2ACM update logs (``train/...``): the statistics of one gradient step, their mean over an update, and
their logging."""

from typing import NamedTuple

import numpy as np
import torch as th
from stable_baselines3.common.logger import Logger

from sb3_mixture.entropy import MixtureSamples, weighted_entropy
from sb3_mixture.mixture import gaussian_kl, weight_entropy


class UpdateStats(NamedTuple):
    """What one gradient step logs, each a tensor without gradient."""

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
    diversity_loss: th.Tensor
    """the diversity mechanism's own loss (0 without one)"""
    mean_charges: th.Tensor
    """each head's mean diversity charge over the batch, (N,) (0 without one)"""

    @staticmethod
    def mean(steps: "list[UpdateStats]") -> "UpdateStats":
        """Field by field, the mean over gradient steps."""
        return UpdateStats(*(th.stack(values).mean(dim=0) for values in zip(*steps, strict=True)))


class UpdateLosses(NamedTuple):
    """The losses of one gradient step, each a scalar."""

    actor_loss: th.Tensor
    critic_loss: th.Tensor
    ent_coef_loss: th.Tensor
    diversity_loss: th.Tensor


def step_stats(
    losses: UpdateLosses,
    samples: MixtureSamples,
    terms: th.Tensor,
    log_weights: th.Tensor,
    alphas: th.Tensor,
    charge: "th.Tensor | None",
    soft_value_weights: bool,
) -> UpdateStats:
    """
    One gradient step's statistics.

    :param terms: the estimator's per-sample entropy terms, (B, M)
    :param log_weights: ``log w(s)`` the estimator used, (B, N)
    :param charge: each head's diversity charge, (B, N), or None
    :param soft_value_weights: the samples keep weight 1/N and the mixture's entropy weighs them by w(s)
        (docs/algorithm.md section 10)
    """
    with th.no_grad():
        entropy_samples = samples._replace(sample_weights=log_weights.exp()) if soft_value_weights else samples
        n_components = log_weights.shape[-1]
        return UpdateStats(
            actor_loss=losses.actor_loss.detach(),
            critic_loss=losses.critic_loss.detach(),
            ent_coef_loss=losses.ent_coef_loss.detach(),
            entropy=weighted_entropy(entropy_samples, terms).mean(),
            entropy_marginal=(samples.sample_weights * -samples.own_log_prob).sum(dim=-1).mean(),
            weight_entropy=weight_entropy(log_weights).mean(),
            ent_coefs=alphas,
            mean_weights=log_weights.exp().mean(dim=0),
            diversity_loss=losses.diversity_loss.detach(),
            mean_charges=alphas.new_zeros(n_components) if charge is None else charge.mean(dim=0),
        )


def record_update_stats(
    logger: Logger, stats: UpdateStats, n_updates: int, means: th.Tensor, log_stds: th.Tensor, tuned_temperatures: bool
) -> None:
    """
    Log an update's mean statistics as SAC does (``train/ent_coef`` is the weight-averaged temperature), plus the
    mixture's: each temperature and mean weight, the entropies and the spread of the components on the last batch
    (the mean closed-form KL over ordered pairs i != j of its ``means`` and ``log_stds``, (B, N, D)).
    """
    # Temperatures as used by the updates (before their own step), like SAC's train/ent_coef
    alphas, mean_weights = stats.ent_coefs.tolist(), stats.mean_weights.tolist()
    logger.record("train/n_updates", n_updates, exclude="tensorboard")
    logger.record("train/ent_coef", float(np.dot(mean_weights, alphas)))
    for index, alpha in enumerate(alphas):
        logger.record(f"train/ent_coef_{index}", alpha)
    logger.record("train/actor_loss", stats.actor_loss.item())
    logger.record("train/critic_loss", stats.critic_loss.item())
    if tuned_temperatures:
        logger.record("train/ent_coef_loss", stats.ent_coef_loss.item())
    logger.record("train/entropy", stats.entropy.item())
    logger.record("train/entropy_marginal", stats.entropy_marginal.item())
    # Mean H(w(s)) over the batches and each component's mean weight: constant unless the weights are learned
    logger.record("train/weight_entropy", stats.weight_entropy.item())
    for index, weight in enumerate(mean_weights):
        logger.record(f"train/mixture_weight_{index}", weight)
    n_components = len(alphas)
    if n_components > 1:
        kl = gaussian_kl(means, log_stds).mean(dim=0)
        logger.record("train/component_kl", float(kl.sum() / (n_components * (n_components - 1))))
