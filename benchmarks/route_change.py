r"""
Route change: when the route a policy uses gets blocked, does a mixture policy switch to another route, or relearn?

Soft Q-learning's argument for multimodal policies (Haarnoja et al., 2017) is robustness: a policy that keeps
several good behaviours can fall back on another one when the task changes. The test here:
``sb3_mixture/TwoRoutes-v0`` (a point goes around a central obstacle, left or right, both routes equally good).

- Phase 1: ``phase1_steps`` of training on the open task, evaluated every ``phase1_eval_every`` steps.
- Block: the route the policy took most often in the last phase-1 evaluation is closed with a wall (the agent
  always has to switch) on the same env object, which is reset; the replay buffer is kept (a continual learner
  does not know that the task changed). The reward announces the block (``shaping_sees_block=True``, results under
  ``<out>/route_change``) or, with ``--hidden-block``, does not (``<out>/route_change_hidden``): the agent then finds
  out by running into the wall.
- Phase 2: ``phase2_steps`` more (``learn(..., reset_num_timesteps=False)``), evaluated right after the block and
  every ``eval_every`` steps.

Every evaluation: ``eval_episodes`` stochastic episodes (fixed seeds), their mean return, success rate and the
route each took (the gap it went through; also the side it tried, for episodes stuck in the dead end); with learned
or soft-value mixing weights, the weights at the start state. With an episodic mixture, also its return statistics
(``common.return_statistics``): each component's recent training-episode return (the mean of its last
``return_window``) and its episode count so far, and the component the policy names as the best
(``component_choice.best_return_component()``, the one ``deterministic_component="best_return"`` plays). Before the
block and at the end, also: ``path_episodes`` trajectories; for mixtures, each component alone
(``policy.use_component(i)``: return, success, routes, ``component_paths`` trajectories); with learned or soft-value
mixing weights, the weights ``w(s)`` at a few states (``WEIGHT_STATES``); and the return, success and routes of
``predict(deterministic=True)``, the policy a user deploys.

Recovery: score = (return - random) / (pre-block - random), with "random" the mean return of uniform random
actions on the blocked task (``random_episodes``) and "pre-block" the return of the last phase-1
evaluation; this maps random play to 0 and the pre-block level to 1 whatever the sign of the returns. Steps to
recover: steps after the block until the first evaluation with score >= ``recovery_level`` (0 if the policy
already reaches it right after the block), censored at ``phase2_steps`` if never.

Two protocols, each with its own result folders (``common.SMALL_TASK_SETTINGS``: small nets (64, 64) and a buffer of
100k transitions, SB3's SAC defaults otherwise: lr 3e-4, batch 256, automatic temperature, one gradient step per env
step; ``learning_starts`` 1000):

- **Recovery, 6k + 6k** (``Settings``' defaults; ``benchmarks/results/route_change``, and for SAC, SACM N = 2 and
  the soft-value weights ``route_change_hidden``, each condition run on its own): SAC and SACM with N = 2 uniform
  weights (10 seeds); SACM with learned weights (N = 2, 4) and S2ACM with learned weights (N = 4), with no floor on
  the weights (``mixture_weight_floor=0``) and with a floor of 0.05 (``*_floor05``, the package's default since),
  seeds 0-4; issue 16's candidates, 10 seeds: soft-value weights (N = 2, 4) and own-data heads with an episodic
  mixture (``sacm_n4_episode_own``), and on 3 seeds soft-value weights with own-data heads
  (``sacm_soft_value_n4_own``, ``sacm_soft_value_n4_episode_own``). Pilots of SAC
  (seeds 0 and 1) reached a return of about 53 (the best is about 55) with 98-100% successes within 4000-5000 steps;
  after a block at 6000 steps, SAC and the mixtures of seed 0 needed from 2000 to more than 4000 steps to recover, so
  4000 steps after the block censored some runs and 6000 leave room. A run costs 55-190 CPU-seconds (SAC the least,
  the N = 4 mixtures the most, and more when the machine is busy).
- **Switching, 20k + 6k** (issue 23; ``--phase1-steps 20000 --phase2-steps 6000 --both-blocks --out
  benchmarks/results/route_change_20k``, seeds 0-9): SAC against the switch recipe (``sacm_switch_n4``,
  ``common.SWITCH``: four components, one per episode, drawn among those whose recent return is near the best;
  deterministic ``predict`` plays the best; own-data critic heads; a state discriminator charges each near-best
  component for the states the other near-best ones visit) and its two ablations: without the diversity charge
  (``sacm_switch_n4_no_diversity``, ``diversity_weight=0``) and without the return-based choice
  (``sacm_switch_n4_no_choice``: a uniform draw of the episode's component, and deterministic ``predict`` plays
  the mixture's mode). The all-data variant (``sacm_switch_n4_all_data``: every head learns from every transition)
  is defined but not run yet. With ``--both-blocks`` each seed trains phase 1 once: at the block, a forked copy of
  the process goes on with the block hidden (phase 1 does not depend on the condition; SAC's 20 paired runs
  reproduced its separate ones: the same routes and recovery, the curves within 1e-13). A run, its shared phase 1
  counted in both conditions, costs 130-190 CPU-seconds for SAC and 215-310 for the mixtures. The pilots that found
  the recipe (seed 0 or a few seeds) are archived under ``benchmarks/results/pilots/route_change_20k/``, outside
  every report.

    nice -n 5 python benchmarks/route_change.py run                       # every algorithm, 6k + 6k, seeds 0-4
    nice -n 5 python benchmarks/route_change.py run --hidden-block --algos sac sacm_n2 --seeds 0 1
    nice -n 5 python benchmarks/route_change.py run --both-blocks --algos sac sacm_switch_n4 sacm_switch_n4_no_diversity \
        sacm_switch_n4_no_choice --seeds 0 1 2 3 4 5 6 7 8 9 --phase1-steps 20000 --phase2-steps 6000 \
        --out benchmarks/results/route_change_20k
    python benchmarks/route_change.py report                              # tables and plots from the result files
    python benchmarks/route_change.py --hidden-block report --out benchmarks/results/route_change_20k

Runs are seed-major (a partial benchmark covers every algorithm) and resumable: each writes its own result file,
``<out>/<study>/<algo>_s<seed>.json``, and a rerun skips finished runs. ``--phase1-steps`` and ``--phase2-steps``
change the budget and ``--quick`` makes it a few hundred steps (to check the pipeline, with ``--out``).

This file has the study's settings (``Settings``: one value per command line, which the runs, the report and the
plots receive) and the runs; ``route_change_report.py`` the tables and the recovery measures,
``route_change_plot.py`` the figures.
"""

import argparse
import os
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from common import (
    ALGORITHM_LABELS,
    NOVELTY,
    RESULTS,
    SMALL_TASK_SETTINGS,
    SWITCH,
    add_phase_options,
    algorithms,
    code_version,
    curve_point,
    finished,
    main_route,
    make_model,
    phase_changes,
    phase_config,
    random_return,
    run_each,
    run_or_report,
    save_result,
    side_by_side,
    snapshot,
    study_parser,
)
from route_change_report import recovery, report

if TYPE_CHECKING:
    # For the annotations only: this script imports the package (and torch) inside the functions that need it
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

    from sb3_mixture.envs import TwoRoutesEnv

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
    # Issue 23: switch, don't relearn. The recipe, its two ablations (no diversity charge; no return-based choice:
    # components drawn uniformly per episode, deterministic acting plays the mode) and the all-data variant (every head
    # learns from every transition, relabelled with its own charge)
    **algorithms("sacm_switch_n4"),
    # diversity_start has no effect without a charge (refused since issue 29)
    "sacm_switch_n4_no_diversity": ("SACM", {**SWITCH, "diversity_weight": 0.0, "diversity_start": 0}),
    "sacm_switch_n4_no_choice": (
        "SACM",
        {**SWITCH, "component_schedule": "episode", "deterministic_component": "mode"},
    ),
    "sacm_switch_n4_all_data": ("SACM", {**SWITCH, "critic_data": "shared"}),
    # Issue 30's pilots: the ordered novelty charge (docs/algorithm.md section 13) with N = 4 and N = 2
    **algorithms("sacm_novelty_n4"),
    "sacm_novelty_n2": ("SACM", {**NOVELTY, "n_components": 2}),
    # ... and its ablation without the charge (the diversity settings have no effect without it: refused)
    "sacm_novelty_n4_no_charge": ("SACM", {key: value for key, value in NOVELTY.items() if not key.startswith("diversity")}),
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
    "sacm_switch_n4_no_diversity": "SACM switch recipe N=4, no diversity charge",
    "sacm_switch_n4_no_choice": "SACM switch recipe N=4, no return-based choice",
    "sacm_switch_n4_all_data": "SACM switch recipe N=4, all-data heads",
    "sacm_novelty_n2": "SACM novelty recipe N=2",
    "sacm_novelty_n4_no_charge": "SACM novelty recipe N=4, no charge",
}
WEIGHT_STATES = {"start": (0.0, -4.0), "below_left": (-4.0, -2.0), "below_right": (4.0, -2.0), "left_gap": (-4.0, 0.0)}
ROUTES = ("left", "right")


@dataclass(frozen=True)
class Settings:
    """
    Everything the runs, the report and the plots use, as one value: ``settings_from`` builds it from the command
    line (the defaults are the study's) and each function gets it as an argument. A new option is a field here and,
    if the command line sets it, a flag in ``main`` read by ``settings_from``.
    """

    out: Path = RESULTS  # the run files go to <out>/<study>, the report to <out>
    hidden_block: bool = False  # shaping_sees_block=False: the reward does not announce the block
    # Budget and training: a result file records them (``config``)
    phase1_steps: int = 6_000
    phase2_steps: int = 6_000
    phase1_eval_every: int = 1_000
    eval_every: int = 250
    learning_starts: int = 1_000
    gamma: float = 0.99
    # Evaluation, and the report's thresholds
    eval_episodes: int = 50
    component_episodes: int = 20
    path_episodes: int = 20  # trajectories kept (before the block and at the end) for the plots
    component_paths: int = 5  # trajectories of each component alone kept (before the block and at the end)
    random_episodes: int = 300
    recovery_level: float = 0.9
    converged_success: float = 0.9  # a run "had learned the task" at the block if this share of its episodes reached the goal
    min_share: float = 0.05  # a route "is used" if at least this share of episodes goes through it
    weight_states: dict = field(default_factory=lambda: WEIGHT_STATES)
    algos: dict = field(default_factory=lambda: ALGOS)
    labels: dict = field(default_factory=lambda: LABELS)

    @property
    def study(self) -> str:
        """The name of the run files' folder and of the report's files."""
        return "route_change_hidden" if self.hidden_block else "route_change"

    @property
    def folder(self) -> Path:
        return self.out / self.study

    @property
    def env_kwargs(self) -> dict:
        """TwoRoutes' settings other than its defaults."""
        return {"shaping_sees_block": False} if self.hidden_block else {}

    @property
    def config(self) -> dict:
        """The budget and training settings as a result file records them (``common.phase_config``)."""
        return phase_config(self)


# --quick: a few hundred steps per run
QUICK = {"phase1_steps": 400, "phase2_steps": 200, "phase1_eval_every": 200, "eval_every": 100, "learning_starts": 100}


def task_env(settings: Settings, blocked_route: "str | None" = None) -> "TwoRoutesEnv":
    """The two-route task of ``settings`` (the block announced or hidden), with ``blocked_route`` walled up."""
    from sb3_mixture.envs import TwoRoutesEnv

    return TwoRoutesEnv(blocked_route=blocked_route, **settings.env_kwargs)


def model_and_env(algo: str, seed: int, settings: Settings) -> "tuple[OffPolicyAlgorithm, TwoRoutesEnv]":
    """The model and the raw env it trains on (kept to change the task in place)."""
    env = task_env(settings)
    return make_model(settings.algos[algo], env, seed, learning_starts=settings.learning_starts, gamma=settings.gamma), env


# Evaluation -------------------------------------------------------------------------------------------------------


def rollouts(
    model,
    settings: Settings,
    n_episodes: int,
    seed: int,
    blocked_route: "str | None",
    keep_paths: int = 0,
    deterministic: bool = False,
) -> dict:
    """``n_episodes`` episodes (stochastic unless ``deterministic``) run side by side (one batched ``predict`` per step)."""
    # predict acts with a schedule of its own: the training envs' draws are left as they were
    envs = [task_env(settings, blocked_route) for _ in range(n_episodes)]
    returns, infos, paths = side_by_side(model, envs, seed, deterministic=deterministic, keep_paths=keep_paths)
    routes, sides = [info["route"] for info in infos], [info["side"] for info in infos]
    success = np.array([info["is_success"] for info in infos], dtype=bool)
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


def evaluation_point(
    model, settings: Settings, phase: int, seed: int, blocked_route: "str | None", keep_paths: int = 0
) -> dict:
    """A point of the run's curve (``common.curve_point``), without the episodes' returns."""
    summary = rollouts(model, settings, settings.eval_episodes, seed, blocked_route, keep_paths)
    summary.pop("returns")
    return curve_point(model, phase, summary, settings.weight_states)


def stage_snapshot(model, settings: Settings, point: dict, seed: int, blocked_route: "str | None") -> dict:
    """The run's ``before_block`` or ``after_block`` (``common.snapshot``) from its last evaluation ``point``."""
    evaluate = partial(rollouts, model, settings, seed=seed, blocked_route=blocked_route)
    return snapshot(model, point, evaluate, settings, settings.weight_states)


def first_phase(algo: str, seed: int, settings: Settings) -> tuple:
    """Phase 1 on the open task: the model, its raw env and the run so far (its clocks, code, curve and what the
    policy does at the block). The open task is the same whether the block will be announced or hidden."""
    import torch as th

    th.set_num_threads(1)
    start, cpu_start = time.time(), time.process_time()
    model, env = model_and_env(algo, seed, settings)
    eval_seed = 100_000 + 1000 * seed
    # The code is read right after the package's import: the sources this run uses
    run = {"start": start, "cpu_start": cpu_start, "code": code_version(), "eval_seed": eval_seed, "curve": []}
    while model.num_timesteps < settings.phase1_steps:
        chunk = min(settings.phase1_eval_every, settings.phase1_steps - model.num_timesteps)
        model.learn(chunk, reset_num_timesteps=False)
        last = model.num_timesteps >= settings.phase1_steps
        run["curve"].append(evaluation_point(model, settings, 1, eval_seed, None, settings.path_episodes if last else 0))
    before = run["curve"][-1]
    run["before_block"] = stage_snapshot(model, settings, before, eval_seed, None)
    run["blocked"] = main_route(before)
    return model, env, run


def second_phase(algo: str, seed: int, settings: Settings, model, env, run: dict) -> dict:
    """The block (announced or hidden as ``settings`` says), phase 2 and the run's result."""
    eval_seed, blocked, curve = run["eval_seed"], run["blocked"], run["curve"]
    env.shaping_sees_block = not settings.hidden_block
    env.set_blocked_route(blocked)
    # The episode in progress started on the open task (its point may even be inside the new wall): without a last
    # observation, the next learn() resets the env. The replay buffer is kept.
    model._last_obs = None
    curve.append(evaluation_point(model, settings, 2, eval_seed, blocked))
    end = settings.phase1_steps + settings.phase2_steps
    while model.num_timesteps < end:
        model.learn(min(settings.eval_every, end - model.num_timesteps), reset_num_timesteps=False)
        last = model.num_timesteps >= end
        curve.append(evaluation_point(model, settings, 2, eval_seed, blocked, settings.path_episodes if last else 0))
    after_block = stage_snapshot(model, settings, curve[-1], eval_seed, blocked)
    train_cpu = time.process_time() - run["cpu_start"]
    result = {
        "env": ENV_ID,
        "algo": algo,
        "label": settings.labels[algo],
        "seed": seed,
        "config": {**SMALL_TASK_SETTINGS, **settings.config, **settings.algos[algo][1], "algorithm": settings.algos[algo][0]},
        "env_kwargs": settings.env_kwargs,
        # The package's default floor of learned weights has changed before: the value this run used
        "mixture_weight_floor": getattr(model, "mixture_weight_floor", None),
        "blocked_route": blocked,
        "random_return": random_return(task_env(settings, blocked), settings.random_episodes),
        "before_block": run["before_block"],
        "after_block": after_block,
        "curve": curve,
        "code": run["code"],
        "train_eval_cpu_s": round(train_cpu, 1),
        **finished(run["start"], run["cpu_start"]),
    }
    if run.get("paired"):
        result["paired"] = run["paired"]
    result["recovery"] = recovery(result, settings)
    return result


def execute(algo: str, seed: int, settings: Settings, hidden: "Settings | None" = None) -> dict:
    """One run's result. With ``hidden`` (the same study with the block hidden), a forked copy of the process
    continues from the end of phase 1 with the block hidden and saves that run's result file: the two conditions
    share phase 1, which costs most of a run, exactly as two separate runs of a seed would (phase 1 does not depend
    on the condition). If the copy fails, its run's result file is removed (an older one would pass for it) and
    :func:`run` makes that run on its own."""
    model, env, run = first_phase(algo, seed, settings)
    if hidden is not None:
        name = f"{algo}_s{seed}"
        phase1_cpu = time.process_time() - run["cpu_start"]
        # Buffered output would be written twice, once by each process
        sys.stdout.flush()
        sys.stderr.flush()
        child = os.fork()
        if child == 0:
            status = 1
            try:
                # A child's CPU clock starts at zero: count phase 1 in its time as well
                run.update(cpu_start=time.process_time() - phase1_cpu, paired="phase 1 shared with the announced run")
                save_result(hidden.folder, name, second_phase(algo, seed, hidden, model, env, run), summary)
                status = 0
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        # One process at a time: the announced run goes on once the hidden one is saved; its wall time leaves the wait
        waited = time.time()
        _, status = os.waitpid(child, 0)
        run["start"] += time.time() - waited
        if os.waitstatus_to_exitcode(status) != 0:
            print(f"{hidden.study}/{name} failed in the forked process: it runs on its own next", flush=True)
            (hidden.folder / f"{name}.json").unlink(missing_ok=True)
        run["paired"] = "phase 1 shared with the hidden-block run"
    return second_phase(algo, seed, settings, model, env, run)


def summary(result: dict) -> str:
    before, rec = result["before_block"], result["recovery"]
    return (
        f"before {before['return']:.2f} routes {before['route_counts']}, "
        f"blocked {result['blocked_route']}, score after block {rec['score_after_block']:.2f}, "
        f"recovered {rec['recovered']} after {rec['steps_to_recover']} steps, final score {rec['final_score']:.2f}"
    )


def run(settings: Settings, algos: list[str], seeds: list[int], force: bool, both_blocks: bool = False) -> None:
    """The runs (seed-major: a partial benchmark covers every algorithm). ``both_blocks``: each seed's announced and
    hidden runs share phase 1 (``execute``); a hidden run whose announced twin is done runs on its own."""
    if not both_blocks:
        runs = {f"{algo}_s{seed}": partial(execute, algo, seed, settings) for seed in seeds for algo in algos}
        run_each(settings.folder, runs, force, summary)
        return
    announced, hidden = replace(settings, hidden_block=False), replace(settings, hidden_block=True)
    for seed in seeds:
        for algo in algos:
            name = f"{algo}_s{seed}"
            twin = hidden if force or not (hidden.folder / f"{name}.json").exists() else None
            run_each(announced.folder, {name: partial(execute, algo, seed, announced, twin)}, force, summary)
            run_each(hidden.folder, {name: partial(execute, algo, seed, hidden)}, False, summary)


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings of a command line: ``--quick``'s budget, with ``--phase1-steps`` and ``--phase2-steps`` over it."""
    return Settings(out=args.out, hidden_block=args.hidden_block, **phase_changes(args, QUICK))


def main() -> None:
    parser = study_parser(__doc__, "route_change", ALGOS, [0, 1, 2, 3, 4])
    add_phase_options(parser, Settings)
    parser.add_argument(
        "--hidden-block", action="store_true", help="shaping_sees_block=False: results under route_change_hidden"
    )
    parser.add_argument(
        "--both-blocks",
        action="store_true",
        help="run each seed with the block announced and hidden, sharing phase 1 (run only; ignores --hidden-block)",
    )
    args = parser.parse_args()
    run_or_report(args, settings_from(args), run, report, both_blocks=args.both_blocks)


if __name__ == "__main__":
    main()
