"""The README's test command, which CI runs (.ci/run), lints the tree before it runs the tests."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_test_runs_ruff_before_pytest(tmp_path):
    # A dry run (-n) prints the commands without running any; a VENV that does not exist prints the install too
    result = subprocess.run(
        ["make", "-n", "test", f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    commands = result.stdout.splitlines()

    def first(fragment: str) -> int:
        found = [index for index, command in enumerate(commands) if fragment in command]
        assert found, f"`make test` does not run {fragment!r}: {commands}"
        return found[0]

    pytest_run = first("-m pytest")
    assert first("ruff check") < pytest_run
    assert first("ruff format --check") < pytest_run
    assert "make test" in (ROOT / ".ci" / "run").read_text()
