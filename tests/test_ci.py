"""The README's test command, which CI runs (.ci/run), lints the tree before it runs the tests."""

import re
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


def readme_test_command(readme: str) -> str:
    """The README's test command: the line of its set-up section's code commented ``# the test suite``."""
    section = re.search(r"^## Set-up.*?$(.*?)^## ", readme, flags=re.MULTILINE | re.DOTALL)
    assert section, "the README has no set-up section"
    code = "".join(re.findall(r"^```bash$(.*?)^```$", section.group(1), flags=re.MULTILINE | re.DOTALL))
    commands = [line.split("#")[0].strip() for line in code.splitlines() if line.partition("#")[2].strip() == "the test suite"]
    assert len(commands) == 1 and commands[0], f"the README's set-up section has no single test command: {commands}"
    return commands[0]


def check_runs(script: str, command: str) -> None:
    """
    Fail unless ``script`` has a line that is exactly ``command``: not another command that contains it (``make
    test-fast``), not commented out, nothing added.
    """
    lines = [line.strip() for line in script.splitlines()]
    assert command in lines, f"the script does not run {command!r} as a line of its own"


def test_ci_runs_the_readmes_test_command():
    command = readme_test_command((ROOT / "README.md").read_text())
    assert command == "make test"  # the target the test above dry-runs
    check_runs((ROOT / ".ci" / "run").read_text(), command)


def test_the_check_fails_when_the_readme_says_another_command():
    readme = (ROOT / "README.md").read_text()
    assert readme.count("make test    # the test suite") == 1
    changed = readme.replace("make test    # the test suite", "make test-fast    # the test suite")
    with pytest.raises(AssertionError, match="does not run 'make test-fast'"):
        check_runs((ROOT / ".ci" / "run").read_text(), readme_test_command(changed))


@pytest.mark.parametrize(
    "line", ["make test-fast", "# make test", "make test || true", "echo make test", "make test ARGS=-x", "make tests"]
)
def test_the_check_fails_on_any_other_line(line):
    script = (ROOT / ".ci" / "run").read_text()
    lines = script.splitlines()
    assert lines.count("make test") == 1
    changed = "\n".join(line if original == "make test" else original for original in lines)
    with pytest.raises(AssertionError, match="does not run 'make test'"):
        check_runs(changed, "make test")
