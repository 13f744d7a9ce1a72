"""
Torch building blocks: batched ensembles of MLPs (one batched matmul per layer), the precision the networks run in,
and whether Adam can run fused.
"""

import contextlib
import functools
import math
from collections.abc import Sequence

import torch as th
from torch import nn


class EnsembleMLP(nn.Module):
    """
    ``n_members`` independent MLPs stored as stacked weights.

    Each member is initialised like ``nn.Linear`` layers built by SB3's ``create_mlp`` (uniform in
    ``+-1/sqrt(fan_in)``), so an ensemble of K members is distributed like K separate SB3 critics,
    but costs one ``baddbmm`` per layer instead of K small matmuls.

    :param n_members: number of independent networks (SB3's ``n_critics``)
    :param input_dim: input size, shared by all members
    :param output_dim: outputs per member (the number of mixture components for a critic)
    :param net_arch: hidden layer sizes
    :param activation_fn: activation after each hidden layer
    """

    def __init__(
        self,
        n_members: int,
        input_dim: int,
        output_dim: int,
        net_arch: list[int],
        activation_fn: type[nn.Module] = nn.ReLU,
    ):
        super().__init__()
        self.n_members = n_members
        self.layer_sizes = [input_dim, *net_arch, output_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:], strict=True):
            bound = 1.0 / math.sqrt(fan_in)
            self.weights.append(nn.Parameter(th.empty(n_members, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(th.empty(n_members, 1, fan_out).uniform_(-bound, bound)))
        self.activation = activation_fn()

    def forward(self, inputs: th.Tensor) -> th.Tensor:
        """
        :param inputs: (R, input_dim), the same rows for every member
        :return: (n_members, R, output_dim)
        """
        hidden = th.baddbmm(self.biases[0], inputs.expand(self.n_members, -1, -1), self.weights[0])
        return self._later_layers(hidden, self.weights, self.biases)

    def _later_layers(self, hidden: th.Tensor, weights: Sequence[th.Tensor], biases: Sequence[th.Tensor]) -> th.Tensor:
        """The layers after the first, on its output (n_members, R, width)."""
        # Indexed: a slice of the ParameterLists would build new ParameterLists at every call
        for layer in range(1, len(weights)):
            hidden = th.baddbmm(biases[layer], self.activation(hidden), weights[layer])
        return hidden

    def forward_state_actions(
        self,
        states: th.Tensor,
        actions: th.Tensor,
        weights: "Sequence[th.Tensor] | None" = None,
        biases: "Sequence[th.Tensor] | None" = None,
    ) -> th.Tensor:
        """
        Every member on M actions per state, with inputs ``[state, action]``.

        The first layer is split into its state and action parts, so the state part is computed once per
        state rather than once per (state, action) pair: with large observations it dominates the cost.

        :param states: (B, state_dim), the first ``state_dim`` inputs
        :param actions: (B, M, action_dim), the remaining inputs
        :param weights: the layers' weights to compute with instead of the parameters (e.g. their detached values),
            shaped as ``self.weights``; None: the parameters
        :param biases: likewise for ``self.biases``
        :return: (n_members, B, M, output_dim)
        """
        weights = self.weights if weights is None else weights
        biases = self.biases if biases is None else biases
        if len(weights) != len(self.weights) or len(biases) != len(self.biases):
            raise ValueError(f"weights and biases must have {len(self.weights)} layers, got {len(weights)} and {len(biases)}")
        batch_size, n_actions, action_dim = actions.shape
        state_dim = states.shape[-1]
        first_weight = weights[0]
        state_part = th.baddbmm(biases[0], states.expand(self.n_members, -1, -1), first_weight[:, :state_dim])
        action_rows = actions.reshape(1, batch_size * n_actions, action_dim).expand(self.n_members, -1, -1)
        action_part = th.bmm(action_rows, first_weight[:, state_dim:]).view(self.n_members, batch_size, n_actions, -1)
        hidden = (action_part + state_part.unsqueeze(2)).view(self.n_members, batch_size * n_actions, -1)
        return self._later_layers(hidden, weights, biases).view(self.n_members, batch_size, n_actions, -1)


@functools.cache
def fused_adam_supported(device_type: str = "cpu") -> bool:
    """
    Whether this torch's Adam can run fused on tensors of ``device_type`` (on the CPU from torch 2.4 on).

    Found by trying one step on a one-element tensor rather than from version strings: builds differ, and torch has
    moved the check between the constructor and ``step``. Cached: one probe per process and device type.
    """
    try:
        param = th.zeros(1, device=device_type, requires_grad=True)
        optimizer = th.optim.Adam([param], fused=True)
        param.grad = th.zeros_like(param)
        optimizer.step()
    except (RuntimeError, TypeError, ValueError):
        return False
    return True


def network_precision(matmul_precision: str, device: th.device) -> contextlib.AbstractContextManager:
    """
    The context the networks of ``train()`` run in: autocast to bfloat16 with ``matmul_precision="bf16"`` (the callers
    cast the outputs back to float32), nothing with ``"fp32"``.
    """
    if matmul_precision == "bf16":
        return th.autocast(device_type=device.type, dtype=th.bfloat16)
    return contextlib.nullcontext()
