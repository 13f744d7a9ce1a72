"""
gSDE for mixtures (docs/algorithm.md section 9): one log-std matrix and one exploration matrix per component.

The density is checked as the other densities are (the identity E[1{a in box} / pi(a)] = volume, torch.distributions),
the sampler against the variance formula, a one-component mixture against SB3's own SAC with gSDE, and the
drop-in uses of gSDE that SB3's SAC supports (sde_sample_freq, use_sde_at_warmup, full_std, use_expln, VecEnvs,
save/load, reset_noise, the zoo).
"""

import math

import numpy as np
import pytest
import torch as th
import yaml
from conftest import ALGOS, pendulum, pendulum_vec_env, run_python
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure
from torch.distributions import Categorical, MixtureSameFamily, Normal

from sb3_mixture import SACM


def small() -> dict:
    return dict(policy_kwargs=dict(net_arch=[16, 16], log_std_init=-2), learning_starts=30, batch_size=32, buffer_size=1_000)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def gsde_actor(seed: int, full_std: bool = True, use_expln: bool = False, mixture_weights=None):
    th.manual_seed(seed)
    kwargs = dict(net_arch=[8], log_std_init=-0.5, full_std=full_std, use_expln=use_expln)
    model = SACM(
        "MlpPolicy", "Pendulum-v1", n_components=3, use_sde=True, mixture_weights=mixture_weights, policy_kwargs=kwargs
    )
    actor = model.actor
    generator = th.Generator().manual_seed(seed)
    with th.no_grad():
        actor.mu.bias.copy_(th.rand(3, generator=generator) * 2 - 1)
        actor.log_std.add_(th.randn(actor.log_std.shape, generator=generator) * 0.3)
        if actor.gate is not None:
            actor.gate.bias.copy_(th.randn(3, generator=generator))
    return actor, th.randn(1, 3, generator=generator)


def latent_and_variance(actor, state: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    """z(s) and sigma_i(s)^2 written out: sum over latent features k of z_k^2 std_{i,k}^2, with SB3's epsilon."""
    with th.no_grad():
        latent = actor.latent_pi(actor.extract_features(state, actor.features_extractor))[0]
        log_std = actor.log_std
        if actor.use_expln:
            std = th.where(log_std <= 0, th.exp(log_std), th.log1p(log_std.clamp(min=0) + 1e-6) + 1.0)
        else:
            std = th.exp(log_std)
        std = std.expand(-1, -1, 1)  # Pendulum: one action dimension (full_std or not)
        variance = th.stack([sum(latent[k] ** 2 * std[i, k, 0] ** 2 for k in range(len(latent))) for i in range(3)])
    return latent, variance + 1e-6


@pytest.mark.parametrize("seed, full_std, use_expln, weights", [(0, True, False, None), (1, False, True, "learned")])
def test_gsde_density_is_a_true_density(seed, full_std, use_expln, weights):
    actor, state = gsde_actor(seed, full_std, use_expln, weights)
    n_samples = 200_000
    actor.reset_noise(n_samples)  # one exploration matrix per row: independent draws
    with th.no_grad():
        actions, log_prob = actor.action_log_prob(state.expand(n_samples, -1))
        log_weights = actor.mixture_params(state).log_weights[0]
        means = actor.mixture_params(state)[0][0, :, 0]
    low, high = -0.5, 0.5
    inside = ((actions[:, 0] > low) & (actions[:, 0] < high)).double()
    ratio = inside * th.exp(-log_prob.double())
    standard_error = ratio.std().item() / math.sqrt(n_samples)
    assert abs(ratio.mean().item() - (high - low)) < 4 * standard_error + 1e-4
    # The density is the mixture of Normal(mu_i, sigma_i(s)^2) before the squash, from torch.distributions
    _, variance = latent_and_variance(actor, state)
    mixture = MixtureSameFamily(Categorical(logits=log_weights), Normal(means, variance.sqrt()))
    first = actions[:2000, 0]
    some = first.abs() < 0.99
    expected = mixture.log_prob(th.atanh(first[some])) - th.log(1 - first[some] ** 2 + 1e-6)
    assert th.allclose(log_prob[:2000][some], expected, atol=2e-3)


def test_gsde_noise_has_the_stated_variance():
    actor, state = gsde_actor(2)
    n_samples = 100_000
    actor.reset_noise(n_samples)
    latent, variance = latent_and_variance(actor, state)
    with th.no_grad():
        noise = actor.exploration_noise(latent.expand(n_samples, -1))[:, :, 0]  # (n, N)
    # Var of a sample variance of n normals: 2 sigma^4 / n
    tolerance = 5 * variance * math.sqrt(2 / n_samples)
    assert (noise.var(dim=0) - variance).abs().le(tolerance).all(), (noise.var(dim=0), variance)
    assert noise.mean(dim=0).abs().le(5 * (variance / n_samples).sqrt()).all()
    # One batch matrix (the train-time case): the same theta for every row, so rows of one state agree
    actor.reset_noise()
    with th.no_grad():
        same = actor.exploration_noise(latent.expand(5, -1))
    assert th.allclose(same, same[:1].expand_as(same))


@pytest.mark.parametrize("ent_coef", ["auto", 0.2])
def test_one_component_with_gsde_trains_as_sb3_sac(ent_coef):
    kwargs = dict(use_sde=True, ent_coef=ent_coef, seed=1, **small())
    sac = SAC("MlpPolicy", pendulum(30), **kwargs)
    sac.learn(60)
    mixture = SACM.from_sac(sac, n_components=1, copy_replay_buffer=True)
    assert mixture.use_sde and mixture.actor.log_std.shape == (1, *sac.actor.log_std.shape)
    sac.set_logger(configure(None, []))
    mixture.set_logger(configure(None, []))
    for step in range(3):
        th.manual_seed(20 + step)
        np.random.seed(20 + step)
        sac.train(gradient_steps=1, batch_size=32)
        th.manual_seed(20 + step)
        np.random.seed(20 + step)
        mixture.train(gradient_steps=1, batch_size=32)
        for key in ["train/actor_loss", "train/critic_loss"] + (["train/ent_coef_loss"] if ent_coef == "auto" else []):
            expected = sac.logger.name_to_value[key]
            assert mixture.logger.name_to_value[key] == pytest.approx(expected, rel=1e-4, abs=1e-5), key
    assert th.allclose(mixture.actor.log_std[0], sac.actor.log_std, atol=1e-5)
    assert th.allclose(mixture.actor.mu.weight, sac.actor.mu[0].weight, atol=1e-5)
    # The gSDE stds and the exploration matrices have SAC's shapes, one per component
    assert mixture.actor.get_std().shape == (1, *sac.actor.get_std().shape)


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("use_expln", [False, True])
def test_learn_with_gsde_like_sb3s_sac_tests(algo, use_expln):
    # As SB3's own gSDE test for SAC: Pendulum, log_std_init=-2, a [64] net, 255 steps
    policy_kwargs = dict(log_std_init=-2, use_expln=use_expln, net_arch=[64])
    model = algo("MlpPolicy", "Pendulum-v1", use_sde=True, policy_kwargs=policy_kwargs)
    model.learn(total_timesteps=255)
    assert model.actor.log_std.shape == (3, 64, 1)
    assert all(th.isfinite(p).all() for p in model.policy.parameters())


class RecordNoise(BaseCallback):
    def __init__(self):
        super().__init__()
        self.matrices: list[th.Tensor] = []

    def _on_step(self) -> bool:
        self.matrices.append(self.model.actor.exploration_matrices.detach().clone())
        return True


def test_sde_sample_freq_full_std_and_vec_env():
    env = pendulum_vec_env(2, max_episode_steps=30, seed=0)
    kwargs = small()
    kwargs["policy_kwargs"]["full_std"] = False
    model = SACM("MlpPolicy", env, use_sde=True, sde_sample_freq=4, train_freq=8, **kwargs)
    callback = RecordNoise()
    model.learn(48, callback=callback)  # 24 steps of 2 envs
    matrices = callback.matrices
    assert matrices[0].shape == (2, 3, 16, 1)
    changed = [not th.equal(a, b) for a, b in zip(matrices[:-1], matrices[1:], strict=True)]
    # A new draw every 4 steps (and at each rollout start, every train_freq = 8 steps): steps 4, 8, 12, ...
    assert changed == [(step + 1) % 4 == 0 for step in range(len(changed))]
    assert not th.equal(matrices[0][0], matrices[0][1])  # one matrix per env
    assert model.actor.sde_std().shape == (3, 16, 1)


def test_use_sde_at_warmup_acts_with_the_policy():
    def warm_up_actions(use_sde_at_warmup: bool) -> np.ndarray:
        kwargs = dict(small(), learning_starts=200)
        kwargs["policy_kwargs"]["log_std_init"] = -4
        model = SACM("MlpPolicy", pendulum(30), use_sde=True, use_sde_at_warmup=use_sde_at_warmup, seed=0, **kwargs)
        model.learn(100)
        return model.replay_buffer.actions[:100, 0, 0]

    assert warm_up_actions(False).std() > 0.4  # uniform on [-1, 1]
    assert warm_up_actions(True).std() < 0.3  # the policy's actions, tiny exploration


@pytest.mark.parametrize("algo", ALGOS)
def test_save_load_and_reset_noise(algo, tmp_path):
    model = algo("MlpPolicy", pendulum(30), use_sde=True, sde_sample_freq=5, seed=0, **small())
    model.learn(60)
    model.save(tmp_path / "model.zip")
    loaded = algo.load(tmp_path / "model.zip", env=pendulum(30))
    assert loaded.use_sde and loaded.sde_sample_freq == 5 and loaded.actor.use_sde
    assert th.equal(loaded.actor.log_std, model.actor.log_std)
    observations = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    expected = model.predict(observations, deterministic=True)[0]
    np.testing.assert_array_equal(loaded.predict(observations, deterministic=True)[0], expected)
    # The policy's reset_noise draws new matrices: same state, same component, new action
    with loaded.policy.use_component(0):
        before = loaded.predict(observations[:1])[0]
        assert np.array_equal(before, loaded.predict(observations[:1])[0])  # same matrix, same state: same action
        loaded.policy.reset_noise(1)
        assert not np.array_equal(before, loaded.predict(observations[:1])[0])
    loaded.learn(30, reset_num_timesteps=False)
    with pytest.raises(ValueError, match="reset_noise\\(\\) is only available with use_sde=True"):
        SACM("MlpPolicy", pendulum(30), **small()).actor.reset_noise()


@pytest.mark.slow
def test_zoo_with_use_sde_in_a_hyperparameter_file(tmp_path):
    conf = tmp_path / "sde.yml"
    conf.write_text(
        yaml.safe_dump(
            {
                "Pendulum-v1": {
                    "n_timesteps": 300, "policy": "MlpPolicy", "learning_starts": 100, "use_sde": True,
                    "sde_sample_freq": 8, "n_components": 2, "policy_kwargs": "dict(log_std_init=-2, net_arch=[16])",
                }
            }
        )
    )  # fmt: skip
    run_python(
        "-m", "sb3_mixture.train", "--algo", "sacm", "--env", "Pendulum-v1",
        "-conf", str(conf), "-f", str(tmp_path / "logs"), "--num-threads", "1", "--seed", "0",
        cwd=tmp_path, nice=True,
    )  # fmt: skip
    model = SACM.load(tmp_path / "logs" / "sacm" / "Pendulum-v1_1" / "Pendulum-v1.zip", buffer_size=1)
    assert model.use_sde and model.sde_sample_freq == 8 and model.actor.log_std.shape == (2, 16, 1)
