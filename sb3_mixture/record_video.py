"""``python -m sb3_mixture.record_video --algo sacm --env Hopper-v5 -f logs/``: RL Zoo's video recorder with SACM and S2ACM."""

from sb3_mixture.zoo import run_zoo_script

if __name__ == "__main__":
    run_zoo_script("record_video")
