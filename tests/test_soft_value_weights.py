"""
Soft-value mixing weights (``mixture_weights="soft_value"``, docs/algorithm.md section 10).

w_i(s) = (1 - N eps) softmax(V(s) / alpha) + eps with V_i(s) = E_{a ~ pi_i}[min_k Qbar_{k,i}(s, a) - alpha_i log pi_i(a|s)],
head i of the target critic; head i's target follows component i; every component is trained at every state.

Checked against independent computations: the weights against a brute-force maximisation of sum_i w_i V_i + alpha H(w)
over the simplex, V_i against quadrature over a 1-D action, and one update against a plain reference written from
the docs with torch.distributions. The rest checks acting, save/load and bad input.
"""

import copy
import itertools
import math

import numpy as np
import pytest
import torch as th
from conftest import SMALL, fill_buffer, q_heads
from stable_baselines3.common.logger import configure
from torch.distributions import Independent, Normal

from sb3_mixture import S2ACM, SACM
from sb3_mixture.mixture import component_soft_values, soft_value_log_weights
from sb3_mixture.sacm.acting import soft_value_log_weights_at

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BATCH_SIZE = 32
NET_ARCH = [16, 16]


def _soft_value_model(n_components: int = 2, **kwargs) -> SACM:
    settings = dict(learning_starts=0, batch_size=BATCH_SIZE, policy_kwargs=dict(net_arch=NET_ARCH), seed=3)
    return SACM("MlpPolicy", "Pendulum-v1", n_components=n_components, mixture_weights="soft_value", **{**settings, **kwargs})


# --- The weights ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [0.3, 2.0])
def test_soft_value_weights_maximise_value_plus_weight_entropy(temperature):
    # Brute force over a grid on the 3-simplex: the maximiser of sum_i w_i V_i + alpha H(w)
    values = th.tensor([[0.4, -0.3, 1.1], [2.0, 2.0, -1.0]])
    step = 0.002
    grid = np.array([(a, b, 1 - a - b) for a, b in itertools.product(np.arange(step, 1, step), repeat=2) if a + b < 1 - 1e-9])
    for row in range(values.shape[0]):
        objective = grid @ values[row].numpy() - temperature * (grid * np.log(grid)).sum(axis=1)
        best = grid[np.argmax(objective)]
        weights = soft_value_log_weights(values[row : row + 1], temperature).exp()[0].numpy()
        assert np.allclose(weights, best, atol=2 * step)
        assert weights.sum() == pytest.approx(1.0, abs=1e-6)


def test_soft_value_weights_keep_the_floor():
    values = th.tensor([[50.0, 0.0, -50.0]])
    floor = 0.1
    weights = soft_value_log_weights(values, 0.5, floor).exp()[0]
    # The best component gets all but the floors; the others exactly the floor
    assert weights.tolist() == pytest.approx([1 - 2 * floor, floor, floor], abs=1e-6)


def test_component_soft_values_are_the_sample_mean():
    own_q = th.tensor([[[1.0, 3.0], [0.0, 2.0]]])  # (B=1, N=2, S=2)
    own_log_prob = th.tensor([[[-1.0, 0.0], [1.0, 1.0]]])
    alphas = th.tensor([0.5, 2.0])
    # V_0 = mean(1 + 0.5, 3 - 0) = 2.25; V_1 = mean(0 - 2, 2 - 2) = -1
    assert component_soft_values(own_q, own_log_prob, alphas).tolist() == [[2.25, -1.0]]


def test_soft_values_against_quadrature():
    """V_i(s) of the policy (Monte Carlo on many samples) against the integral over the 1-D pre-squash action."""
    model = _soft_value_model(ent_coef="auto_1.0", mixture_weight_floor=0.1)
    with th.no_grad():
        model.log_ent_coef.copy_(th.log(th.tensor([0.6, 1.4])))
        model.actor.mu.bias.copy_(th.tensor([-0.8, 0.9]))
    model._sync_acting_temperatures()
    policy, alphas = model.policy, th.tensor([0.6, 1.4])
    observations = th.as_tensor(np.random.default_rng(0).normal(size=(3, 3)), dtype=th.float32)
    with th.no_grad():
        means, log_stds = model.actor.mixture_params(observations)[:2]
    u = th.linspace(-9, 9, 20001)
    du = float(u[1] - u[0])
    values = th.zeros(3, 2)
    for state in range(3):
        for i in range(2):
            component = Normal(means[state, i, 0], log_stds[state, i, 0].exp())
            density = component.log_prob(u).exp()
            log_pi = component.log_prob(u) - th.log(1 - th.tanh(u) ** 2 + 1e-6)
            with th.no_grad():
                obs = observations[state : state + 1].expand(len(u), -1)
                q = q_heads(policy.critic_target, obs, th.tanh(u).view(-1, 1))[:, :, i].min(dim=0).values
            values[state, i] = ((q - alphas[i] * log_pi) * density).sum() * du
    expected = 0.8 * th.softmax(values / alphas.mean(), dim=-1) + 0.1
    th.manual_seed(0)
    noise = th.randn(3, 2, 40_000, 1)
    pre_squash = means.unsqueeze(2) + log_stds.exp().unsqueeze(2) * noise
    weights = soft_value_log_weights_at(
        policy.critic_target, observations, means, log_stds, pre_squash, alphas, model.mixture_weight_floor
    ).exp()
    assert th.allclose(weights, expected, atol=5e-3)
    assert not th.allclose(expected, th.full_like(expected, 0.5), atol=0.05)  # the check is not about uniform weights


# --- One update against a plain reference --------------------------------------------------------------------------


def _log_prob(mean: th.Tensor, log_std: th.Tensor, u: th.Tensor) -> th.Tensor:
    return Independent(Normal(mean, log_std.exp()), 1).log_prob(u) - th.log(1 - th.tanh(u) ** 2 + 1e-6).sum(-1)


def _reference(model, actor, replay_data, noise_now, noise_next):
    """Losses of docs/algorithm.md section 10 (mixed marginal estimator), loops over components, on the given noise."""
    n, floor, gamma = model.n_components, model.mixture_weight_floor, model.gamma
    obs, next_obs = replay_data.observations, replay_data.next_observations
    alphas = model.log_ent_coef.detach().exp()
    means, log_stds = actor.mixture_params(obs)[:2]
    us = [means[:, i] + log_stds[:, i].exp() * noise_now[:, i] for i in range(n)]
    own = th.stack([_log_prob(means[:, i], log_stds[:, i], us[i]) for i in range(n)], dim=1)
    with th.no_grad():
        values = th.stack(
            [
                q_heads(model.critic_target, obs, th.tanh(us[i]))[:, :, i].min(0).values - alphas[i] * own[:, i]
                for i in range(n)
            ],
            dim=1,
        )
        boltzmann = th.exp(values / alphas.mean())
        weights = (1 - n * floor) * boltzmann / boltzmann.sum(dim=1, keepdim=True) + floor
        next_means, next_log_stds = actor.mixture_params(next_obs)[:2]
        targets = []
        for i in range(n):
            u_next = next_means[:, i] + next_log_stds[:, i].exp() * noise_next[:, i]
            next_q = q_heads(model.critic_target, next_obs, th.tanh(u_next))[:, :, i].min(0).values
            next_value = next_q - alphas[i] * _log_prob(next_means[:, i], next_log_stds[:, i], u_next)
            targets.append(replay_data.rewards[:, 0] + (1 - replay_data.dones[:, 0]) * gamma * next_value)
    ent_loss = sum(-(model.log_ent_coef[i] * (own[:, i] + model.target_entropy).detach()).mean() for i in range(n))
    q_now = q_heads(model.critic, obs, replay_data.actions)
    critic_loss = 0.5 * sum(((q_now[k, :, i] - targets[i]) ** 2).mean() for k in range(q_now.shape[0]) for i in range(n))

    def actor_loss(critic):
        loss = 0
        for i in range(n):
            density = sum(weights[:, j] * _log_prob(means[:, j], log_stds[:, j], us[i]).exp() for j in range(n))
            q_pi = q_heads(critic, obs, th.tanh(us[i]))[:, :, i].min(0).values
            loss = loss + (alphas[i] * th.log(density) - q_pi).mean() / n
        return loss

    return critic_loss, ent_loss, actor_loss


def test_update_matches_reference():
    model = _soft_value_model(n_components=3, ent_coef="auto_0.3", mixture_weight_floor=0.05)
    with th.no_grad():
        model.log_ent_coef.copy_(th.log(th.tensor([0.1, 0.3, 0.7])))
        model.actor.mu.bias.copy_(th.tensor([-0.5, 0.0, 0.6]))
    fill_buffer([model])
    np.random.seed(5)
    replay_data = model.replay_buffer.sample(BATCH_SIZE)
    th.manual_seed(7)
    noise_now, noise_next = th.randn(BATCH_SIZE, 3, 1), th.randn(BATCH_SIZE, 3, 1)
    actor_before = copy.deepcopy(model.actor)
    critic_loss, ent_loss, actor_loss_on = _reference(model, actor_before, replay_data, noise_now, noise_next)
    ref_critic_grads = th.autograd.grad(critic_loss, list(model.critic.parameters()))

    captured = {}

    def capture(name, params):
        def hook(optimizer, args, kwargs):
            captured[name] = [p.grad.clone() for p in params]

        return hook

    model.actor.optimizer.register_step_pre_hook(capture("actor", list(model.actor.parameters())))
    model.critic.optimizer.register_step_pre_hook(capture("critic", list(model.critic.parameters())))
    model.set_logger(configure(None, []))
    np.random.seed(5)
    th.manual_seed(7)
    model.train(gradient_steps=1, batch_size=BATCH_SIZE)
    logs = model.logger.name_to_value

    # The actor is judged by the critic after its step (as in SAC)
    actor_loss = actor_loss_on(model.critic)
    ref_actor_grads = th.autograd.grad(actor_loss, list(actor_before.parameters()))
    assert logs["train/critic_loss"] == pytest.approx(critic_loss.item(), rel=1e-4, abs=1e-5)
    assert logs["train/ent_coef_loss"] == pytest.approx(ent_loss.item(), rel=1e-4, abs=1e-5)
    assert logs["train/actor_loss"] == pytest.approx(actor_loss.item(), rel=1e-4, abs=1e-5)
    for got, ref in zip(captured["critic"], ref_critic_grads, strict=True):
        assert th.allclose(got, ref, rtol=1e-3, atol=1e-5)
    for got, ref in zip(captured["actor"], ref_actor_grads, strict=True):
        assert th.allclose(got, ref, rtol=1e-3, atol=1e-5)
    # The policy acts with the temperatures the update just tuned
    assert th.allclose(model.policy.component_choice.component_temperatures, model.log_ent_coef.detach().exp())


# --- Acting, save/load, bad input ----------------------------------------------------------------------------------


def _favour_component(model: SACM, component: int, margin: float = 100.0) -> None:
    """Make head ``component`` of the target critic rate everything ``margin`` higher."""
    with th.no_grad():
        model.critic_target.q_ensemble.biases[-1][:, 0, component] += margin


def test_acting_follows_the_soft_value_weights():
    model = SACM("MlpPolicy", "Pendulum-v1", n_components=2, mixture_weights="soft_value", seed=0, **SMALL)
    _favour_component(model, 1)
    observation = model.env.reset()
    weights = model.policy.mixture_log_weights(th.as_tensor(observation)).exp()[0]
    assert weights.tolist() == pytest.approx([0.05, 0.95], abs=1e-4)  # default floor 0.05
    drawn = []
    for _ in range(2000):
        model.predict(observation)
        drawn.append(int(model.policy.acting_components[0]))
    assert np.mean(drawn) == pytest.approx(0.95, abs=0.02)
    # The deterministic mode uses the same weights: the favoured component's mean
    with th.no_grad():
        means, _ = model.actor.mixture_params(th.as_tensor(observation))[:2]
    action, _ = model.predict(observation, deterministic=True)
    low, high = model.action_space.low, model.action_space.high
    assert np.allclose(action, low + (th.tanh(means[0, 1]).numpy() + 1) * (high - low) / 2, atol=1e-5)
    # ... and so does the policy's own forward, which an exported policy runs (docs/export.md)
    with th.no_grad():
        exported = model.policy(th.as_tensor(observation), deterministic=True)
    assert th.allclose(exported, th.tanh(means[:, 1]), atol=1e-6)


def test_training_runs_and_logs_the_weights():
    model = SACM("MlpPolicy", "Pendulum-v1", n_components=2, mixture_weights="soft_value", seed=0, **SMALL)
    model.learn(200)
    logs = model.logger.name_to_value
    weights = [logs["train/mixture_weight_0"], logs["train/mixture_weight_1"]]
    assert sum(weights) == pytest.approx(1.0, abs=1e-5) and min(weights) >= 0.05 - 1e-6
    assert 0.0 < logs["train/weight_entropy"] <= math.log(2) + 1e-6


def test_save_load_restores_the_weights(tmp_path):
    model = SACM("MlpPolicy", "Pendulum-v1", n_components=2, mixture_weights="soft_value", seed=0, **SMALL)
    model.learn(100)
    model.save(tmp_path / "model")
    loaded = SACM.load(tmp_path / "model")
    observations = th.as_tensor(np.random.default_rng(1).normal(size=(5, 3)), dtype=th.float32)
    th.manual_seed(3)
    before = model.policy.mixture_log_weights(observations)
    th.manual_seed(3)
    after = loaded.policy.mixture_log_weights(observations)
    assert th.allclose(before, after)
    assert th.allclose(loaded.policy.component_choice.component_temperatures, model.log_ent_coef.detach().exp())


def test_bad_input_is_refused_at_construction():
    with pytest.raises(ValueError, match="component_sampling='sample' is not supported with mixture_weights='soft_value'"):
        SACM("MlpPolicy", "Pendulum-v1", n_components=2, mixture_weights="soft_value", component_sampling="sample")
    with pytest.raises(ValueError, match="only available with SACM"):
        S2ACM("MlpPolicy", "Pendulum-v1", n_components=2, mixture_weights="soft_value")
    with pytest.raises(ValueError, match=r"mixture_weight_floor must be None or a float in \[0, 1/n_components\)"):
        SACM("MlpPolicy", "Pendulum-v1", n_components=2, mixture_weights="soft_value", mixture_weight_floor=0.5)
    with pytest.raises(ValueError, match="'soft_value'"):
        SACM("MlpPolicy", "Pendulum-v1", n_components=2, mixture_weights="soft_values")
