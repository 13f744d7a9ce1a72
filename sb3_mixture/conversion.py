"""
Models of other algorithms and the mixture: starting a mixture from a trained SAC, and telling which algorithm saved a
file that SACM/S2ACM.load is given.

Starting from SAC (:func:`mixture_from_sac`, behind ``SACM.from_sac``): every component a copy of SAC's Gaussian,
every critic head a copy of its Q. A one-component SACM computes exactly SAC's losses, so a SAC model copied into an
N=1 mixture (weights, Adam moments, temperature, counters and, if asked, the replay buffer) predicts and trains exactly
as the SAC model would. With N > 1 the components start identical and the mixture's entropy bonus (which pays a
component less for actions others already cover) is what moves them apart.

A copy is described by *pairs* ``(source tensors, target parameter, transform)``: ``transform(*sources)`` has the
target's shape. The same pairs copy the parameters and, key by key, their Adam moments.

Loading (:func:`check_saved_algorithm`, behind ``SACM.load``): a file of another algorithm is refused with one line
that says what the file holds, read from its ``data`` (JSON: the recorded ``algorithm_name`` of a mixture, the module
of the policy class) without loading or unpickling anything.
"""

import copy
import functools
import io
import json
import pathlib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import GymEnv
from torch import nn

from sb3_mixture.torch_layers import EnsembleMLP

# The mixture class from_sac builds (SACM, S2ACM), bound to their base class SAC: sacm.py imports this module, which
# does not import it back
SelfMixture = TypeVar("SelfMixture", bound=SAC)
Pair = tuple[list[th.Tensor], th.Tensor, Callable[..., th.Tensor]]


def tile_head(tensor: th.Tensor, n_components: int) -> th.Tensor:
    """
    SAC's actor head (its ``mu`` or ``log_std`` weight (D, H) or bias (D,)) as the mixture's, with N copies.

    The mixture's head has ``N * D`` outputs read as (N, D), so row ``n * D + d`` must be SAC's row ``d``.
    """
    return tensor.repeat(n_components, *([1] * (tensor.dim() - 1)))


def stack_linear_weights(*weights: th.Tensor, repeat: int = 1) -> th.Tensor:
    """``nn.Linear`` weights (out, in) of K networks as an :class:`EnsembleMLP` layer (K, in, out * repeat)."""
    return th.stack([weight.T.repeat(1, repeat) for weight in weights])


def stack_linear_biases(*biases: th.Tensor, repeat: int = 1) -> th.Tensor:
    """``nn.Linear`` biases (out,) of K networks as an :class:`EnsembleMLP` layer's (K, 1, out * repeat)."""
    return th.stack([bias.repeat(repeat).unsqueeze(0) for bias in biases])


def actor_pairs(sac_actor: nn.Module, mixture_actor: nn.Module, n_components: int) -> list[Pair]:
    """
    Every parameter of the mixture actor that SAC's actor has (all but a learned-weight gate), heads tiled.

    With gSDE, SAC's mean head is ``mu.0`` (a Linear followed by its Hardtanh) and its ``log_std`` a (L, D) matrix,
    which every component gets a copy of: (N, L, D).
    """
    sac_params = {name.replace("mu.0.", "mu."): param for name, param in sac_actor.named_parameters()}
    pairs: list[Pair] = []
    for name, param in mixture_actor.named_parameters():
        if name not in sac_params:
            continue
        if name == "log_std" and param.dim() == 3:
            pairs.append(([sac_params[name]], param, lambda tensor: tensor.unsqueeze(0).repeat(n_components, 1, 1)))
        elif name.split(".")[0] in ("mu", "log_std"):
            pairs.append(([sac_params[name]], param, lambda tensor: tile_head(tensor, n_components)))
        else:
            pairs.append(([sac_params[name]], param, lambda tensor: tensor))
    return pairs


def critic_pairs(q_networks: list[nn.Sequential], ensemble: EnsembleMLP, n_components: int) -> list[Pair]:
    """SAC's Q-networks into the mixture critic's ensemble; each network's one output goes to every component's head."""
    linears = [[module for module in q_net if isinstance(module, nn.Linear)] for q_net in q_networks]
    n_layers = len(ensemble.weights)
    if any(len(member) != n_layers for member in linears) or len(linears) != ensemble.n_members:
        raise ValueError(
            f"SAC's critic ({len(linears)} networks of {[len(member) for member in linears]} layers) does not fit the "
            f"mixture critic ({ensemble.n_members} networks of {n_layers} layers): n_critics or net_arch differ"
        )
    pairs: list[Pair] = []
    for layer in range(n_layers):
        repeat = n_components if layer == n_layers - 1 else 1

        def weights(*tensors: th.Tensor, repeat: int = repeat) -> th.Tensor:
            return stack_linear_weights(*tensors, repeat=repeat)

        def biases(*tensors: th.Tensor, repeat: int = repeat) -> th.Tensor:
            return stack_linear_biases(*tensors, repeat=repeat)

        pairs.append(([member[layer].weight for member in linears], ensemble.weights[layer], weights))
        pairs.append(([member[layer].bias for member in linears], ensemble.biases[layer], biases))
    return pairs


def module_pairs(source: nn.Module, target: nn.Module) -> list[Pair]:
    """Parameter by parameter, for two modules of the same structure (e.g. features extractors)."""
    return [
        ([source_param], target_param, lambda tensor: tensor)
        for source_param, target_param in zip(source.parameters(), target.parameters(), strict=True)
    ]


@th.no_grad()
def copy_parameters(pairs: list[Pair]) -> None:
    """Write each pair's transformed source into its target parameter."""
    for sources, target, transform in pairs:
        value = transform(*sources)
        if value.shape != target.shape:
            raise ValueError(f"a SAC parameter of shape {tuple(value.shape)} does not fit the mixture's {tuple(target.shape)}")
        target.copy_(value)


def copy_optimizer_state(source: th.optim.Optimizer, target: th.optim.Optimizer, pairs: list[Pair]) -> None:
    """
    Carry Adam's state (step count and moments) over: each moment is transformed as its parameter is.

    Parameters the source optimiser has not stepped yet (or that have no source, like a gate) keep a fresh state.
    """
    for sources, target_param, transform in pairs:
        states = [source.state.get(param) for param in sources]
        if not all(states):
            continue
        new_state: dict[str, Any] = {}
        for key, value in states[0].items():  # type: ignore[union-attr]
            if isinstance(value, th.Tensor) and value.shape == sources[0].shape:
                new_state[key] = transform(*[state[key] for state in states]).clone()  # type: ignore[index]
            else:
                new_state[key] = value.clone() if isinstance(value, th.Tensor) else value
        target.state[target_param] = new_state


def mixture_from_sac(
    cls: "type[SelfMixture]",
    sac: SAC,
    n_components: int = 3,
    copy_replay_buffer: bool = False,
    env: "GymEnv | None" = None,
    **kwargs: Any,
) -> "SelfMixture":
    """``cls.from_sac(sac, ...)``: see :meth:`sb3_mixture.SACM.from_sac`, whose arguments these are."""
    # A class of SAC's with policies of its own (a mixture's) is not a SAC model to copy
    if not isinstance(sac, SAC) or type(sac).policy_aliases is not SAC.policy_aliases:
        raise TypeError(f"from_sac needs a stable_baselines3.SAC model, got {type(sac).__name__}")
    env = env if env is not None else sac.get_env()
    if env is None:
        raise ValueError("from_sac: the SAC model has no environment (it was loaded without one): pass env=")
    if copy_replay_buffer and kwargs.get("critic_data", "shared") != "shared":
        raise ValueError(f"from_sac: copy_replay_buffer=True needs critic_data='shared', got {kwargs['critic_data']!r}")
    policy = next((name for name, klass in SAC.policy_aliases.items() if klass is sac.policy_class), None)
    if policy is None:
        aliases = list(SAC.policy_aliases)
        raise TypeError(f"from_sac: the SAC model's policy {sac.policy_class.__name__} is not one of {aliases}")
    # SB3 fills in the plain buffer class itself; a mixture with critic_data != "shared" then picks its own
    buffer_class = None if sac.replay_buffer_class in (ReplayBuffer, DictReplayBuffer) else sac.replay_buffer_class
    settings = dict(
        learning_rate=sac.learning_rate, buffer_size=sac.buffer_size, learning_starts=sac.learning_starts,
        batch_size=sac.batch_size, tau=sac.tau, gamma=sac.gamma,
        train_freq=(sac.train_freq.frequency, sac.train_freq.unit.value), gradient_steps=sac.gradient_steps,
        action_noise=sac.action_noise, replay_buffer_class=buffer_class,
        replay_buffer_kwargs=copy.deepcopy(sac.replay_buffer_kwargs), optimize_memory_usage=sac.optimize_memory_usage,
        n_steps=sac.n_steps, ent_coef=sac.ent_coef, target_update_interval=sac.target_update_interval,
        target_entropy=sac.target_entropy, use_sde=sac.use_sde, sde_sample_freq=sac.sde_sample_freq,
        use_sde_at_warmup=sac.use_sde_at_warmup, stats_window_size=sac._stats_window_size,
        tensorboard_log=sac.tensorboard_log, policy_kwargs=copy.deepcopy(sac.policy_kwargs), verbose=sac.verbose,
        seed=sac.seed, device=sac.device,
    )  # fmt: skip
    model = cls(policy, env, n_components=n_components, **{**settings, **kwargs})
    n = model.n_components
    actor = actor_pairs(sac.actor, model.actor, n)
    critics = []
    for sac_critic, critic in ((sac.critic, model.critic), (sac.critic_target, model.critic_target)):
        pairs = critic_pairs(sac_critic.q_networks, critic.q_ensemble, n)
        if not sac.policy.share_features_extractor:
            pairs = module_pairs(sac_critic.features_extractor, critic.features_extractor) + pairs
        critics.append(pairs)
    copy_parameters(actor + critics[0] + critics[1])
    copy_optimizer_state(sac.actor.optimizer, model.actor.optimizer, actor)
    copy_optimizer_state(sac.critic.optimizer, model.critic.optimizer, critics[0])
    if sac.log_ent_coef is not None and model.log_ent_coef is not None:
        temperature = [([sac.log_ent_coef], model.log_ent_coef, lambda tensor: tensor.expand(n))]
        copy_parameters(temperature)  # type: ignore[arg-type]
        copy_optimizer_state(sac.ent_coef_optimizer, model.ent_coef_optimizer, temperature)  # type: ignore[arg-type]
    model.num_timesteps, model._n_updates, model._episode_num = sac.num_timesteps, sac._n_updates, sac._episode_num
    model._current_progress_remaining = sac._current_progress_remaining
    if copy_replay_buffer:
        model.replay_buffer = copy.deepcopy(sac.replay_buffer)
    return model


# --- Which algorithm saved a file -------------------------------------------------------------------------------------

# What SB3's load takes
ModelPath = str | pathlib.Path | io.BufferedIOBase

# DDPG is TD3 with these settings fixed by its constructor: a td3.policies file with other values was saved by TD3
_FIXED_BY_CONSTRUCTOR = {"DDPG": {"policy_delay": 1, "target_noise_clip": 0.0}}


@dataclass(frozen=True)
class SavedModel:
    """
    What a model file's ``data`` says about the algorithm that saved it.

    :param algorithms: the algorithms that can have saved it: one where the data tells (a recorded ``algorithm_name``,
        or a policy module of a single algorithm), several where it does not, none for a policy no known algorithm has
    :param policy_module: the module of its policy class, "" if the data does not name it
    """

    algorithms: tuple[str, ...]
    policy_module: str


def display_path(path: Any) -> str:
    """How an error message names a file: its path, or "the file" for a file object."""
    return repr(str(path)) if isinstance(path, (str, pathlib.Path)) else "the file"


def _read_data(path: ModelPath) -> "dict[str, Any] | None":
    """The ``data`` entry of an SB3 zip file (JSON), with SB3's ``.zip`` suffix rule; None if it cannot be read."""
    try:
        if isinstance(path, (str, pathlib.Path)):
            file = pathlib.Path(path)
            if not file.exists():
                file = pathlib.Path(f"{path}.zip")
            with zipfile.ZipFile(file) as archive:
                return json.loads(archive.read("data"))
        position = path.tell()  # type: ignore[union-attr]
        try:
            with zipfile.ZipFile(path) as archive:  # type: ignore[arg-type]
                return json.loads(archive.read("data"))
        finally:
            path.seek(position)  # type: ignore[union-attr]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None  # SB3's load then reports what is wrong with the file


@functools.cache
def _policy_module_users() -> dict[str, tuple[str, ...]]:
    """The module of each policy class of SB3's and sb3-contrib's algorithms (their policy aliases) -> the algorithms."""
    import sb3_contrib
    import stable_baselines3
    from stable_baselines3.common.base_class import BaseAlgorithm

    users: dict[str, set[str]] = {}
    for package in (stable_baselines3, sb3_contrib):
        for name in package.__all__:
            algorithm = getattr(package, name)
            if isinstance(algorithm, type) and issubclass(algorithm, BaseAlgorithm):
                for policy in algorithm.policy_aliases.values():
                    users.setdefault(policy.__module__, set()).add(algorithm.__name__)
    return {module: tuple(sorted(names)) for module, names in users.items()}


def saved_model(path: ModelPath) -> "SavedModel | None":
    """
    Which algorithm saved a model file, from its ``data`` (JSON) alone: nothing is loaded or unpickled. None if that
    cannot be read, or for a mixture file from before ``algorithm_name`` was recorded (taken as the loader's own).

    SB3 writes the policy class into ``data`` as a dict of the class's attributes, ``__module__`` among them; models
    of this package also record ``algorithm_name``.
    """
    data = _read_data(path)
    if data is None:
        return None
    entry = data.get("policy_class")
    module = str(entry.get("__module__", "")) if isinstance(entry, dict) else ""
    if "algorithm_name" in data:
        return SavedModel((str(data["algorithm_name"]),), module)
    if "n_components" in data:
        return None
    algorithms = tuple(
        algorithm
        for algorithm in _policy_module_users().get(module, ())
        if all(data.get(key, value) == value for key, value in _FIXED_BY_CONSTRUCTOR.get(algorithm, {}).items())
    )
    return SavedModel(algorithms, module)


def _one_of(names: tuple[str, ...]) -> str:
    """``"A, B or C"``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def renamed_legacy_parameters(params: dict[str, Any]) -> dict[str, Any]:
    """
    A saved file's parameters under the names this version saves them by: files saved before issue 29 hold the
    diversity charge's discriminator as ``discriminator`` and ``discriminator.optimizer``, now the module
    ``diversity`` (whose ``discriminator`` it is) and ``diversity.optimizer``.
    """
    if "discriminator" not in params:
        return params
    renamed = dict(params)
    renamed["diversity"] = {f"discriminator.{key}": value for key, value in renamed.pop("discriminator").items()}
    if "discriminator.optimizer" in renamed:
        renamed["diversity.optimizer"] = renamed.pop("discriminator.optimizer")
    return renamed


def check_saved_algorithm(loader: str, path: ModelPath) -> None:
    """
    Raise a one-line ``ValueError`` if ``path`` holds a model of another algorithm than ``loader`` (e.g. ``"SACM"``).

    It names the algorithm where the file's data tells it, else the module of the file's policy class and the
    algorithms known to use that module's policies. A file that cannot be read passes: SB3's load then says what is
    wrong with it.
    """
    saved = saved_model(path)
    if saved is None or saved.algorithms == (loader,):
        return
    where = f"{loader}.load: {display_path(path)} holds"
    if len(saved.algorithms) == 1:
        (algorithm,) = saved.algorithms
        hint = f"load it with {algorithm}.load"
        if algorithm == "SAC":
            hint += f", or start a mixture from it with {loader}.from_sac(SAC.load(...))"
        raise ValueError(f"{where} a {algorithm} model, not a {loader}: {hint}")
    policy = "whose policy class the file does not name"
    if saved.policy_module:
        policy = f"whose policy is from module {saved.policy_module}"
    hint = "load it with the algorithm that saved it"
    if saved.algorithms:
        hint += f" ({_one_of(saved.algorithms)} use that module's policies)"
    raise ValueError(f"{where} a model {policy}, not a {loader}: {hint}")
