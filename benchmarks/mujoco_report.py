"""
Tables of the MuJoCo benchmark (``mujoco_suite.py``) from its result files: final returns with IQM and bootstrap CIs
(rliable), the aggregate over tasks, the entropy of learned and soft-value weights, and the per-seed table of docs/modules.

    python benchmarks/mujoco_suite.py report     # mujoco_table.md and .json, mujoco_aggregate*.json and the plots
    python benchmarks/mujoco_suite.py table      # the Results table of docs/modules/sacm.md and s2acm.md

The functions here get the suites' plan and the results folder as a value, ``settings`` (a ``mujoco_suite.Settings``),
and import nothing from ``mujoco_suite.py``, which imports them.
"""

import json
from pathlib import Path

import numpy as np
from common import bootstrap, load_runs
from mujoco_plot import plot_aggregate, plot_curves, plot_weight_entropy

# An algorithm takes part in an aggregate over tasks with at least this many seeds on some task
MIN_AGGREGATE_SEEDS = 3
# Labels per task in the weight tables and figures (one colour each in the figure); more are left out
WEIGHT_LABELS = 3
# The suites of state-dependent mixing weights, each reported beside the main suite with the weights' entropy
WEIGHT_SUITES = {"learned": "learned", "soft_value": "soft-value"}
# The route-change recipes run on the MuJoCo tasks (issues 23 and 30), by suite
RECIPE_LABELS = {"switch": "SACM switch recipe", "novelty": "SACM novelty recipe"}
# The suites aggregated beside the main suite's algorithms: the weight suites and the recipes
COMPARED_SUITES = {
    **{suite: f"{kind} mixing weights" for suite, kind in WEIGHT_SUITES.items()},
    **{suite: "the " + name.removeprefix("SACM ") for suite, name in RECIPE_LABELS.items()},
}


def load_results(settings, suite: "str | None" = None) -> list[dict]:
    """The result files (of one suite, with the main suite's runs it compares against)."""
    results = load_runs(settings.folder, required=False)
    selected = [result for result in results if suite is None or result["suite"] == suite]
    # The sweep's N=3 and the precision suite's fp32 runs are the main suite's runs on the same tasks, budget and
    # seeds (only those seeds: the main suite may have more, and the comparison should be seed for seed)
    baselines = {
        "sweep": ("s2acm", {"n_components": settings.default_components}),
        "precision": ("sacm", {"matmul_precision": "fp32"}),
    }
    if suite in baselines and selected:
        algo, hyperparams = baselines[suite]
        runs = {(result["env"], result["steps"], result["seed"]) for result in selected}
        for result in results:
            same_run = (result["env"], result["steps"], result["seed"]) in runs
            if result["suite"] == "main" and result["algo"] == algo and same_run:
                selected.append({**result, "suite": suite, "hyperparams": hyperparams})
    return selected


def label(result: dict) -> str:
    if result["suite"] in RECIPE_LABELS:
        return RECIPE_LABELS[result["suite"]]
    names = {"n_components": "N={}", "matmul_precision": "{}", "mixture_weights": "{}", "mixture_weight_floor": "floor {}"}
    extra = "".join(" " + names[key].format(value) for key, value in result["hyperparams"].items() if key in names)
    return result["algo"].upper() + extra


def curves(results: list[dict]) -> dict[str, tuple[np.ndarray, np.ndarray, list[dict]]]:
    """Per label, in label order: the evaluation steps all its runs reached, the runs' stochastic returns there
    (runs x steps), and the runs."""
    groups: dict[str, list[dict]] = {}
    for result in results:
        groups.setdefault(label(result), []).append(result)
    by_label = {}
    for name, group in sorted(groups.items()):
        steps = min(len(result["evaluations"]) for result in group)
        x = np.array([record["timesteps"] for record in group[0]["evaluations"][:steps]])
        returns = np.array([[record["mixture"][0] for record in result["evaluations"][:steps]] for result in group])
        by_label[name] = (x, returns, group)
    return by_label


def report(settings) -> None:
    """Curves, final-return table (mean, std, IQM with bootstrap CIs via rliable) and best single component, into
    ``settings.out``."""
    from rliable import metrics

    out = settings.out
    lines = ["| suite | env | algorithm | seeds | steps | final return (stochastic) mean ± std | IQM [95% CI] "
             "| deterministic | best single component |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    table = []
    main_finals: dict[str, dict[str, np.ndarray]] = {}
    compared_finals: dict[str, dict[str, dict[str, np.ndarray]]] = {suite: {} for suite in COMPARED_SUITES}
    weight_results: dict[str, list[dict]] = {}
    for suite in settings.suites:
        results = load_results(settings, suite)
        if not results:
            continue
        if suite in WEIGHT_SUITES:
            weight_results[suite] = results
        for env in sorted({result["env"] for result in results}):
            by_label = curves([result for result in results if result["env"] == env])
            plot_curves(by_label, f"{env} ({suite}): stochastic evaluation return", out / f"mujoco_{suite}_{env}.png")
            for name, (x, returns, group) in by_label.items():
                steps = returns.shape[1]
                final = returns[:, -1]
                if suite == "main" or suite in COMPARED_SUITES:
                    (main_finals if suite == "main" else compared_finals[suite]).setdefault(env, {})[name] = final
                scores = {name: final.reshape(-1, 1)}
                iqm, ci = bootstrap(scores, lambda s: np.array([metrics.aggregate_iqm(s)]))
                deterministic = np.array([result["evaluations"][steps - 1]["deterministic"][0] for result in group])
                best = [result["evaluations"][steps - 1].get("best_component") for result in group]
                best_text = "—" if best[0] is None else f"{np.mean([b[0] for b in best]):.0f}"
                row = {
                    "suite": suite, "env": env, "algorithm": name, "seeds": len(group), "steps": int(x[-1]),
                    "final_mean": float(final.mean()), "final_std": float(final.std()), "iqm": float(iqm[name][0]),
                    "iqm_ci_low": float(ci[name][0][0]), "iqm_ci_high": float(ci[name][1][0]),
                    "deterministic_mean": float(deterministic.mean()),
                    "best_component_mean": None if best[0] is None else float(np.mean([b[0] for b in best])),
                }  # fmt: skip
                table.append(row)
                lines.append(
                    f"| {suite} | {env} | {name} | {len(group)} | {int(x[-1])} | {final.mean():.0f} ± {final.std():.0f} "
                    f"| {row['iqm']:.0f} [{row['iqm_ci_low']:.0f}, {row['iqm_ci_high']:.0f}] "
                    f"| {deterministic.mean():.0f} | {best_text} |"
                )
    if main_finals:
        lines += ["", *aggregate_report(main_finals, out)]
    for suite, kind in COMPARED_SUITES.items():
        if not compared_finals[suite]:
            continue
        # The suite's runs beside the main suite's algorithms, over the tasks and seeds both have
        combined = {env: {**main_finals.get(env, {}), **algos} for env, algos in compared_finals[suite].items()}
        aggregate = aggregate_report(combined, out, f"mujoco_aggregate_{suite}")
        if aggregate:
            lines += ["", f"With {kind}:", "", *aggregate]
        if suite in WEIGHT_SUITES:
            lines += ["", *weight_report(weight_results[suite], out, suite)]
    (out / "mujoco_table.md").write_text("\n".join(lines) + "\n")
    (out / "mujoco_table.json").write_text(json.dumps(table, indent=1))
    print("\n".join(lines))


def random_returns(envs: list[str], out: Path, episodes: int = 20) -> dict[str, float]:
    """Mean return of uniformly random actions on each task (the 0 of the normalised score), cached in ``out``."""
    import gymnasium as gym

    path = out / "mujoco_random_returns.json"
    cached = json.loads(path.read_text()) if path.exists() else {}
    for env_id in envs:
        if env_id in cached:
            continue
        env = gym.make(env_id)
        env.action_space.seed(0)
        returns = []
        for episode in range(episodes):
            env.reset(seed=episode)
            total, done = 0.0, False
            while not done:
                _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
                total, done = total + float(reward), terminated or truncated
            returns.append(total)
        env.close()
        cached[env_id] = {"mean": float(np.mean(returns)), "episodes": episodes, "action_seed": 0}
    path.write_text(json.dumps(cached, indent=1, sort_keys=True))
    return {env_id: cached[env_id]["mean"] for env_id in envs}


def weight_report(results: list[dict], out: Path, suite: str) -> list[str]:
    """Do state-dependent mixing weights stay spread or collapse? H(w(s)) / log N over training, from the eval
    records of ``suite``'s runs."""
    results = [result for result in results if any("weights" in record for record in result["evaluations"])]
    if not results:
        return []
    lines = [
        f"{WEIGHT_SUITES[suite].capitalize()} mixing weights at the last evaluation (mean over the replay buffer's 1000 "
        "most recent states): weight entropy H(w(s)) as a share of log N (1 = uniform, 0 = one component), the mean "
        "largest weight, and the smallest mean weight of a component.",
        "",
        "| env | algorithm | seeds | H(w) / log N mean [per seed] | largest weight | smallest mean weight |",
        "|---|---|---|---|---|---|",
    ]
    # Per task and label: H(w(s)) / log N over training, one (steps, shares) pair per run
    entropy: dict[str, dict[str, list[tuple[list[int], list[float]]]]] = {}
    for env in sorted({result["env"] for result in results}):
        groups: dict[str, list[dict]] = {}
        for result in results:
            if result["env"] == env:
                groups.setdefault(label(result), []).append(result)
        entropy[env] = {}
        for name, group in sorted(groups.items())[:WEIGHT_LABELS]:
            entropy[env][name], finals = [], []
            for result in group:
                records = [record for record in result["evaluations"] if "weights" in record]
                n_components = len(records[0]["weights"]["mean"])
                x = [record["timesteps"] for record in records]
                y = [record["weights"]["entropy"] / np.log(n_components) for record in records]
                entropy[env][name].append((x, y))
                finals.append(records[-1]["weights"])
            shares = [final["entropy"] / np.log(len(final["mean"])) for final in finals]
            lines.append(
                f"| {env} | {name} | {len(group)} | {np.mean(shares):.2f} [{', '.join(f'{v:.2f}' for v in shares)}] "
                f"| {np.mean([final['max_weight'] for final in finals]):.2f} "
                f"| {np.mean([min(final['mean']) for final in finals]):.3f} |"
            )
    figure = f"mujoco_{suite}_weight_entropy.png"
    plot_weight_entropy(entropy, out / figure)
    return [*lines, "", f"![weight entropy]({figure})"]


def aggregate_report(finals: dict[str, dict[str, np.ndarray]], out: Path, name: str = "mujoco_aggregate") -> list[str]:
    """Across the main suite's tasks: IQM of SAC-normalised final returns and P(algorithm > SAC), via rliable.

    Normalised score on a task: (return - random) / (SAC's mean return - random), so SAC's mean is 1 and a random
    policy 0. Pooling runs x tasks gives the IQM something to trim: over 3 seeds of one task it equals the mean.
    """
    from rliable import metrics

    # Algorithms with MIN_AGGREGATE_SEEDS seeds on some task take part (one-off variants do not); tasks where one of
    # them has fewer (still being run) are left out, so that a task in progress does not drop an algorithm from the
    # others. The tasks contribute their first seeds, as many as every task has (rliable wants a runs x tasks matrix)
    candidates = sorted(env for env, algos in finals.items() if "SAC" in algos)
    algos = sorted({algo for env in candidates for algo, final in finals[env].items() if len(final) >= MIN_AGGREGATE_SEEDS})
    if not algos:
        return []
    envs = [env for env in candidates if all(len(finals[env].get(algo, ())) >= MIN_AGGREGATE_SEEDS for algo in algos)]
    if not envs:
        return []
    seeds = {env: min(len(finals[env][algo]) for algo in algos) for env in envs}
    runs = min(seeds[env] for env in envs)
    random = random_returns(envs, out)
    sac_means = {env: finals[env]["SAC"][:runs].mean() for env in envs}
    normalised = {
        algo: np.stack([(finals[env][algo][:runs] - random[env]) / (sac_means[env] - random[env]) for env in envs], axis=1)
        for algo in algos
    }
    point, interval = bootstrap(
        normalised,
        lambda s: np.array([metrics.aggregate_iqm(s), metrics.aggregate_median(s), metrics.aggregate_mean(s)]),
    )
    pairs = {algo: (normalised[algo], normalised["SAC"]) for algo in algos if algo != "SAC"}
    improvement, improvement_ci = bootstrap(pairs, metrics.probability_of_improvement)
    lines = [
        f"Aggregate over {', '.join(envs)} ({runs} seeds each): final return normalised per task as "
        "(return - random) / (SAC mean - random); random = uniform actions, "
        + ", ".join(f"{env} {random[env]:.0f}" for env in envs)
        + ".",
        "",
        "| algorithm | IQM [95% CI] | median | mean | P(algorithm > SAC) [95% CI] |",
        "|---|---|---|---|---|",
    ]
    rows = []
    for algo in sorted(algos, key=lambda algo: -point[algo][0]):
        low, high = interval[algo]
        p_text = "—"
        row = {"algorithm": algo, "iqm": float(point[algo][0]), "iqm_ci": [float(low[0]), float(high[0])],
               "median": float(point[algo][1]), "mean": float(point[algo][2])}  # fmt: skip
        if algo in pairs:
            p_low, p_high = np.ravel(improvement_ci[algo])
            p = float(np.ravel(improvement[algo])[0])
            row["p_improvement_over_sac"], row["p_improvement_ci"] = p, [float(p_low), float(p_high)]
            p_text = f"{p:.2f} [{p_low:.2f}, {p_high:.2f}]"
        rows.append(row)
        lines.append(
            f"| {algo} | {row['iqm']:.2f} [{low[0]:.2f}, {high[0]:.2f}] | {row['median']:.2f} | {row['mean']:.2f} | {p_text} |"
        )
    summary = {"envs": envs, "seeds": runs, "random_returns": random, "normalisation": "(R - random) / (SAC mean - random)",
               "rows": rows}  # fmt: skip
    (out / f"{name}.json").write_text(json.dumps(summary, indent=1))
    plot_aggregate(rows, f"{', '.join(envs)}: {runs} seeds each", out / f"{name}.png")
    return lines


def seed_table(settings, env: str = "Hopper-v5", steps: int = 30_000) -> str:
    """Per algorithm of the main suite, from the last evaluation (at ``steps``) on ``env``: mean ± std over seeds of
    the stochastic policy's return, of the deterministic policy's and, for the mixtures, of the best single
    component's (the Results table of docs/modules/sacm.md and s2acm.md)."""
    lines = [
        f"| {env}, {steps // 1000}k steps | seeds | stochastic | deterministic | best single component |",
        "|---|---|---|---|---|",
    ]
    for algo in settings.main_algos:
        results = [
            json.loads(path.read_text())
            for path in sorted(settings.folder.glob(f"main_{algo}_{env}_s*_{steps // 1000}k.json"))
        ]
        if not results:
            continue
        last = [result["evaluations"][-1] for result in results]
        assert all(record["timesteps"] == steps for record in last)
        cells = []
        for key in ("mixture", "deterministic", "best_component"):
            if key not in last[0]:
                cells.append("—")
                continue
            returns = np.array([record[key][0] for record in last])
            cells.append(f"{returns.mean():.0f} ± {returns.std():.0f}")
        seeds = ", ".join(str(result["seed"]) for result in results)
        lines.append(f"| {algo.upper()} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
