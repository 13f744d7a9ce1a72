"""``python -m sb3_mixture.train --algo sacm --env Hopper-v5``: RL Zoo's trainer with SACM and S2ACM registered."""

from sb3_mixture.zoo import run_zoo_script

if __name__ == "__main__":
    run_zoo_script("train")
