"""
``python -m sb3_mixture.enjoy --algo sacm --env Hopper-v5 -f logs/``: RL Zoo's player with SACM and S2ACM registered.

Rendering opens a window, so on a machine without a display pass ``--no-render`` or use
``python -m sb3_mixture.record_video`` instead (the player stops with that advice rather than crash).
"""

import sys

from sb3_mixture.rendering import configure_headless_rendering, exit_if_cannot_show
from sb3_mixture.zoo import run_zoo_script

if __name__ == "__main__":
    configure_headless_rendering()
    exit_if_cannot_show(sys.argv)
    run_zoo_script("enjoy")
