"""
Tables and report files of the multimodal study (``multimodal.py``) from its result files.

    python benchmarks/multimodal.py report      # multimodal.md, .json and .csv in benchmarks/results, and the plots

The functions here get the study's settings as a value, ``settings`` (a ``multimodal.Settings``: the results folder,
the tasks, algorithms and labels, the default budgets, the evaluation's sizes and thresholds), and import nothing
from ``multimodal.py``, which imports them.
"""

import json
from functools import partial

import numpy as np
from common import aggregate, generated_by, iqm_with_ci, load_runs, per_run_rows, report_meta, settings_used, write_report
from multimodal_plot import plot, steps_of


def run_row(result: dict) -> dict:
    """A run's row of the report (``common.per_run_rows``): its task, algorithm, seed and budget, then what it did."""
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
    return row


def groups(rows: list[dict], settings) -> list[dict]:
    """The summary table's groups (``common.aggregate``): by task, then budget, then algorithm."""
    budgets = sorted({(row["env"], row["steps"]) for row in rows})
    return [
        {"env": env, "algo": algo, "steps": steps}
        for env in settings.envs.values()
        for e, steps in budgets
        if e == env
        for algo in settings.algos
    ]


def summary_entry(selection: dict, group: list[dict], settings) -> dict:
    """A group's entry of the summary table (``common.aggregate``): the returns and, per task, its own measures."""
    env, algo, steps = selection["env"], selection["algo"], selection["steps"]
    returns = [row["stochastic_return"] for row in group]
    iqm, low, high = iqm_with_ci(returns)
    entry = {
        "env": env,
        "algo": algo,
        "label": settings.labels[algo],
        "steps": steps,
        "seeds": len(group),
        "return_mean": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
        "return_iqm": iqm,
        "return_iqm_ci": [low, high],
        "deterministic_return_mean": float(np.mean([row["deterministic_return"] for row in group])),
        "cpu_s_mean": float(np.mean([row["cpu_s"] for row in group])),
    }
    if env == settings.envs["multigoal"]:
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
    return entry


def markdown(table: list[dict], runs: list[dict], meta: dict, settings) -> str:
    lines = [
        "# Multimodal tasks: SAC vs SACM vs S2ACM",
        "",
        generated_by(meta, len(runs), "multimodal", "total training + evaluation CPU time"),
        "",
        f"Settings (from the result files): {json.dumps(meta['settings_used'])}; everything else SB3's SAC defaults "
        "(automatic temperatures, target entropy "
        "-dim(A)); the mixtures use the package defaults (mixed marginal estimator, a new component every step). "
        "Returns are of the stochastic policy; IQM over seeds with a 95% stratified-bootstrap CI (rliable).",
        "",
        "## MultiGoal (sb3_mixture/MultiGoal-v0)",
        "",
        f"{settings.eval_episodes} stochastic episodes per seed. Distinct goals: goals reached at least once; >=5%: goals "
        f"reached in at least {int(settings.min_share * settings.eval_episodes)} episodes; effective: exp(entropy of the "
        f"goal shares), 1 to 4. Per seed in brackets. At the origin: {settings.origin_samples} actions sampled at (0, 0), "
        "each assigned to the goal it heads for (largest dot product); directions with >= 5% of them, and their effective "
        "number. For mixtures, 'component goals': how many distinct goals the components reach most often when each acts "
        f"alone ({settings.component_episodes} episodes each). Goal diversity across episodes can come from the start noise "
        "(std 0.1) through a state-dependent policy as well as from a multimodal action distribution; the two 'origin' "
        "columns isolate the latter.",
        "",
        "| algorithm | steps | seeds | distinct goals | goals >=5% | effective goals | directions at origin >=5% "
        "| effective directions at origin | success rate | return mean ± std | return IQM [95% CI] "
        "| deterministic return | component goals | CPU s / run |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in (e for e in table if e["env"] == settings.envs["multigoal"]):
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
            if steps != settings.default_steps("multigoal")
        ],
        "",
        "## Bimodal bandit (sb3_mixture/BimodalBandit-v0)",
        "",
        f"{settings.bandit_samples} sampled actions per seed; share within {settings.mode_radius} of each bump (mean over "
        f"seeds); seeds with at least {settings.min_share:.0%} of the actions on both bumps; seeds with most mass on one "
        "bump. The best possible expected reward is 1.5 (all mass at +1).",
        "",
        "| algorithm | steps | seeds | share near -1 | share near +1 | seeds with both | mostly +1 / mostly -1 "
        "| expected reward mean ± std | IQM [95% CI] | deterministic reward | CPU s / run |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in (e for e in table if e["env"] == settings.envs["bandit"]):
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
        f"{settings.weight_record_every} steps.",
        "",
        "![Bandit weights](multimodal_bandit_weights.png)",
        "",
        "## Per run",
        "",
    ]
    for env_key, env in settings.envs.items():
        lines.append(f"### {env}")
        lines.append("")

        def order_key(result: dict) -> tuple[int, int, int]:
            return steps_of(result), list(settings.algos).index(result["algo"]), result["seed"]

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


def report(settings) -> None:
    """The report of the result files in ``<out>/multimodal``, written to ``out`` (``settings.out``)."""
    runs = load_runs(settings.folder)
    rows = per_run_rows(runs, run_row)
    table = aggregate(rows, groups(rows, settings), partial(summary_entry, settings=settings))
    # Per task, every distinct training setting (the algorithm and its N differ by design)
    meta = report_meta(runs, settings_used(runs, ("algorithm", "n_components"), by="env_key"))
    plot(runs, settings)
    write_report(settings.out / "multimodal", rows, table, meta, markdown(table, runs, meta, settings))
