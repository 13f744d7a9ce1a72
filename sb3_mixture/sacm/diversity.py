"""
A SMERL-style diversity bonus for the mixture's critic heads (docs/algorithm.md section 11, experimental).

SMERL (Kumar, Kumar, Levine, Finn, *One Solution is Not All You Need: Few-Shot Extrapolation via Structured MaxEnt
RL*, NeurIPS 2020, <https://arxiv.org/abs/2010.14484>) pays latent z the reward
``r + w 1[R(z) >= R* - eps] (log q(z|s') - log p(z))``, q a discriminator over states: only the latents whose return
is near the best are pushed apart. Here the latent is the mixture component i (one component acts for a whole
episode), the latents compared are the components near the best return, and head i's target gets component i's
bonus.

Shapes: B transitions, N components (and critic heads), ``obs_dim`` flat observation features.
"""

import math

import numpy as np
import torch as th
from stable_baselines3.common.torch_layers import create_mlp
from torch import nn


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


def diversity_bonus(log_probs: th.Tensor, gate: th.Tensor, weight: float, log_prior: "th.Tensor | None" = None) -> th.Tensor:
    """
    Every head's bonus at every transition,
    ``bonus_i(s') = w gate_i (clip(log q_G(i|s') - log p_G(i), -log K, log K) - log K)``: SMERL's reward among the K
    components of the gate G (those near the best return), bounded and shifted down by its bound so that it is never
    positive (docs/algorithm.md section 11), added to head i's target ``y_i = r + bonus_i(s') + ...``. ``q_G`` and
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
    :param weight: ``w >= 0`` (:func:`validate_diversity`)
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


def _real(name: str, value: float) -> float:
    # numpy numbers are numbers to a user (a sweep, an Optuna trial); bools are not
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a float, got {value!r} ({type(value).__name__})")
    return float(value)


def validate_diversity(weight: float) -> float:
    """
    The diversity bonus's weight w, checked (docs/algorithm.md section 11) and returned as a float: a finite float
    >= 0 (0: no bonus).

    :raises TypeError: not a real number
    :raises ValueError: out of range
    """
    weight = _real("diversity_weight", weight)
    if not (math.isfinite(weight) and weight >= 0.0):
        raise ValueError(f"diversity_weight must be a finite float >= 0, got {weight!r}")
    return weight
