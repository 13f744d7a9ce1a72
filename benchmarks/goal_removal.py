"""
Goal removal: a task with four equally good modes, one of which disappears.

``sb3_mixture/MultiGoal-v0`` (four goals around the origin, soft Q-learning's task). Phase 1: ``PHASE1_STEPS`` of
training; then the goal the policy reached most often in its last evaluation is removed (``set_removed_goals`` on
the same env object: it no longer ends the episode or pays, and the distance cost is to the nearest remaining goal);
the replay buffer is kept. Phase 2: ``PHASE2_STEPS`` more, evaluated right after the removal and every
``EVAL_EVERY`` steps.

Reported per algorithm: how many goals the policy reaches before the removal (goals with at least ``MIN_SHARE`` of
``EVAL_EPISODES`` stochastic episodes) and how many its components reach alone, the pre-removal return, and the steps
to recover ``RECOVERY_LEVEL`` of it: score = (return - random) / (pre-removal return - random), random = the mean
return of uniform random actions on the changed task; censored at ``PHASE2_STEPS`` if never.

    nice -n 5 python benchmarks/goal_removal.py run                   # 10 seeds of every algorithm (resumable)
    python benchmarks/goal_removal.py report
"""

import argparse
import json
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import common
import numpy as np

ALGOS = {
    **common.algorithms("sac"),
    "sacm_n4": ("SACM", {"n_components": 4}),
    "sacm_soft_value_n4": ("SACM", {"n_components": 4, "mixture_weights": "soft_value"}),
    # Issue 23's and issue 30's recipes, with the two-route task's settings
    **common.algorithms("sacm_switch_n4", "sacm_novelty_n4"),
}
LABELS = {
    **common.ALGORITHM_LABELS,
    "sacm_n4": "SACM N=4 (uniform weights)",
    "sacm_soft_value_n4": "SACM N=4, soft-value weights",
}
COMMON = {**common.SMALL_TASK_SETTINGS, "learning_starts": 1000}
PHASE1_STEPS = 8_000
PHASE2_STEPS = 6_000
EVAL_EVERY = 500
EVAL_EPISODES = 50
COMPONENT_EPISODES = 20
RANDOM_EPISODES = 300
RECOVERY_LEVEL = 0.9
MIN_SHARE = 0.05
N_GOALS = 4
SEEDS = list(range(10))


@dataclass(frozen=True)
class Settings:
    """What the runs and the report of one command line use (``settings_from``)."""

    out: Path = common.RESULTS  # the run files go to <out>/goal_removal, the report to <out>

    @property
    def folder(self) -> Path:
        return self.out / "goal_removal"


def rollouts(model, n_episodes: int, seed: int, removed: tuple[int, ...]) -> dict:
    """``n_episodes`` stochastic episodes side by side (one batched ``predict`` per step): mean return and goals."""
    from sb3_mixture.envs import MultiGoalEnv

    envs = [MultiGoalEnv(removed_goals=removed) for _ in range(n_episodes)]
    returns, infos, _ = common.side_by_side(model, envs, seed)
    goals = np.array([info["goal"] for info in infos])
    return {"mean_return": float(returns.mean()), "goal_counts": np.bincount(goals[goals >= 0], minlength=N_GOALS).tolist()}


def goals_reached(counts: list[int], episodes: int) -> int:
    return int(sum(count >= MIN_SHARE * episodes for count in counts))


def component_goals(model, seed: int, removed: tuple[int, ...]) -> "list[list[int]] | None":
    """Goal counts of each component acting alone (None for SAC)."""
    return common.components(model, lambda: rollouts(model, COMPONENT_EPISODES, seed, removed)["goal_counts"])


def execute(algo: str, seed: int) -> dict:
    import torch as th

    from sb3_mixture.envs import MultiGoalEnv

    th.set_num_threads(1)
    start, cpu_start = time.time(), time.process_time()
    class_name, extra = ALGOS[algo]
    env = MultiGoalEnv()
    model = common.build_model(ALGOS[algo], env, seed, COMMON)
    eval_seed = 200_000 + 1000 * seed
    model.learn(PHASE1_STEPS)
    before = rollouts(model, EVAL_EPISODES, eval_seed, ())
    components_before = component_goals(model, eval_seed, ())
    removed = (int(np.argmax(before["goal_counts"])),)
    env.set_removed_goals(removed)
    model._last_obs = None  # the episode in progress was on the old task: the next learn() resets the env
    curve = [{"step": 0, **rollouts(model, EVAL_EPISODES, eval_seed, removed)}]
    while model.num_timesteps < PHASE1_STEPS + PHASE2_STEPS:
        model.learn(EVAL_EVERY, reset_num_timesteps=False)
        curve.append({"step": model.num_timesteps - PHASE1_STEPS, **rollouts(model, EVAL_EPISODES, eval_seed, removed)})
    low = common.random_return(MultiGoalEnv(removed_goals=removed), RANDOM_EPISODES)
    scores = [(point["mean_return"] - low) / (before["mean_return"] - low) for point in curve]
    recovered = [point["step"] for point, score in zip(curve, scores, strict=True) if score >= RECOVERY_LEVEL]
    return {
        "algo": algo,
        "label": LABELS[algo],
        "seed": seed,
        "config": {**COMMON, **extra, "algorithm": class_name, "phase1_steps": PHASE1_STEPS, "phase2_steps": PHASE2_STEPS},
        "before": before,
        "goals_before": goals_reached(before["goal_counts"], EVAL_EPISODES),
        "components_before": components_before,
        "component_goals_before": None
        if components_before is None
        else len({int(np.argmax(counts)) for counts in components_before if sum(counts) > 0}),
        "removed_goal": removed[0],
        "random_return": low,
        "curve": curve,
        "scores": scores,
        "recovered": bool(recovered),
        "steps_to_recover": recovered[0] if recovered else PHASE2_STEPS,
        "final_goal_counts": curve[-1]["goal_counts"],
        "components_after": component_goals(model, eval_seed, removed),
        **common.finished(start, cpu_start),
    }


def summary(result: dict) -> str:
    return (
        f"before {result['before']['mean_return']:.2f} goals {result['before']['goal_counts']} "
        f"(components {result['component_goals_before']}), removed {result['removed_goal']}, recovered "
        f"{result['recovered']} after {result['steps_to_recover']}"
    )


def run(settings: Settings, algos: list[str], seeds: list[int], force: bool) -> None:
    runs = {f"{algo}_s{seed}": partial(execute, algo, seed) for seed in seeds for algo in algos}
    common.run_each(settings.folder, runs, force, summary)


def run_row(run: dict) -> dict:
    """A run's row of the report (``common.per_run_rows``)."""
    return {
        "algo": run["algo"],
        "seed": run["seed"],
        "pre_removal_return": run["before"]["mean_return"],
        "goals_before": run["goals_before"],
        "component_goals_before": run["component_goals_before"],
        "removed_goal": run["removed_goal"],
        "steps_to_recover": run["steps_to_recover"],
        "recovered": run["recovered"],
        "mean_score_phase2": float(np.mean(run["scores"])),
        "final_score": run["scores"][-1],
        "cpu_s": run["cpu_s"],
    }


def summary_entry(selection: dict, group: list[dict]) -> dict:
    """An algorithm's entry of the summary table (``common.aggregate``)."""
    algo = selection["algo"]
    entry = {"algo": algo, "label": LABELS[algo], "seeds": len(group), "recovered": sum(row["recovered"] for row in group)}
    for key in ("steps_to_recover", "pre_removal_return", "goals_before", "mean_score_phase2"):
        entry[key] = common.iqm_summary([row[key] for row in group])
    entry["component_goals_before"] = [
        row["component_goals_before"] for row in group if row["component_goals_before"] is not None
    ]
    return entry


def report(settings: Settings) -> None:
    runs = common.load_runs(settings.folder)
    rows = common.per_run_rows(runs, run_row)
    table = common.aggregate(rows, ({"algo": algo} for algo in ALGOS), summary_entry)
    meta = common.report_meta(runs, {**COMMON, "phase1_steps": PHASE1_STEPS, "phase2_steps": PHASE2_STEPS})

    lines = [
        "# Goal removal: MultiGoal's most used goal is taken away",
        "",
        common.generated_by(meta, len(runs), "goal_removal"),
        "",
        f"Protocol: {PHASE1_STEPS} steps on `sb3_mixture/MultiGoal-v0` (defaults), then the goal reached most often in "
        f"{EVAL_EPISODES} stochastic episodes is removed (replay buffer kept) and training goes on for {PHASE2_STEPS} "
        f"steps, evaluated every {EVAL_EVERY}. Settings {json.dumps(COMMON)}, SB3's SAC defaults otherwise. Goals "
        f"reached: goals with at least {MIN_SHARE:.0%} of the episodes; component goals: distinct goals the components "
        f"reach most often alone ({COMPONENT_EPISODES} episodes each). Steps to recover: first evaluation with score >= "
        f"{RECOVERY_LEVEL}, score = (return - random) / (pre-removal return - random), censored at {PHASE2_STEPS}. IQM "
        "over seeds with the 95% stratified-bootstrap CI (rliable); overlapping CIs mean no difference.",
        "",
        "| algorithm | seeds | goals reached before | component goals per seed | pre-removal return | steps to recover "
        "| recovered | mean score after the removal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for entry in table:
        lines.append(
            f"| {entry['label']} | {entry['seeds']} | {common.interval(entry['goals_before'], 1)} "
            f"| {entry['component_goals_before'] or '-'} | {common.interval(entry['pre_removal_return'], 2)} "
            f"| {common.interval(entry['steps_to_recover'])} | {entry['recovered']}/{entry['seeds']} "
            f"| {common.interval(entry['mean_score_phase2'], 2)} |"
        )
    lines += ["", "![Scores after the removal](goal_removal.png)", ""]
    plt = common.pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 3.8))
    for algo in ALGOS:
        group = [run for run in runs if run["algo"] == algo]
        if group:
            steps = [point["step"] for point in group[0]["curve"]]
            axis.plot(steps, np.mean([run["scores"] for run in group], axis=0), label=f"{LABELS[algo]} ({len(group)} seeds)")
    axis.axhline(RECOVERY_LEVEL, color="grey", linestyle=":", linewidth=1)
    axis.set_xlabel("steps after the removal")
    axis.set_ylabel("score (mean over seeds)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(settings.out / "goal_removal.png", dpi=100)
    plt.close(figure)
    common.write_report(settings.out / "goal_removal", rows, table, meta, "\n".join(lines))


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(out=args.out)


def main() -> None:
    parser = common.study_parser(__doc__, "goal_removal", ALGOS, SEEDS)
    args = parser.parse_args()
    common.run_or_report(args, settings_from(args), run, report)


if __name__ == "__main__":
    main()
