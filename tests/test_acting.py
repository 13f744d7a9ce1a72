"""Acting: the component each env acts with (VecEnvs, component schedules, stored head masks), the deterministic component."""

import numpy as np
import pytest
import torch as th
from conftest import ALGOS, SMALL, RecordActing, assert_valid_actions, pendulum, pendulum_vec_env, sample_observations
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from sb3_mixture import SACM
from sb3_mixture.buffers import MixtureReplayBuffer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("algo", ALGOS)
def test_vec_env_and_vec_normalize(algo):
    env = VecNormalize(pendulum_vec_env(2, seed=0))
    model = algo("MlpPolicy", env, critic_data="own", seed=0, **SMALL)
    callback = RecordActing()
    model.learn(100, callback=callback)
    assert model.num_timesteps == 100
    assert model.get_vec_normalize_env() is env
    buffer = model.replay_buffer
    assert type(buffer) is MixtureReplayBuffer and buffer.n_envs == 2
    # "own": every stored row holds, per env, a one-hot mask of the component that acted in that env
    acting = np.array(callback.acting)
    assert acting.shape == (50, 2)
    np.testing.assert_array_equal(buffer.head_masks[callback.rows], np.eye(3)[acting])
    assert np.any(acting[:, 0] != acting[:, 1])  # one draw per env
    # Sampled masks belong to the sampled transitions (not to another env's transition of the same row)
    samples = buffer.sample(32, env=model._vec_normalize_env)
    stored_actions = buffer.actions[: buffer.pos]  # (rows, envs, action_dim)
    for action, mask in zip(samples.actions.numpy(), samples.head_masks.numpy(), strict=True):
        rows, envs = np.nonzero(np.all(stored_actions == action, axis=-1))
        assert len(rows) == 1
        np.testing.assert_array_equal(mask, buffer.head_masks[rows[0], envs[0]])
    obs = env.reset()
    action, _ = model.predict(obs, deterministic=False)
    assert_valid_actions(action, env.action_space, 2)


def two_envs_of_lengths(first: int, second: int) -> DummyVecEnv:
    return DummyVecEnv([lambda: pendulum(first), lambda: pendulum(second)])


@pytest.mark.parametrize(
    "schedule, lengths, period",
    [("episode", (9, 6), None), ("step", (9, 6), 1)],
)
def test_component_schedule_per_env(schedule, lengths, period):
    env = two_envs_of_lengths(*lengths)
    model = SACM("MlpPolicy", env, component_schedule=schedule, critic_data="own", seed=0, **SMALL)
    callback = RecordActing()
    model.learn(2 * 72, callback=callback)
    acting = np.array(callback.acting)  # (72 steps, 2 envs)
    assert acting.shape == (72, 2) and set(np.unique(acting)) == {0, 1, 2}
    for env_index, length in enumerate(lengths):
        changes = np.nonzero(acting[1:, env_index] != acting[:-1, env_index])[0] + 1
        allowed = length if period is None else period
        assert len(changes) > 0
        assert np.all(changes % allowed == 0), (env_index, changes)
    if schedule == "episode":
        # Envs draw independently: env 1 (episodes of 6 steps) changes where env 0 (9 steps) cannot
        changes = np.nonzero(acting[1:, 1] != acting[:-1, 1])[0] + 1
        assert np.any(changes % 9 != 0)
    if schedule == "step":
        assert np.mean(acting[1:] != acting[:-1]) > 0.5
    # The stored head masks follow the acting component of each env
    np.testing.assert_array_equal(model.replay_buffer.head_masks[callback.rows], np.eye(3)[acting])


def mixture_mode_of_means(means: th.Tensor, log_stds: th.Tensor, weights: th.Tensor) -> np.ndarray:
    """
    Independent of the package's math: the component whose squashed mean action has the highest density under the
    tanh-squashed mixture, from torch.distributions (a mixture of diagonal Gaussians pushed through tanh).
    """
    base = th.distributions.MixtureSameFamily(
        th.distributions.Categorical(probs=weights),
        th.distributions.Independent(th.distributions.Normal(means, log_stds.exp()), 1),
    )
    squashed = th.distributions.TransformedDistribution(base, [th.distributions.TanhTransform(cache_size=0)])
    actions = th.tanh(means).clamp(-1 + 1e-6, 1 - 1e-6)  # (B, N, D)
    density = squashed.log_prob(actions.transpose(0, 1)).transpose(0, 1)  # each component's mean under the mixture
    return density.argmax(dim=1).numpy()


@pytest.mark.parametrize("mixture_weights", [None, [0.6, 0.3, 0.1], "learned"])
@pytest.mark.parametrize("deterministic_component", ["mode", 0, 2])
@pytest.mark.parametrize("algo", ALGOS)
def test_deterministic_component(algo, deterministic_component, mixture_weights):
    env = pendulum()
    model = algo(
        "MlpPolicy", env, deterministic_component=deterministic_component, mixture_weights=mixture_weights, seed=0, **SMALL
    )
    model.learn(40)
    obs = sample_observations(env, 16)
    actions, _ = model.predict(obs, deterministic=True)
    assert_valid_actions(actions, env.action_space, 16)
    # The action is the squashed mean of the chosen component, rescaled to the action space
    with th.no_grad():
        means, log_stds, log_weights, _ = model.actor.mixture_params(th.as_tensor(obs))
        candidates = th.tanh(means).numpy()  # (B, N, D), in [-1, 1]
        if deterministic_component == "mode":
            expected = mixture_mode_of_means(means, log_stds, log_weights.exp())
        else:
            expected = np.full(16, deterministic_component)
    scaled = model.policy.unscale_action(candidates[np.arange(16), expected])
    np.testing.assert_allclose(actions, scaled, rtol=1e-5, atol=1e-5)
    # The choice is not always component 0 (so the test can tell choices apart)
    if deterministic_component == 2:
        assert not np.allclose(actions, model.policy.unscale_action(candidates[:, 0]))


def test_mode_is_not_always_the_heaviest_component():
    # The mode rule weighs density, not weight alone: a broad component of weight 0.6 loses to a narrow one of 0.4
    means = th.tensor([[[0.0], [0.5]]])
    log_stds = th.log(th.tensor([[[2.0], [0.05]]]))
    assert mixture_mode_of_means(means, log_stds, th.tensor([[0.6, 0.4]]))[0] == 1
    model = SACM("MlpPolicy", pendulum(), n_components=2, mixture_weights=[0.6, 0.4], **SMALL)
    params = model.actor.mixture_params(th.zeros(1, 3))._replace(means=means, log_stds=log_stds)
    log_weights = th.log(th.tensor([[0.6, 0.4]]))
    assert model.policy.component_choice.deterministic_components(params, log_weights).item() == 1


@pytest.mark.parametrize("mixture_weights", [None, [0.6, 0.3, 0.1], "learned", "soft_value"])
def test_deterministic_acting_is_a_function_of_the_observation(mixture_weights):
    # Two deterministic calls on the same observations play the same actions, whatever random draws happen between them
    env = pendulum()
    model = SACM("MlpPolicy", env, mixture_weights=mixture_weights, seed=0, **SMALL)
    model.learn(300)
    obs = sample_observations(env, 256)
    first, _ = model.predict(obs, deterministic=True)
    model.predict(obs, deterministic=False)
    second, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(first, second)


def test_batched_predict_leaves_the_training_schedule_as_it_was():
    # An evaluation between two learn calls (e.g. a batch of 16 stochastic predicts) must not redraw the training envs'
    # components: within an episode, the episodic schedule keeps its component across the learn calls
    env = DummyVecEnv([lambda: pendulum(100)] * 4)
    model = SACM("MlpPolicy", env, component_schedule="episode", n_components=8, seed=0, **SMALL)
    first, second = RecordActing(), RecordActing()
    model.learn(4 * 10, callback=first)
    for _ in range(3):
        model.predict(sample_observations(pendulum(), 16), deterministic=False)
        model.predict(sample_observations(pendulum(), 4), deterministic=False, episode_start=np.ones(4, dtype=bool))
    model.learn(4 * 10, callback=second, reset_num_timesteps=False)
    acting = np.array(first.acting + second.acting)
    assert np.all(acting == acting[0])
    # The predict calls did draw: they act with a schedule of their own
    assert model.policy.component_choice.predict_schedule.components is not None


def test_episode_schedule_redraws_when_learn_resets_the_envs():
    env = DummyVecEnv([lambda: pendulum(100)] * 8)
    model = SACM("MlpPolicy", env, component_schedule="episode", seed=0, **SMALL)
    first, second = RecordActing(), RecordActing()
    model.learn(8 * 3, callback=first)
    model.learn(8 * 3, callback=second)  # reset_num_timesteps=True: the envs are reset, new episodes start
    assert np.all(np.array(first.acting) == first.acting[0]) and np.all(np.array(second.acting) == second.acting[0])
    assert np.any(second.acting[0] != first.acting[-1])
    # Same after set_env: the next learn resets the new envs
    model.set_env(DummyVecEnv([lambda: pendulum(100)] * 8))
    third = RecordActing()
    model.learn(8 * 3, callback=third, reset_num_timesteps=False)
    assert np.any(third.acting[0] != second.acting[-1])


def test_episode_starts_of_training_are_not_consumed_by_user_predict():
    env = DummyVecEnv([lambda: pendulum(5)] * 8)
    model = SACM("MlpPolicy", env, component_schedule="episode", seed=0, **SMALL)
    first, second = RecordActing(), RecordActing()
    model.learn(8 * 5, callback=first)  # ends exactly at the end of an episode in every env
    model.predict(sample_observations(pendulum(), 8), deterministic=False)  # a user's call between two learn calls
    model.learn(8 * 2, callback=second, reset_num_timesteps=False)  # the envs start new episodes: a new draw
    assert np.any(second.acting[0] != first.acting[-1])


@pytest.mark.parametrize("dict_observations", [False, True])
def test_sampled_head_masks_belong_to_the_sampled_transitions(dict_observations):
    # With several envs, SB3 draws each sample's env inside _get_samples: the mask must be that env's, for both buffers
    from gymnasium import spaces

    from sb3_mixture.buffers import MixtureDictReplayBuffer

    n_envs, n_rows, n_components = 3, 40, 4
    action_space = spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)
    if dict_observations:
        observation_space = spaces.Dict({"a": spaces.Box(-1, 1, (2,)), "b": spaces.Box(-1, 1, (1,))})
        buffer = MixtureDictReplayBuffer(
            n_rows, observation_space, action_space, device="cpu", n_envs=n_envs, n_components=n_components
        )
    else:
        observation_space = spaces.Box(-1, 1, (2,))
        buffer = MixtureReplayBuffer(
            n_rows, observation_space, action_space, device="cpu", n_envs=n_envs, n_components=n_components
        )
    rng = np.random.default_rng(0)
    acting = rng.integers(0, n_components, size=(n_rows, n_envs))
    for row in range(n_rows):
        observation = (
            {key: np.zeros((n_envs, *space.shape)) for key, space in observation_space.items()}
            if dict_observations
            else np.zeros((n_envs, 2))
        )
        # Each transition's action names its row and env, so a sample tells which transition it is
        actions = (np.arange(n_envs) * n_rows + row).reshape(n_envs, 1) / (n_envs * n_rows)
        buffer.set_acting_components(acting[row])
        buffer.add(observation, observation, actions, np.zeros(n_envs), np.zeros(n_envs), [{}] * n_envs)
    np.random.seed(1)
    samples = buffer.sample(256)
    index = np.rint(samples.actions.numpy()[:, 0] * n_envs * n_rows).astype(int)
    envs, rows = np.divmod(index, n_rows)
    assert len(np.unique(envs)) == n_envs  # every env was sampled
    np.testing.assert_array_equal(samples.head_masks.numpy(), np.eye(n_components)[acting[rows, envs]])
