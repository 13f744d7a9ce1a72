"""
Estimator study (issue 4, section 1): bias, spread, cost and gradient variance of the mixture-entropy estimators.

Random mixtures of tanh-squashed diagonal Gaussians over a grid of N (components), D (action dimensions) and
the spread of the component means. For every estimator of ``sb3_mixture.entropy.ENTROPY_ESTIMATORS`` and the
paper's baseline, the *two-sample* estimate of H_D (its section 3.3, below), we measure per state:

- bias: mean over independent draws minus a high-sample Monte Carlo truth (``monte_carlo_entropy``), averaged
  over random mixtures; the truth is cross-checked against ``torch.distributions`` in float64;
- std: standard deviation of one draw (one reparameterised sample per component), RMS over mixtures;
- cost: wall time of one call on a batch of 256 states, forward and forward + backward, one torch thread;
- gradient variance: variance across draws of the gradient of the estimate (the actor's entropy term, docs/algorithm.md
  section 4, with equal temperatures) w.r.t. the component means and log-stds, mean over parameters; and the
  relative bias of the mean gradient against the gradient of the true entropy.

Mixtures. Per mixture a centre ``c ~ Normal(0, 0.5^2 I)`` and a base log-std ``log 0.3 + U(-0.3, 0.3)`` per dimension
(pre-squash). Component means are ``mu_i = c + sigma_base * s / sqrt(2 D) * g_i`` with ``g_i ~ Normal(0, I)``, so the
RMS Mahalanobis distance between two component means is ``s`` base stds whatever D. At ``s = 0`` the components are
identical; otherwise each component's log-std gets an extra ``U(-0.15, 0.15)`` per dimension. Weights are uniform.

The two-sample estimate (the paper's section 3.3, before it sets the second sample equal to the first). With
``a~_i`` and ``a^_i`` two independent samples of component i,

    H_2s = sum_i w_i [ -log pi_i(a~_i) - log sum_j w_j pi_j(a^_i) + log pi_i(a^_i) ]

(the paper's extracted text prints ``log pi_i(a~_i)`` in the last term, which would make the two samples
pointless; its preceding line has ``log pi_i(a^_i)``). Setting ``a^_i = a~_i`` gives the paper's eq. 8,
``mixed_marginal``. Both have the same expectation (linearity), ``-sum_i w_i E_{pi_i} log pi = H(pi)``.

    python benchmarks/estimator_study.py            # full study, ~10 CPU-minutes
    python benchmarks/estimator_study.py --quick    # a smoke test of the pipeline (seconds)
    python benchmarks/estimator_study.py --report   # tables and plots from the committed JSON

This file has the estimators, the study's settings (``Settings``: one value per command line, which the run, the
report and the plots receive), the measurements and the run; ``estimator_study_report.py`` the tables and CSV,
``estimator_study_plot.py`` the figures.
"""

import argparse
import json
import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch as th
from common import RESULTS, provenance
from estimator_study_report import report

from sb3_mixture.entropy import (
    ENTROPY_ESTIMATORS,
    draw_mixture_samples,
    entropy_terms,
    monte_carlo_entropy,
    weighted_entropy,
)
from sb3_mixture.mixture import mixture_log_prob

TWO_SAMPLE = "two_sample_hd"
ESTIMATORS = (*ENTROPY_ESTIMATORS, TWO_SAMPLE)
LABELS = {
    "mixed_marginal": "mixed marginal (paper, eq. 8)",
    "pairwise_kl": "pairwise KL (eq. 5)",
    "pairwise_bhattacharyya": "pairwise Bhattacharyya",
    "marginal": "marginal H(pi|W) (eq. 3)",
    TWO_SAMPLE: "two-sample H_D (paper's baseline)",
}
SHORT = {"mixed_marginal": "MM", "pairwise_kl": "KL", "pairwise_bhattacharyya": "Bhat", "marginal": "Marg", TWO_SAMPLE: "2S"}
BASE_STD = 0.3


@dataclass(frozen=True)
class Settings:
    """
    What the run, the report and the plots use, as one value: ``settings_from`` builds it from the command line (the
    defaults are the study's) and each function gets it as an argument. The fields up to ``seed`` are the run's
    parameters, which the result file records (``recorded``).
    """

    components: tuple[int, ...] = (1, 2, 3, 5, 8)
    dims: tuple[int, ...] = (1, 6, 17)
    spreads: tuple[float, ...] = (0.0, 1.0, 3.0, 10.0)
    mixtures: int = 64  # random mixtures per cell
    draws: int = 512  # independent draws per mixture
    truth_samples: int = 40_000  # Monte Carlo samples per mixture for the truth
    check_mixtures: int = 4  # mixtures per cell checked with torch.distributions
    grad_mixtures: int = 16
    grad_draws: int = 512
    grad_truth_draws: int = 4096
    batch: int = 256  # batch of states for the timing
    time_repeats: int = 50
    seed: int = 0
    out: Path = RESULTS
    estimators: tuple[str, ...] = ESTIMATORS
    two_sample: str = TWO_SAMPLE
    labels: dict = field(default_factory=lambda: LABELS)
    short: dict = field(default_factory=lambda: SHORT)

    def recorded(self) -> dict:
        """The run's parameters, as the result file records them (its ``settings``)."""
        names = [item.name for item in fields(self)]
        return {name: getattr(self, name) for name in names[: names.index("seed") + 1]}


# --quick: tiny settings, to check the pipeline
QUICK = {
    "mixtures": 4,
    "draws": 32,
    "truth_samples": 2000,
    "check_mixtures": 2,
    "grad_mixtures": 2,
    "grad_draws": 32,
    "grad_truth_draws": 64,
    "time_repeats": 3,
}


# Estimators -----------------------------------------------------------------------------------------------------


def two_sample_estimate(means: th.Tensor, log_stds: th.Tensor, mixture_weights: th.Tensor) -> th.Tensor:
    """The two-sample estimate of H_D with D = KL (module docstring), per state, (B,)."""
    log_weights = th.log(mixture_weights)
    first = draw_mixture_samples(means, log_stds, log_weights)
    second = draw_mixture_samples(means, log_stds, log_weights)
    terms = -first.own_log_prob - mixture_log_prob(second.cross, second.log_jacobian, log_weights) + second.own_log_prob
    return (first.sample_weights * terms).sum(dim=-1)


def estimate(name: str, means: th.Tensor, log_stds: th.Tensor, mixture_weights: th.Tensor) -> th.Tensor:
    """One draw of an estimator (one sample per component, two for the two-sample estimate), per state, (B,)."""
    if name == TWO_SAMPLE:
        return two_sample_estimate(means, log_stds, mixture_weights)
    log_weights = th.log(mixture_weights)
    samples = draw_mixture_samples(means, log_stds, log_weights)
    return weighted_entropy(samples, entropy_terms(name, samples, log_weights, means, log_stds))


# Mixtures and the truth -------------------------------------------------------------------------------------------


def random_mixtures(n_mixtures: int, n_components: int, dim: int, spread: float, generator: th.Generator):
    """Pre-squash means and log-stds, (K, N, D) each (module docstring)."""
    centre = 0.5 * th.randn(n_mixtures, 1, dim, generator=generator)
    base_log_std = math.log(BASE_STD) + 0.6 * (th.rand(n_mixtures, 1, dim, generator=generator) - 0.5)
    offsets = th.randn(n_mixtures, n_components, dim, generator=generator) * spread / math.sqrt(2 * dim)
    means = centre + th.exp(base_log_std) * offsets
    jitter = 0.3 * (th.rand(n_mixtures, n_components, dim, generator=generator) - 0.5) if spread > 0 else 0.0
    log_stds = base_log_std.expand(-1, n_components, -1) + jitter
    return means.contiguous(), log_stds.contiguous()


def truth(means: th.Tensor, log_stds: th.Tensor, mixture_weights: th.Tensor, n_samples: int, chunk: int = 4):
    """Monte Carlo entropy and its standard error per mixture, (K,) each, a few mixtures at a time."""
    values, errors = [], []
    for start in range(0, means.shape[0], chunk):
        part = slice(start, start + chunk)
        value, error = monte_carlo_entropy(means[part], log_stds[part], mixture_weights, n_samples)
        values.append(value)
        errors.append(error)
    return th.cat(values), th.cat(errors)


def torch_distributions_entropy(means: th.Tensor, log_stds: th.Tensor, mixture_weights: th.Tensor, n_samples: int):
    """Independent Monte Carlo check in float64 with ``torch.distributions`` (exact tanh log-Jacobian, no epsilon)."""
    from torch import distributions as td

    means, stds = means.double(), log_stds.double().exp()
    component = td.TransformedDistribution(td.Independent(td.Normal(means, stds), 1), [td.TanhTransform()])
    mixture = td.MixtureSameFamily(td.Categorical(probs=mixture_weights.double().expand(means.shape[0], -1)), component)
    with th.no_grad():
        actions = mixture.sample((n_samples,))  # (S, K, D)
        actions = actions.clamp(-1 + 1e-12, 1 - 1e-12)
        neg_log_prob = -mixture.log_prob(actions)
    return neg_log_prob.mean(dim=0), neg_log_prob.std(dim=0) / n_samples**0.5


# Measurements -----------------------------------------------------------------------------------------------------


def repeat(tensor: th.Tensor, n_draws: int) -> th.Tensor:
    """(K, N, D) -> (K * R, N, D): every mixture R times, mixture-major."""
    return tensor.repeat_interleave(n_draws, dim=0)


def draws(name: str, means: th.Tensor, log_stds: th.Tensor, weights: th.Tensor, n_draws: int) -> th.Tensor:
    """R independent draws of an estimator for every mixture, (K, R)."""
    with th.no_grad():
        values = estimate(name, repeat(means, n_draws), repeat(log_stds, n_draws), weights)
    return values.view(means.shape[0], n_draws)


def gradients(name: str, means: th.Tensor, log_stds: th.Tensor, weights: th.Tensor, n_draws: int, chunk: int = 4096):
    """Per-draw gradients of the estimate w.r.t. the means and log-stds, (K, R, N, D) each."""
    grad_means, grad_log_stds = [], []
    all_means, all_log_stds = repeat(means, n_draws), repeat(log_stds, n_draws)
    for start in range(0, all_means.shape[0], chunk):
        leaf_means = all_means[start : start + chunk].clone().requires_grad_(True)
        leaf_log_stds = all_log_stds[start : start + chunk].clone().requires_grad_(True)
        # Each state's estimate depends only on its own leaves: the gradient of the sum is the per-draw gradient
        estimate(name, leaf_means, leaf_log_stds, weights).sum().backward()
        grad_means.append(leaf_means.grad)
        grad_log_stds.append(leaf_log_stds.grad)
    shape = (means.shape[0], n_draws, *means.shape[1:])
    return th.cat(grad_means).view(shape), th.cat(grad_log_stds).view(shape)


def time_call(name: str, n_components: int, dim: int, batch: int, repeats: int, backward: bool) -> tuple[float, float]:
    """Median CPU time (this thread) and wall time of one call, in microseconds."""
    generator = th.Generator().manual_seed(0)
    means, log_stds = random_mixtures(batch, n_components, dim, 3.0, generator)
    weights = th.full((n_components,), 1.0 / n_components)
    means.requires_grad_(backward)
    log_stds.requires_grad_(backward)
    cpu_times, wall_times = [], []
    for index in range(repeats + 5):
        cpu_start, wall_start = time.thread_time(), time.perf_counter()
        if backward:
            estimate(name, means, log_stds, weights).mean().backward()
            means.grad = log_stds.grad = None
        else:
            with th.no_grad():
                estimate(name, means, log_stds, weights)
        if index >= 5:  # warm-up
            cpu_times.append(time.thread_time() - cpu_start)
            wall_times.append(time.perf_counter() - wall_start)
    return float(np.median(cpu_times) * 1e6), float(np.median(wall_times) * 1e6)


def study_cell(n_components: int, dim: int, spread: float, settings: Settings, seed: int) -> list[dict]:
    generator = th.Generator().manual_seed(seed)
    th.manual_seed(seed)
    means, log_stds = random_mixtures(settings.mixtures, n_components, dim, spread, generator)
    weights = th.full((n_components,), 1.0 / n_components)
    true_value, true_error = truth(means, log_stds, weights, settings.truth_samples)
    # Cross-check of the truth on a few mixtures with torch.distributions
    n_check = min(settings.check_mixtures, settings.mixtures)
    check_value, check_error = torch_distributions_entropy(
        means[:n_check], log_stds[:n_check], weights, settings.truth_samples
    )
    check_diff = check_value - true_value[:n_check].double()
    check_z = (check_diff / (check_error**2 + true_error[:n_check].double() ** 2).sqrt()).abs()

    # Gradient of the true entropy: the mean of many mixed-marginal gradients (it is an unbiased estimate of H for
    # every parameter value, so its mean gradient is unbiased for grad H)
    g_means, g_log_stds = means[: settings.grad_mixtures], log_stds[: settings.grad_mixtures]
    true_grad_means, true_grad_log_stds = (
        grad.mean(dim=1) for grad in gradients("mixed_marginal", g_means, g_log_stds, weights, settings.grad_truth_draws)
    )
    true_grad = th.cat([true_grad_means.flatten(1), true_grad_log_stds.flatten(1)], dim=1)
    # Variance of that mean, per mixture: part of the noise floor of the gradient-bias measurement below
    noise_draws = gradients("mixed_marginal", g_means, g_log_stds, weights, settings.grad_draws)
    truth_noise = th.cat(noise_draws, dim=-1).var(dim=1).sum(dim=(1, 2)) / settings.grad_truth_draws

    log_n = math.log(n_components)
    rows = []
    for name in settings.estimators:
        values = draws(name, means, log_stds, weights, settings.draws).double()  # (K, R)
        per_mixture_bias = values.mean(dim=1) - true_value.double()
        per_mixture_var = values.var(dim=1)
        noise_se = ((per_mixture_var / settings.draws + true_error.double() ** 2).mean() / settings.mixtures).sqrt()
        grad_means, grad_log_stds = gradients(name, g_means, g_log_stds, weights, settings.grad_draws)
        mean_grad = th.cat([grad_means.mean(dim=1).flatten(1), grad_log_stds.mean(dim=1).flatten(1)], dim=1)
        # ||E grad - grad H||^2 estimated without the noise of both finite means: subtract their variances
        noise = th.cat([grad_means, grad_log_stds], dim=-1).var(dim=1).sum(dim=(1, 2)) / settings.grad_draws + truth_noise
        squared_error = (mean_grad - true_grad).pow(2).sum(dim=1)
        grad_bias = ((squared_error - noise).clamp(min=0.0).sqrt() / true_grad.norm(dim=1).clamp(min=1e-12)).mean()
        grad_noise_floor = (noise.sqrt() / true_grad.norm(dim=1).clamp(min=1e-12)).mean()
        rows.append(
            {
                "n_components": n_components,
                "action_dim": dim,
                "spread": spread,
                "estimator": name,
                "true_entropy": float(true_value.mean()),
                "truth_se": float(true_error.mean()),
                "truth_check_max_z": float(check_z.max()),
                "truth_check_mean_diff": float(check_diff.mean()),
                "h_w": log_n,
                "bias": float(per_mixture_bias.mean()),
                "bias_se": float(noise_se),
                "abs_bias": float(per_mixture_bias.abs().mean()),
                "bias_over_h_w": float(per_mixture_bias.mean() / log_n) if n_components > 1 else float("nan"),
                "std": float(per_mixture_var.mean().sqrt()),
                "var_per_mixture": [float(f"{value:.5g}") for value in per_mixture_var.tolist()],
                "grad_var_means": float(grad_means.var(dim=1).mean()),
                "grad_var_log_stds": float(grad_log_stds.var(dim=1).mean()),
                "grad_var": float(th.cat([grad_means, grad_log_stds], dim=-1).var(dim=1).mean()),
                "grad_rel_bias": float(grad_bias),
                "grad_rel_noise_floor": float(grad_noise_floor),
            }
        )
    reference = next(row for row in rows if row["estimator"] == "mixed_marginal")
    for row in rows:
        ratios = np.array(row["var_per_mixture"]) / np.maximum(np.array(reference["var_per_mixture"]), 1e-300)
        row["var_ratio_vs_mm"] = float(row["std"] ** 2 / max(reference["std"] ** 2, 1e-300))
        row["var_ratio_vs_mm_geomean"] = float(np.exp(np.log(ratios).mean()))
        row["share_mixtures_var_above_mm"] = float((ratios > 1.0).mean())
        row["grad_var_ratio_vs_mm"] = float(row["grad_var"] / max(reference["grad_var"], 1e-300))
    return rows


def run(settings: Settings) -> dict:
    th.set_num_threads(1)
    start = time.time()
    cpu_start = time.process_time()
    rows = []
    cells = [(n, d, s) for d in settings.dims for n in settings.components for s in settings.spreads]
    for index, (n_components, dim, spread) in enumerate(cells):
        cell_start = time.time()
        rows += study_cell(n_components, dim, spread, settings, seed=1000 * index + settings.seed)
        print(f"[{index + 1}/{len(cells)}] N={n_components} D={dim} s={spread}: {time.time() - cell_start:.1f}s", flush=True)
    timings = []
    for dim in settings.dims:
        for n_components in settings.components:
            for name in settings.estimators:
                forward = time_call(name, n_components, dim, settings.batch, settings.time_repeats, backward=False)
                forward_backward = time_call(name, n_components, dim, settings.batch, settings.time_repeats, backward=True)
                timings.append(
                    {
                        "n_components": n_components,
                        "action_dim": dim,
                        "estimator": name,
                        "batch": settings.batch,
                        "forward_us": forward[0],
                        "forward_backward_us": forward_backward[0],
                        "forward_wall_us": forward[1],
                        "forward_backward_wall_us": forward_backward[1],
                    }
                )
    return {
        **provenance(),
        "torch": th.__version__,
        "torch_threads": th.get_num_threads(),
        "wall_time_s": round(time.time() - start, 1),
        "cpu_time_s": round(time.process_time() - cpu_start, 1),
        "settings": settings.recorded(),
        "rows": rows,
        "timings": timings,
    }


# Result file ------------------------------------------------------------------------------------------------------


def dump_json(result: dict) -> str:
    """Indented JSON with one line per row of results."""
    head = json.dumps({key: value for key, value in result.items() if key not in ("rows", "timings")}, indent=1)
    parts = [head[:-2] + ","]
    for key in ("rows", "timings"):
        body = ",\n".join("  " + json.dumps(row) for row in result[key])
        parts.append(f' "{key}": [\n{body}\n ]' + ("," if key == "rows" else ""))
    return "\n".join(parts) + "\n}\n"


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings of a command line (``--quick``'s sizes over the ones given)."""
    given = {item.name: getattr(args, item.name) for item in fields(Settings) if hasattr(args, item.name)}
    return Settings(**{**given, **(QUICK if args.quick else {})})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--components", type=int, nargs="+", default=list(Settings.components))
    parser.add_argument("--dims", type=int, nargs="+", default=list(Settings.dims))
    parser.add_argument("--spreads", type=float, nargs="+", default=list(Settings.spreads))
    parser.add_argument("--mixtures", type=int, default=Settings.mixtures, help="random mixtures per cell")
    parser.add_argument("--draws", type=int, default=Settings.draws, help="independent draws per mixture")
    parser.add_argument(
        "--truth-samples", type=int, default=Settings.truth_samples, help="Monte Carlo samples per mixture for the truth"
    )
    parser.add_argument(
        "--check-mixtures",
        type=int,
        default=Settings.check_mixtures,
        help="mixtures per cell checked with torch.distributions",
    )
    parser.add_argument("--grad-mixtures", type=int, default=Settings.grad_mixtures)
    parser.add_argument("--grad-draws", type=int, default=Settings.grad_draws)
    parser.add_argument("--grad-truth-draws", type=int, default=Settings.grad_truth_draws)
    parser.add_argument("--batch", type=int, default=Settings.batch, help="batch of states for the timing")
    parser.add_argument("--time-repeats", type=int, default=Settings.time_repeats)
    parser.add_argument("--seed", type=int, default=Settings.seed)
    parser.add_argument("--out", type=Path, default=Settings.out)
    parser.add_argument("--quick", action="store_true", help="tiny settings, to check the pipeline")
    parser.add_argument("--report", action="store_true", help="only regenerate CSV, plots and tables from the JSON")
    args = parser.parse_args()
    settings = settings_from(args)
    json_path = settings.out / "estimator_study.json"
    if args.report:
        report(json.loads(json_path.read_text()), settings)
        return
    result = run(settings)
    settings.out.mkdir(parents=True, exist_ok=True)
    json_path.write_text(dump_json(result))
    report(result, settings)
    print(f"wrote {json_path} and the CSV, plots and table next to it ({result['wall_time_s']} s)")


if __name__ == "__main__":
    main()
