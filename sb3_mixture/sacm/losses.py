"""
The losses of one SACM/S2ACM update as pure functions of tensors (docs/algorithm.md sections 3-5, 8 and 10), and the
guarded step that applies one.

Shapes: B states, M samples per state (M = N with one sample of every component), N components and critic heads,
K critic networks. ``train()`` computes the networks' outputs and calls these in the order of the algorithm box.
"""

import torch as th

from sb3_mixture.entropy import MixtureSamples
from sb3_mixture.mixture import component_soft_values


def temperature_loss(log_ent_coef: th.Tensor, samples: MixtureSamples, target_entropy: float) -> th.Tensor:
    """
    J(alpha) = sum_i mean_s [-log alpha_i (log pi_i(a_i|s) + target_entropy)] (eq. 13, docs/algorithm.md section 5).

    With one sample of every component, alpha_i averages over the states in proportion to the weight of its sample
    there: the plain mean with fixed or soft-value weights (section 10), the states its component acts in with learned
    ones (section 8). With one sampled component per state, each state tunes the temperature of its own component.

    :param log_ent_coef: log alpha_i, (N,), the only tensor with a gradient
    """
    entropy_gap = (samples.own_log_prob + target_entropy).detach()  # (B, M)
    one_sample_per_component = samples.components.shape[-1] == log_ent_coef.shape[0]
    if one_sample_per_component:
        state_weights = samples.sample_weights.detach().expand_as(entropy_gap)
        per_component = (state_weights * entropy_gap).sum(dim=0) / state_weights.sum(dim=0).clamp(min=1e-8)
        return -(log_ent_coef * per_component).sum()
    return -(log_ent_coef[samples.components] * entropy_gap).sum(dim=-1).mean()


def mixture_next_values(
    next_q: th.Tensor, samples: MixtureSamples, log_weights: th.Tensor, alphas: th.Tensor, head_entropies: th.Tensor
) -> th.Tensor:
    """
    v_i(s') = sum_j w_j min_k Qbar_{k,i}(s', a'_j) + alpha(s') Hhat^(i)(s'), alpha(s') = sum_j w_j(s') alpha_j
    (docs/algorithm.md section 3): every head's next value is Rao-Blackwellised over the next actions of the mixture.

    :param next_q: min_k Qbar_{k,i}(s', a'_m) of every head at every next sample, (B, M, N)
    :param log_weights: log w(s'), (B, N) or (N,)
    :param head_entropies: the entropy bonus of each head, (B, N) (SACM: the full estimate; S2ACM: partial sums)
    :return: (B, N)
    """
    value = (samples.sample_weights.unsqueeze(-1) * next_q).sum(dim=1)
    mixture_alpha = (log_weights.exp() * alphas).sum(dim=-1, keepdim=True)
    return value + mixture_alpha * head_entropies


def own_next_values(next_q: th.Tensor, samples: MixtureSamples, alphas: th.Tensor) -> th.Tensor:
    """
    v_i(s') = min_k Qbar_{k,i}(s', a'_i) - alpha_i log pi_i(a'_i|s') with soft-value weights (docs/algorithm.md
    section 10): head i is component i's own soft Q-function, so its next value follows component i.

    :param next_q: as in :func:`mixture_next_values`, with one sample of every component (M = N)
    :return: (B, N)
    """
    own_q = next_q.diagonal(dim1=1, dim2=2).unsqueeze(-1)  # head i at component i's sample, (B, N, 1)
    return component_soft_values(own_q, samples.own_log_prob.unsqueeze(-1), alphas)


def critic_loss(current_q: th.Tensor, target_q: th.Tensor, head_masks: "th.Tensor | None" = None) -> th.Tensor:
    """
    0.5 sum_k sum_i mean_s (Q_{k,i}(s, a) - y_i)^2 (docs/algorithm.md section 3); with ``critic_data`` other than
    ``"shared"``, head i's mean runs over the transitions its mask admits.

    :param current_q: Q_{k,i}(s, a) of the stored actions, (K, B, N)
    :param target_q: y_i, (B, N)
    :param head_masks: which transitions each head learns from, (B, N) of 0/1, or None for all
    """
    squared_error = (current_q - target_q) ** 2
    if head_masks is None:
        return 0.5 * squared_error.mean(dim=1).sum()
    per_head = (squared_error * head_masks).sum(dim=1) / head_masks.sum(dim=0).clamp(min=1.0)
    return 0.5 * per_head.sum()


def own_min_q(q_values: th.Tensor, components: th.Tensor) -> th.Tensor:
    """
    min_k Q_{k,c_m}(s, a_m), (B, M): every sample judged by its own component's head (docs/algorithm.md section 4).

    :param q_values: Q_{k,i}(s, a_m) of every network and head at every sample, (K, B, M, N)
    :param components: the component c_m of every sample, (B, M)
    """
    head_index = components.unsqueeze(0).unsqueeze(-1).expand(q_values.shape[0], -1, -1, 1)
    return th.gather(q_values, -1, head_index).squeeze(-1).min(dim=0).values


def actor_loss(own_min_q: th.Tensor, terms: th.Tensor, samples: MixtureSamples, alphas: th.Tensor) -> th.Tensor:
    """
    L = sum_m v_m mean_s [alpha_{c_m} l_m - min_k Q_{k,c_m}(s, a_m)], l_m = -H_m (eqs. 11-12, docs/algorithm.md
    section 4): each sample is judged by its own component's head and charged its own component's temperature.

    :param own_min_q: min_k Q_{k,c_m}(s, a_m), (B, M)
    :param terms: the estimator's per-sample entropy terms H_m, (B, M)
    """
    per_sample = alphas[samples.components] * (-terms) - own_min_q
    return (samples.sample_weights * per_sample).sum(dim=-1).mean()


def check_finite(loss: th.Tensor, name: str) -> None:
    """Stop before an update on a NaN or infinite loss, with a message that says what to check."""
    if not th.isfinite(loss):
        raise RuntimeError(
            f"SACM: the {name} is {loss.item()} (NaN or inf); training stopped before the update. "
            "Check the rewards and observations for NaN/inf, or lower the learning rate."
        )


def optimizer_step(optimizer: th.optim.Optimizer, loss: th.Tensor, name: str) -> None:
    """One gradient step on ``loss``, refused if it is not finite (:func:`check_finite`)."""
    check_finite(loss, name)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
