"""
Figures of the multimodal study (``multimodal.py``): MultiGoal trajectories and actions at the origin, bandit actions
and learned weights. ``multimodal_report.report`` draws them with the tables, and hands them the study's settings
(``settings``, a ``multimodal.Settings``).
"""

from pathlib import Path

import numpy as np
from common import pyplot

GOAL_COLORS = ["tab:red", "tab:blue", "tab:green", "tab:purple"]


def steps_of(result: dict) -> int:
    """A run's training budget."""
    return int(result["config"]["total_timesteps"])


def plot_trajectories(runs: list[dict], settings, file: Path) -> None:
    """MultiGoal trajectories of the stochastic policy: one row per algorithm, one column per seed."""
    from sb3_mixture.envs import GOALS

    plt = pyplot()

    algos = [algo for algo in settings.algos if any(r["algo"] == algo for r in runs)]
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
                axis.set_title(f"{settings.labels[algo]} s{seed}: goals {stochastic['goal_counts']}", fontsize=7)
            axis.set_xlim(-7, 7)
            axis.set_ylim(-7, 7)
            axis.set_aspect("equal")
            axis.set_xticks([])
            axis.set_yticks([])
    figure.suptitle(
        f"MultiGoal, {steps} steps:\n{settings.eval_episodes} stochastic episodes per panel "
        "(colour = goal reached, grey = none)",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(file, dpi=80)
    plt.close(figure)


def plot(runs: list[dict], settings) -> None:
    """Every figure of the report, into ``settings.out``."""
    from sb3_mixture.envs import GOALS, bimodal_reward

    plt = pyplot()

    out = settings.out
    default = [r for r in runs if steps_of(r) == settings.default_steps(r["env_key"])]
    multigoal_budgets = sorted({steps_of(r) for r in runs if r["env_key"] == "multigoal"})
    for steps in multigoal_budgets:
        budget = [r for r in runs if r["env_key"] == "multigoal" and steps_of(r) == steps]
        suffix = "" if steps == settings.default_steps("multigoal") else f"_{steps // 1000}k"
        plot_trajectories(budget, settings, out / f"multimodal_multigoal_trajectories{suffix}.png")
    seeds = sorted({result["seed"] for result in default})
    by_key = {(r["env_key"], r["algo"], r["seed"]): r for r in default}

    multigoal_algos = [algo for algo in settings.algos if any(key[:2] == ("multigoal", algo) for key in by_key)]
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
        axis.set_title(settings.labels[algo], fontsize=9)
        if col == 0 and axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=6, markerscale=3, loc="lower left")
    figure.suptitle(
        f"MultiGoal, {settings.default_steps('multigoal')} steps: 300 actions sampled at the origin per seed "
        "(arrows: goal directions)",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(out / "multimodal_multigoal_origin_actions.png", dpi=90)
    plt.close(figure)

    bandit_algos = [algo for algo in settings.algos if any(key[:2] == ("bandit", algo) for key in by_key)]
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
        axis.set_title(settings.labels[algo])
        axis.set_xlabel("action")
        axis.set_yscale("log")
        if col == 0:
            axis.set_ylabel("density of sampled actions")
            if axis.get_legend_handles_labels()[0]:
                axis.legend(fontsize=7)
    figure.suptitle(f"Bimodal bandit, {settings.default_steps('bandit')} steps: sampled actions per seed", fontsize=10)
    figure.tight_layout()
    figure.savefig(out / "multimodal_bandit_actions.png", dpi=90)
    plt.close(figure)
    learned = [r for r in default if r["env_key"] == "bandit" and r.get("weights_over_training")]
    plot_bandit_weights(learned, settings, out / "multimodal_bandit_weights.png")


def mode_weight_over_training(result: dict, location: float, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Steps and the total learned weight of the components whose final mean action is within ``radius`` of ``location``."""
    records = np.asarray(result["weights_over_training"])
    means = np.array([component["mean_action"] for component in result["evaluation"]["components"]])
    on_mode = np.abs(means - location) < radius
    return records[:, 0], records[:, 1:][:, on_mode].sum(axis=1)


def plot_bandit_weights(runs: list[dict], settings, path: Path) -> None:
    """Learned mixing weights over training on the bandit: the weight on the +1 and on the -1 component(s)."""
    if not runs:
        return
    plt = pyplot()
    algos = [algo for algo in settings.algos if any(r["algo"] == algo for r in runs)]
    figure, axes = plt.subplots(1, len(algos), figsize=(3.6 * len(algos), 3.0), squeeze=False, sharey=True)
    for axis, algo in zip(axes[0], algos, strict=True):
        for result in (r for r in runs if r["algo"] == algo):
            for location, color in ((1.0, "tab:blue"), (-1.0, "tab:red")):
                steps, weight = mode_weight_over_training(result, location, settings.mode_radius)
                axis.plot(steps, weight, color=color, alpha=0.6, linewidth=1)
        axis.set_title(settings.labels[algo], fontsize=9)
        axis.set_xlabel("environment steps")
        axis.set_ylim(-0.02, 1.02)
    axes[0][0].set_ylabel("weight on the +1 (blue) / -1 (red) bump")
    figure.suptitle("Bimodal bandit: learned mixing weights over training (one line per seed and bump)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
