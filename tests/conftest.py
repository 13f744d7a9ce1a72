"""
Shared fixtures and helpers.

The helpers are plain objects, imported by the test modules with ``from conftest import ...`` (pytest puts tests/ on
sys.path to load this file, so the import gets this very module): ``ALGOS`` is needed in ``parametrize`` decorators,
and ``pendulum`` is called inside lambdas and module-level helpers, where fixtures cannot go.
"""

import functools
import importlib.util
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecEnv

from sb3_mixture import S2ACM, SACM

ALGOS = [SACM, S2ACM]
NAN = float("nan")
"""a component's recent return before it has any episode"""
# Tiny networks and buffers, training from step 20. SB3 writes only ``use_sde`` into the policy_kwargs it is given,
# the same value at every construction, so one dict serves every test
SMALL = dict(policy_kwargs=dict(net_arch=[16]), learning_starts=20, batch_size=16, buffer_size=1_000)


@pytest.fixture(scope="module")
def one_torch_thread():
    """
    One torch thread for a test module (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``, or requested by
    a module-scoped fixture), restored afterwards: the networks here are tiny, and the machine is shared.
    """
    previous = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(previous)


# --- Subprocesses --------------------------------------------------------------------------------------------------


def run_python(
    *args: str, cwd: Path, env: "dict[str, str] | None" = None, nice: bool = False, check: bool = True
) -> subprocess.CompletedProcess:
    """
    ``python <args>`` in a subprocess (``nice -n 5`` with ``nice=True``), its output captured, at most 300 s; with
    ``check``, it must succeed, and the end of its output is the failure message.
    """
    command = [*(["nice", "-n", "5"] if nice else []), sys.executable, *args]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


# --- The benchmarks ------------------------------------------------------------------------------------------------


@functools.cache
def benchmarks_common():
    """
    ``benchmarks/common.py``, loaded from its file: the benchmarks are scripts that import it by name (``from common
    import ...``), not a package, and putting their folder on ``sys.path`` would let a test import any script there.
    """
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "common.py"
    spec = importlib.util.spec_from_file_location("benchmarks_common", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- Environments --------------------------------------------------------------------------------------------------


def pendulum(max_episode_steps: int = 20) -> gym.Env:
    return Monitor(gym.make("Pendulum-v1", max_episode_steps=max_episode_steps))


def pendulum_vec_env(n_envs: int, max_episode_steps: int = 20, seed: "int | None" = None) -> VecEnv:
    return make_vec_env(lambda: gym.make("Pendulum-v1", max_episode_steps=max_episode_steps), n_envs=n_envs, seed=seed)


class TinyImageEnv(gym.Env):
    """36x36x3 uint8 images, 2-d Box actions, episodes of 15 steps."""

    def __init__(self):
        self.observation_space = spaces.Box(0, 255, (36, 36, 3), dtype=np.uint8)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        self._t = 0

    def _obs(self) -> np.ndarray:
        return self.np_random.integers(0, 256, self.observation_space.shape, dtype=np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self._obs(), {}

    def _reward(self, action: np.ndarray) -> float:
        return float(-np.sum(np.square(action)))

    def step(self, action):
        self._t += 1
        return self._obs(), self._reward(action), False, self._t >= 15, {}


# --- Callbacks -----------------------------------------------------------------------------------------------------


class RecordActing(BaseCallback):
    """Per step of the rollout: the acting component of each env and the buffer row the transition goes to."""

    def __init__(self):
        super().__init__()
        self.acting: list[np.ndarray] = []
        self.rows: list[int] = []

    def _on_step(self) -> bool:
        self.acting.append(self.model.policy.acting_components.copy())
        self.rows.append(self.model.replay_buffer.pos)
        return True


# --- Observations and actions --------------------------------------------------------------------------------------


def assert_valid_actions(actions: np.ndarray, space: spaces.Box, batch: "int | None") -> None:
    expected = space.shape if batch is None else (batch, *space.shape)
    assert actions.shape == expected
    assert np.all(np.isfinite(actions))
    assert np.all(actions >= space.low) and np.all(actions <= space.high)


def stack_obs(obs_list):
    if isinstance(obs_list[0], dict):
        return {key: np.stack([obs[key] for obs in obs_list]) for key in obs_list[0]}
    return np.stack(obs_list)


def sample_observations(env: gym.Env, n: int):
    env.observation_space.seed(0)
    return stack_obs([env.observation_space.sample() for _ in range(n)])


def fill_buffer(models, n_transitions: int = 200, seed: int = 0) -> None:
    """The same random transitions in every model's replay buffer."""
    env = models[0].get_env()
    rng = np.random.default_rng(seed)
    obs_dim = env.observation_space.shape[0]
    act_dim = env.action_space.shape[0]
    for _ in range(n_transitions):
        obs = rng.normal(size=(1, obs_dim)).astype(np.float32)
        next_obs = rng.normal(size=(1, obs_dim)).astype(np.float32)
        action = rng.uniform(-1, 1, size=(1, act_dim)).astype(np.float32)
        reward = rng.normal(size=(1,)).astype(np.float32)
        done = rng.random(size=(1,)) < 0.1
        for model in models:
            model.replay_buffer.add(obs, next_obs, action, reward, done, [{}])


def q_heads(net, obs: th.Tensor, action: th.Tensor) -> th.Tensor:
    """(n_critics, B, N): each member of the critic ensemble as a plain MLP, one at a time."""
    x0 = th.cat([net.extract_features(obs, net.features_extractor), action], dim=1)
    outs = []
    for k in range(net.n_critics):
        x = x0
        for layer, (weight, bias) in enumerate(zip(net.q_ensemble.weights, net.q_ensemble.biases, strict=True)):
            x = x @ weight[k] + bias[k, 0]
            if layer < len(net.q_ensemble.weights) - 1:
                x = th.relu(x)
        outs.append(x)
    return th.stack(outs)
