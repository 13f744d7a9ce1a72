"""
What SB3's own APIs and tests ask of the mixture's policy: a ``state_dict`` of floating tensors without NaN (SB3's
save/load tests randomise and compare it), the actor's ``get_action_dist_params``, the ``deterministic_component``
setter and ``predict`` without ``episode_start`` (issue 29's defects 1-3 and the manual-loop warning).
"""

import warnings

import numpy as np
import pytest
import torch as th
from conftest import SMALL, pendulum, sample_observations
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_mixture import SACM
from sb3_mixture.sacm.diversity import NoDiversity

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RETURNS = dict(component_schedule="returns", deterministic_component="best_return")
OPTION_SETS = {
    "default": {},
    "learned": dict(mixture_weights="learned"),
    "soft_value": dict(mixture_weights="soft_value"),
    "gsde": dict(use_sde=True),
    "episode": dict(component_schedule="episode"),
    "returns": RETURNS,
    "switch": dict(**RETURNS, critic_data="own", diversity_weight=1.0),
    "novelty": dict(**RETURNS, mixture_weights="soft_value", diversity_weight=1.0, diversity_mechanism="novelty"),
}


@pytest.mark.parametrize("options", OPTION_SETS.values(), ids=OPTION_SETS.keys())
def test_state_dicts_hold_only_finite_floating_tensors(options):
    model = SACM("MlpPolicy", DummyVecEnv([lambda: pendulum(10)]), n_components=3, seed=0, **SMALL, **options)
    model.learn(60)  # a few episodes, so that the return statistics (where kept) hold some
    modules = [model.policy] + ([] if isinstance(model.diversity, NoDiversity) else [model.diversity])
    for module in modules:
        for name, tensor in module.state_dict().items():
            assert tensor.is_floating_point(), f"{name}: {tensor.dtype}"
            assert th.isfinite(tensor).all(), name


@pytest.mark.parametrize("options", OPTION_SETS.values(), ids=OPTION_SETS.keys())
def test_sb3s_randomise_and_compare_round_trip(options, tmp_path):
    """What SB3's tests/test_save_load.py does with a policy's parameters: random values, set, save, load, compare."""
    model = SACM("MlpPolicy", "Pendulum-v1", n_components=2, seed=0, **SMALL, **options)
    random_params = {name: th.rand_like(tensor) for name, tensor in model.policy.state_dict().items()}
    model.policy.load_state_dict(random_params)
    model.save(tmp_path / "model")
    loaded = SACM.load(tmp_path / "model")
    for name, tensor in loaded.policy.state_dict().items():
        assert th.allclose(tensor, random_params[name]), name


def test_step_schedule_keeps_no_return_statistics():
    choice = SACM("MlpPolicy", "Pendulum-v1", **SMALL).policy.component_choice
    assert not any(name.startswith("episode_") for name in choice.state_dict())
    assert th.isnan(choice.recent_returns()).all() and choice.best_return_component() is None


@pytest.mark.parametrize("use_sde", [False, True])
def test_get_action_dist_params_describes_the_mixture(use_sde):
    model = SACM("MlpPolicy", "Pendulum-v1", n_components=3, mixture_weights="learned", use_sde=use_sde, **SMALL)
    obs = th.as_tensor(sample_observations(pendulum(), 5))
    means, log_stds, kwargs = model.actor.get_action_dist_params(obs)
    params = model.actor.mixture_params(obs)
    assert means.shape == log_stds.shape == (5, 3, 1)
    assert th.equal(means, params.means) and th.equal(log_stds, params.log_stds)
    assert th.allclose(kwargs["log_weights"].exp().sum(dim=-1), th.ones(5))
    assert ("latent_sde" in kwargs) == use_sde


def test_get_action_dist_params_refuses_soft_value_weights():
    model = SACM("MlpPolicy", "Pendulum-v1", n_components=2, mixture_weights="soft_value", **SMALL)
    with pytest.raises(ValueError, match="mixing weights come from the critic"):
        model.actor.get_action_dist_params(th.zeros(1, 3))


def test_the_deterministic_component_setter_applies_the_constructors_rules():
    policy = SACM("MlpPolicy", "Pendulum-v1", n_components=3, **SMALL).policy
    with pytest.raises(ValueError, match="deterministic_component='best_return' needs component_schedule='returns'"):
        policy.deterministic_component = "best_return"
    with pytest.raises(ValueError, match=r"a component index in \[0, 3\), got 3"):
        policy.deterministic_component = 3
    policy.deterministic_component = 2
    assert policy.deterministic_component == 2 == policy.component_choice.deterministic_component
    returns_policy = SACM("MlpPolicy", "Pendulum-v1", n_components=3, component_schedule="returns", **SMALL).policy
    returns_policy.deterministic_component = "best_return"
    assert returns_policy.component_choice.deterministic_component == "best_return"


def test_predict_without_episode_start_warns_once_for_an_episodic_schedule():
    obs = sample_observations(pendulum(), 4)
    model = SACM("MlpPolicy", "Pendulum-v1", component_schedule="episode", **SMALL)
    with pytest.warns(UserWarning, match="episode_start") as caught:
        model.predict(obs)
        model.predict(obs)
    assert sum("episode_start" in str(warning.message) for warning in caught) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SACM("MlpPolicy", "Pendulum-v1", **SMALL).predict(obs)  # the step schedule redraws anyway
        quiet = SACM("MlpPolicy", "Pendulum-v1", component_schedule="episode", **SMALL)
        quiet.predict(obs, episode_start=np.ones(4, dtype=bool))
        quiet.predict(obs, deterministic=True)
        quiet.learn(40)  # the training envs' own steps


def test_files_saved_with_the_former_bandit_defaults_load(tmp_path):
    """Files saved before issue 29 hold return_exploration=0.1 (the former default) whatever their schedule: loading
    one rebuilds its policy with it, which the constructor's no-effect check must not refuse."""
    model = SACM("MlpPolicy", "Pendulum-v1", **SMALL)
    model.save(tmp_path / "model")
    former = {"return_exploration": 0.1, "return_window": 10, "return_margin": 0.05}
    custom_objects = {"policy_kwargs": {**model.policy_kwargs, **former}, **former}
    loaded = SACM.load(tmp_path / "model", custom_objects=custom_objects)
    assert loaded.policy.acting_options.return_exploration == 0.1


def test_files_saved_with_the_former_discriminator_names_load(tmp_path):
    """Before issue 29 the discriminator and its optimiser were saved as ``discriminator`` and
    ``discriminator.optimizer``; set_parameters (what load() calls) takes that layout too."""
    kwargs = dict(n_components=2, critic_data="own", diversity_weight=1.0, seed=0, **RETURNS, **SMALL)
    model = SACM("MlpPolicy", DummyVecEnv([lambda: pendulum(10)]), **kwargs)
    model.learn(60)
    parameters = model.get_parameters()
    former = {key: value for key, value in parameters.items() if not key.startswith("diversity")}
    prefix = "discriminator."
    former["discriminator"] = {key[len(prefix) :]: value for key, value in parameters["diversity"].items()}
    former["discriminator.optimizer"] = parameters["diversity.optimizer"]
    fresh = SACM("MlpPolicy", DummyVecEnv([lambda: pendulum(10)]), **{**kwargs, "seed": 1})
    fresh.set_parameters(former, exact_match=True)
    for name, tensor in model.diversity.state_dict().items():
        assert th.equal(fresh.diversity.state_dict()[name], tensor), name
    assert fresh.diversity.optimizer.state_dict()["state"].keys() == model.diversity.optimizer.state_dict()["state"].keys()
