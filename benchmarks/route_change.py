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

This file has the task's settings and the runs; ``route_change_report.py`` the tables, ``route_change_plot.py`` the
figures.
"""

import argparse
import sys
import time
from functools import partial

import numpy as np
from common import (
    ALGORITHM_LABELS,
    RESULTS,
    SMALL_TASK_SETTINGS,
    algorithms,
    build_model,
    code_version,
    finished,
    run_each,
    side_by_side,
    study_parser,
)

STUDY = "route_change"  # "route_change_hidden" with --hidden-block
RUNS = RESULTS / STUDY
# TwoRoutes settings of the study: --hidden-block sets shaping_sees_block=False (the reward does not announce the block)
ENV_KWARGS: dict = {}

ENV_ID = "sb3_mixture/TwoRoutes-v0"
ALGOS = {
    # Learned weights with no floor (mixture_weight_floor=0) and with the package's later default, a floor of 0.05
    **algorithms(
        "sac",
        "sacm_n2",
        "sacm_learned_n2",
        "sacm_learned_n4",
        "s2acm_learned_n4",
        "sacm_learned_n2_floor05",
        "sacm_learned_n4_floor05",
        "s2acm_learned_n4_floor05",
    ),
    # Issue 16's candidates: own-data heads with an episodic mixture, and weights from the components' soft values
    "sacm_n4_episode_own": ("SACM", {"n_components": 4, "component_schedule": "episode", "critic_data": "own"}),
    **algorithms("sacm_soft_value_n2"),
    "sacm_soft_value_n2_episode": (
        "SACM",
        {"n_components": 2, "mixture_weights": "soft_value", "component_schedule": "episode"},
    ),
    "sacm_soft_value_n4": ("SACM", {"n_components": 4, "mixture_weights": "soft_value"}),
    "sacm_soft_value_n2_own": ("SACM", {"n_components": 2, "mixture_weights": "soft_value", "critic_data": "own"}),
    # Own-data heads ground V_i in component i's own experience; the soft values then route the episodes that uniform
    # weights wasted on components that cannot reach the goal
    "sacm_soft_value_n4_own": ("SACM", {"n_components": 4, "mixture_weights": "soft_value", "critic_data": "own"}),
    "sacm_soft_value_n4_episode_own": (
        "SACM",
        {"n_components": 4, "mixture_weights": "soft_value", "component_schedule": "episode", "critic_data": "own"},
    ),
}
LABELS = {
    **ALGORITHM_LABELS,
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
    "sacm_soft_value_n4_own": "SACM soft-value weights N=4, own-data heads",
    "sacm_soft_value_n4_episode_own": "SACM soft-value weights N=4, episodic, own-data heads",
}
CONFIG = {
    "phase1_steps": 6_000,
    "phase2_steps": 6_000,
    "phase1_eval_every": 1_000,
    "eval_every": 250,
    "learning_starts": 1_000,
    "gamma": 0.99,
}
EVAL_EPISODES = 50
COMPONENT_EPISODES = 20
PATH_EPISODES = 20  # trajectories kept (before the block and at the end) for the plots
RANDOM_EPISODES = 300
RECOVERY_LEVEL = 0.9
CONVERGED_SUCCESS = 0.9  # a run "had learned the task" at the block if this share of its episodes reached the goal
MIN_SHARE = 0.05  # a route "is used" if at least this share of episodes goes through it
WEIGHT_STATES = {"start": (0.0, -4.0), "below_left": (-4.0, -2.0), "below_right": (4.0, -2.0), "left_gap": (-4.0, 0.0)}
ROUTES = ("left", "right")


def make_model(algo: str, seed: int, config: dict):
    """The model and the raw env it trains on (kept to change the task in place)."""
    from sb3_mixture.envs import TwoRoutesEnv

    env = TwoRoutesEnv(**ENV_KWARGS)
    settings = {**SMALL_TASK_SETTINGS, "learning_starts": config["learning_starts"], "gamma": config["gamma"]}
    return build_model(ALGOS[algo], env, seed, settings), env


# Evaluation -------------------------------------------------------------------------------------------------------


def rollouts(model, n_episodes: int, seed: int, blocked_route: "str | None", keep_paths: int = 0) -> dict:
    """``n_episodes`` stochastic episodes run side by side (one batched ``predict`` per step)."""
    from sb3_mixture.envs import TwoRoutesEnv

    # A batched predict redraws a mixture's acting components for the batch: keep the training envs' schedule
    schedule = model.policy.get_schedule_state() if hasattr(model.policy, "get_schedule_state") else None
    envs = [TwoRoutesEnv(blocked_route=blocked_route, **ENV_KWARGS) for _ in range(n_episodes)]
    returns, infos, paths = side_by_side(model, envs, seed, keep_paths=keep_paths)
    routes, sides = [info["route"] for info in infos], [info["side"] for info in infos]
    success = np.array([info["is_success"] for info in infos], dtype=bool)
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
        "config": {**SMALL_TASK_SETTINGS, **config, **ALGOS[algo][1], "algorithm": ALGOS[algo][0]},
        "env_kwargs": ENV_KWARGS,
        # The package's default floor of learned weights has changed before: the value this run used
        "mixture_weight_floor": getattr(model, "mixture_weight_floor", None),
        "blocked_route": blocked,
        "random_return": random_return(blocked, RANDOM_EPISODES),
        "before_block": before_block,
        "after_block": after_block,
        "curve": curve,
        "code": code,
        "train_eval_cpu_s": round(train_cpu, 1),
        **finished(start, cpu_start),
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


def summary(result: dict) -> str:
    before, rec = result["before_block"], result["recovery"]
    return (
        f"before {before['return']:.2f} routes {before['route_counts']}, "
        f"blocked {result['blocked_route']}, score after block {rec['score_after_block']:.2f}, "
        f"recovered {rec['recovered']} after {rec['steps_to_recover']} steps, final score {rec['final_score']:.2f}"
    )


def run(args: argparse.Namespace) -> None:
    # Seed-major: a partial benchmark covers every algorithm
    runs = {f"{algo}_s{seed}": partial(execute, algo, seed, CONFIG) for seed in args.seeds for algo in args.algos}
    run_each(RUNS, runs, args.force, summary)


def main() -> None:
    global RUNS, STUDY
    # The report and plot modules import this file as `route_change`: run as a script, it is `__main__`, and they
    # should see this very module, with the settings the command line changes
    sys.modules.setdefault("route_change", sys.modules[__name__])
    parser = study_parser(__doc__, STUDY, ALGOS, [0, 1, 2, 3, 4])
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
    RUNS = args.out / STUDY
    if args.quick:
        CONFIG.update(phase1_steps=400, phase2_steps=200, phase1_eval_every=200, eval_every=100, learning_starts=100)
    if args.phase1_steps:
        CONFIG["phase1_steps"] = args.phase1_steps
    if args.phase2_steps:
        CONFIG["phase2_steps"] = args.phase2_steps
    if args.command == "run":
        run(args)
    else:
        from route_change_report import report

        report(args.out, STUDY)


if __name__ == "__main__":
    main()
