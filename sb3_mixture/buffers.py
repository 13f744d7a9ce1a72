"""
Replay buffers that remember which component acted in each transition, for ``critic_data="own"`` (docs/algorithm.md
section 3): head i learns only from the transitions that component i acted in (the paper's section 4.2).
"""

from typing import Any, NamedTuple

import numpy as np
import torch as th
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.vec_env import VecNormalize


class MixtureReplayBufferSamples(NamedTuple):
    observations: Any
    actions: th.Tensor
    next_observations: Any
    dones: th.Tensor
    rewards: th.Tensor
    discounts: "th.Tensor | None"
    head_masks: th.Tensor
    """(batch, n_components) float mask: 1 where critic head i learns from the transition"""


class _HeadMaskMixin:
    """Stores a one-hot mask of the acting component next to every transition; the algorithm tells it which acted."""

    buffer_size: int
    n_envs: int
    pos: int

    def __init__(self, *args: Any, n_components: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        self.n_components = n_components
        self.head_masks = np.zeros((self.buffer_size, self.n_envs, n_components), dtype=np.float32)
        self.acting_components: np.ndarray | None = None

    def set_acting_components(self, components: np.ndarray) -> None:
        """The component that acted in each env for the transition about to be added."""
        self.acting_components = np.asarray(components, dtype=np.int64)

    def _store_head_mask(self) -> None:
        if self.acting_components is None:
            raise RuntimeError("critic_data='own' needs each transition's acting component: call set_acting_components()")
        self.head_masks[self.pos] = np.eye(self.n_components, dtype=np.float32)[self.acting_components]

    def _sampled_env_indices(self, rng_state: tuple, n_samples: int) -> np.ndarray:
        # SB3's _get_samples draws the env of each sample with np.random.randint first thing; replay that draw
        # from the same generator state so the masks line up with the transitions without forking SB3's code.
        after = np.random.get_state()
        np.random.set_state(rng_state)
        env_indices = np.random.randint(0, high=self.n_envs, size=(n_samples,))
        np.random.set_state(after)
        return env_indices

    def _with_head_masks(self, samples: NamedTuple, batch_inds: np.ndarray, rng_state: tuple) -> MixtureReplayBufferSamples:
        env_indices = self._sampled_env_indices(rng_state, len(batch_inds))
        masks = th.as_tensor(self.head_masks[batch_inds, env_indices], device=samples.actions.device)
        return MixtureReplayBufferSamples(*samples[:5], getattr(samples, "discounts", None), masks)

    def add(self, *args: Any, **kwargs: Any) -> None:
        self._store_head_mask()
        super().add(*args, **kwargs)  # type: ignore[misc]

    def _get_samples(self, batch_inds: np.ndarray, env: "VecNormalize | None" = None) -> MixtureReplayBufferSamples:
        rng_state = np.random.get_state()
        samples = super()._get_samples(batch_inds, env)  # type: ignore[misc]
        return self._with_head_masks(samples, batch_inds, rng_state)


class MixtureReplayBuffer(_HeadMaskMixin, ReplayBuffer):
    """SB3's ``ReplayBuffer`` with a per-head mask for every transition."""


class MixtureDictReplayBuffer(_HeadMaskMixin, DictReplayBuffer):
    """SB3's ``DictReplayBuffer`` with a per-head mask for every transition."""
