"""
Distributed tuning for real: two workers (``python -m sb3_mixture.train -optimize``) share one study on a PostgreSQL server.

Needs the server's URL in SB3_MIXTURE_TEST_POSTGRES_URL: .ci/run starts Debian's PostgreSQL on loopback and sets it
(locally: ``export SB3_MIXTURE_TEST_POSTGRES_URL="$(.ci/postgres)"``). Without it the test is skipped, saying why.
"""

import os
import re
import subprocess
import sys
import uuid

import optuna
import pytest
import yaml

# Two tuning workers in subprocesses
pytestmark = pytest.mark.slow

URL_VARIABLE = "SB3_MIXTURE_TEST_POSTGRES_URL"
WORKERS = 2
MAX_TOTAL_TRIALS = 4
# Tiny budgets: 300 steps of which the last 20 train (the search space includes big nets and batches)
TINY_CONF = {
    "Pendulum-v1": {
        "n_timesteps": 300,
        "policy": "MlpPolicy",
        "learning_starts": 280,
        "buffer_size": 1000,
        "policy_kwargs": "dict(log_std_init=-2)",
    }
}
# Optuna's log line for each trial a worker ran to its end
TRIAL_ENDED = re.compile(r"Trial (\d+) (?:finished|pruned)")


@pytest.fixture
def postgres_url():
    url = os.environ.get(URL_VARIABLE)
    if not url:
        pytest.skip(
            f"{URL_VARIABLE} is not set: no PostgreSQL server to tune against (.ci/run starts one on loopback; "
            f'locally: export {URL_VARIABLE}="$(.ci/postgres)")'
        )
    return url


def test_two_workers_share_one_study(postgres_url, tmp_path):
    study_name = f"test-two-workers-{uuid.uuid4().hex[:12]}"
    conf = tmp_path / "tiny.yml"
    conf.write_text(yaml.safe_dump(TINY_CONF))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = []
    for index in range(WORKERS):
        # The same command on every worker, each with its own log folder
        command = [
            "nice", "-n", "5", sys.executable, "-m", "sb3_mixture.train", "--algo", "sacm", "--env", "Pendulum-v1",
            "-conf", str(conf), "-optimize", "--n-trials", "2", "--max-total-trials", str(MAX_TOTAL_TRIALS),
            "-n", "300", "--eval-episodes", "1", "--storage", postgres_url, "--study-name", study_name,
            "-f", str(tmp_path / f"worker{index}"), "--no-optim-plots", "--num-threads", "1",
        ]  # fmt: skip
        workers.append(
            subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        )
    try:
        outputs = [worker.communicate(timeout=300) for worker in workers]
        for worker, (out, err) in zip(workers, outputs, strict=True):
            assert worker.returncode == 0, out[-3000:] + err[-3000:]
        study = optuna.load_study(study_name=study_name, storage=postgres_url)
        trials = study.get_trials(deepcopy=False)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
        try:
            optuna.delete_study(study_name=study_name, storage=postgres_url)
        except KeyError:
            pass

    ran = [{int(number) for number in TRIAL_ENDED.findall(err)} for _, err in outputs]
    numbers = sorted(trial.number for trial in trials)
    # Both workers ran trials, none ran another's, and the study holds exactly the trials they ran
    assert all(ran), f"a worker ran no trial: {ran}"
    assert not ran[0] & ran[1], f"trials run twice: {ran}"
    assert set(numbers) == ran[0] | ran[1], f"study {numbers}, workers {ran}"
    assert numbers == list(range(len(trials)))
    assert all(trial.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for trial in trials)
    # Distinct sampled hyperparameters, all of the search space
    assert len({tuple(sorted(trial.params.items())) for trial in trials}) == len(trials)
    assert all({"n_components", "entropy_estimator", "critic_data", "component_schedule"} <= set(t.params) for t in trials)
    # --max-total-trials caps the total; RL Zoo checks it as each trial ends, counting running trials, so a
    # worker that ends a trial just as the other starts one can add one more (at most one per other worker)
    assert MAX_TOTAL_TRIALS <= len(trials) <= MAX_TOTAL_TRIALS + WORKERS - 1
    # Each worker wrote RL Zoo's final report
    for index in range(WORKERS):
        assert len(list((tmp_path / f"worker{index}" / "sacm").glob("report_Pendulum-v1_*.csv"))) == 1
