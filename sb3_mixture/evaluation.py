"""
Evaluate a mixture policy the way the paper reports it: the stochastic mixture, the deterministic policy
and each component alone.
"""

from typing import Any

from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.type_aliases import GymEnv

from sb3_mixture.sacm.sacm import SACM


def evaluate_components(
    model: SACM,
    env: GymEnv,
    n_eval_episodes: int = 10,
    deterministic_components: bool = False,
    **evaluate_kwargs: Any,
) -> dict[str, tuple[float, float]]:
    """
    Mean and standard deviation of the episode return of every way a mixture can act.

    Keys: ``"mixture"`` (stochastic, components drawn by the model's ``component_schedule``),
    ``"deterministic"`` (``predict(deterministic=True)``), ``"component_<i>"`` (component i alone) and
    ``"best_component"`` (the best of those, as the paper reports). That is the best component in these evaluation
    episodes; ``deterministic_component="best_return"`` plays another measure's best, the component with the best
    recent training return (``model.policy.component_choice.best_return_component()``), so the two may differ.

    :param model: a trained SACM or S2ACM
    :param env: the evaluation environment (wrap it like the training env, e.g. the same ``VecNormalize`` stats)
    :param n_eval_episodes: episodes per evaluation
    :param deterministic_components: evaluate each component by its mean action instead of by sampling it
    :param evaluate_kwargs: passed on to SB3's ``evaluate_policy``
    """
    if not isinstance(model, SACM):
        raise TypeError(f"model must be a SACM or S2ACM, got {type(model).__name__}")

    def run(deterministic: bool) -> tuple[float, float]:
        mean, std = evaluate_policy(
            model, env, n_eval_episodes=n_eval_episodes, deterministic=deterministic, **evaluate_kwargs
        )
        return float(mean), float(std)  # type: ignore[arg-type]

    results = {"mixture": run(False), "deterministic": run(True)}
    for component in range(model.n_components):
        with model.policy.use_component(component):
            results[f"component_{component}"] = run(deterministic_components)
    best = max(range(model.n_components), key=lambda component: results[f"component_{component}"][0])
    results["best_component"] = results[f"component_{best}"]
    return results
