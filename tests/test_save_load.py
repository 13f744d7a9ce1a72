"""Saving and loading: models with every setting, the replay buffer with its head masks, get/set_parameters, set_env."""

import numpy as np
import pytest
import torch as th
from conftest import ALGOS, SMALL, TinyImageEnv, pendulum, pendulum_vec_env, sample_observations

from sb3_mixture import SACM
from sb3_mixture.buffers import MixtureReplayBuffer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


NON_DEFAULT = dict(
    n_components=4,
    mixture_weights=[0.1, 0.2, 0.3, 0.4],
    entropy_estimator="pairwise_kl",
    critic_data="own",
    component_schedule="episode",
    deterministic_component=2,
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
            # NaN marks what has no value yet (e.g. a component without a recorded episode return)
            assert th.equal(left[key].isnan(), right[key].isnan()), key
            assert th.equal(left[key].nan_to_num(0.0), right[key].nan_to_num(0.0)), key
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
        assert getattr(loaded.policy.acting_options, name) == NON_DEFAULT[name], name
    assert loaded.actor.n_components == 4 and loaded.actor.mixture_weights == NON_DEFAULT["mixture_weights"]
    assert th.allclose(loaded.actor.log_mixture_weights.exp(), th.tensor(NON_DEFAULT["mixture_weights"]))
    assert isinstance(loaded.replay_buffer, MixtureReplayBuffer) and loaded.replay_buffer.n_components == 4
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


def test_replay_buffer_round_trip(tmp_path):
    kwargs = dict(SMALL, critic_data="own", n_components=3)
    model = SACM("MlpPolicy", pendulum(), seed=0, **kwargs)
    model.learn(60)
    masks = model.replay_buffer.head_masks[:60, 0]
    np.testing.assert_array_equal(masks.sum(axis=1), 1.0)
    assert 0 < masks.mean() < 1 and len(np.unique(masks, axis=0)) > 1
    model.save_replay_buffer(tmp_path / "buffer.pkl")

    other = SACM("MlpPolicy", pendulum(), seed=1, **kwargs)
    other.load_replay_buffer(tmp_path / "buffer.pkl")
    original, restored = model.replay_buffer, other.replay_buffer
    assert type(restored) is MixtureReplayBuffer
    assert (restored.pos, restored.full, restored.n_components) == (original.pos, original.full, 3)
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
    loaded.set_env(pendulum_vec_env(1))
    loaded.learn(30)
    assert loaded.num_timesteps == 30
