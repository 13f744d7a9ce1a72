"""Watching a trained agent headless: record_video renders MuJoCo with OSMesa, enjoy plays without a window."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_python

from sb3_mixture.rendering import configure_headless_rendering, exit_if_cannot_show, osmesa_library

# Variables that would give the subprocesses a display or a rendering back end: without them, the entry
# points' own defaults are what is tested
DISPLAY_VARIABLES = ("DISPLAY", "WAYLAND_DISPLAY", "MUJOCO_GL", "PYOPENGL_PLATFORM")


def _headless_environ() -> dict[str, str]:
    environ = {key: value for key, value in os.environ.items() if key not in DISPLAY_VARIABLES}
    # The runs are tiny, and the suite shares two cores with whatever else runs
    environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return environ


def _run(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return run_python(*args, cwd=cwd, env=_headless_environ(), check=check)


def _require_osmesa() -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("headless MuJoCo rendering with OSMesa is only set up on Linux")
    if osmesa_library() is None:
        pytest.skip(
            "OSMesa (libOSMesa) not found, so MuJoCo cannot render without a display: "
            "install Debian's libosmesa6 (apt-get install libosmesa6), as .ci/run does"
        )


@pytest.fixture(scope="module")
def hopper_log_folder(tmp_path_factory):
    # Training renders nothing: no OSMesa needed here
    folder = tmp_path_factory.mktemp("video")
    _run(
        "-m", "sb3_mixture.train", "--algo", "sacm", "--env", "Hopper-v5", "-n", "100", "-f", str(folder), "--seed", "0",
        "--num-threads", "1",
        "--hyperparams", "learning_starts:50", "train_freq:50", "gradient_steps:5", "buffer_size:1000",
        "policy_kwargs:dict(net_arch=[16,16])", "n_components:2",
        cwd=folder,
    )  # fmt: skip
    assert (folder / "sacm" / "Hopper-v5_1" / "Hopper-v5.zip").is_file()
    return folder


@pytest.mark.slow
def test_record_video_renders_hopper_headless(hopper_log_folder):
    _require_osmesa()
    pytest.importorskip("moviepy", reason="RL Zoo's video recorder needs moviepy: pip install sb3_mixture[video]")
    imageio = pytest.importorskip("imageio.v3", reason="reading the video back needs imageio")
    video_folder = hopper_log_folder / "videos"
    n_frames = 20
    _run(
        "-m", "sb3_mixture.record_video", "--algo", "sacm", "--env", "Hopper-v5", "-f", str(hopper_log_folder),
        "-n", str(n_frames), "-o", str(video_folder),
        cwd=hopper_log_folder,
    )  # fmt: skip
    videos = sorted(video_folder.glob("*.mp4"))
    assert [video.name for video in videos] == ["final-model-sacm-Hopper-v5-step-0-to-step-20.mp4"]
    assert videos[0].stat().st_size > 5_000

    frames = imageio.imread(videos[0], plugin="FFMPEG")
    # The reset frame and one per step
    assert frames.shape == (n_frames + 1, 480, 480, 3)
    # Not black or blank: the scene (floor, sky, hopper) has contrast
    assert frames.mean() > 20 and frames.std() > 20
    # The hopper moves: consecutive frames differ, and the last is far from the first
    assert all(np.any(frames[i] != frames[i + 1]) for i in range(n_frames))
    assert np.abs(frames[-1].astype(float) - frames[0]).mean() > 0.5


@pytest.mark.slow
def test_enjoy_without_rendering_headless(hopper_log_folder):
    result = _run(
        "-m", "sb3_mixture.enjoy", "--algo", "sacm", "--env", "Hopper-v5", "-f", str(hopper_log_folder),
        "--no-render", "-n", "20", "--num-threads", "1",
        cwd=hopper_log_folder,
    )  # fmt: skip
    assert "Loading" in result.stdout


@pytest.mark.slow
def test_enjoy_with_rendering_headless_stops_with_advice(tmp_path):
    # A window cannot open without a display (glfw would abort the process): a clear message instead
    if not sys.platform.startswith("linux"):
        pytest.skip("the check for a display is Linux-only")
    result = _run(
        "-m", "sb3_mixture.enjoy", "--algo", "sacm", "--env", "Hopper-v5", "-f", str(tmp_path), cwd=tmp_path, check=False
    )
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "--no-render" in result.stderr and "sb3_mixture.record_video" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "environ, osmesa, expected",
    [
        # No display, nothing configured: OSMesa for both MuJoCo and PyOpenGL
        ({}, True, {"MUJOCO_GL": "osmesa", "PYOPENGL_PLATFORM": "osmesa"}),
        ({"PYOPENGL_PLATFORM": "osmesa"}, True, {"MUJOCO_GL": "osmesa", "PYOPENGL_PLATFORM": "osmesa"}),
        # The user's choices are kept
        ({"MUJOCO_GL": "egl"}, True, {"MUJOCO_GL": "egl"}),
        ({"MUJOCO_GL": "glfw", "PYOPENGL_PLATFORM": "glx"}, True, {"MUJOCO_GL": "glfw", "PYOPENGL_PLATFORM": "glx"}),
        ({"PYOPENGL_PLATFORM": "egl"}, True, {"PYOPENGL_PLATFORM": "egl"}),
        # A display: windows and GPU back ends work, nothing to do
        ({"DISPLAY": ":0"}, True, {"DISPLAY": ":0"}),
        ({"WAYLAND_DISPLAY": "wayland-0"}, True, {"WAYLAND_DISPLAY": "wayland-0"}),
        # OSMesa not installed: naming it would only change which error the user gets
        ({}, False, {}),
    ],
)
def test_configure_headless_rendering(monkeypatch, environ, osmesa, expected):
    monkeypatch.setattr(sys, "platform", "linux")
    updated = dict(environ)
    assert configure_headless_rendering(updated, osmesa_available=osmesa) == (expected != environ)
    assert updated == expected


def test_configure_headless_rendering_changes_nothing_off_linux(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    environ: dict[str, str] = {}
    assert not configure_headless_rendering(environ, osmesa_available=True)
    assert environ == {}


def test_exit_if_cannot_show(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    with pytest.raises(SystemExit, match="--no-render"):
        exit_if_cannot_show(["enjoy.py", "--algo", "sacm"], environ={})
    for argv in (["enjoy.py", "--no-render"], ["enjoy.py", "--no-rend"], ["enjoy.py", "-h"]):
        exit_if_cannot_show(argv, environ={})
    exit_if_cannot_show(["enjoy.py", "--algo", "sacm"], environ={"DISPLAY": ":1"})
