"""
Figures of the MuJoCo benchmark (``mujoco_suite.py``): evaluation curves, the aggregate over tasks and the learned
weights' entropy. ``mujoco_report.report`` draws them with the tables.
"""

from pathlib import Path

import numpy as np
from common import pyplot

WEIGHT_COLORS = ("tab:blue", "tab:orange", "tab:green")


def plot_curves(by_label: dict[str, tuple[np.ndarray, np.ndarray, list[dict]]], title: str, file: Path) -> None:
    """Mean stochastic return over training per label (``mujoco_report.curves``), with the range over its runs."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    for name, (x, returns, group) in by_label.items():
        axis.plot(x, returns.mean(axis=0), label=f"{name} ({len(group)} seeds)")
        axis.fill_between(x, returns.min(axis=0), returns.max(axis=0), alpha=0.2)
    axis.set_title(title)
    axis.set_xlabel("environment steps")
    axis.set_ylabel("mean return (5 episodes)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(file, dpi=100)
    plt.close(figure)


def plot_aggregate(rows: list[dict], title: str, file: Path) -> None:
    """IQM of the normalised final return and its CI per algorithm (``mujoco_report.aggregate_report``'s rows)."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 0.5 + 0.45 * len(rows)))
    for y, row in enumerate(reversed(rows)):
        axis.plot(row["iqm_ci"], [y, y], color="tab:blue", linewidth=6, alpha=0.4)
        axis.plot([row["iqm"]], [y], "o", color="tab:blue")
    axis.set_yticks(range(len(rows)), [row["algorithm"] for row in reversed(rows)])
    axis.axvline(1.0, color="grey", linestyle=":", linewidth=1)
    axis.set_xlabel("IQM of SAC-normalised final return (95% CI)")
    axis.set_title(title)
    figure.tight_layout()
    figure.savefig(file, dpi=100)
    plt.close(figure)


def plot_weight_entropy(entropy: dict[str, dict[str, list[tuple[list[int], list[float]]]]], file: Path) -> None:
    """H(w(s)) / log N over training: one panel per task, one colour per label, one line per run."""
    plt = pyplot()
    figure, axes = plt.subplots(1, len(entropy), figsize=(4.5 * len(entropy), 3.4), squeeze=False, sharey=True)
    for axis, (env, by_label) in zip(axes[0], entropy.items(), strict=True):
        for color, (name, runs) in zip(WEIGHT_COLORS, by_label.items(), strict=False):
            for index, (x, y) in enumerate(runs):
                axis.plot(x, y, color=color, alpha=0.5, linewidth=1, label=name if index == 0 else None)
        axis.set_title(env)
        axis.set_xlabel("environment steps")
        axis.set_ylim(0, 1.05)
        axis.legend(fontsize=8)
    axes[0][0].set_ylabel("H(w(s)) / log N (1 = uniform)")
    figure.suptitle("Learned mixing weights: entropy over training (one line per seed)", fontsize=10)
    figure.tight_layout()
    figure.savefig(file, dpi=100)
    plt.close(figure)
