"""Packaging is declared in setup.cfg; this file only ships ``zoo_hyperparams/*.yml`` inside the package."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ZOO_HYPERPARAMS = Path(__file__).resolve().parent / "zoo_hyperparams"


class BuildPyWithZooHyperparams(build_py):
    """
    Copy the repository's top-level ``zoo_hyperparams/*.yml`` to ``sb3_mixture/zoo_hyperparams/`` in the build.

    The files live at the top level for RL Zoo users (``-conf zoo_hyperparams/sacm.yml``); a regular install
    gets them as package data, where ``sb3_mixture.zoo.hyperparams_dir`` finds them. Editable installs read
    the repository's copy directly, so nothing is copied for them.
    """

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "sb3_mixture" / "zoo_hyperparams"
        self.mkpath(str(target))
        for source in sorted(ZOO_HYPERPARAMS.glob("*.yml")):
            self.copy_file(str(source), str(target / source.name))


setup(cmdclass={"build_py": BuildPyWithZooHyperparams})
