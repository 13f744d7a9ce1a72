"""
Pilot (issue 30): a benchmark run with the novelty charge's gate at another share ``keep`` of the returns' spread
than the package's ``NOVELTY_KEEP`` (docs/algorithm.md section 13), to see whether a wider gate brings back the
diversity the first gate had on the two-route task while keeping the maze's collapsed components out.

    python benchmarks/results/pilots/issue30/keep/keep_pilot.py 0.1 route_change run --algos sacm_novelty_n4 \
        --seeds 1 8 --phase1-steps 20000 --phase2-steps 6000 --out benchmarks/results/pilots/issue30/keep/keep_0.1
    python benchmarks/results/pilots/issue30/keep/keep_pilot.py 0.1 maze_routes run --algos sacm_novelty_n4 \
        --seeds 3 --out benchmarks/results/pilots/issue30/keep/keep_0.1

The result files record the package's code version, which does not show the changed share: this folder's README does.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))
from sb3_mixture.sacm import diversity  # noqa: E402


def main() -> None:
    keep, study = float(sys.argv[1]), sys.argv[2]
    package_gate = diversity.near_best_in_spread

    def gate_at_keep(returns, floor, _keep=diversity.NOVELTY_KEEP):
        return package_gate(returns, floor, keep)

    # NoveltyDiversity.gate looks the function up in its module at each call
    diversity.near_best_in_spread = gate_at_keep
    sys.argv = [f"{study}.py", *sys.argv[3:]]
    module = __import__(study)
    module.main()


if __name__ == "__main__":
    main()
