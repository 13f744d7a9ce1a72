"""
Route change: do mixture policies recover faster than SAC when the route they use gets blocked?

Soft Q-learning's argument for multimodal policies (Haarnoja et al., 2017) is robustness: a policy that keeps
several good behaviours can fall back on another one when the task changes. The test here:
``sb3_mixture/TwoRoutes-v0`` (a point goes around a central obstacle, left or right, both routes equally good).

- Phase 1: ``phase1_steps`` of training on the open task, evaluated every ``phase1_eval_every`` steps.
- Block: the route the policy took most often in the last phase-1 evaluation is closed with a wall (the agent
  always has to switch) on the same env object, which is reset; the replay buffer is kept (a continual learner
  does not know that the task changed).
- Phase 2: ``phase2_steps`` more (``learn(..., reset_num_timesteps=False)``), evaluated right after the block and
  every ``eval_every`` steps.

Every evaluation: ``EVAL_EPISODES`` stochastic episodes (fixed seeds), their mean return, success rate and the
route each took (the gap it went through; also the side it tried, for episodes stuck in the dead end). Before
the block and at the end, for mixtures, each component alone (``policy.use_component(i)``), and with learned
mixing weights, the weights ``w(s)`` at a few states (``WEIGHT_STATES``).

Recovery: score = (return - random) / (pre-block - random), with "random" the mean return of uniform random
actions on the blocked task (``RANDOM_EPISODES`` episodes) and "pre-block" the return of the last phase-1
evaluation; this maps random play to 0 and the pre-block level to 1 whatever the sign of the returns. Steps to
recover: steps after the block until the first evaluation with score >= ``RECOVERY_LEVEL`` (0 if the policy
already reaches it right after the block), censored at ``phase2_steps`` if never.

Algorithms: SAC, SACM with N = 2 uniform weights, SACM with learned weights (N = 2, 4) and S2ACM with learned
weights (N = 4), the learned ones with no floor on the weights (``mixture_weight_floor=0``) and with a floor of
0.05 (``*_floor05``, the package's default since); small nets (64, 64), SB3's SAC defaults otherwise (lr 3e-4,
batch 256, automatic temperature, one gradient step per env step), seeds 0-4. Each run writes its own result file under
``benchmarks/results/route_change/``; a rerun skips finished runs.

Budget (``CONFIG``): 6000 steps before the block, 6000 after it, evaluated every 250. Pilots on this machine: SAC
(seeds 0 and 1) reached a return of about 53 (the best is about 55) with 98-100% successes within 4000-5000 steps;
after a block at 6000 steps, SAC and the mixtures of seed 0 needed from 2000 to more than 4000 steps to recover, so
4000 steps after the block censored some runs and 6000 leave room. A run then costs 85-190 CPU-seconds (SAC the least,
the N = 4 mixtures the most, and more when the machine is busy); the 40 runs took 94 CPU-minutes.

    nice -n 5 python benchmarks/route_change.py run                       # all runs, seed-major (resumable)
    nice -n 5 python benchmarks/route_change.py run --algos sac sacm_n2 --seeds 0 1
    python benchmarks/route_change.py report                              # tables and plots from the result files
"""

import argparse
import copy
import json
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

# Run as a script from benchmarks/: its sibling shares the machine description and the rliable IQM
from multimodal import iqm_with_ci, machine, report_meta, write_report

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
STUDY = "route_change"  # "route_change_hidden" with --hidden-block
RUNS = RESULTS / STUDY
# TwoRoutes settings of the study: --hidden-block sets shaping_sees_block=False (the reward does not announce the block)
ENV_KWARGS: dict = {}

ENV_ID = "sb3_mixture/TwoRoutes-v0"
ALGOS = {
    "sac": ("SAC", {}),
    "sacm_n2": ("SACM", {"n_components": 2}),
    "sacm_learned_n2": ("SACM", {"n_components": 2, "mixture_weights": "learned", "mixture_weight_floor": 0.0}),
    "sacm_learned_n4": ("SACM", {"n_components": 4, "mixture_weights": "learned", "mixture_weight_floor": 0.0}),
    "s2acm_learned_n4": ("S2ACM", {"n_components": 4, "mixture_weights": "learned", "mixture_weight_floor": 0.0}),
    # The package's later default for learned weights: every component keeps at least 5% of the weight
    "sacm_learned_n2_floor05": ("SACM", {"n_components": 2, "mixture_weights": "learned", "mixture_weight_floor": 0.05}),
    "sacm_learned_n4_floor05": ("SACM", {"n_components": 4, "mixture_weights": "learned", "mixture_weight_floor": 0.05}),
    "s2acm_learned_n4_floor05": ("S2ACM", {"n_components": 4, "mixture_weights": "learned", "mixture_weight_floor": 0.05}),
    # Issue 16's candidates: own-data heads with an episodic mixture, and weights from the components' soft values
    "sacm_n4_episode_own": ("SACM", {"n_components": 4, "component_schedule": "episode", "critic_data": "own"}),
    "sacm_soft_value_n2": ("SACM", {"n_components": 2, "mixture_weights": "soft_value"}),
    "sacm_soft_value_n2_episode": (
        "SACM",
        {"n_components": 2, "mixture_weights": "soft_value", "component_schedule": "episode"},
    ),
    "sacm_soft_value_n4": ("SACM", {"n_components": 4, "mixture_weights": "soft_value"}),
    "sacm_soft_value_n2_own": ("SACM", {"n_components": 2, "mixture_weights": "soft_value", "critic_data": "own"}),
}
LABELS = {
    "sac": "SAC",
    "sacm_n2": "SACM N=2",
    "sacm_learned_n2": "SACM learned N=2, floor 0",
    "sacm_learned_n4": "SACM learned N=4, floor 0",
    "s2acm_learned_n4": "S2ACM learned N=4, floor 0",
    "sacm_learned_n2_floor05": "SACM learned N=2, floor 0.05",
    "sacm_learned_n4_floor05": "SACM learned N=4, floor 0.05",
    "s2acm_learned_n4_floor05": "S2ACM learned N=4, floor 0.05",
    "sacm_n4_episode_own": "SACM N=4, episodic, own-data heads",
    "sacm_soft_value_n2": "SACM soft-value weights N=2",
    "sacm_soft_value_n2_episode": "SACM soft-value weights N=2, episodic",
    "sacm_soft_value_n4": "SACM soft-value weights N=4",
    "sacm_soft_value_n2_own": "SACM soft-value weights N=2, own-data heads",
}
CONFIG = {
    "phase1_steps": 6_000,
    "phase2_steps": 6_000,
    "phase1_eval_every": 1_000,
    "eval_every": 250,
    "learning_starts": 1_000,
    "gamma": 0.99,
}
COMMON = {"batch_size": 256, "learning_rate": 3e-4, "buffer_size": 100_000, "policy_kwargs": {"net_arch": [64, 64]}}
EVAL_EPISODES = 50
COMPONENT_EPISODES = 20
PATH_EPISODES = 20  # trajectories kept (before the block and at the end) for the plots
RANDOM_EPISODES = 300
RECOVERY_LEVEL = 0.9
CONVERGED_SUCCESS = 0.9  # a run "had learned the task" at the block if this share of its episodes reached the goal
MIN_SHARE = 0.05  # a route "is used" if at least this share of episodes goes through it
WEIGHT_STATES = {"start": (0.0, -4.0), "below_left": (-4.0, -2.0), "below_right": (4.0, -2.0), "left_gap": (-4.0, 0.0)}
ROUTES = ("left", "right")


def code_version() -> dict:
    """The commit and a hash of the package's sources (the working tree may differ from the commit)."""
    import hashlib
    import subprocess

    digest = hashlib.sha256()
    for path in sorted((ROOT / "sb3_mixture").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    # Read-only git calls (--no-optional-locks: status does not even refresh the index)
    git = ["git", "--no-optional-locks"]
    try:
        head = subprocess.run([*git, "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run([*git, "status", "--porcelain", "sb3_mixture"], cwd=ROOT, capture_output=True, text=True)
        dirty = bool(status.stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        head, dirty = "?", None
    return {"git_head": head, "sb3_mixture_modified": dirty, "sb3_mixture_sha256": digest.hexdigest()[:16]}


def make_model(algo: str, seed: int, config: dict):
    """The model and the raw env it trains on (kept to change the task in place)."""
    from stable_baselines3 import SAC

    import sb3_mixture
    from sb3_mixture.envs import TwoRoutesEnv

    class_name, extra = ALGOS[algo]
    algo_class = SAC if class_name == "SAC" else getattr(sb3_mixture, class_name)
    env = TwoRoutesEnv(**ENV_KWARGS)
    settings = {"learning_starts": config["learning_starts"], "gamma": config["gamma"]}
    # A copy: SB3 writes into the policy_kwargs it is given
    model = algo_class("MlpPolicy", env, seed=seed, verbose=0, device="cpu", **copy.deepcopy(COMMON), **settings, **extra)
    return model, env


# Evaluation -------------------------------------------------------------------------------------------------------


def rollouts(model, n_episodes: int, seed: int, blocked_route: "str | None", keep_paths: int = 0) -> dict:
    """``n_episodes`` stochastic episodes run side by side (one batched ``predict`` per step)."""
    from sb3_mixture.envs import TwoRoutesEnv

    # A batched predict redraws a mixture's acting components for the batch: keep the training envs' schedule
    schedule = model.policy.get_schedule_state() if hasattr(model.policy, "get_schedule_state") else None
    envs = [TwoRoutesEnv(blocked_route=blocked_route, **ENV_KWARGS) for _ in range(n_episodes)]
    observations = np.stack([env.reset(seed=seed + index)[0] for index, env in enumerate(envs)])
    paths = [[observation.tolist()] for observation in observations[:keep_paths]]
    returns = np.zeros(n_episodes)
    routes: list = [None] * n_episodes
    sides: list = [None] * n_episodes
    success = np.zeros(n_episodes, dtype=bool)
    active = np.ones(n_episodes, dtype=bool)
    while active.any():
        actions, _ = model.predict(observations, deterministic=False)
        for index in np.flatnonzero(active):
            observation, reward, terminated, truncated, info = envs[index].step(actions[index])
            observations[index] = observation
            returns[index] += reward
            if index < keep_paths:
                paths[index].append(observation.tolist())
            if terminated or truncated:
                active[index] = False
                routes[index], sides[index], success[index] = info["route"], info["side"], info["is_success"]
    if schedule is not None:
        model.policy.set_schedule_state(schedule)
    result = {
        "returns": returns.round(4).tolist(),
        "mean_return": float(returns.mean()),
        "success_rate": float(success.mean()),
        "route_counts": {route: routes.count(route) for route in ROUTES},
        "side_counts": {side: sides.count(side) for side in ROUTES},
    }
    if keep_paths:
        result["paths"] = [np.round(path, 3).tolist() for path in paths]
    return result


def random_return(blocked_route: "str | None", n_episodes: int, seed: int = 12345) -> float:
    """Mean return of uniform random actions: the 0 of the recovery score."""
    from sb3_mixture.envs import TwoRoutesEnv

    env = TwoRoutesEnv(blocked_route=blocked_route, **ENV_KWARGS)
    env.action_space.seed(seed)
    total = 0.0
    for episode in range(n_episodes):
        env.reset(seed=seed + episode)
        while True:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += reward
            if terminated or truncated:
                break
    return total / n_episodes


def mixture_weights(model) -> "dict[str, list[float]] | None":
    """Mixing weights w(s) at ``WEIGHT_STATES`` for learned or soft-value weights; None for fixed weights or SAC."""
    import torch as th

    actor = model.policy.actor
    if not getattr(actor, "state_dependent_weights", getattr(actor, "learned_weights", False)):
        return None
    observations = th.as_tensor(np.array(list(WEIGHT_STATES.values()), dtype=np.float32), device=model.device)
    with th.no_grad():
        weights = model.policy.actor.mixture_log_weights(observations).exp().cpu().numpy()
    return {name: weights[row].round(4).tolist() for row, name in enumerate(WEIGHT_STATES)}


def components(model, seed: int, blocked_route: "str | None") -> "list[dict] | None":
    """Each mixture component acting alone: its return, success rate and routes (None for SAC)."""
    if not hasattr(model.policy, "use_component"):
        return None
    alone = []
    for component in range(model.n_components):
        with model.policy.use_component(component):
            summary = rollouts(model, COMPONENT_EPISODES, seed, blocked_route)
        alone.append({key: summary[key] for key in ("mean_return", "success_rate", "route_counts", "side_counts")})
    return alone


def main_route(summary: dict) -> str:
    """The route most episodes went through (by the side tried on a tie, then left)."""
    routes, sides = summary["route_counts"], summary["side_counts"]
    if routes["left"] != routes["right"]:
        return "left" if routes["left"] > routes["right"] else "right"
    return "right" if sides["right"] > sides["left"] else "left"


def evaluation_point(model, phase: int, seed: int, blocked_route: "str | None", keep_paths: int = 0) -> dict:
    summary = rollouts(model, EVAL_EPISODES, seed, blocked_route, keep_paths)
    point = {"step": int(model.num_timesteps), "phase": phase, **summary}
    point.pop("returns")
    weights = mixture_weights(model)
    if weights is not None:
        point["weights_start"] = weights["start"]
    return point


def execute(algo: str, seed: int, config: dict) -> dict:
    import torch as th

    th.set_num_threads(1)
    start, cpu_start = time.time(), time.process_time()
    model, env = make_model(algo, seed, config)
    # Read right after the package's import: the sources this run uses
    code = code_version()
    eval_seed = 100_000 + 1000 * seed
    curve = []
    while model.num_timesteps < config["phase1_steps"]:
        chunk = min(config["phase1_eval_every"], config["phase1_steps"] - model.num_timesteps)
        model.learn(chunk, reset_num_timesteps=False)
        last = model.num_timesteps >= config["phase1_steps"]
        curve.append(evaluation_point(model, 1, eval_seed, None, PATH_EPISODES if last else 0))
    before = curve[-1]
    blocked = main_route(before)
    before_block = {
        "return": before["mean_return"],
        "success_rate": before["success_rate"],
        "route_counts": before["route_counts"],
        "side_counts": before["side_counts"],
        "paths": before.pop("paths"),
        "components": components(model, eval_seed, None),
        "weights": mixture_weights(model),
    }

    env.set_blocked_route(blocked)
    # The episode in progress started on the open task (its point may even be inside the new wall): without a last
    # observation, the next learn() resets the env. The replay buffer is kept.
    model._last_obs = None
    curve.append(evaluation_point(model, 2, eval_seed, blocked))
    end = config["phase1_steps"] + config["phase2_steps"]
    while model.num_timesteps < end:
        model.learn(min(config["eval_every"], end - model.num_timesteps), reset_num_timesteps=False)
        last = model.num_timesteps >= end
        curve.append(evaluation_point(model, 2, eval_seed, blocked, PATH_EPISODES if last else 0))
    final = curve[-1]
    after_block = {
        "return": final["mean_return"],
        "success_rate": final["success_rate"],
        "route_counts": final["route_counts"],
        "side_counts": final["side_counts"],
        "paths": final.pop("paths"),
        "components": components(model, eval_seed, blocked),
        "weights": mixture_weights(model),
    }
    train_cpu = time.process_time() - cpu_start
    result = {
        "env": ENV_ID,
        "algo": algo,
        "label": LABELS[algo],
        "seed": seed,
        "config": {**COMMON, **config, **ALGOS[algo][1], "algorithm": ALGOS[algo][0]},
        "env_kwargs": ENV_KWARGS,
        # The package's default floor of learned weights has changed before: the value this run used
        "mixture_weight_floor": getattr(model, "mixture_weight_floor", None),
        "blocked_route": blocked,
        "random_return": random_return(blocked, RANDOM_EPISODES),
        "before_block": before_block,
        "after_block": after_block,
        "curve": curve,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "code": code,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "train_eval_cpu_s": round(train_cpu, 1),
        "wall_s": round(time.time() - start, 1),
        "cpu_s": round(time.process_time() - cpu_start, 1),
    }
    result["recovery"] = recovery(result)
    return result


def recovery(result: dict, reference: "float | None" = None) -> dict:
    """
    Normalised scores of the phase-2 curve and the steps to recover (see the module docstring).

    :param reference: also the steps until the return reaches ``RECOVERY_LEVEL`` of a common reference level
        (``*_common``; the report passes the median pre-block return of all runs), for runs whose own pre-block
        level is low because phase 1 ended in a bad moment
    """
    config = result["config"]
    low, high = result["random_return"], result["before_block"]["return"]
    scale = high - low
    phase2 = [point for point in result["curve"] if point["phase"] == 2]
    returns = [point["mean_return"] for point in phase2]
    scores = [(value - low) / scale if scale > 0 else float("nan") for value in returns]
    steps = [point["step"] - config["phase1_steps"] for point in phase2]

    def first(flags: list[bool]) -> tuple[bool, int]:
        hits = [step for step, flag in zip(steps, flags, strict=True) if flag]
        return (True, hits[0]) if hits else (False, config["phase2_steps"])

    recovered, steps_to_recover = first([score >= RECOVERY_LEVEL for score in scores])
    # Switching (heading for the open side) and getting through it are separate steps of the recovery
    open_side = "left" if result["blocked_route"] == "right" else "right"
    switched, steps_to_switch = first([point["side_counts"][open_side] > EVAL_EPISODES / 2 for point in phase2])
    summary = {
        "threshold_return": low + RECOVERY_LEVEL * scale,
        "scores": scores,
        "steps": steps,
        "recovered": recovered,
        "steps_to_recover": steps_to_recover,
        "switched": switched,
        "steps_to_switch": steps_to_switch,
        "score_after_block": scores[0],
        "mean_score_phase2": float(np.mean(scores)),
        "final_score": scores[-1],
    }
    if reference is not None:
        threshold = low + RECOVERY_LEVEL * (reference - low)
        summary["recovered_common"], summary["steps_to_recover_common"] = first([value >= threshold for value in returns])
        summary["threshold_return_common"] = threshold
    return summary


def pending_runs(folder: Path, algos: list[str], seeds: list[int], force: bool = False) -> Iterator[tuple[str, int, Path]]:
    """(algo, seed, result path) of every run still to do, seed-major (a partial benchmark covers every algorithm)."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        for algo in algos:
            path = folder / f"{algo}_s{seed}.json"
            if path.exists() and not force:
                print(f"skip {path.name} (done)", flush=True)
                continue
            yield algo, seed, path


def run(args: argparse.Namespace) -> None:
    for algo, seed, path in pending_runs(RUNS, args.algos, args.seeds, args.force):
        result = execute(algo, seed, CONFIG)
        path.write_text(json.dumps(result))
        before, rec = result["before_block"], result["recovery"]
        print(
            f"{path.stem}: before {before['return']:.2f} routes {before['route_counts']}, "
            f"blocked {result['blocked_route']}, score after block {rec['score_after_block']:.2f}, "
            f"recovered {rec['recovered']} after {rec['steps_to_recover']} steps, final score {rec['final_score']:.2f} "
            f"({result['cpu_s']} CPU-s)",
            flush=True,
        )


# Report -----------------------------------------------------------------------------------------------------------


def load_runs() -> list[dict]:
    runs = [json.loads(path.read_text()) for path in sorted(RUNS.glob("*.json"))]
    reference = float(np.median([result["before_block"]["return"] for result in runs])) if runs else None
    for result in runs:
        # Recomputed from the curve, so that the report always uses the definitions of this file
        result["recovery"] = recovery(result, reference)
        result["reference_return"] = reference
    return sorted(runs, key=lambda result: (list(ALGOS).index(result["algo"]), result["seed"]))


def routes_text(counts: dict) -> str:
    return f"{counts['left']}L/{counts['right']}R"


def component_text(alone: "list[dict] | None") -> str:
    """Per component the route it mostly goes through alone (L, R, or - if it reaches no goal)."""
    if not alone:
        return "-"
    letters = []
    for component in alone:
        counts = component["route_counts"]
        letters.append("-" if counts["left"] + counts["right"] == 0 else "L" if counts["left"] >= counts["right"] else "R")
    return "".join(letters)


def weights_text(weights: "dict | None") -> str:
    return "-" if weights is None else "(" + ", ".join(f"{w:.2f}" for w in weights["start"]) + ")"


def per_run_rows(runs: list[dict]) -> list[dict]:
    rows = []
    for result in runs:
        before, after, rec = result["before_block"], result["after_block"], result["recovery"]
        counts = before["route_counts"]
        used = [route for route in ROUTES if counts[route] >= MIN_SHARE * EVAL_EPISODES]
        rows.append(
            {
                "algo": result["algo"],
                "label": LABELS[result["algo"]],
                "seed": result["seed"],
                "pre_block_return": before["return"],
                "pre_block_success": before["success_rate"],
                "pre_block_routes": routes_text(counts),
                "main_route_share": max(counts.values()) / EVAL_EPISODES,
                "both_routes_used": len(used) == 2,
                "blocked_route": result["blocked_route"],
                "random_return": result["random_return"],
                "score_after_block": rec["score_after_block"],
                "steps_to_recover": rec["steps_to_recover"],
                "recovered": rec["recovered"],
                "steps_to_switch": rec["steps_to_switch"],
                "switched": rec["switched"],
                "steps_to_recover_common": rec["steps_to_recover_common"],
                "recovered_common": rec["recovered_common"],
                "pre_block_converged": before["success_rate"] >= CONVERGED_SUCCESS,
                "mean_score_phase2": rec["mean_score_phase2"],
                "final_score": rec["final_score"],
                "final_return": after["return"],
                "final_success": after["success_rate"],
                "final_routes": routes_text(after["route_counts"]),
                "components_before": component_text(before["components"]),
                "components_cover_both": set("LR") <= set(component_text(before["components"])),
                "components_after": component_text(after["components"]),
                "weights_start_before": weights_text(before["weights"]),
                "weights_start_after": weights_text(after["weights"]),
                "cpu_s": result["cpu_s"],
            }
        )
    return rows


# Per-seed values summarised by their IQM and CI
SUMMARY_KEYS = (
    "steps_to_recover",
    "steps_to_recover_common",
    "steps_to_switch",
    "pre_block_return",
    "score_after_block",
    "mean_score_phase2",
    "final_score",
)


def aggregate(rows: list[dict]) -> list[dict]:
    table = []
    for algo in ALGOS:
        group = [row for row in rows if row["algo"] == algo]
        if not group:
            continue
        entry: dict = {"algo": algo, "label": LABELS[algo], "seeds": len(group)}
        for key in SUMMARY_KEYS:
            values = [row[key] for row in group]
            iqm, low, high = iqm_with_ci(values)
            entry[key] = {"mean": float(np.mean(values)), "std": float(np.std(values)), "iqm": iqm, "ci": [low, high]}
            entry[key]["per_seed"] = values
        entry.update(
            recovered=int(sum(row["recovered"] for row in group)),
            recovered_common=int(sum(row["recovered_common"] for row in group)),
            seeds_converged=int(sum(row["pre_block_converged"] for row in group)),
            pre_block_success_mean=float(np.mean([row["pre_block_success"] for row in group])),
            main_route_share_mean=float(np.mean([row["main_route_share"] for row in group])),
            seeds_with_both_routes=int(sum(row["both_routes_used"] for row in group)),
            seeds_components_cover_both=int(sum(row["components_cover_both"] for row in group)),
            pre_block_routes=[row["pre_block_routes"] for row in group],
            final_routes=[row["final_routes"] for row in group],
            components_before=[row["components_before"] for row in group],
            components_after=[row["components_after"] for row in group],
            weights_start_before=[row["weights_start_before"] for row in group],
            weights_start_after=[row["weights_start_after"] for row in group],
            cpu_s_mean=float(np.mean([row["cpu_s"] for row in group])),
        )
        table.append(entry)
    return table


def settings_used(runs: list[dict]) -> "dict | list[dict]":
    """Every distinct training setting in the result files (minus what differs between algorithms)."""
    used: list[dict] = []
    for result in runs:
        per_algorithm = ("algorithm", "n_components", "mixture_weights", "mixture_weight_floor")
        config = {key: value for key, value in result["config"].items() if key not in per_algorithm}
        if config not in used:
            used.append(config)
    return used[0] if len(used) == 1 else used


def interval(stats: dict, digits: int = 0) -> str:
    return f"{stats['iqm']:.{digits}f} [{stats['ci'][0]:.{digits}f}, {stats['ci'][1]:.{digits}f}]"


SHAPING_TEXT = {
    False: "The env's shaping follows the current walls (`shaping_sees_block=True`): right after the block, moving "
    "towards the blocked side already costs reward, so this measures how fast the policy and critic adapt to a dense "
    "new signal, not how fast the agent discovers the change by exploration.",
    True: "The env's shaping ignores the new wall (`shaping_sees_block=False`): the reward does not announce the "
    "block, so the agent has to find out by running into it that its route is closed.",
}


def markdown(table: list[dict], rows: list[dict], runs: list[dict], meta: dict) -> str:
    config = runs[0]["config"]
    lines = [
        "# Route change: recovery after the route in use gets blocked (SAC vs SACM vs S2ACM)",
        "",
        f"Generated by `{meta['report_command']}` from {len(runs)} result files in `{STUDY}/` (runs made with "
        f"`{meta['run_commands'][0] if meta['run_commands'] else '?'}` on {meta['machines'][0] if meta['machines'] else '?'}, "
        f"{meta['first_date']} to {meta['last_date']}; total CPU time {meta['total_cpu_min']:.1f} min).",
        "",
        f"Code (commit, sources modified, hash of `sb3_mixture/*.py`): {'; '.join(meta['code_versions'])}.",
        "",
        f"Task: `{ENV_ID}` ({json.dumps(ENV_KWARGS) if ENV_KWARGS else 'defaults'}). Settings (from the result files): "
        f"{json.dumps(meta['settings_used'])}; everything "
        "else SB3's SAC defaults (automatic temperature, target entropy -dim(A)); the mixtures use the package defaults "
        "(mixed marginal estimator, a new component every step).",
        "",
        f"Protocol: {config['phase1_steps']} steps on the open task; then the route the policy took most often in its last "
        "evaluation is closed by a wall (same env object, reset; replay buffer kept) and training goes on for "
        f"{config['phase2_steps']} steps, evaluated right after the block and every {config['eval_every']} steps. Each "
        f"evaluation: {EVAL_EPISODES} stochastic episodes with fixed seeds. " + SHAPING_TEXT[bool(ENV_KWARGS)],
        "",
        f"Score = (return - random) / (pre-block return - random), random = mean return of uniform random actions on the "
        f"blocked task ({RANDOM_EPISODES} episodes, about {np.mean([r['random_return'] for r in runs]):.2f}); 0 = random "
        f"play, 1 = the run's own pre-block level. **Steps to recover**: steps after the block until the first evaluation "
        f"with score >= {RECOVERY_LEVEL} (0: already at the block), censored at {config['phase2_steps']} (counted as "
        f"{config['phase2_steps']}) if never. IQM over seeds with a 95% stratified-bootstrap CI (rliable); per seed in "
        "brackets. The resolution is the evaluation interval.",
        "",
        "## Recovery after the block",
        "",
        "| algorithm | seeds | steps to recover IQM [95% CI] | per seed | recovered | steps to reach the common level "
        "IQM [95% CI] | per seed | reached | steps to switch side IQM [95% CI] | score right after the block "
        "| mean score in phase 2 | final score |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in table:
        steps, common = entry["steps_to_recover"], entry["steps_to_recover_common"]
        lines.append(
            f"| {entry['label']} | {entry['seeds']} | {interval(steps)} | {steps['per_seed']} "
            f"| {entry['recovered']}/{entry['seeds']} | {interval(common)} | {common['per_seed']} "
            f"| {entry['recovered_common']}/{entry['seeds']} | {interval(entry['steps_to_switch'])} "
            f"| {interval(entry['score_after_block'], 2)} | {interval(entry['mean_score_phase2'], 2)} "
            f"| {interval(entry['final_score'], 2)} |"
        )
    lines += [
        "",
        f"'Common level': the same {RECOVERY_LEVEL:.0%} threshold but of the median pre-block return of all runs "
        f"({runs[0]['reference_return']:.2f}) instead of the run's own: a run whose phase 1 ended at a bad moment (its "
        "own pre-block level low) otherwise 'recovers' trivially. 'Steps to switch side': steps after the block until "
        "the first evaluation in which most episodes head for the open side (the side of x = 0 they are on when |x| "
        "first exceeds 1.5), whether or not they then get through; censored like the recovery. 'Mean score in phase "
        "2': the normalised score averaged over the phase-2 evaluations (an area under the recovery curve, less "
        "sensitive to the threshold).",
        "",
        "## Before the block",
        "",
        "| algorithm | pre-block return IQM [95% CI] | per seed | success rate | seeds at >= "
        f"{CONVERGED_SUCCESS:.0%} success | share on the main route | seeds using both routes | seeds whose components "
        "cover both routes | routes per seed | component routes per seed | CPU s / run |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in table:
        returns = entry["pre_block_return"]
        lines.append(
            f"| {entry['label']} | {interval(returns, 2)} | {[round(value, 1) for value in returns['per_seed']]} "
            f"| {entry['pre_block_success_mean']:.2f} | {entry['seeds_converged']}/{entry['seeds']} "
            f"| {entry['main_route_share_mean']:.2f} | {entry['seeds_with_both_routes']} "
            f"| {entry['seeds_components_cover_both'] if entry['algo'] != 'sac' else '-'} "
            f"| {' '.join(entry['pre_block_routes'])} | {' '.join(entry['components_before'])} | {entry['cpu_s_mean']:.0f} |"
        )
    lines += [
        "",
        f"Of the {EVAL_EPISODES} pre-block episodes: 'share on the main route', the share through the route used most "
        f"(the one then blocked); 'both routes', at least {MIN_SHARE:.0%} of the episodes through each; routes as "
        f"left/right counts. Component routes: the route each mixture component mostly takes alone ({COMPONENT_EPISODES} "
        "episodes; '-' if it gets through no gap).",
        "",
        f"![Returns around the block]({STUDY}_curves.png)",
        "",
        f"![Scores after the block, against the common level]({STUDY}_scores.png)",
        "",
        f"![Steps to recover]({STUDY}_recovery.png)",
        "",
        f"![Trajectories before the block and at the end]({STUDY}_trajectories.png)",
        "",
        "## Routes, components and mixing weights per seed",
        "",
        f"Routes: episodes through the left / right gap, of {EVAL_EPISODES} (episodes that reach neither are stuck or "
        f"timed out). Components: the route each component takes most often when acting alone ({COMPONENT_EPISODES} "
        "episodes; '-' if it goes through no gap), before the block and at the end. Weights: w(start) of the learned "
        "mixing weights at the start state (0, -4).",
        "",
        "| algorithm | seed | pre-block return | routes before | blocked | score after block | steps to switch side "
        "| steps to recover | final score | routes at the end | components before / after | w(start) before "
        "| w(start) after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        recovered = f"{row['steps_to_recover']}" if row["recovered"] else f">{row['steps_to_recover']} (censored)"
        switched = f"{row['steps_to_switch']}" if row["switched"] else f">{row['steps_to_switch']}"
        lines.append(
            f"| {row['label']} | {row['seed']} | {row['pre_block_return']:.2f} | {row['pre_block_routes']} "
            f"| {row['blocked_route']} | {row['score_after_block']:.2f} | {switched} | {recovered} | {row['final_score']:.2f} "
            f"| {row['final_routes']} | {row['components_before']} / {row['components_after']} "
            f"| {row['weights_start_before']} | {row['weights_start_after']} |"
        )
    learned = [r for r in runs if r["before_block"]["weights"] is not None]
    if learned:
        lines += [
            "",
            "Learned mixing weights before -> after the block at the other states "
            f"({', '.join(f'{k} {v}' for k, v in WEIGHT_STATES.items() if k != 'start')}):",
            "",
        ]
        for result in learned:
            before, after = result["before_block"]["weights"], result["after_block"]["weights"]
            text = "; ".join(
                f"{name} ({', '.join(f'{w:.2f}' for w in before[name])}) -> ({', '.join(f'{w:.2f}' for w in after[name])})"
                for name in WEIGHT_STATES
                if name != "start"
            )
            lines.append(f"- {LABELS[result['algo']]}, seed {result['seed']}: {text}")
    return "\n".join(lines) + "\n"


ALGO_COLORS = {
    "sac": "tab:blue",
    "sacm_n2": "tab:orange",
    "sacm_learned_n2": "tab:green",
    "sacm_learned_n4": "tab:red",
    "s2acm_learned_n4": "tab:purple",
    "sacm_learned_n2_floor05": "tab:olive",
    "sacm_learned_n4_floor05": "tab:brown",
    "s2acm_learned_n4_floor05": "tab:pink",
}


def draw_walls(axis, blocked_route: "str | None") -> None:
    import matplotlib.pyplot as plt

    from sb3_mixture.envs import TwoRoutesEnv

    env = TwoRoutesEnv(blocked_route=blocked_route)
    for index, (x_min, y_min, x_max, y_max) in enumerate(env.walls):
        color = "black" if index == 0 else "tab:red"
        axis.add_patch(plt.Rectangle((x_min, y_min), x_max - x_min, y_max - y_min, color=color, alpha=0.35))
    axis.add_patch(plt.Circle(env.goal, env.goal_radius, color="tab:green", alpha=0.25))
    axis.set_xlim(-env.bound, env.bound)
    axis.set_ylim(-env.bound, env.bound)
    axis.set_aspect("equal")
    axis.set_xticks([])
    axis.set_yticks([])


def common_scores(result: dict) -> list[float]:
    """Phase-2 returns normalised by the random return and the common reference level (see ``load_runs``)."""
    low, high = result["random_return"], result["reference_return"]
    return [(point["mean_return"] - low) / (high - low) for point in result["curve"] if point["phase"] == 2]


def plot(runs: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    algos = [algo for algo in ALGOS if any(r["algo"] == algo for r in runs)]
    seeds = sorted({r["seed"] for r in runs})
    by_key = {(r["algo"], r["seed"]): r for r in runs}
    phase1 = runs[0]["config"]["phase1_steps"]

    # Returns around the block, one panel per algorithm
    n_cols = min(len(algos), 4)
    n_rows = -(-len(algos) // n_cols)
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(3.6 * n_cols, 3.0 * n_rows + 0.4), squeeze=False, sharey=True)
    for axis in axes.flat[len(algos) :]:
        axis.set_visible(False)
    for index, algo in enumerate(algos):
        col = index % n_cols
        axis = axes[index // n_cols][col]
        group = [by_key[(algo, seed)] for seed in seeds if (algo, seed) in by_key]
        for result in group:
            steps = np.array([point["step"] for point in result["curve"]]) - phase1
            returns = [point["mean_return"] for point in result["curve"]]
            axis.plot(steps, returns, color=ALGO_COLORS[algo], linewidth=0.7, alpha=0.4)
        lengths = {len(result["curve"]) for result in group}
        if len(lengths) == 1:
            steps = np.array([point["step"] for point in group[0]["curve"]]) - phase1
            mean = np.mean([[point["mean_return"] for point in result["curve"]] for result in group], axis=0)
            axis.plot(steps, mean, color=ALGO_COLORS[algo], linewidth=2, label="mean")
        axis.axvline(0, color="black", linestyle=":", linewidth=1)
        axis.axhline(np.mean([r["random_return"] for r in group]), color="grey", linestyle="--", linewidth=0.8)
        axis.set_title(f"{LABELS[algo]} ({len(group)} seeds)", fontsize=9)
        axis.set_xlabel("steps relative to the block")
        if col == 0:
            axis.set_ylabel(f"stochastic return ({EVAL_EPISODES} episodes)")
    title = "TwoRoutes: return before and after the route in use is blocked (thin: seeds; dashed: random)"
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(RESULTS / f"{STUDY}_curves.png", dpi=90)
    plt.close(figure)

    # Scores after the block against the common level (the runs' own levels would let a run whose phase 1 ended at
    # a bad moment dominate the mean), all algorithms on one axis
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for algo in algos:
        group = [by_key[(algo, seed)] for seed in seeds if (algo, seed) in by_key]
        if len({len(result["recovery"]["steps"]) for result in group}) != 1:
            continue
        steps = group[0]["recovery"]["steps"]
        scores = np.array([common_scores(result) for result in group])
        # Means only: with eight algorithms, per-seed bands hide each other (the per-seed curves are in route_change_curves)
        width = 3 if algo == "sac" else 1.6
        axis.plot(steps, scores.mean(axis=0), color=ALGO_COLORS[algo], linewidth=width, label=f"{LABELS[algo]} ({len(group)})")
    axis.axhline(RECOVERY_LEVEL, color="black", linestyle=":", linewidth=1)
    axis.set_xlabel("steps after the block")
    axis.set_ylabel("score (0 random, 1 common pre-block level)")
    axis.set_title(
        f"Recovery after the block: mean score over seeds; common level {runs[0]['reference_return']:.1f}",
        fontsize=9,
    )
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(RESULTS / f"{STUDY}_scores.png", dpi=90)
    plt.close(figure)

    # Steps to recover: one dot per seed (hollow: censored), IQM and its CI
    figure, axis = plt.subplots(figsize=(1.6 * len(algos) + 2, 3.6))
    rng = np.random.default_rng(0)
    for index, algo in enumerate(algos):
        group = [by_key[(algo, seed)] for seed in seeds if (algo, seed) in by_key]
        values = np.array([result["recovery"]["steps_to_recover"] for result in group], dtype=float)
        recovered = np.array([result["recovery"]["recovered"] for result in group])
        jitter = index + rng.uniform(-0.15, 0.15, len(values))
        color = ALGO_COLORS[algo]
        axis.scatter(jitter[recovered], values[recovered], color=color, s=25, zorder=3)
        axis.scatter(jitter[~recovered], values[~recovered], facecolors="none", edgecolors=color, s=25, zorder=3)
        iqm, low, high = iqm_with_ci(values.tolist())
        axis.errorbar(index + 0.3, iqm, yerr=[[iqm - low], [high - iqm]], fmt="D", color="black", markersize=5, capsize=3)
    axis.axhline(runs[0]["config"]["phase2_steps"], color="grey", linestyle="--", linewidth=0.8)
    axis.set_xticks(range(len(algos)))
    axis.set_xticklabels([LABELS[algo] for algo in algos], fontsize=8, rotation=15)
    axis.set_ylabel(f"steps to recover {RECOVERY_LEVEL:.0%}")
    axis.set_title("Steps to recover per seed (hollow: censored, dashed: budget); black: IQM, 95% CI", fontsize=9)
    figure.tight_layout()
    figure.savefig(RESULTS / f"{STUDY}_recovery.png", dpi=90)
    plt.close(figure)

    # Trajectories before the block (blue) and at the end (red, with the wall), one row per algorithm
    figure, axes = plt.subplots(len(algos), len(seeds), figsize=(2.2 * len(seeds), 2.3 * len(algos)), squeeze=False)
    for row, algo in enumerate(algos):
        for col, seed in enumerate(seeds):
            axis = axes[row][col]
            result = by_key.get((algo, seed))
            draw_walls(axis, None if result is None else result["blocked_route"])
            if result is None:
                continue
            for key, color in (("before_block", "tab:blue"), ("after_block", "tab:red")):
                for path in result[key]["paths"]:
                    path = np.asarray(path)
                    axis.plot(path[:, 0], path[:, 1], color=color, linewidth=0.6, alpha=0.5)
            axis.set_title(f"{LABELS[algo]} s{seed}", fontsize=7)
    figure.suptitle("Stochastic trajectories before the block (blue) and at the end (red); red box: the wall", fontsize=9)
    figure.tight_layout()
    figure.savefig(RESULTS / f"{STUDY}_trajectories.png", dpi=80)
    plt.close(figure)


def report(args: argparse.Namespace) -> None:
    runs = load_runs()
    if not runs:
        raise SystemExit(f"no result files in {RUNS}")
    settings = settings_used(runs)
    if isinstance(settings, list):
        print("warning: the result files use different settings; the report mixes them", file=sys.stderr)
    rows = per_run_rows(runs)
    table = aggregate(rows)
    meta = {
        **report_meta(runs, settings),
        "code_versions": sorted({json.dumps(result.get("code", "not recorded")) for result in runs}),
    }
    plot(runs)
    write_report(RESULTS / STUDY, rows, table, meta, markdown(table, rows, runs, meta))


def main() -> None:
    global RESULTS, RUNS, STUDY
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "report"])
    parser.add_argument("--algos", nargs="+", choices=list(ALGOS), default=list(ALGOS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--force", action="store_true", help="rerun runs that have a result file")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder (the run files go to <out>/route_change)")
    parser.add_argument("--phase1-steps", type=int, help=f"steps before the block (default {CONFIG['phase1_steps']})")
    parser.add_argument("--phase2-steps", type=int, help=f"steps after the block (default {CONFIG['phase2_steps']})")
    parser.add_argument("--quick", action="store_true", help="a few hundred steps per run, to check the pipeline (use --out)")
    parser.add_argument(
        "--hidden-block", action="store_true", help="shaping_sees_block=False: results under route_change_hidden"
    )
    args = parser.parse_args()
    if args.hidden_block:
        STUDY = "route_change_hidden"
        ENV_KWARGS["shaping_sees_block"] = False
    RESULTS, RUNS = args.out, args.out / STUDY
    if args.quick:
        CONFIG.update(phase1_steps=400, phase2_steps=200, phase1_eval_every=200, eval_every=100, learning_starts=100)
    if args.phase1_steps:
        CONFIG["phase1_steps"] = args.phase1_steps
    if args.phase2_steps:
        CONFIG["phase2_steps"] = args.phase2_steps
    if args.command == "run":
        run(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
