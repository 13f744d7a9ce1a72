from sb3_mixture.s2acm.s2acm import S2ACM

__all__ = ["S2ACM"]
