"""
Starting a mixture from a trained SAC: every component a copy of SAC's Gaussian, every critic head a copy of its Q.

A one-component SACM computes exactly SAC's losses, so a SAC model copied into an N=1 mixture (weights, Adam moments,
temperature, counters and, if asked, the replay buffer) predicts and trains exactly as the SAC model would. With N > 1
the components start identical and the mixture's entropy bonus (which pays a component less for actions others
already cover) is what moves them apart.

A copy is described by *pairs* ``(source tensors, target parameter, transform)``: ``transform(*sources)`` has the
target's shape. The same pairs copy the parameters and, key by key, their Adam moments.
"""

from collections.abc import Callable
from typing import Any

import torch as th
from torch import nn

from sb3_mixture.torch_layers import EnsembleMLP

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
