"""Small multimodal gymnasium tasks, registered under the ``sb3_mixture/`` namespace on ``import sb3_mixture``."""

import gymnasium as gym

from sb3_mixture.envs.bandit import BimodalBanditEnv, bimodal_reward
from sb3_mixture.envs.multigoal import GOALS, MultiGoalEnv
from sb3_mixture.envs.two_routes import TwoRoutesEnv

ENV_IDS = {
    "sb3_mixture/MultiGoal-v0": "sb3_mixture.envs.multigoal:MultiGoalEnv",
    "sb3_mixture/BimodalBandit-v0": "sb3_mixture.envs.bandit:BimodalBanditEnv",
    "sb3_mixture/TwoRoutes-v0": "sb3_mixture.envs.two_routes:TwoRoutesEnv",
}


def register_envs() -> None:
    """Register every id of :data:`ENV_IDS` (once: a second call, e.g. after a reload, does nothing)."""
    for env_id, entry_point in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point)


register_envs()

__all__ = ["ENV_IDS", "GOALS", "BimodalBanditEnv", "MultiGoalEnv", "TwoRoutesEnv", "bimodal_reward", "register_envs"]
