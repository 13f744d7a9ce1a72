"""
Choosing components by the returns they earn (``component_schedule="returns"``, docs/algorithm.md section 12): the
per-component statistics of recent training-episode returns, the bandit's choice, deterministic acting, evaluation,
save/load and bad input.
"""

import numpy as np
import pytest
import torch as th
from conftest import SMALL, benchmarks_common, pendulum, sample_observations
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_mixture import SACM
from sb3_mixture.options import ActingOptions
from sb3_mixture.sacm.acting import ComponentChoice, bandit_components

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def choice(n_components: int = 3, window: int = 2, exploration: float = 0.0, margin: float = 0.05) -> ComponentChoice:
    options = ActingOptions(
        n_components, [1.0 / n_components] * n_components, 0.0, "returns", "best_return", window, exploration, margin
    )
    return ComponentChoice(options, action_dim=1)


def choice_after(returns: list[float], exploration: float, margin: float) -> ComponentChoice:
    """The rules once component i has earned ``returns[i]`` in one episode (a window of one)."""
    rules = choice(len(returns), window=1, exploration=exploration, margin=margin)
    for component, episode_return in enumerate(returns):
        rules.record_episode(component, episode_return)
    return rules


def test_statistics_and_greedy_choice_on_a_scripted_sequence_with_a_change():
    rules = choice(window=2)
    picks = []

    def pick() -> int:
        picks.append(int(bandit_components(rules.recent_returns(), 1, 0.0)[0]))
        return picks[-1]

    # (the component the bandit picks, and what its episode then earns). By hand, with windows of two episodes:
    # untried components come first (0, 1, 2); then 0 (means 10, 5, 8); 0 again (11, 5, 8); 0 earns nothing from now
    # on: its window holds 12 and 0 (6, 5, 8), so 2; 2 again (6, 5, 8); 2 earns nothing too (6, 5, 4), so 0; and 0
    # nothing again (0, 5, 4)
    scripted = [(0, 10.0), (1, 5.0), (2, 8.0), (0, 12.0), (0, 0.0), (2, 8.0), (2, 0.0), (0, 0.0)]
    for expected, episode_return in scripted:
        assert pick() == expected, picks
        rules.record_episode(expected, episode_return)
    np.testing.assert_allclose(rules.recent_returns().numpy(), [0.0, 5.0, 4.0])
    assert rules.episode_counts.tolist() == [4, 1, 3]
    # Both former favourites earn nothing now: the choice falls back on component 1
    assert pick() == 1
    # The deterministic rule plays it too
    params = th.zeros(4, 3, 1)
    from sb3_mixture.sacm.actor import MixtureParams

    components = rules.deterministic_components(MixtureParams(params, params, th.zeros(4, 3), th.zeros(4, 1)), th.zeros(4, 3))
    assert components.tolist() == [1, 1, 1, 1]


def test_exploration_draws_uniformly_with_its_probability():
    th.manual_seed(0)
    returns = th.tensor([1.0, 3.0, 2.0, 0.0])  # component 1 is the greedy choice
    drawn = bandit_components(returns, 40_000, exploration=0.2).numpy()
    shares = np.bincount(drawn, minlength=4) / len(drawn)
    # greedy 0.8 plus a quarter of the explored 0.2; the others 0.05 each
    np.testing.assert_allclose(shares, [0.05, 0.85, 0.05, 0.05], atol=0.01)
    assert bandit_components(returns, 100, exploration=0.0).tolist() == [1] * 100


def test_components_near_the_best_are_drawn_uniformly():
    """With a margin the bandit treats near-ties as ties: before a change every competent component gets episodes
    (and so data of its own), after it only those still near the best do."""
    th.manual_seed(0)
    returns = th.tensor([10.0, 9.6, 5.0, 9.8])  # margin 0.05: threshold 9.5, so 0, 1 and 3 are near the best
    drawn = bandit_components(returns, 30_000, exploration=0.2, margin=0.05).numpy()
    shares = np.bincount(drawn, minlength=4) / len(drawn)
    # each near-best component 0.8 / 3 plus a quarter of the explored 0.2; component 2 only the quarter
    np.testing.assert_allclose(shares, [0.8 / 3 + 0.05, 0.8 / 3 + 0.05, 0.05, 0.8 / 3 + 0.05], atol=0.01)
    # A change: components 0 and 3 now earn -20 (their windows' means), the set is component 1 alone
    after = th.tensor([-20.0, 9.6, 5.0, -20.0])
    assert bandit_components(after, 100, exploration=0.0, margin=0.05).tolist() == [1] * 100
    # Negative returns: the margin is a fraction of |R*| (threshold -10 - 0.5 = -10.5)
    negative = th.tensor([-10.0, -10.4, -10.6])
    assert set(bandit_components(negative, 1000, exploration=0.0, margin=0.05).tolist()) == {0, 1}


class RecordEpisodes(BaseCallback):
    """Each finished training episode's return (from Monitor) and the component that acted in it."""

    def __init__(self):
        super().__init__()
        self.episodes: list[tuple[int, float]] = []

    def _on_step(self) -> bool:
        acting = self.model.policy.component_choice.training_schedule.components
        for env_index, info in enumerate(self.locals["infos"]):
            if "episode" in info:
                self.episodes.append((int(acting[env_index]), float(info["episode"]["r"])))
        return True


def returns_model(**kwargs) -> SACM:
    env = DummyVecEnv([lambda: pendulum(10)] * 2)
    kwargs = {"component_schedule": "returns", "deterministic_component": "best_return", "return_window": 3, **kwargs}
    return SACM("MlpPolicy", env, n_components=3, seed=0, **SMALL, **kwargs)


def test_predict_draws_among_the_near_best_without_exploring():
    """Stochastic predict draws among the components near the best, never an explored one: exploring serves the
    statistics, which evaluation episodes do not write. The training envs' draws do explore."""
    th.manual_seed(0)
    rules = choice_after([10.0, -20.0, 9.8], exploration=1.0, margin=0.05)
    no_weights = th.zeros(400, 3)
    rules.episodes_started(np.ones(400, dtype=bool))
    predicted = rules.next_components(no_weights)
    assert set(predicted.tolist()) == {0, 2}  # exploration 1.0 would draw component 1 in about a third
    with rules.training_envs():
        trained = rules.next_components(no_weights)
    assert 1 in set(trained.tolist())


def test_predict_plays_only_the_near_optimal_when_the_margin_is_wide():
    """With return_margin=1.0 the training draws keep every component with R_i >= 0 acting (here 10, 2 and 9.8), but
    predict draws only among those within SMERL's 5% of the best (10 and 9.8: >= 9.5), about half each."""
    th.manual_seed(0)
    rules = choice_after([10.0, 2.0, 9.8], exploration=0.0, margin=1.0)
    no_weights = th.zeros(2000, 3)
    rules.episodes_started(np.ones(2000, dtype=bool))
    predicted = rules.next_components(no_weights)
    assert set(predicted.tolist()) == {0, 2} and abs((predicted == 0).mean() - 0.5) < 0.05
    with rules.training_envs():
        rules.episodes_started(np.ones(2000, dtype=bool))
        trained = rules.next_components(no_weights)
    shares = np.bincount(trained, minlength=3) / len(trained)
    np.testing.assert_allclose(shares, [1 / 3] * 3, atol=0.05)


def test_predict_keeps_a_narrower_return_margin():
    """With return_margin=0 predict plays the best alone (10 against 9.8, which SMERL's 5% would admit)."""
    th.manual_seed(0)
    rules = choice_after([10.0, 2.0, 9.8], exploration=0.0, margin=0.0)
    rules.episodes_started(np.ones(500, dtype=bool))
    assert set(rules.next_components(th.zeros(500, 3)).tolist()) == {0}


@pytest.mark.parametrize("normalize", [False, True], ids=["raw", "vec_normalize"])
def test_training_records_each_episode_for_its_component(tmp_path, normalize):
    """Each component's statistics are the env's own returns of its episodes, also under a reward-normalising
    VecNormalize (whose normalised rewards the critic learns from)."""
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

    # VecMonitor's returns are independent of the algorithm's own bookkeeping, and VecNormalize wraps it from outside
    env = VecMonitor(DummyVecEnv([lambda: pendulum(10)] * 2))
    if normalize:
        env = VecNormalize(env, norm_obs=False, norm_reward=True)
    model = SACM(
        "MlpPolicy", env, n_components=3, seed=0,
        component_schedule="returns", return_window=3, return_exploration=0.5, **SMALL,
    )  # fmt: skip
    model.set_logger(configure(str(tmp_path), ["csv"]))
    callback = RecordEpisodes()
    model.learn(2 * 10 * 12, callback=callback)
    # Independent bookkeeping: the last three Monitor returns of each component, against the policy's statistics
    expected = []
    for component in range(3):
        mine = [episode_return for acting, episode_return in callback.episodes if acting == component]
        assert len(mine) >= 1
        expected.append(np.mean(mine[-3:]))
        assert int(model.policy.component_choice.episode_counts[component]) == len(mine)
    np.testing.assert_allclose(model.policy.component_choice.recent_returns().numpy(), expected, rtol=1e-5, atol=1e-4)
    logged = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    assert {f"rollout/component_return_{i}" for i in range(3)} <= set(logged)


def test_evaluation_does_not_change_the_statistics():
    model = returns_model()
    model.learn(2 * 10 * 6)
    before = model.policy.component_choice.episode_returns.clone()
    counts = model.policy.component_choice.episode_counts.clone()
    for deterministic in (False, True):
        evaluate_policy(model, DummyVecEnv([lambda: pendulum(10)]), n_eval_episodes=4, deterministic=deterministic)
    model.predict(sample_observations(pendulum(), 8), episode_start=np.ones(8, dtype=bool))
    assert th.equal(model.policy.component_choice.episode_returns, before)
    assert th.equal(model.policy.component_choice.episode_counts, counts)


def test_deterministic_acting_plays_the_best_component_and_is_repeatable():
    model = returns_model()
    model.learn(2 * 10 * 6)
    best = int(model.policy.component_choice.recent_returns().argmax())
    obs = sample_observations(pendulum(), 16)
    first, _ = model.predict(obs, deterministic=True)
    model.predict(obs)
    second, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(first, second)
    with th.no_grad():
        means = model.actor.mixture_params(th.as_tensor(obs)).means
    np.testing.assert_allclose(first, model.policy.unscale_action(th.tanh(means[:, best]).numpy()), rtol=1e-5, atol=1e-5)


def test_save_load_restores_the_statistics(tmp_path):
    model = returns_model()
    model.learn(2 * 10 * 6)
    model.save(tmp_path / "model")
    loaded = SACM.load(tmp_path / "model")
    original, restored = model.policy.component_choice, loaded.policy.component_choice
    assert th.equal(restored.episode_counts, original.episode_counts) and restored.episode_counts.sum() > 0
    assert th.equal(restored.episode_returns, original.episode_returns)
    assert (loaded.return_window, loaded.return_exploration) == (3, 0.3)
    obs = sample_observations(pendulum(), 8)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(return_window=0), r"return_window must be an int >= 1, got 0"),
        (dict(return_window=True), r"return_window must be an int >= 1, got True"),
        (dict(return_window=2.5), r"return_window must be an int >= 1, got 2.5"),
        (dict(return_exploration=-0.1), r"return_exploration must be a float in \[0, 1\], got -0.1"),
        (dict(return_exploration=1.5), r"return_exploration must be a float in \[0, 1\], got 1.5"),
        (dict(return_exploration=True), r"return_exploration must be a float in \[0, 1\], got True"),
        (
            dict(deterministic_component="best_return"),
            r"deterministic_component='best_return' needs component_schedule='returns'",
        ),
        (dict(component_schedule="bandit"), r"component_schedule must be one of \('step', 'episode', 'returns'\)"),
    ],
)
def test_bad_values_are_refused_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SACM("MlpPolicy", "Pendulum-v1", **kwargs)


def test_the_bandits_defaults_are_the_settings_behind_the_evidence():
    """The defaults of return_window, return_exploration and return_margin are the switch recipe's (benchmarks/common.py
    SWITCH), the settings behind the switching evidence."""
    switch = benchmarks_common().SWITCH
    model = SACM("MlpPolicy", "Pendulum-v1", component_schedule="returns", **SMALL)
    for name in ("return_window", "return_exploration", "return_margin"):
        assert getattr(model, name) == switch[name], name
