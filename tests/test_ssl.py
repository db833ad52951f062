"""Self-supervised encoder pretraining: frames, losses that fall, determinism, checkpoints."""

from __future__ import annotations

import json
import types

import gymnasium as gym
import numpy as np
import pytest
import torch
import torchvision
from helpers import MovingSquare

from rltransfer import ssl as rl_ssl
from rltransfer.checkpoint import load_checkpoint, save_checkpoint
from rltransfer.encoders import EncoderError, build_encoder
from rltransfer.ssl import (
    collect_frames,
    encoder_space,
    load_encoder,
    pretrain_encoder,
    pretrain_encoder_cli,
    save_encoder,
)

SMALL = {"features_dim": 64}


@pytest.fixture(scope="module")
def frames():
    return collect_frames(MovingSquare, 300, seed=0)


def test_collect_frames_shapes_and_transitions(frames):
    assert frames["obs"].shape == (300, 32, 32, 3) and frames["obs"].dtype == np.uint8
    assert frames["next_obs"].shape == frames["obs"].shape
    assert frames["actions"].shape == (300,) and frames["rewards"].shape == (300,)
    assert frames["dones"].sum() == 15 and frames["dones"][19] and not frames["dones"][18]
    cont = ~frames["dones"][:-1]
    assert np.array_equal(frames["next_obs"][:-1][cont], frames["obs"][1:][cont])
    again = collect_frames(MovingSquare, 300, seed=0)
    assert np.array_equal(again["obs"], frames["obs"])
    assert np.array_equal(again["actions"], frames["actions"])
    other = collect_frames(MovingSquare, 300, seed=1)
    assert not np.array_equal(other["obs"], frames["obs"])


def test_collect_frames_refuses_vector_observations():
    with pytest.raises(EncoderError, match="pixel observations"):
        collect_frames(lambda: gym.make("CartPole-v1"), 5, seed=0)


def test_contrastive_loss_falls_on_a_tiny_run(frames):
    _, losses = pretrain_encoder(frames, encoder="small_cnn", encoder_kwargs=SMALL, steps=60,
                                 batch_size=32, lr=1e-3, seed=0, shift_pad=2,
                                 progress_bar=False)
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    assert first == pytest.approx(np.log(32), abs=0.5)  # chance level of a 32-way InfoNCE
    assert last < 0.8 * first, (first, last)


def test_inverse_dynamics_loss_falls(frames):
    _, losses = pretrain_encoder(frames, encoder="small_cnn", encoder_kwargs=SMALL,
                                 objective="inverse_dynamics", steps=120, batch_size=32,
                                 lr=1e-3, seed=0, shift_pad=2, progress_bar=False)
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    assert last < first - 0.15, (first, last)


def test_pretraining_is_deterministic_and_leaves_global_rng_alone(frames):
    state = torch.get_rng_state()
    runs = [
        pretrain_encoder(frames, encoder="impala_cnn",
                         encoder_kwargs={"channels": [8], "features_dim": 16}, steps=3,
                         batch_size=16, lr=1e-3, seed=7, positive="next", progress_bar=False)
        for _ in range(2)
    ]
    assert torch.equal(state, torch.get_rng_state())
    (enc_a, loss_a), (enc_b, loss_b) = runs
    assert loss_a == loss_b
    sd_a, sd_b = enc_a.state_dict(), enc_b.state_dict()
    assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    _, loss_c = pretrain_encoder(frames, encoder="impala_cnn",
                                 encoder_kwargs={"channels": [8], "features_dim": 16}, steps=3,
                                 batch_size=16, lr=1e-3, seed=8, positive="next",
                                 progress_bar=False)
    assert loss_c != loss_a


def test_loss_curve_goes_to_tensorboard(frames, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, losses = pretrain_encoder(frames, encoder="small_cnn", encoder_kwargs=SMALL, steps=4,
                                 batch_size=8, lr=1e-3, seed=0, tb_dir=str(tmp_path / "tb"),
                                 progress_bar=True)
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    events = acc.Scalars("ssl/loss")
    assert [e.step for e in events] == [0, 1, 2, 3]
    assert np.allclose([e.value for e in events], losses, rtol=1e-5)


# --------------------------------------------------------------------------- checkpoints


def _assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_save_load_round_trip_is_tensor_equal(frames, tmp_path):
    enc, losses = pretrain_encoder(frames, encoder="small_cnn", encoder_kwargs=SMALL, steps=2,
                                   batch_size=8, lr=1e-3, seed=0, progress_bar=False)
    out = save_encoder(tmp_path / "enc", enc, name="small_cnn", kwargs=SMALL,
                       observation_space=frames["observation_space"],
                       card_extra={"objective": "contrastive", "seed": 0,
                                   "final_loss": losses[-1]})
    card = json.loads((out / "card.json").read_text())
    assert card["kind"] == "encoder" and card["objective"] == "contrastive"
    assert card["encoder"]["name"] == "small_cnn" and card["encoder"]["features_dim"] == 64
    assert card["observation_space"]["shape"] == [3, 32, 32]  # as SB3 hands it to the encoder
    assert {"torch", "torchvision", "stable_baselines3"} <= set(card["versions"])
    ckpt = load_checkpoint(out)
    assert set(ckpt.tensors) == set(enc.state_dict())  # the encoder's own keys, no prefix
    loaded = load_encoder(out)
    _assert_same_state(enc, loaded)
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(enc(x), loaded(x), rtol=0, atol=0)


def test_resnet_checkpoint_does_not_need_the_original_weights_file(tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "resnet18.pt"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    kwargs = {"layer": "layer1", "weights": str(weights)}
    space = encoder_space(MovingSquare.observation_space)
    enc = build_encoder("resnet18", space, kwargs)
    out = save_encoder(tmp_path / "enc", enc, name="resnet18", kwargs=kwargs)
    weights.unlink()
    card = load_checkpoint(out).card
    assert card["encoder"]["kwargs"]["weights"] is None
    assert card["encoder"]["kwargs"]["arch"] == "resnet18"
    assert card["encoder"]["init_weights"] == str(weights)
    _assert_same_state(enc, load_encoder(out))


def test_load_encoder_refuses_a_policy_checkpoint(tmp_path):
    save_checkpoint(tmp_path / "policy", {"w": torch.zeros(1)}, {"algo": "ppo"})
    with pytest.raises(EncoderError, match="not an encoder checkpoint"):
        load_encoder(tmp_path / "policy")


def test_pretrain_encoder_cli_writes_a_checkpoint_with_env_card(tmp_path, monkeypatch):
    calls = []

    def fake_make(env, knobs=None, *, pixels=None):
        calls.append((env, knobs, pixels))
        return MovingSquare()

    def fake_describe(env, knobs=None, *, pixels=None):
        return {"name": env, "knobs": dict(knobs or {}), "pixels": pixels}

    fake_envs = types.SimpleNamespace(make=fake_make, describe=fake_describe)
    monkeypatch.setattr(rl_ssl, "rl_envs", fake_envs)  # independent of envs' state
    out = pretrain_encoder_cli("square", {"speed": 2}, pixels={"size": 32}, encoder="small_cnn",
                               objective="contrastive", frames=40, steps=3, seed=1,
                               out=str(tmp_path / "enc"), tb_dir=str(tmp_path / "tb"),
                               encoder_kwargs=SMALL, batch_size=8, progress_bar=False)
    assert calls == [("square", {"speed": 2}, {"size": 32})]
    card = load_checkpoint(out).card
    assert card["env"] == {"name": "square", "knobs": {"speed": 2}, "pixels": {"size": 32}}
    assert card["steps"] == 3 and card["seed"] == 1 and card["frames"] == 40
    assert np.isfinite(card["final_loss"])
    assert list((tmp_path / "tb").glob("events.out.tfevents*"))
    assert load_encoder(out).features_dim == 64
