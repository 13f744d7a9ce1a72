"""``python -m sb3_mixture.enjoy --algo sacm --env Hopper-v5 -f logs/``: RL Zoo's player with SACM and S2ACM registered."""

from sb3_mixture.zoo import run_zoo_script

if __name__ == "__main__":
    run_zoo_script("enjoy")
