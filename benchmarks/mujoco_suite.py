"""
MuJoCo benchmark (issue 4, section 3): SACM, S2ACM, SAC, TD3 and DDPG on the v5 tasks with the paper's
settings (zoo_hyperparams/*.yml, docs/algorithm.md section 7) except the step budget, plus a mixture-size sweep.

Every run trains through RL Zoo (``python -m sb3_mixture.train``) with a ``MixtureEvalCallback`` that
evaluates the stochastic policy, the deterministic policy and each mixture component every ``--eval-freq``
steps, and writes one result file, ``benchmarks/results/mujoco/<run>.json``. A rerun skips runs whose
result file exists, so the suite can grow over time and be split across machines (``--shard``). On one machine,
workers started side by side with the same command share the runs: each claims a run before training it
(``benchmarks/runs/<run>.claim``, holding its pid) and skips runs a live worker has claimed:

    python benchmarks/mujoco_suite.py run --suite main --steps 50000 --seeds 0 1 2 --shard 0/2
    python benchmarks/mujoco_suite.py run --suite sweep --steps 50000 --seeds 0 1 2
    python benchmarks/mujoco_suite.py run --suite precision --steps 50000 --seeds 0 1 2   # opt-in bf16 vs fp32
    python benchmarks/mujoco_suite.py run --suite learned --steps 50000 --seeds 0 1 2     # learned mixing weights
    python benchmarks/mujoco_suite.py run --suite soft_value --steps 50000 --seeds 0 1 2  # soft-value mixing weights
    python benchmarks/mujoco_suite.py list --suite main --steps 50000
    python benchmarks/mujoco_suite.py report          # plots and tables from the committed result files
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "mujoco"
WORK = ROOT / "benchmarks" / "runs"

MAIN_ENVS = ["Hopper-v5", "HalfCheetah-v5", "Walker2d-v5", "Ant-v5", "Swimmer-v5", "Humanoid-v5"]
MAIN_ALGOS = ["sacm", "s2acm", "sac", "td3", "ddpg"]
SWEEP_COMPONENTS = [1, 2, 3, 5]
# The sweep's N=3 run is the main suite's S2ACM run (same hyperparameters file, same seeds): it is not run twice
DEFAULT_COMPONENTS = 3
MIN_AGGREGATE_SEEDS = 3
SUITES = ("main", "sweep", "precision", "learned", "soft_value")


def planned_runs(suite: str, steps: int, seeds: list[int], envs: "list[str] | None") -> list[dict]:
    """Every run of a suite, in the order they should be run (cheap envs and all algorithms first)."""
    runs = []
    if suite == "main":
        for env in envs or MAIN_ENVS:
            for seed in seeds:
                for algo in MAIN_ALGOS:
                    runs.append({"suite": suite, "algo": algo, "env": env, "seed": seed, "steps": steps, "hyperparams": {}})
    elif suite == "sweep":
        # The paper's Figure 3 ran S2ACM with N = 1, 2, 3 on Hopper; we add N = 5
        for env in envs or ["Hopper-v5"]:
            for seed in seeds:
                for n in SWEEP_COMPONENTS:
                    if n == DEFAULT_COMPONENTS:
                        continue
                    run = {"suite": suite, "algo": "s2acm", "env": env, "seed": seed, "steps": steps}
                    runs.append({**run, "hyperparams": {"n_components": n}})
    elif suite == "learned":
        # SACM and S2ACM with learned mixing weights (issue 10), beside the main suite's fixed-weight runs
        for env in envs or MAIN_ENVS[:3]:
            for seed in seeds:
                for algo in ("sacm", "s2acm"):
                    run = {"suite": suite, "algo": algo, "env": env, "seed": seed, "steps": steps}
                    runs.append({**run, "hyperparams": {"mixture_weights": "learned"}})
    elif suite == "soft_value":
        # SACM with soft-value mixing weights (issue 16's preset), beside the main suite's fixed-weight runs
        for env in envs or MAIN_ENVS[:3]:
            for seed in seeds:
                run = {"suite": suite, "algo": "sacm", "env": env, "seed": seed, "steps": steps}
                runs.append({**run, "hyperparams": {"mixture_weights": "soft_value"}})
    elif suite == "precision":
        # The opt-in bf16 matmuls (issue 3) against the main suite's fp32 SACM runs: same seeds, same settings
        for env in envs or ["Hopper-v5"]:
            for seed in seeds:
                run = {"suite": suite, "algo": "sacm", "env": env, "seed": seed, "steps": steps}
                runs.append({**run, "hyperparams": {"matmul_precision": "bf16"}})
    else:
        raise ValueError(f"suite must be one of {SUITES}, got {suite!r}")
    for run in runs:
        extra = "".join(f"_{key}{value}" for key, value in sorted(run["hyperparams"].items()))
        run["name"] = f"{run['suite']}_{run['algo']}{extra}_{run['env']}_s{run['seed']}_{run['steps'] // 1000}k"
    return runs


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return f"{platform.node()}: {os.cpu_count()} CPUs, {cpu}"


def execute(run: dict, eval_freq: int, eval_episodes: int, threads: int) -> None:
    """Train one run through RL Zoo and write its result file."""
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
        subprocess.run(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, check=True)
    evaluations = [json.loads(line) for line in (folder / "eval" / "mixture_evaluations.jsonl").read_text().splitlines()]
    result = {
        **run,
        "command": " ".join(command),
        "machine": machine(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_time_s": round(time.time() - start, 1),
        "eval_freq": eval_freq,
        "eval_episodes": eval_episodes,
        "evaluations": evaluations,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{run['name']}.json").write_text(json.dumps(result, indent=1))


def claim_path(name: str) -> Path:
    """The file a worker holds while it trains run ``name``: its pid."""
    return WORK / f"{name}.claim"


def claim_owner(name: str) -> "int | None":
    """The pid of the live process on this machine that has claimed run ``name``, if any."""
    try:
        pid = int(claim_path(name).read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        # No claim, an unreadable one, or one left by a process that has ended (a session that was stopped)
        return None
    return pid


def try_claim(name: str) -> bool:
    """Claim run ``name`` for this process; False if a live process holds it.

    Workers started side by side (with or without ``--shard``) then never train the same run twice, and a run
    left half-done by a stopped worker is taken over.
    """
    claim = claim_path(name)
    WORK.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            descriptor = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if claim_owner(name) is not None:
                return False
            claim.unlink(missing_ok=True)  # stale: its owner is gone
            continue
        with os.fdopen(descriptor, "w") as handle:
            handle.write(f"{os.getpid()}\n")
        return True
    return False


def run_suite(args: argparse.Namespace) -> None:
    runs = planned_runs(args.suite, args.steps, args.seeds, args.envs)
    shard, n_shards = (int(part) for part in args.shard.split("/"))
    mine = [run for index, run in enumerate(runs) if index % n_shards == shard]
    for run in mine:
        result_file = RESULTS / f"{run['name']}.json"
        if result_file.exists():
            print(f"skip {run['name']} (done)", flush=True)
            continue
        if not try_claim(run["name"]):
            print(f"skip {run['name']} (running in pid {claim_owner(run['name'])})", flush=True)
            continue
        try:
            if result_file.exists():  # finished by another worker between the check and the claim
                continue
            print(f"run  {run['name']}", flush=True)
            execute(run, args.eval_freq, args.eval_episodes, args.threads)
        finally:
            claim_path(run["name"]).unlink(missing_ok=True)


def load_results(suite: "str | None" = None) -> list[dict]:
    results = [json.loads(path.read_text()) for path in sorted(RESULTS.glob("*.json"))]
    selected = [result for result in results if suite is None or result["suite"] == suite]
    # The sweep's N=3 and the precision suite's fp32 runs are the main suite's runs on the same tasks, budget and
    # seeds (only those seeds: the main suite may have more, and the comparison should be seed for seed)
    baselines = {"sweep": ("s2acm", {"n_components": DEFAULT_COMPONENTS}), "precision": ("sacm", {"matmul_precision": "fp32"})}
    if suite in baselines and selected:
        algo, hyperparams = baselines[suite]
        runs = {(result["env"], result["steps"], result["seed"]) for result in selected}
        for result in results:
            same_run = (result["env"], result["steps"], result["seed"]) in runs
            if result["suite"] == "main" and result["algo"] == algo and same_run:
                selected.append({**result, "suite": suite, "hyperparams": hyperparams})
    return selected


def label(result: dict) -> str:
    names = {"n_components": "N={}", "matmul_precision": "{}", "mixture_weights": "{}", "mixture_weight_floor": "floor {}"}
    extra = "".join(" " + names[key].format(value) for key, value in result["hyperparams"].items() if key in names)
    return result["algo"].upper() + extra


def report(args: argparse.Namespace) -> None:
    """Curves, final-return table (mean, std, IQM with bootstrap CIs via rliable) and best single component."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rliable import metrics

    lines = ["| suite | env | algorithm | seeds | steps | final return (stochastic) mean ± std | IQM [95% CI] "
             "| deterministic | best single component |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    table = []
    main_finals: dict[str, dict[str, np.ndarray]] = {}
    learned_finals: dict[str, dict[str, np.ndarray]] = {}
    for suite in SUITES:
        results = load_results(suite)
        if not results:
            continue
        for env in sorted({result["env"] for result in results}):
            figure, axis = plt.subplots(figsize=(6, 4))
            groups: dict[str, list[dict]] = {}
            for result in results:
                if result["env"] == env:
                    groups.setdefault(label(result), []).append(result)
            for name, group in sorted(groups.items()):
                steps = min(len(result["evaluations"]) for result in group)
                x = np.array([record["timesteps"] for record in group[0]["evaluations"][:steps]])
                curves = np.array([[record["mixture"][0] for record in result["evaluations"][:steps]] for result in group])
                axis.plot(x, curves.mean(axis=0), label=f"{name} ({len(group)} seeds)")
                axis.fill_between(x, curves.min(axis=0), curves.max(axis=0), alpha=0.2)
                final = curves[:, -1]
                if suite in ("main", "learned"):
                    (main_finals if suite == "main" else learned_finals).setdefault(env, {})[name] = final
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
            axis.set_title(f"{env} ({suite}): stochastic evaluation return")
            axis.set_xlabel("environment steps")
            axis.set_ylabel("mean return (5 episodes)")
            axis.legend(fontsize=8)
            figure.tight_layout()
            figure.savefig(RESULTS.parent / f"mujoco_{suite}_{env}.png", dpi=100)
            plt.close(figure)
    if main_finals:
        lines += ["", *aggregate_report(main_finals)]
    if learned_finals:
        # The learned-weight runs beside the main suite's algorithms, over the tasks and seeds both have
        combined = {env: {**main_finals.get(env, {}), **algos} for env, algos in learned_finals.items()}
        aggregate = aggregate_report(combined, "mujoco_aggregate_learned")
        if aggregate:
            lines += ["", "With learned mixing weights:", "", *aggregate]
        lines += ["", *weight_report(load_results("learned"))]
    (RESULTS.parent / "mujoco_table.md").write_text("\n".join(lines) + "\n")
    (RESULTS.parent / "mujoco_table.json").write_text(json.dumps(table, indent=1))
    print("\n".join(lines))


def bootstrap(scores: dict, statistic: Callable) -> tuple[dict, dict]:
    """rliable's point estimates and 95% stratified-bootstrap CIs (2000 resamples), the same on every report.

    rliable draws its resampling indices from numpy's global generator (its ``random_state`` argument does not
    reach them with arch 7), so the global generator is seeded here.
    """
    from rliable import library as rly

    np.random.seed(0)
    return rly.get_interval_estimates(scores, statistic, reps=2000)


def random_returns(envs: list[str], episodes: int = 20) -> dict[str, float]:
    """Mean return of uniformly random actions on each task (the 0 of the normalised score), cached in results."""
    import gymnasium as gym

    path = RESULTS.parent / "mujoco_random_returns.json"
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


def weight_report(results: list[dict]) -> list[str]:
    """Do learned mixing weights stay spread or collapse? H(w(s)) / log N over training, from the eval records."""
    import matplotlib.pyplot as plt

    results = [result for result in results if any("weights" in record for record in result["evaluations"])]
    if not results:
        return []
    envs = sorted({result["env"] for result in results})
    figure, axes = plt.subplots(1, len(envs), figsize=(4.5 * len(envs), 3.4), squeeze=False, sharey=True)
    lines = [
        "Learned mixing weights at the last evaluation (mean over the replay buffer's 1000 most recent states): weight "
        "entropy H(w(s)) as a share of log N (1 = uniform, 0 = one component), the mean largest weight, and the smallest "
        "mean weight of a component.",
        "",
        "| env | algorithm | seeds | H(w) / log N mean [per seed] | largest weight | smallest mean weight |",
        "|---|---|---|---|---|---|",
    ]
    for axis, env in zip(axes[0], envs, strict=True):
        groups: dict[str, list[dict]] = {}
        for result in results:
            if result["env"] == env:
                groups.setdefault(label(result), []).append(result)
        for color, (name, group) in zip(("tab:blue", "tab:orange", "tab:green"), sorted(groups.items()), strict=False):
            finals = []
            for result in group:
                records = [record for record in result["evaluations"] if "weights" in record]
                n_components = len(records[0]["weights"]["mean"])
                x = [record["timesteps"] for record in records]
                y = [record["weights"]["entropy"] / np.log(n_components) for record in records]
                axis.plot(x, y, color=color, alpha=0.5, linewidth=1, label=name if not finals else None)
                finals.append(records[-1]["weights"])
            shares = [final["entropy"] / np.log(len(final["mean"])) for final in finals]
            lines.append(
                f"| {env} | {name} | {len(group)} | {np.mean(shares):.2f} [{', '.join(f'{v:.2f}' for v in shares)}] "
                f"| {np.mean([final['max_weight'] for final in finals]):.2f} "
                f"| {np.mean([min(final['mean']) for final in finals]):.3f} |"
            )
        axis.set_title(env)
        axis.set_xlabel("environment steps")
        axis.set_ylim(0, 1.05)
        axis.legend(fontsize=8)
    axes[0][0].set_ylabel("H(w(s)) / log N (1 = uniform)")
    figure.suptitle("Learned mixing weights: entropy over training (one line per seed)", fontsize=10)
    figure.tight_layout()
    figure.savefig(RESULTS.parent / "mujoco_learned_weight_entropy.png", dpi=100)
    plt.close(figure)
    return [*lines, "", "![weight entropy](mujoco_learned_weight_entropy.png)"]


def aggregate_report(finals: dict[str, dict[str, np.ndarray]], name: str = "mujoco_aggregate") -> list[str]:
    """Across the main suite's tasks: IQM of SAC-normalised final returns and P(algorithm > SAC), via rliable.

    Normalised score on a task: (return - random) / (SAC's mean return - random), so SAC's mean is 1 and a random
    policy 0. Pooling runs x tasks gives the IQM something to trim: over 3 seeds of one task it equals the mean.
    """
    import matplotlib.pyplot as plt
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
    random = random_returns(envs)
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
    (RESULTS.parent / f"{name}.json").write_text(json.dumps(summary, indent=1))
    figure, axis = plt.subplots(figsize=(6, 0.5 + 0.45 * len(rows)))
    for y, row in enumerate(reversed(rows)):
        axis.plot(row["iqm_ci"], [y, y], color="tab:blue", linewidth=6, alpha=0.4)
        axis.plot([row["iqm"]], [y], "o", color="tab:blue")
    axis.set_yticks(range(len(rows)), [row["algorithm"] for row in reversed(rows)])
    axis.axvline(1.0, color="grey", linestyle=":", linewidth=1)
    axis.set_xlabel("IQM of SAC-normalised final return (95% CI)")
    axis.set_title(f"{', '.join(envs)}: {runs} seeds each")
    figure.tight_layout()
    figure.savefig(RESULTS.parent / f"{name}.png", dpi=100)
    plt.close(figure)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "list"):
        command = sub.add_parser(name)
        command.add_argument("--suite", choices=list(SUITES), default="main")
        command.add_argument("--steps", type=int, default=50_000, help="environment steps per run")
        command.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
        command.add_argument("--envs", nargs="*", help="restrict to these tasks")
        command.add_argument("--shard", default="0/1", help="i/n: run every n-th planned run, starting at i")
        command.add_argument("--eval-freq", type=int, default=5_000)
        command.add_argument("--eval-episodes", type=int, default=5)
        command.add_argument("--threads", type=int, default=1, help="torch threads per run")
    sub.add_parser("report")
    args = parser.parse_args()
    if args.command == "run":
        run_suite(args)
    elif args.command == "list":
        for run in planned_runs(args.suite, args.steps, args.seeds, args.envs):
            done = (RESULTS / f"{run['name']}.json").exists()
            owner = None if done else claim_owner(run["name"])
            print(("done " if done else "todo " if owner is None else f"run  (pid {owner}) ") + run["name"])
    else:
        report(args)


if __name__ == "__main__":
    main()
