"""SB3's callbacks, progress bar and evaluate_policy with SACM and S2ACM, their tensorboard run names and logged keys."""

import math

import numpy as np
import pytest
import torch as th
from conftest import ALGOS, SMALL, pendulum
from stable_baselines3.common.callbacks import CheckpointCallback, EvalCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import KVWriter, Logger

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class CollectingWriter(KVWriter):
    """Keeps every dump of the logger."""

    def __init__(self):
        self.dumps: list[dict] = []

    def write(self, key_values, key_excluded, step=0):
        self.dumps.append(dict(key_values))

    def close(self):
        pass


@pytest.mark.parametrize("algo", ALGOS)
def test_progress_bar_callbacks_and_evaluate_policy(algo, tmp_path):
    model = algo("MlpPolicy", pendulum(), seed=0, **SMALL)
    eval_callback = EvalCallback(
        pendulum(), n_eval_episodes=2, eval_freq=50, best_model_save_path=tmp_path / "best", log_path=tmp_path / "eval"
    )
    checkpoint = CheckpointCallback(save_freq=50, save_path=str(tmp_path / "ckpt"), save_replay_buffer=True)
    model.learn(100, callback=[eval_callback, checkpoint], progress_bar=True)
    assert eval_callback.n_calls == 100 and len(eval_callback.evaluations_results) == 2
    assert (tmp_path / "best" / "best_model.zip").is_file()
    assert np.load(tmp_path / "eval" / "evaluations.npz")["results"].shape == (2, 2)
    for steps in (50, 100):
        assert (tmp_path / "ckpt" / f"rl_model_{steps}_steps.zip").is_file()
        assert (tmp_path / "ckpt" / f"rl_model_replay_buffer_{steps}_steps.pkl").is_file()
    restored = algo.load(tmp_path / "ckpt" / "rl_model_100_steps.zip")
    assert type(restored) is algo and restored.num_timesteps == 100
    mean, std = evaluate_policy(model, pendulum(), n_eval_episodes=2)
    assert np.isfinite(mean) and np.isfinite(std) and mean < 0
    rewards, lengths = evaluate_policy(model, pendulum(), n_eval_episodes=2, deterministic=False, return_episode_rewards=True)
    assert lengths == [20, 20] and len(rewards) == 2


@pytest.mark.parametrize("algo", ALGOS)
def test_tensorboard_run_names(algo, tmp_path):
    model = algo("MlpPolicy", pendulum(), tensorboard_log=str(tmp_path), **SMALL)
    model.learn(30)
    model.learn(30)
    model.learn(30, tb_log_name="custom")
    name = algo.__name__
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([f"{name}_1", f"{name}_2", "custom_1"])
    assert any(path.name.startswith("events.out.tfevents") for path in (tmp_path / f"{name}_1").iterdir())


@pytest.mark.parametrize("algo", ALGOS)
def test_logged_keys(algo):
    model = algo("MlpPolicy", pendulum(), n_components=3, seed=0, **SMALL)
    model.log_ent_coef.data.copy_(th.log(th.tensor([0.1, 0.5, 2.0])))
    writer = CollectingWriter()
    model.set_logger(Logger(folder=None, output_formats=[writer]))
    model.learn(100, log_interval=1)  # 5 episodes of 20 steps: 5 dumps, the last 4 after training started
    assert len(writer.dumps) == 5
    expected = {"train/ent_coef", "train/entropy", "train/entropy_marginal", "train/component_kl", "train/actor_loss"}
    expected |= {f"train/ent_coef_{i}" for i in range(3)} | {f"train/mixture_weight_{i}" for i in range(3)}
    expected |= {"train/weight_entropy"}
    for dump in writer.dumps[1:]:
        assert expected <= dump.keys(), expected - dump.keys()
        shares = [dump[f"rollout/component_share_{i}"] for i in range(3)]
        assert sum(shares) == pytest.approx(1.0) and min(shares) > 0
        assert all(np.isfinite(dump[key]) for key in expected)
        assert dump["train/component_kl"] >= 0
        assert "train/ent_coef_3" not in dump and "rollout/component_share_3" not in dump
    # Each temperature is logged separately: they started at 0.1, 0.5 and 2 and moved only a little
    first = writer.dumps[1]
    assert [first[f"train/ent_coef_{i}"] for i in range(3)] == pytest.approx([0.1, 0.5, 2.0], rel=0.05)
    assert first["train/ent_coef"] == pytest.approx((0.1 + 0.5 + 2.0) / 3, rel=0.05)
    # Fixed uniform weights: each 1/3, and H(w) = log 3
    assert [first[f"train/mixture_weight_{i}"] for i in range(3)] == pytest.approx([1 / 3] * 3)
    assert first["train/weight_entropy"] == pytest.approx(math.log(3))
    assert "rollout/component_share_0" in writer.dumps[0] and "train/ent_coef_0" not in writer.dumps[0]
