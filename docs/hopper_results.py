"""
Print the Results table of docs/modules/sacm.md and s2acm.md from the committed benchmark files.

    python docs/hopper_results.py

The table is part of the MuJoCo study's report now: ``python benchmarks/mujoco_suite.py table`` (``--env``,
``--steps`` for other tasks and budgets; ``mujoco_report.seed_table``). This script only runs it with the pages'
task and budget (Hopper-v5, 30k steps), for the command they name.
"""

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

if __name__ == "__main__":
    sys.path.insert(0, str(BENCHMARKS))
    import mujoco_suite

    mujoco_suite.main(["table", "--env", "Hopper-v5", "--steps", "30000"])
