"""sb3-mixture: mixture policies for maximum-entropy RL in Stable-Baselines3 (SACM and S2ACM)."""

from sb3_mixture import envs  # noqa: F401  (registers the sb3_mixture/ gymnasium ids)
from sb3_mixture.s2acm import S2ACM
from sb3_mixture.sacm import SACM

__version__ = "0.1.0"

__all__ = ["S2ACM", "SACM", "__version__"]
