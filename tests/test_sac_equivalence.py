"""
SACM's update against independent computations of the same update.

- With ``n_components=1`` SACM must compute SB3's SAC losses and gradients for the same weights, batch and noise.
- For N > 1, a plain reference written here from docs/algorithm.md sections 3-5 (loops over components and critics,
  ``torch.distributions`` densities, no code shared with the package's training path) must give the
  same losses and gradients as SACM.train for every estimator, for SACM and S2ACM.
"""

import copy

import numpy as np
import pytest
import torch as th
from conftest import ALGOS, fill_buffer, q_heads
from stable_baselines3 import SAC
from stable_baselines3.common.logger import configure
from torch.distributions import Independent, Normal

from sb3_mixture import S2ACM, SACM
from sb3_mixture.conversion import copy_parameters, critic_pairs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BATCH_SIZE = 32
NET_ARCH = [16, 16]


def _capture_gradients_at_step(optimizer, params, store: dict, name: str) -> None:
    """Record the gradients an optimiser is about to apply (later losses may add to ``.grad`` after its step)."""

    def hook(optimizer, args, kwargs):
        store[name] = [p.grad.clone() for p in params]

    optimizer.register_step_pre_hook(hook)


def _train_capturing_gradients(model) -> tuple[dict, dict]:
    """
    One train() step with the seeds the reference tests draw their batch and noise with (NumPy 5, then torch 7):
    its logged values, and the gradients train() computes, captured just before each optimiser applies them.
    """
    captured = {}
    _capture_gradients_at_step(model.actor.optimizer, list(model.actor.parameters()), captured, "actor")
    _capture_gradients_at_step(model.critic.optimizer, list(model.critic.parameters()), captured, "critic")
    _capture_gradients_at_step(model.ent_coef_optimizer, [model.log_ent_coef], captured, "ent")
    model.set_logger(configure(None, []))
    np.random.seed(5)
    th.manual_seed(7)
    model.train(gradient_steps=1, batch_size=BATCH_SIZE)
    return model.logger.name_to_value, captured


def _assert_same_update(logs: dict, captured: dict, losses: tuple, gradients: tuple) -> None:
    """train()'s logged losses and captured gradients against the reference's: actor, critic and temperature."""
    actor_loss, critic_loss, ent_loss = losses
    ref_actor_grads, ref_critic_grads, ref_ent_grad = gradients
    assert logs["train/actor_loss"] == pytest.approx(actor_loss.item(), rel=1e-4, abs=1e-5)
    assert logs["train/critic_loss"] == pytest.approx(critic_loss.item(), rel=1e-4, abs=1e-5)
    assert logs["train/ent_coef_loss"] == pytest.approx(ent_loss.item(), rel=1e-4, abs=1e-5)
    assert th.allclose(captured["ent"][0], ref_ent_grad, rtol=1e-4, atol=1e-6)
    for got, ref in zip(captured["critic"], ref_critic_grads, strict=True):
        assert th.allclose(got, ref, rtol=1e-3, atol=1e-5)
    for got, ref in zip(captured["actor"], ref_actor_grads, strict=True):
        assert th.allclose(got, ref, rtol=1e-3, atol=1e-5)


def _train_one_step(model, seed: int) -> dict:
    model.set_logger(configure(None, []))
    th.manual_seed(seed)
    np.random.seed(seed)
    model.train(gradient_steps=1, batch_size=BATCH_SIZE)
    return dict(model.logger.name_to_value)


@pytest.mark.parametrize("ent_coef", ["auto", 0.2])
@pytest.mark.parametrize("entropy_estimator", ["mixed_marginal", "pairwise_kl", "marginal", "pairwise_bhattacharyya"])
@pytest.mark.parametrize("component_sampling", ["all", "sample"])
@pytest.mark.parametrize("algo", [SACM, S2ACM])
@pytest.mark.parametrize("mixture_weights", [None, "learned", "soft_value"])
def test_one_component_matches_sac(algo, ent_coef, entropy_estimator, component_sampling, mixture_weights):
    if mixture_weights == "soft_value" and (algo is S2ACM or component_sampling == "sample"):
        pytest.skip("soft-value weights are SACM's, with component_sampling='all' (refused otherwise)")
    # S2ACM too: with one component its partial-sum target is the full entropy (docs/algorithm.md section 3)
    kwargs = dict(learning_starts=0, batch_size=BATCH_SIZE, ent_coef=ent_coef, policy_kwargs=dict(net_arch=NET_ARCH), seed=1)
    sac = SAC("MlpPolicy", "Pendulum-v1", **kwargs)
    sacm = algo(
        "MlpPolicy",
        "Pendulum-v1",
        n_components=1,
        entropy_estimator=entropy_estimator,
        component_sampling=component_sampling,
        mixture_weights=mixture_weights,
        **kwargs,
    )
    # A learned one-component mixture has a gating head too (one logit, so w = 1 whatever it outputs)
    missing, unexpected = sacm.actor.load_state_dict(sac.actor.state_dict(), strict=False)
    assert not unexpected and missing == {
        "learned": ["gate.weight", "gate.bias"],
    }.get(mixture_weights, [])
    if mixture_weights == "learned":
        th.nn.init.normal_(sacm.actor.gate.weight)
        th.nn.init.normal_(sacm.actor.gate.bias)
    # SAC's Q-networks into the ensemble members, as SACM.from_sac copies them
    for sac_critic, critic in ((sac.critic, sacm.critic), (sac.critic_target, sacm.critic_target)):
        copy_parameters(critic_pairs(sac_critic.q_networks, critic.q_ensemble, n_components=1))
    fill_buffer([sac, sacm])
    sac_grads, sacm_grads = {}, {}
    _capture_gradients_at_step(sac.critic.optimizer, list(sac.critic.parameters()), sac_grads, "critic")
    _capture_gradients_at_step(sacm.critic.optimizer, list(sacm.critic.parameters()), sacm_grads, "critic")

    for step in range(3):
        sac_logs = _train_one_step(sac, seed=10 + step)
        sacm_logs = _train_one_step(sacm, seed=10 + step)
        keys = ["train/actor_loss", "train/critic_loss", "train/ent_coef"]
        if ent_coef == "auto":
            keys.append("train/ent_coef_loss")
        for key in keys:
            assert sacm_logs[key] == pytest.approx(sac_logs[key], rel=1e-5, abs=1e-6), key

        # Gradients of the last update (Adam's first steps hide gradient scale, so compare gradients directly)
        sacm_actor_params = dict(sacm.actor.named_parameters())
        for name, sac_param in sac.actor.named_parameters():
            assert th.allclose(sac_param.grad, sacm_actor_params.pop(name).grad, rtol=1e-4, atol=1e-6), name
        # ... and the gate, if any, gets no gradient
        assert all(param.grad is None or not param.grad.any() for param in sacm_actor_params.values())
        assert sacm_actor_params.keys() == ({"gate.weight", "gate.bias"} if mixture_weights == "learned" else set())
        # SAC's critic parameters are [qf0 w0, b0, w1, b1, ..., qf1 ...]; SACM's are [weights..., biases...] stacked
        n_layers = len(sacm.critic.q_ensemble.weights)
        sacm_weight_grads, sacm_bias_grads = sacm_grads["critic"][:n_layers], sacm_grads["critic"][n_layers:]
        for member in range(sac.critic.n_critics):
            member_grads = sac_grads["critic"][member * 2 * n_layers : (member + 1) * 2 * n_layers]
            for layer in range(n_layers):
                weight_grad, bias_grad = member_grads[2 * layer], member_grads[2 * layer + 1]
                assert th.allclose(weight_grad.T, sacm_weight_grads[layer][member], atol=1e-5)
                assert th.allclose(bias_grad, sacm_bias_grads[layer][member, 0], atol=1e-5)
        # Polyak-averaged targets stay equal
        for member, q_net in enumerate(sac.critic_target.q_networks):
            linears = [m for m in q_net if isinstance(m, th.nn.Linear)]
            for layer, linear in enumerate(linears):
                assert th.allclose(linear.weight.T, sacm.critic_target.q_ensemble.weights[layer][member], atol=1e-5)
        if ent_coef == "auto":
            assert th.allclose(sac.log_ent_coef, sacm.log_ent_coef, atol=1e-6)


# --- A plain reference implementation of one SACM/S2ACM update, written from docs/algorithm.md ------------------


def _squashed_component(mean: th.Tensor, log_std: th.Tensor):
    return Independent(Normal(mean, log_std.exp()), 1)


def _log_jacobian(u: th.Tensor) -> th.Tensor:
    return th.log(1 - th.tanh(u) ** 2 + 1e-6).sum(-1)


def _entropy_terms(model, means, log_stds, noise):
    """H_i of docs/algorithm.md section 2 for one sample per component, with log pi_i(a_i) and the pre-squash samples."""
    n, w, estimator = model.n_components, th.tensor(model.mixture_weights), model.entropy_estimator
    us = [means[:, i] + log_stds[:, i].exp() * noise[:, i] for i in range(n)]
    comps = [_squashed_component(means[:, j], log_stds[:, j]) for j in range(n)]
    own = th.stack([comps[i].log_prob(us[i]) - _log_jacobian(us[i]) for i in range(n)], dim=1)
    h = []
    for i in range(n):
        if estimator == "mixed_marginal":
            density = sum(w[j] * th.exp(comps[j].log_prob(us[i]) - _log_jacobian(us[i])) for j in range(n))
            h.append(-th.log(density))
        elif estimator == "marginal":
            h.append(-own[:, i])
        else:
            total = 0
            for j in range(n):
                mi, si, mj, sj = means[:, i], log_stds[:, i].exp(), means[:, j], log_stds[:, j].exp()
                if estimator == "pairwise_kl":
                    d = th.distributions.kl_divergence(comps[i], comps[j])
                else:
                    var = (si**2 + sj**2) / 2
                    d = ((mi - mj) ** 2 / var).sum(-1) / 8 + 0.5 * (
                        th.log(var).sum(-1) - 0.5 * (th.log(si**2).sum(-1) + th.log(sj**2).sum(-1))
                    )
                total = total + w[j] * th.exp(-d)
            h.append(-own[:, i] - th.log(total))
    return th.stack(h, dim=1), own, us


def _reference_critic_and_temperature_losses(model, replay_data, noise_now, noise_next, partial_sums: bool):
    """Critic loss (docs/algorithm.md section 3) and temperature loss (section 5) on the model's current weights."""
    n, w = model.n_components, th.tensor(model.mixture_weights)
    obs, next_obs = replay_data.observations, replay_data.next_observations
    means, log_stds = model.actor.mixture_params(obs)[:2]
    _, own_now, _ = _entropy_terms(model, means, log_stds, noise_now)
    ent_loss = sum(-(model.log_ent_coef[i] * (own_now[:, i] + model.target_entropy).detach()).mean() for i in range(n))

    alphas = model.log_ent_coef.detach().exp()
    with th.no_grad():
        next_means, next_log_stds = model.actor.mixture_params(next_obs)[:2]
        h_next, _, us_next = _entropy_terms(model, next_means, next_log_stds, noise_next)
        alpha_mix = (w * alphas).sum()
        targets = []
        for i in range(n):
            next_q = [q_heads(model.critic_target, next_obs, th.tanh(us_next[j])) for j in range(n)]
            v = sum(w[j] * next_q[j][:, :, i].min(0).values for j in range(n))
            last = i + 1 if partial_sums else n
            bonus = sum(w[j] * h_next[:, j] for j in range(last))
            targets.append(replay_data.rewards[:, 0] + (1 - replay_data.dones[:, 0]) * model.gamma * (v + alpha_mix * bonus))
        targets = th.stack(targets, dim=1)
    q_now = q_heads(model.critic, obs, replay_data.actions)
    n_critics = model.critic.n_critics
    critic_loss = 0.5 * sum(((q_now[k, :, i] - targets[:, i]) ** 2).mean() for k in range(n_critics) for i in range(n))
    return critic_loss, ent_loss


def _reference_actor_loss(model, actor, critic, alphas, observations, noise_now):
    """Actor loss, eqs. 11-12 / docs/algorithm.md section 4: sum_i w_i mean[alpha_i * (-H_i) - min_k Q_{k,i}(s, a_i)]."""
    w = th.tensor(model.mixture_weights)
    means, log_stds = actor.mixture_params(observations)[:2]
    h_now, _, us_now = _entropy_terms(model, means, log_stds, noise_now)
    actor_loss = 0
    for i in range(model.n_components):
        q_pi = q_heads(critic, observations, th.tanh(us_now[i]))[:, :, i].min(0).values
        actor_loss = actor_loss + w[i] * (alphas[i] * (-h_now[:, i]) - q_pi).mean()
    return actor_loss


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("entropy_estimator", ["mixed_marginal", "pairwise_kl", "marginal", "pairwise_bhattacharyya"])
def test_update_matches_reference(algo, entropy_estimator):
    model = algo(
        "MlpPolicy",
        "Pendulum-v1",
        n_components=3,
        mixture_weights=[0.5, 0.3, 0.2],
        entropy_estimator=entropy_estimator,
        learning_starts=0,
        batch_size=BATCH_SIZE,
        ent_coef="auto_0.3",
        policy_kwargs=dict(net_arch=NET_ARCH),
        seed=3,
    )
    # Different temperatures per component, so a mix-up between them shows
    with th.no_grad():
        model.log_ent_coef.copy_(th.log(th.tensor([0.1, 0.3, 0.7])))
    fill_buffer([model])

    # Draw the batch and the noise the way train() will, then replay them for the reference
    np.random.seed(5)
    replay_data = model.replay_buffer.sample(BATCH_SIZE)
    th.manual_seed(7)
    noise_now = th.randn(BATCH_SIZE, 3, 1)
    noise_next = th.randn(BATCH_SIZE, 3, 1)

    critic_loss, ent_loss = _reference_critic_and_temperature_losses(
        model, replay_data, noise_now, noise_next, partial_sums=algo is S2ACM
    )
    ref_critic_grads = th.autograd.grad(critic_loss, list(model.critic.parameters()))
    ref_ent_grad = th.autograd.grad(ent_loss, [model.log_ent_coef])[0]
    # The actor is judged by the critic after the critic's step, with the temperatures before theirs (as in SAC)
    actor_before = copy.deepcopy(model.actor)
    alphas_before = model.log_ent_coef.detach().exp().clone()

    logs, captured = _train_capturing_gradients(model)

    actor_loss = _reference_actor_loss(model, actor_before, model.critic, alphas_before, replay_data.observations, noise_now)
    ref_actor_grads = th.autograd.grad(actor_loss, list(actor_before.parameters()))

    _assert_same_update(logs, captured, (actor_loss, critic_loss, ent_loss), (ref_actor_grads, ref_critic_grads, ref_ent_grad))


@pytest.mark.parametrize("algo", ALGOS)
def test_sampled_component_update_matches_reference(algo):
    """component_sampling="sample": one component c ~ w per state; every loss uses that component's sample only."""
    model = algo(
        "MlpPolicy",
        "Pendulum-v1",
        n_components=3,
        mixture_weights=[0.5, 0.3, 0.2],
        component_sampling="sample",
        learning_starts=0,
        batch_size=BATCH_SIZE,
        policy_kwargs=dict(net_arch=NET_ARCH),
        seed=4,
    )
    with th.no_grad():
        model.log_ent_coef.copy_(th.log(th.tensor([0.1, 0.3, 0.7])))
    fill_buffer([model])
    w = th.tensor(model.mixture_weights)
    np.random.seed(5)
    replay_data = model.replay_buffer.sample(BATCH_SIZE)
    th.manual_seed(7)  # train() draws: components and noise for the states, then for the next states
    comps_now = th.multinomial(w, BATCH_SIZE, replacement=True)
    noise_now = th.randn(BATCH_SIZE, 1, 1)
    comps_next = th.multinomial(w, BATCH_SIZE, replacement=True)
    noise_next = th.randn(BATCH_SIZE, 1, 1)
    rows = th.arange(BATCH_SIZE)

    def sampled(means, log_stds, comps, noise):
        u = means[rows, comps] + log_stds[rows, comps].exp() * noise[:, 0]
        per_component = th.stack(
            [_squashed_component(means[:, j], log_stds[:, j]).log_prob(u) - _log_jacobian(u) for j in range(3)], dim=1
        )
        own = per_component[rows, comps]
        mixed_marginal = -th.logsumexp(th.log(w) + per_component, dim=1)
        return u, own, mixed_marginal

    alphas = model.log_ent_coef.detach().exp()
    means, log_stds = model.actor.mixture_params(replay_data.observations)[:2]
    _, own_now, _ = sampled(means, log_stds, comps_now, noise_now)
    ent_loss = -(model.log_ent_coef[comps_now] * (own_now + model.target_entropy).detach()).mean()
    with th.no_grad():
        next_means, next_log_stds = model.actor.mixture_params(replay_data.next_observations)[:2]
        u_next, _, h_next = sampled(next_means, next_log_stds, comps_next, noise_next)
        q_next = q_heads(model.critic_target, replay_data.next_observations, th.tanh(u_next)).min(0).values  # (B, N)
        heads = th.arange(3)
        if algo is S2ACM:
            bonus = (comps_next.unsqueeze(1) <= heads).float() * h_next.unsqueeze(1)
        else:
            bonus = h_next.unsqueeze(1).expand(-1, 3)
        targets = replay_data.rewards + (1 - replay_data.dones) * model.gamma * (q_next + (w * alphas).sum() * bonus)
    q_now = q_heads(model.critic, replay_data.observations, replay_data.actions)
    critic_loss = 0.5 * ((q_now - targets) ** 2).mean(dim=1).sum()
    ref_critic_grads = th.autograd.grad(critic_loss, list(model.critic.parameters()))
    ref_ent_grad = th.autograd.grad(ent_loss, [model.log_ent_coef])[0]
    actor_before = copy.deepcopy(model.actor)

    logs, captured = _train_capturing_gradients(model)

    means, log_stds = actor_before.mixture_params(replay_data.observations)[:2]
    u_now, _, h_now = sampled(means, log_stds, comps_now, noise_now)
    q_pi = q_heads(model.critic, replay_data.observations, th.tanh(u_now)).min(0).values[rows, comps_now]
    actor_loss = (alphas[comps_now] * (-h_now) - q_pi).mean()
    ref_actor_grads = th.autograd.grad(actor_loss, list(actor_before.parameters()))

    _assert_same_update(logs, captured, (actor_loss, critic_loss, ent_loss), (ref_actor_grads, ref_critic_grads, ref_ent_grad))


@pytest.mark.parametrize("n_components", [1, 3])
def test_bf16_matmuls_approximate_the_fp32_update(n_components):
    """matmul_precision="bf16" is an opt-in approximation: the same update to bf16 accuracy, never the default."""
    kwargs = dict(learning_starts=0, batch_size=BATCH_SIZE, policy_kwargs=dict(net_arch=[64, 64]), seed=3)
    fp32 = SACM("MlpPolicy", "Pendulum-v1", n_components=n_components, **kwargs)
    assert fp32.matmul_precision == "fp32"
    bf16 = SACM("MlpPolicy", "Pendulum-v1", n_components=n_components, matmul_precision="bf16", **kwargs)
    bf16.policy.load_state_dict(fp32.policy.state_dict())
    fill_buffer([fp32, bf16])
    fp32_logs, bf16_logs = _train_one_step(fp32, seed=5), _train_one_step(bf16, seed=5)
    for key in ("train/critic_loss", "train/actor_loss", "train/entropy"):
        assert bf16_logs[key] == pytest.approx(fp32_logs[key], rel=5e-2, abs=5e-2), key
    # bf16 has an 8-bit mantissa: if the networks really ran in bf16, the losses cannot agree to fp32 accuracy
    assert bf16_logs["train/critic_loss"] != pytest.approx(fp32_logs["train/critic_loss"], rel=1e-6, abs=0)
    for fp32_param, bf16_param in zip(fp32.policy.parameters(), bf16.policy.parameters(), strict=True):
        assert bf16_param.dtype == th.float32
        assert th.allclose(bf16_param, fp32_param, atol=2e-3)


def test_matmul_precision_is_checked_at_construction():
    with pytest.raises(ValueError, match="matmul_precision must be one of"):
        SACM("MlpPolicy", "Pendulum-v1", matmul_precision="fp16")
