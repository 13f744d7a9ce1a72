"""
Rendering defaults for the RL Zoo entry points on machines without a display.

MuJoCo renders through the OpenGL back end named by ``MUJOCO_GL``; with it unset, gymnasium tries glfw, then
EGL, then OSMesa. On a Linux machine with no display and no GPU, glfw cannot open one and Mesa's EGL
creates a context that MuJoCo cannot load (``mujoco.FatalError: gladLoadGL error``), so videos fail unless the
user picks OSMesa, Mesa's software renderer (Debian/Ubuntu: ``apt-get install libosmesa6``).
:func:`configure_headless_rendering` makes that choice for them when they have not made one.

Rendering to a window (RL Zoo's ``enjoy`` without ``--no-render``) needs a display whatever the back end:
:func:`exit_if_cannot_show` stops with advice instead of the abort glfw ends in.
"""

import ctypes.util
import os
import sys
from collections.abc import MutableMapping, Sequence


def is_headless(environ: "MutableMapping[str, str] | None" = None) -> bool:
    """True on Linux when neither an X11 nor a Wayland display is set (other systems always have one)."""
    environ = os.environ if environ is None else environ
    if not sys.platform.startswith("linux"):
        return False
    return not (environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def osmesa_library() -> "str | None":
    """The name of the OSMesa library the dynamic loader finds (e.g. ``libOSMesa.so.8``), or None."""
    return ctypes.util.find_library("OSMesa")


def configure_headless_rendering(
    environ: "MutableMapping[str, str] | None" = None, osmesa_available: "bool | None" = None
) -> bool:
    """
    Set ``MUJOCO_GL=osmesa`` (and ``PYOPENGL_PLATFORM=osmesa``) when nothing else is configured.

    Only on a Linux machine without a display, where the library is installed, and when the user has set
    neither ``MUJOCO_GL`` nor a ``PYOPENGL_PLATFORM`` other than osmesa: an explicit choice (e.g.
    ``MUJOCO_GL=egl`` on a GPU server) is always kept. Must run before MuJoCo or PyOpenGL are imported
    (both read the variables once, at import).

    :param environ: the environment to update (default: ``os.environ``)
    :param osmesa_available: whether OSMesa is installed (default: ask the dynamic loader)
    :return: whether the defaults were set
    """
    environ = os.environ if environ is None else environ
    if environ.get("MUJOCO_GL") or not is_headless(environ):
        return False
    pyopengl_platform = environ.get("PYOPENGL_PLATFORM")
    if pyopengl_platform and pyopengl_platform.lower() != "osmesa":
        return False
    if osmesa_available is None:
        osmesa_available = osmesa_library() is not None
    if not osmesa_available:
        return False
    environ["MUJOCO_GL"] = "osmesa"
    environ["PYOPENGL_PLATFORM"] = "osmesa"
    return True


def _asks_no_render(argv: Sequence[str]) -> bool:
    # argparse also accepts unambiguous prefixes: --no-r, --no-rend, ... (RL Zoo has no other --no-* option)
    return any(len(arg) >= len("--no-") and "--no-render".startswith(arg) for arg in argv[1:])


def exit_if_cannot_show(argv: Sequence[str], environ: "MutableMapping[str, str] | None" = None) -> None:
    """
    Stop RL Zoo's ``enjoy`` with advice when it would render to a window on a machine without a display.

    ``enjoy`` calls ``env.render("human")``: a glfw window for MuJoCo (which aborts the process without a
    display), an OpenCV window for ``rgb_array`` envs. Neither can work headless, OSMesa or not.
    """
    if _asks_no_render(argv) or "-h" in argv or "--help" in argv or not is_headless(environ):
        return
    sys.exit(
        "sb3_mixture.enjoy: no display (DISPLAY and WAYLAND_DISPLAY are unset), so it cannot open a window to render "
        "in. Pass --no-render to play without rendering, or record a video instead:\n"
        "  python -m sb3_mixture.record_video --algo <algo> --env <env> -f <log folder> -n 1000"
    )
