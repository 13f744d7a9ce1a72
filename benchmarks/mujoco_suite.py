"""
MuJoCo benchmark (issue 4, section 3): SACM, S2ACM, SAC, TD3 and DDPG on the v5 tasks with the paper's
settings (zoo_hyperparams/*.yml, docs/algorithm.md section 7) except the step budget, plus a mixture-size sweep.

Every run trains through RL Zoo (``python -m sb3_mixture.train``, a process of its own) with a
``MixtureEvalCallback`` that evaluates the stochastic policy, the deterministic policy and each mixture component
every ``--eval-freq`` steps, and writes one result file, ``benchmarks/results/mujoco/<run>.json``. A rerun skips
runs whose result file exists, so the suite is resumable and can grow over time.

Several runs at once: ``--jobs N`` trains N runs side by side on this machine (joblib; each with ``--threads`` torch
threads). Several machines: ``--shard i/n`` gives machine i every n-th planned run (the same command with
i = 0 .. n-1, each with its own ``--jobs``), and the result files, one per run, are then copied into one folder; or
one joblib call spreads the runs over a cluster through a distributed joblib backend (dask's or ray's, set with
``joblib.parallel_config`` around ``main([...])``: docs/benchmarks.md). Start one command per machine: two commands
with the same runs on one machine would train a run twice (use ``--jobs``).

    python benchmarks/mujoco_suite.py run --suite main --steps 50000 --seeds 0 1 2 --jobs 2
    python benchmarks/mujoco_suite.py run --suite main --steps 50000 --seeds 0 1 2 --shard 0/2   # machine 0 of 2
    python benchmarks/mujoco_suite.py run --suite sweep --steps 50000 --seeds 0 1 2
    python benchmarks/mujoco_suite.py run --suite precision --steps 50000 --seeds 0 1 2   # opt-in bf16 vs fp32
    python benchmarks/mujoco_suite.py run --suite learned --steps 50000 --seeds 0 1 2     # learned mixing weights
    python benchmarks/mujoco_suite.py run --suite soft_value --steps 50000 --seeds 0 1 2  # soft-value mixing weights
    python benchmarks/mujoco_suite.py run --suite switch --steps 30000 --seeds 0 1 2 3 4  # issue 23's switch recipe
    python benchmarks/mujoco_suite.py run --suite novelty --steps 30000 --seeds 0 1 2 3 4 # issue 30's novelty recipe
    python benchmarks/mujoco_suite.py list --suite main --steps 50000
    python benchmarks/mujoco_suite.py report          # plots and tables from the committed result files
    python benchmarks/mujoco_suite.py table           # the Results table of docs/modules/sacm.md and s2acm.md

This file has the suites' plan (``Settings``: one value per command line, with the results folder, which the
planning, the runs and the report receive) and trains the runs; ``mujoco_report.py`` makes the tables,
``mujoco_plot.py`` the figures.
"""

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common import NOVELTY, RESULTS, ROOT, SWITCH, machine, now, pending
from mujoco_report import report, seed_table

WORK = ROOT / "benchmarks" / "runs"
# The suites that run a route-change recipe's mixture options on the MuJoCo tasks
RECIPES = {"switch": SWITCH, "novelty": NOVELTY}


@dataclass(frozen=True)
class Settings:
    """
    The suites' plan and the results folder, as one value: ``settings_from`` builds it from the command line and
    the planning and the report get it as an argument. Which runs to make (suite, budget, seeds, tasks, shard) and how
    (jobs, evaluations, threads) are the ``run`` and ``list`` commands' options.
    """

    out: Path = RESULTS  # the run files go to <out>/mujoco, the report to <out>
    suites: tuple[str, ...] = ("main", "sweep", "precision", "learned", "soft_value", "switch", "novelty")
    main_envs: tuple[str, ...] = ("Hopper-v5", "HalfCheetah-v5", "Walker2d-v5", "Ant-v5", "Swimmer-v5", "Humanoid-v5")
    main_algos: tuple[str, ...] = ("sacm", "s2acm", "sac", "td3", "ddpg")
    sweep_components: tuple[int, ...] = (1, 2, 3, 5)
    # The sweep's N=3 run is the main suite's S2ACM run (same hyperparameters file, same seeds): it is not run twice
    default_components: int = 3

    @property
    def folder(self) -> Path:
        return self.out / "mujoco"


def planned_runs(settings: Settings, suite: str, steps: int, seeds: list[int], envs: "list[str] | None") -> list[dict]:
    """Every run of a suite, in the order they should be run (cheap envs and all algorithms first)."""
    runs = []
    if suite == "main":
        for env in envs or settings.main_envs:
            for seed in seeds:
                for algo in settings.main_algos:
                    runs.append({"suite": suite, "algo": algo, "env": env, "seed": seed, "steps": steps, "hyperparams": {}})
    elif suite == "sweep":
        # The paper's Figure 3 ran S2ACM with N = 1, 2, 3 on Hopper; we add N = 5
        for env in envs or ["Hopper-v5"]:
            for seed in seeds:
                for n in settings.sweep_components:
                    if n == settings.default_components:
                        continue
                    run = {"suite": suite, "algo": "s2acm", "env": env, "seed": seed, "steps": steps}
                    runs.append({**run, "hyperparams": {"n_components": n}})
    elif suite == "learned":
        # SACM and S2ACM with learned mixing weights (issue 10), beside the main suite's fixed-weight runs
        for env in envs or settings.main_envs[:3]:
            for seed in seeds:
                for algo in ("sacm", "s2acm"):
                    run = {"suite": suite, "algo": algo, "env": env, "seed": seed, "steps": steps}
                    runs.append({**run, "hyperparams": {"mixture_weights": "learned"}})
    elif suite == "soft_value":
        # SACM with soft-value mixing weights (issue 16's preset), beside the main suite's fixed-weight runs
        for env in envs or settings.main_envs[:3]:
            for seed in seeds:
                run = {"suite": suite, "algo": "sacm", "env": env, "seed": seed, "steps": steps}
                runs.append({**run, "hyperparams": {"mixture_weights": "soft_value"}})
    elif suite in RECIPES:
        # Issue 23's and issue 30's recipes with the two-route task's settings over the paper's: their price where
        # nothing changes (the novelty charge sees the whole observation, its default)
        for env in envs or settings.main_envs[:3]:
            for seed in seeds:
                run = {"suite": suite, "algo": "sacm", "env": env, "seed": seed, "steps": steps}
                runs.append({**run, "hyperparams": dict(RECIPES[suite])})
    elif suite == "precision":
        # The opt-in bf16 matmuls (issue 3) against the main suite's fp32 SACM runs: same seeds, same settings
        for env in envs or ["Hopper-v5"]:
            for seed in seeds:
                run = {"suite": suite, "algo": "sacm", "env": env, "seed": seed, "steps": steps}
                runs.append({**run, "hyperparams": {"matmul_precision": "bf16"}})
    else:
        raise ValueError(f"suite must be one of {settings.suites}, got {suite!r}")
    for run in runs:
        if run["suite"] in RECIPES:
            # One setting, the recipe's (in the result file's hyperparams), too long for a file name: a short hash of
            # it, so that a changed recipe makes new runs instead of passing for the old ones
            extra = "_" + hashlib.sha256(json.dumps(run["hyperparams"], sort_keys=True).encode()).hexdigest()[:8]
        else:
            extra = "".join(f"_{key}{value}" for key, value in sorted(run["hyperparams"].items()))
        run["name"] = f"{run['suite']}_{run['algo']}{extra}_{run['env']}_s{run['seed']}_{run['steps'] // 1000}k"
    return runs


def result_path(settings: Settings, run: dict) -> Path:
    """Where run ``run`` writes its result file: ``<out>/mujoco/<name>.json``."""
    return settings.folder / f"{run['name']}.json"


def execute(run: dict, eval_freq: int, eval_episodes: int, threads: int, settings: Settings) -> bool:
    """Train one run through RL Zoo (a process of its own) and write its result file; False if training failed."""
    print(f"run  {run['name']}", flush=True)
    folder = WORK / run["name"]
    shutil.rmtree(folder, ignore_errors=True)
    callback = [{"sb3_mixture.callbacks.MixtureEvalCallback": {"eval_freq": eval_freq, "n_eval_episodes": eval_episodes,
                                                               "log_path": str(folder / "eval")}}]  # fmt: skip
    hyperparams = [f"{key}:{value!r}" for key, value in run["hyperparams"].items()] + [f"callback:{callback!r}"]
    command = [
        sys.executable, "-m", "sb3_mixture.train", "--algo", run["algo"], "--env", run["env"], "--seed", str(run["seed"]),
        "-n", str(run["steps"]), "-f", str(folder), "--conf-file", str(ROOT / "zoo_hyperparams" / f"{run['algo']}.yml"),
        "--eval-freq", "-1", "--num-threads", str(threads), "--verbose", "0", "--hyperparams", *hyperparams,
    ]  # fmt: skip
    start = time.time()
    log = folder.with_suffix(".log")
    folder.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle:
        returncode = subprocess.run(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT).returncode
    if returncode != 0:
        print(f"fail {run['name']} (exit code {returncode}, log in {log})", flush=True)
        return False
    evaluations = [json.loads(line) for line in (folder / "eval" / "mixture_evaluations.jsonl").read_text().splitlines()]
    result = {
        **run,
        "command": " ".join(command),
        "machine": machine(),
        "date": now(),
        "wall_time_s": round(time.time() - start, 1),
        "eval_freq": eval_freq,
        "eval_episodes": eval_episodes,
        "evaluations": evaluations,
    }
    path = result_path(settings, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole or not at all: a result file marks its run as done
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(result, indent=1))
    partial.replace(path)
    return True


def my_runs(settings: Settings, args: argparse.Namespace) -> list[dict]:
    """The planned runs of this shard (``--shard i/n``: every n-th, starting at the i-th)."""
    runs = planned_runs(settings, args.suite, args.steps, args.seeds, args.envs)
    shard, n_shards = (int(part) for part in args.shard.split("/"))
    return [run for index, run in enumerate(runs) if index % n_shards == shard]


def run_suite(settings: Settings, args: argparse.Namespace) -> None:
    """The runs of this shard that have no result file yet, ``--jobs`` at a time (joblib)."""
    from joblib import Parallel, delayed

    todo = [run for run in my_runs(settings, args) if pending(result_path(settings, run))]
    # Every run is a process of its own: threads are enough to keep --jobs of them going. A joblib backend set by the
    # caller (joblib.parallel_config, e.g. dask's or ray's: docs/benchmarks.md) takes precedence over this hint
    succeeded = Parallel(n_jobs=args.jobs, prefer="threads", batch_size=1)(
        delayed(execute)(run, args.eval_freq, args.eval_episodes, args.threads, settings) for run in todo
    )
    failed = [run["name"] for run, ok in zip(todo, succeeded, strict=True) if not ok]
    if failed:
        raise SystemExit(f"{len(failed)} of {len(todo)} runs failed: {', '.join(failed)}")


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(out=args.out)


def main(argv: "list[str] | None" = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "list"):
        command = sub.add_parser(name)
        command.add_argument("--suite", choices=list(Settings.suites), default="main")
        command.add_argument("--steps", type=int, default=50_000, help="environment steps per run")
        command.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
        command.add_argument("--envs", nargs="*", help="restrict to these tasks")
        command.add_argument("--shard", default="0/1", help="i/n: run every n-th planned run, starting at i")
        command.add_argument("--jobs", type=int, default=1, help="runs trained at the same time on this machine")
        command.add_argument("--eval-freq", type=int, default=5_000)
        command.add_argument("--eval-episodes", type=int, default=5)
        command.add_argument("--threads", type=int, default=1, help="torch threads per run")
    sub.add_parser("report")
    table = sub.add_parser("table", help="the Results table of docs/modules/sacm.md and s2acm.md")
    table.add_argument("--env", default="Hopper-v5")
    table.add_argument("--steps", type=int, default=30_000)
    for command in sub.choices.values():
        command.add_argument("--out", type=Path, default=RESULTS, help="results folder (the run files go to <out>/mujoco)")
    args = parser.parse_args(argv)
    settings = settings_from(args)
    if args.command == "run":
        run_suite(settings, args)
    elif args.command == "list":
        for run in my_runs(settings, args):
            print(("done " if result_path(settings, run).exists() else "todo ") + run["name"])
    elif args.command == "report":
        report(settings)
    else:
        print(seed_table(settings, args.env, args.steps))


if __name__ == "__main__":
    main()
