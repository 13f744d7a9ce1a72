"""
Callbacks: evaluating mixture policies the way the paper reports them, RL Zoo's parallel training for SACM/S2ACM, and
a one-line training summary in place of SB3's logger table (what ``python -m sb3_mixture.train --progress`` prints).
"""

import io
import json
import time
from collections import deque
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from rl_zoo3.callbacks import ParallelTrainCallback as RLZooParallelTrainCallback
from sb3_contrib import TQC
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import CSVOutputFormat, HumanOutputFormat, KVWriter, TensorBoardOutputFormat
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.utils import safe_mean
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize, sync_envs_normalization

from sb3_mixture.evaluation import evaluate_components
from sb3_mixture.mixture import weight_entropy
from sb3_mixture.sacm.sacm import SACM


class MixtureEvalCallback(BaseCallback):
    """
    Every ``eval_freq`` steps, evaluate the stochastic policy, the deterministic policy and (for SACM/S2ACM)
    each component alone, and append the results to ``<log_path>/mixture_evaluations.jsonl``.

    Works for any SB3 algorithm (components are skipped for non-mixtures), so baselines can be evaluated
    the same way. With learned mixing weights each record also holds ``"weights"``: the mean w(s) and the mean
    weight entropy H(w(s)) over the most recent states of the replay buffer (at most ``weight_states``).
    Usable from RL Zoo hyperparameters:
    ``callback: [{"sb3_mixture.callbacks.MixtureEvalCallback": {"eval_freq": 5000}}]``.

    :param eval_freq: evaluate every this many calls of the callback (environment steps per env)
    :param n_eval_episodes: episodes per evaluated policy
    :param log_path: folder of the results file; defaults to the model's logger folder
    :param env_id: evaluation environment id; defaults to the training env's id
    :param weight_states: how many of the replay buffer's most recent states the weight statistics average over
    """

    def __init__(
        self,
        eval_freq: int = 10_000,
        n_eval_episodes: int = 5,
        log_path: "str | None" = None,
        env_id: "str | None" = None,
        weight_states: int = 1000,
        verbose: int = 0,
    ):
        super().__init__(verbose)
        self.weight_states = weight_states
        self.eval_freq = eval_freq
        self.n_eval_episodes = n_eval_episodes
        self.log_path = log_path
        self.env_id = env_id
        self.eval_env: DummyVecEnv | VecNormalize | None = None

    def _init_callback(self) -> None:
        env_id = self.env_id or self.training_env.get_attr("spec")[0].id
        eval_env: Any = DummyVecEnv([lambda: Monitor(gym.make(env_id))])
        if isinstance(self.model.get_vec_normalize_env(), VecNormalize):
            eval_env = VecNormalize(eval_env, training=False, norm_reward=False)
        self.eval_env = eval_env
        folder = Path(self.log_path or self.logger.get_dir() or ".")
        folder.mkdir(parents=True, exist_ok=True)
        self.results_file = folder / "mixture_evaluations.jsonl"

    def evaluate(self) -> dict[str, Any]:
        assert self.eval_env is not None
        if isinstance(self.eval_env, VecNormalize):
            sync_envs_normalization(self.training_env, self.eval_env)
        if isinstance(self.model, SACM):
            results = evaluate_components(self.model, self.eval_env, n_eval_episodes=self.n_eval_episodes)
        else:
            results = {}
            for name, deterministic in (("mixture", False), ("deterministic", True)):
                mean, std = evaluate_policy(self.model, self.eval_env, self.n_eval_episodes, deterministic=deterministic)
                results[name] = (float(mean), float(std))  # type: ignore[arg-type]
        record: dict[str, Any] = {"timesteps": self.num_timesteps, **{key: list(value) for key, value in results.items()}}
        if isinstance(self.model, SACM) and self.model.policy.component_choice.state_dependent_weights:
            weights = self.weight_statistics()
            if weights is not None:
                record["weights"] = weights
        return record

    def weight_statistics(self) -> "dict[str, Any] | None":
        """Mean w(s) and mean H(w(s)) over the replay buffer's most recent states (no sampling: no random draws)."""
        assert isinstance(self.model, SACM)
        buffer = self.model.replay_buffer
        if buffer is None or buffer.size() == 0:
            return None
        end = buffer.buffer_size if buffer.full else buffer.pos
        rows = np.arange(max(0, end - max(1, self.weight_states // buffer.n_envs)), end)

        def recent(array: np.ndarray) -> np.ndarray:
            return array[rows].reshape(-1, *array.shape[2:])

        if isinstance(buffer.observations, dict):
            observations: Any = {key: recent(value) for key, value in buffer.observations.items()}
        else:
            observations = recent(buffer.observations)
        observations = buffer._normalize_obs(observations, self.model.get_vec_normalize_env())
        with th.no_grad():
            observation_tensor = self.model.policy.obs_to_tensor(observations)[0]
            log_weights = self.model.policy.mixture_log_weights(observation_tensor, deterministic=True)
        return {
            "states": int(log_weights.shape[0]),
            "mean": log_weights.exp().mean(dim=0).tolist(),
            "entropy": float(weight_entropy(log_weights).mean()),
            "max_weight": float(log_weights.exp().max(dim=-1).values.mean()),
        }

    def _on_step(self) -> bool:
        if self.eval_freq > 0 and self.n_calls % self.eval_freq == 0:
            record = self.evaluate()
            with self.results_file.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
            for key, value in record.items():
                if key == "weights":
                    self.logger.record("eval_mixture/weight_entropy", value["entropy"])
                elif key != "timesteps":
                    self.logger.record(f"eval_mixture/{key}", value[0])
            if self.verbose:
                print(f"MixtureEvalCallback at {self.num_timesteps}: " + ", ".join(f"{k} {v}" for k, v in record.items()))
        return True


class ParallelTrainCallback(RLZooParallelTrainCallback):
    """
    RL Zoo's ``ParallelTrainCallback`` (collect with the model, train a copy of it in a thread) for SACM and S2ACM.

    RL Zoo's reloads the copy as ``SAC`` (or ``TQC``) whenever ``isinstance`` holds, so for SACM it would train
    a plain SAC on the mixture's policy; this one reloads the model as its own class. It also starts with no
    training thread, so a run that ends before ``learning_starts`` does not fail when waiting for one.
    ``python -m sb3_mixture.train`` puts it in place of RL Zoo's (``callback: rl_zoo3.callbacks.ParallelTrainCallback``
    in a hyperparameter file then gets this one); ``sb3_mixture.callbacks.ParallelTrainCallback`` names it directly.
    """

    def __init__(self, gradient_steps: int = 100, verbose: int = 0, sleep_time: float = 0.0):
        super().__init__(gradient_steps=gradient_steps, verbose=verbose, sleep_time=sleep_time)
        self.process = None  # type: ignore[assignment]

    def _init_callback(self) -> None:
        if not isinstance(self.model, (SAC, TQC)):
            raise TypeError(f"ParallelTrainCallback supports SAC, TQC and their subclasses, not {type(self.model).__name__}")
        collector = self.model
        saved = io.BytesIO()
        collector.save(saved)
        saved.seek(0)
        self.model_class = type(collector)
        self._model = self.model_class.load(saved)
        self._model.set_logger(collector.logger)
        self.batch_size = self._model.batch_size
        trainer = self._model

        # The collecting model does no gradient steps (the copy does, in _train_thread), and saving it saves the copy
        def no_training(*args: Any, **kwargs: Any) -> None:
            return None

        def save_trained_copy(*args: Any, **kwargs: Any) -> None:
            return trainer.save(*args, **kwargs)

        collector.train = no_training  # type: ignore[method-assign]
        collector.save = save_trained_copy  # type: ignore[method-assign]


class _LastValues(KVWriter):
    """An output format that keeps the last value the logger wrote of each key (for the summary's ``ent_coef``)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        # Merged, not replaced: the train/ keys are recorded once per training round, and the dumps at the episode
        # ends that follow until the next round do not hold them
        self.values.update(key_values)

    def close(self) -> None:
        pass


class TrainingSummaryCallback(BaseCallback):
    """
    SB3's logger table off the terminal, and one summary line on it every ``summary_freq`` steps and at the end.

    A line reads ``step 10000/3000000: episodes 412, ep_rew_mean 23.4, fps 158, ent_coef 0.12``: the episodes
    finished in this ``learn`` call, the mean return of the last 100 of them (SB3's ``rollout/ep_rew_mean``), the
    steps per second since training started (``time/fps``) and the entropy coefficient the logger last wrote
    (``train/ent_coef``, once training has started). The names are the logger's, so they are the columns of the full
    logs. The logger's other outputs stay (tensorboard, e.g. RL Zoo's ``-tb``), and with ``log_folder`` it also writes
    its full table to ``<log_folder>/progress.csv`` (SB3's CSV format; rewritten by each ``learn`` call).
    ``python -m sb3_mixture.train --progress`` adds one for RL Zoo's run folder unless ``--verbose`` is given
    (:class:`sb3_mixture.tuning.MixtureExperimentManager`); it works for any SB3 algorithm.

    :param summary_freq: print a line every this many environment steps (all envs together)
    :param log_folder: folder of the ``progress.csv`` to write; None adds no CSV output
    :param verbose: 0 prints no lines (the table still leaves the terminal)
    """

    def __init__(self, summary_freq: int = 10_000, log_folder: "str | Path | None" = None, verbose: int = 1):
        super().__init__(verbose)
        if summary_freq <= 0:
            raise ValueError(f"summary_freq must be positive, got {summary_freq}")
        self.summary_freq = summary_freq
        self.log_folder = None if log_folder is None else Path(log_folder)
        self._last_values = _LastValues()
        self._csv: CSVOutputFormat | None = None

    def _on_training_start(self) -> None:
        formats = self.logger.output_formats
        # SB3's "stdout" format is the HumanOutputFormat on a stream; the "log" one owns its file and may stay
        formats[:] = [fmt for fmt in formats if not (isinstance(fmt, HumanOutputFormat) and not fmt.own_file)]
        written = []
        if self.log_folder is not None:
            self.log_folder.mkdir(parents=True, exist_ok=True)
            self._csv = CSVOutputFormat(str(self.log_folder / "progress.csv"))
            formats.append(self._csv)
            written.append(str(self.log_folder / "progress.csv"))
        if any(isinstance(fmt, TensorBoardOutputFormat) for fmt in formats):
            written.append(f"tensorboard {self.logger.get_dir()}")
        formats.append(self._last_values)
        self._start_time = time.time()
        self._start_steps = self.num_timesteps
        self._total = self.locals.get("total_timesteps")
        self._episodes = 0
        # Our own window of returns (SB3's size): SB3 adds a step's finished episodes to model.ep_info_buffer only
        # after the callbacks' on_step, so a line printed then would count an episode whose return it leaves out
        self._returns: deque[float] = deque(maxlen=getattr(self.model, "_stats_window_size", 100))
        self._next_line = (self.num_timesteps // self.summary_freq + 1) * self.summary_freq
        self._last_line_at: int | None = None
        if self.verbose:
            print("Training logs (SB3's logger table): " + (", ".join(written) or "none (no log_folder, no tensorboard)"))

    def _on_step(self) -> bool:
        self._episodes += int(np.sum(self.locals.get("dones", 0)))
        # The Monitor wrapper's record of each episode that ended (what SB3's ep_info_buffer holds)
        self._returns.extend(float(info["episode"]["r"]) for info in self.locals.get("infos", ()) if "episode" in info)
        if self.num_timesteps >= self._next_line:
            self._print_line()
            self._next_line = (self.num_timesteps // self.summary_freq + 1) * self.summary_freq
        return True

    def _on_training_end(self) -> None:
        if self._last_line_at != self.num_timesteps:
            self._print_line()
        # Our outputs leave with the training that added them; the file is then complete
        formats = self.logger.output_formats
        formats[:] = [fmt for fmt in formats if fmt is not self._last_values and fmt is not self._csv]
        if self._csv is not None:
            self._csv.close()
            self._csv = None

    def summary(self) -> str:
        """The summary line for the current step."""
        steps = f"{self.num_timesteps}" + ("" if self._total is None else f"/{self._total}")
        parts = [f"episodes {self._episodes}"]
        if self._returns:
            parts.append(f"ep_rew_mean {safe_mean(list(self._returns)):.4g}")
        elapsed = max(time.time() - self._start_time, 1e-9)
        parts.append(f"fps {int((self.num_timesteps - self._start_steps) / elapsed)}")
        ent_coef = self._last_values.values.get("train/ent_coef")
        if ent_coef is not None:
            parts.append(f"ent_coef {ent_coef:.3g}")
        return f"step {steps}: " + ", ".join(parts)

    def _print_line(self) -> None:
        self._last_line_at = self.num_timesteps
        if self.verbose:
            print(self.summary())
