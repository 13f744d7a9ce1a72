"""
``python -m sb3_mixture.record_video --algo sacm --env Hopper-v5 -f logs/``: RL Zoo's video recorder with SACM and S2ACM.

On a Linux machine without a display it renders with OSMesa (``MUJOCO_GL=osmesa``) unless told otherwise: see
:mod:`sb3_mixture.rendering`. Writing the mp4 needs moviepy (``pip install sb3_mixture[video]``).
"""

from sb3_mixture.rendering import configure_headless_rendering
from sb3_mixture.zoo import run_zoo_script

if __name__ == "__main__":
    configure_headless_rendering()
    run_zoo_script("record_video")
