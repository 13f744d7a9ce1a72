"""
RL Zoo wiring: the train/enjoy entry points and what train prints, our hyperparameter files, and loading for play
without a replay buffer.
"""

import subprocess
from pathlib import Path

import gymnasium as gym
import pytest
import yaml
from conftest import benchmarks_common, run_python
from stable_baselines3 import DDPG, SAC, TD3

from sb3_mixture import S2ACM, SACM
from sb3_mixture.sacm.diversity import DiscriminatorDiversity
from sb3_mixture.zoo import for_playing, hyperparams_dir, option_given, register_zoo, with_default_conf_file

ALGOS = {"sacm": SACM, "s2acm": S2ACM, "sac": SAC, "td3": TD3, "ddpg": DDPG}
# Keys RL Zoo consumes itself rather than passing to the algorithm
ZOO_ONLY_KEYS = {
    "n_timesteps", "policy", "normalize", "n_envs", "env_wrapper", "noise_type", "noise_std", "frame_stack", "callback"
}  # fmt: skip


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # One torch thread: the runs are tiny, and the suite shares two cores with whatever else runs
    return run_python(*args, "--num-threads", "1", cwd=cwd)


@pytest.fixture(scope="module")
def trained_log_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zoo")
    _run(
        "-m", "sb3_mixture.train", "--algo", "sacm", "--env", "Pendulum-v1", "-n", "300", "-f", str(folder), "--seed", "0",
        "--hyperparams", "learning_starts:100", "policy_kwargs:dict(net_arch=[16,16])", "n_components:2",
        "mixture_weights:'learned'",
        cwd=folder,
    )  # fmt: skip
    return folder


@pytest.mark.slow
def test_train_uses_our_hyperparameters_and_saves(trained_log_folder):
    run = trained_log_folder / "sacm" / "Pendulum-v1_1"
    assert (run / "Pendulum-v1.zip").is_file()
    config = yaml.load((run / "Pendulum-v1" / "config.yml").read_text(), Loader=yaml.UnsafeLoader)
    config = dict(config)
    # From zoo_hyperparams/sacm.yml (RL Zoo's own files know nothing of sacm), with the command-line override
    assert config["learning_rate"] == pytest.approx(1e-3)
    assert config["n_components"] == 2 and config["mixture_weights"] == "learned"
    model = SACM.load(run / "Pendulum-v1.zip", buffer_size=1)
    assert model.n_components == 2 and model.mixture_weights == "learned" and model.actor.gate is not None


@pytest.mark.slow
def test_enjoy_runs_on_the_trained_agent(trained_log_folder):
    result = _run(
        "-m", "sb3_mixture.enjoy", "--algo", "sacm", "--env", "Pendulum-v1", "-f", str(trained_log_folder),
        "--no-render", "-n", "50",
        cwd=trained_log_folder,
    )  # fmt: skip
    assert "Loading" in result.stdout


@pytest.mark.slow
def test_loading_for_play_allocates_no_replay_buffer(trained_log_folder):
    import rl_zoo3

    path = trained_log_folder / "sacm" / "Pendulum-v1_1" / "Pendulum-v1.zip"
    model = for_playing(SACM).load(path)
    assert type(model) is SACM
    assert model.replay_buffer.buffer_size == 1
    # A plain load keeps the saved buffer size, so the difference is ours
    assert SACM.load(path).replay_buffer.buffer_size > 1
    # What python -m sb3_mixture.enjoy registers: RL Zoo's enjoy loads through ALGOS[algo].load(path, seed=...)
    try:
        register_zoo(for_play=True)
        assert rl_zoo3.ALGOS["sacm"].load(path, seed=0).replay_buffer.buffer_size == 1
    finally:
        register_zoo()


@pytest.mark.slow
def test_baselines_keep_rl_zoo_hyperparameters(tmp_path):
    # --algo sac through our entry point: RL Zoo's own sac.yml (no --conf-file added), SB3's SAC
    _run(
        "-m", "sb3_mixture.train", "--algo", "sac", "--env", "Pendulum-v1", "-n", "200", "-f", str(tmp_path),
        "--hyperparams", "learning_starts:100", "policy_kwargs:dict(net_arch=[16,16])",
        cwd=tmp_path,
    )  # fmt: skip
    run = tmp_path / "sac" / "Pendulum-v1_1"
    args = yaml.load((run / "Pendulum-v1" / "args.yml").read_text(), Loader=yaml.UnsafeLoader)
    assert dict(args)["conf_file"] is None
    assert type(SAC.load(run / "Pendulum-v1.zip", buffer_size=1)) is SAC


@pytest.mark.slow
@pytest.mark.parametrize("verbose", [None, "1"])
def test_train_progress_prints_a_summary_instead_of_the_logger_table(tmp_path, verbose):
    """With --progress (make train), the bar and a summary line, SB3's table in the run's progress.csv; an explicit
    --verbose 1 prints the table as RL Zoo does. A dump of the logger every episode (--log-interval 1): 3 dumps."""
    result = _run(
        "-m", "sb3_mixture.train", "--algo", "sacm", "--env", "Pendulum-v1", "-n", "600", "-f", str(tmp_path),
        "--seed", "0", "--progress", "--eval-freq", "-1", "--log-interval", "1",
        "--hyperparams", "learning_starts:100", "policy_kwargs:dict(net_arch=[16,16])",
        *([] if verbose is None else ["--verbose", verbose]),
        cwd=tmp_path,
    )  # fmt: skip
    run = tmp_path / "sacm" / "Pendulum-v1_1"
    if verbose is None:
        # Before the summary, each of the 3 dumps printed a table of about 25 lines
        assert len(result.stdout.splitlines()) < 30, result.stdout
        assert "rollout/" not in result.stdout
        assert "step 600/600: episodes 3, ep_rew_mean " in result.stdout and "ent_coef " in result.stdout
        assert f"Training logs (SB3's logger table): {run / 'progress.csv'}" in result.stdout
        assert len((run / "progress.csv").read_text().splitlines()) == 1 + 3
    else:
        assert result.stdout.count("rollout/") == 3 and "step 600/600" not in result.stdout
        assert not (run / "progress.csv").exists()


def test_option_given_reads_the_command_line_as_argparse_does():
    assert option_given(["train.py", "--algo", "sacm", "--verbose", "1"], "--verbose")
    assert option_given(["train.py", "--verbose=0"], "--verbose")
    assert option_given(["train.py", "--verb", "2", "-n", "100"], "--verbose")  # argparse's abbreviations
    assert not option_given(["train.py", "--algo", "sacm", "--eval-freq", "-1", "--vec-env", "dummy"], "--verbose")


def test_default_conf_file_only_for_our_algorithms():
    argv = with_default_conf_file(["train.py", "--algo", "sacm", "--env", "Hopper-v5"])
    assert argv[-2:] == ["--conf-file", str(hyperparams_dir() / "sacm.yml")]
    assert with_default_conf_file(["train.py", "--algo", "sac", "--env", "Hopper-v5"])[-1] == "Hopper-v5"
    assert with_default_conf_file(["train.py", "--algo", "sacm", "-conf", "x.yml"])[-1] == "x.yml"


def test_register_zoo():
    import optuna
    import rl_zoo3
    from rl_zoo3.hyperparams_opt import HYPERPARAMS_CONVERTER, HYPERPARAMS_SAMPLER

    register_zoo()
    assert rl_zoo3.ALGOS["sacm"] is SACM and rl_zoo3.ALGOS["s2acm"] is S2ACM
    assert rl_zoo3.ALGOS["sac"] is SAC and rl_zoo3.ALGOS["td3"] is TD3 and rl_zoo3.ALGOS["ddpg"] is DDPG
    # -optimize: RL Zoo's SAC search space plus the mixture's settings, giving valid SACM arguments
    assert {"sacm", "s2acm"} <= set(HYPERPARAMS_SAMPLER) & set(HYPERPARAMS_CONVERTER)
    trial = optuna.trial.FixedTrial(
        {"one_minus_gamma": 0.01, "batch_size_pow": 6, "learning_rate": 1e-3, "train_freq": 4, "tau": 0.01,
         "net_arch": "small", "n_components": 5, "entropy_estimator": "marginal", "critic_data": "own",
         "component_schedule": "episode", "mixture_weights": "learned"}
    )  # fmt: skip
    sampled = HYPERPARAMS_SAMPLER["s2acm"](trial, 1, 1, {"using_her_replay_buffer": False})
    model = S2ACM("MlpPolicy", "Pendulum-v1", buffer_size=1_000, **sampled)
    assert model.n_components == 5 and model.batch_size == 64 and model.gradient_steps == 4
    assert model.mixture_weights == "learned"
    assert model.entropy_estimator == "marginal" and model.critic_data == "own" and model.component_schedule == "episode"


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_every_hyperparameter_entry_builds_its_model(algo):
    entries = yaml.load((hyperparams_dir() / f"{algo}.yml").read_text(), Loader=yaml.UnsafeLoader)
    mujoco = {"Hopper-v5", "HalfCheetah-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5", "Swimmer-v5"}
    assert mujoco | {"Pendulum-v1"} <= set(entries)
    for env_id, hyperparams in entries.items():
        if env_id == "default":
            continue
        kwargs = {key: value for key, value in hyperparams.items() if key not in ZOO_ONLY_KEYS}
        if "policy_kwargs" in kwargs:
            kwargs["policy_kwargs"] = eval(kwargs["policy_kwargs"])  # RL Zoo evaluates this string the same way
        kwargs["buffer_size"] = 1_000
        model = ALGOS[algo](hyperparams["policy"], gym.make(env_id), **kwargs)
        if env_id in mujoco:
            # The paper's settings (docs/algorithm.md section 7)
            assert model.batch_size == 256 and model.learning_rate == pytest.approx(3e-4)
            assert model.train_freq.frequency == 1000 and model.gradient_steps == 1000
            assert model.policy.net_arch in ([400, 300], {"pi": [400, 300], "qf": [400, 300]})
            if algo in ("sacm", "s2acm"):
                assert model.n_components == 3


@pytest.mark.slow
def test_switch_recipe_runs_from_the_zoo_file(tmp_path):
    """Issue 23's recipe is in reach through RL Zoo: zoo_hyperparams/sacm.yml's sb3_mixture/TwoRoutes-v0 entry trains
    (shortened here) and the saved model holds the recipe's options and the returns its components earned."""
    _run(
        "-m", "sb3_mixture.train", "--algo", "sacm", "--env", "sb3_mixture/TwoRoutes-v0", "-n", "400", "-f",
        str(tmp_path), "--seed", "0", "--hyperparams", "learning_starts:100", "policy_kwargs:dict(net_arch=[16,16])",
        cwd=tmp_path,
    )  # fmt: skip
    (saved,) = (tmp_path / "sacm").glob("*/*.zip")
    model = SACM.load(saved, buffer_size=1)
    assert (model.component_schedule, model.critic_data, model.n_components) == ("returns", "own", 4)
    assert (model.diversity_weight, model.return_margin, model.return_exploration) == (1.0, 1.0, 0.3)
    assert model.policy.component_choice.deterministic_component == "best_return"
    assert int(model.policy.component_choice.episode_counts.sum()) >= 10  # 400 steps, episodes of at most 40
    assert isinstance(model.diversity, DiscriminatorDiversity)


def test_switch_recipe_in_the_zoo_file_is_the_benchmarks_recipe():
    """zoo_hyperparams/sacm.yml's sb3_mixture/TwoRoutes-v0 entry and the benchmarks' SWITCH (benchmarks/common.py) are
    one recipe written twice: the README's evidence was measured with the second, users train the first."""
    common = benchmarks_common()
    entry = yaml.load((hyperparams_dir() / "sacm.yml").read_text(), Loader=yaml.UnsafeLoader)["sb3_mixture/TwoRoutes-v0"]
    assert {key: entry[key] for key in common.SWITCH} == common.SWITCH
    # The small-task settings the benchmark trains with, as the zoo entry spells them
    assert entry["buffer_size"] == common.SMALL_TASK_SETTINGS["buffer_size"]
    assert entry["policy_kwargs"] == "dict(net_arch=[64, 64])"
