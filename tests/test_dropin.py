"""SACM and S2ACM as drop-ins for SB3's SAC: policies, env wrappers, buffers, callbacks, save/load, logging, bad input."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import SAC, HerReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import BitFlippingEnv
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.torch_layers import CombinedExtractor, NatureCNN
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
from stable_baselines3.sac.policies import SACPolicy

from sb3_mixture import S2ACM, SACM
from sb3_mixture.buffers import MixtureDictReplayBuffer, MixtureReplayBuffer

ALGOS = [SACM, S2ACM]
SMALL = dict(policy_kwargs=dict(net_arch=[16]), learning_starts=20, batch_size=16, buffer_size=1_000)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def pendulum(max_episode_steps: int = 20) -> gym.Env:
    return Monitor(gym.make("Pendulum-v1", max_episode_steps=max_episode_steps))


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


class TinyDictEnv(TinyImageEnv):
    """Dict observations (a vector and a small image), 2-d Box actions, episodes of 15 steps."""

    def __init__(self):
        super().__init__()
        self.observation_space = spaces.Dict(
            {
                "vec": spaces.Box(-1.0, 1.0, (3,), dtype=np.float32),
                "img": spaces.Box(0, 255, (36, 36, 1), dtype=np.uint8),
            }
        )

    def _obs(self) -> dict:
        return {
            "vec": self.np_random.uniform(-1, 1, 3).astype(np.float32),
            "img": self.np_random.integers(0, 256, (36, 36, 1), dtype=np.uint8),
        }

    def _reward(self, action: np.ndarray) -> float:
        return float(action[0])


class NaNRewardAfter(gym.Wrapper):
    """Rewards become NaN after ``steps`` steps."""

    def __init__(self, env: gym.Env, steps: int):
        super().__init__(env)
        self.steps = steps
        self.count = 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.count += 1
        return obs, (math.nan if self.count > self.steps else reward), terminated, truncated, info


class CollectingWriter(KVWriter):
    """Keeps every dump of the logger."""

    def __init__(self):
        self.dumps: list[dict] = []

    def write(self, key_values, key_excluded, step=0):
        self.dumps.append(dict(key_values))

    def close(self):
        pass


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


def assert_valid_actions(actions: np.ndarray, space: spaces.Box, batch: "int | None") -> None:
    expected = space.shape if batch is None else (batch, *space.shape)
    assert actions.shape == expected
    assert np.all(np.isfinite(actions))
    assert np.all(actions >= space.low) and np.all(actions <= space.high)


def check_predict(model, obs, batched_obs, batch: int) -> None:
    """Deterministic: valid and repeatable; stochastic: valid and not constant; single and batched observations."""
    space = model.action_space
    for observation, size in ((obs, None), (batched_obs, batch)):
        first, state = model.predict(observation, deterministic=True)
        assert state is None
        assert_valid_actions(first, space, size)
        again, _ = model.predict(observation, deterministic=True)
        np.testing.assert_array_equal(first, again)
        samples = [model.predict(observation, deterministic=False)[0] for _ in range(5)]
        for sample in samples:
            assert_valid_actions(sample, space, size)
        assert not all(np.array_equal(samples[0], sample) for sample in samples[1:])


def stack_obs(obs_list):
    if isinstance(obs_list[0], dict):
        return {key: np.stack([obs[key] for obs in obs_list]) for key in obs_list[0]}
    return np.stack(obs_list)


def sample_observations(env: gym.Env, n: int):
    env.observation_space.seed(0)
    return stack_obs([env.observation_space.sample() for _ in range(n)])


# --- Policies and environments -------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", ALGOS)
def test_is_sac_with_sac_policies(algo):
    model = algo("MlpPolicy", pendulum(), **SMALL)
    assert isinstance(model, SAC)
    assert isinstance(model.policy, SACPolicy)
    assert model.n_components == 3 and model.log_ent_coef.shape == (3,)
    # Heads: SAC's actor heads widened to n_components * action_dim, one critic output per component
    assert model.actor.mu.out_features == 3 * 1
    assert [q.shape for q in model.critic(th.zeros(4, 3), th.zeros(4, 1))] == [(4, 3), (4, 3)]
    # "auto_<value>" starts every temperature at that value
    model = algo("MlpPolicy", pendulum(), ent_coef="auto_0.1", n_components=2, **SMALL)
    assert th.allclose(model.log_ent_coef.detach().exp(), th.tensor([0.1, 0.1]))


@pytest.mark.parametrize("algo", ALGOS)
def test_mlp_policy_learn_and_predict(algo):
    env = pendulum()
    model = algo("MlpPolicy", env, seed=0, **SMALL)
    model.learn(100)
    assert model.num_timesteps == 100 and model._n_updates == 80
    obs, _ = env.reset(seed=1)
    check_predict(model, obs, sample_observations(env, 5), 5)


@pytest.mark.parametrize("algo", ALGOS)
def test_cnn_policy(algo):
    env = TinyImageEnv()
    kwargs = dict(SMALL, buffer_size=200, policy_kwargs=dict(net_arch=[16], features_extractor_kwargs=dict(features_dim=16)))
    model = algo("CnnPolicy", env, seed=0, **kwargs)
    assert isinstance(model.actor.features_extractor, NatureCNN)
    assert isinstance(model.critic.features_extractor, NatureCNN)
    model.learn(60)
    assert model._n_updates == 40
    obs, _ = env.reset(seed=1)
    check_predict(model, obs, sample_observations(env, 4), 4)


@pytest.mark.parametrize("critic_data", ["shared", "bootstrap", "own"])
def test_multi_input_policy(critic_data):
    env = TinyDictEnv()
    policy_kwargs = dict(net_arch=[16], features_extractor_kwargs=dict(cnn_output_dim=16))
    kwargs = dict(SMALL, buffer_size=200, policy_kwargs=policy_kwargs)
    model = SACM("MultiInputPolicy", env, critic_data=critic_data, seed=0, **kwargs)
    assert isinstance(model.actor.features_extractor, CombinedExtractor)
    if critic_data != "shared":
        assert type(model.replay_buffer) is MixtureDictReplayBuffer
    model.learn(60)
    assert model._n_updates == 40
    obs, _ = env.reset(seed=1)
    check_predict(model, obs, sample_observations(env, 4), 4)


@pytest.mark.parametrize("algo", ALGOS)
def test_her_replay_buffer_with_shared_critic_data(algo):
    env = BitFlippingEnv(n_bits=4, continuous=True, max_steps=4)
    model = algo(
        "MultiInputPolicy",
        env,
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs=dict(n_sampled_goal=2, goal_selection_strategy="future"),
        seed=0,
        **SMALL,
    )
    assert isinstance(model.replay_buffer, HerReplayBuffer)
    model.learn(80)
    assert model._n_updates == 60
    assert all(th.isfinite(p).all() for p in model.policy.parameters())
    obs, _ = env.reset()
    action, _ = model.predict(obs, deterministic=True)
    assert_valid_actions(action, env.action_space, None)


@pytest.mark.parametrize("algo", ALGOS)
def test_vec_env_and_vec_normalize(algo):
    env = VecNormalize(make_vec_env(lambda: gym.make("Pendulum-v1", max_episode_steps=20), n_envs=2, seed=0))
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


@pytest.mark.parametrize("algo", ALGOS)
def test_progress_bar_callbacks_and_evaluate_policy(algo, tmp_path):
    model = algo("MlpPolicy", pendulum(), seed=0, **SMALL)
    eval_callback = EvalCallback(
        pendulum(), n_eval_episodes=2, eval_freq=50, best_model_save_path=tmp_path / "best", log_path=tmp_path / "eval"
    )
    checkpoint = CheckpointCallback(save_freq=50, save_path=str(tmp_path / "ckpt"), save_replay_buffer=True)
    model.learn(100, callback=[eval_callback, checkpoint], progress_bar=True)
    assert eval_callback.n_calls == 100 and len(eval_callback.evaluations_results) == 2
    assert (tmp_path / "best" / "best_model.zip").is_file()
    assert np.load(tmp_path / "eval" / "evaluations.npz")["results"].shape == (2, 2)
    for steps in (50, 100):
        assert (tmp_path / "ckpt" / f"rl_model_{steps}_steps.zip").is_file()
        assert (tmp_path / "ckpt" / f"rl_model_replay_buffer_{steps}_steps.pkl").is_file()
    restored = algo.load(tmp_path / "ckpt" / "rl_model_100_steps.zip")
    assert type(restored) is algo and restored.num_timesteps == 100
    mean, std = evaluate_policy(model, pendulum(), n_eval_episodes=2)
    assert np.isfinite(mean) and np.isfinite(std) and mean < 0
    rewards, lengths = evaluate_policy(model, pendulum(), n_eval_episodes=2, deterministic=False, return_episode_rewards=True)
    assert lengths == [20, 20] and len(rewards) == 2


# --- Saving and loading --------------------------------------------------------------------------------------------

NON_DEFAULT = dict(
    n_components=4,
    mixture_weights=[0.1, 0.2, 0.3, 0.4],
    entropy_estimator="pairwise_kl",
    critic_data="bootstrap",
    bootstrap_mask_prob=0.7,
    component_schedule=3,
    deterministic_component="best_q",
    component_sampling="sample",
    matmul_precision="bf16",
)


def assert_state_dicts_equal(left: dict, right: dict) -> None:
    assert left.keys() == right.keys()
    for key in left:
        if isinstance(left[key], dict):
            assert_state_dicts_equal(left[key], right[key])
        elif isinstance(left[key], list):
            assert len(left[key]) == len(right[key])
            for a, b in zip(left[key], right[key], strict=True):
                if isinstance(a, dict):
                    assert_state_dicts_equal(a, b)
                else:
                    assert a == b, key
        elif isinstance(left[key], th.Tensor):
            assert th.equal(left[key], right[key]), key
        else:
            assert left[key] == right[key], key


@pytest.mark.parametrize("algo", ALGOS)
def test_save_load_round_trip(algo, tmp_path):
    env = pendulum()
    model = algo("MlpPolicy", env, seed=0, **NON_DEFAULT, **SMALL)
    model.learn(60)
    temperatures = th.log(th.tensor([0.05, 0.1, 0.2, 0.4]))
    model.log_ent_coef.data.copy_(temperatures)
    model.save(tmp_path / "model.zip")

    loaded = algo.load(tmp_path / "model.zip", env=pendulum())
    assert type(loaded) is algo
    for name, value in NON_DEFAULT.items():
        assert getattr(loaded, name) == value, name
    for name in ("n_components", "mixture_weights", "component_schedule", "deterministic_component"):
        assert getattr(loaded.policy, name) == NON_DEFAULT[name], name
    assert loaded.actor.n_components == 4 and loaded.actor.mixture_weights == NON_DEFAULT["mixture_weights"]
    assert th.allclose(loaded.actor.log_mixture_weights.exp(), th.tensor(NON_DEFAULT["mixture_weights"]))
    assert isinstance(loaded.replay_buffer, MixtureReplayBuffer) and loaded.replay_buffer.bootstrap_mask_prob == 0.7
    # Every temperature, not just the first
    assert loaded.log_ent_coef.shape == (4,) and loaded.log_ent_coef.requires_grad
    assert th.equal(loaded.log_ent_coef.detach(), temperatures)
    # The temperature optimiser must optimise the loaded tensor itself
    assert loaded.ent_coef_optimizer.param_groups[0]["params"][0] is loaded.log_ent_coef
    # Network weights and optimiser states (Adam moments after 40 updates)
    assert_state_dicts_equal(model.policy.state_dict(), loaded.policy.state_dict())
    for name in ("actor.optimizer", "critic.optimizer", "ent_coef_optimizer"):
        original = model.get_parameters()[name]
        assert len(original["state"]) > 0, name
        assert_state_dicts_equal(original, loaded.get_parameters()[name])
    obs = sample_observations(env, 8)
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    # ... and the loaded model trains on
    loaded.learn(30, reset_num_timesteps=False)
    assert loaded.num_timesteps == 90
    assert not th.equal(loaded.log_ent_coef.detach(), temperatures)


@pytest.mark.parametrize("algo", ALGOS)
def test_save_load_fixed_ent_coef(algo, tmp_path):
    model = algo("MlpPolicy", pendulum(), ent_coef=0.3, n_components=2, **SMALL)
    assert model.log_ent_coef is None and model.ent_coef_optimizer is None
    model.learn(30)
    model.save(tmp_path / "model.zip")
    loaded = algo.load(tmp_path / "model.zip")
    assert loaded.log_ent_coef is None and loaded.ent_coef == 0.3
    assert float(loaded.ent_coef_tensor) == pytest.approx(0.3)


@pytest.mark.parametrize("critic_data", ["bootstrap", "own"])
def test_replay_buffer_round_trip(critic_data, tmp_path):
    kwargs = dict(SMALL, critic_data=critic_data, n_components=3)
    model = SACM("MlpPolicy", pendulum(), seed=0, **kwargs)
    model.learn(60)
    masks = model.replay_buffer.head_masks[:60, 0]
    if critic_data == "own":
        np.testing.assert_array_equal(masks.sum(axis=1), 1.0)
    assert 0 < masks.mean() < 1 and len(np.unique(masks, axis=0)) > 1
    model.save_replay_buffer(tmp_path / "buffer.pkl")

    other = SACM("MlpPolicy", pendulum(), seed=1, **kwargs)
    other.load_replay_buffer(tmp_path / "buffer.pkl")
    original, restored = model.replay_buffer, other.replay_buffer
    assert type(restored) is MixtureReplayBuffer
    assert (restored.pos, restored.full, restored.critic_data) == (original.pos, original.full, critic_data)
    for name in ("observations", "next_observations", "actions", "rewards", "dones", "head_masks"):
        np.testing.assert_array_equal(getattr(restored, name), getattr(original, name), err_msg=name)
    assert restored.head_masks.shape == (1_000, 1, 3)
    other.learn(20, reset_num_timesteps=False)  # training from the restored buffer works
    assert other.replay_buffer.pos == 80


@pytest.mark.parametrize("algo", ALGOS)
def test_get_and_set_parameters(algo):
    source = algo("MlpPolicy", pendulum(), seed=0, **SMALL)
    source.learn(40)
    target = algo("MlpPolicy", pendulum(), seed=1, **SMALL)
    params = source.get_parameters()
    assert {"policy", "actor.optimizer", "critic.optimizer", "ent_coef_optimizer"} <= params.keys()
    obs = sample_observations(pendulum(), 8)
    assert not np.array_equal(source.predict(obs, deterministic=True)[0], target.predict(obs, deterministic=True)[0])
    target.set_parameters(params)
    assert_state_dicts_equal(source.policy.state_dict(), target.policy.state_dict())
    np.testing.assert_array_equal(source.predict(obs, deterministic=True)[0], target.predict(obs, deterministic=True)[0])
    assert_state_dicts_equal(params["ent_coef_optimizer"], target.get_parameters()["ent_coef_optimizer"])


@pytest.mark.parametrize("algo", ALGOS)
def test_set_env(algo, tmp_path):
    model = algo("MlpPolicy", pendulum(), seed=0, **SMALL)
    model.learn(30)
    new_env = pendulum()
    model.set_env(new_env)
    assert model.get_env().envs[0] is new_env
    model.learn(30, reset_num_timesteps=False)
    assert model.num_timesteps == 60 and new_env.get_total_steps() == 30
    with pytest.raises(ValueError):
        model.set_env(TinyImageEnv())
    # A loaded model, given an env afterwards, trains on
    model.save(tmp_path / "model")
    loaded = algo.load(tmp_path / "model")
    assert loaded.get_env() is None
    loaded.set_env(make_vec_env(lambda: gym.make("Pendulum-v1", max_episode_steps=20), n_envs=1))
    loaded.learn(30)
    assert loaded.num_timesteps == 30


@pytest.mark.parametrize("algo", ALGOS)
def test_tensorboard_run_names(algo, tmp_path):
    model = algo("MlpPolicy", pendulum(), tensorboard_log=str(tmp_path), **SMALL)
    model.learn(30)
    model.learn(30)
    model.learn(30, tb_log_name="custom")
    name = algo.__name__
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([f"{name}_1", f"{name}_2", "custom_1"])
    assert any(path.name.startswith("events.out.tfevents") for path in (tmp_path / f"{name}_1").iterdir())


@pytest.mark.parametrize("algo", ALGOS)
def test_logged_keys(algo):
    model = algo("MlpPolicy", pendulum(), n_components=3, seed=0, **SMALL)
    model.log_ent_coef.data.copy_(th.log(th.tensor([0.1, 0.5, 2.0])))
    writer = CollectingWriter()
    model.set_logger(Logger(folder=None, output_formats=[writer]))
    model.learn(100, log_interval=1)  # 5 episodes of 20 steps: 5 dumps, the last 4 after training started
    assert len(writer.dumps) == 5
    expected = {"train/ent_coef", "train/entropy", "train/entropy_marginal", "train/component_kl", "train/actor_loss"}
    expected |= {f"train/ent_coef_{i}" for i in range(3)} | {f"train/mixture_weight_{i}" for i in range(3)}
    expected |= {"train/weight_entropy"}
    for dump in writer.dumps[1:]:
        assert expected <= dump.keys(), expected - dump.keys()
        shares = [dump[f"rollout/component_share_{i}"] for i in range(3)]
        assert sum(shares) == pytest.approx(1.0) and min(shares) > 0
        assert all(np.isfinite(dump[key]) for key in expected)
        assert dump["train/component_kl"] >= 0
        assert "train/ent_coef_3" not in dump and "rollout/component_share_3" not in dump
    # Each temperature is logged separately: they started at 0.1, 0.5 and 2 and moved only a little
    first = writer.dumps[1]
    assert [first[f"train/ent_coef_{i}"] for i in range(3)] == pytest.approx([0.1, 0.5, 2.0], rel=0.05)
    assert first["train/ent_coef"] == pytest.approx((0.1 + 0.5 + 2.0) / 3, rel=0.05)
    # Fixed uniform weights: each 1/3, and H(w) = log 3
    assert [first[f"train/mixture_weight_{i}"] for i in range(3)] == pytest.approx([1 / 3] * 3)
    assert first["train/weight_entropy"] == pytest.approx(math.log(3))
    assert "rollout/component_share_0" in writer.dumps[0] and "train/ent_coef_0" not in writer.dumps[0]


# --- Bad input -----------------------------------------------------------------------------------------------------

BAD_ARGUMENTS = [
    (dict(n_components=0), ValueError, r"n_components must be an int >= 1"),
    (dict(n_components=2.5), TypeError, r"n_components must be an int >= 1"),
    (dict(n_components="3"), TypeError, r"n_components must be an int >= 1"),
    (dict(mixture_weights=[0.5, 0.5]), ValueError, r"mixture_weights must have one weight per component"),
    (dict(mixture_weights=[0.5, 0.6, -0.1]), ValueError, r"mixture_weights must all be > 0"),
    (dict(mixture_weights=[0.5, 0.5, 0.0]), ValueError, r"mixture_weights must all be > 0"),
    (dict(mixture_weights=[0.2, 0.2, 0.2]), ValueError, r"mixture_weights must sum to 1"),
    (dict(mixture_weights="learnt"), ValueError, r"mixture_weights must be None \(uniform\), 'learned' or a sequence"),
    (dict(mixture_weight_floor=0.1), ValueError, r"mixture_weight_floor=0.1 needs mixture_weights='learned'"),
    (dict(mixture_weights="learned", mixture_weight_floor=0.34), ValueError, r"mixture_weight_floor must be .*\[0, 0.3333\)"),
    (dict(mixture_weights="learned", mixture_weight_floor=-0.01), ValueError, r"mixture_weight_floor must be None or a float"),
    (dict(mixture_weights="learned", mixture_weight_floor="0.1"), TypeError, r"mixture_weight_floor must be None or a float"),
    (
        dict(mixture_weights="learned", component_sampling="sample"),
        ValueError,
        r"component_sampling='sample' is not supported with mixture_weights='learned'",
    ),
    (dict(entropy_estimator="shannon"), ValueError, r"entropy_estimator must be one of .*'mixed_marginal'.*'pairwise_kl'"),
    (dict(component_schedule="never"), ValueError, r"component_schedule must be 'step', 'episode' or an int >= 1"),
    (dict(component_schedule=0), ValueError, r"component_schedule must be 'step', 'episode' or an int >= 1"),
    (dict(critic_data="mine"), ValueError, r"critic_data must be one of .*'shared'.*'bootstrap'.*'own'"),
    (dict(deterministic_component="max"), ValueError, r"deterministic_component must be 'mode', 'best_q' or a component"),
    (dict(deterministic_component=3), ValueError, r"deterministic_component must be .* index in \[0, 3\)"),
    (dict(deterministic_component=-1), ValueError, r"deterministic_component must be .* index in \[0, 3\)"),
    (dict(component_sampling="one"), ValueError, r"component_sampling must be one of .*'all'.*'sample'"),
    (dict(matmul_precision="fp16"), ValueError, r"matmul_precision must be one of .*'fp32'.*'bf16'"),
    (dict(bootstrap_mask_prob=0.0), ValueError, r"bootstrap_mask_prob must be a float in \(0, 1\]"),
    (dict(bootstrap_mask_prob=1.5), ValueError, r"bootstrap_mask_prob must be a float in \(0, 1\]"),
    (dict(critic_data="bootstrap", n_steps=3), ValueError, r"critic_data='bootstrap' supports only n_steps=1"),
    (dict(ent_coef="automatic"), ValueError, r"ent_coef must be 'auto'"),
    (dict(ent_coef=-0.1), ValueError, r"ent_coef must be 'auto'"),
    (dict(policy_kwargs=dict(n_components=2)), ValueError, r"pass n_components to .* directly"),
]


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("kwargs, error, message", BAD_ARGUMENTS)
def test_bad_arguments_fail_at_construction(algo, kwargs, error, message):
    with pytest.raises(error, match=message):
        algo("MlpPolicy", "Pendulum-v1", **kwargs)


def test_numpy_int_n_components_is_accepted():
    # Values from a sweep or an Optuna trial are often numpy ints; they are stored as plain ints
    model = SACM("MlpPolicy", "Pendulum-v1", n_components=np.int64(2), **SMALL)
    assert type(model.n_components) is int and type(model.policy.n_components) is int
    assert model.log_ent_coef.shape == (2,)


@pytest.mark.parametrize("algo", ALGOS)
def test_discrete_action_space_is_refused(algo):
    with pytest.raises(ValueError, match=r"continuous \(gymnasium.spaces.Box\) action space, got Discrete"):
        algo("MlpPolicy", "CartPole-v1")


@pytest.mark.parametrize("critic_data", ["bootstrap", "own"])
def test_head_masks_refused_with_her(critic_data):
    with pytest.raises(ValueError, match=rf"critic_data='{critic_data}' .*HerReplayBuffer is only supported with critic_data"):
        SACM(
            "MultiInputPolicy",
            BitFlippingEnv(n_bits=4, continuous=True, max_steps=4),
            replay_buffer_class=HerReplayBuffer,
            critic_data=critic_data,
        )


# --- NaN -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", ALGOS)
def test_nan_reward_stops_training(algo):
    model = algo("MlpPolicy", NaNRewardAfter(pendulum(), steps=10), seed=0, **SMALL)
    with pytest.raises(RuntimeError, match=r"the critic loss is nan \(NaN or inf\); training stopped"):
        model.learn(100)
    assert model.num_timesteps == 21  # the first update already sees the NaN rewards
    # ... before the update: the networks stay finite
    assert all(th.isfinite(p).all() for p in model.policy.parameters())


@pytest.mark.parametrize(
    "network, ent_coef, loss",
    [("critic", "auto", "critic loss"), ("actor", "auto", "entropy coefficient loss"), ("actor", 0.1, "critic loss")],
)
def test_nan_weights_stop_training(network, ent_coef, loss):
    model = SACM("MlpPolicy", pendulum(), ent_coef=ent_coef, seed=0, **SMALL)
    with th.no_grad():
        for param in getattr(model, network).parameters():
            param.fill_(math.nan)
    with pytest.raises(RuntimeError, match=rf"the {loss} is nan"):
        model.learn(40)


# --- Acting: component schedules and deterministic components ------------------------------------------------------


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
        means, log_stds = model.actor.mixture_params(obs_tensor)
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


# --- The optimiser default ------------------------------------------------------------------------------------------


def test_fused_adam_is_the_default_where_torch_has_it():
    model = SACM("MlpPolicy", pendulum(), **SMALL)
    assert model.actor.optimizer.defaults["fused"] is True and model.critic.optimizer.defaults["fused"] is True


def test_without_a_fused_cpu_adam_the_policy_uses_the_plain_one(monkeypatch):
    # torch < 2.4 (setup.cfg admits 2.3) has no fused Adam for CPU tensors: its constructor refused them like this
    from sb3_mixture.sacm import policies

    adam_init = th.optim.Adam.__init__

    def old_torch_adam_init(self, params, *args, fused=None, **kwargs):
        params = list(params)
        if fused and any(param.device.type == "cpu" for param in params):
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported devices")
        adam_init(self, params, *args, fused=fused, **kwargs)

    monkeypatch.setattr(th.optim.Adam, "__init__", old_torch_adam_init)
    policies.fused_adam_supported.cache_clear()
    try:
        model = SACM("MlpPolicy", pendulum(), **SMALL)
        assert not model.actor.optimizer.defaults["fused"] and not model.critic.optimizer.defaults["fused"]
        model.learn(30)  # trains, with the plain Adam
        assert model._n_updates > 0
        # An explicit request is the user's: passed through, and the old torch's error is theirs
        with pytest.raises(RuntimeError, match="fused=True"):
            SACM("MlpPolicy", pendulum(), policy_kwargs=dict(net_arch=[16], optimizer_kwargs=dict(fused=True)))
    finally:
        monkeypatch.undo()
        policies.fused_adam_supported.cache_clear()
