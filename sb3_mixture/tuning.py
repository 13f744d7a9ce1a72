"""
Hyperparameter tuning of SACM and S2ACM with RL Zoo's ``-optimize`` (Optuna), on one machine or on many.

- :func:`sample_sacm_params` / :func:`convert_sacm_params`: the search space (RL Zoo's SAC space plus the mixture's
  settings, each offered only the values that the options' own check, :func:`sb3_mixture.options.validate_options`,
  accepts with the hyperparameter file's settings) and the converter RL Zoo applies to a stored trial's parameters
  (``--trial-id``). Both keep the hyperparameter file's other ``policy_kwargs``: RL Zoo's own converter replaces them
  by ``{"net_arch": ...}``.
- :class:`MixtureExperimentManager`: RL Zoo's ``ExperimentManager`` (what ``python -m sb3_mixture.train`` runs) with
  the checks and fixes tuning needs: clear errors for a bad ``--storage``/``--study-name``/``--trial-id``,
  ``--trial-id 0`` honoured (RL Zoo skips it), and no crash in the final report when no trial has completed yet.
  It also keeps ``--progress``'s bar readable: a summary line in place of SB3's logger table (``prints_summary``).

Distributed tuning is RL Zoo's: workers sharing ``--storage`` (e.g. a PostgreSQL URL) and ``--study-name`` add
trials to one Optuna study, and ``--max-total-trials`` caps their total (README, "Tuning").
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import itertools
import random
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from pprint import pprint
from typing import Any

from rl_zoo3.exp_manager import ExperimentManager
from stable_baselines3.common.base_class import BaseAlgorithm

from sb3_mixture.callbacks import TrainingSummaryCallback
from sb3_mixture.entropy import ENTROPY_ESTIMATORS
from sb3_mixture.options import CRITIC_DATA, validate_options
from sb3_mixture.sacm.sacm import SACM
from sb3_mixture.zoo import option_given

# The mixture's own search space, searched on top of RL Zoo's SAC space (rl_zoo3.hyperparams_opt.sample_sac_params).
# Every entropy estimator and critic_data mode is searched: the choices are the package's own (imported above), so a
# new one is searched as soon as it exists. Which values of these can work together with the experiment's other
# settings is validate_options' to say (see sample_sacm_params).
N_COMPONENTS_RANGE = (1, 8)
COMPONENT_SCHEDULES = ("step", "episode")
# Fixed uniform or learned mixing weights (Optuna's choices must be plain values: "uniform" stands for None)
MIXTURE_WEIGHTS = ("uniform", "learned")

# The hyperparameters (from the yaml file and --hyperparams) of the experiment being tuned or replayed, and its
# algorithm class, for the sampler and the converter, whose signatures RL Zoo fixes. A context variable: with
# --n-jobs > 1 Optuna runs trials in threads, and each sets it for its own trial.
_EXPERIMENT: contextvars.ContextVar[tuple[dict[str, Any], type] | None] = contextvars.ContextVar(
    "sb3_mixture_experiment", default=None
)


@contextlib.contextmanager
def tuned_experiment(hyperparams: dict[str, Any], algorithm: type = SACM) -> Iterator[None]:
    """
    Within it, :func:`sample_sacm_params` and :func:`convert_sacm_params` build on ``hyperparams``, and the sampler
    searches what ``algorithm`` (SACM, S2ACM) accepts.
    """
    token = _EXPERIMENT.set((hyperparams, algorithm))
    try:
        yield
    finally:
        _EXPERIMENT.reset(token)


# SACM's arguments and their defaults: what a hyperparameter file leaves out
_SACM_DEFAULTS = {name: parameter.default for name, parameter in inspect.signature(SACM.__init__).parameters.items()}


def _experiment_hyperparams() -> dict[str, Any] | None:
    experiment = _EXPERIMENT.get()
    return None if experiment is None else experiment[0]


class TuningOptionError(Exception):
    """A tuning option (``--storage``, ``--study-name``, ``--trial-id``) that cannot work; the message names it."""


def _policy_kwargs_dict(policy_kwargs: Any) -> dict[str, Any]:
    """The yaml's ``policy_kwargs`` as a dict: RL Zoo evaluates the string in its ``exp_manager`` module, so do we."""
    if policy_kwargs is None:
        return {}
    if isinstance(policy_kwargs, str):
        import rl_zoo3.exp_manager

        policy_kwargs = eval(policy_kwargs, vars(rl_zoo3.exp_manager))  # the yaml's own code, as RL Zoo runs it
    return dict(policy_kwargs)


def _keep_other_policy_kwargs(hyperparams: dict[str, Any], base: dict[str, Any] | None) -> dict[str, Any]:
    """``hyperparams`` whose sampled ``policy_kwargs`` (the net_arch) are laid over those of ``base``, not instead."""
    if base is not None and base.get("policy_kwargs") is not None:
        hyperparams["policy_kwargs"] = {
            **_policy_kwargs_dict(base["policy_kwargs"]),
            **hyperparams.get("policy_kwargs", {}),
        }
    return hyperparams


def _option_error(base: dict[str, Any], algorithm: type, additional_args: dict) -> Callable[[dict[str, Any]], str | None]:
    """
    The algorithm's own check of its options (``SACM.check_options``, i.e. :func:`sb3_mixture.options.validate_options`)
    of searched settings (Optuna's choices) over the experiment's: a function of the searched settings that returns the
    check's message, or None if they are valid. What neither gives is SACM's default; the call is built from
    ``validate_options``' parameters, whichever they are.
    """
    if not (isinstance(algorithm, type) and issubclass(algorithm, SACM)):
        algorithm = SACM
    context: dict[str, Any] = {}
    if additional_args.get("using_her_replay_buffer") and base.get("replay_buffer_class") is None:
        from stable_baselines3 import HerReplayBuffer

        context["replay_buffer_class"] = HerReplayBuffer
    # What the algorithm's check takes: validate_options' parameters less those the algorithm itself supplies
    names = [name for name in inspect.signature(validate_options).parameters if name not in ("algorithm", "per_head_entropy")]

    def error(searched: dict[str, Any]) -> str | None:
        searched = {name: _argument(name, value) for name, value in searched.items()}
        settings = {**_SACM_DEFAULTS, **base, **context, **searched}
        try:
            algorithm.check_options(**{name: settings[name] for name in names})
        except (TypeError, ValueError) as exception:
            return str(exception)
        return None

    return error


def _argument(name: str, choice: Any) -> Any:
    """A searched value as the argument it stands for: ``"uniform"`` weights are None."""
    return None if name == "mixture_weights" and choice == "uniform" else choice


def _file_choice(base: dict[str, Any], name: str) -> Any:
    """The value the experiment gives a searched setting (SACM's default if none), as a choice."""
    value = base.get(name, _SACM_DEFAULTS[name])
    return "uniform" if name == "mixture_weights" and value is None else value


def sample_sacm_params(trial: Any, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """
    Optuna sampler for SACM / S2ACM: RL Zoo's SAC search space plus the mixture's settings.

    Searched: ``mixture_weights`` (uniform or learned) and ``n_components`` (1-8) unless the hyperparameter file sets
    the weights, ``entropy_estimator``, ``critic_data`` and ``component_schedule``. Each is offered only the values
    that :func:`sb3_mixture.options.validate_options` accepts together with the file's settings (and the buffer of
    ``additional_args``, HER's): a categorical the values valid for every number of components the file's settings
    allow, fixed for the whole study as Optuna needs; ``n_components`` then the range valid with the values drawn
    (e.g. more components than a fixed ``deterministic_component``, fewer than ``1 / mixture_weight_floor``). A setting
    whose only valid value is the file's (or the default) is left to the file: not searched.
    """
    import optuna
    from rl_zoo3.hyperparams_opt import sample_sac_params

    base, algorithm = _EXPERIMENT.get() or ({}, SACM)
    hyperparams = sample_sac_params(trial, n_actions, n_envs, additional_args)
    error = _option_error(base, algorithm, additional_args)
    space = {
        "mixture_weights": MIXTURE_WEIGHTS,
        "entropy_estimator": ENTROPY_ESTIMATORS,
        "critic_data": CRITIC_DATA,
        "component_schedule": COMPONENT_SCHEDULES,
    }
    search_weights = base.get("mixture_weights") is None
    if not search_weights:
        del space["mixture_weights"]
    # Every combination of the searched values and a number of components (the range's, or the file's own) that
    # validates with the file's settings
    low, high = N_COMPONENTS_RANGE
    numbers = sorted({*range(low, high + 1), _file_choice(base, "n_components")})
    combinations = [dict(zip(space, values, strict=True)) for values in itertools.product(*space.values())]
    valid = [(choices, n) for choices in combinations for n in numbers if error({**choices, "n_components": n}) is None]
    if not valid:
        searched = ", ".join([*space, "n_components"])
        raise ValueError(f"no value of the searched {searched} works with the experiment's hyperparameters: {error({})}")
    allowed = {n for _, n in valid}
    drawn: dict[str, Any] = {}
    for name, choices in space.items():
        # The values valid with each number of components allowed, else (should that leave none) with one of them
        pairs = {(v[name], n) for v, n in valid}
        offered = tuple(c for c in choices if all((c, n) in pairs for n in allowed))
        offered = offered or tuple(c for c in choices if any((c, n) in pairs for n in allowed))
        if offered != (_file_choice(base, name),):
            drawn[name] = trial.suggest_categorical(name, offered)
    if search_weights:
        fits = [n for n in numbers if error({**drawn, "n_components": n}) is None]
        if not fits:  # values drawn that exclude each other (no options do yet)
            raise optuna.TrialPruned(f"no number of components works with {drawn}: {error(drawn)}")
        last = fits[0]
        while last + 1 in fits:
            last += 1
        if (fits[0], last) != (_file_choice(base, "n_components"),) * 2:
            drawn["n_components"] = trial.suggest_int("n_components", fits[0], last)
    hyperparams.update({name: _argument(name, value) for name, value in drawn.items()})
    return _keep_other_policy_kwargs(hyperparams, base)


def convert_sacm_params(sampled_params: dict[str, Any]) -> dict[str, Any]:
    """
    A stored trial's parameters (Optuna's names) as SACM / S2ACM arguments, for ``--trial-id``.

    RL Zoo's off-policy conversion (gamma, batch size, net_arch, gradient steps); the mixture's parameters are
    already argument names. ``policy_kwargs`` keep the experiment's other entries (see :func:`sample_sacm_params`).
    """
    from rl_zoo3.hyperparams_opt import convert_offpolicy_params

    hyperparams = convert_offpolicy_params(sampled_params)
    if hyperparams.get("mixture_weights") == "uniform":
        hyperparams["mixture_weights"] = None
    return _keep_other_policy_kwargs(hyperparams, _experiment_hyperparams())


def _display_url(storage: str) -> str:
    """``storage`` with any password hidden, for messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(storage).render_as_string(hide_password=True)
    except Exception:
        return storage


def open_storage(storage: str, must_exist: bool = False) -> Any:
    """
    The Optuna storage that ``--storage`` names, opened as RL Zoo opens it, or a :class:`TuningOptionError`.

    A path ending in ``.log`` is a journal file; anything else must be a database URL (sqlite, postgresql, ...).

    :param must_exist: the storage should already hold studies (``--trial-id``): do not create a file for it
    """
    import optuna
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    shown = _display_url(storage)
    if storage.endswith(".log"):
        if must_exist and not Path(storage).is_file():
            raise TuningOptionError(f"--storage {shown}: no such journal file")
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage))
    example = "e.g. sqlite:///tuning.db, postgresql://user:password@host:5432/database, or a journal file tuning.log"
    try:
        url = make_url(storage)
    except sqlalchemy.exc.ArgumentError:
        raise TuningOptionError(f"--storage {shown}: not a database URL ({example})") from None
    if must_exist and url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        if not Path(url.database).is_file():
            raise TuningOptionError(f"--storage {shown}: no such database file {url.database}")
    engine_kwargs = {}
    if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        # An unreachable server fails in 10 s rather than after the system's TCP timeout (libpq's option)
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        return _rdb_storage(storage, engine_kwargs)
    except sqlalchemy.exc.NoSuchModuleError:
        raise TuningOptionError(f"--storage {shown}: unknown database type {url.drivername!r} ({example})") from None
    except ImportError as error:
        # Optuna re-raises the missing driver module as a generic ImportError
        missing = getattr(error.__cause__, "name", None) or getattr(error, "name", None) or "its driver"
        hint = " (pip install 'sb3_mixture[distributed]')" if url.get_backend_name() == "postgresql" else ""
        raise TuningOptionError(f"--storage {shown}: the database driver {missing} is not installed{hint}") from None
    except sqlalchemy.exc.SQLAlchemyError as error:
        raise TuningOptionError(f"--storage {shown}: cannot use the database: {_first_line(error)}") from None


def _rdb_storage(storage: str, engine_kwargs: dict[str, Any]) -> Any:
    """Optuna's database storage, which creates its tables in an empty database."""
    import optuna
    import sqlalchemy.exc

    for _ in range(2):
        try:
            return optuna.storages.RDBStorage(storage, engine_kwargs=engine_kwargs)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            # Workers starting together on an empty database race to create those tables: the losers'
            # "already exists" goes away on a second look
            time.sleep(0.5 + random.random())
    return optuna.storages.RDBStorage(storage, engine_kwargs=engine_kwargs)


def _first_line(error: BaseException) -> str:
    """The driver's own message of a database error, without SQLAlchemy's statement dump and links."""
    message = str(getattr(error, "orig", None) or error).strip()
    return message.splitlines()[0] if message else type(error).__name__


def check_trial(storage: str, study_name: str, trial_id: int) -> None:
    """Raise a :class:`TuningOptionError` unless ``storage`` holds ``study_name`` with a trial ``trial_id``."""
    import optuna

    opened = open_storage(storage, must_exist=True)
    shown = _display_url(storage)
    names = optuna.study.get_all_study_names(opened)
    if study_name not in names:
        held = f"its studies: {', '.join(sorted(names))}" if names else "it holds no study"
        raise TuningOptionError(f"--study-name {study_name}: no such study in --storage {shown} ({held})")
    trials = optuna.load_study(study_name=study_name, storage=opened).get_trials(deepcopy=False)
    if not 0 <= trial_id < len(trials):
        held = f"its trials are 0 to {len(trials) - 1}" if trials else "it has no trial yet"
        raise TuningOptionError(f"--trial-id {trial_id}: no such trial in study {study_name} ({held})")
    if not trials[trial_id].params:
        state = trials[trial_id].state.name
        raise TuningOptionError(
            f"--trial-id {trial_id}: trial {trial_id} of study {study_name} has no hyperparameters ({state})"
        )


class MixtureExperimentManager(ExperimentManager):
    """
    RL Zoo's ``ExperimentManager`` with checked tuning options and mixture-aware trial replay.

    - Before anything runs: ``--storage`` is opened (a bad URL, a missing driver or an unreachable server is a
      :class:`TuningOptionError` naming the option), and ``--trial-id`` needs an existing study and trial.
    - Trials search what the algorithm tuned (SACM or S2ACM) accepts with the file's settings.
    - ``--trial-id N`` (N = 0 too) replays trial N's hyperparameters over the file's, below ``--hyperparams``
      (RL Zoo's order), keeping the file's other ``policy_kwargs`` for SACM/S2ACM.
    - The report after ``-optimize`` is skipped, not crashed, when the study has no completed trial yet (a worker
      that finds ``--max-total-trials`` reached by trials still running).
    - With ``--progress`` and no ``--verbose``, training prints a summary line every ``SUMMARY_FREQ`` steps instead
      of SB3's logger table, which goes to ``progress.csv`` in the run's folder (see :meth:`prints_summary`).
    """

    # Steps between two summary lines: every few minutes at Hopper's 20-60 steps/s on 2 cores
    SUMMARY_FREQ = 10_000

    def setup_experiment(self) -> Any:
        self.check_tuning_options()
        return super().setup_experiment()

    def prints_summary(self) -> bool:
        """
        Whether training prints :class:`~sb3_mixture.callbacks.TrainingSummaryCallback`'s lines instead of SB3's
        logger table: with RL Zoo's progress bar, unless the command line names ``--verbose``.

        RL Zoo's default ``--verbose 1`` prints the table every 4 episodes (``--log-interval``), hundreds of lines
        that bury the bar. RL Zoo parses the same ``--verbose 1`` whether given or not, so the command line
        (``sys.argv``) tells: an explicit ``--verbose 1`` keeps the table, ``--verbose 0`` prints neither.
        """
        return self.show_progress and self.verbose > 0 and not option_given(sys.argv, "--verbose")

    def learn(self, model: BaseAlgorithm) -> None:
        # A summary callback from the hyperparameter file's ``callback`` entry (its own summary_freq) replaces ours
        if self.prints_summary() and not any(isinstance(callback, TrainingSummaryCallback) for callback in self.callbacks):
            self.callbacks.append(TrainingSummaryCallback(self.SUMMARY_FREQ, log_folder=self.save_path))
        super().learn(model)

    def check_tuning_options(self) -> None:
        if self.trial_id is not None:
            if not (self.storage and self.study_name):
                raise TuningOptionError(
                    f"--trial-id {self.trial_id} needs --storage and --study-name (the study to replay the trial from)"
                )
            check_trial(self.storage, self.study_name, self.trial_id)
        elif self.optimize_hyperparameters and self.storage:
            open_storage(self.storage)

    def read_hyperparameters(self) -> tuple[dict[str, Any], dict[str, Any]]:
        # RL Zoo would skip trial 0 and replace the file's policy_kwargs: read the file without the trial first
        trial_id, self.trial_id = self.trial_id, None
        try:
            hyperparams, saved_hyperparams = super().read_hyperparameters()
        finally:
            self.trial_id = trial_id
        if trial_id is None or not (self.storage and self.study_name):
            return hyperparams, saved_hyperparams
        with tuned_experiment(hyperparams):
            trial_hyperparams = self.load_trial(self.storage, self.study_name, trial_id)
        # --hyperparams still has the last word
        command_line = self.custom_hyperparams or {}
        trial_hyperparams = {key: value for key, value in trial_hyperparams.items() if key not in command_line}
        print(f"Hyperparameters of trial {trial_id} of study {self.study_name}:")
        pprint(trial_hyperparams)
        hyperparams.update(trial_hyperparams)
        # Sorted, as RL Zoo saves them to config.yml
        return hyperparams, OrderedDict(sorted(hyperparams.items()))

    def objective(self, trial: Any) -> float:
        import rl_zoo3.utils

        with tuned_experiment(self._hyperparams, rl_zoo3.utils.ALGOS[self.algo]):
            return super().objective(trial)

    def hyperparameters_optimization(self) -> None:
        import sqlalchemy.exc

        try:
            super().hyperparameters_optimization()
        except ValueError:
            # Optuna's Study.best_trial, the first thing of RL Zoo's report, when no trial has completed
            if not self._no_completed_trial():
                raise
            print("No trial of the study has completed yet: no report")
        except sqlalchemy.exc.OperationalError as error:
            raise TuningOptionError(f"--storage {_display_url(self.storage or '')}: {_first_line(error)}") from None

    def _no_completed_trial(self) -> bool:
        import optuna

        if not (self.storage and self.study_name):
            return False  # a study in memory is gone: let RL Zoo's error through
        study = optuna.load_study(study_name=self.study_name, storage=open_storage(self.storage))
        return not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
