"""The package's small multimodal tasks: gymnasium's checker, rewards in closed form, episode ends, registration."""

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sb3_mixture  # noqa: F401  (registers the ids)
from sb3_mixture.envs import GOALS, BimodalBanditEnv, MultiGoalEnv, bimodal_reward

IDS = {"sb3_mixture/MultiGoal-v0": MultiGoalEnv, "sb3_mixture/BimodalBandit-v0": BimodalBanditEnv}


@pytest.mark.parametrize("env_class", [MultiGoalEnv, BimodalBanditEnv])
def test_env_checker(env_class):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env_class(), skip_render_check=True)
    # The bandit's [-2, 2] action range is the task's, not an oversight
    messages = [str(warning.message) for warning in caught if "symmetric and normalized" not in str(warning.message)]
    assert messages == []


@pytest.mark.parametrize("env_id", list(IDS))
def test_registration(env_id):
    env = gym.make(env_id)
    assert isinstance(env.unwrapped, IDS[env_id])
    observation, _ = env.reset(seed=0)
    assert env.observation_space.contains(observation)
    env.close()


def test_registration_is_idempotent():
    sb3_mixture.envs.register_envs()
    assert gym.make("sb3_mixture/BimodalBandit-v0").unwrapped.__class__ is BimodalBanditEnv


def test_bandit_rewards():
    env = BimodalBanditEnv()
    env.reset(seed=0)
    far = math.exp(-0.5 * (2.0 / 0.2) ** 2)  # the other bump, 2 away
    expected = {
        -1.0: 1.0 + 1.5 * far,
        1.0: 1.5 + far,
        0.0: 2.5 * math.exp(-0.5 * 25.0),
        -0.8: math.exp(-0.5) + 1.5 * math.exp(-0.5 * 81.0),
        1.2: math.exp(-0.5 * 121.0) + 1.5 * math.exp(-0.5),
        2.0: math.exp(-0.5 * 225.0) + 1.5 * math.exp(-0.5 * 25.0),
    }
    for action, reward in expected.items():
        observation, value, terminated, truncated, info = env.step(np.array([action], dtype=np.float32))
        assert value == pytest.approx(reward, rel=1e-6, abs=1e-12)
        assert bimodal_reward(action) == pytest.approx(reward, rel=1e-6, abs=1e-12)
        assert terminated and not truncated
        assert observation.tolist() == [0.0]
    assert env.step(np.array([-1.1], dtype=np.float32))[4]["mode"] == -1
    assert env.step(np.array([0.9], dtype=np.float32))[4]["mode"] == 1
    assert env.step(np.array([0.0], dtype=np.float32))[4]["mode"] == 0
    # Out-of-range actions are clipped to [-2, 2]
    assert env.step(np.array([5.0], dtype=np.float32))[1] == pytest.approx(expected[2.0])


def test_bandit_one_step_episodes():
    env = gym.make("sb3_mixture/BimodalBandit-v0")
    for seed in range(3):
        env.reset(seed=seed)
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert terminated and not truncated


def start_at(env: MultiGoalEnv, position) -> None:
    env.reset(seed=0)
    env._position = np.asarray(position, dtype=np.float32)


def test_multigoal_reward_closed_form():
    env = MultiGoalEnv()
    start_at(env, [0.0, 0.0])
    # (0, 0) -> (0.5, -0.5): nearest goal (5, 0) at squared distance 4.5^2 + 0.5^2 = 20.5
    observation, reward, terminated, truncated, info = env.step(np.array([0.5, -0.5], dtype=np.float32))
    assert observation == pytest.approx([0.5, -0.5])
    assert reward == pytest.approx(-(1.0 * 0.5 + 0.1 * 20.5))
    assert not terminated and not truncated and info["goal"] == -1 and not info["is_success"]
    # Other coefficients (the soft Q-learning paper's)
    env = MultiGoalEnv(action_cost=30.0, distance_cost=1.0, goal_bonus=10.0)
    start_at(env, [-2.0, 1.0])
    _, reward, *_ = env.step(np.array([-1.0, 0.0], dtype=np.float32))
    assert reward == pytest.approx(-(30.0 * 1.0 + 1.0 * (2.0**2 + 1.0**2)))  # at (-3, 1), nearest goal (-5, 0)


@pytest.mark.parametrize("goal", range(4))
def test_multigoal_terminates_at_each_goal(goal):
    env = MultiGoalEnv()
    target = GOALS[goal]
    direction = target / np.linalg.norm(target)
    start_at(env, 3.4 * direction)
    # 3.4 -> 3.9 along the axis: 1.1 from the goal, not yet within 1
    _, _, terminated, _, info = env.step((0.5 * direction).astype(np.float32))
    assert not terminated and info["goal"] == -1
    observation, reward, terminated, truncated, info = env.step((0.5 * direction).astype(np.float32))
    assert terminated and not truncated
    assert info["goal"] == goal and info["is_success"]
    assert observation == pytest.approx(4.4 * direction)
    assert reward == pytest.approx(-(1.0 * 0.25 + 0.1 * 0.36) + 1.0)  # bonus 1 on the goal step


def test_multigoal_truncates_after_30_steps():
    env = gym.make("sb3_mixture/MultiGoal-v0")
    observation, info = env.reset(seed=1)
    assert np.linalg.norm(observation) < 0.5 and info["goal"] == -1
    for step in range(1, 31):
        # Oscillate around the start: never near a goal
        action = np.array([0.5, 0.5] if step % 2 else [-0.5, -0.5], dtype=np.float32)
        observation, _, terminated, truncated, _ = env.step(action)
        assert not terminated
        assert truncated == (step == 30)


def test_multigoal_clips_actions_and_positions():
    env = MultiGoalEnv()
    start_at(env, [6.8, 6.8])
    observation, reward, *_ = env.step(np.array([3.0, 3.0], dtype=np.float32))
    assert observation == pytest.approx([7.0, 7.0])
    assert reward == pytest.approx(-(1.0 * 2.0 + 0.1 * (2.0**2 + 7.0**2)))  # |clipped a|^2 = 2


def test_multigoal_seeded_starts():
    first, second = MultiGoalEnv(), MultiGoalEnv()
    assert np.array_equal(first.reset(seed=3)[0], second.reset(seed=3)[0])
    starts = np.array([first.reset(seed=seed)[0] for seed in range(200)])
    assert np.abs(starts.mean(axis=0)).max() < 0.03 and starts.std(axis=0) == pytest.approx([0.1, 0.1], rel=0.2)


def test_multigoal_removed_goal_neither_ends_nor_pays():
    env = MultiGoalEnv(init_std=0.0, max_steps=10)
    env.reset(seed=0)
    for _ in range(5):
        _, _, terminated, _, info = env.step(np.array([1.0, 0.0]))
    assert terminated and info["goal"] == 0  # (5, 0) reached after 5 steps
    env.set_removed_goals([0])
    env.reset(seed=0)
    for _ in range(5):
        position, reward, terminated, _, info = env.step(np.array([1.0, 0.0]))
    assert not terminated and info["goal"] == -1
    assert position.tolist() == [5.0, 0.0]
    # The distance cost is now to the nearest remaining goal, (0, 5) or (0, -5): sqrt(50) away
    assert reward == pytest.approx(-(1.0 + 0.1 * 50.0))
    env.set_removed_goals([])
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([-1.0, 0.0]))
    assert info["goal"] == -1


def test_multigoal_goal_indices_map_back_to_goals():
    env = MultiGoalEnv(init_std=0.0, removed_goals=(0, 2))
    env.reset(seed=0)
    for _ in range(5):
        _, _, terminated, _, info = env.step(np.array([0.0, -1.0]))
    assert terminated and info["goal"] == 3  # (0, -5) is GOALS[3], though only the second remaining goal
    with pytest.raises(ValueError, match="removed_goals must be distinct indices"):
        env.set_removed_goals([0, 1, 2, 3])
