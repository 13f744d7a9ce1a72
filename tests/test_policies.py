"""SACM and S2ACM are SAC with SAC's policies: the Mlp, Cnn and MultiInput policies and HER learn and predict."""

import numpy as np
import pytest
import torch as th
from conftest import ALGOS, SMALL, TinyImageEnv, assert_valid_actions, pendulum, sample_observations
from gymnasium import spaces
from stable_baselines3 import SAC, HerReplayBuffer
from stable_baselines3.common.envs import BitFlippingEnv
from stable_baselines3.common.torch_layers import CombinedExtractor, NatureCNN
from stable_baselines3.sac.policies import SACPolicy

from sb3_mixture import SACM
from sb3_mixture.buffers import MixtureDictReplayBuffer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


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


@pytest.mark.parametrize("critic_data", ["shared", "own"])
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


# --- The optimiser default ------------------------------------------------------------------------------------------


def test_fused_adam_is_the_default_where_torch_has_it():
    model = SACM("MlpPolicy", pendulum(), **SMALL)
    assert model.actor.optimizer.defaults["fused"] is True and model.critic.optimizer.defaults["fused"] is True


def test_without_a_fused_cpu_adam_the_policy_uses_the_plain_one(monkeypatch):
    # torch < 2.4 (setup.cfg admits 2.3) has no fused Adam for CPU tensors: its constructor refused them like this
    from sb3_mixture import torch_layers

    adam_init = th.optim.Adam.__init__

    def old_torch_adam_init(self, params, *args, fused=None, **kwargs):
        params = list(params)
        if fused and any(param.device.type == "cpu" for param in params):
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported devices")
        adam_init(self, params, *args, fused=fused, **kwargs)

    monkeypatch.setattr(th.optim.Adam, "__init__", old_torch_adam_init)
    torch_layers.fused_adam_supported.cache_clear()
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
        torch_layers.fused_adam_supported.cache_clear()
