"""
The mixture math of ``sb3_mixture.mixture`` and ``sb3_mixture.entropy`` (docs/algorithm.md sections 1-2) against
independent computations: ``torch.distributions`` (MixtureSameFamily pushed through TanhTransform,
``kl_divergence``), SB3's ``SquashedDiagGaussianDistribution``, closed forms written out here, and
numerical quadrature on a grid.

Conventions of the references:

- ``TanhTransform`` uses the exact Jacobian ``log(1 - tanh(u)^2)``; the package uses SB3's
  ``log(1 - tanh(u)^2 + 1e-6)`` (docs/algorithm.md section 1). The two differ by exactly
  ``sum_d log1p(1e-6 * cosh(u_d)^2)``, which :func:`eps_correction` computes, so comparisons are exact
  up to float64 round-off rather than loose.
- The "true" entropy every estimator targets is therefore ``-E log pi_eps(a|s)``, the entropy SAC's
  ``-log pi`` estimates.
- Statistical checks are deterministic (seeded) and use k = 4 standard errors of the test's own draws.
  Each of them also shows it has power: a deliberately wrong target is rejected by the same check.
"""

import math

import pytest
import torch as th
from stable_baselines3.common.distributions import SquashedDiagGaussianDistribution
from torch.distributions import (
    Categorical,
    Independent,
    MixtureSameFamily,
    Normal,
    TanhTransform,
    TransformedDistribution,
    kl_divergence,
)

from sb3_mixture.entropy import (
    ENTROPY_ESTIMATORS,
    draw_mixture_samples,
    entropy_terms,
    estimate_entropy,
    monte_carlo_entropy,
    weighted_entropy,
)
from sb3_mixture.mixture import (
    cross_log_probs,
    gaussian_bhattacharyya,
    gaussian_kl,
    gaussian_log_prob,
    mixture_log_prob,
    squash_log_jacobian,
)
from sb3_mixture.options import validate_mixture_weights

DTYPE = th.float64
SB3_EPSILON = 1e-6  # written out here on purpose, not imported from the package
N_SIGMA = 4.0  # acceptance band of the statistical checks, in standard errors
N_DRAWS = 5_000  # independent draws of an estimator per statistical check


# The tensors here are small: one thread is faster, and much faster on a loaded machine
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _seed():
    th.manual_seed(0)


# ---------------------------------------------------------------------------------------------------
# Independent references
# ---------------------------------------------------------------------------------------------------


def random_params(batch_shape, n_components, action_dim, mean_scale=1.0, log_std_range=(-1.0, 0.3)):
    """Random pre-squash means and log-stds of shape (*batch_shape, N, D) and non-uniform weights (N,)."""
    shape = (*batch_shape, n_components, action_dim)
    means = mean_scale * th.randn(shape, dtype=DTYPE)
    low, high = log_std_range
    log_stds = low + (high - low) * th.rand(shape, dtype=DTYPE)
    weights = th.arange(1, n_components + 1, dtype=DTYPE) ** 1.5
    weights = weights[th.randperm(n_components)]
    return means, log_stds, weights / weights.sum()


def torch_pre_squash_mixture(means, log_stds, weights):
    """``MixtureSameFamily(Categorical(w), Independent(Normal(mu, sigma), 1))`` with batch shape means.shape[:-2]."""
    mixing = Categorical(probs=weights.expand(means.shape[:-1]))
    return MixtureSameFamily(mixing, Independent(Normal(means, log_stds.exp()), 1))


def eps_correction(pre_squash):
    """``J_eps(u) - J_exact(u) = sum_d log(1 + eps / (1 - tanh(u_d)^2)) = sum_d log1p(eps cosh(u_d)^2)``."""
    return th.log1p(SB3_EPSILON * th.cosh(pre_squash) ** 2).sum(dim=-1)


def torch_squashed_log_prob(means, log_stds, weights, pre_squash):
    """
    ``log pi_eps(tanh(u))`` from torch.distributions: the exact TanhTransform density of the squashed mixture,
    moved to SB3's epsilon convention by :func:`eps_correction`.

    :param pre_squash: (*batch, M, D) in the package's layout
    :return: (*batch, M)
    """
    tanh = TanhTransform(cache_size=1)  # the cache hands log_prob the u we squashed, never atanh(a)
    squashed = TransformedDistribution(torch_pre_squash_mixture(means, log_stds, weights), [tanh])
    u = pre_squash.movedim(-2, 0)  # torch.distributions puts sample dimensions first
    log_prob = squashed.log_prob(tanh(u)).movedim(0, -1)
    return log_prob - eps_correction(pre_squash)


def torch_mc_entropy(means, log_stds, weights, n_samples=100_000):
    """Monte Carlo ``-E log pi_eps(a|s)`` with samples from the torch mixture: (mean, standard error), each (*batch,)."""
    u = torch_pre_squash_mixture(means, log_stds, weights).sample((n_samples,)).movedim(0, -2)
    neg_log_prob = -torch_squashed_log_prob(means, log_stds, weights, u)
    return neg_log_prob.mean(-1), neg_log_prob.std(-1) / math.sqrt(n_samples)


def expected_log_jacobian_1d(mean, std, n_points=4001, width=12.0):
    """``E_{u ~ Normal(mean, std)} log(1 - tanh(u)^2 + eps)`` by the trapezoid rule, elementwise over tensors."""
    z = th.linspace(-width, width, n_points, dtype=DTYPE)
    u = mean.unsqueeze(-1) + std.unsqueeze(-1) * z
    exact = TanhTransform().log_abs_det_jacobian(u, th.tanh(u))  # log(1 - tanh(u)^2), computed stably
    density = th.exp(-0.5 * z**2) / math.sqrt(2.0 * math.pi)
    integrand = density * (exact + th.log1p(SB3_EPSILON * th.cosh(u) ** 2))
    return th.trapezoid(integrand, z, dim=-1)


def component_entropies(means, log_stds):
    """Entropy of every squashed component, ``H(N_i) + E_{N_i} J_eps(u)`` (J is separable over dimensions), (*batch, N)."""
    gaussian = Independent(Normal(means, log_stds.exp()), 1).entropy()
    return gaussian + expected_log_jacobian_1d(means, log_stds.exp()).sum(dim=-1)


def quadrature_entropy_1d(means, log_stds, weights, grid):
    """Near-exact entropy of a one-dimensional squashed mixture: ``-int p log p du + int p J_eps du`` on a grid."""
    components = Normal(means.reshape(-1), log_stds.reshape(-1).exp())  # means, log_stds: (N, 1)
    density = (weights * th.exp(components.log_prob(grid.unsqueeze(-1)))).sum(dim=-1)
    log_jacobian = TanhTransform().log_abs_det_jacobian(grid, th.tanh(grid)) + th.log1p(SB3_EPSILON * th.cosh(grid) ** 2)
    return th.trapezoid(-th.special.xlogy(density, density) + density * log_jacobian, grid)


def bhattacharyya_closed_form(mean_p, std_p, mean_q, std_q):
    """Bhattacharyya distance of diagonal Gaussians, summed over the last dimension."""
    var_sum = std_p**2 + std_q**2
    per_dim = (mean_p - mean_q) ** 2 / (4.0 * var_sum) + 0.5 * th.log(var_sum / (2.0 * std_p * std_q))
    return per_dim.sum(dim=-1)


def bhattacharyya_quadrature(mean_p, std_p, mean_q, std_q, n_points=20001):
    """``-log int sqrt(p q)``, by the trapezoid rule per dimension (the coefficient factorises over dimensions)."""
    low = th.minimum(mean_p - 12 * std_p, mean_q - 12 * std_q).unsqueeze(-1)
    high = th.maximum(mean_p + 12 * std_p, mean_q + 12 * std_q).unsqueeze(-1)
    t = th.linspace(0.0, 1.0, n_points, dtype=DTYPE)
    x = low + (high - low) * t
    log_p = Normal(mean_p.unsqueeze(-1), std_p.unsqueeze(-1)).log_prob(x)
    log_q = Normal(mean_q.unsqueeze(-1), std_q.unsqueeze(-1)).log_prob(x)
    coefficient = th.trapezoid(th.exp(0.5 * (log_p + log_q)), x, dim=-1)
    return -th.log(coefficient).sum(dim=-1)


def sb3_neg_log_prob(mean, log_std, pre_squash):
    """SAC's ``-log pi(a|s)`` from SB3's own distribution class, for (B, D) inputs."""
    distribution = SquashedDiagGaussianDistribution(mean.shape[-1]).proba_distribution(mean, log_std)
    return -distribution.log_prob(th.tanh(pre_squash), pre_squash)


def draws(estimator, means, log_stds, weights, n_draws):
    """``n_draws`` independent draws of an estimator (one per copy of the state), (n_draws,)."""
    batch_means = means.expand(n_draws, *means.shape).contiguous()
    batch_log_stds = log_stds.expand(n_draws, *log_stds.shape).contiguous()
    estimate, terms = estimate_entropy(estimator, batch_means, batch_log_stds, weights)
    assert estimate.shape == (n_draws,) and terms.shape == (n_draws, means.shape[0])
    return estimate


def assert_matches(sample_mean, standard_error, target, wrong_offset=None):
    """``|sample_mean - target| <= N_SIGMA * SE``; with ``wrong_offset``, check the same test rejects ``target + offset``."""
    band = N_SIGMA * standard_error
    assert abs(sample_mean - target) <= band, f"{sample_mean:.5f} vs {target:.5f} (band {band:.5f})"
    if wrong_offset is not None:
        assert abs(sample_mean - (target + wrong_offset)) > band, "the check would not see a wrong target"


def as_float(x):
    return float(x.item()) if isinstance(x, th.Tensor) else float(x)


# Pre-squash configurations (N, D) of the entropy tests
CONFIGS = {
    # components on top of each other, with different widths: the bounds are far from tight
    "overlapping": (
        th.tensor([[0.0, 0.2], [0.3, -0.1], [-0.2, 0.1]], dtype=DTYPE),
        th.tensor([[-0.5, -0.3], [-0.8, -0.6], [-0.2, -0.9]], dtype=DTYPE),
        th.tensor([0.5, 0.3, 0.2], dtype=DTYPE),
    ),
    # narrow components whose means are ~20 sigma apart: H(pi) = H(pi|W) + H(W) up to ~1e-20
    "separated": (
        th.tensor([[-1.2, 0.5], [0.0, 0.0], [1.0, -0.5]], dtype=DTYPE),
        th.full((3, 2), math.log(0.05), dtype=DTYPE),
        th.tensor([0.6, 0.3, 0.1], dtype=DTYPE),
    ),
    # five components in three dimensions, partly overlapping, some far out where the squash matters
    "five_3d": (
        th.tensor([[0.0, 0.5, -0.5], [1.0, 1.0, 0.0], [-1.5, 0.0, 0.5], [0.5, -1.0, 1.5], [2.0, -2.0, 0.0]], dtype=DTYPE),
        th.tensor(
            [[-0.5, -0.5, -0.5], [-1.0, -0.2, -0.7], [0.0, -1.5, -0.3], [-0.4, -0.4, -1.0], [-0.7, -0.7, -0.7]],
            dtype=DTYPE,
        ),
        th.tensor([0.1, 0.3, 0.2, 0.25, 0.15], dtype=DTYPE),
    ),
}


# ---------------------------------------------------------------------------------------------------
# 1. Log-densities (docs/algorithm.md section 1)
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3,), (7, 1), (4, 5, 6)])
def test_gaussian_log_prob_matches_torch(shape):
    means, log_stds, _ = random_params(shape[:-1], 1, shape[-1])
    u = th.randn(shape, dtype=DTYPE) * 2.0
    expected = Independent(Normal(means[..., 0, :], log_stds[..., 0, :].exp()), 1).log_prob(u)
    th.testing.assert_close(gaussian_log_prob(u, means[..., 0, :], log_stds[..., 0, :]), expected, rtol=1e-12, atol=1e-12)
    # broadcasting one set of parameters over many samples
    single = Independent(Normal(means.flatten()[: shape[-1]], log_stds.flatten()[: shape[-1]].exp()), 1)
    th.testing.assert_close(
        gaussian_log_prob(u, means.flatten()[: shape[-1]], log_stds.flatten()[: shape[-1]]), single.log_prob(u)
    )


def test_squash_log_jacobian_is_sb3_epsilon_form():
    u = th.cat([th.randn(50, 4, dtype=DTYPE), th.linspace(-9.0, 9.0, 40, dtype=DTYPE).reshape(10, 4)])
    exact = TanhTransform().log_abs_det_jacobian(u, th.tanh(u)).sum(dim=-1)
    result = squash_log_jacobian(u)
    assert result.shape == (60,)
    th.testing.assert_close(result, exact + eps_correction(u), rtol=1e-9, atol=1e-9)
    # the epsilon really is there: far out it changes the Jacobian by O(1), near zero by ~1e-6 per dimension
    assert (result - exact)[-1] > 1.0
    th.testing.assert_close(squash_log_jacobian(th.zeros(2, 3, dtype=DTYPE)), th.full((2,), 3 * math.log1p(1e-6), dtype=DTYPE))
    # and it is SB3's: a float32 one-component density equals SquashedDiagGaussianDistribution's
    mean, log_std, x = th.randn(8, 3), th.randn(8, 3) * 0.3, th.randn(8, 3) * 2
    ours = gaussian_log_prob(x, mean, log_std) - squash_log_jacobian(x)
    th.testing.assert_close(-ours, sb3_neg_log_prob(mean, log_std, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch_shape", [(), (4,), (2, 3)])
def test_cross_log_probs_matches_torch(batch_shape):
    n_components, n_samples, action_dim = 4, 6, 3
    means, log_stds, _ = random_params(batch_shape, n_components, action_dim)
    u = th.randn(*batch_shape, n_samples, action_dim, dtype=DTYPE)
    cross = cross_log_probs(u, means, log_stds)
    assert cross.shape == (*batch_shape, n_samples, n_components)
    for j in range(n_components):
        component = Independent(Normal(means[..., j : j + 1, :], log_stds[..., j : j + 1, :].exp()), 1)
        th.testing.assert_close(cross[..., j], component.log_prob(u), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("batch_shape", [(), (4,), (2, 3)])
@pytest.mark.parametrize("action_dim", [1, 3, 6])
@pytest.mark.parametrize("n_components", [1, 2, 5])
def test_mixture_log_prob_matches_torch_squashed_mixture(n_components, action_dim, batch_shape):
    n_samples = 64
    means, log_stds, weights = random_params(batch_shape, n_components, action_dim, mean_scale=1.5)
    u = torch_pre_squash_mixture(means, log_stds, weights).sample((n_samples,)).movedim(0, -2)
    u[..., :4, :] *= 3.0  # a few samples far out, where SB3's epsilon matters
    result = mixture_log_prob(cross_log_probs(u, means, log_stds), squash_log_jacobian(u), th.log(weights))
    assert result.shape == (*batch_shape, n_samples)
    th.testing.assert_close(result, torch_squashed_log_prob(means, log_stds, weights, u), rtol=1e-9, atol=1e-9)
    if n_components > 1:
        # the weights matter: the same check fails with the weights in reverse order
        wrong = mixture_log_prob(cross_log_probs(u, means, log_stds), squash_log_jacobian(u), th.log(weights.flip(0)))
        assert not th.allclose(wrong, result, rtol=1e-6, atol=1e-6)


def test_mixture_log_prob_float32_extreme_log_stds():
    """SAC's clamp range [-20, 2] of log-stds: float32 densities stay finite and match float64 torch."""
    means = th.tensor([[[0.0, 0.5], [0.3, -0.2], [-1.0, 1.0]]])
    log_stds = th.tensor([[[-20.0, -20.0], [2.0, 2.0], [-3.0, 0.0]]])
    weights = th.tensor([0.2, 0.5, 0.3])
    u = th.stack([means[0, 0], means[0, 0] + 1e-9, th.tensor([0.1, 0.1]), th.tensor([3.0, -2.0])]).unsqueeze(0)
    result = mixture_log_prob(cross_log_probs(u, means, log_stds), squash_log_jacobian(u), th.log(weights))
    assert th.isfinite(result).all()
    expected = torch_squashed_log_prob(means.double(), log_stds.double(), weights.double(), u.double())
    th.testing.assert_close(result.double(), expected, rtol=1e-5, atol=1e-4)


# ---------------------------------------------------------------------------------------------------
# Closed-form divergences
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_shape", [(), (3,)])
def test_gaussian_kl_matches_torch_kl_divergence(batch_shape):
    n_components, action_dim = 4, 3
    means, log_stds, _ = random_params(batch_shape, n_components, action_dim, log_std_range=(-2.0, 1.0))
    kl = gaussian_kl(means, log_stds)
    assert kl.shape == (*batch_shape, n_components, n_components)
    for i in range(n_components):
        p = Independent(Normal(means[..., i, :], log_stds[..., i, :].exp()), 1)
        for j in range(n_components):
            q = Independent(Normal(means[..., j, :], log_stds[..., j, :].exp()), 1)
            th.testing.assert_close(kl[..., i, j], kl_divergence(p, q), rtol=1e-10, atol=1e-12)
    # asymmetric, as KL must be (a symmetrised formula would pass the diagonal but not this)
    assert not th.allclose(kl, kl.transpose(-1, -2))


@pytest.mark.parametrize("batch_shape", [(), (3,)])
def test_gaussian_bhattacharyya_matches_closed_form_and_quadrature(batch_shape):
    n_components, action_dim = 4, 3
    means, log_stds, _ = random_params(batch_shape, n_components, action_dim, log_std_range=(-2.0, 1.0))
    distance = gaussian_bhattacharyya(means, log_stds)
    assert distance.shape == (*batch_shape, n_components, n_components)
    mean_p, mean_q = means.unsqueeze(-2), means.unsqueeze(-3)
    std_p, std_q = log_stds.exp().unsqueeze(-2), log_stds.exp().unsqueeze(-3)
    th.testing.assert_close(distance, bhattacharyya_closed_form(mean_p, std_p, mean_q, std_q), rtol=1e-10, atol=1e-12)
    th.testing.assert_close(distance, bhattacharyya_quadrature(mean_p, std_p, mean_q, std_q), rtol=1e-6, atol=1e-8)
    th.testing.assert_close(distance, distance.transpose(-1, -2))
    th.testing.assert_close(th.diagonal(distance, dim1=-2, dim2=-1), th.zeros(*batch_shape, n_components, dtype=DTYPE))


# ---------------------------------------------------------------------------------------------------
# validate_mixture_weights (docs/algorithm.md section 1)
# ---------------------------------------------------------------------------------------------------


def test_validate_mixture_weights_accepts_valid_and_defaults_to_uniform():
    assert validate_mixture_weights(None, 4) == [0.25] * 4
    assert validate_mixture_weights((0.5, 0.25, 0.25), 3) == [0.5, 0.25, 0.25]
    assert validate_mixture_weights(th.tensor([0.7, 0.3]).tolist(), 2) == pytest.approx([0.7, 0.3])
    assert validate_mixture_weights([1.0], 1) == [1.0]


@pytest.mark.parametrize(
    "weights, n_components, message",
    [
        ([0.5, 0.5], 3, "one weight per component"),
        ([0.25, 0.25, 0.25, 0.25], 3, "one weight per component"),
        ([1.0, 0.0], 2, "> 0"),
        ([1.5, -0.5], 2, "> 0"),
        ([float("nan"), 1.0], 2, "> 0"),
        ([0.5, 0.4], 2, "sum to 1"),
        ([0.6, 0.6], 2, "sum to 1"),
    ],
)
def test_validate_mixture_weights_rejects_bad_weights(weights, n_components, message):
    with pytest.raises(ValueError, match="mixture_weights") as error:
        validate_mixture_weights(weights, n_components)
    assert message in str(error.value)


def test_validate_mixture_weights_rejects_bad_n_components():
    with pytest.raises(ValueError, match="n_components"):
        validate_mixture_weights(None, 0)
    with pytest.raises(TypeError, match="n_components"):
        validate_mixture_weights(None, 2.0)
    with pytest.raises(TypeError, match="n_components"):
        validate_mixture_weights(None, True)


# ---------------------------------------------------------------------------------------------------
# 2. Entropy estimators (docs/algorithm.md section 2)
# ---------------------------------------------------------------------------------------------------


def reference_term(estimator, means, log_stds, weights, component, pre_squash):
    """
    One per-sample term of docs/algorithm.md section 2's table for one state, from torch.distributions, for a sample
    ``u`` (D,) drawn by ``component``: mixed marginal ``-log sum_j w_j pi_j(a)``, marginal ``-log pi_c(a)``,
    pairwise ``-log pi_c(a) - log sum_j w_j exp(-D(N_c || N_j))``.
    """
    u = pre_squash.unsqueeze(0)
    if estimator == "mixed_marginal":
        return -torch_squashed_log_prob(means, log_stds, weights, u)[0]
    own_log_prob = -sb3_neg_log_prob(means[component : component + 1], log_stds[component : component + 1], u)[0]
    if estimator == "marginal":
        return -own_log_prob
    stds = log_stds.exp()
    if estimator == "pairwise_kl":
        p = Independent(Normal(means[component], stds[component]), 1)
        distances = th.stack([kl_divergence(p, Independent(Normal(means[j], stds[j]), 1)) for j in range(len(weights))])
    else:
        distances = bhattacharyya_closed_form(means[component], stds[component], means, stds)
    return -own_log_prob - th.log((weights * th.exp(-distances)).sum())


@pytest.mark.parametrize("estimator", ENTROPY_ESTIMATORS)
def test_estimator_terms_match_spec_formulas_per_state(estimator):
    """
    Every term, for states with different parameters, against the formula of docs/algorithm.md section 2 evaluated
    state by state and sample by sample: one sample per component (weights w) and samples from given
    components (weights one, ``component_sampling="sample"``).
    """
    batch_size, n_components, action_dim = 4, 3, 2
    means, log_stds, weights = random_params((batch_size,), n_components, action_dim)
    log_weights = weights.log()

    noise = th.randn(batch_size, n_components, action_dim, dtype=DTYPE)
    estimate, terms = estimate_entropy(estimator, means, log_stds, weights, noise=noise)
    for b in range(batch_size):
        for i in range(n_components):
            u = means[b, i] + log_stds[b, i].exp() * noise[b, i]
            expected = reference_term(estimator, means[b], log_stds[b], weights, i, u)
            th.testing.assert_close(terms[b, i], expected, rtol=1e-10, atol=1e-10)
        th.testing.assert_close(estimate[b], (weights * terms[b]).sum())

    n_samples = 5
    components = th.randint(n_components, (batch_size, n_samples))
    noise = th.randn(batch_size, n_samples, action_dim, dtype=DTYPE)
    samples = draw_mixture_samples(means, log_stds, log_weights, components=components, noise=noise)
    terms = entropy_terms(estimator, samples, log_weights, means, log_stds)
    assert terms.shape == (batch_size, n_samples)
    th.testing.assert_close(weighted_entropy(samples, terms), terms.sum(-1))
    for b in range(batch_size):
        for m in range(n_samples):
            c = int(components[b, m])
            u = means[b, c] + log_stds[b, c].exp() * noise[b, m]
            expected = reference_term(estimator, means[b], log_stds[b], weights, c, u)
            th.testing.assert_close(terms[b, m], expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("estimator", ENTROPY_ESTIMATORS)
def test_estimator_gradients_match_reference_autograd(estimator):
    """
    For fixed noise, the gradient of the estimate w.r.t. every component's mean and log-std equals autograd
    through the torch.distributions reference: gradients reach every component through the sample ``u``
    and through the densities (docs/algorithm.md section 4: "gradients flow into every component through l_i").
    """
    batch_size, n_components, action_dim = 2, 3, 2
    means, log_stds, weights = random_params((batch_size,), n_components, action_dim)
    means.requires_grad_(True)
    log_stds.requires_grad_(True)
    noise = th.randn(batch_size, n_components, action_dim, dtype=DTYPE)

    estimate, _ = estimate_entropy(estimator, means, log_stds, weights, noise=noise)
    gradients = th.autograd.grad(estimate.sum(), [means, log_stds])

    reference = 0.0
    for b in range(batch_size):
        for i in range(n_components):
            u = means[b, i] + log_stds[b, i].exp() * noise[b, i]
            reference = reference + weights[i] * reference_term(estimator, means[b], log_stds[b], weights, i, u)
    expected = th.autograd.grad(reference, [means, log_stds])
    for gradient, expected_gradient in zip(gradients, expected, strict=True):
        th.testing.assert_close(gradient, expected_gradient, rtol=1e-9, atol=1e-10)
    if estimator != "marginal":
        # components interact: every component's parameters get a gradient from every other one's term
        _, terms = estimate_entropy(estimator, means, log_stds, weights, noise=noise)
        cross_gradient = th.autograd.grad(terms[0, 0], means)[0][0, 1:]
        assert (cross_gradient.abs() > 1e-8).all()


def test_unknown_estimator_is_a_value_error():
    means, log_stds, weights = random_params((2,), 2, 1)
    with pytest.raises(ValueError, match="entropy_estimator"):
        estimate_entropy("pairwise_wasserstein", means, log_stds, weights)


@pytest.mark.parametrize("dtype", [th.float32, th.float64])
@pytest.mark.parametrize("estimator", ENTROPY_ESTIMATORS)
def test_one_component_every_estimator_is_sacs_neg_log_prob(estimator, dtype):
    batch_size, action_dim = 6, 3
    means = th.randn(batch_size, 1, action_dim, dtype=dtype)
    log_stds = th.empty(batch_size, 1, action_dim, dtype=dtype).uniform_(-2.0, 1.0)
    noise = th.randn(batch_size, 1, action_dim, dtype=dtype)
    estimate, terms = estimate_entropy(estimator, means, log_stds, th.ones(1, dtype=dtype), noise=noise)
    u = means[:, 0] + log_stds[:, 0].exp() * noise[:, 0]
    expected = sb3_neg_log_prob(means[:, 0], log_stds[:, 0], u)
    tolerance = 1e-5 if dtype == th.float32 else 1e-10
    th.testing.assert_close(estimate, expected, rtol=tolerance, atol=tolerance)
    th.testing.assert_close(terms[:, 0], expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("estimator", ENTROPY_ESTIMATORS)
def test_identical_components_every_estimator_is_the_components_neg_log_prob(estimator):
    """Identical components: every term is the (shared) component's -log pi at its own sample (docs/algorithm.md section 2)."""
    batch_size, n_components, action_dim = 5, 4, 2
    mean, log_std = th.randn(batch_size, 1, action_dim, dtype=DTYPE), -0.5 * th.rand(batch_size, 1, action_dim, dtype=DTYPE)
    means, log_stds = mean.expand(-1, n_components, -1), log_std.expand(-1, n_components, -1)
    weights = th.tensor([0.1, 0.2, 0.3, 0.4], dtype=DTYPE)
    noise = th.randn(batch_size, n_components, action_dim, dtype=DTYPE)
    estimate, terms = estimate_entropy(estimator, means, log_stds, weights, noise=noise)
    u = means + log_stds.exp() * noise
    expected_terms = sb3_neg_log_prob(
        means.reshape(-1, action_dim), log_stds.reshape(-1, action_dim), u.reshape(-1, action_dim)
    )
    th.testing.assert_close(terms, expected_terms.reshape(batch_size, n_components), rtol=1e-10, atol=1e-10)
    th.testing.assert_close(estimate, (weights * terms).sum(-1))


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_mixed_marginal_is_unbiased(config):
    """E[mixed_marginal] = H(pi) (stratified sampling), one sample per component or c ~ w (docs/algorithm.md sections 2, 4)."""
    means, log_stds, weights = CONFIGS[config]
    truth, truth_se = torch_mc_entropy(means, log_stds, weights)
    n_draws = N_DRAWS
    estimates = draws("mixed_marginal", means, log_stds, weights, n_draws)
    standard_error = math.hypot(as_float(estimates.std()) / math.sqrt(n_draws), as_float(truth_se))
    assert_matches(as_float(estimates.mean()), standard_error, as_float(truth), wrong_offset=0.2)
    assert_matches(as_float(estimates.mean()), standard_error, as_float(truth), wrong_offset=-0.2)

    # component_sampling="sample": one sample from c ~ w per state, sample weight one
    log_weights = th.log(weights)
    batch_means = means.expand(n_draws, *means.shape)
    batch_log_stds = log_stds.expand(n_draws, *log_stds.shape)
    components = th.multinomial(weights, n_draws, replacement=True).unsqueeze(-1)
    samples = draw_mixture_samples(batch_means, batch_log_stds, log_weights, components=components)
    sampled = weighted_entropy(samples, entropy_terms("mixed_marginal", samples, log_weights, batch_means, batch_log_stds))
    standard_error = math.hypot(as_float(sampled.std()) / math.sqrt(n_draws), as_float(truth_se))
    assert_matches(as_float(sampled.mean()), standard_error, as_float(truth), wrong_offset=0.2)

    if config == "separated":
        # the check has power against a real bias: the marginal estimator misses H(W) here
        marginal = draws("marginal", means, log_stds, weights, n_draws)
        band = N_SIGMA * math.hypot(as_float(marginal.std()) / math.sqrt(n_draws), as_float(truth_se))
        assert abs(as_float(marginal.mean()) - as_float(truth)) > band


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_estimator_expectations_and_bounds(config):
    """
    Every estimator's expectation against its closed form, and the bounds of docs/algorithm.md section 2:

    H(pi|W) <= E[pairwise_bhattacharyya] <= H(pi) <= E[pairwise_kl] <= H(pi|W) + H(W), E[marginal] = H(pi|W).
    """
    means, log_stds, weights = CONFIGS[config]
    truth, truth_se = (as_float(x) for x in torch_mc_entropy(means, log_stds, weights))
    conditional = as_float((weights * component_entropies(means, log_stds)).sum())  # H(pi|W), by quadrature
    weights_entropy = as_float(-(weights * weights.log()).sum())  # H(W)

    stds = log_stds.exp()
    kl = th.stack(
        [
            th.stack([kl_divergence(Normal(means[i], stds[i]), Normal(means[j], stds[j])).sum() for j in range(len(weights))])
            for i in range(len(weights))
        ]
    )
    bhattacharyya = bhattacharyya_closed_form(means.unsqueeze(1), stds.unsqueeze(1), means.unsqueeze(0), stds.unsqueeze(0))

    def pairwise_expectation(distance):
        return conditional - as_float((weights * th.logsumexp(weights.log() - distance, dim=-1)).sum())

    expectations = {
        "mixed_marginal": truth,
        "marginal": conditional,
        "pairwise_kl": pairwise_expectation(kl),
        "pairwise_bhattacharyya": pairwise_expectation(bhattacharyya),
    }
    n_draws = N_DRAWS
    for estimator, expectation in expectations.items():
        estimates = draws(estimator, means, log_stds, weights, n_draws)
        standard_error = as_float(estimates.std()) / math.sqrt(n_draws)
        if estimator == "mixed_marginal":
            standard_error = math.hypot(standard_error, truth_se)
        assert_matches(as_float(estimates.mean()), standard_error, expectation, wrong_offset=0.1)

    slack = N_SIGMA * truth_se
    upper_kl, lower_bhattacharyya = expectations["pairwise_kl"], expectations["pairwise_bhattacharyya"]
    assert conditional <= lower_bhattacharyya + 1e-12
    assert lower_bhattacharyya <= truth + slack
    assert truth <= upper_kl + slack
    assert upper_kl <= conditional + weights_entropy + 1e-12
    if config == "separated":
        # all bounds are tight for separated components
        for value in (upper_kl, lower_bhattacharyya, conditional + weights_entropy):
            assert abs(value - truth) <= slack + 1e-6
    else:
        # overlapping components: the true entropy lies strictly inside (H(pi|W), H(pi|W) + H(W)),
        # so the bound checks above are not met trivially
        assert conditional + 0.05 < truth < conditional + weights_entropy - 0.05


@pytest.mark.parametrize("separation", [0.0, 0.02, 0.2, 0.5, 2.0])
def test_pairwise_bounds_exactly_in_one_dimension(separation):
    """
    Deterministic version of the bounds for two 1-D components moving apart (widths fixed).

    With the same noise, ``pairwise - marginal`` is the estimator's deterministic interaction term, and
    ``E[marginal] = H(pi|W)``; so ``H(pi) - H(pi|W)`` (near-exact quadrature) must lie between the
    Bhattacharyya and KL interaction terms, all three in [0, H(W)], all zero for identical components
    and all H(W) for separated ones.
    """
    weights = th.tensor([0.7, 0.3], dtype=DTYPE)
    means = th.tensor([[[-separation / 2 + 0.1], [separation / 2 + 0.1]]], dtype=DTYPE)
    log_stds = th.tensor([[[-2.0], [-2.3]]], dtype=DTYPE)
    weights_entropy = as_float(-(weights * weights.log()).sum())

    grid = th.linspace(-4.0, 4.0, 200_001, dtype=DTYPE)
    truth = as_float(quadrature_entropy_1d(means[0], log_stds[0], weights, grid))
    truth_gap = truth - as_float((weights * component_entropies(means[0], log_stds[0])).sum())

    noise = th.randn(1, 2, 1, dtype=DTYPE)
    marginal, _ = estimate_entropy("marginal", means, log_stds, weights, noise=noise)
    kl_gap = as_float(estimate_entropy("pairwise_kl", means, log_stds, weights, noise=noise)[0] - marginal)
    bhattacharyya_gap = as_float(
        estimate_entropy("pairwise_bhattacharyya", means, log_stds, weights, noise=noise)[0] - marginal
    )

    tolerance = 1e-8
    assert -tolerance <= bhattacharyya_gap <= truth_gap + tolerance
    assert truth_gap <= kl_gap + tolerance
    assert kl_gap <= weights_entropy + tolerance
    if separation == 0.0:
        assert abs(truth_gap) < 0.1  # different widths: only nearly identical
    if separation == 2.0:
        for gap in (bhattacharyya_gap, truth_gap, kl_gap):
            assert gap == pytest.approx(weights_entropy, abs=1e-6)
    if 0.0 < separation < 2.0:
        # neither bound is tight here, so the ordering above is a real constraint
        assert bhattacharyya_gap + 1e-3 < truth_gap < kl_gap - 1e-3


def test_monte_carlo_entropy_matches_torch_monte_carlo():
    means = th.stack([CONFIGS["overlapping"][0], CONFIGS["separated"][0]])
    log_stds = th.stack([CONFIGS["overlapping"][1], CONFIGS["separated"][1]])
    weights = CONFIGS["overlapping"][2]
    n_samples = 20_000
    estimate, standard_error = monte_carlo_entropy(means, log_stds, weights, n_samples=n_samples)
    assert estimate.shape == standard_error.shape == (2,)
    assert not estimate.requires_grad
    truth, truth_se = torch_mc_entropy(means, log_stds, weights, n_samples=4 * n_samples)
    for b in range(2):
        band = as_float(th.hypot(standard_error[b], truth_se[b]))
        assert_matches(as_float(estimate[b]), band, as_float(truth[b]), wrong_offset=0.1)
        # its standard error is that of n_samples draws of -log pi (ours is of 4 n_samples draws)
        assert as_float(standard_error[b]) == pytest.approx(2.0 * as_float(truth_se[b]), rel=0.1)


def test_monte_carlo_truth_matches_quadrature():
    """The reference itself: torch MC of a 1-D squashed mixture against near-exact quadrature."""
    means = th.tensor([[-1.0], [0.4], [1.8]], dtype=DTYPE)
    log_stds = th.tensor([[-0.5], [-1.0], [0.2]], dtype=DTYPE)
    weights = th.tensor([0.3, 0.5, 0.2], dtype=DTYPE)
    truth, truth_se = torch_mc_entropy(means, log_stds, weights)
    exact = quadrature_entropy_1d(means, log_stds, weights, th.linspace(-12.0, 12.0, 200_001, dtype=DTYPE))
    assert_matches(as_float(truth), as_float(truth_se), as_float(exact), wrong_offset=0.05)


# ---------------------------------------------------------------------------------------------------
# 3. Gradients
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", ENTROPY_ESTIMATORS)
def test_estimator_gradients_are_finite(estimator):
    """float32, log-stds at SAC's clamp bounds [-20, 2], components that overlap and that are far apart."""
    means = th.tensor([[[0.0, 0.5], [0.0, 0.5], [3.0, -3.0]], [[0.1, 0.0], [-0.1, 0.0], [0.0, 0.0]]], requires_grad=True)
    log_stds = th.tensor(
        [[[-20.0, -20.0], [2.0, 2.0], [-5.0, 0.0]], [[-20.0, 2.0], [-20.0, -20.0], [0.0, 0.0]]], requires_grad=True
    )
    weights = th.tensor([0.2, 0.5, 0.3])
    estimate, terms = estimate_entropy(estimator, means, log_stds, weights)
    assert th.isfinite(estimate).all() and th.isfinite(terms).all()
    estimate.sum().backward()
    assert th.isfinite(means.grad).all() and th.isfinite(log_stds.grad).all()
    assert log_stds.grad.abs().sum() > 0


def test_mixed_marginal_gradient_is_unbiased():
    """
    The average reparameterised gradient of mixed_marginal matches the gradient of the true entropy, which is
    computed by central finite differences of the near-exact 1-D quadrature entropy. The marginal estimator's
    gradient (of H(pi|W), blind to overlap) is rejected by the same check, so the check has power.
    """
    means = th.tensor([[-0.3], [0.1], [0.6]], dtype=DTYPE)
    log_stds = th.tensor([[-0.7], [-1.0], [-0.4]], dtype=DTYPE)
    weights = th.tensor([0.3, 0.45, 0.25], dtype=DTYPE)
    grid = th.linspace(-6.0, 6.0, 30_001, dtype=DTYPE)

    step = 1e-5
    true_gradients = []
    for parameters in (means, log_stds):
        gradient = th.zeros_like(parameters)
        for index in range(parameters.numel()):
            shift = th.zeros_like(parameters).view(-1)
            shift[index] = step
            shift = shift.view_as(parameters)
            plus = (means + shift, log_stds) if parameters is means else (means, log_stds + shift)
            minus = (means - shift, log_stds) if parameters is means else (means, log_stds - shift)
            difference = quadrature_entropy_1d(*plus, weights, grid) - quadrature_entropy_1d(*minus, weights, grid)
            gradient.view(-1)[index] = difference / (2 * step)
        true_gradients.append(gradient)

    n_draws = N_DRAWS

    def gradient_draws(estimator):
        batch_means = means.expand(n_draws, -1, -1).clone().requires_grad_(True)
        batch_log_stds = log_stds.expand(n_draws, -1, -1).clone().requires_grad_(True)
        estimate, _ = estimate_entropy(estimator, batch_means, batch_log_stds, weights)
        estimate.sum().backward()
        return batch_means.grad, batch_log_stds.grad

    def within_band(estimator):
        result = []
        for draws_, truth in zip(gradient_draws(estimator), true_gradients, strict=True):
            assert th.isfinite(draws_).all()
            band = N_SIGMA * draws_.std(dim=0) / math.sqrt(n_draws) + 1e-6
            result.append(((draws_.mean(dim=0) - truth).abs() <= band).all())
        return all(result)

    assert within_band("mixed_marginal")
    assert not within_band("marginal")
    # the true gradient is not trivially small: overlapping components are pushed apart
    assert true_gradients[0][0] < -0.2 and true_gradients[0][-1] > 0.05
