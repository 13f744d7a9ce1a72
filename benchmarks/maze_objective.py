"""
The objective both algorithms maximise, on the PointMaze route study's policies at the block: return plus alpha times
entropy at one fixed alpha, beside the return alone (a mixture can win one and lose the other).

SAC and SACM maximise, at a temperature alpha, the return plus alpha times the policy's entropy along the way. This
study loads the models ``maze_routes.py`` checkpointed at the block (after 50k steps on the open maze; the
checkpoints are not committed, so it runs where that study ran) and plays ``EPISODES`` stochastic episodes of each on
the open maze. Per episode it sums the env's reward (R) and ``-log pi(a_t | s_t)`` of every action taken (H, a Monte
Carlo estimate of the summed entropy, in nats, of the squashed actions in [-1, 1]^2, the units SAC's temperature
multiplies). The log-densities come from ``torch.distributions`` (a Normal through a tanh transform), from the
policies' means and standard deviations, not from the package's mixture code.

- SAC: the Gaussian's own density.
- The novelty recipe is an episodic mixture: one component, drawn by the policy at the episode's start
  (``model.predict`` with ``episode_start``, as a user runs it), acts for the whole episode, so H is the acting
  component's ``-log pi_i``. The trajectory entropy of such a policy is that plus at most log N per episode (which
  component acted): 1.4 nats, against sums over 400 steps.

J(alpha) = R + alpha H is linear in alpha, so the report gives R and H and J at one fixed alpha: the median of the
temperatures SAC's five runs had learnt at the block (``ALPHA_FROM``). Undiscounted, like the study's returns.

    nice -n 5 python benchmarks/maze_objective.py run        # both algorithms, seeds 0-4 (about a minute each)
    python benchmarks/maze_objective.py report
"""

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch as th
from common import (
    RESULTS,
    aggregate,
    code_version,
    generated_by,
    interval,
    iqm_summary,
    load_runs,
    provenance,
    pyplot,
    report_meta,
    run_each,
    study_parser,
    write_report,
)
from maze_routes import MAX_EPISODE_STEPS, load_checkpoint, make_env
from maze_routes import Settings as MazeSettings

STUDY = "maze_objective"
ALGOS = {"sac": "SAC", "sacm_novelty_n4": "SACM novelty recipe N=4"}
EPISODES = 20
EVAL_SEED = 500_000
ALPHA_FROM = "sac"


@dataclass(frozen=True)
class Settings:
    out: Path = RESULTS

    @property
    def folder(self) -> Path:
        return self.out / STUDY


def squashed_gaussian(means: th.Tensor, log_stds: th.Tensor) -> th.distributions.Distribution:
    """tanh(u), u ~ N(means, exp(log_stds)) with independent entries: the density of a squashed action in [-1, 1]^D."""
    normal = th.distributions.Normal(means.double(), log_stds.double().exp())
    squashed = th.distributions.TransformedDistribution(normal, [th.distributions.TanhTransform(cache_size=1)])
    return th.distributions.Independent(squashed, 1)


def episode(model, env, seed: int) -> dict:
    """One stochastic episode: its return and the summed ``-log`` densities of its actions (see the docstring)."""
    policy = model.policy
    mixture = hasattr(policy, "component_choice")
    observation, _ = env.reset(seed=seed)
    total_return, entropy, steps, done, start = 0.0, 0.0, 0, False, True
    first_component = None
    while not done:
        obs_tensor, _ = policy.obs_to_tensor(observation)
        with th.no_grad():
            if mixture:
                # Advances the policy's own schedule (the episode's component), whose action is not used
                policy.predict(observation[None], episode_start=np.array([start]), deterministic=False)
                component = int(policy.acting_components[0])
                params = policy.actor.mixture_params(obs_tensor)
                acting = squashed_gaussian(params.means[0, component], params.log_stds[0, component])
                first_component = component if first_component is None else first_component
            else:
                means, log_stds, _ = policy.actor.get_action_dist_params(obs_tensor)
                acting = squashed_gaussian(means[0], log_stds[0])
            action = acting.sample()
            log_density = acting.log_prob(action)
        entropy -= float(log_density)
        # Not on the boundary, where the env's unscaled action would be clipped
        action = action.clamp(-1 + 1e-7, 1 - 1e-7).float().numpy()
        observation, reward, terminated, truncated, _ = env.step(policy.unscale_action(action))
        total_return += float(reward)
        steps += 1
        done, start = terminated or truncated, False
    result = {"return": total_return, "entropy": entropy, "steps": steps}
    if mixture:
        result["component"] = first_component
    return result


def evaluate(algo: str, seed: int) -> dict:
    """``EPISODES`` episodes of the model ``maze_routes.py`` checkpointed at the block (its seed), on the open maze."""
    start, cpu_start = time.time(), time.process_time()
    env = make_env(None)
    model, phase1 = load_checkpoint(algo, seed, MazeSettings(), env, replay_buffer=False)
    # After loading, which reseeds every generator with the study's phase-2 seed
    model.set_random_seed(EVAL_SEED + seed)
    episodes = [episode(model, env, EVAL_SEED + 1000 * seed + k) for k in range(EPISODES)]
    alphas = th.exp(model.log_ent_coef.detach()).flatten().tolist()
    return {
        "algo": algo,
        "seed": seed,
        "code": code_version(),
        "checkpoint_code": phase1["code"],
        "learnt_alphas": alphas,
        "episodes": episodes,
        **provenance(),
        "wall_s": round(time.time() - start, 1),
        "cpu_s": round(time.process_time() - cpu_start, 1),
    }


def episode_means(result: dict) -> dict:
    """A run's return and summed entropy, each the mean over its episodes."""
    return {key: float(np.mean([e[key] for e in result["episodes"]])) for key in ("return", "entropy")}


def run(settings: Settings, algos: list[str], seeds: list[int], force: bool) -> None:
    def summary(result: dict) -> str:
        mean = episode_means(result)
        return f"return {mean['return']:.1f}, entropy {mean['entropy']:.1f}"

    runs = {f"{algo}_s{seed}": partial(evaluate, algo, seed) for seed in seeds for algo in algos}
    run_each(settings.folder, runs, force, summary)


def fixed_alpha(runs: list[dict]) -> float:
    """The median of the temperatures ``ALPHA_FROM``'s runs had learnt at the block."""
    return float(np.median([run["learnt_alphas"][0] for run in runs if run["algo"] == ALPHA_FROM]))


def run_row(result: dict, alpha: float) -> dict:
    mean = episode_means(result)
    return {
        "algo": result["algo"],
        "seed": result["seed"],
        "return": mean["return"],
        "entropy": mean["entropy"],
        "objective": mean["return"] + alpha * mean["entropy"],
        "learnt_alpha_mean": float(np.mean(result["learnt_alphas"])),
    }


def report(settings: Settings) -> None:
    runs = load_runs(settings.folder)
    alpha = fixed_alpha(runs)
    rows = [run_row(result, alpha) for result in runs]

    def entry(group: dict, members: list[dict]) -> dict:
        summaries = {key: iqm_summary([row[key] for row in members]) for key in ("return", "entropy", "objective")}
        return {**group, "seeds": len(members), **summaries}

    table = aggregate(rows, ({"algo": algo} for algo in ALGOS), entry)
    meta = {**report_meta(runs, {"episodes": EPISODES}), "alpha": alpha}
    lines = [
        "# The objective both maximise, PointMaze policies at the block",
        "",
        generated_by(meta, len(runs), f"benchmarks/results/{STUDY}"),
        "",
        f"Per run: the mean over {EPISODES} stochastic episodes ({MAX_EPISODE_STEPS} steps) on the open maze of the policy "
        f"`maze_routes.py` checkpointed at the block. Alpha fixed at {alpha:.4g}, the median of the temperatures "
        f"SAC's runs had learnt there. IQM over seeds [95% bootstrap CI].",
        "",
        "| algorithm | seeds | return R | entropy H (summed, nats) | J = R + alpha H |",
        "|---|---|---|---|---|",
    ]
    for entry in table:
        lines.append(
            f"| {ALGOS[entry['algo']]} | {entry['seeds']} | {interval(entry['return'], 1)} | "
            f"{interval(entry['entropy'], 1)} | {interval(entry['objective'], 1)} |"
        )
    lines += ["", "| algorithm | seed | R | H | J | its learnt alpha (mean over its temperatures) |"]
    lines.append("|---|---|---|---|---|---|")
    for row in rows:
        lines.append(
            f"| {ALGOS[row['algo']]} | {row['seed']} | {row['return']:.1f} | {row['entropy']:.1f} | "
            f"{row['objective']:.1f} | {row['learnt_alpha_mean']:.4g} |"
        )
    stem = settings.out / STUDY
    write_report(stem, rows, table, meta, "\n".join(lines) + "\n")
    plot(table, alpha, stem.with_suffix(".png"))


def plot(table: list[dict], alpha: float, path: Path) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for axis, key, title in zip(
        axes, ("return", "entropy", "objective"), ("return R", "entropy H (summed)", f"J = R + {alpha:.3g} H"), strict=True
    ):
        for position, entry in enumerate(table):
            stats = entry[key]
            low, high = stats["ci"]
            axis.bar(position, stats["iqm"], color=f"C{position}", alpha=0.6)
            axis.errorbar(position, stats["iqm"], yerr=[[stats["iqm"] - low], [high - stats["iqm"]]], color="k")
            axis.scatter([position] * len(stats["per_seed"]), stats["per_seed"], color="k", s=8, zorder=3)
        axis.set_xticks(range(len(table)), [ALGOS[entry["algo"]].split(" N=")[0] for entry in table], fontsize=8)
        axis.set_title(title, fontsize=9)
    figure.suptitle("PointMaze at the block: IQM over seeds, 95% CI, dots = seeds", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = study_parser(__doc__, STUDY, ALGOS, [0, 1, 2, 3, 4])
    args = parser.parse_args()
    settings = Settings(out=args.out)
    if args.command == "run":
        run(settings, args.algos, args.seeds, args.force)
    else:
        report(settings)


if __name__ == "__main__":
    main()
