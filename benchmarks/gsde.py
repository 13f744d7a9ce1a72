"""
gSDE for mixtures (issue 11): its cost and a short learning check, measured side by side in one run.

- Speed: updates/s of ``train()`` on a replay buffer of random HalfCheetah-v5 transitions (default nets, batch 256,
  one gradient step per call) for SACM N=3 with and without gSDE, and SB3's SAC with and without gSDE, in
  interleaved rounds (ABCD ABCD ...), median reported; ratios are within the run.
- Learning: SACM N=3 on Pendulum-v1 (the learning test's settings: lr 1e-3, nets [64, 64], 6000 steps) with and
  without gSDE, and SB3's SAC with gSDE, on a few seeds; mean return of 10 stochastic and 10 deterministic episodes.

    python benchmarks/gsde.py                # writes benchmarks/results/gsde.json and gsde.md
    python benchmarks/gsde.py --quick        # a smoke run (writes nothing)
"""

import argparse
import json
import statistics
import time

import gymnasium as gym
import numpy as np
import torch as th
from common import RESULTS, command, machine, now
from stable_baselines3 import SAC
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure

from sb3_mixture import SACM

SPEED = {
    "sac": (SAC, {}),
    "sac_gsde": (SAC, {"use_sde": True}),
    "sacm_n3": (SACM, {"n_components": 3}),
    "sacm_n3_gsde": (SACM, {"n_components": 3, "use_sde": True}),
}
LEARNING = {
    "sacm_n3": (SACM, {"n_components": 3}),
    "sacm_n3_gsde": (SACM, {"n_components": 3, "use_sde": True}),
    "sac_gsde": (SAC, {"use_sde": True}),
}


def speed(rounds: int, updates: int) -> dict:
    env = gym.make("HalfCheetah-v5")
    rng = np.random.default_rng(0)
    models = {}
    for name, (algo, extra) in SPEED.items():
        model = algo("MlpPolicy", env, learning_starts=0, batch_size=256, seed=0, **extra)
        model.set_logger(configure(None, []))
        for _ in range(2000):
            obs, next_obs = rng.normal(size=(2, 1, 17)).astype(np.float32)
            action = rng.uniform(-1, 1, size=(1, 6)).astype(np.float32)
            model.replay_buffer.add(obs, next_obs, action, rng.normal(size=(1,)), np.zeros(1, dtype=bool), [{}])
        model.train(gradient_steps=20, batch_size=256)  # warm-up
        models[name] = model
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            start = time.perf_counter()
            for _ in range(updates):
                model.train(gradient_steps=1, batch_size=256)
            times[name].append(updates / (time.perf_counter() - start))
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "updates_per_s": medians,
        "rounds": times,
        "ratios": {
            "sacm_n3_gsde / sacm_n3": medians["sacm_n3_gsde"] / medians["sacm_n3"],
            "sac_gsde / sac": medians["sac_gsde"] / medians["sac"],
            "sacm_n3_gsde / sac_gsde": medians["sacm_n3_gsde"] / medians["sac_gsde"],
        },
    }


def learning(seeds: list[int], steps: int) -> dict:
    results: dict[str, list[dict]] = {}
    for seed in seeds:
        for name, (algo, extra) in LEARNING.items():
            start = time.time()
            policy_kwargs = dict(net_arch=[64, 64])
            model = algo("MlpPolicy", "Pendulum-v1", learning_rate=1e-3, learning_starts=200, seed=seed,
                         policy_kwargs=policy_kwargs, **extra)  # fmt: skip
            model.learn(steps)
            stochastic, _ = evaluate_policy(model, model.get_env(), n_eval_episodes=10, deterministic=False)
            deterministic, _ = evaluate_policy(model, model.get_env(), n_eval_episodes=10, deterministic=True)
            run = {"seed": seed, "stochastic": float(stochastic), "deterministic": float(deterministic),
                   "wall_s": round(time.time() - start, 1)}  # fmt: skip
            results.setdefault(name, []).append(run)
            print(name, run, flush=True)
    return results


def markdown(result: dict) -> str:
    lines = [
        "# gSDE for mixtures",
        "",
        f"`{result['command']}` on {result['machine']}, {result['date']}.",
        "",
        "## Speed (HalfCheetah-v5, default nets, batch 256, one gradient step per `train()` call)",
        "",
        f"Median over {len(next(iter(result['speed']['rounds'].values())))} interleaved rounds.",
        "",
        "| configuration | updates/s |",
        "|---|---|",
        *[f"| {name} | {value:.1f} |" for name, value in result["speed"]["updates_per_s"].items()],
        "",
        *[f"- {name}: {value:.2f}" for name, value in result["speed"]["ratios"].items()],
        "",
        f"## Learning (Pendulum-v1, {result['learning_steps']} steps, lr 1e-3, nets [64, 64], 10 episodes each)",
        "",
        "| configuration | seeds | stochastic return mean [per seed] | deterministic return mean |",
        "|---|---|---|---|",
    ]
    for name, runs in result["learning"].items():
        per_seed = ", ".join(f"{run['stochastic']:.0f}" for run in runs)
        lines.append(
            f"| {name} | {len(runs)} | {np.mean([run['stochastic'] for run in runs]):.0f} [{per_seed}] "
            f"| {np.mean([run['deterministic'] for run in runs]):.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--updates", type=int, default=100, help="updates per configuration and round")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    if args.quick:
        args.rounds, args.updates, args.seeds, args.steps = 1, 5, [0], 400
    result = {
        "command": command(),
        "machine": f"{machine()}, torch {th.__version__}, {th.get_num_threads()} threads",
        "date": now(),
        "speed": speed(args.rounds, args.updates),
        "learning_steps": args.steps,
    }
    print(json.dumps(result["speed"]["ratios"]), flush=True)
    result["learning"] = learning(args.seeds, args.steps)
    text = markdown(result)
    print(text)
    if not args.quick:
        (RESULTS / "gsde.json").write_text(json.dumps(result, indent=1))
        (RESULTS / "gsde.md").write_text(text)


if __name__ == "__main__":
    main()
