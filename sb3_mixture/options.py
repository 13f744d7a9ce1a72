"""
The mixture's options (docs/algorithm.md sections 1-10), checked once, at construction.

:func:`validate_options` checks every mixture argument of ``SACM``/``S2ACM`` and how they combine (with each other and
with SAC's own ``replay_buffer_class`` and ``n_steps``), and returns a :class:`MixtureOptions`. Everything downstream
(the policy, the actor, ``train()``) trusts what it is given.
"""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sb3_mixture.buffers import MixtureDictReplayBuffer, MixtureReplayBuffer
from sb3_mixture.entropy import ENTROPY_ESTIMATORS
from sb3_mixture.sacm.diversity import validate_diversity

LEARNED_WEIGHTS = "learned"
"""``mixture_weights`` value for state-dependent mixing weights w(s) = softmax(g(s)) (docs/algorithm.md section 8)"""
SOFT_VALUE_WEIGHTS = "soft_value"
"""``mixture_weights`` value for weights from the components' own soft values, w_i(s) ~ exp(V_i(s) / alpha)
(docs/algorithm.md section 10)"""
STATE_DEPENDENT_WEIGHTS = (LEARNED_WEIGHTS, SOFT_VALUE_WEIGHTS)
DEFAULT_WEIGHT_FLOOR = 0.05
"""Default least weight of a learned-weight component: without it, 2 of 4 components died on the bimodal bandit in
every seed (benchmarks/results/multimodal.md); capped at half the uniform weight 1/N"""


COMPONENT_SAMPLING = ("all", "sample")
MATMUL_PRECISION = ("fp32", "bf16")
COMPONENT_SCHEDULES = ("step", "episode", "returns")
RETURN_SCHEDULE = "returns"
"""``component_schedule`` value for an episodic mixture whose episodes' components a bandit picks from the returns the
components earned in their recent training episodes (docs/algorithm.md section 12)"""
BEST_RETURN = "best_return"
"""``deterministic_component`` value: the component with the best recent return (needs ``component_schedule="returns"``)"""
CRITIC_DATA = ("shared", "own")
# The options the policy (and its actor) is built with; the others are the algorithm's
POLICY_OPTIONS = (
    "n_components",
    "mixture_weights",
    "mixture_weight_floor",
    "component_schedule",
    "deterministic_component",
    "return_window",
    "return_exploration",
    "return_margin",
)


def validate_mixture_weights(
    mixture_weights: "list[float] | tuple[float, ...] | str | None", n_components: int
) -> "list[float] | str":
    """
    Check ``n_components`` and ``mixture_weights`` (docs/algorithm.md sections 1 and 8) and return the weights as a list.

    :param mixture_weights: one positive weight per component summing to one, None for uniform weights,
        ``"learned"`` or ``"soft_value"`` for state-dependent weights (returned as is)
    :param n_components: number of mixture components, an int >= 1
    :raises TypeError: ``n_components`` is not an int
    :raises ValueError: anything else out of range
    """
    # numpy ints are ints to a user (e.g. values from a sweep or an Optuna trial); bools are not
    if isinstance(n_components, (bool, np.bool_)) or not isinstance(n_components, (int, np.integer)):
        raise TypeError(f"n_components must be an int >= 1, got {n_components!r} ({type(n_components).__name__})")
    n_components = int(n_components)
    if n_components < 1:
        raise ValueError(f"n_components must be an int >= 1, got {n_components}")
    if mixture_weights is None:
        return [1.0 / n_components] * n_components
    if isinstance(mixture_weights, str):
        if mixture_weights in STATE_DEPENDENT_WEIGHTS:
            return mixture_weights
        raise ValueError(
            f"mixture_weights must be None (uniform), {LEARNED_WEIGHTS!r} or a sequence of {n_components} positive floats "
            f"summing to 1, or {SOFT_VALUE_WEIGHTS!r} (docs/algorithm.md section 10), got {mixture_weights!r}"
        )
    try:
        weights = [float(w) for w in mixture_weights]
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"mixture_weights must be a sequence of {n_components} positive floats, got {mixture_weights!r}"
        ) from error
    if len(weights) != n_components:
        raise ValueError(
            f"mixture_weights must have one weight per component (n_components={n_components}), got {len(weights)}: {weights}"
        )
    if not all(math.isfinite(w) and w > 0.0 for w in weights):
        raise ValueError(f"mixture_weights must all be > 0, got {weights}")
    if abs(sum(weights) - 1.0) > 1e-6:
        raise ValueError(f"mixture_weights must sum to 1, got {weights} (sum {sum(weights)})")
    return weights


def validate_weight_floor(
    mixture_weight_floor: "float | None", n_components: int, mixture_weights: "list[float] | str"
) -> float:
    """
    The floor ``eps`` of state-dependent mixing weights (docs/algorithm.md sections 8 and 10), checked:
    ``0 <= eps < 1 / n_components``.

    None is the default: :data:`DEFAULT_WEIGHT_FLOOR` (at most half the uniform weight) with learned or soft-value
    weights, 0 with fixed ones. A floor other than 0 is only meaningful with state-dependent weights.
    """
    state_dependent = mixture_weights in STATE_DEPENDENT_WEIGHTS
    if mixture_weight_floor is None:
        return min(DEFAULT_WEIGHT_FLOOR, 0.5 / n_components) if state_dependent else 0.0
    if isinstance(mixture_weight_floor, bool) or not isinstance(mixture_weight_floor, (int, float, np.floating)):
        raise TypeError(f"mixture_weight_floor must be None or a float in [0, 1/n_components), got {mixture_weight_floor!r}")
    floor = float(mixture_weight_floor)
    if not (math.isfinite(floor) and 0.0 <= floor < 1.0 / n_components):
        raise ValueError(
            f"mixture_weight_floor must be None or a float in [0, 1/n_components) = [0, {1.0 / n_components:.4g}) "
            f"for n_components={n_components}, got {mixture_weight_floor!r}"
        )
    if floor > 0.0 and not state_dependent:
        raise ValueError(
            f"mixture_weight_floor={floor} needs mixture_weights={LEARNED_WEIGHTS!r} or {SOFT_VALUE_WEIGHTS!r} "
            "(fixed weights have no floor to keep)"
        )
    return floor


def validate_deterministic_component(deterministic_component: "str | int", n_components: int) -> "str | int":
    """``"mode"``, ``"best_return"`` or a component index in ``[0, n_components)``, docs/algorithm.md sections 6, 12."""
    if deterministic_component in ("mode", BEST_RETURN):
        return deterministic_component
    if isinstance(deterministic_component, (int, np.integer)) and not isinstance(deterministic_component, bool):
        if 0 <= deterministic_component < n_components:
            return int(deterministic_component)
    raise ValueError(
        f"deterministic_component must be 'mode', 'best_return' or a component index in [0, {n_components}), "
        f"got {deterministic_component!r}"
    )


def validate_int(name: str, value: Any, minimum: int) -> int:
    """An int (numpy's too, not a bool) >= ``minimum``; the error names the option."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def validate_return_choice(return_window: int, return_exploration: float, return_margin: float) -> tuple[int, float, float]:
    """
    The bandit of ``component_schedule="returns"`` (docs/algorithm.md section 12): ``return_window``, the episodes of
    each component its recent return averages (an int >= 1), ``return_exploration``, the probability of a uniformly
    drawn component at an episode start, and ``return_margin``, how far below the best recent return, as a fraction
    of its size, a component still counts as near the best (both floats in [0, 1]; the margin also gates the
    diversity bonus, section 11).
    """
    return_window = validate_int("return_window", return_window, 1)
    return (
        return_window,
        validate_fraction("return_exploration", return_exploration),
        validate_fraction("return_margin", return_margin),
    )


def validate_fraction(name: str, value: Any) -> float:
    valid_number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if not (valid_number and math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a float in [0, 1], got {value!r}")
    return float(value)


def validate_choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def validate_ent_coef(ent_coef: "str | float") -> "str | float":
    if isinstance(ent_coef, str):
        if ent_coef == "auto":
            return ent_coef
        if ent_coef.startswith("auto_"):
            try:
                if float(ent_coef[len("auto_") :]) > 0.0:
                    return ent_coef
            except ValueError:
                pass
    elif isinstance(ent_coef, (int, float)) and not isinstance(ent_coef, bool) and math.isfinite(ent_coef) and ent_coef > 0:
        return float(ent_coef)
    raise ValueError(f"ent_coef must be 'auto', 'auto_<initial value > 0>' or a float > 0, got {ent_coef!r}")


@dataclass(frozen=True)
class MixtureOptions:
    """The mixture's settings of one ``SACM``/``S2ACM``, as :func:`validate_options` returns them (checked)."""

    n_components: int
    mixture_weights: "list[float] | str"
    mixture_weight_floor: float
    entropy_estimator: str
    critic_data: str
    component_schedule: str
    deterministic_component: "str | int"
    component_sampling: str
    matmul_precision: str
    return_window: int
    return_exploration: float
    return_margin: float
    diversity_weight: float
    diversity_start: int


def validate_options(
    *,
    n_components: int,
    mixture_weights: "list[float] | tuple[float, ...] | str | None",
    mixture_weight_floor: "float | None",
    entropy_estimator: str,
    critic_data: str,
    component_schedule: str,
    deterministic_component: "str | int",
    component_sampling: str,
    matmul_precision: str,
    return_window: int,
    return_exploration: float,
    return_margin: float,
    diversity_weight: float,
    diversity_start: int,
    algorithm: str,
    per_head_entropy: bool,
    replay_buffer_class: "type | None",
    n_steps: int,
) -> MixtureOptions:
    """
    Check every mixture argument and how they combine; raise a ``ValueError`` (``TypeError`` for a wrong type) that
    names the argument and its allowed values.

    :param algorithm: the algorithm's name, for the messages
    :param per_head_entropy: the algorithm gives each critic head its own entropy bonus (S2ACM), which soft-value
        weights leave no place for
    :param replay_buffer_class: SAC's argument: ``critic_data="own"`` needs the package's buffer
    :param n_steps: SAC's argument: ``critic_data="own"`` needs 1
    """
    weights = validate_mixture_weights(mixture_weights, n_components)
    n_components = int(n_components)
    return_window, return_exploration, return_margin = validate_return_choice(return_window, return_exploration, return_margin)
    diversity_weight = validate_diversity(diversity_weight)
    diversity_start = validate_int("diversity_start", diversity_start, 0)
    options = MixtureOptions(
        n_components=n_components,
        mixture_weights=weights,
        mixture_weight_floor=validate_weight_floor(mixture_weight_floor, n_components, weights),
        entropy_estimator=validate_choice("entropy_estimator", entropy_estimator, ENTROPY_ESTIMATORS),
        critic_data=validate_choice("critic_data", critic_data, CRITIC_DATA),
        component_sampling=validate_choice("component_sampling", component_sampling, COMPONENT_SAMPLING),
        matmul_precision=validate_choice("matmul_precision", matmul_precision, MATMUL_PRECISION),
        component_schedule=validate_choice("component_schedule", component_schedule, COMPONENT_SCHEDULES),
        deterministic_component=validate_deterministic_component(deterministic_component, n_components),
        return_window=return_window,
        return_exploration=return_exploration,
        return_margin=return_margin,
        diversity_weight=diversity_weight,
        diversity_start=int(diversity_start),
    )
    if options.deterministic_component == BEST_RETURN and options.component_schedule != RETURN_SCHEDULE:
        raise ValueError(
            f"deterministic_component='best_return' needs component_schedule='returns' (the recent returns it picks "
            f"by are kept for that schedule), got component_schedule={options.component_schedule!r}"
        )
    if weights == LEARNED_WEIGHTS and options.component_sampling == "sample" and n_components > 1:
        raise ValueError(
            "component_sampling='sample' is not supported with mixture_weights='learned': one sampled component "
            "per state gives the gating head no pathwise gradient; use component_sampling='all'"
        )
    if weights == SOFT_VALUE_WEIGHTS:
        if options.component_sampling != "all":
            raise ValueError(
                "component_sampling='sample' is not supported with mixture_weights='soft_value': every head's "
                "target is its own component's next value, so every component is sampled; use component_sampling='all'"
            )
        if per_head_entropy:
            raise ValueError(
                f"mixture_weights='soft_value' is only available with SACM: its critic heads are the components' "
                f"own soft Q-functions, which leaves {algorithm}'s per-head entropy bonus no place"
            )
    if diversity_weight > 0.0:
        if options.component_schedule == "step":
            raise ValueError(
                f"diversity_weight={diversity_weight} needs an episodic component_schedule ('episode' or 'returns'): "
                "the bonus tells apart the components' episodes and is gated by their returns, got 'step'"
            )
        if n_components < 2:
            raise ValueError(f"diversity_weight={diversity_weight} needs n_components >= 2 (one component differs from none)")
    mixture_buffers = (MixtureReplayBuffer, MixtureDictReplayBuffer)
    if options.critic_data != "shared" or diversity_weight > 0.0:
        setting = f"critic_data={critic_data!r}" if options.critic_data != "shared" else f"diversity_weight={diversity_weight}"
        if replay_buffer_class is not None and not issubclass(replay_buffer_class, mixture_buffers):
            her = " (HerReplayBuffer relabels goals, so a stored acting component no longer fits)"
            raise ValueError(
                f"{setting} needs SACM's own replay buffer (it stores each transition's acting component); "
                f"replay_buffer_class={replay_buffer_class.__name__} is only supported with critic_data='shared' "
                "and no diversity bonus" + (her if "Her" in replay_buffer_class.__name__ else "")
            )
        if n_steps != 1:
            raise ValueError(f"{setting} supports only n_steps=1, got n_steps={n_steps}")
    return options
