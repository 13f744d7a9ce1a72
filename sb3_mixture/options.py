"""
The mixture's options (docs/algorithm.md sections 1-10), checked once, at construction.

:func:`validate_options` checks every mixture argument of ``SACM``/``S2ACM`` and how they combine (with each other and
with SAC's own ``replay_buffer_class`` and ``n_steps``), and returns a :class:`MixtureOptions`; its acting part,
:class:`ActingOptions`, is what the policy's acting rules are built with (:func:`validate_acting`, which the policy's
setters ask again). Everything downstream (the policy, the actor, ``train()``) trusts what it is given. This module
imports nothing from ``sb3_mixture.sacm``.
"""

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from sb3_mixture.buffers import MixtureDictReplayBuffer, MixtureReplayBuffer
from sb3_mixture.entropy import ENTROPY_ESTIMATORS

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
DISCRIMINATOR = "discriminator"
NOVELTY = "novelty"
DIVERSITY_MECHANISMS = (DISCRIMINATOR, NOVELTY)
"""``diversity_mechanism`` values: issue 23's SMERL-style charge (docs/algorithm.md section 11) and the ordered novelty
charge (section 13)"""
RETURN_WINDOW = 5
RETURN_EXPLORATION = 0.3
RETURN_MARGIN = 1.0
"""The returns bandit's defaults (docs/algorithm.md section 12): the settings of issue 23's recipe, behind the committed
switching evidence (the last 5 episodes, 30% of the episodes exploring, a margin of 1.0: every component whose recent
return is at least 0 while the best is positive)"""


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


def validate_deterministic_component(
    deterministic_component: "str | int", n_components: int, component_schedule: str
) -> "str | int":
    """
    ``"mode"``, ``"best_return"`` (with ``component_schedule="returns"`` only) or a component index in
    ``[0, n_components)``, docs/algorithm.md sections 6 and 12. The constructor and the policy's setter both ask this.
    """
    if deterministic_component == BEST_RETURN:
        if component_schedule != RETURN_SCHEDULE:
            raise ValueError(
                f"deterministic_component='best_return' needs component_schedule='returns' (the recent returns it picks "
                f"by are kept for that schedule), got component_schedule={component_schedule!r}"
            )
        return deterministic_component
    if deterministic_component == "mode":
        return deterministic_component
    if isinstance(deterministic_component, (int, np.integer)) and not isinstance(deterministic_component, bool):
        if 0 <= deterministic_component < n_components:
            return int(deterministic_component)
    raise ValueError(
        f"deterministic_component must be 'mode', 'best_return' or a component index in [0, {n_components}), "
        f"got {deterministic_component!r}"
    )


def _is_real(value: Any) -> bool:
    # numpy numbers are numbers to a user (a sweep, an Optuna trial); bools are not
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def validate_int(name: str, value: Any, minimum: int) -> int:
    """An int (numpy's too, not a bool) >= ``minimum``; the error names the option."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def validate_fraction(name: str, value: Any) -> float:
    """A finite float in [0, 1]; the error names the option."""
    if not (_is_real(value) and math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a float in [0, 1], got {value!r}")
    return float(value)


def validate_diversity_weight(weight: Any) -> float:
    """
    The diversity charge's weight w (docs/algorithm.md section 11): a finite float >= 0 (0: no charge).

    :raises TypeError: not a real number
    :raises ValueError: out of range
    """
    if not _is_real(weight):
        raise TypeError(f"diversity_weight must be a float, got {weight!r} ({type(weight).__name__})")
    if not (math.isfinite(weight) and weight >= 0.0):
        raise ValueError(f"diversity_weight must be a finite float >= 0, got {weight!r}")
    return float(weight)


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
class ActingOptions:
    """
    Which component acts, and with which weights (docs/algorithm.md sections 6, 10 and 12): the settings of the
    policy's acting rules (:class:`sb3_mixture.sacm.acting.ComponentChoice`), as :func:`validate_acting` returns them.
    """

    n_components: int
    mixture_weights: "list[float] | str"
    """the fixed weights (None became uniform ones), ``"learned"`` or ``"soft_value"``"""
    mixture_weight_floor: float
    component_schedule: str
    deterministic_component: "str | int"
    return_window: int
    return_exploration: float
    return_margin: float

    @property
    def choose_by_returns(self) -> bool:
        return self.component_schedule == RETURN_SCHEDULE


POLICY_OPTIONS = tuple(option.name for option in fields(ActingOptions))
"""The options the policy (its actor and its acting rules) is built with; the others are the algorithm's"""


def validate_acting(
    *,
    n_components: int,
    mixture_weights: "list[float] | tuple[float, ...] | str | None",
    mixture_weight_floor: "float | None",
    component_schedule: str,
    deterministic_component: "str | int",
    return_window: int,
    return_exploration: float,
    return_margin: float,
) -> ActingOptions:
    """
    The acting options checked, alone and together (the rest of :func:`validate_options`' checks need the algorithm's
    options too). The bandit's ``return_window`` is the episodes of each component its recent return averages (an
    int >= 1), ``return_exploration`` its probability of a uniformly drawn component at an episode start and
    ``return_margin`` how far below the best recent return, as a fraction of its size, a component still counts as
    near the best (both floats in [0, 1]; the margin also gates the discriminator's charge, section 11).
    """
    weights = validate_mixture_weights(mixture_weights, n_components)
    n_components = int(n_components)
    schedule = validate_choice("component_schedule", component_schedule, COMPONENT_SCHEDULES)
    options = ActingOptions(
        n_components=n_components,
        mixture_weights=weights,
        mixture_weight_floor=validate_weight_floor(mixture_weight_floor, n_components, weights),
        component_schedule=schedule,
        deterministic_component=validate_deterministic_component(deterministic_component, n_components, schedule),
        return_window=validate_int("return_window", return_window, 1),
        return_exploration=validate_fraction("return_exploration", return_exploration),
        return_margin=validate_fraction("return_margin", return_margin),
    )
    return options


@dataclass(frozen=True)
class DiversityOptions:
    """The diversity charge's settings (docs/algorithm.md sections 11 and 13), as the mechanism is built with them."""

    weight: float
    start: int
    margin: float
    """the discriminator's gate's ``return_margin`` (the novelty charge's gate is relative to the returns' spread)"""
    mechanism: str
    features: "list[int] | list[str] | None"

    @classmethod
    def of(cls, algorithm: Any) -> "DiversityOptions":
        """The settings an algorithm keeps as flat attributes (``diversity_weight``, ..., ``return_margin``)."""
        return cls(
            algorithm.diversity_weight,
            algorithm.diversity_start,
            algorithm.return_margin,
            algorithm.diversity_mechanism,
            algorithm.diversity_features,
        )


def validate_diversity_features(features: Any) -> "list[int] | list[str] | None":
    """
    ``diversity_features``: None (the whole observation, flattened), or which entries the novelty charge sees, as a
    non-empty sequence of distinct ints (indices into the flattened observation of a Box space) or of distinct strs
    (keys of a Dict space). Checked against the space by :func:`check_diversity_features`.
    """
    if features is None:
        return None
    if isinstance(features, (str, bytes)) or not isinstance(features, (list, tuple)) or len(features) == 0:
        raise ValueError(f"diversity_features must be None or a non-empty list of indices or of Dict keys, got {features!r}")
    is_index = [isinstance(item, (int, np.integer)) and not isinstance(item, (bool, np.bool_)) for item in features]
    if all(is_index):
        checked: list = [int(item) for item in features]
    elif all(isinstance(item, str) for item in features):
        checked = list(features)
    else:
        raise ValueError(f"diversity_features must be all indices (ints) or all Dict keys (strs), got {features!r}")
    if len(set(checked)) != len(checked):
        raise ValueError(f"diversity_features must not repeat an entry, got {features!r}")
    return checked


def check_diversity_features(features: "list[int] | list[str] | None", observation_space: Any) -> None:
    """``diversity_features`` against the env's observation space: Dict keys for a Dict space, indices in range for
    another (into its flattened observation)."""
    if features is None:
        return
    from gymnasium import spaces

    if isinstance(observation_space, spaces.Dict):
        keys = tuple(observation_space.spaces)
        if not all(isinstance(item, str) and item in keys for item in features):
            raise ValueError(f"diversity_features must be keys of the Dict observation space {keys}, got {list(features)}")
        return
    size = int(np.prod(observation_space.shape))
    if not all(isinstance(item, int) and 0 <= item < size for item in features):
        raise ValueError(
            f"diversity_features must be indices in [0, {size}) of the flattened observation "
            f"(shape {observation_space.shape}), got {list(features)}"
        )


def needs_acting_components(critic_data: str, diversity_weight: float, diversity_mechanism: str) -> bool:
    """Own-data heads and the discriminator need the acting component of every stored transition (the package's
    replay buffers keep it)."""
    return critic_data != "shared" or (diversity_weight > 0.0 and diversity_mechanism == DISCRIMINATOR)


@dataclass(frozen=True)
class MixtureOptions:
    """The mixture's settings of one ``SACM``/``S2ACM``, as :func:`validate_options` returns them (checked)."""

    acting: ActingOptions
    entropy_estimator: str
    critic_data: str
    component_sampling: str
    matmul_precision: str
    diversity_weight: float
    diversity_start: int
    diversity_mechanism: str
    diversity_features: "list[int] | list[str] | None"

    @classmethod
    def argument_names(cls) -> tuple[str, ...]:
        """The algorithm's arguments these options come from."""
        return (*POLICY_OPTIONS, *(option.name for option in fields(cls) if option.name != "acting"))

    @property
    def needs_acting_components(self) -> bool:
        return needs_acting_components(self.critic_data, self.diversity_weight, self.diversity_mechanism)

    def flat(self) -> dict[str, Any]:
        """Every option by its argument's name (the algorithm keeps them as flat attributes, as SB3 keeps its own)."""
        algorithm_options = {option.name: getattr(self, option.name) for option in fields(self) if option.name != "acting"}
        return {**asdict(self.acting), **algorithm_options}


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
    diversity_mechanism: str,
    diversity_features: Any,
    algorithm: str,
    per_head_entropy: bool,
    replay_buffer_class: "type | None",
    n_steps: int,
) -> MixtureOptions:
    """
    Check every mixture argument and how they combine; raise a ``ValueError`` (``TypeError`` for a wrong type) that
    names the argument and its allowed values. An option that would have no effect with the others is refused, not
    ignored.

    :param algorithm: the algorithm's name, for the messages
    :param per_head_entropy: the algorithm gives each critic head its own entropy bonus (S2ACM), which soft-value
        weights leave no place for
    :param replay_buffer_class: SAC's argument: ``critic_data="own"`` needs the package's buffer
    :param n_steps: SAC's argument: ``critic_data="own"`` needs 1
    """
    arguments = dict(locals())
    acting = validate_acting(**{name: arguments[name] for name in POLICY_OPTIONS})
    options = MixtureOptions(
        acting=acting,
        entropy_estimator=validate_choice("entropy_estimator", entropy_estimator, ENTROPY_ESTIMATORS),
        critic_data=validate_choice("critic_data", critic_data, CRITIC_DATA),
        component_sampling=validate_choice("component_sampling", component_sampling, COMPONENT_SAMPLING),
        matmul_precision=validate_choice("matmul_precision", matmul_precision, MATMUL_PRECISION),
        diversity_weight=validate_diversity_weight(diversity_weight),
        diversity_start=validate_int("diversity_start", diversity_start, 0),
        diversity_mechanism=validate_choice("diversity_mechanism", diversity_mechanism, DIVERSITY_MECHANISMS),
        diversity_features=validate_diversity_features(diversity_features),
    )
    weights, n_components, diversity_weight = acting.mixture_weights, acting.n_components, options.diversity_weight
    # Refused at construction only (not by validate_acting, which also rebuilds the policies of saved files)
    if acting.return_exploration != RETURN_EXPLORATION and not acting.choose_by_returns:
        raise ValueError(
            f"return_exploration={return_exploration!r} has no effect without component_schedule='returns' (only the "
            f"returns bandit explores), got component_schedule={acting.component_schedule!r}"
        )
    # The recent returns are kept for the bandit and read by the diversity charge's gate
    for name, value, default in (
        ("return_window", acting.return_window, RETURN_WINDOW),
        ("return_margin", acting.return_margin, RETURN_MARGIN),
    ):
        if value != default and not (acting.choose_by_returns or diversity_weight > 0.0):
            raise ValueError(
                f"{name}={value!r} has no effect without component_schedule='returns' or a diversity_weight > 0 "
                "(the recent returns it shapes are read by nothing else), "
                f"got component_schedule={acting.component_schedule!r}"
            )
    for name, value, default in (
        ("diversity_start", options.diversity_start, 0),
        ("diversity_mechanism", options.diversity_mechanism, DISCRIMINATOR),
        ("diversity_features", options.diversity_features, None),
    ):
        if value != default and diversity_weight == 0.0:
            raise ValueError(f"{name}={value!r} has no effect without a diversity_weight > 0")
    if options.diversity_features is not None and options.diversity_mechanism != NOVELTY:
        raise ValueError(
            f"diversity_features needs diversity_mechanism={NOVELTY!r} (the discriminator sees the policy's own features), "
            f"got diversity_mechanism={options.diversity_mechanism!r}"
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
        if acting.component_schedule == "step":
            raise ValueError(
                f"diversity_weight={diversity_weight} needs an episodic component_schedule ('episode' or 'returns'): "
                "the charge tells apart the components' episodes and is gated by their returns, got 'step'"
            )
        if n_components < 2:
            raise ValueError(f"diversity_weight={diversity_weight} needs n_components >= 2 (one component differs from none)")
    mixture_buffers = (MixtureReplayBuffer, MixtureDictReplayBuffer)
    setting = f"critic_data={critic_data!r}" if options.critic_data != "shared" else f"diversity_weight={diversity_weight}"
    foreign_buffer = replay_buffer_class is not None and not issubclass(replay_buffer_class, mixture_buffers)
    if options.needs_acting_components and foreign_buffer:
        her = " (HerReplayBuffer relabels goals, so a stored acting component no longer fits)"
        raise ValueError(
            f"{setting} needs SACM's own replay buffer (it stores each transition's acting component); "
            f"replay_buffer_class={replay_buffer_class.__name__} is only supported with critic_data='shared' "
            "and no discriminator charge" + (her if "Her" in replay_buffer_class.__name__ else "")
        )
    # A transition's acting component and any charge (a reward of the next state) belong to one step: an n-step
    # return would hold them at s_{t+n} only
    if (options.needs_acting_components or diversity_weight > 0.0) and n_steps != 1:
        raise ValueError(f"{setting} supports only n_steps=1, got n_steps={n_steps}")
    return options
