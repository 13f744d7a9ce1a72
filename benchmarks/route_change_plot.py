"""
Figures of the route-change study (``route_change.py``): returns around the block, recovery scores and steps, and
trajectories. ``route_change_report.report`` draws them with the tables, and hands them the study's settings
(``settings``, a ``route_change.Settings``).
"""

import numpy as np
from common import iqm_with_ci, pyplot

ALGO_COLORS = {
    "sac": "tab:blue",
    "sacm_n2": "tab:orange",
    "sacm_learned_n2": "tab:green",
    "sacm_learned_n4": "tab:red",
    "s2acm_learned_n4": "tab:purple",
    "sacm_learned_n2_floor05": "tab:olive",
    "sacm_learned_n4_floor05": "tab:brown",
    "s2acm_learned_n4_floor05": "tab:pink",
    "sacm_n4_episode_own": "tab:gray",
    "sacm_soft_value_n2": "tab:cyan",
    "sacm_soft_value_n2_episode": "darkgoldenrod",
    "sacm_soft_value_n4": "navy",
    "sacm_soft_value_n2_own": "teal",
    "sacm_soft_value_n4_own": "darkviolet",
    "sacm_soft_value_n4_episode_own": "crimson",
    "sacm_switch_n4": "black",
    "sacm_switch_n4_no_diversity": "dimgray",
    "sacm_switch_n4_no_choice": "darkorange",
    "sacm_switch_n4_all_data": "seagreen",
    "sacm_novelty_n4": "tab:purple",
    "sacm_novelty_n2": "tab:pink",
    "sacm_novelty_n4_no_charge": "tab:olive",
}
COMPONENT_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive")


def draw_walls(axis, blocked_route: "str | None") -> None:
    from sb3_mixture.envs import TwoRoutesEnv

    plt = pyplot()

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
    """Phase-2 returns normalised by the random return and the common reference level (see ``load_recovery_runs``)."""
    low, high = result["random_return"], result["reference_return"]
    return [(point["mean_return"] - low) / (high - low) for point in result["curve"] if point["phase"] == 2]


def plot(runs: list[dict], settings) -> None:
    """Every figure of the report, into ``settings.out`` (``<study>_*.png``)."""
    plt = pyplot()

    out, study, labels = settings.out, settings.study, settings.labels
    algos = [algo for algo in settings.algos if any(r["algo"] == algo for r in runs)]
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
        axis.set_title(f"{labels[algo]} ({len(group)} seeds)", fontsize=9)
        axis.set_xlabel("steps relative to the block")
        if col == 0:
            axis.set_ylabel(f"stochastic return ({settings.eval_episodes} episodes)")
    title = "TwoRoutes: return before and after the route in use is blocked (thin: seeds; dashed: random)"
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(out / f"{study}_curves.png", dpi=90)
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
        axis.plot(steps, scores.mean(axis=0), color=ALGO_COLORS[algo], linewidth=width, label=f"{labels[algo]} ({len(group)})")
    axis.axhline(settings.recovery_level, color="black", linestyle=":", linewidth=1)
    axis.set_xlabel("steps after the block")
    axis.set_ylabel("score (0 random, 1 common pre-block level)")
    axis.set_title(
        f"Recovery after the block: mean score over seeds; common level {runs[0]['reference_return']:.1f}",
        fontsize=9,
    )
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / f"{study}_scores.png", dpi=90)
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
    axis.set_xticklabels([labels[algo] for algo in algos], fontsize=8, rotation=15)
    axis.set_ylabel(f"steps to recover {settings.recovery_level:.0%}")
    axis.set_title("Steps to recover per seed (hollow: censored, dashed: budget); black: IQM, 95% CI", fontsize=9)
    figure.tight_layout()
    figure.savefig(out / f"{study}_recovery.png", dpi=90)
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
            axis.set_title(f"{labels[algo]} s{seed}", fontsize=7)
    figure.suptitle("Stochastic trajectories before the block (blue) and at the end (red); red box: the wall", fontsize=9)
    figure.tight_layout()
    figure.savefig(out / f"{study}_trajectories.png", dpi=80)
    plt.close(figure)


def plot_switching(runs: list[dict], settings) -> None:
    """
    Issue 23's figures, for each run with return statistics, the first seed of each algorithm: each component's
    trajectories alone before and after the block (``<study>_<algo>_components.png``), and each component's recent
    training return with the component the bandit favours, over time across the block (``<study>_<algo>_choice.png``).
    """
    plt = pyplot()
    for algo in settings.algos:
        group = [r for r in runs if r["algo"] == algo and "component_returns" in r["curve"][-1]]
        group.sort(key=lambda r: r["seed"])
        if not group:
            continue
        result = group[0]
        phase1 = result["config"]["phase1_steps"]
        figure, axes = plt.subplots(1, 2, figsize=(8, 4))
        moments = (("before_block", None), ("after_block", result["blocked_route"]))
        for axis, (moment, blocked) in zip(axes, moments, strict=True):
            draw_walls(axis, blocked)
            for index, alone in enumerate(result[moment]["components"]):
                for path in alone.get("paths", []):
                    path = np.array(path)
                    axis.plot(path[:, 0], path[:, 1], color=COMPONENT_COLORS[index], linewidth=0.8, alpha=0.6)
                axis.plot([], [], color=COMPONENT_COLORS[index], label=f"component {index} ({alone['success_rate']:.0%})")
            axis.set_title(f"{'before' if blocked is None else 'after'} the block")
            axis.set_aspect("equal")
        axes[1].legend(fontsize=7, loc="lower right")
        figure.suptitle(f"{settings.labels[algo]}, seed {result['seed']}: each component alone", fontsize=10)
        figure.tight_layout()
        figure.savefig(settings.out / f"{settings.study}_{algo}_components.png", dpi=110)
        plt.close(figure)

        points = [point for point in result["curve"] if "component_returns" in point]
        steps = np.array([point["step"] for point in points]) - phase1
        figure, axis = plt.subplots(figsize=(7, 3.6))
        for index in range(len(points[-1]["component_returns"])):
            values = [point["component_returns"][index] for point in points]
            values = [np.nan if value is None else value for value in values]
            axis.plot(steps, values, color=COMPONENT_COLORS[index], label=f"component {index}")
            chosen = [value for point, value in zip(points, values, strict=True) if point["best_return_component"] == index]
            chosen_steps = [step for point, step in zip(points, steps, strict=True) if point["best_return_component"] == index]
            axis.scatter(chosen_steps, chosen, color=COMPONENT_COLORS[index], s=14, zorder=3)
        axis.axvline(0, color="black", linestyle=":", linewidth=1)
        axis.set_xlabel("steps after the block")
        axis.set_ylabel("recent training return")
        axis.set_title(f"{settings.labels[algo]}, seed {result['seed']}\ndots: the component the bandit favours", fontsize=9)
        axis.legend(fontsize=7)
        figure.tight_layout()
        figure.savefig(settings.out / f"{settings.study}_{algo}_choice.png", dpi=110)
        plt.close(figure)
