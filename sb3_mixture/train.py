"""``python -m sb3_mixture.train --algo sacm --env Hopper-v5``: RL Zoo's trainer with SACM and S2ACM registered."""

from sb3_mixture.rendering import configure_headless_rendering
from sb3_mixture.zoo import run_zoo_script

if __name__ == "__main__":
    # Anything rendered while training (e.g. a video callback) uses OSMesa on a machine without a display
    configure_headless_rendering()
    run_zoo_script("train")
