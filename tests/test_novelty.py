"""
The ordered novelty charge (``diversity_mechanism="novelty"``, docs/algorithm.md section 13) against independent
computations on hand-made trajectories: numpy's mean, variance and brute-force nearest distances, routes that pay more
than a wiggle, a signal for collapsed components, the same charges after rescaling the observations, save/load and
bad settings.
"""

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from conftest import NAN, SMALL
from gymnasium import spaces

from sb3_mixture import SACM
from sb3_mixture.options import DiversityOptions
from sb3_mixture.sacm.acting import near_best
from sb3_mixture.sacm.diversity import (
    NoveltyDiversity,
    merge_moments,
    near_best_in_spread,
    nearest_distances,
    novelty_charge,
    select_features,
    seniority_ranking,
    update_seniority,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BOX = spaces.Box(-100.0, 100.0, (2,), dtype=np.float32)


def route(x: float, wiggle: float = 0.0, n: int = 40) -> np.ndarray:
    """A route from (0, -4) up to (0, 4) around an obstacle at x = 0: out to ``x``, up, and back; ``wiggle`` shifts
    the middle part sideways."""
    out = np.linspace([0.0, -4.0], [x, -1.0], n // 4)
    up = np.linspace([x + wiggle, -1.0], [x + wiggle, 1.0], n // 2)
    back = np.linspace([x, 1.0], [0.0, 4.0], n // 4)
    return np.concatenate([out, up, back]).astype(np.float32)


class Choice:
    """A stand-in for the policy's ComponentChoice: fixed recent returns."""

    def __init__(self, returns: list[float]):
        self.returns = th.tensor(returns)

    def recent_returns(self) -> th.Tensor:
        return self.returns


def mechanism_after(trajectories: list[np.ndarray], weight: float = 1.0, scale: float = 1.0) -> NoveltyDiversity:
    """The mechanism once component i has acted in the states ``trajectories[i]`` (rescaled by ``scale``)."""
    space = spaces.Box(-100.0 * scale, 100.0 * scale, (2,), dtype=np.float32)
    diversity = NoveltyDiversity(space, len(trajectories), DiversityOptions(weight, 0, 1.0, "novelty", None))
    for component, states in enumerate(trajectories):
        for state in states:
            diversity.observe(scale * state[None], np.array([component]))
    return diversity


def total_charge(diversity: NoveltyDiversity, component: int, states: np.ndarray, scale: float = 1.0) -> float:
    """Component ``component``'s charge summed over ``states`` as next states, all components near the best."""
    batch = SimpleNamespace(next_observations=th.as_tensor(scale * states), rewards=th.ones(len(states), 1))
    charge = diversity.update(batch, Choice([1.0] * diversity.n_components), num_timesteps=10**6).charge
    return float(charge[:, component].sum())


def test_merge_moments_is_the_mean_and_variance_of_everything_seen():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, (n, 3)) for n in (5, 1, 17)]
    mean, var, count = th.zeros(3, dtype=th.float64), th.ones(3, dtype=th.float64), th.zeros(1, dtype=th.float64)
    for batch in batches:
        mean, var, count = merge_moments(mean, var, count, th.as_tensor(batch))
    everything = np.concatenate(batches)
    np.testing.assert_allclose(mean.numpy(), everything.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(var.numpy(), everything.var(axis=0), rtol=1e-12)
    assert int(count) == 23


def test_nearest_distances_against_brute_force():
    rng = np.random.default_rng(1)
    states, reference = rng.normal(size=(7, 3)), rng.normal(size=(11, 3))
    expected = [min(np.linalg.norm(state - other) for other in reference) for state in states]
    np.testing.assert_allclose(nearest_distances(th.as_tensor(states), th.as_tensor(reference)).numpy(), expected)
    assert th.isinf(nearest_distances(th.as_tensor(states), th.zeros(0, 3))).all()


def test_charge_by_hand():
    distances = th.tensor([[0.0, 0.25, 1.0, 3.0, float("inf")]])
    # -scale (1 - d / radius) up to the radius, nothing beyond it nor without other components
    assert novelty_charge(distances, 2.0, radius=1.0).tolist() == [[-2.0, -1.5, 0.0, 0.0, 0.0]]


def test_select_features_by_index_and_by_key():
    assert select_features(np.array([[1.0, 2.0, 3.0]]), (2, 0)).tolist() == [[3.0, 1.0]]
    obs = {"b": np.array([[1.0, 2.0]]), "a": np.array([[[5.0], [6.0]]])}
    assert select_features(obs, None).tolist() == [[5.0, 6.0, 1.0, 2.0]]  # every key, in sorted order
    assert select_features(obs, ("b",)).tolist() == [[1.0, 2.0]]


def test_two_routes_pay_more_than_one_route_with_a_wiggle():
    """Component 0 on the left route; component 1 on the right one is not charged at all, on the left one with a
    sideways wiggle it is, and less the wider the wiggle: the margin grows with the distance between the routes."""
    left = route(-4.0)
    charges = {}
    for name, states in {"right": route(4.0), "wiggle 0.5": route(-4.0, 0.5), "wiggle 1.5": route(-4.0, 1.5)}.items():
        charges[name] = total_charge(mechanism_after([left, states]), 1, states)
    assert charges["right"] > charges["wiggle 1.5"] > charges["wiggle 0.5"]
    # What the right route pays is for the start and the goal, which every route shares: its middle part pays nothing
    right = route(4.0)
    assert total_charge(mechanism_after([left, right]), 1, right[10:30]) == 0.0
    # The first-ranked component is never charged
    assert total_charge(mechanism_after([left, route(4.0)]), 0, left) == 0.0


def test_collapsed_components_get_a_signal_toward_another_route():
    """Both on the left route: component 1 pays the full charge on each of its states, and a state a little away from
    the route (toward the other one) costs it less."""
    left = route(-4.0)
    diversity = mechanism_after([left, left])
    on_route = total_charge(diversity, 1, left[15:16])
    assert on_route == pytest.approx(-1.0)  # the batch's mean |reward| is 1, w = 1
    aside = total_charge(diversity, 1, left[15:16] + np.array([[0.5, 0.0]], dtype=np.float32))
    assert on_route < aside < 0.0


@pytest.mark.parametrize("scale", [0.01, 100.0])
def test_the_charge_is_scale_free(scale):
    """Rescaling the observations changes no charge: distances are in standard deviations of the visited states."""
    trajectories = [route(-4.0), route(-4.0, 0.7), route(4.0)]
    probe = np.concatenate(trajectories)
    for component in (1, 2):
        original = total_charge(mechanism_after(trajectories), component, probe)
        rescaled = total_charge(mechanism_after(trajectories, scale=scale), component, probe, scale=scale)
        assert rescaled == pytest.approx(original, rel=1e-4)


def test_ungated_components_neither_pay_nor_rank():
    """Component 0 far from the best: component 1 is the first near-best one, and is not charged for its states."""
    left = route(-4.0)
    diversity = mechanism_after([left, left])
    batch = SimpleNamespace(next_observations=th.as_tensor(left), rewards=th.ones(len(left), 1))
    charge = diversity.update(batch, Choice([-50.0, 10.0]), num_timesteps=10**6).charge
    assert (charge == 0).all()


def test_the_gate_by_hand():
    """Floor 10, best 250: a component must keep a sixth of the best's gain of 240, i.e. a return of at least 50."""
    returns = th.tensor([250.0, 50.0, 49.0, NAN])
    assert near_best_in_spread(returns, 10.0).tolist() == [True, True, False, False]
    assert near_best_in_spread(th.tensor([NAN, NAN]), 0.0).tolist() == [False, False]


@pytest.mark.parametrize("offset, scale", [(0.0, 1.0), (1000.0, 1.0), (-1000.0, 1.0), (5.0, 0.001), (-3.0, 40.0)])
def test_the_gate_ignores_the_returns_offset_and_scale(offset, scale):
    """The same components are near the best after any positive rescaling and shift of the returns, where SMERL's
    ``R* - |R*|`` admits the component stuck near the floor as soon as every return is positive."""
    returns, floor = th.tensor([230.0, 12.0, 180.0, 14.0]), 8.0
    expected = [True, False, True, False]
    assert near_best_in_spread(offset + scale * returns, offset + scale * floor).tolist() == expected
    if offset >= 0.0:
        assert near_best(offset + scale * returns, 1.0).all()


def test_a_collapsed_senior_leaves_the_gate_when_every_return_is_positive():
    """PointMaze's case: every return positive. Component 0, the most senior, falls from 220 to 12 (near the lowest
    return seen, 8): it leaves the near-best set, so it no longer charges component 1, which keeps the route."""
    left = route(-4.0)
    diversity = mechanism_after([left, left])
    batch = SimpleNamespace(next_observations=th.as_tensor(left), rewards=th.ones(len(left), 1))
    diversity.update(batch, Choice([8.0, NAN]), num_timesteps=10)  # the first return: the floor
    diversity.update(batch, Choice([220.0, 200.0]), num_timesteps=1000)
    assert (diversity.update(batch, Choice([220.0, 200.0]), num_timesteps=1100).charge[:, 1] < 0).all()
    charge = diversity.update(batch, Choice([12.0, 200.0]), num_timesteps=1200).charge
    assert (charge == 0).all()
    assert diversity.joined_at.tolist() == [-1.0, 1000.0]


def test_seniority_by_hand():
    """Component 0 joins the near-best set at step 200, 1 and 3 stay from step 100, 2 leaves it: 1 and 3 (by index)
    rank before 0."""
    gate = th.tensor([True, True, False, True])
    joined_at = update_seniority(gate, th.tensor([-1.0, 100.0, 50.0, 100.0]), now=200)
    assert joined_at.tolist() == [200.0, 100.0, -1.0, 100.0]
    assert seniority_ranking(gate, joined_at) == [1, 3, 0]


def test_a_survivor_is_not_pushed_off_its_route_by_a_component_that_relearns_it():
    """After a block: component 1 alone kept its (left) route; component 0 relearns that route and rejoins the
    near-best set. Component 0 is the one charged on the left route, not component 1."""
    left = route(-4.0)
    diversity = mechanism_after([left, left])
    batch = SimpleNamespace(next_observations=th.as_tensor(left), rewards=th.ones(len(left), 1))
    diversity.update(batch, Choice([-20.0, 50.0]), num_timesteps=1000)  # only component 1 near the best
    charge = diversity.update(batch, Choice([48.0, 50.0]), num_timesteps=1100).charge  # component 0 back
    assert (charge[:, 1] == 0).all() and (charge[:, 0] < 0).all()


def novelty_model(**kwargs) -> SACM:
    settings = dict(n_components=2, component_schedule="returns", diversity_weight=1.0, diversity_mechanism="novelty")
    return SACM("MlpPolicy", "Pendulum-v1", seed=0, **{**SMALL, **settings, **kwargs})


def test_save_load_round_trips_the_mechanism(tmp_path):
    model = novelty_model(diversity_features=[0, 2])
    model.learn(300)
    model.save(tmp_path / "model")
    loaded = SACM.load(tmp_path / "model")
    assert loaded.diversity_features == [0, 2] and isinstance(loaded.diversity, NoveltyDiversity)
    original_state, restored_state = model.diversity.state_dict(), loaded.diversity.state_dict()
    for (name, original), restored in zip(original_state.items(), restored_state.values(), strict=True):
        assert th.equal(original, restored), name
    assert int(loaded.diversity.state_counts.sum()) == 300
    assert loaded.diversity.return_floor < 0  # Pendulum's first episode's return, not the initial largest float


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(diversity_mechanism="repulsion"), r"diversity_mechanism must be one of \('discriminator', 'novelty'\)"),
        (dict(diversity_features="x"), r"diversity_features must be None or a non-empty list"),
        (dict(diversity_features=[]), r"diversity_features must be None or a non-empty list"),
        (dict(diversity_features=[0, "a"]), r"diversity_features must be all indices \(ints\) or all Dict keys"),
        (dict(diversity_features=[1, 1]), r"diversity_features must not repeat an entry"),
        (dict(diversity_features=[3]), r"diversity_features must be indices in \[0, 3\) of the flattened observation"),
        (dict(diversity_features=["position"]), r"diversity_features must be indices in \[0, 3\)"),
        (dict(diversity_mechanism="discriminator", diversity_features=[0]), r"diversity_features needs diversity_mech"),
        (dict(diversity_weight=0.0), r"diversity_mechanism='novelty' has no effect without a diversity_weight > 0"),
        (dict(n_steps=3), r"diversity_weight=1.0 supports only n_steps=1, got n_steps=3"),
    ],
)
def test_bad_settings_are_refused_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        novelty_model(**kwargs)


class DictPendulum(gym.ObservationWrapper):
    """Pendulum with a Dict observation: the angle's cosine and sine as a Box, and a Discrete entry (its sign)."""

    def __init__(self):
        super().__init__(gym.make("Pendulum-v1", max_episode_steps=20))
        self.observation_space = spaces.Dict(
            {"angle": spaces.Box(-1.0, 1.0, (2,), dtype=np.float32), "side": spaces.Discrete(2)}
        )

    def observation(self, observation: np.ndarray) -> dict:
        return {"angle": observation[:2].astype(np.float32), "side": int(observation[1] >= 0)}


def test_dict_observations_and_several_envs():
    """Dict observations (a Discrete entry arrives as (n_envs,) from the envs and (B, 1) from the buffer) with two
    envs: the mechanism remembers every env's states under its acting component and charges on the batch."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    env = DummyVecEnv([DictPendulum, DictPendulum])
    model = SACM(
        "MultiInputPolicy", env, n_components=2, component_schedule="returns", diversity_weight=1.0,
        diversity_mechanism="novelty", diversity_features=["angle", "side"], seed=0, **SMALL,
    )  # fmt: skip
    model.learn(200)
    assert int(model.diversity.state_counts.sum()) == 200 and model.diversity.states.shape[-1] == 3
    assert "train/diversity_charge_0" in model.logger.name_to_value
