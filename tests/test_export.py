"""
Exporting the deterministic policy as SB3's docs do for SAC ("Exporting models"): a module wrapping the policy's
deterministic action, ``policy(observation, deterministic=True)``, traced with TorchScript or exported to ONNX, must act
as ``model.predict(observation, deterministic=True)`` for every ``mixture_weights``, every ``deterministic_component``
and with ``use_component``. SB3's own recipe, which wraps ``policy.actor`` alone, plays the mixture's mode: the same
action wherever the weights are the actor's own and no other rule is set.
"""

import contextlib

import gymnasium as gym
import numpy as np
import pytest
import torch as th

from sb3_mixture import S2ACM, SACM

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_OBSERVATIONS = 24
FIXED = [0.5, 0.3, 0.2]
# (mixture_weights, deterministic_component, use_component): every deterministic rule and override, with every kind of
# weights
SETTINGS = [
    (None, "mode", None),
    (None, 0, None),
    (None, 1, None),
    (None, "mode", 2),
    (FIXED, "mode", None),
    ("learned", "mode", None),
    ("learned", "mode", 1),
    ("soft_value", "mode", None),
    ("soft_value", 1, None),
    ("soft_value", "mode", 2),
]
# Where the actor alone acts as predict: its own weights, the mode, no override
ACTOR_SETTINGS = [(None, "mode", None), (FIXED, "mode", None), ("learned", "mode", None)]


class OnnxablePolicy(th.nn.Module):
    """docs/export.md's wrapper: the policy's deterministic action in [-1, 1]."""

    def __init__(self, policy: th.nn.Module):
        super().__init__()
        self.policy = policy

    def forward(self, observation: th.Tensor) -> th.Tensor:
        return self.policy(observation, deterministic=True)


class OnnxableActor(th.nn.Module):
    """SB3's wrapper for SAC (docs, "Exporting models"): the actor alone, deterministic."""

    def __init__(self, actor: th.nn.Module):
        super().__init__()
        self.actor = actor

    def forward(self, observation: th.Tensor) -> th.Tensor:
        return self.actor(observation, deterministic=True)


def trained_model(algo, mixture_weights, deterministic_component):
    env = gym.make("Pendulum-v1", max_episode_steps=20)
    model = algo(
        "MlpPolicy", env, n_components=3, mixture_weights=mixture_weights, deterministic_component=deterministic_component,
        seed=0, learning_starts=20, batch_size=16, buffer_size=1_000, policy_kwargs=dict(net_arch=[16]), device="cpu",
    )  # fmt: skip
    model.learn(40)
    return model


def observations(model) -> np.ndarray:
    model.observation_space.seed(0)
    return np.stack([model.observation_space.sample() for _ in range(N_OBSERVATIONS)])


def rescale(model, scaled_action: np.ndarray) -> np.ndarray:
    # As SB3's docs post-process an exported SAC actor: from [-1, 1] to [low, high]
    low, high = model.action_space.low, model.action_space.high
    return low + (0.5 * (scaled_action + 1.0) * (high - low))


def component_override(model, component):
    return contextlib.nullcontext() if component is None else model.policy.use_component(component)


def check_exported(model, component, run_exported) -> None:
    """``run_exported(observation (1, obs_dim)) -> action in [-1, 1]``, against predict, one observation at a time."""
    obs = observations(model)
    with component_override(model, component):
        expected, _ = model.predict(obs, deterministic=True)
    exported = np.concatenate([rescale(model, run_exported(obs[row : row + 1])) for row in range(len(obs))])
    np.testing.assert_allclose(exported, expected, rtol=1e-5, atol=1e-5)


def test_the_settings_tell_the_components_apart():
    # Without this the tests below could not fail: on some observations every setting plays another action than the
    # mode, and an override another than the setting alone (same seed, same training: the models differ only in their
    # setting)
    for weights in (None, "soft_value"):
        actions = {}
        for mixture_weights, deterministic_component, component in SETTINGS:
            if mixture_weights == weights:
                model = trained_model(SACM, weights, deterministic_component)
                with component_override(model, component):
                    played = model.predict(observations(model), deterministic=True)[0]
                actions[deterministic_component, component] = played
        for setting, played in actions.items():
            if setting != ("mode", None):
                assert not np.allclose(played, actions["mode", None]), (weights, setting)


@pytest.mark.parametrize("mixture_weights, deterministic_component, component", ACTOR_SETTINGS)
@pytest.mark.parametrize("algo", [SACM, S2ACM])
def test_actor_of_the_sb3_recipe_acts_as_predict(algo, mixture_weights, deterministic_component, component):
    model = trained_model(algo, mixture_weights, deterministic_component)
    wrapper = OnnxableActor(model.policy.actor)

    def run(obs: np.ndarray) -> np.ndarray:
        with th.no_grad():
            return wrapper(th.as_tensor(obs)).numpy()

    check_exported(model, component, run)


def test_actor_alone_refuses_soft_value_weights():
    model = trained_model(SACM, "soft_value", "mode")
    with pytest.raises(ValueError, match="soft_value.* act through the policy"):
        model.policy.actor(th.as_tensor(observations(model)), deterministic=True)


@pytest.mark.parametrize("mixture_weights, deterministic_component, component", SETTINGS)
@pytest.mark.parametrize("algo", [SACM, S2ACM])
def test_policy_wrapper_acts_as_predict(algo, mixture_weights, deterministic_component, component):
    if algo is S2ACM and mixture_weights == "soft_value":
        pytest.skip("soft-value weights are SACM's only")
    model = trained_model(algo, mixture_weights, deterministic_component)
    wrapper = OnnxablePolicy(model.policy)

    def run(obs: np.ndarray) -> np.ndarray:
        with component_override(model, component), th.no_grad():
            return wrapper(th.as_tensor(obs)).numpy()

    check_exported(model, component, run)


@pytest.mark.parametrize("mixture_weights, deterministic_component, component", SETTINGS)
def test_torchscript_trace(mixture_weights, deterministic_component, component, tmp_path):
    model = trained_model(SACM, mixture_weights, deterministic_component)
    dummy_input = th.randn(1, *model.observation_space.shape)
    # Traced as SB3's docs do (trace, freeze, optimise for inference, save, load); an override is traced in
    with component_override(model, component):
        traced = th.jit.trace(OnnxablePolicy(model.policy).eval(), dummy_input)
    frozen = th.jit.optimize_for_inference(th.jit.freeze(traced))
    th.jit.save(frozen, tmp_path / "policy.pt")
    loaded = th.jit.load(tmp_path / "policy.pt")
    check_exported(model, component, lambda obs: loaded(th.as_tensor(obs)).numpy())


@pytest.mark.parametrize("mixture_weights, deterministic_component, component", SETTINGS)
def test_onnx_export(mixture_weights, deterministic_component, component, tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")  # torch.onnx.export's exporter since torch 2.9
    ort = pytest.importorskip("onnxruntime")
    model = trained_model(SACM, mixture_weights, deterministic_component)
    dummy_input = th.randn(1, *model.observation_space.shape)
    path = tmp_path / "policy.onnx"
    with component_override(model, component):
        # Opset 18 or later: torch's exporter writes 18, and its conversion of logsumexp to 17 gives an invalid model
        th.onnx.export(OnnxablePolicy(model.policy).eval(), dummy_input, path, opset_version=18, input_names=["input"])
    onnx.checker.check_model(onnx.load(path))
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    check_exported(model, component, lambda obs: session.run(None, {"input": obs.astype(np.float32)})[0])


def test_image_policy_exports_with_soft_value_weights(tmp_path):
    # The target critic of an image policy has a features extractor of its own (share_features_extractor=False): the
    # export holds it as the wrapped policy's submodule
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    from conftest import TinyImageEnv

    model = SACM(
        "CnnPolicy", TinyImageEnv(), n_components=3, mixture_weights="soft_value", seed=0, buffer_size=100,
        policy_kwargs=dict(net_arch=[16], features_extractor_kwargs=dict(features_dim=16)), device="cpu",
    )  # fmt: skip
    obs = np.stack([model.observation_space.sample() for _ in range(8)])
    wrapper = OnnxablePolicy(model.policy).eval()
    dummy_input = th.as_tensor(obs[:1], dtype=th.float32)
    expected, _ = model.predict(obs, deterministic=True)
    traced = th.jit.trace(wrapper, dummy_input)
    traced_actions = [rescale(model, traced(th.as_tensor(obs[row : row + 1])).detach().numpy()) for row in range(8)]
    np.testing.assert_allclose(np.concatenate(traced_actions), expected, rtol=1e-5, atol=1e-5)
    onnx_model = th.onnx.export(wrapper, dummy_input, opset_version=18, input_names=["input"]).model_proto
    onnx.checker.check_model(onnx_model)
    session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    exported = [rescale(model, session.run(None, {"input": obs[row : row + 1].astype(np.float32)})[0]) for row in range(8)]
    np.testing.assert_allclose(np.concatenate(exported), expected, rtol=1e-5, atol=1e-5)
