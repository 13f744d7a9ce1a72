"""
Print the Results table of docs/modules/sacm.md and s2acm.md from the committed benchmark files.

    python docs/hopper_results.py

Reads ``benchmarks/results/mujoco/main_*_Hopper-v5_s*_30k.json`` (``benchmarks/mujoco_suite.py run --suite main
--steps 30000 --envs Hopper-v5``) and reports, per algorithm, the last evaluation (30k steps, 5 episodes per
seed): mean ± std over seeds of the stochastic policy's return, of the deterministic policy's, and, for the
mixtures, of the best single component's.
"""

import json
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "mujoco"
ALGOS = ["sacm", "s2acm", "sac", "td3", "ddpg"]


def main() -> None:
    print("| Hopper-v5, 30k steps | seeds | stochastic | deterministic | best single component |")
    print("|---|---|---|---|---|")
    for algo in ALGOS:
        results = [json.loads(path.read_text()) for path in sorted(RESULTS.glob(f"main_{algo}_Hopper-v5_s*_30k.json"))]
        if not results:
            continue
        last = [result["evaluations"][-1] for result in results]
        assert all(record["timesteps"] == 30_000 for record in last)
        cells = []
        for key in ("mixture", "deterministic", "best_component"):
            if key not in last[0]:
                cells.append("—")
                continue
            returns = np.array([record[key][0] for record in last])
            cells.append(f"{returns.mean():.0f} ± {returns.std():.0f}")
        seeds = ", ".join(str(result["seed"]) for result in results)
        print(f"| {algo.upper()} | {seeds} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
