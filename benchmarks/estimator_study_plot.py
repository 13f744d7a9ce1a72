"""
Figures of the estimator study (``estimator_study.py``): bias, spread and gradient variance per cell.
``estimator_study_report.report`` draws them with the tables, and hands them the study's settings (``settings``, an
``estimator_study.Settings``).
"""

import math
from pathlib import Path

from common import pyplot


def plot(result: dict, settings) -> list[Path]:
    """The bias, std and gradient-variance figures, into ``settings.out``."""
    import pandas as pd

    plt = pyplot()
    rows = pd.DataFrame(result["rows"])
    dims = sorted(rows.action_dim.unique())
    components = sorted(rows.n_components.unique())
    spreads = sorted(rows.spread.unique())
    paths = []
    quantities = [
        ("bias", "bias (nats): mean estimate - MC truth", "linear"),
        ("std", "std of one draw (nats)", "linear"),
        ("grad_var", "gradient variance (mean over parameters)", "log"),
    ]
    for key, ylabel, scale in quantities:
        size = (3.0 * len(components), 2.6 * len(dims))
        figure, axes = plt.subplots(len(dims), len(components), figsize=size, squeeze=False)
        for row_index, dim in enumerate(dims):
            for col_index, n_components in enumerate(components):
                axis = axes[row_index][col_index]
                for name in settings.estimators:
                    cell = rows[(rows.action_dim == dim) & (rows.n_components == n_components) & (rows.estimator == name)]
                    cell = cell.sort_values("spread")
                    style = "--" if name == settings.two_sample else "-"
                    axis.plot(range(len(cell)), cell[key], style, marker="o", markersize=3, label=settings.labels[name])
                if key == "bias":
                    axis.axhline(0.0, color="black", linewidth=0.5)
                    if n_components > 1:
                        for bound in (-math.log(n_components), math.log(n_components)):
                            axis.axhline(bound, color="grey", linewidth=0.5, linestyle=":")
                axis.set_yscale(scale)
                axis.set_xticks(range(len(spreads)))
                axis.set_xticklabels([f"{s:g}" for s in spreads])
                axis.set_title(f"N={n_components}, D={dim}", fontsize=9)
                if row_index == len(dims) - 1:
                    axis.set_xlabel("mean separation s (stds)")
                if col_index == 0:
                    axis.set_ylabel(ylabel, fontsize=8)
        handles, labels = axes[0][0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="lower center", ncol=len(settings.estimators), fontsize=8)
        figure.tight_layout(rect=(0, 0.04, 1, 1))
        path = settings.out / f"estimator_study_{key}.png"
        figure.savefig(path, dpi=90)
        plt.close(figure)
        paths.append(path)
    return paths
