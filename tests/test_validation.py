"""Bad input: arguments and spaces refused at construction, and training stopped when a loss becomes NaN."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from conftest import ALGOS, SMALL, pendulum
from stable_baselines3 import HerReplayBuffer
from stable_baselines3.common.envs import BitFlippingEnv

from sb3_mixture import SACM

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- Bad arguments and spaces ------------------------------------------------------------------------------------------

DETERMINISTIC_MESSAGE = r"deterministic_component must be 'mode', 'best_return' or a component index"
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
    (dict(component_schedule="never"), ValueError, r"component_schedule must be one of \('step', 'episode', 'returns'\)"),
    # Removed for want of evidence (issue 22): an integer schedule, "best_q", "bootstrap" and its bootstrap_mask_prob
    (dict(component_schedule=3), ValueError, r"component_schedule must be one of \('step', 'episode', 'returns'\), got 3"),
    (dict(critic_data="mine"), ValueError, r"critic_data must be one of \('shared', 'own'\)"),
    (dict(critic_data="bootstrap"), ValueError, r"critic_data must be one of \('shared', 'own'\), got 'bootstrap'"),
    (
        dict(deterministic_component="best_q"),
        ValueError,
        DETERMINISTIC_MESSAGE,
    ),
    (dict(bootstrap_mask_prob=True), TypeError, r"unexpected keyword argument 'bootstrap_mask_prob'"),
    (
        dict(deterministic_component="max"),
        ValueError,
        DETERMINISTIC_MESSAGE,
    ),
    (
        dict(deterministic_component=True),
        ValueError,
        DETERMINISTIC_MESSAGE,
    ),
    (dict(deterministic_component=3), ValueError, r"deterministic_component must be .* index in \[0, 3\)"),
    (dict(deterministic_component=-1), ValueError, r"deterministic_component must be .* index in \[0, 3\)"),
    (dict(component_sampling="one"), ValueError, r"component_sampling must be one of .*'all'.*'sample'"),
    (dict(matmul_precision="fp16"), ValueError, r"matmul_precision must be one of .*'fp32'.*'bf16'"),
    (dict(critic_data="own", n_steps=3), ValueError, r"critic_data='own' supports only n_steps=1"),
    (dict(ent_coef="automatic"), ValueError, r"ent_coef must be 'auto'"),
    (dict(ent_coef=-0.1), ValueError, r"ent_coef must be 'auto'"),
    (dict(policy_kwargs=dict(n_components=2)), ValueError, r"pass n_components to .* directly"),
    # Options that would have no effect with the others (issue 29)
    (dict(return_window=3), ValueError, r"return_window=3 has no effect without component_schedule='returns' or a diversity"),
    (dict(return_margin=0.5), ValueError, r"return_margin=0.5 has no effect without component_schedule='returns' or a diver"),
    (
        dict(component_schedule="episode", return_exploration=0.1),
        ValueError,
        r"return_exploration=0.1 has no effect without component_schedule='returns' \(only the returns bandit explores\)",
    ),
    (dict(diversity_start=1000), ValueError, r"diversity_start=1000 has no effect without a diversity_weight > 0"),
]


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("kwargs, error, message", BAD_ARGUMENTS)
def test_bad_arguments_fail_at_construction(algo, kwargs, error, message):
    with pytest.raises(error, match=message):
        algo("MlpPolicy", "Pendulum-v1", **kwargs)


def test_options_that_act_with_the_others_are_accepted():
    # The recent returns gate the diversity charge with an episodic schedule too
    SACM("MlpPolicy", "Pendulum-v1", component_schedule="episode", diversity_weight=1.0, return_margin=0.5, return_window=3)
    SACM("MlpPolicy", "Pendulum-v1", component_schedule="returns", return_window=3, return_margin=0.5, return_exploration=0.1)
    SACM("MlpPolicy", "Pendulum-v1", component_schedule="episode", diversity_weight=1.0, diversity_start=1000)


def test_numpy_int_n_components_is_accepted():
    # Values from a sweep or an Optuna trial are often numpy ints; they are stored as plain ints
    model = SACM("MlpPolicy", "Pendulum-v1", n_components=np.int64(2), **SMALL)
    assert type(model.n_components) is int and type(model.policy.n_components) is int
    assert model.log_ent_coef.shape == (2,)


@pytest.mark.parametrize("algo", ALGOS)
def test_discrete_action_space_is_refused(algo):
    with pytest.raises(ValueError, match=r"continuous \(gymnasium.spaces.Box\) action space, got Discrete"):
        algo("MlpPolicy", "CartPole-v1")


def test_head_masks_refused_with_her():
    critic_data = "own"
    with pytest.raises(ValueError, match=rf"critic_data='{critic_data}' .*HerReplayBuffer is only supported with critic_data"):
        SACM(
            "MultiInputPolicy",
            BitFlippingEnv(n_bits=4, continuous=True, max_steps=4),
            replay_buffer_class=HerReplayBuffer,
            critic_data=critic_data,
        )


# --- NaN ---------------------------------------------------------------------------------------------------------------


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
