from sb3_mixture.sacm.policies import CnnPolicy, MlpPolicy, MultiInputPolicy
from sb3_mixture.sacm.sacm import SACM

__all__ = ["SACM", "CnnPolicy", "MlpPolicy", "MultiInputPolicy"]
