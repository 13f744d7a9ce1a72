"""Tuning through RL Zoo (-optimize): the search space, trial replay (--trial-id), clear option errors, parallel training."""

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import run_python

from sb3_mixture import S2ACM, SACM, entropy, options
from sb3_mixture.tuning import (
    COMPONENT_SCHEDULES,
    CRITIC_DATA,
    ENTROPY_ESTIMATORS,
    MIXTURE_WEIGHTS,
    convert_sacm_params,
    sample_sacm_params,
    tuned_experiment,
)
from sb3_mixture.zoo import register_zoo, run_zoo_script

SAC_SPACE = {"one_minus_gamma", "batch_size_pow", "learning_rate", "train_freq", "tau", "net_arch"}
MIXTURE_SPACE = {"n_components", "mixture_weights", "entropy_estimator", "critic_data", "component_schedule"}
NO_HER = {"using_her_replay_buffer": False}
# Tiny budgets: 200 steps of which the last 20 train (the search space includes big nets and batches)
TINY_CONF = {
    "Pendulum-v1": {
        "n_timesteps": 200,
        "policy": "MlpPolicy",
        "learning_starts": 180,
        "buffer_size": 1000,
        "policy_kwargs": "dict(log_std_init=-2, activation_fn=nn.Tanh)",
    }
}


def write_conf(folder: Path) -> Path:
    path = folder / "tiny.yml"
    path.write_text(yaml.safe_dump(TINY_CONF))
    return path


def zoo_train(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """``python -m sb3_mixture.train`` in a subprocess: niced, one torch thread (the suite shares two cores)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return run_python("-m", "sb3_mixture.train", *args, "--num-threads", "1", cwd=cwd, env=env, nice=True, check=check)


def test_search_space_is_sac_plus_the_mixture():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(6):
        trial = study.ask()
        with tuned_experiment({"policy_kwargs": "dict(log_std_init=-2, activation_fn=nn.Tanh)"}):
            sampled = sample_sacm_params(trial, 1, 1, NO_HER)
        assert set(trial.params) == SAC_SPACE | MIXTURE_SPACE
        assert trial.distributions["n_components"] == optuna.distributions.IntDistribution(1, 8)
        assert trial.distributions["entropy_estimator"].choices == ENTROPY_ESTIMATORS
        assert trial.distributions["critic_data"].choices == CRITIC_DATA
        assert trial.distributions["component_schedule"].choices == COMPONENT_SCHEDULES
        assert trial.distributions["mixture_weights"].choices == MIXTURE_WEIGHTS == ("uniform", "learned")
        # The file's other policy_kwargs stay, under the sampled net_arch
        import torch.nn as nn

        assert sampled["policy_kwargs"]["log_std_init"] == -2 and sampled["policy_kwargs"]["activation_fn"] is nn.Tanh
        assert sampled["policy_kwargs"]["net_arch"] in ([64, 64], [256, 256], [400, 300])
        # What --trial-id rebuilds from the stored parameters is what the trial ran with
        with tuned_experiment({"policy_kwargs": "dict(log_std_init=-2, activation_fn=nn.Tanh)"}):
            assert convert_sacm_params(trial.params) == sampled
        # Valid arguments for both algorithms
        for algo in (SACM, S2ACM):
            model = algo("MlpPolicy", "Pendulum-v1", buffer_size=100, **sampled)
            assert model.n_components == trial.params["n_components"]
            assert model.critic_data == trial.params["critic_data"]
            learned = trial.params["mixture_weights"] == "learned"
            assert (model.actor.gate is not None) == learned and (model.mixture_weights == "learned") == learned
            assert model.policy_kwargs["log_std_init"] == -2


def test_search_space_offers_every_choice_the_package_has():
    # Against the package's own constants, not the tuning module's: a new estimator or critic_data mode is searched
    trial = optuna.create_study().ask()
    sample_sacm_params(trial, 1, 1, NO_HER)
    assert trial.distributions["entropy_estimator"].choices == entropy.ENTROPY_ESTIMATORS
    assert trial.distributions["critic_data"].choices == options.CRITIC_DATA


def test_search_space_leaves_what_the_file_fixes():
    trial = optuna.create_study().ask()
    base = {"mixture_weights": [0.5, 0.5], "n_steps": 3}
    with tuned_experiment(base):
        sampled = sample_sacm_params(trial, 1, 1, NO_HER)
    assert "n_components" not in sampled and "critic_data" not in sampled and "mixture_weights" not in sampled
    # One sampled component per state: learned weights would not work, so they are not searched
    trial = optuna.create_study().ask()
    with tuned_experiment({"component_sampling": "sample"}):
        sampled = sample_sacm_params(trial, 1, 1, NO_HER)
    assert "mixture_weights" not in trial.params and "n_components" in trial.params
    trial = optuna.create_study().ask()
    with tuned_experiment({"deterministic_component": 4}):
        sample_sacm_params(trial, 1, 1, {"using_her_replay_buffer": True, "her_kwargs": {}})
    assert trial.distributions["n_components"].low == 5 and "critic_data" not in trial.params
    # Without an experiment (RL Zoo's own manager): RL Zoo's policy_kwargs, the net_arch alone
    sampled = sample_sacm_params(optuna.create_study().ask(), 1, 1, NO_HER)
    assert set(sampled["policy_kwargs"]) == {"net_arch"}


# Hyperparameter files whose settings leave only some of the searched values valid
CONSTRAINING_FILES = {
    "floor": {"mixture_weight_floor": 0.05},  # a floor needs state-dependent weights: learned, not uniform
    "big floor": {"mixture_weight_floor": 0.3},  # ... and fewer than 1 / 0.3 components
    "sampled component": {"component_sampling": "sample"},  # learned weights need every component sampled
    "fixed component": {"deterministic_component": 2},  # component 2 needs 3 components or more
    "sampled component and floor": {"component_sampling": "sample", "mixture_weight_floor": 0.05},  # one component
    "n-step": {"n_steps": 3, "deterministic_component": 5, "mixture_weight_floor": 0.1},  # 6-9 components, shared data
    "many components": {"n_components": 12, "deterministic_component": 10},  # none of 1-8: the file's 12 stay
}


@pytest.mark.parametrize("base", CONSTRAINING_FILES.values(), ids=CONSTRAINING_FILES.keys())
def test_every_sampled_trial_is_valid_with_the_files_settings(base):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(12):
        trial = study.ask()
        with tuned_experiment(base):
            sampled = sample_sacm_params(trial, 1, 1, NO_HER)
        # The trial's arguments over the file's, as RL Zoo passes them: the constructors' checks must pass
        for algo in (SACM, S2ACM):
            algo("MlpPolicy", "Pendulum-v1", buffer_size=100, **{**base, **sampled})
        with tuned_experiment(base):
            assert convert_sacm_params(trial.params) == sampled  # --trial-id replays it


def searched(base: dict, additional_args: dict = NO_HER, algorithm=SACM) -> dict:
    """The mixture's searched settings of one trial: name -> the choices or the (low, high) of n_components."""
    trial = optuna.create_study().ask()
    with tuned_experiment(base, algorithm):
        sample_sacm_params(trial, 1, 1, additional_args)
    space = {name: trial.distributions[name] for name in MIXTURE_SPACE if name in trial.distributions}
    return {name: getattr(space, "choices", None) or (space.low, space.high) for name, space in space.items()}


def test_search_space_offers_what_validates_with_the_file():
    everything = searched({})
    assert everything["mixture_weights"] == MIXTURE_WEIGHTS and everything["n_components"] == (1, 8)
    floor = searched({"mixture_weight_floor": 0.05})
    assert floor == {**everything, "mixture_weights": ("learned",)}  # weights with a floor to keep: learned ones
    assert searched({"mixture_weight_floor": 0.3})["n_components"] == (1, 3)  # a floor under 1 / n_components
    assert searched({"deterministic_component": 2}) == {**everything, "n_components": (3, 8)}
    # HER relabels goals and n-step returns span components: critic_data stays the default, "shared"
    her = searched({"mixture_weight_floor": 0.1}, {"using_her_replay_buffer": True, "her_kwargs": {}})
    assert "critic_data" not in her and her["n_components"] == (1, 8) and her["mixture_weights"] == ("learned",)
    assert "critic_data" not in searched({"n_steps": 3})
    # A file no searched value can make valid is refused with the options' own message
    with pytest.raises(ValueError, match=r"^no value of the searched .* works .*: matmul_precision must be one of"):
        searched({"matmul_precision": "fp64"})


def test_search_space_follows_the_algorithm(monkeypatch):
    from rl_zoo3.exp_manager import ExperimentManager

    from sb3_mixture import tuning

    # Soft-value weights are SACM's only: an S2ACM file with them cannot work, whatever is drawn
    assert "entropy_estimator" in searched({"mixture_weights": "soft_value"}, algorithm=SACM)
    with pytest.raises(ValueError, match="only available with SACM"):
        searched({"mixture_weights": "soft_value"}, algorithm=S2ACM)
    # The manager tells the sampler which algorithm it tunes
    register_zoo()
    seen = []
    monkeypatch.setattr(ExperimentManager, "objective", lambda self, trial: seen.append(tuning._EXPERIMENT.get()))
    manager = tuning.MixtureExperimentManager.__new__(tuning.MixtureExperimentManager)
    manager.algo, manager._hyperparams = "s2acm", {"n_timesteps": 200}
    manager.objective(None)
    assert seen == [({"n_timesteps": 200}, S2ACM)]


@pytest.mark.slow
def test_optimize_then_replay_a_trial(tmp_path):
    conf = write_conf(tmp_path)
    storage = f"sqlite:///{tmp_path / 'tuning.db'}"
    common = ["--algo", "sacm", "--env", "Pendulum-v1", "-conf", str(conf), "--storage", storage, "--study-name", "tiny"]
    result = zoo_train(
        *common, "-optimize", "--n-trials", "2", "-n", "200", "--eval-episodes", "1", "--no-optim-plots",
        "-f", str(tmp_path / "tune"),
        cwd=tmp_path,
    )  # fmt: skip
    study = optuna.load_study(study_name="tiny", storage=storage)
    assert [trial.state for trial in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert set(study.trials[0].params) == SAC_SPACE | MIXTURE_SPACE
    # RL Zoo's final report (needs pandas)
    assert "Number of finished trials:  2" in result.stdout
    assert len(list((tmp_path / "tune" / "sacm").glob("report_Pendulum-v1_*.csv"))) == 1

    # Trial 0 (RL Zoo alone would skip it: 0 is falsy), with --hyperparams over the trial
    zoo_train(
        *common, "--trial-id", "0", "-n", "200", "-f", str(tmp_path / "replay"), "--hyperparams", "tau:0.02",
        cwd=tmp_path,
    )  # fmt: skip
    run = tmp_path / "replay" / "sacm" / "Pendulum-v1_1"
    config = dict(yaml.load((run / "Pendulum-v1" / "config.yml").read_text(), Loader=yaml.UnsafeLoader))
    with tuned_experiment(TINY_CONF["Pendulum-v1"]):
        expected = convert_sacm_params(study.trials[0].params)
    expected["tau"] = 0.02
    assert {key: config[key] for key in expected} == expected
    assert config["learning_starts"] == 180  # from the file
    import torch.nn as nn

    assert config["policy_kwargs"]["activation_fn"] is nn.Tanh and config["policy_kwargs"]["log_std_init"] == -2
    model = SACM.load(run / "Pendulum-v1.zip", buffer_size=1)
    params = study.trials[0].params
    assert model.n_components == params["n_components"] and model.entropy_estimator == params["entropy_estimator"]
    assert model.critic_data == params["critic_data"] and model.component_schedule == params["component_schedule"]
    assert model.policy.net_arch == expected["policy_kwargs"]["net_arch"] and model.tau == 0.02


@pytest.fixture
def one_trial_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="present", storage=storage, direction="maximize")
    study.ask()  # stays RUNNING
    return storage


def _train_error(argv: list[str], capsys, monkeypatch, cwd: Path) -> str:
    """The one-line error ``python -m sb3_mixture.train <argv>`` stops with (run in this process: no import cost)."""
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["train.py", "--algo", "sacm", "--env", "Pendulum-v1", "--num-threads", "1", *argv])
    try:
        with pytest.raises(SystemExit) as stopped:
            run_zoo_script("train")
    finally:
        register_zoo()
    assert stopped.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("python -m sb3_mixture.train: error: ")
    return lines[0]


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["-optimize", "--storage", "not a url", "--study-name", "s"], "--storage not a url: not a database URL"),
        (["-optimize", "--storage", "nosuchdb://host/db", "--study-name", "s"], "unknown database type 'nosuchdb'"),
        (["--trial-id", "0"], "--trial-id 0 needs --storage and --study-name"),
        (["--storage", "sqlite:///no_such.db", "--study-name", "present", "--trial-id", "0"], "no such database file"),
        (["--storage", "ONE", "--study-name", "absent", "--trial-id", "0"], "--study-name absent: no such study in"),
        (["--storage", "ONE", "--study-name", "present", "--trial-id", "3"], "--trial-id 3: no such trial in study present"),
        (["--storage", "ONE", "--study-name", "present", "--trial-id", "0"], "has no hyperparameters (RUNNING)"),
    ],
)  # fmt: skip
def test_bad_tuning_options_stop_with_one_line(argv, expected, one_trial_study, tmp_path, capsys, monkeypatch):
    argv = [one_trial_study if arg == "ONE" else arg for arg in argv]
    message = _train_error(argv, capsys, monkeypatch, tmp_path)
    assert expected in message
    assert not (tmp_path / "no_such.db").exists()


def test_unreachable_server_stops_with_one_line(tmp_path, capsys, monkeypatch):
    # Nothing listens on port 1; the password must not be shown
    url = "postgresql://tuner:secret@127.0.0.1:1/tuning"
    message = _train_error(["-optimize", "--storage", url, "--study-name", "s"], capsys, monkeypatch, tmp_path)
    assert "--storage postgresql://tuner:***@127.0.0.1:1/tuning: " in message and "secret" not in message
    # With the [distributed] extra the driver reports the refused connection, else the missing driver is named
    assert "Connection refused" in message or "is not installed" in message


@pytest.mark.slow
def test_unknown_study_from_the_command_line_prints_no_traceback(one_trial_study, tmp_path):
    result = zoo_train(
        "--algo", "sacm", "--env", "Pendulum-v1", "--storage", one_trial_study, "--study-name", "absent", "--trial-id", "1",
        cwd=tmp_path, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"python -m sb3_mixture.train: error: --study-name absent: no such study in --storage {one_trial_study} "
        "(its studies: present)"
    ]


def test_report_without_completed_trials_does_not_crash(one_trial_study, tmp_path, capsys, monkeypatch):
    # A worker that finds --max-total-trials reached by trials still running runs none: RL Zoo's report
    # (study.best_trial) would raise
    monkeypatch.chdir(tmp_path)
    conf = write_conf(tmp_path)
    argv = ["-conf", str(conf), "-optimize", "--storage", one_trial_study, "--study-name", "present",
            "--max-total-trials", "1", "-f", str(tmp_path / "logs"), "--no-optim-plots", "-n", "200"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["train.py", "--algo", "sacm", "--env", "Pendulum-v1", "--num-threads", "1", *argv])
    run_zoo_script("train")
    assert "No trial of the study has completed yet: no report" in capsys.readouterr().out
    assert len(optuna.load_study(study_name="present", storage=one_trial_study).trials) == 1


def test_parallel_train_callback_trains_the_mixture(tmp_path):
    import rl_zoo3.callbacks
    from rl_zoo3.utils import get_callback_list

    register_zoo()
    # As a hyperparameter file names it: callback: rl_zoo3.callbacks.ParallelTrainCallback
    (callback,) = get_callback_list({"callback": [{"rl_zoo3.callbacks.ParallelTrainCallback": {"gradient_steps": 5}}]})
    assert type(callback) is rl_zoo3.callbacks.ParallelTrainCallback
    model = S2ACM(
        "MlpPolicy", "Pendulum-v1", learning_starts=50, train_freq=(1, "episode"), buffer_size=1000, batch_size=32,
        n_components=2, critic_data="own", policy_kwargs={"net_arch": [16]}, seed=0,
    )  # fmt: skip
    before = {name: value.clone() for name, value in model.policy.state_dict().items()}
    model.learn(600, callback=callback)
    # RL Zoo's would train a plain SAC copy (which fails on the per-component temperatures)
    assert type(callback._model) is S2ACM and callback._model._n_updates > 0
    after = model.policy.state_dict()
    assert any(not (before[name] == after[name]).all() for name in before)  # the collector got the trained weights
    model.save(tmp_path / "parallel")  # saves the trained copy
    assert S2ACM.load(tmp_path / "parallel", buffer_size=1)._n_updates == callback._model._n_updates
