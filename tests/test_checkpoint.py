"""Checkpoints: round trip, tamper detection, no unpickling, atomic writes."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from gymnasium import spaces
from helpers import Payload

from rltransfer.checkpoint import (
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
    sha256_file,
    space_from_json,
    space_to_json,
)


def _tensors():
    g = torch.Generator().manual_seed(0)
    return {"a.weight": torch.randn(4, 3, generator=g), "a.bias": torch.randn(4, generator=g),
            "log_std": torch.zeros(2, dtype=torch.float64)}


def test_round_trip_is_tensor_equal(tmp_path):
    tensors = _tensors()
    extras = {"vecnormalize.obs_rms.mean": torch.arange(3.0)}
    out = save_checkpoint(tmp_path / "ck", tensors, {"algo": "ppo"}, extras=extras)
    ckpt = load_checkpoint(out)
    assert set(ckpt.tensors) == set(tensors)
    for k, v in tensors.items():
        assert torch.equal(ckpt.tensors[k], v) and ckpt.tensors[k].dtype == v.dtype
    key = "vecnormalize.obs_rms.mean"
    assert torch.equal(ckpt.extras[key], extras[key])
    assert ckpt.card["sha256"] == sha256_file(out / "model.safetensors")
    assert ckpt.card["files"]["extras.safetensors"] == sha256_file(out / "extras.safetensors")


def test_flipped_byte_is_refused(tmp_path):
    out = save_checkpoint(tmp_path / "ck", _tensors(), {"algo": "ppo"})
    data = bytearray((out / "model.safetensors").read_bytes())
    data[-1] ^= 0x01
    (out / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 of model.safetensors"):
        load_checkpoint(out)


def test_pickle_disguised_as_safetensors_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    out = save_checkpoint(tmp_path / "ck", _tensors(), {"algo": "ppo"})
    evil = pickle.dumps({"a.weight": Payload(marker)})
    (out / "model.safetensors").write_bytes(evil)
    card = json.loads((out / "card.json").read_text())
    digest = sha256_file(out / "model.safetensors")  # the attacker also fixes the hash
    card["sha256"] = digest
    card["files"]["model.safetensors"] = digest
    (out / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_checkpoint(out)
    assert not marker.exists()
    # sanity: the payload really would have run under pickle
    pickle.loads(evil)
    assert marker.exists()


def test_missing_card_and_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="not a folder"):
        load_checkpoint(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model.safetensors").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="no card.json"):
        load_checkpoint(tmp_path / "half")


def test_save_is_atomic_and_refuses_overwrite(tmp_path, monkeypatch):
    out = save_checkpoint(tmp_path / "ck", _tensors(), {"algo": "ppo"})
    with pytest.raises(CheckpointError, match="already exists"):
        save_checkpoint(out, _tensors(), {"algo": "ppo"})

    # A crash while writing leaves neither a half checkpoint nor temporary folders.
    import rltransfer.checkpoint as ck

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ck, "json_text", boom)  # writing the card fails
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "ck2", _tensors(), {"algo": "ppo"})
    assert not (tmp_path / "ck2").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    # overwrite replaces only once the new one is complete: the old one survives a crash
    with pytest.raises(OSError):
        save_checkpoint(out, {"w": torch.ones(1)}, {"algo": "ppo"}, overwrite=True)
    assert set(load_checkpoint(out).tensors) == set(_tensors())


@pytest.mark.parametrize("space", [
    spaces.Box(-1.0, 1.0, (3,), np.float32),
    spaces.Box(np.array([-np.inf, 0.0]), np.array([np.inf, 2.0]), dtype=np.float64),
    spaces.Box(0, 255, (3, 8, 8), np.uint8),
    spaces.Discrete(4, start=1),
    spaces.MultiDiscrete([2, 3]),
    spaces.MultiBinary(5),
    spaces.Dict({"a": spaces.Discrete(2), "b": spaces.Box(0.0, 1.0, (2,))}),
])
def test_spaces_round_trip(space):
    data = json.loads(json.dumps(space_to_json(space)))
    assert space_from_json(data) == space
