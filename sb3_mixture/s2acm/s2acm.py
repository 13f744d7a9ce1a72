"""Semi-Soft Actor-Critic Mixture (S2ACM): SACM whose critic head i sees a partial sum of the entropy terms."""

import torch as th

from sb3_mixture.entropy import MixtureSamples, partial_sum_entropies
from sb3_mixture.sacm.sacm import SACM


class S2ACM(SACM):
    """
    S2ACM (the paper's section 6, eq. 14): identical to :class:`~sb3_mixture.SACM` except for the entropy
    bonus in the critic targets. Head i's target uses ``sum_{j<=i} w_j H_j`` (docs/algorithm.md section 3), so head 1
    sees only component 1's mixed marginal entropy and head N the full mixture entropy; the asymmetry is
    meant to make the components and their Q-functions diverge. Takes the same arguments as SACM.
    """

    def _head_entropies(self, samples: MixtureSamples, terms: th.Tensor) -> th.Tensor:
        return partial_sum_entropies(samples, terms, self.n_components)
