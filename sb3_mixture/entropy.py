"""
Mixture-entropy estimators (docs/algorithm.md section 2, the paper's section 3).

Every estimator is written as a weighted sum of per-sample terms, ``H = sum_m v_m H_m``:
with one sample per component (``component_sampling="all"``) the sample weights ``v`` are the
mixture weights ``w``; with one sample from a component ``c ~ w`` (``component_sampling="sample"``)
the single sample has weight one and ``H_c`` is an unbiased estimate of ``sum_i w_i H_i``.
The per-sample terms are also what the actor is charged for (docs/algorithm.md section 4, ``l_i = -H_i``)
and what S2ACM's partial sums add up (docs/algorithm.md section 3).
"""

from typing import NamedTuple

import torch as th

from sb3_mixture.mixture import (
    cross_log_probs,
    gather_components,
    gaussian_bhattacharyya,
    gaussian_kl,
    mixture_log_prob,
    per_sample,
    sample_pre_squash,
    squash_log_jacobian,
)

ENTROPY_ESTIMATORS = ("mixed_marginal", "pairwise_kl", "marginal", "pairwise_bhattacharyya")


class MixtureSamples(NamedTuple):
    """Reparameterised samples of a mixture and what every estimator needs to know about them."""

    pre_squash: th.Tensor
    """``u`` of each sample, (B, M, D); the action is ``tanh(u)``"""
    components: th.Tensor
    """component that drew each sample, (B, M), int64"""
    sample_weights: th.Tensor
    """weight of each sample in an estimate, (B, M) or broadcastable to it"""
    cross: th.Tensor
    """``log Normal(u_m; mu_j, sigma_j)`` for every sample m and component j, (B, M, N)"""
    log_jacobian: th.Tensor
    """shared squash correction ``J(u_m)``, (B, M)"""

    @property
    def actions(self) -> th.Tensor:
        return th.tanh(self.pre_squash)

    @property
    def own_log_prob(self) -> th.Tensor:
        """``log pi_c(a_m|s)`` under the component that drew the sample, (B, M)."""
        own = th.gather(self.cross, -1, self.components.unsqueeze(-1)).squeeze(-1)
        return own - self.log_jacobian


def draw_mixture_samples(
    means: th.Tensor,
    log_stds: th.Tensor,
    log_weights: th.Tensor,
    components: "th.Tensor | None" = None,
    noise: "th.Tensor | None" = None,
    additive_noise: "th.Tensor | None" = None,
) -> MixtureSamples:
    """
    Reparameterised samples of a mixture of squashed Gaussians.

    :param means: (B, N, D)
    :param log_stds: (B, N, D)
    :param log_weights: ``log w``, (N,), or (B, N) for state-dependent weights (docs/algorithm.md section 8)
    :param components: which component draws each sample, (B, M); None draws one sample from every
        component (M = N, sample weights ``w``); otherwise each sample has weight one
    :param noise: standard normal noise of shape (B, M, D); drawn if None
    :param additive_noise: pre-squash noise of every component, (B, N, D), added to the means instead of
        ``sigma * noise``: gSDE's ``z(s) theta_i`` (docs/algorithm.md section 9)
    """
    batch_size, n_components, _ = means.shape
    if components is None:
        sample_means, sample_log_stds = means, log_stds
        components = th.arange(n_components, device=means.device).expand(batch_size, n_components)
        sample_weights = th.exp(log_weights).expand(batch_size, n_components)
    else:
        sample_means, sample_log_stds = gather_components(means, components), gather_components(log_stds, components)
        sample_weights = th.ones(components.shape, device=means.device, dtype=means.dtype)
    if additive_noise is None:
        pre_squash = sample_pre_squash(sample_means, sample_log_stds, noise)
    elif sample_means is means:  # one sample of every component
        pre_squash = means + additive_noise
    else:
        pre_squash = sample_means + gather_components(additive_noise, components)
    cross = cross_log_probs(pre_squash, means, log_stds)
    return MixtureSamples(pre_squash, components, sample_weights, cross, squash_log_jacobian(pre_squash))


def mixed_marginal_terms(samples: MixtureSamples, log_weights: th.Tensor) -> th.Tensor:
    """
    Mixed marginal entropies ``H_i = -log sum_j w_j pi_j(a_i|s)`` (the paper's eq. 8, docs/algorithm.md section 2).

    Their ``w``-weighted sum is an unbiased estimate of the mixture entropy, because sampling one action
    per component is stratified sampling of the mixture.
    """
    return -mixture_log_prob(samples.cross, samples.log_jacobian, log_weights)


def marginal_terms(samples: MixtureSamples) -> th.Tensor:
    """Marginal entropies ``H_i = -log pi_i(a_i|s)``; their weighted sum estimates the lower bound ``H(pi|W)`` (eq. 3)."""
    return -samples.own_log_prob


def pairwise_terms(samples: MixtureSamples, log_weights: th.Tensor, divergence: th.Tensor) -> th.Tensor:
    """
    Kolchinsky & Tracey's pairwise-distance terms ``H_i = -log pi_i(a_i|s) - log sum_j w_j exp(-D(N_i||N_j))`` (eq. 5).

    :param divergence: closed-form distances between the pre-squash components, (B, N, N)
    """
    # Row c_m of the divergence matrix for every sample m: (B, M, N)
    rows = th.gather(divergence, 1, samples.components.unsqueeze(-1).expand(-1, -1, divergence.shape[-1]))
    return -samples.own_log_prob - th.logsumexp(per_sample(log_weights) - rows, dim=-1)


def entropy_terms(
    estimator: str,
    samples: MixtureSamples,
    log_weights: th.Tensor,
    means: th.Tensor,
    log_stds: th.Tensor,
) -> th.Tensor:
    """
    Per-sample terms ``H_m`` of the chosen estimator (docs/algorithm.md section 2), shape (B, M).

    The estimate is ``(samples.sample_weights * terms).sum(-1)``.
    """
    if estimator == "mixed_marginal":
        return mixed_marginal_terms(samples, log_weights)
    if estimator == "marginal":
        return marginal_terms(samples)
    if estimator == "pairwise_kl":
        return pairwise_terms(samples, log_weights, gaussian_kl(means, log_stds))
    if estimator == "pairwise_bhattacharyya":
        return pairwise_terms(samples, log_weights, gaussian_bhattacharyya(means, log_stds))
    raise ValueError(f"entropy_estimator must be one of {ENTROPY_ESTIMATORS}, got {estimator!r}")


def weighted_entropy(samples: MixtureSamples, terms: th.Tensor) -> th.Tensor:
    """The estimate ``H = sum_m v_m H_m`` per state, (B,), from the per-sample terms of :func:`entropy_terms`."""
    return (samples.sample_weights * terms).sum(dim=-1)


def partial_sum_entropies(samples: MixtureSamples, terms: th.Tensor, n_components: int) -> th.Tensor:
    """
    S2ACM's per-head entropies ``H^(i) = sum_{j<=i} w_j H_j``, (B, N): eq. 14 as docs/algorithm.md section 3 reads it.

    Head 1 (index 0) sees only component 1's term and head N the full estimate. With one sample from a
    component c ~ w per state, ``1[c <= i] H_c`` is the unbiased estimate of the same partial sum.
    """
    heads = th.arange(n_components, device=terms.device)
    included = (samples.components.unsqueeze(-1) <= heads).to(terms.dtype)  # (B, M, N)
    return ((samples.sample_weights * terms).unsqueeze(-1) * included).sum(dim=1)


def estimate_entropy(
    estimator: str,
    means: th.Tensor,
    log_stds: th.Tensor,
    mixture_weights: th.Tensor,
    noise: "th.Tensor | None" = None,
) -> tuple[th.Tensor, th.Tensor]:
    """
    One draw of an estimator with one reparameterised sample per component.

    :param means: (B, N, D) pre-squash component means
    :param log_stds: (B, N, D)
    :param mixture_weights: (N,)
    :param noise: optional standard normal noise, (B, N, D)
    :return: the estimate per state, (B,), and its per-component terms ``H_i``, (B, N)
    """
    log_weights = th.log(mixture_weights)
    samples = draw_mixture_samples(means, log_stds, log_weights, noise=noise)
    terms = entropy_terms(estimator, samples, log_weights, means, log_stds)
    return weighted_entropy(samples, terms), terms


def monte_carlo_entropy(
    means: th.Tensor,
    log_stds: th.Tensor,
    mixture_weights: th.Tensor,
    n_samples: int = 10_000,
) -> tuple[th.Tensor, th.Tensor]:
    """
    Diagnostic Monte Carlo estimate of the true mixture entropy ``-E_{a~pi} log pi(a|s)`` (docs/algorithm.md section 2).

    Never used in a loss: it costs ``n_samples`` density evaluations per state.

    :return: the estimate per state, (B,), and its standard error, (B,)
    """
    batch_size = means.shape[0]
    log_weights = th.log(mixture_weights)
    with th.no_grad():
        components = th.multinomial(mixture_weights.expand(batch_size, -1), n_samples, replacement=True)
        samples = draw_mixture_samples(means, log_stds, log_weights, components=components)
        neg_log_prob = -mixture_log_prob(samples.cross, samples.log_jacobian, log_weights)
    return neg_log_prob.mean(dim=-1), neg_log_prob.std(dim=-1) / n_samples**0.5
