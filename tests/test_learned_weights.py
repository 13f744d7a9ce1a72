"""
Learned mixing weights (``mixture_weights="learned"``): w(s) = softmax of a gating head on the actor's trunk.

The math is checked against independent computations: the gating gradient of SACM's actor update against the
gradient of the exact expected loss by quadrature (1-D action, fixed critic), and the actor's density against the
identity E[1{a in box} / pi(a)] = volume. The rest checks acting, save/load and the drop-in paths.
"""

import json
import math

import numpy as np
import pytest
import torch as th
from conftest import ALGOS, SMALL, RecordActing, pendulum, pendulum_vec_env
from stable_baselines3 import HerReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.envs import BitFlippingEnv
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import VecNormalize
from torch.distributions import Categorical, MixtureSameFamily, Normal

from sb3_mixture import S2ACM, SACM
from sb3_mixture.evaluation import evaluate_components
from sb3_mixture.mixture import gated_log_weights, weight_entropy

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- Pure functions ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("floor", [0.0, 0.05, 0.2])
def test_gated_log_weights_is_the_floored_softmax(floor):
    logits = th.tensor([[0.0, 0.0, 0.0], [3.0, -1.0, 0.5], [200.0, -200.0, 0.0]], dtype=th.float64)
    weights = gated_log_weights(logits, floor).exp()
    expected = (1 - 3 * floor) * th.softmax(logits, dim=-1) + floor
    assert th.allclose(weights, expected, atol=1e-12)
    assert th.allclose(weights.sum(dim=-1), th.ones(3, dtype=th.float64))
    assert (weights >= floor - 1e-15).all()
    assert th.isfinite(gated_log_weights(logits, floor)).all()


def test_default_weight_floor():
    assert SACM("MlpPolicy", "Pendulum-v1", n_components=3, mixture_weights="learned").mixture_weight_floor == 0.05
    assert SACM("MlpPolicy", "Pendulum-v1", n_components=20, mixture_weights="learned").actor.mixture_weight_floor == 0.025
    assert SACM("MlpPolicy", "Pendulum-v1", n_components=3).mixture_weight_floor == 0.0
    model = SACM("MlpPolicy", "Pendulum-v1", n_components=3, mixture_weights="learned", mixture_weight_floor=0.0)
    assert model.policy.mixture_weight_floor == 0.0


def test_weight_entropy_matches_categorical():
    logits = th.randn(50, 4, dtype=th.float64) * 3
    log_weights = th.log_softmax(logits, dim=-1)
    assert th.allclose(weight_entropy(log_weights), Categorical(logits=logits).entropy())
    # A weight that underflowed to zero adds nothing instead of NaN
    assert weight_entropy(th.tensor([[0.0, -math.inf]])).item() == 0.0


# --- The gating gradient against the exact expected loss (docs/algorithm.md section 8) -------------------------

GRADIENT_BATCH = 4096
GRADIENT_REPEATS = 10
ALPHA = 0.3


class GateGradient:
    """Records the gate bias gradient that SACM's actor optimiser is about to apply."""

    def __init__(self, model: SACM):
        self.values: list[th.Tensor] = []
        model.actor.optimizer.register_step_pre_hook(lambda *_: self.values.append(model.actor.gate.bias.grad.clone()))


def learned_model_at_one_state(estimator: str, floor: float, seed: int = 0) -> tuple[SACM, th.Tensor]:
    """A learned-weight SACM (1-D actions) whose replay buffer holds one observation only, with spread-out components."""
    th.manual_seed(seed)
    model = SACM(
        "MlpPolicy",
        "Pendulum-v1",
        n_components=3,
        mixture_weights="learned",
        mixture_weight_floor=floor,
        entropy_estimator=estimator,
        ent_coef=ALPHA,
        learning_starts=0,
        batch_size=GRADIENT_BATCH,
        buffer_size=200,
        policy_kwargs=dict(net_arch=[16, 16]),
        seed=seed,
    )
    # Learning rate 0: the critic step inside train() leaves the critic as it is, so the actor sees a fixed critic
    model.lr_schedule = lambda _: 0.0
    with th.no_grad():
        model.actor.mu.weight.mul_(0.1)
        model.actor.mu.bias.copy_(th.tensor([-1.0, 0.2, 1.1]))
        model.actor.log_std.weight.zero_()
        model.actor.log_std.bias.copy_(th.tensor([-0.6, -0.9, -0.4]))
        model.actor.gate.weight.normal_(0.0, 0.3)
        model.actor.gate.bias.copy_(th.tensor([0.9, -0.5, 0.1]))
    rng = np.random.default_rng(seed)
    state = rng.normal(size=(1, 3)).astype(np.float32)
    for _ in range(200):
        next_state = rng.normal(size=(1, 3)).astype(np.float32)
        action = rng.uniform(-1, 1, size=(1, 1)).astype(np.float32)
        model.replay_buffer.add(state, next_state, action, rng.normal(size=(1,)), rng.random(size=(1,)) < 0.1, [{}])
    return model, th.as_tensor(state)


def quadrature_gate_gradient(model: SACM, state: th.Tensor, estimator: str, weights_inside_log: bool = True) -> th.Tensor:
    """
    d/dg of the exact expected actor loss sum_i w_i(g) E_{u ~ N(mu_i, s_i)}[alpha l_i(u) - min_k Q_{k,i}(s, tanh u)],
    by the trapezoid rule over u in float64, written from docs/algorithm.md sections 4 and 8 with torch.distributions.
    """
    actor = model.actor
    with th.no_grad():
        latent = actor.latent_pi(actor.extract_features(state, actor.features_extractor))
        means = actor.mu(latent).view(3).double()
        stds = th.clamp(actor.log_std(latent), -20, 2).view(3).double().exp()
        logits = actor.gate(latent).view(3).double()
        grid = th.linspace(-12.0, 12.0, 48_001, dtype=th.float64)
        q_values = model.critic.q_values(state.expand(len(grid), -1), th.tanh(grid).float().unsqueeze(-1))
        min_q = q_values.min(dim=0).values.double()  # (G, N): head i at every grid point
    logits = logits.clone().requires_grad_(True)
    floor = actor.mixture_weight_floor
    weights = (1 - 3 * floor) * th.softmax(logits, dim=0) + floor
    component_log_density = Normal(means, stds).log_prob(grid.unsqueeze(-1))  # (G, N)
    log_jacobian = th.log(1 - th.tanh(grid) ** 2 + 1e-6)
    inner_weights = weights if weights_inside_log else weights.detach()
    if estimator == "mixed_marginal":
        log_pi = th.logsumexp(th.log(inner_weights) + component_log_density, dim=-1) - log_jacobian
        log_term = log_pi.unsqueeze(-1).expand(-1, 3)
    else:  # marginal: each component's own density
        log_term = component_log_density - log_jacobian.unsqueeze(-1)
    integrand = component_log_density.exp() * (ALPHA * log_term - min_q)
    expected_loss = (weights * th.trapezoid(integrand, grid, dim=0)).sum()
    (gradient,) = th.autograd.grad(expected_loss, logits)
    return gradient.float()


@pytest.mark.parametrize("floor", [0.0, 0.1])
@pytest.mark.parametrize("estimator", ["mixed_marginal", "marginal"])
def test_gate_gradient_is_the_exact_expected_gradient(estimator, floor):
    model, state = learned_model_at_one_state(estimator, floor)
    model.set_logger(configure(None, []))
    recorder = GateGradient(model)
    th.manual_seed(1)
    for _ in range(GRADIENT_REPEATS):
        model.train(gradient_steps=1, batch_size=GRADIENT_BATCH)
    draws = th.stack(recorder.values)  # each the batch mean of 4096 one-sample-per-component estimates
    estimate, standard_error = draws.mean(dim=0), draws.std(dim=0) / math.sqrt(GRADIENT_REPEATS)
    exact = quadrature_gate_gradient(model, state, estimator)
    assert exact.abs().max() > 10 * standard_error.max()  # a gradient well above the noise
    assert (estimate - exact).abs().max() < 5 * standard_error.max() + 1e-5, (estimate, exact, standard_error)
    if estimator == "mixed_marginal":
        # The part through log sum_j w_j pi_j has expectation zero: sum_i w_i E_{pi_i}[d log pi / dg] = d/dg of the
        # integral of pi, which is one. It changes each draw, not the expected gradient.
        outer_only = quadrature_gate_gradient(model, state, estimator, weights_inside_log=False)
        assert th.allclose(outer_only, exact, atol=1e-5)


# --- The actor's density is a true density with learned weights -------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_action_log_prob_is_a_density_with_learned_weights(seed):
    th.manual_seed(seed)
    model = SACM("MlpPolicy", "Pendulum-v1", n_components=3, mixture_weights="learned", policy_kwargs=dict(net_arch=[16]))
    actor = model.actor
    generator = th.Generator().manual_seed(100 + seed)
    with th.no_grad():
        actor.mu.bias.copy_(th.rand(3, generator=generator) * 2.4 - 1.2)
        actor.log_std.bias.copy_(th.rand(3, generator=generator) * 0.8 - 0.9)
        actor.gate.weight.normal_(0.0, 1.0, generator=generator)
        actor.gate.bias.copy_(th.randn(3, generator=generator) * 1.5)
    state = th.randn(1, 3, generator=generator)
    n_samples = 400_000
    with th.no_grad():
        actions, log_prob = actor.action_log_prob(state.expand(n_samples, -1))
        weights = actor.mixture_params(state).log_weights.exp()[0]
        means, log_stds = (param[0, :, 0] for param in actor.mixture_params(state)[:2])
    low, high = -0.6, 0.6
    inside = ((actions[:, 0] > low) & (actions[:, 0] < high)).double()
    ratio = inside * th.exp(-log_prob.double())
    estimate, standard_error = ratio.mean().item(), ratio.std().item() / math.sqrt(n_samples)
    assert abs(estimate - (high - low)) < 4 * standard_error + 1e-4, (estimate, standard_error)
    # The density is the mixture with w(s), from torch.distributions, and clearly not the uniform-weight one
    assert weights.max() - weights.min() > 0.2
    first = actions[:2000, 0]
    some = first.abs() < 0.99  # atanh is ill-conditioned near +-1 in float32
    pre_squash, log_jacobian = th.atanh(first[some]), th.log(1 - first[some] ** 2 + 1e-6)
    components = Normal(means, log_stds.exp())
    mixture = MixtureSameFamily(Categorical(probs=weights), components)
    assert th.allclose(log_prob[:2000][some], mixture.log_prob(pre_squash) - log_jacobian, atol=2e-3)
    uniform = MixtureSameFamily(Categorical(probs=th.full((3,), 1 / 3)), components)
    assert (log_prob[:2000][some] - (uniform.log_prob(pre_squash) - log_jacobian)).abs().max() > 0.1


# --- Acting ---------------------------------------------------------------------------------------------------------


def state_dependent_model(schedule="step", **kwargs) -> tuple[SACM, np.ndarray, np.ndarray]:
    """A learned 3-component SACM and two states whose weights differ clearly."""
    th.manual_seed(0)
    model = SACM(
        "MlpPolicy", pendulum(), n_components=3, mixture_weights="learned", component_schedule=schedule, **SMALL, **kwargs
    )
    with th.no_grad():
        model.actor.gate.weight.normal_(0.0, 3.0)
    states = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32) * 2
    with th.no_grad():
        weights = model.policy.mixture_log_weights(th.as_tensor(states)).exp().numpy()
    first, second = int(np.argmax(weights[:, 0])), int(np.argmax(weights[:, 2]))
    assert weights[first, 0] > 0.6 and weights[second, 2] > 0.6
    return model, states[first], states[second]


def weights_of(model: SACM, state: np.ndarray) -> np.ndarray:
    with th.no_grad():
        return model.policy.mixture_log_weights(th.as_tensor(state[None])).exp().numpy()[0]


def assert_drawn_from(components: np.ndarray, weights: np.ndarray) -> None:
    shares = np.bincount(components, minlength=len(weights)) / len(components)
    standard_errors = np.sqrt(weights * (1 - weights) / len(components))
    assert np.all(np.abs(shares - weights) < 4.5 * standard_errors + 1e-3), (shares, weights)


@pytest.mark.parametrize("schedule", ["step", "episode"])
def test_acting_draws_components_from_the_weights_of_the_state(schedule):
    model, state_a, state_b = state_dependent_model(schedule)
    half = 3000
    batch = np.concatenate([np.repeat(state_a[None], half, 0), np.repeat(state_b[None], half, 0)])
    model.predict(batch)
    first = model.policy.acting_components.copy()
    assert_drawn_from(first[:half], weights_of(model, state_a))
    assert_drawn_from(first[half:], weights_of(model, state_b))
    if schedule == "step":
        return
    # Between draws the component stays, whatever the state; at the next draw it comes from the new state's weights
    swapped = batch[::-1].copy()
    model.predict(swapped)
    np.testing.assert_array_equal(model.policy.acting_components, first)
    model.predict(swapped, episode_start=np.ones(2 * half, dtype=bool))
    redrawn = model.policy.acting_components
    assert_drawn_from(redrawn[:half], weights_of(model, state_b))
    assert_drawn_from(redrawn[half:], weights_of(model, state_a))


def test_warm_up_components_are_drawn_from_the_learned_weights():
    kwargs = dict(SMALL, learning_starts=500)
    model = SACM("MlpPolicy", pendulum(), n_components=2, mixture_weights="learned", mixture_weight_floor=0.0, **kwargs)
    with th.no_grad():
        model.actor.gate.bias.copy_(th.tensor([4.0, -4.0]))  # w = (0.9997, 0.0003) in every state
    callback = RecordActing()
    model.learn(200, callback=callback)
    assert np.concatenate(callback.acting).mean() < 0.02


def test_deterministic_mode_uses_the_weights_of_the_state():
    model, state_a, state_b = state_dependent_model(deterministic_component="mode")
    with th.no_grad():
        # Three means far apart with equal small stds: the mode is the mean of the heaviest component
        model.actor.mu.weight.zero_()
        model.actor.mu.bias.copy_(th.tensor([-1.5, 0.0, 1.5]))
        model.actor.log_std.weight.zero_()
        model.actor.log_std.bias.fill_(-2.0)
    actions, _ = model.predict(np.stack([state_a, state_b]), deterministic=True)
    np.testing.assert_allclose(actions[:, 0], np.tanh([-1.5, 1.5]) * 2.0, rtol=1e-5)  # Pendulum's actions are 2 x tanh
    # With fixed uniform weights both states have the same mode
    fixed = SACM("MlpPolicy", pendulum(), n_components=3, **SMALL)
    fixed.actor.load_state_dict({k: v for k, v in model.actor.state_dict().items() if not k.startswith("gate")})
    fixed_actions, _ = fixed.predict(np.stack([state_a, state_b]), deterministic=True)
    assert fixed_actions[0, 0] == fixed_actions[1, 0]


# --- Training, logging, save/load and the drop-in paths -------------------------------------------------------------


class CollectLogs(BaseCallback):
    def __init__(self):
        super().__init__()
        self.values: list[dict] = []

    def _on_rollout_end(self) -> None:
        self.values.append(dict(self.model.logger.name_to_value))

    def _on_step(self) -> bool:
        return True


@pytest.mark.parametrize("algo", ALGOS)
def test_training_moves_the_weights_and_logs_them(algo):
    model = algo("MlpPolicy", pendulum(), n_components=3, mixture_weights="learned", seed=0, **SMALL)
    gate_before = model.actor.gate.weight.detach().clone()
    callback = CollectLogs()
    model.learn(120, callback=callback)
    assert not th.equal(model.actor.gate.weight, gate_before)
    logged = [values for values in callback.values if "train/weight_entropy" in values][-1]
    weights = [logged[f"train/mixture_weight_{i}"] for i in range(3)]
    assert sum(weights) == pytest.approx(1.0, abs=1e-5)
    assert 0.0 <= logged["train/weight_entropy"] <= math.log(3) + 1e-6
    assert logged["train/weight_entropy"] < math.log(3)  # no longer exactly uniform
    # train/ent_coef is the temperatures weighted by the batch's mean weights
    alphas = [logged[f"train/ent_coef_{i}"] for i in range(3)]
    assert logged["train/ent_coef"] == pytest.approx(float(np.dot(weights, alphas)), rel=1e-4)


@pytest.mark.parametrize("algo", ALGOS)
def test_save_load_restores_the_learned_weights(algo, tmp_path):
    kwargs = dict(n_components=3, mixture_weights="learned", mixture_weight_floor=0.05, seed=0)
    model = algo("MlpPolicy", pendulum(), **kwargs, **SMALL)
    model.learn(80)
    model.save(tmp_path / "model.zip")
    loaded = algo.load(tmp_path / "model.zip", env=pendulum())
    assert loaded.mixture_weights == "learned" and loaded.actor.mixture_weights == "learned"
    assert loaded.mixture_weight_floor == 0.05 and loaded.actor.mixture_weight_floor == 0.05
    states = th.as_tensor(np.random.default_rng(3).normal(size=(32, 3)).astype(np.float32))
    with th.no_grad():
        original, restored = model.policy.mixture_log_weights(states), loaded.policy.mixture_log_weights(states)
    assert not th.allclose(original, original[:1].expand_as(original))  # they do depend on the state
    assert th.equal(original, restored)
    assert (original.exp() >= 0.05 - 1e-6).all()
    # The gate's Adam moments are part of the actor optimiser's state
    actor_state = loaded.actor.optimizer.state_dict()["state"]
    assert len(actor_state) == len(list(loaded.actor.parameters()))
    gate_index = [name for name, _ in loaded.actor.named_parameters()].index("gate.weight")
    assert th.equal(actor_state[gate_index]["exp_avg"], model.actor.optimizer.state_dict()["state"][gate_index]["exp_avg"])
    loaded.learn(30, reset_num_timesteps=False)


def test_dict_observations_her_and_vec_normalize():
    env = BitFlippingEnv(n_bits=4, continuous=True, max_steps=4)
    her = SACM(
        "MultiInputPolicy",
        env,
        mixture_weights="learned",
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs=dict(n_sampled_goal=2, goal_selection_strategy="future"),
        seed=0,
        **SMALL,
    )
    her.learn(60)
    assert all(th.isfinite(p).all() for p in her.policy.parameters())
    obs, _ = env.reset()
    her.predict(obs, deterministic=True)
    vec_env = VecNormalize(pendulum_vec_env(2, seed=0))
    model = S2ACM("MlpPolicy", vec_env, mixture_weights="learned", critic_data="own", seed=0, **SMALL)
    model.learn(80)
    assert model._n_updates > 0
    results = evaluate_components(model, model.get_env(), n_eval_episodes=1)
    assert {"mixture", "deterministic", "component_0", "component_2", "best_component"} <= results.keys()


def test_eval_callback_records_the_learned_weights(tmp_path):
    from sb3_mixture.callbacks import MixtureEvalCallback

    model = SACM("MlpPolicy", pendulum(), n_components=3, mixture_weights="learned", seed=0, **SMALL)
    callback = MixtureEvalCallback(eval_freq=40, n_eval_episodes=1, log_path=str(tmp_path), env_id="Pendulum-v1")
    model.learn(80, callback=callback)
    records = [json.loads(line) for line in (tmp_path / "mixture_evaluations.jsonl").read_text().splitlines()]
    assert [record["timesteps"] for record in records] == [40, 80]
    # The callback runs before SB3 stores the step's transition
    assert [record["weights"]["states"] for record in records] == [39, 79]
    assert all(set(record["weights"]) == {"states", "mean", "entropy", "max_weight"} for record in records)
    # Now, on the buffer's 80 states, against the weights recomputed here
    weights = callback.weight_statistics()
    observations = th.as_tensor(model.replay_buffer.observations[:80, 0])
    with th.no_grad():
        log_weights = model.policy.mixture_log_weights(observations)
    assert weights["states"] == 80
    assert weights["mean"] == pytest.approx(log_weights.exp().mean(dim=0).tolist(), rel=1e-5)
    assert weights["entropy"] == pytest.approx(float(Categorical(logits=log_weights).entropy().mean()), rel=1e-5)
    # Fixed weights: nothing to record
    fixed = SACM("MlpPolicy", pendulum(), n_components=3, seed=0, **SMALL)
    fixed.learn(40, callback=MixtureEvalCallback(eval_freq=40, n_eval_episodes=1, log_path=str(tmp_path / "fixed")))
    (record,) = [json.loads(line) for line in (tmp_path / "fixed" / "mixture_evaluations.jsonl").read_text().splitlines()]
    assert "weights" not in record and "mixture" in record
