"""Files of other algorithms given to SACM/S2ACM.load, and starting a mixture from a trained SAC (SACM.from_sac)."""

import base64
import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch as th
from conftest import ALGOS, pendulum
from stable_baselines3 import A2C, DDPG, PPO, SAC, TD3
from stable_baselines3.common.logger import configure
from stable_baselines3.sac.policies import SACPolicy

from sb3_mixture import S2ACM, SACM
from sb3_mixture.buffers import MixtureReplayBuffer
from sb3_mixture.conversion import check_saved_algorithm


def small() -> dict:
    """Fresh settings each time: SB3 writes into the policy_kwargs it is given."""
    return dict(policy_kwargs=dict(net_arch=[16, 16]), learning_starts=50, batch_size=32, buffer_size=1_000)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- Loading a file saved by another algorithm ----------------------------------------------------------------------


@pytest.mark.parametrize("saver, loader", [(S2ACM, SACM), (SACM, S2ACM)])
def test_mixture_file_of_the_other_mixture_fails_naming_both(saver, loader, tmp_path):
    saver("MlpPolicy", pendulum(50), n_components=2, **small()).save(tmp_path / "model")
    message = rf"^{loader.__name__}.load: .* holds a {saver.__name__} model, not a {loader.__name__}"
    with pytest.raises(ValueError, match=message):
        loader.load(tmp_path / "model")
    # ... and as what it is, it loads (with or without the .zip suffix, from a path or a file object)
    assert type(saver.load(tmp_path / "model")) is saver
    assert type(saver.load(str(tmp_path / "model.zip"))) is saver
    assert type(saver.load(io.BytesIO((tmp_path / "model.zip").read_bytes()))) is saver


@pytest.mark.parametrize("algo", ALGOS)
def test_sac_and_td3_files_fail_with_one_line(algo, tmp_path):
    SAC("MlpPolicy", pendulum(50), **small()).save(tmp_path / "sac.zip")
    with pytest.raises(ValueError, match=rf"holds a SAC model, not a {algo.__name__}: .*{algo.__name__}.from_sac") as error:
        algo.load(tmp_path / "sac.zip")
    assert "\n" not in str(error.value)
    TD3("MlpPolicy", pendulum(50), **small()).save(tmp_path / "td3.zip")
    buffer = io.BytesIO((tmp_path / "td3.zip").read_bytes())
    with pytest.raises(ValueError, match=rf"the file holds a TD3 model, not a {algo.__name__}: load it with TD3.load$"):
        algo.load(buffer)


def tiny_model(algo, tmp_path):
    """A small model of another algorithm, trained a few steps and saved; returns its path."""
    if algo in (PPO, A2C):
        on_policy = dict(n_steps=8) if algo is A2C else dict(n_steps=16, batch_size=16, n_epochs=1)
        model = algo("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=[8]), **on_policy)
    else:
        model = algo("MlpPolicy", pendulum(), policy_kwargs=dict(net_arch=[8]), learning_starts=10, buffer_size=100)
    model.learn(16)
    path = tmp_path / f"{algo.__name__.lower()}.zip"
    model.save(path)
    return path


# What each file's data tells: its policy's module always; the algorithm only where that module has one user, or the
# file's settings leave one (DDPG is TD3 with policy_delay=1 and target_noise_clip=0 fixed by its constructor)
OTHER_ALGORITHMS = [
    (PPO, r"holds a model whose policy is from module stable_baselines3\.common\.policies, not a {loader}: "
          r"load it with the algorithm that saved it \(A2C, PPO or TRPO use that module's policies\)"),
    (A2C, r"holds a model whose policy is from module stable_baselines3\.common\.policies, not a {loader}: "
          r"load it with the algorithm that saved it \(A2C, PPO or TRPO use that module's policies\)"),
    (DDPG, r"holds a model whose policy is from module stable_baselines3\.td3\.policies, not a {loader}: "
           r"load it with the algorithm that saved it \(DDPG or TD3 use that module's policies\)"),
    (TD3, r"holds a TD3 model, not a {loader}: load it with TD3\.load"),
    (SAC, r"holds a SAC model, not a {loader}: load it with SAC\.load, or start a mixture from it with "
          r"{loader}\.from_sac\(SAC\.load\(\.\.\.\)\)"),
]  # fmt: skip


@pytest.mark.parametrize("loader", [SACM, S2ACM])
@pytest.mark.parametrize("algo, expected", OTHER_ALGORITHMS, ids=[algo.__name__ for algo, _ in OTHER_ALGORITHMS])
def test_files_of_other_algorithms_name_what_the_file_says(algo, expected, loader, tmp_path):
    path = tiny_model(algo, tmp_path)
    expected = expected.format(loader=loader.__name__)
    with pytest.raises(ValueError, match=rf"^{loader.__name__}\.load: {re.escape(repr(str(path)))} {expected}$"):
        loader.load(path)
    with pytest.raises(ValueError, match=rf"^{loader.__name__}\.load: the file {expected}$"):
        loader.load(io.BytesIO(path.read_bytes()))


class TinySACPolicy(SACPolicy):
    """A user's policy class, importable: pickled by reference."""


def rewrite_policy_class(path, entry: dict) -> None:
    """Replace a saved model's policy class entry in its ``data`` (as SB3 writes it, a dict) by ``entry``."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(members["data"])
    data["policy_class"] = entry
    members["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)


def test_files_with_policies_of_no_known_algorithm_name_the_policys_module(tmp_path):
    SAC(TinySACPolicy, pendulum(), **small()).save(tmp_path / "custom.zip")
    here = re.escape(__name__)  # this module's name, as pytest imported it
    with pytest.raises(ValueError, match=rf"holds a model whose policy is from module {here}, not a SACM: "
                                         r"load it with the algorithm that saved it$"):  # fmt: skip
        SACM.load(tmp_path / "custom.zip")

    # ... a class pickled by value (defined in a function) likewise
    class LocalPolicy(SACPolicy):
        pass

    SAC(LocalPolicy, pendulum(), **small()).save(tmp_path / "local.zip")
    with pytest.raises(ValueError, match=rf"holds a model whose policy is from module {here}, not a SACM: "
                                         r"load it with the algorithm that saved it$"):  # fmt: skip
        SACM.load(tmp_path / "local.zip")

    # The module is the data's, not the pickle's: a pickle of another class (or none) changes nothing ...
    pickled = base64.b64encode(b"\x80\x02cmy_lab.agents\nLabPolicy\nq\x00.").decode()
    rewrite_policy_class(tmp_path / "custom.zip", {":serialized:": pickled, "__module__": "other_lab.agents"})
    with pytest.raises(ValueError, match=r"holds a model whose policy is from module other_lab\.agents, not a S2ACM: "):
        S2ACM.load(tmp_path / "custom.zip")
    rewrite_policy_class(tmp_path / "custom.zip", {"__module__": "stable_baselines3.sac.policies"})
    with pytest.raises(ValueError, match=r"holds a SAC model, not a S2ACM: "):
        S2ACM.load(tmp_path / "custom.zip")
    # ... and without a module, the message says so
    rewrite_policy_class(tmp_path / "custom.zip", {":serialized:": pickled})
    with pytest.raises(ValueError, match=r"holds a model whose policy class the file does not name, not a SACM: "
                                         r"load it with the algorithm that saved it$"):  # fmt: skip
        SACM.load(tmp_path / "custom.zip")


def test_telling_the_algorithm_unpickles_nothing(tmp_path, monkeypatch):
    import pickle
    import pickletools

    import cloudpickle

    paths = [tiny_model(algo, tmp_path) for algo in (SAC, PPO)]
    SAC(TinySACPolicy, pendulum(), **small()).save(tmp_path / "custom.zip")
    S2ACM("MlpPolicy", pendulum(50), n_components=2, **small()).save(tmp_path / "s2acm.zip")

    def refuse(*args, **kwargs):
        raise AssertionError("a pickle was read")

    for module, name in [(pickle, "loads"), (pickle, "load"), (pickle, "Unpickler"), (pickletools, "genops"),
                         (pickletools, "dis"), (cloudpickle, "loads"), (cloudpickle, "load")]:  # fmt: skip
        monkeypatch.setattr(module, name, refuse)
    for path in [*paths, tmp_path / "custom.zip", tmp_path / "s2acm.zip"]:
        with pytest.raises(ValueError, match=r"^SACM\.load: .* holds a "):
            check_saved_algorithm("SACM", path)


def test_conversion_imports_neither_algorithm():
    # sacm.py imports the conversion module: the conversion module imports no algorithm module back (no import circle)
    import ast

    import sb3_mixture.conversion

    tree = ast.parse(Path(sb3_mixture.conversion.__file__).read_text())
    imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    assert "sb3_mixture" not in imported and "stable_baselines3" in imported
    assert not [name for name in imported if name.startswith(("sb3_mixture.sacm", "sb3_mixture.s2acm"))]


def test_missing_file_is_still_sb3s_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        SACM.load(tmp_path / "nothing.zip")


# --- Starting from SAC ------------------------------------------------------------------------------------------------


def trained_sac(ent_coef="auto", seed: int = 0) -> SAC:
    sac = SAC("MlpPolicy", pendulum(50), ent_coef=ent_coef, seed=seed, **small())
    sac.learn(150)
    return sac


def train_steps(model, steps: int, seed: int) -> None:
    model.set_logger(configure(None, []))
    th.manual_seed(seed)
    np.random.seed(seed)
    model.train(gradient_steps=steps, batch_size=model.batch_size)


@pytest.mark.parametrize("ent_coef", ["auto", 0.1])
def test_one_component_from_sac_predicts_and_trains_as_sac(ent_coef):
    sac = trained_sac(ent_coef)
    mixture = SACM.from_sac(sac, n_components=1, copy_replay_buffer=True)
    assert mixture.num_timesteps == sac.num_timesteps == 150 and mixture._n_updates == sac._n_updates == 100
    assert mixture.batch_size == sac.batch_size and mixture.learning_starts == sac.learning_starts
    assert mixture.target_entropy == sac.target_entropy and mixture.ent_coef == sac.ent_coef
    assert mixture.replay_buffer is not sac.replay_buffer and mixture.replay_buffer.pos == sac.replay_buffer.pos
    np.testing.assert_array_equal(mixture.replay_buffer.observations, sac.replay_buffer.observations)
    observations = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    np.testing.assert_allclose(
        mixture.predict(observations, deterministic=True)[0], sac.predict(observations, deterministic=True)[0], atol=1e-6
    )
    # Every Adam moment came along: the next updates are SAC's
    train_steps(sac, 5, seed=3)
    train_steps(mixture, 5, seed=3)
    for name, param in sac.actor.named_parameters():
        assert th.allclose(param, dict(mixture.actor.named_parameters())[name], atol=1e-5), name
    for member, q_net in enumerate(sac.critic.q_networks):
        linears = [module for module in q_net if isinstance(module, th.nn.Linear)]
        for layer, linear in enumerate(linears):
            assert th.allclose(linear.weight.T, mixture.critic.q_ensemble.weights[layer][member], atol=1e-5)
            assert th.allclose(linear.bias, mixture.critic.q_ensemble.biases[layer][member, 0], atol=1e-5)
    if ent_coef == "auto":
        assert th.allclose(sac.log_ent_coef, mixture.log_ent_coef, atol=1e-6)
    # ... and it keeps training as a mixture
    mixture.learn(60, reset_num_timesteps=False)
    assert mixture.num_timesteps == 210


@pytest.mark.parametrize("algo", ALGOS)
def test_every_component_and_head_starts_as_sac(algo):
    sac = trained_sac()
    mixture = algo.from_sac(sac, n_components=3, entropy_estimator="pairwise_kl", mixture_weights="learned")
    assert type(mixture) is algo and mixture.n_components == 3 and mixture.entropy_estimator == "pairwise_kl"
    assert mixture.replay_buffer.size() == 0  # not asked for
    observations = np.random.default_rng(1).normal(size=(32, 3)).astype(np.float32)
    expected = sac.predict(observations, deterministic=True)[0]
    for component in range(3):
        with mixture.policy.use_component(component):
            np.testing.assert_allclose(mixture.predict(observations, deterministic=True)[0], expected, atol=1e-6)
    obs, actions = th.as_tensor(observations), th.rand(32, 1) * 2 - 1
    with th.no_grad():
        sac_q = th.cat(sac.critic(obs, actions), dim=1)  # (B, n_critics)
        sac_target_q = th.cat(sac.critic_target(obs, actions), dim=1)
        mixture_q = mixture.critic.q_values(obs, actions)  # (n_critics, B, N)
        mixture_target_q = mixture.critic_target.q_values(obs, actions)
    for head in range(3):
        assert th.allclose(mixture_q[..., head].T, sac_q, atol=1e-6)
        assert th.allclose(mixture_target_q[..., head].T, sac_target_q, atol=1e-6)
    assert th.allclose(mixture.log_ent_coef, sac.log_ent_coef.expand(3))
    # The Adam moments of the heads are SAC's, tiled like the weights
    sac_moment = sac.actor.optimizer.state[sac.actor.mu.weight]["exp_avg"]
    assert th.equal(mixture.actor.optimizer.state[mixture.actor.mu.weight]["exp_avg"], sac_moment.repeat(3, 1))
    assert mixture.actor.gate not in mixture.actor.optimizer.state  # a new parameter starts afresh
    mixture.learn(60, reset_num_timesteps=False)


def test_from_sac_bad_input():
    sac = trained_sac()
    with pytest.raises(TypeError, match="from_sac needs a stable_baselines3.SAC model, got SACM"):
        SACM.from_sac(SACM("MlpPolicy", pendulum(50), **small()))
    with pytest.raises(TypeError, match="from_sac needs a stable_baselines3.SAC model, got TD3"):
        SACM.from_sac(TD3("MlpPolicy", pendulum(50), **small()))
    with pytest.raises(ValueError, match="copy_replay_buffer=True needs critic_data='shared', got 'own'"):
        SACM.from_sac(sac, copy_replay_buffer=True, critic_data="own")
    # critic_data other than shared, without the buffer: the mixture picks its own buffer class
    assert isinstance(SACM.from_sac(sac, critic_data="own").replay_buffer, MixtureReplayBuffer)
    with pytest.raises(ValueError, match="n_components must be an int >= 1"):
        SACM.from_sac(sac, n_components=0)
