"""Semi-Soft Actor-Critic Mixture (S2ACM): SACM whose critic head i sees a partial sum of the entropy terms."""

from typing import TypeVar

import torch as th
from stable_baselines3.common.type_aliases import MaybeCallback

from sb3_mixture.entropy import MixtureSamples, partial_sum_entropies
from sb3_mixture.sacm.sacm import SACM

SelfS2ACM = TypeVar("SelfS2ACM", bound="S2ACM")


class S2ACM(SACM):
    """
    S2ACM (the paper's section 6, eq. 14): identical to :class:`~sb3_mixture.SACM` except for the entropy
    bonus in the critic targets. Head i's target uses ``sum_{j<=i} w_j H_j`` (SPEC.md section 3), so head 1
    sees only component 1's mixed marginal entropy and head N the full mixture entropy; the asymmetry is
    meant to make the components and their Q-functions diverge. Takes the same arguments as SACM.
    """

    def _head_entropies(self, samples: MixtureSamples, terms: th.Tensor) -> th.Tensor:
        return partial_sum_entropies(samples, terms, self.n_components)

    def learn(
        self: SelfS2ACM,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "S2ACM",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfS2ACM:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )
