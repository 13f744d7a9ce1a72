"""
Tables and report files of the route-change study (``route_change.py``) from its result files, and the recovery
measures of a run (``recovery``), which the runs record too.

    python benchmarks/route_change.py report    # route_change.md, .json and .csv in benchmarks/results, and the plots

The functions here get the study's settings as a value, ``settings`` (a ``route_change.Settings``: the results
folder, the algorithms and their labels, the evaluation's episodes and thresholds, ...), and import nothing from
``route_change.py``, which imports them.
"""

import json
import sys
from functools import partial

import numpy as np
from common import (
    aggregate,
    generated_by,
    interval,
    iqm_summary,
    load_runs,
    per_run_rows,
    report_meta,
    settings_used,
    write_report,
)
from route_change_plot import plot, plot_switching


def recovery(result: dict, settings, reference: "float | None" = None) -> dict:
    """
    Normalised scores of the phase-2 curve and the steps to recover (``route_change.py``'s docstring), with the
    thresholds of ``settings``. The runs record it; the report recomputes it from their curves.

    :param reference: also the steps until the return reaches ``recovery_level`` of a common reference level
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

    recovered, steps_to_recover = first([score >= settings.recovery_level for score in scores])
    # Switching (heading for the open side) and getting through it are separate steps of the recovery
    open_side = "left" if result["blocked_route"] == "right" else "right"
    switched, steps_to_switch = first([point["side_counts"][open_side] > settings.eval_episodes / 2 for point in phase2])
    summary = {
        "threshold_return": low + settings.recovery_level * scale,
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
        threshold = low + settings.recovery_level * (reference - low)
        summary["recovered_common"], summary["steps_to_recover_common"] = first([value >= threshold for value in returns])
        summary["threshold_return_common"] = threshold
    return summary


def load_recovery_runs(settings) -> list[dict]:
    """The study's result files, by algorithm and seed, with their recovery recomputed."""
    runs = load_runs(settings.folder)
    reference = float(np.median([result["before_block"]["return"] for result in runs]))
    for result in runs:
        # Recomputed from the curve, so that the report always uses the definitions of this file
        result["recovery"] = recovery(result, settings, reference)
        result["reference_return"] = reference
    return sorted(runs, key=lambda result: (list(settings.algos).index(result["algo"]), result["seed"]))


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


def run_row(result: dict, settings) -> dict:
    """A run's row of the report (``common.per_run_rows``), with the labels and thresholds of ``settings``."""
    before, after, rec = result["before_block"], result["after_block"], result["recovery"]
    counts = before["route_counts"]
    used = [route for route, count in counts.items() if count >= settings.min_share * settings.eval_episodes]
    return {
        "algo": result["algo"],
        "label": settings.labels[result["algo"]],
        "seed": result["seed"],
        "pre_block_return": before["return"],
        "pre_block_success": before["success_rate"],
        "pre_block_routes": routes_text(counts),
        "main_route_share": max(counts.values()) / settings.eval_episodes,
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
        "pre_block_converged": before["success_rate"] >= settings.converged_success,
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
        "competent_both_routes": competent_routes(before["components"], settings) == {"left", "right"},
        "competent_routes_before": "".join(sorted(competent_routes(before["components"], settings))) or "-",
        "deterministic_pre_block_return": before.get("deterministic", {}).get("mean_return"),
        "deterministic_pre_block_success": before.get("deterministic", {}).get("success_rate"),
    }


COMPETENT_SUCCESS = 0.9
"""a component alone is competent if at least this share of its episodes reach the goal (issue 23)"""


def competent_routes(alone: "list[dict] | None", settings) -> set:
    """The routes of the competent components (each by the route most of its episodes took)."""
    routes = set()
    for component in alone or []:
        if component["success_rate"] >= COMPETENT_SUCCESS:
            counts = component["route_counts"]
            routes.add("left" if counts["left"] >= counts["right"] else "right")
    return routes


def switching_lines(table: list[dict], rows: list[dict]) -> list[str]:
    """
    Issue 23's table: diversity (competent components on both routes before the block), competence (what
    predict(deterministic=True) earns before the block) and choice (steps to recover), each algorithm against SAC.
    """
    sac = next((entry for entry in table if entry["algo"] == "sac"), None)
    lines = [
        "## Switching instead of relearning (issue 23)",
        "",
        f"Diversity: seeds whose components alone include a competent one (>= {COMPETENT_SUCCESS:.0%} of its episodes "
        "reach the goal) on each route before the block. Competence: the pre-block return of "
        "`predict(deterministic=True)` (50 episodes; not recorded by runs made before issue 23: -) and of the "
        "stochastic policy, IQM [95% CI]; where SAC's deterministic return was not recorded, the deterministic "
        "return's ratio is to SAC's stochastic one (marked *). Choice: steps to recover 90% of the run's own pre-block "
        "return and of the common level (below), IQM [95% CI], and as ratios to SAC's IQM. Goal: recovery at most "
        "half SAC's with the CIs apart, pre-block return >= 0.95x SAC's, components on both routes in >= 8 of 10 "
        "seeds.",
        "",
        "| algorithm | seeds | competent components on both routes | pre-block return (stochastic) | ratio to SAC "
        "| deterministic pre-block return | ratio to SAC | steps to recover | ratio to SAC "
        "| steps to reach the common level | ratio to SAC |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in table:
        group = [row for row in rows if row["algo"] == entry["algo"]]
        deterministic = [row["deterministic_pre_block_return"] for row in group]
        recorded = all(value is not None for value in deterministic)
        det = iqm_summary(deterministic) if recorded else None
        sac_det = sac.get("deterministic_pre_block_return") if sac else None
        det_ratio = "-"
        if det and sac_det:
            det_ratio = f"{det['iqm'] / sac_det['iqm']:.2f}"
        elif det and sac:
            det_ratio = f"{det['iqm'] / sac['pre_block_return']['iqm']:.2f}*"
        recover_ratio = f"{entry['steps_to_recover']['iqm'] / sac['steps_to_recover']['iqm']:.2f}" if sac else "-"
        common = entry["steps_to_recover_common"]
        common_ratio = f"{common['iqm'] / sac['steps_to_recover_common']['iqm']:.2f}" if sac else "-"
        stochastic = entry["pre_block_return"]
        stochastic_ratio = f"{stochastic['iqm'] / sac['pre_block_return']['iqm']:.2f}" if sac else "-"
        lines.append(
            f"| {entry['label']} | {entry['seeds']} | {entry['seeds_competent_both_routes']}/{entry['seeds']} "
            f"| {interval(stochastic, 1)} | {stochastic_ratio} | {interval(det, 1) if det else '-'} | {det_ratio} "
            f"| {interval(entry['steps_to_recover'])} | {recover_ratio} | {interval(common)} | {common_ratio} |"
        )
    return lines + [""]


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


def summary_entry(selection: dict, group: list[dict], settings) -> dict:
    """An algorithm's entry of the summary table (``common.aggregate``)."""
    algo = selection["algo"]
    entry: dict = {"algo": algo, "label": settings.labels[algo], "seeds": len(group)}
    for key in SUMMARY_KEYS:
        values = [row[key] for row in group]
        entry[key] = {"mean": float(np.mean(values)), "std": float(np.std(values)), **iqm_summary(values)}
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
        seeds_competent_both_routes=int(sum(row["competent_both_routes"] for row in group)),
        competent_routes_before=[row["competent_routes_before"] for row in group],
    )
    deterministic = [row["deterministic_pre_block_return"] for row in group]
    if all(value is not None for value in deterministic):
        entry["deterministic_pre_block_return"] = iqm_summary(deterministic)
    return entry


# The settings in a result file's config that differ between algorithms (their entries of ``settings.algos``)
PER_ALGORITHM = ("algorithm", "n_components", "mixture_weights", "mixture_weight_floor", "component_schedule", "critic_data")


SHAPING_TEXT = {
    False: "The env's shaping follows the current walls (`shaping_sees_block=True`): right after the block, moving "
    "towards the blocked side already costs reward, so this measures how fast the policy and critic adapt to a dense "
    "new signal, not how fast the agent discovers the change by exploration.",
    True: "The env's shaping ignores the new wall (`shaping_sees_block=False`): the reward does not announce the "
    "block, so the agent has to find out by running into it that its route is closed.",
}


def markdown(table: list[dict], rows: list[dict], runs: list[dict], meta: dict, settings) -> str:
    config, study, env_kwargs = runs[0]["config"], settings.study, settings.env_kwargs
    lines = [
        "# Route change: recovery after the route in use gets blocked (SAC vs SACM vs S2ACM)",
        "",
        generated_by(meta, len(runs), study),
        "",
        f"Code (commit, sources modified, hash of `sb3_mixture/*.py`): {'; '.join(meta['code_versions'])}.",
        "",
        f"Task: `{runs[0]['env']}` ({json.dumps(env_kwargs) if env_kwargs else 'defaults'}). Settings (from the result "
        f"files): {json.dumps(meta['settings_used'])}; everything "
        "else SB3's SAC defaults (automatic temperature, target entropy -dim(A)); the mixtures use the package defaults "
        "(mixed marginal estimator, a new component every step).",
        "",
        f"Protocol: {config['phase1_steps']} steps on the open task; then the route the policy took most often in its last "
        "evaluation is closed by a wall (same env object, reset; replay buffer kept) and training goes on for "
        f"{config['phase2_steps']} steps, evaluated right after the block and every {config['eval_every']} steps. Each "
        f"evaluation: {settings.eval_episodes} stochastic episodes with fixed seeds. " + SHAPING_TEXT[bool(env_kwargs)],
        "",
        f"Score = (return - random) / (pre-block return - random), random = mean return of uniform random actions on the "
        f"blocked task ({settings.random_episodes} episodes, about {np.mean([r['random_return'] for r in runs]):.2f}); 0 = "
        "random play, 1 = the run's own pre-block level. **Steps to recover**: steps after the block until the first "
        f"evaluation with score >= {settings.recovery_level} (0: already at the block), censored at "
        f"{config['phase2_steps']} (counted as {config['phase2_steps']}) if never. IQM over seeds with a 95% "
        "stratified-bootstrap CI (rliable); per seed in "
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
    if any("deterministic" in result["before_block"] for result in runs):
        lines += ["", *switching_lines(table, rows)]
    lines += [
        "",
        f"'Common level': the same {settings.recovery_level:.0%} threshold but of the median pre-block return of all runs "
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
        f"{settings.converged_success:.0%} success | share on the main route | seeds using both routes | seeds whose "
        "components cover both routes | routes per seed | component routes per seed | CPU s / run |",
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
        f"Of the {settings.eval_episodes} pre-block episodes: 'share on the main route', the share through the route "
        f"used most (the one then blocked); 'both routes', at least {settings.min_share:.0%} of the episodes through each; "
        "routes as left/right counts. Component routes: the route each mixture component mostly takes alone "
        f"({settings.component_episodes} "
        "episodes; '-' if it gets through no gap).",
        "",
        f"![Returns around the block]({study}_curves.png)",
        "",
        f"![Scores after the block, against the common level]({study}_scores.png)",
        "",
        f"![Steps to recover]({study}_recovery.png)",
        "",
        f"![Trajectories before the block and at the end]({study}_trajectories.png)",
        "",
        "## Routes, components and mixing weights per seed",
        "",
        f"Routes: episodes through the left / right gap, of {settings.eval_episodes} (episodes that reach neither are "
        "stuck or timed out). Components: the route each component takes most often when acting alone "
        f"({settings.component_episodes} "
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
            f"({', '.join(f'{k} {v}' for k, v in settings.weight_states.items() if k != 'start')}):",
            "",
        ]
        for result in learned:
            before, after = result["before_block"]["weights"], result["after_block"]["weights"]
            text = "; ".join(
                f"{name} ({', '.join(f'{w:.2f}' for w in before[name])}) -> ({', '.join(f'{w:.2f}' for w in after[name])})"
                for name in settings.weight_states
                if name != "start"
            )
            lines.append(f"- {settings.labels[result['algo']]}, seed {result['seed']}: {text}")
    return "\n".join(lines) + "\n"


def report(settings) -> None:
    """The report of the result files in ``<out>/<study>``, written to ``out`` (``settings.out``, ``settings.study``)."""
    runs = load_recovery_runs(settings)
    used = settings_used(runs, PER_ALGORITHM)
    if isinstance(used, list):
        print("warning: the result files use different settings; the report mixes them", file=sys.stderr)
    rows = per_run_rows(runs, partial(run_row, settings=settings))
    table = aggregate(rows, ({"algo": algo} for algo in settings.algos), partial(summary_entry, settings=settings))
    meta = {
        **report_meta(runs, used),
        "code_versions": sorted({json.dumps(result.get("code", "not recorded")) for result in runs}),
    }
    plot(runs, settings)
    plot_switching(runs, settings)
    write_report(settings.out / settings.study, rows, table, meta, markdown(table, rows, runs, meta, settings))
