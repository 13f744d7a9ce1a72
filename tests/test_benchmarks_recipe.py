"""
The switching evidence and what users are shown of it: the README's recipe block is the configuration the evidence's
result files record (its mixture options the benchmarks' SWITCH), ``make evidence`` rebuilds that evidence, and the
benchmarks record the component the policy itself names as the best.
"""

import ast
import inspect
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import SMALL, benchmarks_common, pendulum
from stable_baselines3 import SAC

from sb3_mixture import SACM

ROOT = Path(__file__).resolve().parent.parent
# The switching study (docs/evidence.md section 6): the recipe's runs, block announced and hidden
EVIDENCE = ROOT / "benchmarks" / "results" / "route_change_20k"
SWITCHING_SECTION = "## Switching when the task changes"


def value_of(node: ast.expr):
    """A literal, or ``dict(key=literal, ...)`` as the README spells ``policy_kwargs``."""
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "dict" and not node.args:
        return {keyword.arg: value_of(keyword.value) for keyword in node.keywords}
    return ast.literal_eval(node)


def readme_recipe(readme: str) -> dict:
    """The keyword arguments of the ``SACM(...)`` call in the Python block of the README's switching section."""
    section = re.search(rf"^{SWITCHING_SECTION}.*?$(.*?)^## ", readme, flags=re.MULTILINE | re.DOTALL)
    assert section, f"the README has no section {SWITCHING_SECTION!r}"
    blocks = re.findall(r"^```python$(.*?)^```$", section.group(1), flags=re.MULTILINE | re.DOTALL)
    calls = [
        node
        for block in blocks
        for node in ast.walk(ast.parse(block))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "SACM"
    ]
    assert len(calls) == 1, f"the switching section should build the recipe with one SACM(...) call, not {len(calls)}"
    (call,) = calls
    assert ast.literal_eval(call.args[0]) == "MlpPolicy"  # the policy build_model gives every benchmark run
    return {keyword.arg: value_of(keyword.value) for keyword in call.keywords}


def evidence_settings() -> dict:
    """The SACM arguments in the ``config`` of the recipe's result files: one value for every seed and condition."""
    parameters = inspect.signature(SACM).parameters
    paths = sorted(EVIDENCE.glob("route_change*/sacm_switch_n4_s*.json"))
    assert len(paths) == 20, "the switching evidence is 10 seeds with the block announced and 10 with it hidden"
    variants = []
    for path in paths:
        config = json.loads(path.read_text())["config"]
        # The config also records the budget (phase1_steps, ...), which is no argument of the model
        settings = {key: value for key, value in config.items() if key in parameters}
        if settings not in variants:
            variants.append(settings)
    assert len(variants) == 1, f"the recipe's runs used different settings: {variants}"
    return variants[0]


def differences(recipe: dict, evidence: dict) -> dict:
    """The settings where a model built as ``SACM("MlpPolicy", env, **recipe)`` differs from the evidence's runs:
    ``{name: (recipe's value or SACM's default, evidence's value)}``, and anything the recipe sets that they did not."""
    defaults = {name: parameter.default for name, parameter in inspect.signature(SACM).parameters.items()}
    found = {name: (recipe.get(name, defaults[name]), value) for name, value in evidence.items()}
    found = {name: pair for name, pair in found.items() if pair[0] != pair[1]}
    found.update({name: (value, "not set by the evidence") for name, value in recipe.items() if name not in evidence})
    return found


def test_the_readme_recipe_has_the_benchmarks_mixture_options():
    common = benchmarks_common()
    recipe = readme_recipe((ROOT / "README.md").read_text())
    assert {key: recipe.get(key) for key in common.SWITCH} == common.SWITCH
    # And SWITCH is what the evidence ran: a change to it would no longer be the measured recipe
    assert {key: evidence_settings()[key] for key in common.SWITCH} == common.SWITCH


def test_the_readme_recipe_is_the_configuration_behind_the_evidence():
    assert differences(readme_recipe((ROOT / "README.md").read_text()), evidence_settings()) == {}


def test_the_check_sees_settings_the_readme_leaves_out():
    """The README's block before issue 29 lacked the small-task settings: SACM's defaults are not the evidence's."""
    readme = (ROOT / "README.md").read_text()
    lines = ("    policy_kwargs=dict(net_arch=[64, 64]),\n", "    buffer_size=100_000,\n", "    learning_starts=1000,\n")
    for line in lines:
        assert readme.count(line) == 1
        readme = readme.replace(line, "")
    assert differences(readme_recipe(readme), evidence_settings()) == {
        "policy_kwargs": (None, {"net_arch": [64, 64]}),
        "buffer_size": (1_000_000, 100_000),
        "learning_starts": (100, 1000),
    }


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_evidence_rebuilds_the_switching_reports(tmp_path):
    # A dry run (-n) prints the commands without running any
    result = subprocess.run(
        ["make", "-n", "evidence", f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    commands = [line.split("/bin/python ", 1)[-1] for line in result.stdout.splitlines()]
    for condition in ("", "--hidden-block "):
        assert f"benchmarks/route_change.py {condition}report --out benchmarks/results/route_change_20k" in commands
    assert any(command.endswith("benchmarks/goal_removal.py report") for command in commands)


def test_the_benchmarks_record_the_component_the_policy_names():
    common = benchmarks_common()
    model = SACM("MlpPolicy", pendulum(), n_components=3, component_schedule="returns", **SMALL)
    assert common.return_statistics(model) == {}  # no episode yet
    choice = model.policy.component_choice
    choice.record_episode(2, 5.0)
    choice.record_episode(0, 1.0)
    choice.record_episode(0, 2.0)
    assert common.return_statistics(model) == {
        "component_returns": [1.5, None, 5.0],
        "episode_counts": [2, 0, 1],
        "best_return_component": 2,
    }
    # Nothing for SAC or for a mixture whose components share every episode
    assert common.return_statistics(SAC("MlpPolicy", pendulum(), **SMALL)) == {}
    assert common.return_statistics(SACM("MlpPolicy", pendulum(), n_components=2, **SMALL)) == {}
