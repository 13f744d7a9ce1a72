"""One small learning test: SACM must solve Pendulum-v1 on a small budget (about 25 s on 2 CPU cores)."""

import time

import pytest

from sb3_mixture import SACM
from sb3_mixture.evaluation import evaluate_components

# Thousands of training steps
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_pendulum(one_torch_thread):
    # One thread: on a loaded machine two threads of tiny matmuls wait on each other and run many times slower
    start = time.time()
    model = SACM(
        "MlpPolicy",
        "Pendulum-v1",
        learning_rate=1e-3,
        learning_starts=200,
        policy_kwargs=dict(net_arch=[64, 64]),
        seed=0,
    )
    model.learn(6_000)
    print(f"SACM on Pendulum-v1, 6000 steps: {time.time() - start:.1f} s")
    return model


def test_sacm_learns_pendulum(trained_pendulum):
    results = evaluate_components(trained_pendulum, trained_pendulum.get_env(), n_eval_episodes=10)
    # Random play scores about -1200; a solved pendulum scores about -150
    assert results["mixture"][0] > -400, results
    assert results["deterministic"][0] > -400, results
    assert set(results) == {"mixture", "deterministic", "component_0", "component_1", "component_2", "best_component"}
    best = max(results[f"component_{i}"][0] for i in range(3))
    assert results["best_component"][0] == best
