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
    [("episode", (9, 6), None), (3, (9, 6), 3), ("step", (9, 6), 1)],
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


@pytest.mark.parametrize("deterministic_component", ["mode", "best_q", 0, 2])
@pytest.mark.parametrize("algo", ALGOS)
def test_deterministic_component(algo, deterministic_component):
    env = pendulum()
    model = algo("MlpPolicy", env, deterministic_component=deterministic_component, seed=0, **SMALL)
    model.learn(40)
    obs = sample_observations(env, 16)
    actions, _ = model.predict(obs, deterministic=True)
    assert_valid_actions(actions, env.action_space, 16)
    # The action is the squashed mean of the chosen component, rescaled to the action space
    with th.no_grad():
        obs_tensor = th.as_tensor(obs)
        means, log_stds = model.actor.mixture_params(obs_tensor)[:2]
        candidates = th.tanh(means).numpy()  # (B, N, D), in [-1, 1]
        if deterministic_component == "mode":
            expected = model.actor.mode_components(means, log_stds).numpy()
        elif deterministic_component == "best_q":
            # Through the critic's SB3 interface: component i's mean judged by head i, pessimistic over the critics
            per_component = [
                th.stack([q[:, i] for q in model.critic(obs_tensor, th.tanh(means[:, i]))]).min(dim=0).values
                for i in range(model.n_components)
            ]
            expected = th.stack(per_component, dim=1).argmax(dim=1).numpy()
        else:
            expected = np.full(16, deterministic_component)
    scaled = model.policy.unscale_action(candidates[np.arange(16), expected])
    np.testing.assert_allclose(actions, scaled, rtol=1e-5, atol=1e-5)
    # The choice is not always component 0 (so the test can tell choices apart)
    if deterministic_component == 2:
        assert not np.allclose(actions, model.policy.unscale_action(candidates[:, 0]))


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
