"""
SB3's callbacks, progress bar and evaluate_policy with SACM and S2ACM, their tensorboard run names and logged keys, and
the training summary that replaces SB3's logger table on the terminal.
"""

import csv
import math

import numpy as np
import pytest
import torch as th
from conftest import ALGOS, SMALL, pendulum
from stable_baselines3.common.callbacks import CheckpointCallback, EvalCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import CSVOutputFormat, HumanOutputFormat, KVWriter, Logger

from sb3_mixture import SACM
from sb3_mixture.callbacks import TrainingSummaryCallback

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


def test_training_summary_replaces_the_logger_table(tmp_path, capsys):
    # Training rounds after steps 50 and 100: the train/ keys of the first are in the dump at 60 only, not in those at
    # 80 and 100 (as with make train's 1000-step rounds and its dumps every 4 episodes)
    model = SACM("MlpPolicy", pendulum(), seed=0, verbose=1, tensorboard_log=str(tmp_path / "tb"), train_freq=50, **SMALL)
    summary = TrainingSummaryCallback(summary_freq=40, log_folder=tmp_path / "run")
    model.learn(100, log_interval=1, callback=summary)  # 5 episodes of 20 steps: 5 dumps of the logger
    out = capsys.readouterr().out
    # SB3's table (its section names, its frame) is not printed; a line at 40 and 80 steps and one at the end is
    assert "rollout/" not in out and "-----" not in out
    lines = [line for line in out.splitlines() if line.startswith("step ")]
    assert [line.split(":")[0] for line in lines] == ["step 40/100", "step 80/100", "step 100/100"]
    assert lines[-1].startswith("step 100/100: episodes 5, ep_rew_mean ") and "fps " in lines[-1]
    # The entropy coefficient once the logger has written one, and still after dumps without the train/ keys
    assert "ent_coef" not in lines[0] and "ent_coef" in lines[1] and "ent_coef" in lines[2]
    assert f"Training logs (SB3's logger table): {tmp_path / 'run' / 'progress.csv'}, tensorboard {tmp_path / 'tb'}" in out
    # The full table: every dump in the CSV file, and tensorboard's events still written
    with (tmp_path / "run" / "progress.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["time/total_timesteps"]) for row in rows] == [20, 40, 60, 80, 100]
    assert [bool(row["train/ent_coef"]) for row in rows] == [False, False, True, False, False]
    # The lines' mean returns are SB3's rollout/ep_rew_mean, the episode that ends at the line's step included
    for line, row in zip(lines, (rows[1], rows[3], rows[4]), strict=True):
        assert float(line.split("ep_rew_mean ")[1].split(",")[0]) == pytest.approx(float(row["rollout/ep_rew_mean"]), rel=1e-3)
    assert any(path.name.startswith("events.out.tfevents") for path in (tmp_path / "tb" / "SACM_1").iterdir())
    # The summary's outputs left with its training: no stdout table, no CSV file left open
    formats = model.logger.output_formats
    assert not any(isinstance(fmt, (HumanOutputFormat, CSVOutputFormat)) for fmt in formats)
