"""
Maze routes: the route-change study (``route_change.py``) on a real simulator, gymnasium-robotics' PointMaze (a
MuJoCo point mass, Farama's own dense reward ``exp(-distance to the goal)``), issue 30's evidence item 2.

The maze (``MAZE``; 1 = wall, r = the start cell, g = the goal cell; x grows to the right, y upwards)::

    1 1 1 1 1 1 1
    1 . . g . . 1        row 1: the goal cell (0, 2) between the two routes' top ends
    1 . 1 1 1 . 1        rows 2-4: a 3x3 block; the columns 1 (left) and 5 (right) are the two corridors
    1 L 1 1 1 R 1        row 3: L and R are the cells a block walls up (``BLOCK_CELLS``)
    1 . 1 1 1 . 1
    1 . . r . . 1        row 5: the start cell (0, -2)
    1 1 1 1 1 1 1

Two routes, equally long: each goes from the start cell 2 cells sideways, 4 up a corridor and 2 back to the goal
cell, 8 moves through 9 cells (breadth-first search with the other corridor walled up: ``route_lengths``; checked
at import). The maze is mirror-symmetric about the vertical line through the start and the goal, so the routes are
equally long in the continuum too, and the reward (which ignores the walls) is symmetric as well. The 3-cell block
keeps the wall-ignoring reward's trap small: pressed against the block under the goal the point earns about
exp(-3.5) = 0.03 per step, at the goal about 1. A hand-written controller at full force reaches the goal after
about 170 steps (the point's speed is clipped at 5 units/s, 0.05 per 0.01-s step), so episodes last 400 steps
(``max_episode_steps``; Farama's U-maze, whose route is 6 moves, uses 300). The start and the goal are fixed cells
('r', 'g'), with PointMaze's default uniform noise of +-0.25 on both; the task is continuing (Farama's default: the
episode does not end at the goal, the point earns ~1 per step while it stays there).

Protocol (``Settings``' defaults): ``phase1_steps`` = 50k steps on the open maze, evaluated every 2500; then the
route the policy took most often in its last evaluation is walled up (a new env whose ``maze_map`` has a wall at
that route's ``BLOCK_CELLS`` cell, swapped in with ``model.set_env``; the replay buffer is kept) and training goes
on for ``phase2_steps`` = 30k steps (``learn(..., reset_num_timesteps=False)``), evaluated right after the block and
every 2000 steps. The reward ignores walls, so the block is never announced by it (as ``route_change.py
--hidden-block``): the walled-up corridor becomes a dead end that only exploration gets out of.

Each evaluation: 20 stochastic episodes with fixed seeds (the same starts and goals each time), their mean return,
success rate (reached within 0.45 of the goal at some step: PointMaze's ``info["success"]``), and per episode the
route taken: the side of x = 0 on which the point first entered the goal row (y > 1.5, reachable only through a
corridor), and the side tried: the side of x = 0 when |x| first exceeded 1 (half way into the cells beside the
start). Recovery exactly as ``route_change.py`` defines it (``route_change_report.recovery``): score =
(return - random) / (pre-block - random), the first evaluation with score >= 0.9, censored at ``phase2_steps``;
random is the mean return of uniform random actions on the blocked maze.

Result files: one per run, ``benchmarks/results/maze_routes/<algo>_s<seed>.json``, in ``route_change.py``'s schema
(``config``, ``blocked_route``, ``random_return``, ``before_block``, ``after_block``, ``curve``, ``recovery``,
``code``, the command, machine, date and times), plus ``env_kwargs`` (the maze and PointMaze's options), and
``resumed`` when phase 2 ran in a later process than phase 1. What the two route studies share (the snapshot at the
block and at the end, the curve points, the route mostly taken, each component alone, random play's return) is in
``common.py``; the report reuses ``route_change_report``'s loading (``load_recovery_runs``), row and summary entry.

Resumable: at the block, the model (.zip), its replay buffer and phase 1's record go to ``<folder>/checkpoints/``
(ignored by git). A rerun skips the runs that have a result file and starts phase 2 of a run from its checkpoint.
Every run, also one that never stops, starts phase 2 by loading its checkpoint and reseeding (seed + 1 000 000),
so a resumed run is the same as an uninterrupted one.

Algorithms: any name of ``common.ALGORITHMS`` (``--algos``, default SAC). Settings: ``common.SMALL_TASK_SETTINGS``
(net [64, 64], batch 256, lr 3e-4, buffer 100k) with ``learning_starts`` = 1000, SB3's SAC defaults otherwise
(gamma 0.99, automatic temperature, one gradient step per env step), on the CPU with one torch thread. Observations:
PointMaze's Dict (position and velocity, achieved goal, desired goal) is flattened into one vector of 8
(``FlattenObservation``) rather than trained with ``MultiInputPolicy``: ``common.make_model`` builds an
``MlpPolicy`` and ``common.side_by_side`` stacks array observations, and for Box entries SB3's ``CombinedExtractor``
only flattens and concatenates them, so the networks see the same numbers either way.

    nice -n 5 python benchmarks/maze_routes.py run --algos sac --seeds 0 1 2 3 4   # resumable, one run at a time
    python benchmarks/maze_routes.py run --quick --out /tmp/maze_quick               # a few hundred steps: the pipeline
    python benchmarks/maze_routes.py report     # maze_routes.md, .csv, .json and .png in benchmarks/results

Costs (``cpu_s`` in each result file): SAC trains at about 6 CPU-seconds per 1000 steps here (one torch thread,
evaluations included), so a run takes about 8-9 CPU-minutes; the checkpoint takes about 15 MB per run (the buffer).
Seed 0 of SAC learned the maze in about 30k steps (return 170-190 and 80-90% successes; a hand-written
controller earns about 240) and used both routes at some evaluations of phase 1.
"""

import argparse
import json
import time
from collections import deque
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np
from common import (
    ALGORITHM_LABELS,
    ALGORITHMS,
    RESULTS,
    ROUTE_SUMMARY,
    SMALL_TASK_SETTINGS,
    add_phase_options,
    aggregate,
    algorithm_class,
    code_version,
    curve_point,
    finished,
    generated_by,
    interval,
    iqm_summary,
    main_route,
    make_model,
    per_run_rows,
    phase_changes,
    phase_config,
    pyplot,
    random_return,
    report_meta,
    run_each,
    run_or_report,
    settings_used,
    side_by_side,
    snapshot,
    study_parser,
    write_json,
    write_report,
)
from route_change_report import load_recovery_runs, recovery, run_row, summary_entry

ENV_ID = "PointMaze_UMazeDense-v3"
STUDY = "maze_routes"
R, G = "r", "g"
MAZE = [
    [1, 1, 1, 1, 1, 1, 1],
    [1, 0, 0, G, 0, 0, 1],
    [1, 0, 1, 1, 1, 0, 1],
    [1, 0, 1, 1, 1, 0, 1],
    [1, 0, 1, 1, 1, 0, 1],
    [1, 0, 0, R, 0, 0, 1],
    [1, 1, 1, 1, 1, 1, 1],
]
ROUTES = ("left", "right")
# (row, column) of the cell that walls up each route: the middle of its corridor
BLOCK_CELLS = {"left": (3, 1), "right": (3, 5)}
MAX_EPISODE_STEPS = 400
# Above the block: the goal row, reached only through a corridor
GOAL_ROW_Y = 1.5
# Half way into the cells beside the start's: the point has chosen a side
SIDE_X = 1.0
# PointMaze's success radius (its info["success"])
GOAL_RADIUS = 0.45
# Phase 2 starts from the checkpoint with this offset on the seed, whether or not the process was interrupted
PHASE2_SEED_OFFSET = 1_000_000


def blocked_maze(route: "str | None") -> list[list]:
    """``MAZE`` with a wall at ``route``'s block cell (the open maze for None)."""
    maze = [list(row) for row in MAZE]
    if route is not None:
        row, column = BLOCK_CELLS[route]
        maze[row][column] = 1
    return maze


def route_lengths(maze: "list[list] | None" = None) -> dict:
    """Moves on each route from the start cell to the goal cell (breadth-first search over free cells with the other
    route's corridor walled up; None if the route is closed)."""
    maze = maze or MAZE
    cells = {(i, j): value for i, row in enumerate(maze) for j, value in enumerate(row)}
    start = next(cell for cell, value in cells.items() if value == R)
    goal = next(cell for cell, value in cells.items() if value == G)
    lengths = {}
    for route in ROUTES:
        closed = {BLOCK_CELLS[other] for other in ROUTES if other != route}
        distance, queue = {start: 0}, deque([start])
        while queue:
            i, j = queue.popleft()
            for cell in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)):
                if cells.get(cell, 1) != 1 and cell not in closed and cell not in distance:
                    distance[cell] = distance[(i, j)] + 1
                    queue.append(cell)
        lengths[route] = distance.get(goal)
    return lengths


# The docstring's claim, checked whenever the study runs
assert route_lengths() == {"left": 8, "right": 8}, route_lengths()
assert route_lengths(blocked_maze("left")) == {"left": None, "right": 8}


class RouteTracker(gym.Wrapper):
    """Adds to each step's ``info`` the episode's ``route`` (the side of x = 0 where the point first entered the goal
    row), ``side`` (the side of x = 0 when |x| first exceeded ``SIDE_X``) and ``is_success`` (within the goal radius
    at some step so far): the keys ``common.side_by_side``'s callers read from the last ``info``."""

    def reset(self, **kwargs):
        observation, info = self.env.reset(**kwargs)
        self._route, self._side, self._success = None, None, bool(info.get("success", False))
        self._note(observation["achieved_goal"])
        return observation, self._info(info)

    def step(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        self._success = self._success or bool(info["success"])
        self._note(observation["achieved_goal"])
        return observation, reward, terminated, truncated, self._info(info)

    def _note(self, position) -> None:
        x, y = float(position[0]), float(position[1])
        if self._side is None and abs(x) > SIDE_X:
            self._side = "left" if x < 0 else "right"
        if self._route is None and y > GOAL_ROW_Y:
            self._route = "left" if x < 0 else "right"

    def _info(self, info: dict) -> dict:
        return {**info, "route": self._route, "side": self._side, "is_success": self._success}


POSITION_FEATURES = [0, 1]
"""The point's position in the flattened observation (achieved_goal, desired_goal, observation: sorted Dict keys)"""


def make_env(route: "str | None" = None) -> gym.Env:
    """The maze with ``route`` walled up (open for None), flattened, with the route tracker."""
    import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)
    env = gym.make(ENV_ID, maze_map=blocked_maze(route), max_episode_steps=MAX_EPISODE_STEPS)
    return gym.wrappers.FlattenObservation(RouteTracker(env))


def position_index(env: gym.Env) -> list[int]:
    """Where x and y of the point (``achieved_goal``) are in the flattened observation (the Dict's key order)."""
    space = env.unwrapped.observation_space
    start = 0
    for key, subspace in space.spaces.items():
        if key == "achieved_goal":
            return [start, start + 1]
        start += int(np.prod(subspace.shape))
    raise KeyError("achieved_goal")


def flat_state(env: gym.Env, position: tuple) -> np.ndarray:
    """A flattened observation at rest at ``position`` with the goal at the goal cell's centre."""
    space = env.unwrapped.observation_space
    goal = np.array([0.0, 2.0])
    point = np.array(position, dtype=float)
    state = {"achieved_goal": point, "desired_goal": goal, "observation": np.concatenate([point, [0.0, 0.0]])}
    return gym.spaces.flatten(space, state).astype(np.float32)


# States at which learned mixing weights are recorded: the start, each corridor's middle, below the goal
WEIGHT_STATES = {"start": (0.0, -2.0), "left_corridor": (-2.0, 0.0), "right_corridor": (2.0, 0.0), "goal": (0.0, 2.0)}
# The names the result files and the report give the algorithms
LABELS = {name: ALGORITHM_LABELS.get(name, name) for name in ALGORITHMS}
# The settings in a result file's config that differ between the algorithms (their entries' keys)
PER_ALGORITHM = ("algorithm", *dict.fromkeys(key for _, extra in ALGORITHMS.values() for key in extra))


@dataclass(frozen=True)
class Settings:
    """The study's settings as one value (``settings_from`` builds it from the command line), with the names
    ``route_change_report``'s ``recovery``, ``run_row`` and ``summary_entry`` read (``recovery_level``,
    ``eval_episodes``, ``min_share``, ``converged_success``, ``labels``, ``algos``, ``folder``)."""

    out: Path = RESULTS
    phase1_steps: int = 50_000
    phase2_steps: int = 30_000
    phase1_eval_every: int = 2_500
    eval_every: int = 2_000
    learning_starts: int = 1_000
    gamma: float = 0.99
    eval_episodes: int = 20
    component_episodes: int = 20
    path_episodes: int = 20
    component_paths: int = 5
    random_episodes: int = 100
    recovery_level: float = 0.9
    min_share: float = 0.05  # a route "is used" if at least this share of the episodes goes through it
    converged_success: float = 0.9  # a run "had learned the task" at the block if this share of its episodes succeeded
    algos: dict = field(default_factory=lambda: ALGORITHMS)
    labels: dict = field(default_factory=lambda: LABELS)

    @property
    def study(self) -> str:
        return STUDY

    @property
    def folder(self) -> Path:
        return self.out / STUDY

    @property
    def checkpoints(self) -> Path:
        return self.folder / "checkpoints"

    @property
    def config(self) -> dict:
        """The budget and training settings as a result file records them (``common.phase_config``)."""
        return phase_config(self)


QUICK = {
    "phase1_steps": 400,
    "phase2_steps": 300,
    "phase1_eval_every": 200,
    "eval_every": 150,
    "learning_starts": 100,
    "eval_episodes": 4,
    "component_episodes": 2,
    "path_episodes": 2,
    "component_paths": 1,
    "random_episodes": 3,
}

ENV_KWARGS = {
    "maze_map": MAZE,
    "max_episode_steps": MAX_EPISODE_STEPS,
    "block_cells": BLOCK_CELLS,
    "route_lengths": route_lengths(),
    # PointMaze's defaults, written down because the study depends on them
    "continuing_task": True,
    "reset_target": False,
    "position_noise_range": 0.25,
    "reward_type": "dense",
}


# Evaluation -------------------------------------------------------------------------------------------------------

# Evaluation envs by blocked route: built once (each build writes a MuJoCo XML file) and reset with the same seeds
_EVAL_ENVS: dict = {}


def eval_envs(route: "str | None", n_episodes: int) -> list:
    envs = _EVAL_ENVS.setdefault(route, [])
    while len(envs) < n_episodes:
        envs.append(make_env(route))
    return envs[:n_episodes]


def rollouts(model, n_episodes: int, seed: int, route: "str | None", keep_paths: int = 0, deterministic: bool = False) -> dict:
    """``n_episodes`` episodes side by side on the maze with ``route`` walled up: returns, successes, routes, sides
    and the x-y paths of the first ``keep_paths``."""
    envs = eval_envs(route, n_episodes)
    returns, infos, paths = side_by_side(model, envs, seed, deterministic=deterministic, keep_paths=keep_paths)
    routes, sides = [info["route"] for info in infos], [info["side"] for info in infos]
    xy = position_index(envs[0])
    result = {
        "returns": returns.round(3).tolist(),
        "mean_return": float(returns.mean()),
        "success_rate": float(np.mean([info["is_success"] for info in infos])),
        "route_counts": {name: routes.count(name) for name in ROUTES},
        "side_counts": {name: sides.count(name) for name in ROUTES},
        "routes": routes,
    }
    if keep_paths:
        result["paths"] = [np.round(np.asarray(path)[:, xy], 3).tolist() for path in paths]
    return result


def weight_observations() -> dict:
    """``WEIGHT_STATES`` as flattened observations (at rest, the goal at the goal cell), by name."""
    env = eval_envs(None, 1)[0]
    return {name: flat_state(env, position) for name, position in WEIGHT_STATES.items()}


def evaluation_point(model, settings: Settings, phase: int, seed: int, route: "str | None", keep_paths: int = 0) -> dict:
    """A point of the run's curve (``common.curve_point``), with the episodes' returns and routes."""
    summary = rollouts(model, settings.eval_episodes, seed, route, keep_paths)
    return curve_point(model, phase, summary, weight_observations())


def stage_snapshot(model, settings: Settings, point: dict, seed: int, route: "str | None") -> dict:
    """What the policy does at the block or at the end (``common.snapshot``): ``route_change.py``'s
    ``before_block``/``after_block``, with each component's routes per episode as well."""
    evaluate = partial(rollouts, model, seed=seed, route=route)
    return snapshot(model, point, evaluate, settings, weight_observations(), (*ROUTE_SUMMARY, "routes", "paths"))


# Runs ---------------------------------------------------------------------------------------------------------------


def checkpoint_paths(settings: Settings, name: str) -> dict:
    folder = settings.checkpoints
    return {"model": folder / f"{name}.zip", "buffer": folder / f"{name}_buffer.pkl", "run": folder / f"{name}_phase1.json"}


def maze_algorithm(algorithm: tuple[str, dict]) -> tuple[str, dict]:
    """An ``ALGORITHMS`` entry as this study runs it: the novelty charge (docs/algorithm.md section 13) measures
    distances between positions, the flattened observation's first two entries (the achieved goal); the desired
    goal's per-episode noise and the velocities would only add noise to them."""
    name, kwargs = algorithm
    if kwargs.get("diversity_mechanism") == "novelty":
        return name, {**kwargs, "diversity_features": POSITION_FEATURES}
    return algorithm


def first_phase(algo: str, seed: int, settings: Settings) -> None:
    """Phase 1 on the open maze, then the checkpoint (model, replay buffer, the run so far)."""
    start, cpu_start = time.time(), time.process_time()
    model = make_model(
        maze_algorithm(settings.algos[algo]),
        make_env(None),
        seed,
        learning_starts=settings.learning_starts,
        gamma=settings.gamma,
    )
    eval_seed = 100_000 + 1000 * seed
    # Read right after the package's import (make_model): the sources phase 1 runs
    run = {"code": code_version(), "eval_seed": eval_seed, "curve": []}
    while model.num_timesteps < settings.phase1_steps:
        model.learn(min(settings.phase1_eval_every, settings.phase1_steps - model.num_timesteps), reset_num_timesteps=False)
        last = model.num_timesteps >= settings.phase1_steps
        point = evaluation_point(model, settings, 1, eval_seed, None, settings.path_episodes if last else 0)
        run["curve"].append(point)
        print(f"{algo}_s{seed} step {point['step']}: {progress(point)}", flush=True)
    run["before_block"] = stage_snapshot(model, settings, run["curve"][-1], eval_seed, None)
    run["blocked_route"] = main_route(run["curve"][-1])
    run["phase1_wall_s"], run["phase1_cpu_s"] = time.time() - start, time.process_time() - cpu_start
    paths = checkpoint_paths(settings, f"{algo}_s{seed}")
    settings.checkpoints.mkdir(parents=True, exist_ok=True)
    model.save(paths["model"])
    model.save_replay_buffer(paths["buffer"])
    # The record last: its presence marks the checkpoint as whole
    write_json(paths["run"], run)


def progress(point: dict) -> str:
    routes = point["route_counts"]
    # The process's CPU clock: the cost of an evaluation interval, read off the log
    return (
        f"return {point['mean_return']:.1f}, success {point['success_rate']:.2f}, "
        f"routes {routes['left']}L/{routes['right']}R, process CPU {time.process_time():.0f} s"
    )


def load_checkpoint(algo: str, seed: int, settings: Settings, env, replay_buffer: bool = True) -> tuple:
    """The model at the block on ``env`` with its replay buffer (unless ``replay_buffer`` is False: to evaluate it
    only), and phase 1's record."""
    paths = checkpoint_paths(settings, f"{algo}_s{seed}")
    model = algorithm_class(settings.algos[algo][0]).load(paths["model"], env=env, device="cpu")
    if replay_buffer:
        model.load_replay_buffer(paths["buffer"])
    # The same draws after the block whether phase 1 ran in this process or an earlier one
    model.set_random_seed(seed + PHASE2_SEED_OFFSET)
    return model, json.loads(paths["run"].read_text())


def second_phase(algo: str, seed: int, settings: Settings, resumed: bool) -> dict:
    """Phase 2 from the checkpoint on the maze with the used route walled up, and the run's result."""
    start, cpu_start = time.time(), time.process_time()
    run = json.loads(checkpoint_paths(settings, f"{algo}_s{seed}")["run"].read_text())
    blocked, eval_seed, curve = run["blocked_route"], run["eval_seed"], run["curve"]
    model, _ = load_checkpoint(algo, seed, settings, make_env(blocked))
    curve.append(evaluation_point(model, settings, 2, eval_seed, blocked))
    end = settings.phase1_steps + settings.phase2_steps
    while model.num_timesteps < end:
        model.learn(min(settings.eval_every, end - model.num_timesteps), reset_num_timesteps=False)
        last = model.num_timesteps >= end
        point = evaluation_point(model, settings, 2, eval_seed, blocked, settings.path_episodes if last else 0)
        curve.append(point)
        print(f"{algo}_s{seed} step {point['step']} ({blocked} blocked): {progress(point)}", flush=True)
    after_block = stage_snapshot(model, settings, curve[-1], eval_seed, blocked)
    times = finished(start, cpu_start)
    phase2_code = code_version()
    random_env = make_env(blocked)
    low = random_return(random_env, settings.random_episodes)
    random_env.close()
    result = {
        "env": ENV_ID,
        "algo": algo,
        "label": settings.labels[algo],
        "seed": seed,
        "config": {
            **SMALL_TASK_SETTINGS,
            **settings.config,
            **maze_algorithm(settings.algos[algo])[1],
            "algorithm": settings.algos[algo][0],
        },
        "env_kwargs": ENV_KWARGS,
        "mixture_weight_floor": getattr(model, "mixture_weight_floor", None),
        "blocked_route": blocked,
        "random_return": low,
        "before_block": run["before_block"],
        "after_block": after_block,
        "curve": curve,
        "code": run["code"],
        **times,
        # Both phases' times; a resumed run's phase 1 ran in an earlier process
        "wall_s": round(run["phase1_wall_s"] + times["wall_s"], 1),
        "cpu_s": round(run["phase1_cpu_s"] + times["cpu_s"], 1),
        "phase1_cpu_s": round(run["phase1_cpu_s"], 1),
        "resumed": resumed,
    }
    if phase2_code != run["code"]:
        result["code_phase2"] = phase2_code
    result["recovery"] = recovery(result, settings)
    return result


def summary(result: dict) -> str:
    before, rec = result["before_block"], result["recovery"]
    routes = before["route_counts"]
    return (
        f"before {before['return']:.1f} routes {routes['left']}L/{routes['right']}R, blocked {result['blocked_route']}, "
        f"score after block {rec['score_after_block']:.2f}, recovered {rec['recovered']} after "
        f"{rec['steps_to_recover']} steps, final score {rec['final_score']:.2f}"
    )


def execute(algo: str, seed: int, settings: Settings, force: bool) -> dict:
    """One run's result: phase 1 only if its checkpoint is missing (or ``force``), then phase 2 from the checkpoint."""
    resumed = checkpoint_paths(settings, f"{algo}_s{seed}")["run"].exists() and not force
    if resumed:
        print(f"{algo}_s{seed}: phase 1 from its checkpoint", flush=True)
    else:
        first_phase(algo, seed, settings)
    return second_phase(algo, seed, settings, resumed)


def run(settings: Settings, algos: list[str], seeds: list[int], force: bool) -> None:
    """Every run without a result file (all with ``force``), seed-major, one at a time (``common.run_each``)."""
    import torch as th

    # One core per study: the other is someone else's
    th.set_num_threads(1)
    runs = {f"{algo}_s{seed}": partial(execute, algo, seed, settings, force) for seed in seeds for algo in algos}
    run_each(settings.folder, runs, force, summary)


# Report -------------------------------------------------------------------------------------------------------------


def maze_row(result: dict, settings: Settings) -> dict:
    """A run's row (``common.per_run_rows``): ``route_change_report.run_row``'s columns, and whether it resumed."""
    return {**run_row(result, settings), "resumed": bool(result.get("resumed"))}


def maze_entry(selection: dict, group: list[dict], settings: Settings) -> dict:
    """An algorithm's summary entry (``common.aggregate``): ``route_change_report.summary_entry``'s, and the final
    return's IQM."""
    return {**summary_entry(selection, group, settings), "final_return": iqm_summary([row["final_return"] for row in group])}


def summarised(stats: "dict | None", digits: int) -> str:
    """IQM [95% CI] over seeds (``common.interval``), the value alone for one seed, - if not recorded."""
    if stats is None:
        return "-"
    return f"{stats['per_seed'][0]:.{digits}f}" if len(stats["per_seed"]) < 2 else interval(stats, digits)


def markdown(table: list[dict], rows: list[dict], runs: list[dict], meta: dict, settings: Settings) -> str:
    config = runs[0]["config"]
    lines = [
        "# Maze routes: recovery after the route in use gets walled up (PointMaze)",
        "",
        f"{generated_by(meta, len(runs), STUDY)} Task: `{ENV_ID}` with the maze and protocol of "
        f"`benchmarks/maze_routes.py` ({config['phase1_steps']} steps, block, {config['phase2_steps']} steps; "
        f"{settings.eval_episodes} stochastic episodes per evaluation). Recovery: steps after the block until the score "
        f"(return - random) / (pre-block - random) first reaches {settings.recovery_level}, censored at "
        f"{config['phase2_steps']}; 'common level': the same against the median pre-block return of all runs.",
        "",
        "| algorithm | seeds | pre-block return (stochastic) | deterministic | seeds using both routes "
        "| steps to recover | median | recovered | steps to the common level | final return |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in table:
        steps = entry["steps_to_recover"]
        lines.append(
            f"| {entry['label']} | {entry['seeds']} | {summarised(entry['pre_block_return'], 1)} "
            f"| {summarised(entry.get('deterministic_pre_block_return'), 1)} "
            f"| {entry['seeds_with_both_routes']}/{entry['seeds']} | {summarised(steps, 0)} "
            f"| {np.median(steps['per_seed']):.0f} | {entry['recovered']}/{entry['seeds']} "
            f"| {summarised(entry['steps_to_recover_common'], 0)} | {summarised(entry['final_return'], 1)} |"
        )
    lines += [
        "",
        "IQM [95% stratified-bootstrap CI] over seeds (rliable). Routes: episodes that entered the goal row from the "
        f"left / right corridor, of {settings.eval_episodes}; a seed uses both routes if each has at least "
        f"{settings.min_share:.0%} of them.",
        "",
        "| algorithm | seed | pre-block return | success | routes before | deterministic | blocked | score after block "
        "| steps to recover | final return | success | routes at the end | CPU min | resumed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        recovered = f"{row['steps_to_recover']}" if row["recovered"] else f">{row['steps_to_recover']}"
        lines.append(
            f"| {row['label']} | {row['seed']} | {row['pre_block_return']:.1f} | {row['pre_block_success']:.2f} "
            f"| {row['pre_block_routes']} | {row['deterministic_pre_block_return']:.1f} | {row['blocked_route']} "
            f"| {row['score_after_block']:.2f} | {recovered} | {row['final_return']:.1f} | {row['final_success']:.2f} "
            f"| {row['final_routes']} | {row['cpu_s'] / 60:.1f} | {'yes' if row['resumed'] else 'no'} |"
        )
    lines += ["", f"![Returns around the block and trajectories]({STUDY}.png)", ""]
    return "\n".join(lines)


def draw_maze(axis, route: "str | None") -> None:
    maze = blocked_maze(route)
    rows, columns = len(maze), len(maze[0])
    for i, row in enumerate(maze):
        for j, value in enumerate(row):
            if value == 1:
                x, y = j - columns / 2, rows / 2 - i - 1
                axis.add_patch(pyplot().Rectangle((x, y), 1, 1, color="0.6"))
    axis.plot([0], [-2], "ks", markersize=4)
    axis.plot([0], [2], "r*", markersize=8)
    axis.set_xlim(-columns / 2, columns / 2)
    axis.set_ylim(-rows / 2, rows / 2)
    axis.set_aspect("equal")
    axis.set_xticks([])
    axis.set_yticks([])


def plot(runs: list[dict], settings: Settings) -> None:
    """Per algorithm: each seed's return around the block, and its trajectories before the block and at the end."""
    plt = pyplot()
    algos = list(dict.fromkeys(result["algo"] for result in runs))
    figure, axes = plt.subplots(len(algos), 3, figsize=(13, 4 * len(algos)), squeeze=False)
    colors = plt.get_cmap("tab10")
    for row, algo in enumerate(algos):
        group = [result for result in runs if result["algo"] == algo]
        curves, before, after = axes[row]
        for index, result in enumerate(group):
            steps = [point["step"] for point in result["curve"]]
            returns = [point["mean_return"] for point in result["curve"]]
            curves.plot(steps, returns, color=colors(index), label=f"seed {result['seed']} ({result['blocked_route']})")
            for path_xy in result["before_block"]["paths"]:
                xy = np.asarray(path_xy)
                before.plot(xy[:, 0], xy[:, 1], color=colors(index), alpha=0.4, linewidth=0.8)
            for path_xy in result["after_block"]["paths"]:
                xy = np.asarray(path_xy)
                after.plot(xy[:, 0], xy[:, 1], color=colors(index), alpha=0.4, linewidth=0.8)
        curves.axvline(group[0]["config"]["phase1_steps"], color="k", linestyle=":")
        curves.xaxis.set_major_formatter(lambda value, _: f"{value / 1000:.0f}k")
        curves.set_xlabel("steps")
        curves.set_ylabel("mean return (stochastic)")
        curves.set_title(f"{settings.labels[algo]}: returns (block at the dotted line)")
        curves.legend(fontsize=7, title="seed (blocked route)", title_fontsize=7)
        draw_maze(before, None)
        before.set_title("before the block")
        # Seeds may have walled up different routes: draw the one of the first seed, name the others
        draw_maze(after, group[0]["blocked_route"])
        blocked = ", ".join(f"s{r['seed']}: {r['blocked_route']}" for r in group)
        after.set_title(f"at the end (blocked {blocked})", fontsize=8)
    figure.tight_layout()
    figure.savefig(settings.out / f"{STUDY}.png", dpi=110)
    plt.close(figure)


def plot_components(runs: list[dict], settings: Settings) -> list[str]:
    """Per mixture algorithm, ``maze_routes_<algo>_components.png``: for each seed, the trajectories of each component
    alone (the snapshot's first ``component_paths`` of its stochastic episodes; one colour per component) before the
    block and at the end; the figures' file names."""
    plt = pyplot()
    colors = plt.get_cmap("tab10")
    names = []
    for algo in dict.fromkeys(result["algo"] for result in runs if result["before_block"].get("components")):
        group = [result for result in runs if result["algo"] == algo]
        figure, axes = plt.subplots(len(group), 2, figsize=(7, 3.4 * len(group)), squeeze=False)
        for (before, after), result in zip(axes, group, strict=True):
            for axis, stage, route in ((before, "before_block", None), (after, "after_block", result["blocked_route"])):
                draw_maze(axis, route)
                for component, record in enumerate(result[stage]["components"]):
                    for number, path_xy in enumerate(record.get("paths", [])):
                        xy = np.asarray(path_xy)
                        label = None if number else f"{component}: {record['mean_return']:.0f}, {record['success_rate']:.0%}"
                        axis.plot(xy[:, 0], xy[:, 1], color=colors(component), alpha=0.6, linewidth=0.8, label=label)
                axis.legend(fontsize=6, loc="center", title="component: return, success", title_fontsize=6)
            before.set_title(f"seed {result['seed']}: before the block", fontsize=8)
            after.set_title(f"seed {result['seed']}: at the end ({result['blocked_route']} blocked)", fontsize=8)
        figure.suptitle(f"{settings.labels[algo]}: each component alone (stochastic)", fontsize=9)
        figure.tight_layout(rect=(0, 0, 1, 0.98))
        name = f"{STUDY}_{algo}_components.png"
        figure.savefig(settings.out / name, dpi=100)
        plt.close(figure)
        names.append(name)
    return names


def report(settings: Settings) -> None:
    """``maze_routes.md``, ``.json``, ``.csv`` and ``.png`` in ``settings.out``, from whatever result files exist (their
    recovery recomputed: ``route_change_report.load_recovery_runs``)."""
    runs = load_recovery_runs(settings)
    rows = per_run_rows(runs, partial(maze_row, settings=settings))
    table = aggregate(rows, ({"algo": algo} for algo in settings.algos), partial(maze_entry, settings=settings))
    meta = report_meta(runs, settings_used(runs, PER_ALGORITHM))
    plot(runs, settings)
    figures = plot_components(runs, settings)
    text = markdown(table, rows, runs, meta, settings)
    text += "".join(f"\n![Each component's trajectories]({name})\n" for name in figures)
    write_report(settings.out / STUDY, rows, table, meta, text)


def settings_from(args: argparse.Namespace) -> Settings:
    return replace(Settings(out=args.out), **phase_changes(args, QUICK))


def main() -> None:
    parser = study_parser(__doc__, STUDY, ALGORITHMS, [0, 1, 2, 3, 4], default_algos=["sac"])
    add_phase_options(parser, Settings)
    args = parser.parse_args()
    if args.quick and args.out == RESULTS:
        parser.error("--quick writes throw-away results: give --out")
    run_or_report(args, settings_from(args), run, report)


if __name__ == "__main__":
    main()
