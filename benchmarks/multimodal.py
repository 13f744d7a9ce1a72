"""
Multimodal tasks (issue 4, section 2): does a mixture policy find and keep several modes?

SAC, SACM (N = 2 and 4) and S2ACM (N = 4) on the package's two small tasks, 5 seeds each:

- ``sb3_mixture/MultiGoal-v0``: four goals around the start. After training, 100 stochastic episodes:
  how many distinct goals are reached, how often, and the return; for mixtures also each component alone.
  Also 1000 actions sampled at the origin (where all four goals are equally good): which goal each heads for.
- ``sb3_mixture/BimodalBandit-v0``: reward bumps at a = -1 (height 1) and a = +1 (height 1.5). After
  training, 2000 sampled actions: the share near each bump (|a -/+ 1| < 0.4), the expected reward.

Settings (``CONFIG``): small nets (64, 64), SB3's SAC defaults otherwise (lr 3e-4, batch 256, tau 0.005,
automatic temperatures with target entropy -dim(A), one gradient step per env step). Budget: 8000 steps on
each task. Pilots on this machine: with 8000 steps SAC reaches a goal in every MultiGoal episode and puts all
its bandit actions on a bump (at 3000 bandit steps it had not yet converged); a run then costs 20-35
CPU-seconds (the 40 runs took 18.5 CPU-minutes). A longer check, 30000 MultiGoal steps for SAC and SACM N=4 on
3 seeds, took 10 more. Each run writes its own result file under ``benchmarks/results/multimodal/`` (with
``_<k>k`` in its name for a non-default budget); a rerun skips finished runs.

    nice -n 5 python benchmarks/multimodal.py run            # all runs (resumable)
    nice -n 5 python benchmarks/multimodal.py run --steps 30000 --envs multigoal --algos sac sacm_n4 --seeds 0 1 2
    python benchmarks/multimodal.py run --algos sac --seeds 0 --envs bandit
    python benchmarks/multimodal.py report                   # tables and plots from the result files

``--steps`` sets the budget of every selected task, ``--quick`` makes the default budget 300 steps (to check the
pipeline, with ``--out``).

This file has the tasks' settings (``Settings``: one value per command line, which the runs, the report and the plots
receive) and the runs; ``multimodal_report.py`` the tables, ``multimodal_plot.py`` the figures.
"""

import argparse
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from common import (
    ALGORITHM_LABELS,
    RESULTS,
    SMALL_TASK_SETTINGS,
    algorithms,
    finished,
    make_model,
    run_each,
    run_or_report,
    side_by_side,
    study_parser,
)
from multimodal_report import report

ENVS = {"multigoal": "sb3_mixture/MultiGoal-v0", "bandit": "sb3_mixture/BimodalBandit-v0"}
ALGOS = {
    **algorithms("sac", "sacm_n2"),
    "sacm_n4": ("SACM", {"n_components": 4}),
    "s2acm_n4": ("S2ACM", {"n_components": 4}),
    # Learned mixing weights (issue 10): the first runs had no floor (the default then), the later ones 0.05
    **algorithms(
        "sacm_learned_n2", "sacm_learned_n4", "s2acm_learned_n4", "sacm_learned_n2_floor05", "sacm_learned_n4_floor05"
    ),
}
LABELS = {
    **ALGORITHM_LABELS,
    "sacm_n4": "SACM N=4",
    "s2acm_n4": "S2ACM N=4",
    "sacm_learned_n2": "SACM N=2 learned, no floor",
    "sacm_learned_n4": "SACM N=4 learned, no floor",
    "s2acm_learned_n4": "S2ACM N=4 learned, no floor",
    "sacm_learned_n2_floor05": "SACM N=2 learned, floor 0.05 (default)",
    "sacm_learned_n4_floor05": "SACM N=4 learned, floor 0.05 (default)",
}
# Per task: the default budget and the training settings
CONFIG = {
    "multigoal": {"total_timesteps": 8000, "learning_starts": 1000, "gamma": 0.99},
    "bandit": {"total_timesteps": 8000, "learning_starts": 300, "gamma": 0.99},
}


@dataclass(frozen=True)
class Settings:
    """
    Everything the runs, the report and the plots use, as one value: ``settings_from`` builds it from the command
    line (the defaults are the study's) and each function gets it as an argument.
    """

    out: Path = RESULTS  # the run files go to <out>/multimodal, the report to <out>
    config: dict = field(default_factory=lambda: CONFIG)  # per task: the default budget and the training settings
    eval_episodes: int = 100
    component_episodes: int = 20
    bandit_samples: int = 2000
    origin_samples: int = 1000
    mode_radius: float = 0.4
    min_share: float = 0.05  # a goal or a bump "has mass" if it gets at least this share of episodes or actions
    weight_record_every: int = 250  # env steps between two records of the learned weights at the bandit's state
    envs: dict = field(default_factory=lambda: ENVS)
    algos: dict = field(default_factory=lambda: ALGOS)
    labels: dict = field(default_factory=lambda: LABELS)

    @property
    def folder(self) -> Path:
        return self.out / "multimodal"

    def default_steps(self, env_key: str) -> int:
        """A task's default budget: runs with another one say so in their file names and in the report."""
        return self.config[env_key]["total_timesteps"]


# --quick: 300 steps per run
QUICK_CONFIG = {env_key: {**config, "total_timesteps": 300, "learning_starts": 100} for env_key, config in CONFIG.items()}


def run_name(settings: Settings, env: str, algo: str, seed: int, steps: int) -> str:
    """``<env>_<algo>_s<seed>``, with ``_<k>k`` appended for a budget other than the default."""
    suffix = "" if steps == settings.default_steps(env) else f"_{steps // 1000}k"
    return f"{env}_{algo}_s{seed}{suffix}"


# Evaluation -------------------------------------------------------------------------------------------------------


def multigoal_rollouts(model, settings: Settings, n_episodes: int, seed: int, deterministic: bool = False) -> dict:
    """``n_episodes`` episodes run side by side (one batched ``predict`` per step)."""
    from sb3_mixture.envs import MultiGoalEnv

    envs = [MultiGoalEnv() for _ in range(n_episodes)]
    returns, infos, paths = side_by_side(model, envs, seed, deterministic, keep_paths=n_episodes)
    goals = np.array([info["goal"] for info in infos])
    counts = np.bincount(goals[goals >= 0], minlength=4)
    return {
        "returns": returns.round(4).tolist(),
        "goals": goals.tolist(),
        "goal_counts": counts.tolist(),
        "distinct_goals": int((counts > 0).sum()),
        "goals_with_5pct": int((counts >= settings.min_share * n_episodes).sum()),
        "goals_effective": effective_number(counts),
        "success_rate": float((goals >= 0).mean()),
        "mean_return": float(returns.mean()),
        "paths": [np.round(path, 3).tolist() for path in paths],
    }


def effective_number(counts: "list[int] | np.ndarray") -> float:
    """``exp(entropy)`` of the shares: 1 if everything is on one goal, 4 if spread evenly over four."""
    shares = np.asarray(counts, dtype=float)
    shares = shares[shares > 0] / max(shares.sum(), 1.0)
    return float(np.exp(-(shares * np.log(shares)).sum())) if len(shares) else 0.0


def origin_actions(model, settings: Settings) -> dict:
    """Actions sampled at the origin, the state where the four goals are equally good, and the goal each heads for."""
    from sb3_mixture.envs import GOALS

    n_samples = settings.origin_samples
    actions, _ = model.predict(np.zeros((n_samples, 2), dtype=np.float32), deterministic=False)
    headings = np.argmax(actions @ GOALS.T, axis=1)
    counts = np.bincount(headings, minlength=len(GOALS))
    return {
        "actions": np.round(actions, 3).tolist(),
        "heading_counts": counts.tolist(),
        "headings_effective": effective_number(counts),
        "headings_with_5pct": int((counts >= settings.min_share * n_samples).sum()),
    }


def bandit_actions(model, n_samples: int, deterministic: bool = False) -> np.ndarray:
    actions, _ = model.predict(np.zeros((n_samples, 1), dtype=np.float32), deterministic=deterministic)
    return actions.reshape(-1)


def bandit_summary(settings: Settings, actions: np.ndarray) -> dict:
    from sb3_mixture.envs import bimodal_reward

    radius, min_share = settings.mode_radius, settings.min_share
    near_minus, near_plus = np.abs(actions + 1.0) < radius, np.abs(actions - 1.0) < radius
    return {
        "share_near_minus1": float(near_minus.mean()),
        "share_near_plus1": float(near_plus.mean()),
        "mean_reward": float(np.mean(bimodal_reward(actions))),
        "both_modes": bool(near_minus.mean() >= min_share and near_plus.mean() >= min_share),
    }


def evaluate(model, settings: Settings, env_key: str, seed: int) -> dict:
    from sb3_mixture import SACM

    is_mixture = isinstance(model, SACM)
    eval_seed = 100_000 + 1000 * seed
    result: dict = {}
    if env_key == "multigoal":
        result["stochastic"] = multigoal_rollouts(model, settings, settings.eval_episodes, eval_seed)
        deterministic = multigoal_rollouts(model, settings, 10, eval_seed, deterministic=True)
        result["deterministic"] = {key: deterministic[key] for key in ("goal_counts", "success_rate", "mean_return")}
        result["origin"] = origin_actions(model, settings)
        if is_mixture:
            result["components"] = []
            for component in range(model.n_components):
                with model.policy.use_component(component):
                    alone = multigoal_rollouts(model, settings, settings.component_episodes, eval_seed)
                result["components"].append({key: alone[key] for key in ("goal_counts", "success_rate", "mean_return")})
    else:
        actions = bandit_actions(model, settings.bandit_samples)
        result["stochastic"] = {**bandit_summary(settings, actions), "actions": np.round(actions, 4).tolist()}
        action = float(bandit_actions(model, 1, deterministic=True)[0])
        result["deterministic"] = {"action": action, **bandit_summary(settings, np.array([action]))}
        if is_mixture:
            result["components"] = []
            for component in range(model.n_components):
                with model.policy.use_component(component):
                    alone = bandit_actions(model, settings.bandit_samples // model.n_components)
                    mean_action = float(bandit_actions(model, 1, deterministic=True)[0])
                result["components"].append({"mean_action": mean_action, **bandit_summary(settings, alone)})
    return result


def weight_recorder(every: int, state: np.ndarray):
    """A callback that records w(state) of a learned-weight mixture every ``every`` steps: [[step, w_1, ..., w_N], ...]."""
    import torch as th
    from stable_baselines3.common.callbacks import BaseCallback

    class WeightRecorder(BaseCallback):
        def __init__(self):
            super().__init__()
            self.records: list[list[float]] = []

        def _on_step(self) -> bool:
            if self.num_timesteps % every == 0:
                with th.no_grad():
                    weights = self.model.policy.mixture_log_weights(th.as_tensor(state[None])).exp()[0]
                self.records.append([self.num_timesteps, *np.round(weights.tolist(), 5)])
            return True

    return WeightRecorder()


def execute(settings: Settings, env_key: str, algo: str, seed: int, steps: int) -> dict:
    import gymnasium as gym
    import torch as th

    import sb3_mixture  # noqa: F401 (registers the sb3_mixture/ tasks)

    th.set_num_threads(1)
    start, cpu_start = time.time(), time.process_time()
    training = {key: value for key, value in settings.config[env_key].items() if key != "total_timesteps"}
    model = make_model(settings.algos[algo], gym.make(settings.envs[env_key]), seed, **training)
    class_name, extra = settings.algos[algo]
    learned = extra.get("mixture_weights") == "learned"
    # The bandit has one state; on MultiGoal the origin is where the goals are equally good
    recorder = weight_recorder(settings.weight_record_every, np.zeros(model.observation_space.shape, dtype=np.float32))
    model.learn(steps, callback=recorder if learned else None)
    train_time = time.time() - start
    episodes = list(model.ep_info_buffer)
    result = {
        "env": settings.envs[env_key],
        "env_key": env_key,
        "algo": algo,
        "label": settings.labels[algo],
        "seed": seed,
        "config": {
            **SMALL_TASK_SETTINGS,
            **settings.config[env_key],
            "total_timesteps": steps,
            **extra,
            "algorithm": class_name,
        },
        "train_return_last_episodes": float(np.mean([episode["r"] for episode in episodes])) if episodes else None,
        "weights_over_training": recorder.records if learned else None,
        "evaluation": evaluate(model, settings, env_key, seed),
        "train_wall_s": round(train_time, 1),
        **finished(start, cpu_start),
    }
    return result


def summary(result: dict) -> str:
    stochastic = result["evaluation"]["stochastic"]
    if result["env_key"] == "multigoal":
        return f"goals {stochastic['goal_counts']} return {stochastic['mean_return']:.2f}"
    return (
        f"near -1 {stochastic['share_near_minus1']:.2f} near +1 {stochastic['share_near_plus1']:.2f} "
        f"reward {stochastic['mean_reward']:.3f}"
    )


def run(settings: Settings, envs: list[str], steps: "int | None", algos: list[str], seeds: list[int], force: bool) -> None:
    """The runs of ``envs``, ``algos`` and ``seeds``, with ``steps`` on every task (the task's default if None)."""
    runs = {}
    for env_key in envs:
        budget = steps or settings.default_steps(env_key)
        for seed in seeds:
            for algo in algos:
                runs[run_name(settings, env_key, algo, seed, budget)] = partial(execute, settings, env_key, algo, seed, budget)
    run_each(settings.folder, runs, force, summary)


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(out=args.out, config=QUICK_CONFIG if args.quick else CONFIG)


def main() -> None:
    parser = study_parser(__doc__, "multimodal", ALGOS, [0, 1, 2, 3, 4])
    parser.add_argument("--envs", nargs="+", choices=list(ENVS), default=list(ENVS))
    parser.add_argument("--steps", type=int, help="training budget for every selected task (default: CONFIG's)")
    parser.add_argument("--quick", action="store_true", help="300 steps per run, to check the pipeline (use another --out)")
    args = parser.parse_args()
    run_or_report(args, settings_from(args), run, report, args.envs, args.steps)


if __name__ == "__main__":
    main()
