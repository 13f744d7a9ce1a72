"""
RL Zoo integration: register SACM and S2ACM where RL Zoo looks up algorithms, and point it at our hyperparameters.

RL Zoo has no plugin hook, so :func:`register_zoo` adds our classes to its ``ALGOS`` dict (the scripts build
their ``--algo`` choices from it at parse time) and the entry points (``python -m sb3_mixture.train`` /
``enjoy``) call RL Zoo's own ``train()`` / ``enjoy()`` afterwards.
"""

import sys
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm

from sb3_mixture.s2acm import S2ACM
from sb3_mixture.sacm import SACM

ZOO_ALGOS: dict[str, type[BaseAlgorithm]] = {"sacm": SACM, "s2acm": S2ACM}


def hyperparams_dir() -> Path:
    """``zoo_hyperparams/``: the repository's copy for a source checkout, else the copy installed under ``share/``."""
    package_dir = Path(__file__).resolve().parent
    installed = Path(sys.prefix) / "share" / "sb3_mixture" / "zoo_hyperparams"
    for candidate in (package_dir.parent / "zoo_hyperparams", installed):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"zoo_hyperparams/ not found next to {package_dir}")


def default_conf_file(algo: str) -> "Path | None":
    """Our hyperparameter file for ``algo`` (sacm, s2acm, and the sac/td3/ddpg baselines on v5 tasks), if we ship one."""
    path = hyperparams_dir() / f"{algo}.yml"
    return path if path.is_file() else None


def register_zoo(algos: "dict[str, type[BaseAlgorithm]] | None" = None) -> None:
    """Add SACM and S2ACM (or ``algos``) to RL Zoo's algorithm registry."""
    import rl_zoo3
    import rl_zoo3.utils

    for registry in {id(rl_zoo3.ALGOS): rl_zoo3.ALGOS, id(rl_zoo3.utils.ALGOS): rl_zoo3.utils.ALGOS}.values():
        registry.update(algos or ZOO_ALGOS)


def _option_value(argv: list[str], names: tuple[str, ...]) -> "str | None":
    for index, arg in enumerate(argv):
        for name in names:
            if arg == name and index + 1 < len(argv):
                return argv[index + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def with_default_conf_file(argv: list[str], use_ours_for: "tuple[str, ...]" = tuple(ZOO_ALGOS)) -> list[str]:
    """
    Add ``--conf-file zoo_hyperparams/<algo>.yml`` to RL Zoo arguments that name none.

    Only for our algorithms by default: ``--algo sac`` keeps RL Zoo's own file unless asked otherwise.
    """
    if _option_value(argv, ("-conf", "--conf-file")) is not None:
        return argv
    algo = _option_value(argv, ("--algo",))
    if algo is None or algo not in use_ours_for:
        return argv
    conf_file = default_conf_file(algo)
    return argv if conf_file is None else [*argv, "--conf-file", str(conf_file)]


def for_playing(algo_class: type[BaseAlgorithm]) -> Any:
    """
    ``algo_class`` whose ``load`` allocates a one-transition replay buffer unless told otherwise.

    RL Zoo's enjoy/record scripts pass ``buffer_size=1`` only to algorithms in a list of their own; this
    gives ours the same treatment without touching RL Zoo. ``load`` still returns a plain ``algo_class``.
    """

    class Player(algo_class):  # type: ignore[valid-type, misc]
        @classmethod
        def load(cls, path: Any, env: Any = None, device: Any = "auto", custom_objects: Any = None, **kwargs: Any) -> Any:
            kwargs.setdefault("buffer_size", 1)
            return algo_class.load(path, env=env, device=device, custom_objects=custom_objects, **kwargs)

    Player.__name__ = Player.__qualname__ = algo_class.__name__
    return Player


def run_zoo_script(script: str) -> None:
    """Run RL Zoo's ``train`` or ``enjoy`` (or ``record_video``) with our algorithms registered."""
    if script == "train":
        register_zoo()
        sys.argv = with_default_conf_file(sys.argv)
        from rl_zoo3.train import train

        train()
    elif script == "enjoy":
        register_zoo({name: for_playing(cls) for name, cls in ZOO_ALGOS.items()})
        from rl_zoo3.enjoy import enjoy

        enjoy()
    else:
        raise ValueError(f"script must be 'train' or 'enjoy', got {script!r}")
