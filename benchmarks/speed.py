"""
Speed of SACM against SB3's SAC, measured side by side in one run (issue 3).

For each configuration this measures
- env steps/s: ``learn()`` on the task with ``train_freq=1, gradient_steps=1`` after a warm-up,
- updates/s: ``train()`` alone on a replay buffer of random transitions, one gradient step per call
  (the default schedule) and, for the paper's schedule, 1000 gradient steps per call.
Configurations are measured in interleaved rounds (ABCABC...) and the median is reported, since this
machine is noisy. Ratios are against SB3's SAC from the same run.

    python benchmarks/speed.py                      # HalfCheetah-v5, default nets, batch 256
    python benchmarks/speed.py --quick              # a smoke run
"""

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from common import RESULTS, command, machine, now
from stable_baselines3 import SAC
from stable_baselines3.common.logger import configure

from sb3_mixture import SACM


def configurations() -> dict[str, Callable[[gym.Env], Any]]:
    common = dict(learning_starts=0, batch_size=256, train_freq=1, gradient_steps=1, seed=0)
    return {
        "sb3_sac": lambda env: SAC("MlpPolicy", env, **common),
        "sacm_n1": lambda env: SACM("MlpPolicy", env, n_components=1, **common),
        "sacm_n3": lambda env: SACM("MlpPolicy", env, n_components=3, **common),
        "sacm_n3_sample": lambda env: SACM("MlpPolicy", env, n_components=3, component_sampling="sample", **common),
        "sacm_n8": lambda env: SACM("MlpPolicy", env, n_components=8, **common),
        "sacm_n8_sample": lambda env: SACM("MlpPolicy", env, n_components=8, component_sampling="sample", **common),
        # Opt-in, not the fp32 targets: bf16 autocast of the network passes in train()
        "sacm_n1_bf16": lambda env: SACM("MlpPolicy", env, n_components=1, matmul_precision="bf16", **common),
        "sacm_n3_bf16": lambda env: SACM("MlpPolicy", env, n_components=3, matmul_precision="bf16", **common),
    }


def fill_buffer(model: Any, n_transitions: int, rng: np.random.Generator) -> None:
    obs_space, act_space = model.observation_space, model.action_space
    for _ in range(n_transitions):
        obs = rng.normal(size=(1, *obs_space.shape)).astype(np.float32)
        next_obs = rng.normal(size=(1, *obs_space.shape)).astype(np.float32)
        action = rng.uniform(-1, 1, size=(1, *act_space.shape)).astype(np.float32)
        model.replay_buffer.add(obs, next_obs, action, rng.normal(size=(1,)), np.zeros(1, dtype=bool), [{}])


def updates_per_second(model: Any, n_updates: int, per_call: int) -> float:
    start = time.perf_counter()
    for _ in range(n_updates // per_call):
        model.train(gradient_steps=per_call, batch_size=model.batch_size)
    return (n_updates // per_call) * per_call / (time.perf_counter() - start)


def env_steps_per_second(model: Any, n_steps: int) -> float:
    start = time.perf_counter()
    model.learn(n_steps, reset_num_timesteps=False)
    return n_steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--env-steps", type=int, default=1000, help="timed env steps per round")
    parser.add_argument("--updates", type=int, default=500, help="timed gradient steps per round")
    parser.add_argument("--paper-updates", type=int, default=1000, help="gradient steps per train() call, paper schedule")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="measure only these configurations (sb3_sac is always included)")
    parser.add_argument("--quick", action="store_true", help="tiny budgets, for a smoke run")
    parser.add_argument("--out", default=str(RESULTS / "speed"), help="output path without extension")
    args = parser.parse_args()
    if args.quick:
        args.env_steps, args.updates, args.paper_updates, args.rounds = 100, 50, 50, 1

    configs = configurations()
    if args.only:
        configs = {name: make for name, make in configs.items() if name in args.only or name == "sb3_sac"}
    models = {}
    rng = np.random.default_rng(0)
    for name, make in configs.items():
        model = make(gym.make(args.env))
        model.set_logger(configure(None, []))
        fill_buffer(model, 5_000, rng)
        model.learn(200, reset_num_timesteps=False)  # warm-up: allocations, first updates
        models[name] = model

    metrics = ("env_steps_per_s", "updates_per_s", "paper_updates_per_s")
    samples: dict[str, dict[str, list[float]]] = {name: {metric: [] for metric in metrics} for name in models}
    for round_index in range(args.rounds):
        for name, model in models.items():
            samples[name]["updates_per_s"].append(updates_per_second(model, args.updates, per_call=1))
            paper = updates_per_second(model, args.paper_updates, per_call=args.paper_updates)
            samples[name]["paper_updates_per_s"].append(paper)
            samples[name]["env_steps_per_s"].append(env_steps_per_second(model, args.env_steps))
            measured = ", ".join(f"{key} {values[-1]:.1f}" for key, values in samples[name].items())
            print(f"round {round_index + 1}/{args.rounds} {name}: {measured}", flush=True)

    medians = {name: {key: statistics.median(values) for key, values in metrics.items()} for name, metrics in samples.items()}
    reference = medians["sb3_sac"]
    rows = []
    for name, metrics in medians.items():
        row = {"config": name, **metrics}
        row["env_steps_ratio_vs_sac"] = metrics["env_steps_per_s"] / reference["env_steps_per_s"]
        row["updates_ratio_vs_sac"] = metrics["updates_per_s"] / reference["updates_per_s"]
        row["paper_vs_default_schedule"] = metrics["paper_updates_per_s"] / metrics["updates_per_s"]
        rows.append(row)
    by_name = {row["config"]: row for row in rows}
    ratios = {}
    for n in ("n8", "n8_sample"):
        if f"sacm_{n}" in by_name and "sacm_n1" in by_name:
            ratios[f"updates_{n}_vs_n1"] = by_name[f"sacm_{n}"]["updates_per_s"] / by_name["sacm_n1"]["updates_per_s"]

    meta = {
        "command": command(),
        "date": now(),
        "machine": machine(),
        "torch": th.__version__,
        "torch_threads": th.get_num_threads(),
        "env": args.env,
        "settings": "default nets [256, 256], batch 256, train_freq=1, gradient_steps=1, fp32 unless *_bf16",
        "rounds": args.rounds,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"meta": meta, "results": rows, "ratios": ratios, "samples": samples}
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    with out.with_suffix(".csv").open("w") as handle:
        handle.write("# " + "; ".join(f"{k}: {v}" for k, v in meta.items()) + "\n")
        keys = list(rows[0])
        handle.write(",".join(keys) + "\n")
        for row in rows:
            handle.write(",".join(f"{row[k]:.4g}" if isinstance(row[k], float) else str(row[k]) for k in keys) + "\n")

    print(f"\n{meta['date']}  {meta['machine']}  torch {meta['torch']} ({meta['torch_threads']} threads)")
    print(f"{'config':<16}{'env steps/s':>12}{'x SAC':>8}{'updates/s':>11}{'x SAC':>8}{'paper/default':>15}")
    for row in rows:
        print(
            f"{row['config']:<16}{row['env_steps_per_s']:>12.1f}{row['env_steps_ratio_vs_sac']:>8.2f}"
            f"{row['updates_per_s']:>11.1f}{row['updates_ratio_vs_sac']:>8.2f}{row['paper_vs_default_schedule']:>15.2f}"
        )
    for key, value in ratios.items():
        print(f"{key}: {value:.2f}")


if __name__ == "__main__":
    main()
