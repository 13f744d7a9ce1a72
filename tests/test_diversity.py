"""
The SMERL-style diversity charge (``sb3_mixture.sacm.diversity``, docs/algorithm.md section 11) against independent
computations: ``torch.nn.functional.cross_entropy`` on the logits, gates worked out by hand, the charge from
``torch.distributions.Categorical`` component by component, a discriminator that learns the Bayes posterior of its
labels, and the mechanism's update in SACM on returns and a gate set by hand.
"""

import math

import numpy as np
import pytest
import torch as th
import torch.nn.functional as F
from conftest import NAN
from torch.distributions import Categorical

from sb3_mixture.options import validate_diversity_weight
from sb3_mixture.sacm.acting import near_best
from sb3_mixture.sacm.diversity import (
    StateDiscriminator,
    discriminator_loss,
    diversity_charge,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _seed():
    th.manual_seed(0)


# --- The discriminator and its loss ---------------------------------------------------------------------------------


def fit(discriminator: StateDiscriminator, optimizer: th.optim.Optimizer, batch, steps: int) -> None:
    """``steps`` steps of the discriminator's loss on fresh ``batch()`` draws of (states, labels)."""
    for _ in range(steps):
        obs, labels = batch()
        loss = discriminator_loss(discriminator.log_probs(obs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_discriminator_learns_the_posterior_of_overlapping_labels():
    """Maximum likelihood makes q(i|s) the posterior of the label given the state. Two regions of states: in the
    left one component 0 acts 3 times in 4, in the right one 1 time in 4 (the posteriors by construction); q must
    find both, which a log-probability that is not normalised, or a loss that is not the labels' likelihood, cannot."""
    discriminator = StateDiscriminator(obs_dim=2, n_components=2, net_arch=[16])
    optimizer = th.optim.Adam(discriminator.parameters(), lr=1e-2)

    def batch(n: int) -> tuple[th.Tensor, th.Tensor]:
        right = th.rand(n) < 0.5
        obs = th.stack([th.where(right, 1.0, -1.0), th.zeros(n)], dim=1) + 0.1 * th.randn(n, 2)
        p_zero = th.where(right, 0.25, 0.75)
        return obs, (th.rand(n) >= p_zero).long()

    fit(discriminator, optimizer, lambda: batch(256), steps=600)
    with th.no_grad():
        q_zero = discriminator.log_probs(th.tensor([[-1.0, 0.0], [1.0, 0.0]])).exp()[:, 0]
    np.testing.assert_allclose(q_zero.numpy(), [0.75, 0.25], atol=0.05)


@pytest.mark.parametrize("n_components", [1, 2, 4])
def test_discriminator_loss_is_cross_entropy(n_components):
    logits = 3.0 * th.randn(32, n_components, dtype=th.float64)
    components = th.randint(n_components, (32,))
    loss = discriminator_loss(th.log_softmax(logits, dim=-1), components)
    assert th.allclose(loss, F.cross_entropy(logits, components), rtol=1e-12, atol=1e-12)


def test_discriminator_separates_two_clusters():
    """Trained on states of two clusters labelled 0 and 1, it labels fresh states of both correctly."""

    def clusters(n: int) -> tuple[th.Tensor, th.Tensor]:
        labels = th.randint(2, (n,))
        centres = th.tensor([[-1.0, 0.5, 0.0, 0.0], [1.0, -0.5, 0.0, 0.0]])
        return centres[labels] + 0.5 * th.randn(n, 4), labels

    discriminator = StateDiscriminator(obs_dim=4, n_components=2, net_arch=[32, 32])
    optimizer = th.optim.Adam(discriminator.parameters(), lr=3e-3)
    fit(discriminator, optimizer, lambda: clusters(64), steps=200)
    obs, labels = clusters(1000)
    with th.no_grad():
        accuracy = (discriminator.log_probs(obs).argmax(dim=-1) == labels).float().mean().item()
    # The clusters overlap little (centres 2.2 apart along their axis, std 0.5): the Bayes accuracy is above 0.98
    assert accuracy > 0.9


# --- The gate -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "returns, margin, expected",
    [
        ([5.0, 5.0, 5.0], 0.0, [True, True, True]),  # all equal: every one is the best
        ([10.0, 9.6, 9.4, NAN], 0.05, [True, True, False, False]),  # threshold 9.5; no data: shut
        ([-10.0, -10.4, -10.6], 0.05, [True, True, False]),  # R* < 0: threshold -10 - 0.05 * 10 = -10.5
        ([-10.0, -10.4, -20.0], 0.0, [True, False, False]),  # margin 0: only the best
        ([10.0, 0.0, -0.1], 1.0, [True, True, False]),  # margin 1, R* > 0: threshold 0
        ([-10.0, -19.9, -20.1], 1.0, [True, True, False]),  # margin 1, R* < 0: threshold -20
        ([NAN, -3.0, NAN], 0.1, [False, True, False]),  # the only component with data is the best
        ([NAN, NAN], 0.5, [False, False]),  # no data at all: every gate shut
    ],
)
def test_near_best_is_the_gate(returns, margin, expected):
    gate = near_best(th.tensor(returns), margin)
    assert gate.dtype == th.bool
    assert gate.tolist() == expected


def test_near_best_takes_numpy_returns():
    assert near_best(np.array([1.0, NAN, 0.97]), 0.05).tolist() == [True, False, True]


# --- The charge -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "gate", [[True, True, True, True], [True, False, True, True], [False, True, False, True], [True, False, False, False]]
)
@pytest.mark.parametrize("counts", [None, [5.0, 1.0, 3.0, 7.0]])
def test_diversity_charge_matches_categorical(gate, counts):
    """Against q and p conditioned on the open components with torch.distributions: a categorical restricted to a
    subset is the categorical of that subset's logits."""
    logits = 2.0 * th.randn(16, 4, dtype=th.float64)
    gate = th.tensor(gate)
    weight = 10.0
    log_prior = None if counts is None else th.log(th.tensor(counts, dtype=th.float64) / sum(counts))
    charge = diversity_charge(th.log_softmax(logits, dim=-1), gate, weight, log_prior)
    open_components = gate.nonzero()[:, 0].tolist()
    k = len(open_components)
    q_open = Categorical(logits=logits[:, open_components])
    p_open = Categorical(probs=th.tensor([1.0 if counts is None else counts[i] for i in open_components], dtype=th.float64))
    expected = th.zeros(16, 4, dtype=th.float64)
    for position, i in enumerate(open_components):
        if k == 1:
            continue  # one near-best component has nothing to differ from
        log_ratio = q_open.log_prob(th.full((16,), position)) - p_open.log_prob(th.tensor(position))
        # Bounded by log K either way (a confident q otherwise charges without limit), then shifted down by log K
        expected[:, i] = weight * (min_max(log_ratio, -math.log(k), math.log(k)) - math.log(k))
    assert charge.shape == (16, 4)
    assert th.allclose(charge, expected, rtol=1e-10, atol=1e-10)
    assert (charge <= 0).all()  # a charge, never a payment
    if k > 1 and counts is None:
        assert (charge[:, open_components[0]] == -2 * weight * math.log(k)).any()  # the clip is reached on these logits


def min_max(values: th.Tensor, low: float, high: float) -> th.Tensor:
    """Elementwise, without torch's clamp: the largest of ``low`` and the smallest of ``high`` and the value."""
    return th.tensor([max(low, min(high, float(value))) for value in values], dtype=values.dtype)


def test_diversity_charge_charges_shared_states_and_spares_own_ones():
    """A state every component visits (q uniform) costs each open head w log K (here all K = N = 4 are open), one only
    component i visits (q one-hot on i) costs head i nothing, and a single component has nothing to share: no
    charge."""
    uniform = th.log_softmax(th.zeros(5, 4), dim=-1)
    expected = th.full((5, 4), -10.0 * math.log(4.0))
    assert th.allclose(diversity_charge(uniform, th.ones(4, dtype=th.bool), 10.0), expected, atol=1e-5)
    own = th.log_softmax(th.tensor([[50.0, 0.0, 0.0, 0.0]]), dim=-1)
    charge = diversity_charge(own, th.ones(4, dtype=th.bool), 10.0)
    assert abs(charge[0, 0].item()) < 1e-5 and th.allclose(charge[0, 1:], th.full((3,), -20.0 * math.log(4.0)))
    single = th.log_softmax(th.randn(5, 1), dim=-1)
    assert th.equal(diversity_charge(single, th.ones(1, dtype=th.bool), 10.0), th.zeros(5, 1))


def test_components_far_from_the_best_do_not_charge_the_near_best():
    """After a block: component 0 alone is near the best and the others, relearning, explore its route (q takes its
    states for theirs). Alone near the best, it is not charged; with component 1 back near the best, the two share the
    charge for the states both visit, and the states of component 2 (far from the best) cost them nothing more."""
    shared_with_failing = th.log(th.tensor([[0.1, 0.05, 0.8, 0.05]]))
    alone = th.tensor([True, False, False, False])
    assert th.equal(diversity_charge(shared_with_failing, alone, 10.0), th.zeros(1, 4))
    two = th.tensor([True, True, False, False])
    charge = diversity_charge(shared_with_failing, two, 10.0)
    # q among {0, 1}: (2/3, 1/3), the prior (1/2, 1/2): component 0's log ratio log(4/3), component 1's log(2/3)
    expected = 10.0 * (th.tensor([math.log(4 / 3), math.log(2 / 3)]) - math.log(2.0))
    assert th.allclose(charge[0, :2], expected, atol=1e-6) and th.equal(charge[0, 2:], th.zeros(2))


# --- Settings -------------------------------------------------------------------------------------------------------


def test_validate_diversity_returns_a_float():
    assert validate_diversity_weight(10) == 10.0 and isinstance(validate_diversity_weight(np.float32(0.5)), float)
    assert validate_diversity_weight(0.0) == 0.0


@pytest.mark.parametrize("weight", [-1.0, math.inf, NAN])
def test_validate_diversity_rejects_out_of_range(weight):
    with pytest.raises(ValueError, match="diversity_weight"):
        validate_diversity_weight(weight)


@pytest.mark.parametrize("weight", [True, "0.5"])
def test_validate_diversity_rejects_non_numbers(weight):
    with pytest.raises(TypeError, match="diversity_weight"):
        validate_diversity_weight(weight)


# --- In SACM: options, one update, save/load ---------------------------------------------------------------------


def diversity_model(**kwargs):
    from conftest import SMALL, pendulum

    from sb3_mixture import SACM

    settings = dict(n_components=3, component_schedule="returns", diversity_weight=2.0, return_margin=0.5, seed=0)
    return SACM("MlpPolicy", pendulum(10), **{**SMALL, **settings, **kwargs})


def test_acting_log_prior_counts_the_batch():
    from sb3_mixture.sacm.diversity import acting_log_prior

    prior = acting_log_prior(th.tensor([0, 0, 0, 2]), 3).exp()
    assert prior.tolist() == pytest.approx([4 / 7, 1 / 7, 2 / 7])


@pytest.mark.parametrize("gate_open", [True, False])
def test_training_charge_against_an_independent_computation(gate_open):
    """The mechanism's update in SACM, on component returns set by hand: 10, 8 and -40 at margin 0.5 put components 0
    and 1 near the best (threshold 5) and 2 far from it. The charge then compares 0 and 1 alone, from q before its step
    (a categorical over their two logits) and their shares of the batch with a pseudo-count each."""
    model = diversity_model(diversity_start=0 if gate_open else 10**9)
    model.learn(100)  # a buffer of transitions with their acting components
    choice = model.policy.component_choice
    choice.episode_counts.zero_()
    for component, episode_return in enumerate([10.0, 8.0, -40.0]):
        choice.record_episode(component, episode_return)
    replay_data = model.replay_buffer.sample(64)
    discriminator = copy_of(model.diversity.discriminator)
    charge, _ = model.diversity.update(replay_data, choice, model.num_timesteps)
    expected = th.zeros(64, 3)
    if gate_open:
        with th.no_grad():
            q_open = Categorical(logits=discriminator(replay_data.next_observations)[:, :2])
        acting = replay_data.head_masks.argmax(dim=-1)
        p_open = Categorical(probs=th.tensor([float((acting == i).sum() + 1) for i in (0, 1)]))
        for i in (0, 1):
            log_ratio = q_open.log_prob(th.full((64,), i)) - p_open.log_prob(th.tensor(i))
            expected[:, i] = 2.0 * (min_max(log_ratio, -math.log(2), math.log(2)) - math.log(2))
    np.testing.assert_allclose(charge.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    # The charge enters every head's target as a reward
    th.manual_seed(1)
    with_charge = model._critic_target(replay_data, model._temperatures(), charge)
    th.manual_seed(1)
    without = model._critic_target(replay_data, model._temperatures())
    np.testing.assert_allclose((with_charge - without).numpy(), charge.numpy(), rtol=1e-5, atol=1e-5)


def copy_of(module: th.nn.Module) -> th.nn.Module:
    import copy

    return copy.deepcopy(module)


def test_training_logs_and_save_load_restore_the_mechanism(tmp_path):
    from sb3_mixture import SACM

    model = diversity_model()
    model.learn(200)
    assert {"train/discriminator_loss", "train/diversity_charge_0"} <= model.logger.name_to_value.keys()
    model.save(tmp_path / "model")
    loaded = SACM.load(tmp_path / "model")
    for (name, original), restored in zip(
        model.diversity.state_dict().items(), loaded.diversity.state_dict().values(), strict=True
    ):
        assert th.equal(original, restored), name
    original_state = model.diversity.optimizer.state_dict()["state"]
    restored_state = loaded.diversity.optimizer.state_dict()["state"]
    assert original_state.keys() == restored_state.keys() and len(original_state) > 0
    for key in original_state:
        assert th.equal(original_state[key]["exp_avg"], restored_state[key]["exp_avg"])
    assert th.equal(loaded.policy.component_choice.episode_counts, model.policy.component_choice.episode_counts)
    assert (loaded.diversity_weight, loaded.return_margin) == (2.0, 0.5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(diversity_weight=-1.0), r"diversity_weight must be a finite float >= 0, got -1.0"),
        (dict(return_margin=1.5), r"return_margin must be a float in \[0, 1\], got 1.5"),
        (dict(return_margin=-0.1), r"return_margin must be a float in \[0, 1\], got -0.1"),
        (dict(return_margin="0.05"), r"return_margin must be a float in \[0, 1\], got '0.05'"),
        (dict(diversity_start=-5), r"diversity_start must be an int >= 0, got -5"),
        (dict(component_schedule="step"), r"diversity_weight=2.0 needs an episodic component_schedule"),
        (dict(n_components=1), r"diversity_weight=2.0 needs n_components >= 2"),
        (dict(n_steps=3), r"diversity_weight=2.0 supports only n_steps=1"),
    ],
)
def test_bad_diversity_settings_are_refused_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        diversity_model(**kwargs)
