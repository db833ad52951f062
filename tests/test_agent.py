"""Pretrain/transfer end to end: determinism, normalization, importer, presets, errors."""

from __future__ import annotations

import io
import json
import pickle
import zipfile

import numpy as np
import pytest
import torch
from helpers import PPO_TINY, Payload

import rltransfer as rlt
from rltransfer.checkpoint import CheckpointError
from rltransfer.presets import PresetError, get_preset, load_presets, parse_preset


@pytest.fixture
def source(ppo_source):
    return ppo_source


def test_card_has_what_the_issue_lists(source):
    card = rlt.load_checkpoint(source).card
    for key in ("algo", "policy", "policy_kwargs", "observation_space", "action_space", "env",
                "seed", "steps", "evaluation", "versions", "sha256"):
        assert key in card, key
    assert card["algo"] == "ppo" and card["steps"] >= 256 and card["seed"] == 0
    assert card["env"]["name"] == "CartPole-v1"
    assert set(card["evaluation"]) == {"mean", "std", "episodes", "step"}  # the final point
    assert set(card["versions"]) >= {"rltransfer", "stable_baselines3", "torch", "gymnasium",
                                     "mujoco"}
    assert card["observation_space"]["type"] == "Box"
    assert card["action_space"] == {"type": "Discrete", "n": 2, "start": 0}


def test_same_seed_gives_the_same_curve(source):
    curves = []
    for _ in range(2):
        model = rlt.transfer(source, "CartPole-v1", method="finetune", seed=3,
                             overrides=PPO_TINY)
        rows = rlt.learn_with_eval(model, 256, eval_every=128, eval_episodes=2)
        curves.append([(r["step"], r["mean_return"]) for r in rows])
    assert curves[0] == curves[1]
    assert [s for s, _ in curves[0]] == [0, 128, 256]
    other = rlt.transfer(source, "CartPole-v1", method="scratch", seed=4, overrides=PPO_TINY)
    rows = rlt.learn_with_eval(other, 256, eval_every=128, eval_episodes=2)
    assert [(r["step"], r["mean_return"]) for r in rows] != curves[0]


def test_steps_zero_evaluates_the_initialized_agent(source, tmp_path):
    model = rlt.transfer(source, "CartPole-v1", method="finetune", seed=3, overrides=PPO_TINY)
    rows = rlt.learn_with_eval(model, 0, eval_every=100, eval_episodes=2,
                               curve_csv=tmp_path / "c.csv")
    assert len(rows) == 1 and rows[0]["step"] == 0 and model.num_timesteps == 0
    assert (tmp_path / "c.csv").read_text().splitlines()[0] == \
        "step,mean_return,std_return,episodes,wall_time"


def test_normalization_statistics_travel_and_update_by_option(tmp_path):
    norm = {**PPO_TINY, "normalize": {"norm_obs": True, "norm_reward": True}}
    src = rlt.pretrain("CartPole-v1", algo="ppo", steps=256, seed=0, out=tmp_path / "s",
                       overrides=norm, eval_episodes=1, progress_bar=False)
    ckpt = rlt.load_checkpoint(src)
    mean = ckpt.extras["vecnormalize.obs_rms.mean"].numpy()
    assert ckpt.card["normalize"]["norm_obs"] and np.abs(mean).sum() > 0
    for update in (True, False):
        model = rlt.transfer(src, "CartPole-v1", method="finetune", seed=1,
                             overrides=PPO_TINY, normalize_update=update)
        venv = model.get_env()
        np.testing.assert_array_equal(venv.obs_rms.mean, mean)
        assert venv.training is update
        model.learn(128)
        changed = not np.array_equal(venv.obs_rms.mean, mean)
        assert changed is update
        out = rlt.save_agent(model, tmp_path / f"t{update}")
        card = rlt.load_checkpoint(out).card
        assert card["normalize"]["update"] is update and card["normalize"]["from_source"]
    # scratch does not take the source's statistics
    scratch = rlt.transfer(src, "CartPole-v1", method="scratch", seed=1, overrides=norm)
    assert not np.array_equal(scratch.get_env().obs_rms.mean, mean)


def test_load_agent_round_trip(source):
    model = rlt.load_agent(source)
    ckpt = rlt.load_checkpoint(source)
    for k, v in model.policy.state_dict().items():
        assert torch.equal(v, ckpt.tensors[k])


def test_import_sb3_zip_reads_only_weights(tmp_path):
    from stable_baselines3 import PPO

    sb3 = PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=64, seed=0,
              policy_kwargs={"net_arch": {"pi": [32], "vf": [24, 24]}})
    sb3.save(tmp_path / "agent.zip")
    # Replace the zip's pickled `data` with a payload that would run if unpickled.
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(tmp_path / "agent.zip") as zin, zipfile.ZipFile(evil, "w") as zout:
        for item in zin.namelist():
            data = zin.read(item)
            if item == "data":
                data = pickle.dumps(Payload(marker))
            zout.writestr(item, data)
    out = rlt.import_sb3(evil, "CartPole-v1", out=tmp_path / "ck", activation_fn="tanh")
    ckpt = rlt.load_checkpoint(out)
    for k, v in sb3.policy.state_dict().items():
        assert torch.equal(ckpt.tensors[k], v), k
    assert ckpt.card["policy_kwargs"]["net_arch"] == {"pi": [32], "vf": [24, 24]}
    assert not marker.exists()
    # a policy.pth that is a pickle with code is refused by weights_only=True
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        buf = io.BytesIO()
        pickle.dump(Payload(marker), buf)
        zf.writestr("policy.pth", buf.getvalue())
    with pytest.raises(CheckpointError, match="weights_only=True"):
        rlt.import_sb3(bad, "CartPole-v1", out=tmp_path / "ck2")
    assert not marker.exists()


def test_presets_are_validated_with_clear_errors():
    assert get_preset("CartPole-v1", "ppo").n_steps == 32  # via `match`
    assert set(load_presets("sac")) >= {"pendulum", "hopper", "halfcheetah"}
    with pytest.raises(PresetError, match="n_step: unknown field \\(did you mean 'n_steps'\\?\\)"):
        parse_preset({"n_step": 5}, "ppo")
    with pytest.raises(PresetError, match="gamma: value 'high'"):
        parse_preset({"gamma": "high"}, "ppo")
    with pytest.raises(PresetError, match="policy_kwargs.activation_fn: value 'sigmoid'.*'tanh'"):
        parse_preset({"policy_kwargs": {"activation_fn": "sigmoid"}}, "sac")
    with pytest.raises(PresetError, match="schedule 'cos_0.1'"):
        parse_preset({"learning_rate": "cos_0.1"}, "ppo")
    with pytest.raises(PresetError, match="algo='dqn' is not supported"):
        parse_preset({}, "dqn")


def test_sac_on_discrete_actions_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="needs a continuous"):
        rlt.pretrain("CartPole-v1", algo="sac", steps=0, seed=0, out=tmp_path / "x")


def test_cli_pretrain_transfer_and_help(tmp_path, capsys):
    from rltransfer.cli import build_parser, main

    sub = build_parser()._subparsers._group_actions[0]
    for verb in sub.choices:
        with pytest.raises(SystemExit) as exc:
            main([verb, "--help"])
        assert exc.value.code == 0
    preset = tmp_path / "tiny.yaml"
    preset.write_text(json.dumps({**PPO_TINY, "source": "test"}))
    src = tmp_path / "src"
    assert main(["pretrain", "--env", "CartPole-v1", "--steps", "128", "--seed", "0",
                 "--out", str(src), "--preset", str(preset), "--eval-episodes", "1",
                 "--no-progress"]) == 0
    out = tmp_path / "tgt"
    assert main(["transfer", "--source", str(src), "--env", "CartPole-v1", "--method",
                 "partial", "--roles", "actor", "--steps", "0", "--seed", "1", "--out",
                 str(out), "--preset", str(preset), "--eval-episodes", "1",
                 "--no-progress"]) == 0
    card = rlt.load_checkpoint(out / "checkpoint").card
    assert card["transfer"]["label"] == "partial[actor]" and card["steps"] == 0
    assert (out / "curve.csv").read_text().count("\n") == 2
    assert main(["transfer", "--source", str(tmp_path / "missing"), "--env", "CartPole-v1",
                 "--steps", "0", "--seed", "1", "--out", str(tmp_path / "x")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_evaluation_records_forward_velocity_on_locomotion_only():
    from helpers import PPO_TINY

    from rltransfer.agent import build_agent, make_eval_env
    from rltransfer.training import evaluate

    hopper = build_agent("hopper", algo="ppo", seed=0, overrides=PPO_TINY)
    stats = evaluate(hopper, make_eval_env(hopper), episodes=2, seed=0)
    assert "forward_velocity" in stats and np.isfinite(stats["forward_velocity"])
    assert abs(stats["forward_velocity"]) < 5.0  # m/s: an untrained hopper falls over
    cartpole = build_agent("cartpole", algo="ppo", seed=0, overrides=PPO_TINY)
    assert "forward_velocity" not in evaluate(cartpole, make_eval_env(cartpole), episodes=1,
                                              seed=0)
