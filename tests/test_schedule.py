"""The training envs' component schedule survives evaluations run through the same policy in between."""

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from sb3_mixture import SACM


class _RecordAndEvaluate(BaseCallback):
    def __init__(self):
        super().__init__()
        self.acting = []
        self.eval_env = Monitor(gym.make("Pendulum-v1"))

    def _on_step(self) -> bool:
        self.acting.append(int(self.model.policy.acting_components[0]))
        if self.n_calls % 100 == 0:
            evaluate_policy(self.model, self.eval_env, n_eval_episodes=1, deterministic=False)
        return True


def test_episode_schedule_keeps_one_component_per_training_episode_despite_evaluations():
    model = SACM(
        "MlpPolicy",
        "Pendulum-v1",
        component_schedule="episode",
        learning_starts=100,
        batch_size=32,
        policy_kwargs=dict(net_arch=[16]),
        seed=0,
    )
    callback = _RecordAndEvaluate()
    model.learn(800, callback=callback)
    per_episode = np.array(callback.acting).reshape(4, 200)  # Pendulum episodes last 200 steps
    assert all(len(set(episode)) == 1 for episode in per_episode), per_episode
    # ... and episodes do draw afresh (with this seed the four episodes do not all share one component)
    assert len(set(per_episode[:, 0])) > 1
