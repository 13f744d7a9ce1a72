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
"""

import argparse
import copy
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
RUNS = RESULTS / "multimodal"

ENVS = {"multigoal": "sb3_mixture/MultiGoal-v0", "bandit": "sb3_mixture/BimodalBandit-v0"}
# The first learned-weight runs had no floor (the default then); the floor of 0.05 became the default after them
LEARNED = {"mixture_weights": "learned", "mixture_weight_floor": 0.0}
ALGOS = {
    "sac": ("SAC", {}),
    "sacm_n2": ("SACM", {"n_components": 2}),
    "sacm_n4": ("SACM", {"n_components": 4}),
    "s2acm_n4": ("S2ACM", {"n_components": 4}),
    # Learned mixing weights (issue 10), without and with the weight floor
    "sacm_learned_n2": ("SACM", {"n_components": 2, **LEARNED}),
    "sacm_learned_n4": ("SACM", {"n_components": 4, **LEARNED}),
    "s2acm_learned_n4": ("S2ACM", {"n_components": 4, **LEARNED}),
    "sacm_learned_n2_floor05": ("SACM", {"n_components": 2, **LEARNED, "mixture_weight_floor": 0.05}),
    "sacm_learned_n4_floor05": ("SACM", {"n_components": 4, **LEARNED, "mixture_weight_floor": 0.05}),
}
LABELS = {
    "sac": "SAC",
    "sacm_n2": "SACM N=2",
    "sacm_n4": "SACM N=4",
    "s2acm_n4": "S2ACM N=4",
    "sacm_learned_n2": "SACM N=2 learned, no floor",
    "sacm_learned_n4": "SACM N=4 learned, no floor",
    "s2acm_learned_n4": "S2ACM N=4 learned, no floor",
    "sacm_learned_n2_floor05": "SACM N=2 learned, floor 0.05 (default)",
    "sacm_learned_n4_floor05": "SACM N=4 learned, floor 0.05 (default)",
}
WEIGHT_RECORD_EVERY = 250  # env steps between two records of the learned weights at the bandit's state
CONFIG = {
    "multigoal": {"total_timesteps": 8000, "learning_starts": 1000, "gamma": 0.99},
    "bandit": {"total_timesteps": 8000, "learning_starts": 300, "gamma": 0.99},
}
COMMON = {"batch_size": 256, "learning_rate": 3e-4, "buffer_size": 100_000, "policy_kwargs": {"net_arch": [64, 64]}}
EVAL_EPISODES = 100
COMPONENT_EPISODES = 20
BANDIT_SAMPLES = 2000
ORIGIN_SAMPLES = 1000
MODE_RADIUS = 0.4
MIN_SHARE = 0.05  # a goal or a bump "has mass" if it gets at least this share of episodes or actions


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return f"{platform.node()}: {os.cpu_count()} CPUs, {cpu}"


def run_name(env: str, algo: str, seed: int, steps: int) -> str:
    """``<env>_<algo>_s<seed>``, with ``_<k>k`` appended for a budget other than the default."""
    suffix = "" if steps == CONFIG[env]["total_timesteps"] else f"_{steps // 1000}k"
    return f"{env}_{algo}_s{seed}{suffix}"


def steps_of(result: dict) -> int:
    return int(result["config"]["total_timesteps"])


def make_model(env_key: str, algo: str, seed: int):
    import gymnasium as gym
    from stable_baselines3 import SAC

    import sb3_mixture

    class_name, extra = ALGOS[algo]
    algo_class = SAC if class_name == "SAC" else getattr(sb3_mixture, class_name)
    config = {key: value for key, value in CONFIG[env_key].items() if key != "total_timesteps"}
    env = gym.make(ENVS[env_key])
    # A copy: SB3 writes into the policy_kwargs it is given
    return algo_class("MlpPolicy", env, seed=seed, verbose=0, device="cpu", **copy.deepcopy(COMMON), **config, **extra)


# Evaluation -------------------------------------------------------------------------------------------------------


def multigoal_rollouts(model, n_episodes: int, seed: int, deterministic: bool = False) -> dict:
    """``n_episodes`` episodes run side by side (one batched ``predict`` per step)."""
    from sb3_mixture.envs import MultiGoalEnv

    envs = [MultiGoalEnv() for _ in range(n_episodes)]
    observations = np.stack([env.reset(seed=seed + index)[0] for index, env in enumerate(envs)])
    paths = [[observation.tolist()] for observation in observations]
    returns, goals = np.zeros(n_episodes), np.full(n_episodes, -1)
    active = np.ones(n_episodes, dtype=bool)
    while active.any():
        actions, _ = model.predict(observations, deterministic=deterministic)
        for index in np.flatnonzero(active):
            observation, reward, terminated, truncated, info = envs[index].step(actions[index])
            observations[index] = observation
            returns[index] += reward
            paths[index].append(observation.tolist())
            if terminated or truncated:
                active[index] = False
                goals[index] = info["goal"]
    counts = np.bincount(goals[goals >= 0], minlength=4)
    return {
        "returns": returns.round(4).tolist(),
        "goals": goals.tolist(),
        "goal_counts": counts.tolist(),
        "distinct_goals": int((counts > 0).sum()),
        "goals_with_5pct": int((counts >= MIN_SHARE * n_episodes).sum()),
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


def origin_actions(model, n_samples: int) -> dict:
    """Actions sampled at the origin, the state where the four goals are equally good, and the goal each heads for."""
    from sb3_mixture.envs import GOALS

    actions, _ = model.predict(np.zeros((n_samples, 2), dtype=np.float32), deterministic=False)
    headings = np.argmax(actions @ GOALS.T, axis=1)
    counts = np.bincount(headings, minlength=len(GOALS))
    return {
        "actions": np.round(actions, 3).tolist(),
        "heading_counts": counts.tolist(),
        "headings_effective": effective_number(counts),
        "headings_with_5pct": int((counts >= MIN_SHARE * n_samples).sum()),
    }


def bandit_actions(model, n_samples: int, deterministic: bool = False) -> np.ndarray:
    actions, _ = model.predict(np.zeros((n_samples, 1), dtype=np.float32), deterministic=deterministic)
    return actions.reshape(-1)


def bandit_summary(actions: np.ndarray) -> dict:
    from sb3_mixture.envs import bimodal_reward

    near_minus, near_plus = np.abs(actions + 1.0) < MODE_RADIUS, np.abs(actions - 1.0) < MODE_RADIUS
    return {
        "share_near_minus1": float(near_minus.mean()),
        "share_near_plus1": float(near_plus.mean()),
        "mean_reward": float(np.mean(bimodal_reward(actions))),
        "both_modes": bool(near_minus.mean() >= MIN_SHARE and near_plus.mean() >= MIN_SHARE),
    }


def evaluate(model, env_key: str, seed: int) -> dict:
    from sb3_mixture import SACM

    is_mixture = isinstance(model, SACM)
    eval_seed = 100_000 + 1000 * seed
    result: dict = {}
    if env_key == "multigoal":
        result["stochastic"] = multigoal_rollouts(model, EVAL_EPISODES, eval_seed)
        deterministic = multigoal_rollouts(model, 10, eval_seed, deterministic=True)
        result["deterministic"] = {key: deterministic[key] for key in ("goal_counts", "success_rate", "mean_return")}
        result["origin"] = origin_actions(model, ORIGIN_SAMPLES)
        if is_mixture:
            result["components"] = []
            for component in range(model.n_components):
                with model.policy.use_component(component):
                    alone = multigoal_rollouts(model, COMPONENT_EPISODES, eval_seed)
                result["components"].append({key: alone[key] for key in ("goal_counts", "success_rate", "mean_return")})
    else:
        actions = bandit_actions(model, BANDIT_SAMPLES)
        result["stochastic"] = {**bandit_summary(actions), "actions": np.round(actions, 4).tolist()}
        action = float(bandit_actions(model, 1, deterministic=True)[0])
        result["deterministic"] = {"action": action, **bandit_summary(np.array([action]))}
        if is_mixture:
            result["components"] = []
            for component in range(model.n_components):
                with model.policy.use_component(component):
                    alone = bandit_actions(model, BANDIT_SAMPLES // model.n_components)
                    mean_action = float(bandit_actions(model, 1, deterministic=True)[0])
                result["components"].append({"mean_action": mean_action, **bandit_summary(alone)})
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
                    weights = self.model.actor.mixture_log_weights(th.as_tensor(state[None])).exp()[0]
                self.records.append([self.num_timesteps, *np.round(weights.tolist(), 5)])
            return True

    return WeightRecorder()


def execute(env_key: str, algo: str, seed: int, steps: int) -> dict:
    import torch as th

    th.set_num_threads(1)
    start, cpu_start = time.time(), time.process_time()
    model = make_model(env_key, algo, seed)
    learned = ALGOS[algo][1].get("mixture_weights") == "learned"
    # The bandit has one state; on MultiGoal the origin is where the goals are equally good
    recorder = weight_recorder(WEIGHT_RECORD_EVERY, np.zeros(model.observation_space.shape, dtype=np.float32))
    model.learn(steps, callback=recorder if learned else None)
    train_time = time.time() - start
    episodes = list(model.ep_info_buffer)
    result = {
        "env": ENVS[env_key],
        "env_key": env_key,
        "algo": algo,
        "label": LABELS[algo],
        "seed": seed,
        "config": {**COMMON, **CONFIG[env_key], "total_timesteps": steps, **ALGOS[algo][1], "algorithm": ALGOS[algo][0]},
        "train_return_last_episodes": float(np.mean([episode["r"] for episode in episodes])) if episodes else None,
        "weights_over_training": recorder.records if learned else None,
        "evaluation": evaluate(model, env_key, seed),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "train_wall_s": round(train_time, 1),
        "wall_s": round(time.time() - start, 1),
        "cpu_s": round(time.process_time() - cpu_start, 1),
    }
    return result


def run(args: argparse.Namespace) -> None:
    RUNS.mkdir(parents=True, exist_ok=True)
    for env_key in args.envs:
        for seed in args.seeds:
            for algo in args.algos:
                steps = args.steps or CONFIG[env_key]["total_timesteps"]
                path = RUNS / f"{run_name(env_key, algo, seed, steps)}.json"
                if path.exists() and not args.force:
                    print(f"skip {path.name} (done)", flush=True)
                    continue
                result = execute(env_key, algo, seed, steps)
                path.write_text(json.dumps(result))
                stochastic = result["evaluation"]["stochastic"]
                if env_key == "multigoal":
                    summary = f"goals {stochastic['goal_counts']} return {stochastic['mean_return']:.2f}"
                else:
                    summary = (
                        f"near -1 {stochastic['share_near_minus1']:.2f} near +1 {stochastic['share_near_plus1']:.2f} "
                        f"reward {stochastic['mean_reward']:.3f}"
                    )
                print(f"{path.stem}: {summary} ({result['cpu_s']} CPU-s)", flush=True)


# Report -----------------------------------------------------------------------------------------------------------


def load_runs() -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(RUNS.glob("*.json"))]


def iqm_with_ci(values: list[float]) -> tuple[float, float, float]:
    """IQM over seeds and its 95% stratified-bootstrap CI (rliable)."""
    from rliable import library as rly
    from rliable import metrics

    scores = {"x": np.asarray(values, dtype=float).reshape(-1, 1)}
    # rliable resamples with numpy's global generator: seeded so that every report prints the same CIs
    np.random.seed(0)
    point, interval = rly.get_interval_estimates(scores, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=2000)
    return float(point["x"][0]), float(interval["x"][0, 0]), float(interval["x"][1, 0])


def per_run_rows(runs: list[dict]) -> list[dict]:
    rows = []
    for result in runs:
        evaluation = result["evaluation"]
        stochastic, deterministic = evaluation["stochastic"], evaluation["deterministic"]
        row = {"env": result["env"], "algo": result["algo"], "label": result["label"], "seed": result["seed"]}
        row["steps"] = steps_of(result)
        if result["env_key"] == "multigoal":
            row.update(
                distinct_goals=stochastic["distinct_goals"],
                goals_with_5pct=stochastic["goals_with_5pct"],
                goals_effective=stochastic["goals_effective"],
                goal_counts=" ".join(map(str, stochastic["goal_counts"])),
                origin_headings_with_5pct=evaluation["origin"]["headings_with_5pct"],
                origin_headings_effective=evaluation["origin"]["headings_effective"],
                origin_heading_counts=" ".join(map(str, evaluation["origin"]["heading_counts"])),
                success_rate=stochastic["success_rate"],
                stochastic_return=stochastic["mean_return"],
                deterministic_return=deterministic["mean_return"],
            )
            if "components" in evaluation:
                goals = [int(np.argmax(c["goal_counts"])) if sum(c["goal_counts"]) else -1 for c in evaluation["components"]]
                row["component_main_goals"] = " ".join(map(str, goals))
                row["components_distinct_main_goals"] = len({goal for goal in goals if goal >= 0})
        else:
            row.update(
                share_near_minus1=stochastic["share_near_minus1"],
                share_near_plus1=stochastic["share_near_plus1"],
                both_modes=stochastic["both_modes"],
                stochastic_return=stochastic["mean_reward"],
                deterministic_return=deterministic["mean_reward"],
                deterministic_action=deterministic["action"],
            )
            if "components" in evaluation:
                row["component_mean_actions"] = " ".join(f"{c['mean_action']:.2f}" for c in evaluation["components"])
        row["cpu_s"] = result["cpu_s"]
        rows.append(row)
    return rows


def aggregate(rows: list[dict]) -> list[dict]:
    table = []
    budgets = sorted({(row["env"], row["steps"]) for row in rows})
    for env, steps in ((env, steps) for env in ENVS.values() for e, steps in budgets if e == env):
        for algo in ALGOS:
            group = [row for row in rows if row["env"] == env and row["algo"] == algo and row["steps"] == steps]
            if not group:
                continue
            returns = [row["stochastic_return"] for row in group]
            iqm, low, high = iqm_with_ci(returns)
            entry = {
                "env": env,
                "algo": algo,
                "label": LABELS[algo],
                "steps": steps,
                "seeds": len(group),
                "return_mean": float(np.mean(returns)),
                "return_std": float(np.std(returns)),
                "return_iqm": iqm,
                "return_iqm_ci": [low, high],
                "deterministic_return_mean": float(np.mean([row["deterministic_return"] for row in group])),
                "cpu_s_mean": float(np.mean([row["cpu_s"] for row in group])),
            }
            if env == ENVS["multigoal"]:
                entry.update(
                    distinct_goals_mean=float(np.mean([row["distinct_goals"] for row in group])),
                    distinct_goals_per_seed=[row["distinct_goals"] for row in group],
                    goals_with_5pct_mean=float(np.mean([row["goals_with_5pct"] for row in group])),
                    goals_with_5pct_per_seed=[row["goals_with_5pct"] for row in group],
                    goals_effective_mean=float(np.mean([row["goals_effective"] for row in group])),
                    origin_headings_with_5pct_per_seed=[row["origin_headings_with_5pct"] for row in group],
                    origin_headings_effective_mean=float(np.mean([row["origin_headings_effective"] for row in group])),
                    success_rate_mean=float(np.mean([row["success_rate"] for row in group])),
                )
                if "components_distinct_main_goals" in group[0]:
                    entry["components_distinct_main_goals_per_seed"] = [row["components_distinct_main_goals"] for row in group]
            else:
                entry.update(
                    share_near_minus1_mean=float(np.mean([row["share_near_minus1"] for row in group])),
                    share_near_plus1_mean=float(np.mean([row["share_near_plus1"] for row in group])),
                    seeds_with_both_modes=int(sum(row["both_modes"] for row in group)),
                    seeds_mostly_on_plus1=int(sum(row["share_near_plus1"] > 0.5 for row in group)),
                    seeds_mostly_on_minus1=int(sum(row["share_near_minus1"] > 0.5 for row in group)),
                )
            table.append(entry)
    return table


def markdown(table: list[dict], runs: list[dict], meta: dict) -> str:
    lines = [
        "# Multimodal tasks: SAC vs SACM vs S2ACM",
        "",
        f"Generated by `{meta['report_command']}` from {len(runs)} result files in `multimodal/` (runs made with "
        f"`{meta['run_commands'][0] if meta['run_commands'] else '?'}` on {meta['machines'][0] if meta['machines'] else '?'}, "
        f"{meta['first_date']} to {meta['last_date']}; total training + evaluation CPU time {meta['total_cpu_min']:.1f} min).",
        "",
        f"Settings (from the result files): {json.dumps(meta['settings_used'])}; everything else SB3's SAC defaults "
        "(automatic temperatures, target entropy "
        "-dim(A)); the mixtures use the package defaults (mixed marginal estimator, a new component every step). "
        "Returns are of the stochastic policy; IQM over seeds with a 95% stratified-bootstrap CI (rliable).",
        "",
        "## MultiGoal (sb3_mixture/MultiGoal-v0)",
        "",
        f"{EVAL_EPISODES} stochastic episodes per seed. Distinct goals: goals reached at least once; >=5%: goals reached in "
        f"at least {int(MIN_SHARE * EVAL_EPISODES)} episodes; effective: exp(entropy of the goal shares), 1 to 4. "
        f"Per seed in brackets. At the origin: {ORIGIN_SAMPLES} actions sampled at (0, 0), each assigned to the goal it "
        "heads for (largest dot product); directions with >= 5% of them, and their effective number. For mixtures, "
        "'component goals': how many distinct goals the components reach most often when each acts alone "
        f"({COMPONENT_EPISODES} episodes each). Goal diversity across episodes can come from the start noise (std 0.1) "
        "through a state-dependent policy as well as from a multimodal action distribution; the two 'origin' columns "
        "isolate the latter.",
        "",
        "| algorithm | steps | seeds | distinct goals | goals >=5% | effective goals | directions at origin >=5% "
        "| effective directions at origin | success rate | return mean ± std | return IQM [95% CI] "
        "| deterministic return | component goals | CPU s / run |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in (e for e in table if e["env"] == ENVS["multigoal"]):
        components = entry.get("components_distinct_main_goals_per_seed")
        lines.append(
            f"| {entry['label']} | {entry['steps']} | {entry['seeds']} "
            f"| {entry['distinct_goals_mean']:.1f} {entry['distinct_goals_per_seed']} "
            f"| {entry['goals_with_5pct_mean']:.1f} {entry['goals_with_5pct_per_seed']} | {entry['goals_effective_mean']:.2f} "
            f"| {entry['origin_headings_with_5pct_per_seed']} | {entry['origin_headings_effective_mean']:.2f} "
            f"| {entry['success_rate_mean']:.2f} "
            f"| {entry['return_mean']:.2f} ± {entry['return_std']:.2f} | {entry['return_iqm']:.2f} "
            f"[{entry['return_iqm_ci'][0]:.2f}, {entry['return_iqm_ci'][1]:.2f}] | {entry['deterministic_return_mean']:.2f} "
            f"| {components if components else '-'} | {entry['cpu_s_mean']:.0f} |"
        )
    lines += [
        "",
        "![MultiGoal trajectories](multimodal_multigoal_trajectories.png)",
        "",
        "![MultiGoal actions at the origin](multimodal_multigoal_origin_actions.png)",
        *[
            f"\nTrajectories after {steps} steps: [multimodal_multigoal_trajectories_{steps // 1000}k.png]"
            f"(multimodal_multigoal_trajectories_{steps // 1000}k.png)"
            for steps in sorted({steps_of(r) for r in runs if r["env_key"] == "multigoal"})
            if steps != CONFIG["multigoal"]["total_timesteps"]
        ],
        "",
        "## Bimodal bandit (sb3_mixture/BimodalBandit-v0)",
        "",
        f"{BANDIT_SAMPLES} sampled actions per seed; share within {MODE_RADIUS} of each bump (mean over seeds); seeds with "
        f"at least {MIN_SHARE:.0%} of the actions on both bumps; seeds with most mass on one bump. The best possible "
        "expected reward is 1.5 (all mass at +1).",
        "",
        "| algorithm | steps | seeds | share near -1 | share near +1 | seeds with both | mostly +1 / mostly -1 "
        "| expected reward mean ± std | IQM [95% CI] | deterministic reward | CPU s / run |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in (e for e in table if e["env"] == ENVS["bandit"]):
        lines.append(
            f"| {entry['label']} | {entry['steps']} | {entry['seeds']} | {entry['share_near_minus1_mean']:.2f} "
            f"| {entry['share_near_plus1_mean']:.2f} "
            f"| {entry['seeds_with_both_modes']} | {entry['seeds_mostly_on_plus1']} / {entry['seeds_mostly_on_minus1']} "
            f"| {entry['return_mean']:.3f} ± {entry['return_std']:.3f} | {entry['return_iqm']:.3f} "
            f"[{entry['return_iqm_ci'][0]:.3f}, {entry['return_iqm_ci'][1]:.3f}] | {entry['deterministic_return_mean']:.3f} "
            f"| {entry['cpu_s_mean']:.0f} |"
        )
    lines += [
        "",
        "S2ACM differs from SACM only in the entropy bonus inside the bootstrapped critic target; every bandit episode "
        "ends after one step (done = 1), so that term is multiplied by zero and S2ACM and SACM with the same N and seed "
        "run the same computation: identical bandit rows are expected.",
        "",
        "![Bandit actions](multimodal_bandit_actions.png)",
        "",
        "Learned weights (the rows marked learned): the weight at the bandit's one state on the component(s) whose mean "
        "ends within 0.4 of each bump, recorded every "
        f"{WEIGHT_RECORD_EVERY} steps.",
        "",
        "![Bandit weights](multimodal_bandit_weights.png)",
        "",
        "## Per run",
        "",
    ]
    for env_key, env in ENVS.items():
        lines.append(f"### {env}")
        lines.append("")

        def order_key(result: dict) -> tuple[int, int, int]:
            return steps_of(result), list(ALGOS).index(result["algo"]), result["seed"]

        order = sorted((r for r in runs if r["env"] == env), key=order_key)
        for result in order:
            evaluation = result["evaluation"]
            if env_key == "multigoal":
                text = f"goal counts {evaluation['stochastic']['goal_counts']}"
                text += f", headings at the origin {evaluation['origin']['heading_counts']}"
                if "components" in evaluation:
                    text += "; components alone: " + ", ".join(str(c["goal_counts"]) for c in evaluation["components"])
            else:
                stochastic = evaluation["stochastic"]
                text = f"near -1 {stochastic['share_near_minus1']:.2f}, near +1 {stochastic['share_near_plus1']:.2f}"
                text += f", deterministic action {evaluation['deterministic']['action']:.2f}"
                if "components" in evaluation:
                    text += "; component means " + ", ".join(f"{c['mean_action']:.2f}" for c in evaluation["components"])
                if result.get("weights_over_training"):
                    text += "; final weights " + ", ".join(f"{w:.2f}" for w in result["weights_over_training"][-1][1:])
            lines.append(f"- {result['label']}, {steps_of(result)} steps, seed {result['seed']}: {text}")
        lines.append("")
    return "\n".join(lines)


GOAL_COLORS = ["tab:red", "tab:blue", "tab:green", "tab:purple"]


def plot_trajectories(runs: list[dict], name: str) -> None:
    """MultiGoal trajectories of the stochastic policy: one row per algorithm, one column per seed."""
    import matplotlib.pyplot as plt

    from sb3_mixture.envs import GOALS

    algos = [algo for algo in ALGOS if any(r["algo"] == algo for r in runs)]
    seeds = sorted({r["seed"] for r in runs})
    by_key = {(r["algo"], r["seed"]): r for r in runs}
    steps = steps_of(runs[0])
    figure, axes = plt.subplots(len(algos), len(seeds), figsize=(2.4 * len(seeds), 2.4 * len(algos)), squeeze=False)
    for row, algo in enumerate(algos):
        for col, seed in enumerate(seeds):
            axis = axes[row][col]
            for index, goal in enumerate(GOALS):
                axis.add_patch(plt.Circle(goal, 1.0, color=GOAL_COLORS[index], alpha=0.2))
            result = by_key.get((algo, seed))
            if result is not None:
                stochastic = result["evaluation"]["stochastic"]
                for path, goal in zip(stochastic["paths"], stochastic["goals"], strict=True):
                    path = np.asarray(path)
                    color = GOAL_COLORS[goal] if goal >= 0 else "grey"
                    axis.plot(path[:, 0], path[:, 1], color=color, linewidth=0.5, alpha=0.5)
                axis.set_title(f"{LABELS[algo]} s{seed}: goals {stochastic['goal_counts']}", fontsize=7)
            axis.set_xlim(-7, 7)
            axis.set_ylim(-7, 7)
            axis.set_aspect("equal")
            axis.set_xticks([])
            axis.set_yticks([])
    figure.suptitle(
        f"MultiGoal, {steps} steps:\n{EVAL_EPISODES} stochastic episodes per panel (colour = goal reached, grey = none)",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(RESULTS / name, dpi=80)
    plt.close(figure)


def plot(runs: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sb3_mixture.envs import GOALS, bimodal_reward

    default = [r for r in runs if steps_of(r) == CONFIG[r["env_key"]]["total_timesteps"]]
    multigoal_budgets = sorted({steps_of(r) for r in runs if r["env_key"] == "multigoal"})
    for steps in multigoal_budgets:
        budget = [r for r in runs if r["env_key"] == "multigoal" and steps_of(r) == steps]
        suffix = "" if steps == CONFIG["multigoal"]["total_timesteps"] else f"_{steps // 1000}k"
        plot_trajectories(budget, f"multimodal_multigoal_trajectories{suffix}.png")
    seeds = sorted({result["seed"] for result in default})
    by_key = {(r["env_key"], r["algo"], r["seed"]): r for r in default}

    multigoal_algos = [algo for algo in ALGOS if any(key[:2] == ("multigoal", algo) for key in by_key)]
    figure, axes = plt.subplots(1, len(multigoal_algos), figsize=(3.0 * len(multigoal_algos), 3.2), squeeze=False)
    for col, algo in enumerate(multigoal_algos):
        axis = axes[0][col]
        for seed in seeds:
            result = by_key.get(("multigoal", algo, seed))
            if result is not None:
                actions = np.asarray(result["evaluation"]["origin"]["actions"])[:300]
                axis.scatter(actions[:, 0], actions[:, 1], s=3, alpha=0.4, label=f"seed {seed}")
        for index, goal in enumerate(GOALS):
            arrow = {"color": GOAL_COLORS[index], "alpha": 0.4, "width": 1}
            axis.annotate("", xy=goal / 5.0, xytext=(0, 0), arrowprops=arrow)
        axis.set_xlim(-1.05, 1.05)
        axis.set_ylim(-1.05, 1.05)
        axis.set_aspect("equal")
        axis.set_title(LABELS[algo], fontsize=9)
        if col == 0 and axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=6, markerscale=3, loc="lower left")
    figure.suptitle(
        f"MultiGoal, {CONFIG['multigoal']['total_timesteps']} steps: 300 actions sampled at the origin per seed "
        "(arrows: goal directions)",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(RESULTS / "multimodal_multigoal_origin_actions.png", dpi=90)
    plt.close(figure)

    bandit_algos = [algo for algo in ALGOS if any(key[:2] == ("bandit", algo) for key in by_key)]
    columns = min(len(bandit_algos), 5)
    rows = -(-len(bandit_algos) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.0 * rows), squeeze=False, sharey=True)
    for axis in axes.flat[len(bandit_algos) :]:
        axis.set_visible(False)
    grid = np.linspace(-2, 2, 401)
    bins = np.linspace(-2, 2, 81)
    for index, algo in enumerate(bandit_algos):
        row, col = divmod(index, columns)
        axis = axes[row][col]
        for seed in seeds:
            result = by_key.get(("bandit", algo, seed))
            if result is not None:
                actions = np.asarray(result["evaluation"]["stochastic"]["actions"])
                axis.hist(actions, bins=bins, density=True, histtype="step", label=f"seed {seed}")
        twin = axis.twinx()
        twin.plot(grid, bimodal_reward(grid), color="black", linewidth=1, linestyle=":")
        twin.set_ylim(0, 1.7)
        twin.set_yticks([] if col < columns - 1 else [0, 0.5, 1.0, 1.5])
        if col == columns - 1:
            twin.set_ylabel("reward (dotted)")
        axis.set_title(LABELS[algo])
        axis.set_xlabel("action")
        axis.set_yscale("log")
        if col == 0:
            axis.set_ylabel("density of sampled actions")
            if axis.get_legend_handles_labels()[0]:
                axis.legend(fontsize=7)
    figure.suptitle(f"Bimodal bandit, {CONFIG['bandit']['total_timesteps']} steps: sampled actions per seed", fontsize=10)
    figure.tight_layout()
    figure.savefig(RESULTS / "multimodal_bandit_actions.png", dpi=90)
    plt.close(figure)
    plot_bandit_weights([r for r in default if r["env_key"] == "bandit" and r.get("weights_over_training")])


def mode_weight_over_training(result: dict, location: float) -> tuple[np.ndarray, np.ndarray]:
    """Steps and the total learned weight of the components whose final mean action is within MODE_RADIUS of ``location``."""
    records = np.asarray(result["weights_over_training"])
    means = np.array([component["mean_action"] for component in result["evaluation"]["components"]])
    on_mode = np.abs(means - location) < MODE_RADIUS
    return records[:, 0], records[:, 1:][:, on_mode].sum(axis=1)


def plot_bandit_weights(runs: list[dict]) -> None:
    """Learned mixing weights over training on the bandit: the weight on the +1 and on the -1 component(s)."""
    import matplotlib.pyplot as plt

    if not runs:
        return
    algos = [algo for algo in ALGOS if any(r["algo"] == algo for r in runs)]
    figure, axes = plt.subplots(1, len(algos), figsize=(3.6 * len(algos), 3.0), squeeze=False, sharey=True)
    for axis, algo in zip(axes[0], algos, strict=True):
        for result in (r for r in runs if r["algo"] == algo):
            for location, color in ((1.0, "tab:blue"), (-1.0, "tab:red")):
                steps, weight = mode_weight_over_training(result, location)
                axis.plot(steps, weight, color=color, alpha=0.6, linewidth=1)
        axis.set_title(LABELS[algo], fontsize=9)
        axis.set_xlabel("environment steps")
        axis.set_ylim(-0.02, 1.02)
    axes[0][0].set_ylabel("weight on the +1 (blue) / -1 (red) bump")
    figure.suptitle("Bimodal bandit: learned mixing weights over training (one line per seed and bump)", fontsize=10)
    figure.tight_layout()
    figure.savefig(RESULTS / "multimodal_bandit_weights.png", dpi=90)
    plt.close(figure)


def settings_used(runs: list[dict]) -> dict:
    """Every distinct training setting per task in the result files (minus what differs between algorithms)."""
    used: dict = {}
    for result in runs:
        config = {key: value for key, value in result["config"].items() if key not in ("algorithm", "n_components")}
        values = used.setdefault(result["env_key"], [])
        if config not in values:
            values.append(config)
    return {key: values[0] if len(values) == 1 else values for key, values in used.items()}


def report_meta(runs: list[dict], settings: "dict | list") -> dict:
    """What a report says about the runs it summarises: the commands, machines, dates, CPU time and settings."""
    return {
        "report_command": " ".join([Path(sys.executable).name, *sys.argv]),
        "run_commands": sorted({result["command"] for result in runs}),
        "machines": sorted({result["machine"] for result in runs}),
        "first_date": min(result["date"] for result in runs),
        "last_date": max(result["date"] for result in runs),
        "report_date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "total_cpu_min": sum(result["cpu_s"] for result in runs) / 60,
        "settings_used": settings,
    }


def write_report(stem: Path, rows: list[dict], table: list[dict], meta: dict, text: str) -> None:
    """``<stem>.csv`` (one row per run), ``<stem>.json`` (meta, summary and runs) and ``<stem>.md``, printed."""
    import pandas as pd

    pd.DataFrame(rows).to_csv(stem.with_suffix(".csv"), index=False, float_format="%.4g")
    stem.with_suffix(".json").write_text(json.dumps({**meta, "summary": table, "runs": rows}, indent=1))
    stem.with_suffix(".md").write_text(text)
    print(text)


def report(args: argparse.Namespace) -> None:
    runs = load_runs()
    if not runs:
        raise SystemExit(f"no result files in {RUNS}")
    rows = per_run_rows(runs)
    table = aggregate(rows)
    meta = report_meta(runs, settings_used(runs))
    plot(runs)
    write_report(RESULTS / "multimodal", rows, table, meta, markdown(table, runs, meta))


def main() -> None:
    global RESULTS, RUNS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "report"])
    parser.add_argument("--envs", nargs="+", choices=list(ENVS), default=list(ENVS))
    parser.add_argument("--algos", nargs="+", choices=list(ALGOS), default=list(ALGOS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--force", action="store_true", help="rerun runs that have a result file")
    parser.add_argument("--steps", type=int, help="training budget for every selected task (default: CONFIG's)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder (the run files go to <out>/multimodal)")
    parser.add_argument("--quick", action="store_true", help="300 steps per run, to check the pipeline (use another --out)")
    args = parser.parse_args()
    RESULTS, RUNS = args.out, args.out / "multimodal"
    if args.quick:
        for config in CONFIG.values():
            config.update(total_timesteps=300, learning_starts=100)
    if args.command == "run":
        run(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
