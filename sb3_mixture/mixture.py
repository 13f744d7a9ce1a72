"""
Pure functions for a mixture of tanh-squashed diagonal Gaussians (docs/algorithm.md section 1).

Shapes: ``B`` states, ``N`` components, ``M`` samples per state, ``D`` action dimensions.
Every component shares the squash ``a = tanh(u)``, so its log-Jacobian is shared too and a
sample's density under every component can be computed from the pre-squash ``u`` that made it,
never from ``atanh(a)``.
"""

import math

import torch as th

# SB3's conventions (``SquashedDiagGaussianDistribution`` and SAC's ``Actor``)
SQUASH_EPSILON = 1e-6
LOG_STD_MIN = -20.0
LOG_STD_MAX = 2.0
# SB3's StateDependentNoiseDistribution: added to gSDE's variance, and inside expln
SDE_EPSILON = 1e-6

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def squash_log_jacobian(pre_squash: th.Tensor) -> th.Tensor:
    """
    ``J(u) = sum_d log(1 - tanh(u_d)^2 + eps)`` over the last dimension (docs/algorithm.md section 1).

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
    Mixture log-density ``log pi(a|s) = logsumexp_j(log w_j + log Normal(u; mu_j, sigma_j)) - J(u)``.

    docs/algorithm.md section 1.

    :param cross: output of :func:`cross_log_probs`, shape (..., M, N)
    :param log_jacobian: ``J(u)`` of each sample, shape (..., M)
    :param log_weights: ``log w``, shape (N,), or (B, N) for weights that depend on the state (cross is then (B, M, N))
    :return: shape (..., M)
    """
    return th.logsumexp(cross + per_sample(log_weights), dim=-1) - log_jacobian


def per_sample(log_weights: th.Tensor) -> th.Tensor:
    """Log-weights of shape (B, N) as (B, 1, N), so that they broadcast over the M samples of each state; (N,) as is."""
    return log_weights.unsqueeze(-2) if log_weights.dim() > 1 else log_weights


def gated_log_weights(logits: th.Tensor, floor: float = 0.0) -> th.Tensor:
    """
    Learned mixing log-weights ``log w(s)`` with ``w = (1 - N eps) softmax(g) + eps`` (docs/algorithm.md section 8).

    The floor ``eps`` keeps every component's weight at least ``eps``, so no component (and no critic head) can be
    starved of data; ``eps = 0`` is the plain softmax.

    :param logits: gating logits ``g(s)``, shape (B, N)
    :param floor: ``eps`` in ``[0, 1/N)``
    :return: shape (B, N)
    """
    log_softmax = th.log_softmax(logits, dim=-1)
    if floor <= 0.0:
        return log_softmax
    n_components = logits.shape[-1]
    # In log space: log((1 - N eps) softmax + eps), stable when a softmax entry underflows
    return th.logaddexp(log_softmax + math.log1p(-n_components * floor), th.full_like(log_softmax, math.log(floor)))


def component_soft_values(own_q: th.Tensor, own_log_prob: th.Tensor, alphas: th.Tensor) -> th.Tensor:
    """
    Each component's own soft value ``V_i(s) = E_{a ~ pi_i}[Q_i(s, a) - alpha_i log pi_i(a|s)]``, estimated by the
    mean over S samples of component i (docs/algorithm.md section 10).

    :param own_q: ``Q_i(s, a_{i,m})`` of head i at sample m of component i, (B, N, S)
    :param own_log_prob: ``log pi_i(a_{i,m}|s)``, (B, N, S)
    :param alphas: the temperatures ``alpha_i``, (N,)
    :return: (B, N)
    """
    return (own_q - alphas.view(-1, 1) * own_log_prob).mean(dim=-1)


def soft_value_log_weights(values: th.Tensor, temperature: "float | th.Tensor", floor: float = 0.0) -> th.Tensor:
    """
    Mixing log-weights from the components' soft values, ``w = (1 - N eps) softmax(V / alpha) + eps``
    (docs/algorithm.md section 10): the weights that maximise ``sum_i w_i V_i + alpha H(w)``, floored.

    :param values: ``V_i(s)``, (B, N)
    :param temperature: ``alpha`` of the weights, > 0
    :param floor: ``eps`` in ``[0, 1/N)``
    :return: (B, N)
    """
    return gated_log_weights(values / temperature, floor)


def weight_entropy(log_weights: th.Tensor) -> th.Tensor:
    """Entropy of the mixing weights ``H(w) = -sum_i w_i log w_i`` over the last dimension (eq. 6's H(W))."""
    # entr(0) = 0: a weight that underflowed adds nothing (w log w would be NaN there)
    return th.special.entr(log_weights.exp()).sum(dim=-1)


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


def sde_std(log_std: th.Tensor, use_expln: bool = False) -> th.Tensor:
    """
    gSDE's standard deviations of the exploration-matrix entries from their log parameters (docs/algorithm.md section 9).

    ``exp(log_std)``, or with ``use_expln`` SB3's ``expln``: ``exp(x)`` for x <= 0 and ``log1p(x) + 1`` above, which
    grows slowly, so the variance cannot blow up.
    """
    if not use_expln:
        return th.exp(log_std)
    below = th.exp(log_std) * (log_std <= 0)
    above = (th.log1p(log_std * (log_std > 0) + SDE_EPSILON) + 1.0) * (log_std > 0)
    return below + above


def sde_log_stds(latent: th.Tensor, std: th.Tensor) -> th.Tensor:
    """
    Per-state log standard deviations of gSDE components: ``sigma_i(s)_d^2 = sum_k z_k(s)^2 std_{i,kd}^2 + eps``.

    The noise ``z(s) theta_i`` with ``theta_i[k, d] ~ Normal(0, std_{i,kd}^2)`` has exactly this variance; ``eps`` is
    SB3's, so a one-component mixture has SAC's gSDE density (docs/algorithm.md section 9).

    :param latent: gSDE features ``z(s)``, (B, L)
    :param std: (N, L, D)
    :return: (B, N, D)
    """
    variance = th.einsum("bl,nld->bnd", latent**2, std**2)
    return 0.5 * th.log(variance + SDE_EPSILON)


def sde_noise(latent: th.Tensor, exploration: th.Tensor) -> th.Tensor:
    """
    gSDE's pre-squash noise ``z(s) theta_i`` of every component, (B, N, D).

    :param latent: ``z(s)``, (B, L)
    :param exploration: one matrix per component, (N, L, D), or one per state and component, (B, N, L, D)
    """
    if exploration.dim() == 3:
        return th.einsum("bl,nld->bnd", latent, exploration)
    return th.einsum("bl,bnld->bnd", latent, exploration)


def mode_components(means: th.Tensor, log_stds: th.Tensor, log_weights: th.Tensor) -> th.Tensor:
    """
    Index of the component whose mean action has the highest mixture density, (B,): the deterministic rule
    ``deterministic_component="mode"`` (docs/algorithm.md section 6).

    :param means: pre-squash component means, (B, N, D)
    :param log_stds: their log-stds, (B, N, D)
    :param log_weights: ``log w(s)``, (B, N) or (N,)
    """
    cross = cross_log_probs(means, means, log_stds)
    return mixture_log_prob(cross, squash_log_jacobian(means), log_weights).argmax(dim=-1)


def draw_components(log_weights: th.Tensor, count: int) -> th.Tensor:
    """
    ``count`` component indices drawn from the mixing weights, (count,): from one weight vector shared by every draw
    (``log_weights`` of shape (N,), fixed weights) or one draw per row (shape (count, N), weights of each state).
    """
    if log_weights.dim() == 1:
        return th.multinomial(log_weights.exp(), count, replacement=True)
    return th.multinomial(log_weights.detach().exp(), 1).view(count)
