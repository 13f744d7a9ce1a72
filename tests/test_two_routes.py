"""TwoRoutes: gymnasium's checker, mirror symmetry, scripted paths around each side, the blocking wall, registration."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sb3_mixture  # noqa: F401  (registers the ids)
from sb3_mixture.envs import TwoRoutesEnv


def scripted_episode(
    env: TwoRoutesEnv, side: str, seed: int = 0, clearance: float = 1.0, **reset_kwargs
) -> tuple[float, dict]:
    """Head for waypoints beside the obstacle on ``side`` (``clearance`` from it), then for the goal; return, last info."""
    sign = -1.0 if side == "left" else 1.0
    x_edge, y_edge = env.obstacle[2] + clearance, env.obstacle[3] + 0.5
    waypoints = [np.array([sign * x_edge, -y_edge]), np.array([sign * x_edge, y_edge]), env.goal]
    observation, _ = env.reset(seed=seed, **reset_kwargs)
    total, target = 0.0, 0
    while True:
        offset = waypoints[target] - observation
        if target < len(waypoints) - 1 and np.linalg.norm(offset) < 0.3:
            target += 1
            continue
        observation, reward, terminated, truncated, info = env.step(np.clip(offset / env.step_size, -1.0, 1.0))
        total += reward
        if terminated or truncated:
            return total, info


def test_env_checker():
    for blocked_route in (None, "left"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(TwoRoutesEnv(blocked_route=blocked_route), skip_render_check=True)
        assert [str(warning.message) for warning in caught] == []


def test_mirror_symmetry():
    """Mirrored actions from the (self-mirrored) noiseless start: mirrored positions, equal rewards and ends."""
    rng = np.random.default_rng(0)
    for blocked in ((None, None), ("left", "right")):
        env, mirror = (
            TwoRoutesEnv(start_noise=0.0, blocked_route=blocked[0]),
            TwoRoutesEnv(start_noise=0.0, blocked_route=blocked[1]),
        )
        # A drift to one side so that the episodes hit the obstacle, the walls and the gaps
        actions = np.clip(rng.uniform(-1, 1, size=(60, 2)) + np.array([-0.4, 0.6]), -1, 1)
        env.reset(seed=0)
        mirror.reset(seed=1)
        rewards = []
        for action in actions:
            observation, reward, terminated, truncated, info = env.step(action)
            mirrored, mirrored_reward, mirrored_terminated, mirrored_truncated, mirrored_info = mirror.step(
                action * [-1.0, 1.0]
            )
            assert mirrored == pytest.approx(observation * [-1.0, 1.0], abs=1e-6)
            assert mirrored_reward == pytest.approx(reward, abs=1e-9)
            assert (mirrored_terminated, mirrored_truncated) == (terminated, truncated)
            assert mirrored_info["collided"] == info["collided"]
            rewards.append(reward)
            if terminated or truncated:
                break
        assert len(set(np.round(rewards, 6))) > 3  # a trivial constant reward would make the test vacuous


def test_both_routes_reach_the_goal_with_equal_return():
    env = TwoRoutesEnv(start_noise=0.0)
    left, left_info = scripted_episode(env, "left")
    right, right_info = scripted_episode(env, "right")
    assert left_info["is_success"] and right_info["is_success"]
    assert (left_info["route"], right_info["route"]) == ("left", "right")
    assert (left_info["side"], right_info["side"]) == ("left", "right")
    assert left == pytest.approx(right, abs=1e-9)
    # Shaping telescopes: d(start) - step costs + bonus, with d(start) the length of the shortest route
    assert left > env.goal_bonus
    # With the start noise too (the returns then differ a little: the noise and where the last step lands in the goal)
    noisy = TwoRoutesEnv()
    for seed in range(5):
        assert all(scripted_episode(noisy, side, seed=seed)[1]["is_success"] for side in ("left", "right"))


def test_straight_line_is_blocked():
    env = TwoRoutesEnv(start_noise=0.0)
    env.reset(seed=0)
    for _ in range(env.max_steps):
        observation, _, terminated, truncated, info = env.step(np.array([0.0, 1.0]))
        assert not terminated
    assert truncated and not info["is_success"] and info["route"] is None
    # Stopped at the obstacle's bottom edge (touching it is allowed, entering it is not)
    assert observation.tolist() == [0.0, env.obstacle[1]]


@pytest.mark.parametrize("blocked, open_side", [("left", "right"), ("right", "left")])
def test_blocked_route(blocked, open_side):
    env = TwoRoutesEnv(blocked_route=blocked, start_noise=0.0)
    stuck, stuck_info = scripted_episode(env, blocked)
    assert not stuck_info["is_success"] and stuck_info["route"] is None and stuck_info["side"] == blocked
    # Nor along the box's edge (waypoints on it)
    hugging = scripted_episode(env, blocked, clearance=env.bound - env.obstacle[2])[1]
    assert not hugging["is_success"] and hugging["route"] is None
    assert scripted_episode(TwoRoutesEnv(start_noise=0.0), blocked, clearance=env.bound - env.obstacle[2])[1]["is_success"]
    free, free_info = scripted_episode(env, open_side)
    assert free_info["is_success"] and free_info["route"] == open_side
    # Unchanged by the wall on the other side: the same return as without a block
    assert free == pytest.approx(scripted_episode(TwoRoutesEnv(start_noise=0.0), open_side)[0], abs=1e-9)
    assert stuck < 0 < free


def test_switching_the_block_on_an_instance():
    env = TwoRoutesEnv()
    assert scripted_episode(env, "left")[1]["is_success"]
    assert not scripted_episode(env, "left", options={"blocked_route": "left"})[1]["is_success"]
    # Options without the key keep the block
    assert not scripted_episode(env, "left", options={})[1]["is_success"]
    assert scripted_episode(env, "left", options={"blocked_route": None})[1]["is_success"]
    env.set_blocked_route("right")
    assert env.blocked_route == "right"
    assert not scripted_episode(env, "right")[1]["is_success"]
    assert scripted_episode(env, "left")[1]["is_success"]


def test_invalid_blocked_route():
    with pytest.raises(ValueError, match="blocked_route"):
        TwoRoutesEnv(blocked_route="middle")
    env = TwoRoutesEnv()
    with pytest.raises(ValueError, match="blocked_route"):
        env.set_blocked_route("Left")
    with pytest.raises(ValueError, match="blocked_route"):
        env.reset(options={"blocked_route": "up"})


def test_registration():
    env = gym.make("sb3_mixture/TwoRoutes-v0", blocked_route="right")
    assert isinstance(env.unwrapped, TwoRoutesEnv)
    assert env.unwrapped.blocked_route == "right"
    observation, _ = env.reset(seed=0)
    assert env.observation_space.contains(observation)
    env.close()
