"""
Pure functions for a mixture of tanh-squashed diagonal Gaussians (SPEC.md section 1).

Shapes: ``B`` states, ``N`` components, ``M`` samples per state, ``D`` action dimensions.
Every component shares the squash ``a = tanh(u)``, so its log-Jacobian is shared too and a
sample's density under every component can be computed from the pre-squash ``u`` that made it,
never from ``atanh(a)``.
"""

import math

import numpy as np
import torch as th

# SB3's conventions (``SquashedDiagGaussianDistribution`` and SAC's ``Actor``)
SQUASH_EPSILON = 1e-6
LOG_STD_MIN = -20.0
LOG_STD_MAX = 2.0

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def validate_mixture_weights(mixture_weights: "list[float] | tuple[float, ...] | None", n_components: int) -> list[float]:
    """
    Check ``n_components`` and ``mixture_weights`` (SPEC.md section 1) and return the weights as a list.

    :param mixture_weights: one positive weight per component summing to one, or None for uniform weights
    :param n_components: number of mixture components, an int >= 1
    :raises TypeError: ``n_components`` is not an int
    :raises ValueError: anything else out of range
    """
    # numpy ints are ints to a user (e.g. values from a sweep or an Optuna trial); bools are not
    if isinstance(n_components, (bool, np.bool_)) or not isinstance(n_components, (int, np.integer)):
        raise TypeError(f"n_components must be an int >= 1, got {n_components!r} ({type(n_components).__name__})")
    n_components = int(n_components)
    if n_components < 1:
        raise ValueError(f"n_components must be an int >= 1, got {n_components}")
    if mixture_weights is None:
        return [1.0 / n_components] * n_components
    try:
        weights = [float(w) for w in mixture_weights]
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"mixture_weights must be a sequence of {n_components} positive floats, got {mixture_weights!r}"
        ) from error
    if len(weights) != n_components:
        raise ValueError(
            f"mixture_weights must have one weight per component (n_components={n_components}), got {len(weights)}: {weights}"
        )
    if not all(math.isfinite(w) and w > 0.0 for w in weights):
        raise ValueError(f"mixture_weights must all be > 0, got {weights}")
    if abs(sum(weights) - 1.0) > 1e-6:
        raise ValueError(f"mixture_weights must sum to 1, got {weights} (sum {sum(weights)})")
    return weights


def squash_log_jacobian(pre_squash: th.Tensor) -> th.Tensor:
    """
    ``J(u) = sum_d log(1 - tanh(u_d)^2 + eps)`` over the last dimension (SPEC.md section 1).

    The epsilon is SB3's, so a one-component mixture has exactly SAC's log-density.
    """
    return th.log(1.0 - th.tanh(pre_squash) ** 2 + SQUASH_EPSILON).sum(dim=-1)


def gaussian_log_prob(pre_squash: th.Tensor, means: th.Tensor, log_stds: th.Tensor) -> th.Tensor:
    """Diagonal Gaussian log-density ``log Normal(u; mu, exp(log_std))`` summed over the last dimension."""
    z = (pre_squash - means) * th.exp(-log_stds)
    return (-0.5 * z**2 - log_stds - _HALF_LOG_2PI).sum(dim=-1)


def cross_log_probs(pre_squash: th.Tensor, means: th.Tensor, log_stds: th.Tensor) -> th.Tensor:
    """
    Pre-squash Gaussian log-density of every sample under every component.

    :param pre_squash: samples ``u``, shape (B, M, D)
    :param means: component means, shape (B, N, D)
    :param log_stds: component log standard deviations, shape (B, N, D)
    :return: ``log Normal(u_m; mu_j, sigma_j)``, shape (B, M, N)
    """
    return gaussian_log_prob(pre_squash.unsqueeze(-2), means.unsqueeze(-3), log_stds.unsqueeze(-3))


def mixture_log_prob(cross: th.Tensor, log_jacobian: th.Tensor, log_weights: th.Tensor) -> th.Tensor:
    """
    Mixture log-density ``log pi(a|s) = logsumexp_j(log w_j + log Normal(u; mu_j, sigma_j)) - J(u)`` (SPEC.md section 1).

    :param cross: output of :func:`cross_log_probs`, shape (..., M, N)
    :param log_jacobian: ``J(u)`` of each sample, shape (..., M)
    :param log_weights: ``log w``, shape (N,)
    :return: shape (..., M)
    """
    return th.logsumexp(cross + log_weights, dim=-1) - log_jacobian


def sample_pre_squash(means: th.Tensor, log_stds: th.Tensor, noise: "th.Tensor | None" = None) -> th.Tensor:
    """Reparameterised ``u = mu + sigma * eps`` with ``eps ~ Normal(0, I)`` (drawn if not given)."""
    if noise is None:
        noise = th.randn_like(means)
    return means + th.exp(log_stds) * noise


def gather_components(params: th.Tensor, components: th.Tensor) -> th.Tensor:
    """
    Pick one component's parameters per sample.

    :param params: shape (B, N, D)
    :param components: component indices, shape (B, M)
    :return: shape (B, M, D)
    """
    index = components.unsqueeze(-1).expand(-1, -1, params.shape[-1])
    return th.gather(params, 1, index)


def gaussian_kl(means: th.Tensor, log_stds: th.Tensor) -> th.Tensor:
    """
    Closed-form ``KL(N_i || N_j)`` between all pairs of diagonal Gaussians.

    KL is invariant under the shared bijection tanh, so this is also the KL between squashed components.

    :param means: shape (..., N, D)
    :param log_stds: shape (..., N, D)
    :return: shape (..., N, N), entry [i, j] = KL(N_i || N_j)
    """
    mean_i, mean_j = means.unsqueeze(-2), means.unsqueeze(-3)
    log_std_i, log_std_j = log_stds.unsqueeze(-2), log_stds.unsqueeze(-3)
    var_ratio = th.exp(2.0 * (log_std_i - log_std_j))
    mahalanobis = (mean_i - mean_j) ** 2 * th.exp(-2.0 * log_std_j)
    return 0.5 * (var_ratio + mahalanobis - 1.0).sum(dim=-1) + (log_std_j - log_std_i).sum(dim=-1)


def gaussian_bhattacharyya(means: th.Tensor, log_stds: th.Tensor) -> th.Tensor:
    """
    Closed-form Bhattacharyya distance between all pairs of diagonal Gaussians.

    ``D_B = 1/8 (mu_i - mu_j)^T S^-1 (mu_i - mu_j) + 1/2 log(det S / sqrt(det S_i det S_j))`` with
    ``S = (S_i + S_j) / 2``; like KL it is invariant under the shared bijection.

    :param means: shape (..., N, D)
    :param log_stds: shape (..., N, D)
    :return: shape (..., N, N), symmetric, zero on the diagonal
    """
    mean_i, mean_j = means.unsqueeze(-2), means.unsqueeze(-3)
    var_i, var_j = th.exp(2.0 * log_stds).unsqueeze(-2), th.exp(2.0 * log_stds).unsqueeze(-3)
    avg_var = 0.5 * (var_i + var_j)
    mahalanobis = ((mean_i - mean_j) ** 2 / avg_var).sum(dim=-1)
    log_det_term = th.log(avg_var).sum(dim=-1) - (log_stds.unsqueeze(-2) + log_stds.unsqueeze(-3)).sum(dim=-1)
    return 0.125 * mahalanobis + 0.5 * log_det_term
