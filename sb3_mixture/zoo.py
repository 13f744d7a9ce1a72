"""
RL Zoo integration: register SACM and S2ACM where RL Zoo looks up algorithms, and point it at our hyperparameters.

RL Zoo (rl_zoo3 2.9) has no plugin hook. Its scripts look algorithms up in ``rl_zoo3.utils.ALGOS`` (re-exported
as ``rl_zoo3.ALGOS``, one dict) and build their ``--algo`` choices from it when they parse arguments, so
:func:`register_zoo` adds our classes there, and the entry points (``python -m sb3_mixture.train`` / ``enjoy`` /
``record_video``) call RL Zoo's own scripts afterwards. Places where RL Zoo names off-policy algorithms itself:

- ``enjoy.py`` / ``record_video.py`` / ``push_to_hub.py`` keep a local ``off_policy_algos`` list and load those
  with ``buffer_size=1``: our players get that default from :func:`for_playing` instead.
- ``hyperparams_opt.py`` keys its Optuna samplers and converters by algorithm name: :func:`register_zoo`
  adds ours (:mod:`sb3_mixture.tuning`: SAC's search space plus the mixture's settings).
- ``train.py`` runs ``exp_manager.ExperimentManager``: :func:`register_zoo` puts
  :class:`sb3_mixture.tuning.MixtureExperimentManager` in its place (checked ``--storage``/``--study-name``/
  ``--trial-id``, trial replay keeping the file's ``policy_kwargs``); the train entry point turns its
  :class:`~sb3_mixture.tuning.TuningOptionError` into a one-line error.
- ``callbacks.ParallelTrainCallback`` reloads the model as ``SAC`` (``isinstance`` holds for SACM):
  :func:`register_zoo` puts :class:`sb3_mixture.callbacks.ParallelTrainCallback` (the model's own class) in its place.
"""

import argparse
import runpy
import sys
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm

from sb3_mixture.s2acm import S2ACM
from sb3_mixture.sacm import SACM

ZOO_ALGOS: dict[str, type[BaseAlgorithm]] = {"sacm": SACM, "s2acm": S2ACM}
ZOO_SCRIPTS = ("train", "enjoy", "record_video")


def hyperparams_dir() -> Path:
    """
    Our ``zoo_hyperparams/`` folder.

    The repository's top-level copy for a source checkout or an editable install, else the copy a regular
    install ships as package data (``sb3_mixture/zoo_hyperparams/``, see setup.py).
    """
    package_dir = Path(__file__).resolve().parent
    candidates = (package_dir.parent / "zoo_hyperparams", package_dir / "zoo_hyperparams")
    for candidate in candidates:
        if (candidate / "sacm.yml").is_file():
            return candidate
    raise FileNotFoundError(f"zoo_hyperparams/sacm.yml not found in any of {[str(path) for path in candidates]}")


def default_conf_file(algo: str) -> "Path | None":
    """Our hyperparameter file for ``algo`` (sacm, s2acm, and the sac/td3/ddpg baselines on v5 tasks), if we ship one."""
    path = hyperparams_dir() / f"{algo}.yml"
    return path if path.is_file() else None


def for_playing(algo_class: type[BaseAlgorithm]) -> Any:
    """
    ``algo_class`` whose ``load`` allocates a one-transition replay buffer unless told otherwise.

    RL Zoo's enjoy/record scripts pass ``buffer_size=1`` only to the algorithms of a list of their own (a local
    variable, so it cannot be extended); this gives ours the same treatment without touching RL Zoo. ``load``
    still returns a plain ``algo_class``.
    """

    class Player(algo_class):  # type: ignore[valid-type, misc]
        @classmethod
        def load(cls, path: Any, env: Any = None, device: Any = "auto", custom_objects: Any = None, **kwargs: Any) -> Any:
            # What RL Zoo's scripts pass to their own off-policy algorithms: no memory is needed to play
            kwargs.setdefault("buffer_size", 1)
            kwargs.setdefault("optimize_memory_usage", False)
            return algo_class.load(path, env=env, device=device, custom_objects=custom_objects, **kwargs)

    Player.__name__ = Player.__qualname__ = algo_class.__name__
    Player.__module__ = algo_class.__module__
    return Player


def register_zoo(algos: "dict[str, type[BaseAlgorithm]] | None" = None, for_play: bool = False) -> None:
    """
    Add SACM and S2ACM (or ``algos``) to RL Zoo's algorithm registry and hyperparameter search.

    :param algos: name -> class to register (default: ``sacm`` and ``s2acm``)
    :param for_play: register the classes wrapped by :func:`for_playing` (for RL Zoo's enjoy/record scripts)
    """
    import rl_zoo3.callbacks
    import rl_zoo3.train
    import rl_zoo3.utils
    from rl_zoo3.hyperparams_opt import HYPERPARAMS_CONVERTER, HYPERPARAMS_SAMPLER

    from sb3_mixture.callbacks import ParallelTrainCallback
    from sb3_mixture.tuning import MixtureExperimentManager, convert_sacm_params, sample_sacm_params

    algos = ZOO_ALGOS if algos is None else algos
    for name, algo_class in algos.items():
        rl_zoo3.utils.ALGOS[name] = for_playing(algo_class) if for_play else algo_class
        HYPERPARAMS_SAMPLER.setdefault(name, sample_sacm_params)
        HYPERPARAMS_CONVERTER.setdefault(name, convert_sacm_params)
    # Both work for every algorithm RL Zoo's do (see the module docstring)
    rl_zoo3.train.ExperimentManager = MixtureExperimentManager  # type: ignore[misc]
    rl_zoo3.callbacks.ParallelTrainCallback = ParallelTrainCallback  # type: ignore[misc]


def _option_value(argv: list[str], names: tuple[str, ...]) -> "str | None":
    """The value of the first of the options ``names`` in ``argv`` (``--name value`` or ``--name=value``)."""
    for index, arg in enumerate(argv):
        for name in names:
            if arg == name and index + 1 < len(argv):
                return argv[index + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def option_given(argv: list[str], option: str) -> bool:
    """
    Whether the command line ``argv`` (``sys.argv``: the program, then its arguments) names ``option``, as argparse
    reads it: ``--verbose 1``, ``--verbose=1`` or an abbreviation such as ``--verb 1``.
    """
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(option, dest="value", nargs="?", default=argparse.SUPPRESS)
    known, _ = parser.parse_known_args(argv[1:])
    return "value" in known


def with_default_conf_file(argv: list[str], use_ours_for: "tuple[str, ...]" = tuple(ZOO_ALGOS)) -> list[str]:
    """
    Add ``--conf-file zoo_hyperparams/<algo>.yml`` to RL Zoo arguments that name none.

    Only for our algorithms by default: ``--algo sac`` (td3, ddpg, ...) keeps RL Zoo's own file unless asked otherwise.
    """
    if _option_value(argv, ("-conf", "--conf-file")) is not None:
        return argv
    algo = _option_value(argv, ("--algo",))
    if algo is None or algo not in use_ours_for:
        return argv
    conf_file = default_conf_file(algo)
    return argv if conf_file is None else [*argv, "--conf-file", str(conf_file)]


def run_zoo_script(script: str) -> None:
    """Run RL Zoo's ``train``, ``enjoy`` or ``record_video`` script on ``sys.argv`` with our algorithms registered."""
    if script not in ZOO_SCRIPTS:
        raise ValueError(f"script must be one of {ZOO_SCRIPTS}, got {script!r}")
    if script == "train":
        register_zoo()
        sys.argv = with_default_conf_file(sys.argv)
        from rl_zoo3.train import train

        from sb3_mixture.tuning import TuningOptionError

        try:
            train()
        except TuningOptionError as error:
            # A bad --storage / --study-name / --trial-id: one line, as argparse reports a bad option
            print(f"python -m sb3_mixture.train: error: {error}", file=sys.stderr)
            raise SystemExit(2) from None
    elif script == "enjoy":
        register_zoo(for_play=True)
        from rl_zoo3.enjoy import enjoy

        enjoy()
    else:
        # record_video is a __main__ script rather than a function
        register_zoo(for_play=True)
        runpy.run_module("rl_zoo3.record_video", run_name="__main__", alter_sys=True)
