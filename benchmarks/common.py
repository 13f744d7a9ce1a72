"""
What the benchmark studies share: where and how a run was made, the run loop over result files, the algorithms and
settings of the small tasks, the IQM with its bootstrap confidence interval (rliable), and the report files.

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
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

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


def save_result(folder: Path, name: str, result: dict, summary: Callable[[dict], str]) -> None:
    """Write a run's result file ``<folder>/<name>.json`` whole or not at all (a result file marks its run as done)
    and summarise the run in a line (``summary(result)``)."""
    folder.mkdir(parents=True, exist_ok=True)
    partial_path = folder / f"{name}.json.partial"
    partial_path.write_text(json.dumps(result))
    partial_path.replace(folder / f"{name}.json")
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
}
ALGORITHM_LABELS = {"sac": "SAC", "sacm_n2": "SACM N=2", "sacm_switch_n4": "SACM switch recipe N=4"}


def algorithms(*names: str) -> dict:
    """The entries of ``ALGORITHMS`` a study runs, in its order."""
    return {name: ALGORITHMS[name] for name in names}


def build_model(algorithm: tuple[str, dict], env, seed: int, settings: dict):
    """A model of ``algorithm`` (an ``ALGORITHMS`` entry) with ``settings`` on ``env``, on the CPU."""
    from stable_baselines3 import SAC

    import sb3_mixture

    class_name, extra = algorithm
    algo_class = SAC if class_name == "SAC" else getattr(sb3_mixture, class_name)
    # A copy: SB3 writes into the policy_kwargs it is given
    return algo_class("MlpPolicy", env, seed=seed, verbose=0, device="cpu", **copy.deepcopy(settings), **extra)


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
