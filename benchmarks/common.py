"""
What the benchmark studies share: where and how a run was made, the run loop over result files, the algorithms and
settings of the small tasks, what an evaluation measures besides the policy's own episodes (random play's return, an
episodic mixture's return statistics, each component alone, the mixing weights at given states), what the two-phase
route studies share (``route_change.py``, ``maze_routes.py``: their budget options and ``config``, the route an
evaluation mostly took, a curve point, the snapshot at the block and at the end), the IQM with its bootstrap
confidence interval (rliable), and the report's tables (the settings used, a row per run, a summary entry per group of
runs) and files.

Every study is a script in this folder, run as ``python benchmarks/<study>.py ...`` from the repository root or as
``python <study>.py ...`` from here. Either way Python puts this folder first on ``sys.path``, so the scripts import
this module and each other by name (``from common import ...``). A study that mixes running, reporting and plotting
heavily keeps them apart: ``<study>.py`` (its settings, the runs and the command line), ``<study>_report.py`` (tables
and report files from the result files) and ``<study>_plot.py`` (the figures). The imports go one way: the study
imports its report, the report its plots, and both import only this module; the study's settings reach them as a
value (``Settings``, built from the command line), never through module globals. docs/benchmarks.md lists the studies.
"""

import argparse
import copy
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    # For the annotations only: this module imports SB3 and torch inside the functions that need them
    import gymnasium as gym
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

# Where and how a run was made -------------------------------------------------------------------------------------


def machine() -> str:
    """Host name, CPU count and CPU model."""
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return f"{platform.node()}: {os.cpu_count()} CPUs, {cpu}"


def command() -> str:
    """The command line of this process, as a result file records it (``python benchmarks/<study>.py run ...``)."""
    return " ".join([Path(sys.executable).name, *sys.argv])


def now() -> str:
    """The time in UTC, to the second (ISO 8601)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def provenance() -> dict:
    """What a result file records of the run that made it: the command line, the machine and the date."""
    return {"command": command(), "machine": machine(), "date": now()}


def finished(start: float, cpu_start: float) -> dict:
    """``provenance()`` and the run's wall and CPU time (this process's) since ``time.time()`` was ``start`` and
    ``time.process_time()`` was ``cpu_start``."""
    return {**provenance(), "wall_s": round(time.time() - start, 1), "cpu_s": round(time.process_time() - cpu_start, 1)}


def sources_digest() -> str:
    """A hash of the package's sources on disk now (their paths and bytes)."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((ROOT / "sb3_mixture").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


# The sources' hash at this process's first code_version() call, right after it imported the package: what it runs
_IMPORTED_SOURCES: list[str] = []


def code_version() -> dict:
    """
    The commit and a hash of the package's sources (the working tree may differ from the commit). A process that runs
    several runs keeps the code it imported: the hash is the one read at its first call, and a later edit of the
    sources on disk is flagged (``sb3_mixture_changed_on_disk``) instead of recorded as the code that ran.
    """
    import subprocess

    on_disk = sources_digest()
    if not _IMPORTED_SOURCES:
        _IMPORTED_SOURCES.append(on_disk)
    # Read-only git calls (--no-optional-locks: status does not even refresh the index)
    git = ["git", "--no-optional-locks"]
    try:
        head = subprocess.run([*git, "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run([*git, "status", "--porcelain", "sb3_mixture"], cwd=ROOT, capture_output=True, text=True)
        dirty = bool(status.stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        head, dirty = "?", None
    version = {"git_head": head, "sb3_mixture_modified": dirty, "sb3_mixture_sha256": _IMPORTED_SOURCES[0]}
    if on_disk != _IMPORTED_SOURCES[0]:
        version["sb3_mixture_changed_on_disk"] = True
    return version


# Runs and their result files --------------------------------------------------------------------------------------


def study_parser(doc: str, study: str, algos: dict, seeds: list[int], default_algos: "list[str] | None" = None):
    """The command line every run/report study starts from: ``run`` or ``report``, the algorithms, seeds and folder."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "report"])
    parser.add_argument("--algos", nargs="+", choices=list(algos), default=default_algos or list(algos))
    parser.add_argument("--seeds", type=int, nargs="+", default=seeds)
    parser.add_argument("--force", action="store_true", help="rerun runs that have a result file")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results folder (the run files go to <out>/{study})")
    return parser


def pending(path: Path, force: bool = False) -> bool:
    """Whether the run whose result file is ``path`` is still to do (says so when it skips a finished run)."""
    if path.exists() and not force:
        print(f"skip {path.name} (done)", flush=True)
        return False
    return True


def write_json(path: Path, data) -> None:
    """``data`` as JSON in ``path``, whole or not at all: written to ``<path>.partial``, then renamed."""
    partial_path = path.with_name(f"{path.name}.partial")
    partial_path.write_text(json.dumps(data))
    partial_path.replace(path)


def save_result(folder: Path, name: str, result: dict, summary: Callable[[dict], str]) -> None:
    """Write a run's result file ``<folder>/<name>.json`` whole or not at all (a result file marks its run as done)
    and summarise the run in a line (``summary(result)``)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / f"{name}.json", result)
    cpu = f" ({result['cpu_s']} CPU-s)" if "cpu_s" in result else ""
    print(f"{folder.name}/{name}: {summary(result)}{cpu}", flush=True)


def run_each(folder: Path, runs: dict, force: bool, summary: Callable[[dict], str]) -> None:
    """Every run of ``runs`` (by name: a function that makes its result) without a result file ``<folder>/<name>.json``
    yet (or all with ``force``), in order: its result is saved there (:func:`save_result`)."""
    for name, execute in runs.items():
        if pending(folder / f"{name}.json", force):
            save_result(folder, name, execute(), summary)


def load_runs(folder: Path, required: bool = True) -> list[dict]:
    """Every result file of a folder, by file name (``required``: stops the report if there is none)."""
    runs = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
    if required and not runs:
        raise SystemExit(f"no result files in {folder}")
    return runs


def run_or_report(args: argparse.Namespace, settings, run: Callable, report: Callable, *before, **options) -> None:
    """What a ``study_parser`` command line asks: ``run(settings, *before, args.algos, args.seeds, args.force,
    **options)`` or ``report(settings)``."""
    if args.command == "run":
        run(settings, *before, args.algos, args.seeds, args.force, **options)
    else:
        report(settings)


# Algorithms of the small-task studies -----------------------------------------------------------------------------

# Small nets, SB3's SAC defaults otherwise (automatic temperatures, one gradient step per env step)
SMALL_TASK_SETTINGS = {
    "batch_size": 256,
    "learning_rate": 3e-4,
    "buffer_size": 100_000,
    "policy_kwargs": {"net_arch": [64, 64]},
}
# The first learned-weight runs had no floor (the default then); the floor of 0.05 became the default after them
LEARNED = {"mixture_weights": "learned", "mixture_weight_floor": 0.0}
# Issue 23's recipe (docs/algorithm.md sections 11 and 12): four components, one per episode, drawn uniformly among
# those whose recent return is near the best (the bandit's margin 1.0: at least 0 while the best return is positive;
# 30% of the training episodes explore), stochastic predict among those within 5% of the best and deterministic
# predict the best; each critic head learns from its own component's transitions, and a state discriminator charges
# each near-best component for the states the other near-best ones visit
SWITCH = {
    "n_components": 4,
    "component_schedule": "returns",
    "deterministic_component": "best_return",
    "return_window": 5,
    "return_exploration": 0.3,
    "return_margin": 1.0,
    "critic_data": "own",
    "diversity_weight": 1.0,
    "diversity_start": 1_000,
}
# (class: SAC or one of sb3_mixture's, keyword arguments) by the name its result files carry
# Issue 30's candidate (docs/algorithm.md section 13): the switch recipe's choice, with every head its own
# component's soft Q-function learning from every transition (soft-value heads, all data, each transition's reward
# relabelled with the head's own charge), and the ordered novelty charge in place of the discriminator
NOVELTY = {
    **{key: SWITCH[key] for key in ("n_components", "component_schedule", "deterministic_component", "diversity_start")},
    "mixture_weights": "soft_value",
    "diversity_weight": 1.0,
    "diversity_mechanism": "novelty",
}
ALGORITHMS = {
    "sac": ("SAC", {}),
    "sacm_n2": ("SACM", {"n_components": 2}),
    # Learned mixing weights (issue 10), without and with the weight floor
    "sacm_learned_n2": ("SACM", {"n_components": 2, **LEARNED}),
    "sacm_learned_n4": ("SACM", {"n_components": 4, **LEARNED}),
    "s2acm_learned_n4": ("S2ACM", {"n_components": 4, **LEARNED}),
    "sacm_learned_n2_floor05": ("SACM", {"n_components": 2, **LEARNED, "mixture_weight_floor": 0.05}),
    "sacm_learned_n4_floor05": ("SACM", {"n_components": 4, **LEARNED, "mixture_weight_floor": 0.05}),
    "s2acm_learned_n4_floor05": ("S2ACM", {"n_components": 4, **LEARNED, "mixture_weight_floor": 0.05}),
    # Weights from the components' own soft values (issue 16)
    "sacm_soft_value_n2": ("SACM", {"n_components": 2, "mixture_weights": "soft_value"}),
    "sacm_switch_n4": ("SACM", SWITCH),
    "sacm_novelty_n4": ("SACM", NOVELTY),
}
ALGORITHM_LABELS = {
    "sac": "SAC",
    "sacm_n2": "SACM N=2",
    "sacm_switch_n4": "SACM switch recipe N=4",
    "sacm_novelty_n4": "SACM novelty recipe N=4",
}


def algorithms(*names: str) -> dict:
    """The entries of ``ALGORITHMS`` a study runs, in its order."""
    return {name: ALGORITHMS[name] for name in names}


def algorithm_class(class_name: str) -> "type[OffPolicyAlgorithm]":
    """SB3's ``SAC`` or sb3_mixture's class of that name (the first item of an ``ALGORITHMS`` entry)."""
    from stable_baselines3 import SAC

    import sb3_mixture

    return SAC if class_name == "SAC" else getattr(sb3_mixture, class_name)


def build_model(algorithm: tuple[str, dict], env, seed: int, settings: dict):
    """A model of ``algorithm`` (an ``ALGORITHMS`` entry) with ``settings`` on ``env``, on the CPU."""
    class_name, extra = algorithm
    # A copy: SB3 writes into the policy_kwargs it is given
    return algorithm_class(class_name)(
        "MlpPolicy", env, seed=seed, verbose=0, device="cpu", **copy.deepcopy(settings), **extra
    )


def make_model(algorithm: tuple[str, dict], env: "gym.Env", seed: int, **training) -> "OffPolicyAlgorithm":
    """A model of ``algorithm`` on a small task: ``SMALL_TASK_SETTINGS`` with the task's own ``training`` settings
    (``learning_starts``, ``gamma``, ...) over them."""
    return build_model(algorithm, env, seed, {**SMALL_TASK_SETTINGS, **training})


def side_by_side(model, envs: list, seed: int, deterministic: bool = False, keep_paths: int = 0):
    """One episode on each env, run side by side (one batched ``predict`` per step), env ``i`` reset with seed
    ``seed + i``: the returns, each episode's last ``info`` and the observations of the first ``keep_paths`` episodes."""
    observations = np.stack([env.reset(seed=seed + index)[0] for index, env in enumerate(envs)])
    paths = [[observation.tolist()] for observation in observations[:keep_paths]]
    returns = np.zeros(len(envs))
    infos: list = [None] * len(envs)
    active = np.ones(len(envs), dtype=bool)
    # Every episode starts at the first step: an episodic mixture draws each env's component then (without it, predict
    # would keep the components it drew at the first evaluation for every later one)
    episode_start = np.ones(len(envs), dtype=bool)
    while active.any():
        actions, _ = model.predict(observations, episode_start=episode_start, deterministic=deterministic)
        episode_start = np.zeros(len(envs), dtype=bool)
        for index in np.flatnonzero(active):
            observation, reward, terminated, truncated, info = envs[index].step(actions[index])
            observations[index] = observation
            returns[index] += reward
            if index < keep_paths:
                paths[index].append(observation.tolist())
            if terminated or truncated:
                active[index] = False
                infos[index] = info
    return returns, infos, paths


def random_return(env: "gym.Env", n_episodes: int, seed: int = 12345) -> float:
    """The mean return of uniform random actions over ``n_episodes`` episodes of ``env`` (episode ``i`` reset with seed
    ``seed + i``): the 0 of a recovery score, which maps random play to 0 and the level before the change to 1."""
    env.action_space.seed(seed)
    total = 0.0
    for episode in range(n_episodes):
        env.reset(seed=seed + episode)
        done = False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total, done = total + reward, terminated or truncated
    return total / n_episodes


def return_statistics(model: "OffPolicyAlgorithm") -> dict:
    """
    With an episodic mixture: each component's recent training-episode return and episode count so far, and the
    component ``deterministic_component="best_return"`` plays, as the policy names it (nothing for SAC, a mixture
    whose components share episodes, or before any episode).
    """
    choice = getattr(model.policy, "component_choice", None)
    best = None if choice is None else choice.best_return_component()
    if best is None:
        return {}
    recent = choice.recent_returns()
    return {
        "component_returns": [None if np.isnan(value) else round(float(value), 3) for value in recent.tolist()],
        # Whole numbers in the result files, whatever dtype the policy keeps them in
        "episode_counts": [int(count) for count in choice.episode_counts.tolist()],
        "best_return_component": best,
    }


def components(model: "OffPolicyAlgorithm", evaluate: Callable[[], object]) -> "list | None":
    """What each mixture component does alone: ``evaluate()`` under ``policy.use_component(i)``, for each component
    ``i`` in order (None for SAC)."""
    if not hasattr(model.policy, "use_component"):
        return None
    alone = []
    for component in range(model.n_components):
        with model.policy.use_component(component):
            alone.append(evaluate())
    return alone


def mixture_weights(model: "OffPolicyAlgorithm", states: dict) -> "dict[str, list[float]] | None":
    """The mixing weights w(s) at ``states`` (observations by name), for learned or soft-value weights; None for
    fixed weights or SAC."""
    import torch as th

    choice = getattr(model.policy, "component_choice", None)
    if choice is None or not choice.state_dependent_weights:
        return None
    observations = th.as_tensor(np.array(list(states.values()), dtype=np.float32), device=model.device)
    with th.no_grad():
        weights = model.policy.mixture_log_weights(observations, deterministic=True).exp().cpu().numpy()
    return {name: weights[row].round(4).tolist() for row, name in enumerate(states)}


# Two-phase route studies: train, wall up the route in use, train on (route_change.py, maze_routes.py) -------------

# The budget and training settings of a two-phase study, as its result files' config records them (in this order)
PHASE_KEYS = ("phase1_steps", "phase2_steps", "phase1_eval_every", "eval_every", "learning_starts", "gamma")
# What an evaluation's summary says of the episodes (a study's rollouts may add more: returns, paths, ...)
ROUTE_SUMMARY = ("mean_return", "success_rate", "route_counts", "side_counts")


def phase_config(settings) -> dict:
    """The ``PHASE_KEYS`` of a two-phase study's ``settings`` (its ``Settings.config``)."""
    return {key: getattr(settings, key) for key in PHASE_KEYS}


def add_phase_options(parser: argparse.ArgumentParser, defaults) -> None:
    """A two-phase study's budget options (``defaults``: its ``Settings``), read back by :func:`phase_changes`."""
    parser.add_argument("--phase1-steps", type=int, help=f"steps before the block (default {defaults.phase1_steps})")
    parser.add_argument("--phase2-steps", type=int, help=f"steps after the block (default {defaults.phase2_steps})")
    parser.add_argument("--quick", action="store_true", help="a few hundred steps per run, to check the pipeline (use --out)")


def phase_changes(args: argparse.Namespace, quick: dict) -> dict:
    """The settings a command line changes: ``quick`` with ``--quick``, ``--phase1-steps`` and ``--phase2-steps`` over
    it."""
    changes = dict(quick) if args.quick else {}
    if args.phase1_steps:
        changes["phase1_steps"] = args.phase1_steps
    if args.phase2_steps:
        changes["phase2_steps"] = args.phase2_steps
    return changes


def main_route(summary: dict) -> str:
    """The route most episodes of an evaluation went through (by the side tried on a tie, then left)."""
    routes, sides = summary["route_counts"], summary["side_counts"]
    if routes["left"] != routes["right"]:
        return "left" if routes["left"] > routes["right"] else "right"
    return "right" if sides["right"] > sides["left"] else "left"


def curve_point(model: "OffPolicyAlgorithm", phase: int, summary: dict, weight_states: dict) -> dict:
    """A point of a run's curve: the step, the phase and the evaluation's ``summary``, then w(start) with
    state-dependent mixing weights (``weight_states``: observations by name, one of them ``"start"``) and an episodic
    mixture's return statistics."""
    point = {"step": int(model.num_timesteps), "phase": phase, **summary}
    weights = mixture_weights(model, weight_states)
    if weights is not None:
        point["weights_start"] = weights["start"]
    point.update(return_statistics(model))
    return point


def snapshot(
    model: "OffPolicyAlgorithm",
    point: dict,
    evaluate: Callable[..., dict],
    settings,
    weight_states: dict,
    component_keys: tuple[str, ...] = (*ROUTE_SUMMARY, "paths"),
) -> dict:
    """
    What the policy does at the block or at the end (a result's ``before_block`` and ``after_block``): the return,
    success rate and routes of the evaluation ``point`` and its trajectories (taken out of the point), then in this
    order each component alone (``settings.component_episodes`` episodes with ``settings.component_paths``
    trajectories, its summary's ``component_keys``), the mixing weights at ``weight_states``, and
    ``predict(deterministic=True)`` over ``settings.eval_episodes`` episodes. ``evaluate(n_episodes, keep_paths=0,
    deterministic=False)`` runs the study's evaluation episodes at this stage (its task, seed and blocked route).
    """

    def alone() -> dict:
        summary = evaluate(settings.component_episodes, keep_paths=settings.component_paths)
        return {key: summary[key] for key in component_keys if key in summary}

    def deterministic() -> dict:
        summary = evaluate(settings.eval_episodes, deterministic=True)
        return {key: summary[key] for key in ROUTE_SUMMARY}

    return {
        "return": point["mean_return"],
        "success_rate": point["success_rate"],
        "route_counts": point["route_counts"],
        "side_counts": point["side_counts"],
        "paths": point.pop("paths"),
        "components": components(model, alone),
        "weights": mixture_weights(model, weight_states),
        # What predict(deterministic=True) earns: the policy a user deploys
        "deterministic": deterministic(),
    }


# Statistics -------------------------------------------------------------------------------------------------------


def bootstrap(scores: dict, statistic) -> tuple[dict, dict]:
    """rliable's point estimates and 95% stratified-bootstrap CIs (2000 resamples), the same on every report.

    rliable draws its resampling indices from numpy's global generator (its ``random_state`` argument does not
    reach them with arch 7), so the global generator is seeded here.
    """
    from rliable import library as rly

    np.random.seed(0)
    return rly.get_interval_estimates(scores, statistic, reps=2000)


def iqm_with_ci(values: list[float]) -> tuple[float, float, float]:
    """IQM over seeds and its 95% stratified-bootstrap CI (rliable)."""
    from rliable import metrics

    point, ci = bootstrap(
        {"x": np.asarray(values, dtype=float).reshape(-1, 1)}, lambda x: np.array([metrics.aggregate_iqm(x)])
    )
    return float(point["x"][0]), float(ci["x"][0, 0]), float(ci["x"][1, 0])


def iqm_summary(values: list[float]) -> dict:
    """Per-seed values with their IQM and its 95% CI (``iqm_with_ci``): ``{"iqm", "ci", "per_seed"}``."""
    iqm, low, high = iqm_with_ci(values)
    return {"iqm": iqm, "ci": [low, high], "per_seed": values}


def interval(stats: dict, digits: int = 0) -> str:
    """An ``iqm_summary`` as ``IQM [low, high]``."""
    return f"{stats['iqm']:.{digits}f} [{stats['ci'][0]:.{digits}f}, {stats['ci'][1]:.{digits}f}]"


# Reports ----------------------------------------------------------------------------------------------------------


def report_meta(runs: list[dict], settings: "dict | list") -> dict:
    """What a report says about the runs it summarises: the commands, machines, dates, CPU time and settings."""
    return {
        "report_command": command(),
        "run_commands": sorted({result["command"] for result in runs}),
        "machines": sorted({result["machine"] for result in runs}),
        "first_date": min(result["date"] for result in runs),
        "last_date": max(result["date"] for result in runs),
        "report_date": now(),
        "total_cpu_min": sum(result["cpu_s"] for result in runs) / 60,
        "settings_used": settings,
    }


def settings_used(runs: list[dict], per_algorithm: tuple[str, ...], by: "str | None" = None) -> "dict | list":
    """
    Every distinct training setting in the result files' ``config``, without the keys that differ between the
    algorithms (``per_algorithm``): one dict if the runs agree, else the list of the variants. With ``by`` (a result
    file's key, such as ``"env_key"``), the same per value of that key, in the order the runs first show it.
    """

    def distinct(results: list[dict]) -> "dict | list[dict]":
        used: list[dict] = []
        for result in results:
            config = {key: value for key, value in result["config"].items() if key not in per_algorithm}
            if config not in used:
                used.append(config)
        return used[0] if len(used) == 1 else used

    if by is None:
        return distinct(runs)
    values = dict.fromkeys(result[by] for result in runs)  # in the order of first appearance
    return {value: distinct([result for result in runs if result[by] == value]) for value in values}


def per_run_rows(runs: list[dict], row: Callable[[dict], dict]) -> list[dict]:
    """The report's table of runs (its CSV, and the ``runs`` of its JSON): ``row(result)`` of each result file, in the
    order of ``runs``; ``row`` gives the study's columns, in the CSV's order."""
    return [row(result) for result in runs]


def aggregate(rows: list[dict], groups: Iterable[dict], entry: Callable[[dict, list[dict]], dict]) -> list[dict]:
    """
    The report's summary table: for each group, the rows whose values match it (a group is the values that select its
    rows, such as ``{"algo": "sac"}``), summarised by ``entry(group, those rows)``. ``groups`` gives the table's order;
    a group without rows is left out (an algorithm not run yet).
    """
    table = []
    for group in groups:
        members = [row for row in rows if all(row[key] == value for key, value in group.items())]
        if members:
            table.append(entry(group, members))
    return table


def generated_by(meta: dict, n_runs: int, folder: str, cpu: str = "total CPU time") -> str:
    """A report's first sentence: its command, and the result files' folder, commands, machine, dates and CPU time."""
    run_command = meta["run_commands"][0] if meta["run_commands"] else "?"
    host = meta["machines"][0] if meta["machines"] else "?"
    return (
        f"Generated by `{meta['report_command']}` from {n_runs} result files in `{folder}/` (runs made with "
        f"`{run_command}` on {host}, {meta['first_date']} to {meta['last_date']}; {cpu} {meta['total_cpu_min']:.1f} min)."
    )


def write_report(stem: Path, rows: list[dict], table: list[dict], meta: dict, text: str) -> None:
    """``<stem>.csv`` (one row per run), ``<stem>.json`` (meta, summary and runs) and ``<stem>.md``, printed."""
    import pandas as pd

    pd.DataFrame(rows).to_csv(stem.with_suffix(".csv"), index=False, float_format="%.4g")
    stem.with_suffix(".json").write_text(json.dumps({**meta, "summary": table, "runs": rows}, indent=1))
    stem.with_suffix(".md").write_text(text)
    print(text)


def pyplot():
    """matplotlib's pyplot drawing to files only (the Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
