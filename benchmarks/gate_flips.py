"""
Gate flips: why does a learned gate sometimes hand all the weight to a poorly trained component?

In the route-change benchmark (``route_change.py``), learned mixing weights often jump within a few hundred steps
from one component to another, and in some runs the new component is one that, alone, never reaches the goal: the
return collapses and stays down. This script reruns route-change runs (same algorithms, seeds and budget, through
``route_change.model_and_env``) and every ``--every`` steps records what the gate's gradient sees, on the replay
buffer's ``STATES`` most recent states:

- ``weights``: mean w_i(s);
- ``entropy_term``: mean alpha_i * log pi(a_i|s) with a_i ~ pi_i (the mixed-marginal term: log of the *mixture*
  density, so it contains log w_i(s)), ``q``: mean min_k Q_{k,i}(s, a_i) (component i's own head);
- ``loss``: mean of their difference L_i(s), and ``advantage``: mean of w_i(s) (L_i(s) - sum_j w_j(s) L_j(s)), which
  is, up to a zero-mean term, the actor loss's gradient with respect to the gate's logit i (docs/algorithm.md
  section 8); a negative advantage pushes weight towards component i;
- the gate's bias in Adam: its last gradient, the first-moment estimate m and the normalised step m / sqrt(v):
  Adam scales each parameter's step to about the learning rate whatever the gradient's size, so a logit whose
  gradient is tiny (its weight is near 0) still moves at full speed if the gradient keeps its sign;
- ``alone``: each component acting alone on the current task (``ALONE_EPISODES`` episodes): its mean return.

    nice -n 5 python benchmarks/gate_flips.py run --algos s2acm_learned_n4 --seeds 3
    python benchmarks/gate_flips.py report
"""

import argparse
import json
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

# The route-change benchmark's model, task and rollouts
import route_change
from common import (
    RESULTS,
    SMALL_TASK_SETTINGS,
    code_version,
    components,
    finished,
    load_runs,
    main_route,
    pyplot,
    run_each,
    run_or_report,
    study_parser,
)

STATES = 1000
ALONE_EPISODES = 10


@dataclass(frozen=True)
class Settings:
    """What the runs and the report of one command line use (``settings_from``)."""

    out: Path = RESULTS  # the run files go to <out>/gate_flips, the report to <out>
    every: int = 250  # env steps between diagnostics
    # The route-change runs this study reruns: their task, algorithms, labels and budget
    task: route_change.Settings = field(default_factory=route_change.Settings)

    @property
    def folder(self) -> Path:
        return self.out / "gate_flips"


def diagnose(model) -> dict:
    """The gate's view at the buffer's most recent states (see the module docstring)."""
    import torch as th

    from sb3_mixture.entropy import entropy_terms

    buffer = model.replay_buffer
    end = buffer.buffer_size if buffer.full else buffer.pos
    indices = (np.arange(end - STATES, end) if end >= STATES else np.arange(end)) % buffer.buffer_size
    observations = th.as_tensor(buffer.observations[indices, 0], device=model.device)
    with th.no_grad():
        params = model._mixture_params(observations)
        means, log_stds, log_weights = params.means, params.log_stds, params.log_weights
        samples = model.actor.training_samples(params, model.component_sampling)
        terms = entropy_terms(model.entropy_estimator, samples, log_weights, means, log_stds)
        q_values = model._q_values(model.critic, observations, samples.actions).min(dim=0).values  # (B, M, N)
        own_q = th.diagonal(q_values, dim1=1, dim2=2)  # component m's sample judged by head m
        alphas = model._temperatures()
        entropy_term = alphas * (-terms)
        loss = entropy_term - own_q
        weights = log_weights.exp()
        advantage = weights * (loss - (weights * loss).sum(dim=-1, keepdim=True))
    bias = model.actor.gate.bias
    state = model.actor.optimizer.state.get(bias, {})
    adam = {}
    if state:
        first, second = state["exp_avg"], state["exp_avg_sq"]
        adam = {"m": first.tolist(), "step": (first / (second.sqrt() + 1e-8)).tolist()}
    return {
        "weights": weights.mean(dim=0).tolist(),
        "entropy_term": entropy_term.mean(dim=0).tolist(),
        "q": own_q.mean(dim=0).tolist(),
        "loss": loss.mean(dim=0).tolist(),
        "advantage": advantage.mean(dim=0).tolist(),
        "alphas": alphas.tolist(),
        "gate_bias": bias.detach().tolist(),
        "gate_bias_grad": None if bias.grad is None else bias.grad.tolist(),
        "adam": adam,
    }


def alone_returns(model, task: route_change.Settings, seed: int, blocked_route: "str | None") -> list[float]:
    return components(model, lambda: route_change.rollouts(model, task, ALONE_EPISODES, seed, blocked_route)["mean_return"])


def execute(algo: str, seed: int, settings: Settings) -> dict:
    import torch as th

    th.set_num_threads(1)
    start, cpu_start = time.time(), time.process_time()
    task = settings.task
    model, env = route_change.model_and_env(algo, seed, task)
    eval_seed = 100_000 + 1000 * seed
    points = []
    blocked = None
    end = task.phase1_steps + task.phase2_steps
    while model.num_timesteps < end:
        if blocked is None and model.num_timesteps >= task.phase1_steps:
            # As route_change.py: block the route most episodes took, keep the buffer, reset the episode
            blocked = main_route(route_change.rollouts(model, task, task.eval_episodes, eval_seed, None))
            env.set_blocked_route(blocked)
            model._last_obs = None
        phase_end = task.phase1_steps if blocked is None else end
        model.learn(min(settings.every, phase_end - model.num_timesteps), reset_num_timesteps=False)
        point = {"step": int(model.num_timesteps), "blocked": blocked, **diagnose(model)}
        point["alone"] = alone_returns(model, task, eval_seed, blocked)
        points.append(point)
        weights, alone = np.round(point["weights"], 2), np.round(point["alone"], 1)
        print(f"{algo} s{seed} {point['step']}: w {weights} alone {alone}", flush=True)
    return {
        "algo": algo,
        "seed": seed,
        "config": {**SMALL_TASK_SETTINGS, **task.config, **task.algos[algo][1], "every": settings.every},
        "blocked_route": blocked,
        "points": points,
        "code": code_version(),
        **finished(start, cpu_start),
    }


def run(settings: Settings, algos: list[str], seeds: list[int], force: bool) -> None:
    runs = {f"{algo}_s{seed}": partial(execute, algo, seed, settings) for seed in seeds for algo in algos}
    run_each(settings.folder, runs, force, lambda result: f"blocked {result['blocked_route']}, {len(result['points'])} points")


def flips(points: list[dict]) -> list[dict]:
    """Every change of the component with the largest mean weight, with what the gate saw just before it."""
    events = []
    for before, after in zip(points, points[1:], strict=False):
        old, new = int(np.argmax(before["weights"])), int(np.argmax(after["weights"]))
        # Uniform weights (before the first update) have no leading component to flip from
        if old == new or np.ptp(before["weights"]) < 1e-3:
            continue
        events.append(
            {
                "step": after["step"],
                "from": old,
                "to": new,
                "weight_to_before": before["weights"][new],
                "weight_to_after": after["weights"][new],
                # The gate's view one point before the flip: did component `to` look better than `from`?
                "loss_gap_before": before["loss"][new] - before["loss"][old],
                "q_gap_before": before["q"][new] - before["q"][old],
                "entropy_gap_before": before["entropy_term"][new] - before["entropy_term"][old],
                "adam_step_to_before": before["adam"]["step"][new] if before["adam"] else None,
                "alone_from_before": before["alone"][old],
                "alone_to_before": before["alone"][new],
                "alone_to_after": after["alone"][new],
            }
        )
    return events


def report(settings: Settings) -> None:
    plt = pyplot()
    runs = load_runs(settings.folder)
    summary = {"runs": [], "machine": runs[0]["machine"], "command": "python benchmarks/gate_flips.py report"}
    rows = ["| run | step | from -> to | w_to before -> after | L_to - L_from | Q gap | entropy gap | "
            "Adam step (to) | alone: from, to before, to after |", "|" + "---|" * 9]  # fmt: skip
    fig, axes = plt.subplots(4, len(runs), figsize=(4.5 * len(runs), 11), squeeze=False, sharex=True)
    for column, result in enumerate(runs):
        points = result["points"]
        steps = [point["step"] for point in points]
        events = flips(points)
        summary["runs"].append({"algo": result["algo"], "seed": result["seed"], "flips": events})
        for event in events:
            adam_step = event["adam_step_to_before"]
            rows.append(
                f"| {result['algo']} s{result['seed']} | {event['step']} | {event['from']} -> {event['to']} | "
                f"{event['weight_to_before']:.3f} -> {event['weight_to_after']:.3f} | {event['loss_gap_before']:.2f} | "
                f"{event['q_gap_before']:.2f} | {event['entropy_gap_before']:.2f} | "
                f"{'—' if adam_step is None else round(adam_step, 2)} | "
                f"{event['alone_from_before']:.1f}, {event['alone_to_before']:.1f}, {event['alone_to_after']:.1f} |"
            )
        n = len(points[0]["weights"])
        panels = [("weights", "mean w_i(s)"), ("q", "Q_i(s, a_i), own head"), ("entropy_term", "alpha_i log pi(a_i|s)"),
                  ("alone", "return, component alone")]  # fmt: skip
        for row, (key, label) in enumerate(panels):
            axis = axes[row][column]
            for component in range(n):
                axis.plot(steps, [point[key][component] for point in points], label=f"component {component}")
            block = result["config"]["phase1_steps"]
            axis.axvline(block, color="grey", linestyle=":", linewidth=1)
            for event in events:
                axis.axvline(event["step"], color="red", alpha=0.3, linewidth=1)
            if column == 0:
                axis.set_ylabel(label)
            if row == 0:
                axis.set_title(f"{settings.task.labels[result['algo']]}, seed {result['seed']}", fontsize=9)
        axes[-1][column].set_xlabel("env steps (dotted: block; red: flips)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(settings.out / "gate_flips.png", dpi=110)
    (settings.out / "gate_flips.json").write_text(json.dumps(summary, indent=1))
    # Which component the gate chose first, and how fast: S2ACM's heads see partial sums of the entropy (head N the
    # whole), so its last head's Q is the largest by construction
    firsts = ["", "| run | first leading component | its weight | Q of its head minus the mean of the others |"]
    firsts.append("|---|---|---|---|")
    for result in runs:
        point = next(point for point in result["points"] if np.ptp(point["weights"]) >= 1e-3)
        lead = int(np.argmax(point["weights"]))
        others = [q for index, q in enumerate(point["q"]) if index != lead]
        firsts.append(f"| {result['algo']} s{result['seed']} | {lead} at step {point['step']} | "
                      f"{point['weights'][lead]:.3f} | {point['q'][lead] - np.mean(others):.2f} |")  # fmt: skip
    text = "\n".join(rows + firsts)
    (settings.out / "gate_flips.md").write_text(
        "# Gate flips on the route-change task\n\n"
        f"`{runs[0]['command']}` then `report`; {summary['machine']}; "
        f"{', '.join(sorted({result['date'][:10] for result in runs}))}; gaps are measured one "
        f"diagnostic point before the flip, on the buffer's {STATES} most recent states (negative L or entropy gap, "
        "positive Q gap: the new component looked better to the actor loss).\n\n" + text + "\n"
    )
    print(text)


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(out=args.out, every=args.every)


def main() -> None:
    parser = study_parser(__doc__, "gate_flips", route_change.ALGOS, [3], default_algos=["s2acm_learned_n4"])
    parser.add_argument("--every", type=int, default=Settings.every, help="env steps between diagnostics")
    args = parser.parse_args()
    run_or_report(args, settings_from(args), run, report)


if __name__ == "__main__":
    main()
