"""
Pilot (issue 30): phase 2 of a maze_routes.py run replayed from its checkpoint at the block, with SB3's CSV log and
every component evaluated alone, optionally with attributes of the loaded model changed first (JSON, dotted paths).

    python benchmarks/results/pilots/issue30/maze_phase2/replay_phase2.py sacm_novelty_n4 0 with_charge
    python benchmarks/results/pilots/issue30/maze_phase2/replay_phase2.py sacm_novelty_n4 0 without_charge \
        '{"diversity.weight": 0.0}'

Printed every 2000 steps: the step, the mean return and success rate of 10 stochastic episodes of the mixture, their
routes, and per component (alone, deterministic, 4 episodes): mean return, episodes through the left and the right
corridor. The extra evaluations draw from the same random streams as training, so a replay is not the original run.
"""

import json
import sys
from pathlib import Path

import torch as th

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))
import maze_routes  # noqa: E402
from stable_baselines3.common.logger import configure  # noqa: E402

OUT = Path(__file__).resolve().parent
END = 80_000


def main() -> None:
    th.set_num_threads(1)
    algo, seed, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    changes = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    settings = maze_routes.Settings()
    run = json.loads(maze_routes.checkpoint_paths(settings, f"{algo}_s{seed}")["run"].read_text())
    blocked = run["blocked_route"]
    model, _ = maze_routes.load_checkpoint(algo, seed, settings, maze_routes.make_env(blocked))
    for path, value in changes.items():
        *owners, name = path.split(".")
        owner = model
        for attribute in owners:
            owner = getattr(owner, attribute)
        setattr(owner, name, value)
    model.set_logger(configure(str(OUT / tag), ["csv"]))
    choice = model.policy.component_choice
    while model.num_timesteps < END:
        model.learn(2000, reset_num_timesteps=False, log_interval=1)
        mixture = maze_routes.rollouts(model, 10, run["eval_seed"], blocked)
        alone = []
        for component in range(choice.n_components):
            with choice.use_component(component):
                episodes = maze_routes.rollouts(model, 4, run["eval_seed"], blocked, deterministic=True)
            alone.append((round(episodes["mean_return"]), episodes["route_counts"]["left"], episodes["route_counts"]["right"]))
        print(model.num_timesteps, round(mixture["mean_return"], 1), mixture["success_rate"], mixture["route_counts"], alone)


if __name__ == "__main__":
    main()
