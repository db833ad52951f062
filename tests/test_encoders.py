"""Vision encoders: registry, shapes, weights loading (local files, torchvision enums), shifts."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from gymnasium import spaces
from helpers import MovingSquare
from safetensors.torch import save_file
from stable_baselines3 import PPO
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from rltransfer.encoders import (
    ENCODERS,
    EncoderError,
    TorchvisionBackbone,
    build_encoder,
    encoder_kwargs,
    get_encoder,
    policy_kwargs,
    random_shift,
)

SPACE = spaces.Box(0, 255, (3, 64, 64), np.uint8)

# small settings per encoder so the whole file stays fast on 2 CPU cores
SMALL_KWARGS = {
    "flatten": {},
    "nature_cnn": {"features_dim": 64},
    "small_cnn": {"features_dim": 64},
    "impala_cnn": {"channels": [8, 16], "features_dim": 64},
    "resnet18": {"layer": "layer1"},
    "resnet34": {"layer": "layer1", "features_dim": 32},
    "resnet50": {"layer": "stem"},
}


def test_every_name_has_small_kwargs():
    assert set(SMALL_KWARGS) == set(ENCODERS)


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_every_encoder_builds_and_maps_batch_to_features(name):
    enc = build_encoder(name, SPACE, SMALL_KWARGS[name])
    assert isinstance(enc, BaseFeaturesExtractor)
    out = enc(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, enc.features_dim)
    assert torch.isfinite(out).all()


def test_registry_kwargs_and_unknown_name():
    assert get_encoder("resnet34") is TorchvisionBackbone
    merged = encoder_kwargs("resnet34", {"layer": "layer1"})
    assert merged == {"arch": "resnet34", "layer": "layer1"}
    assert policy_kwargs("impala_cnn")["features_extractor_kwargs"] == {}
    with pytest.raises(EncoderError, match=r"impala_cnn.*Did you mean 'impala_cnn'"):
        get_encoder("impala_cn")
    with pytest.raises(EncoderError, match="needs arch="):
        TorchvisionBackbone(SPACE)


def test_resnet_frame_stack_and_grayscale_channels():
    stacked = spaces.Box(0, 255, (9, 64, 64), np.uint8)
    enc = build_encoder("resnet18", stacked, {"layer": "layer1", "pool_size": 1})
    assert enc.features_dim == 3 * 64
    assert enc(torch.rand(2, 9, 64, 64)).shape == (2, 192)
    gray = spaces.Box(0, 255, (4, 64, 64), np.uint8)
    with pytest.raises(EncoderError, match="channels_per_frame"):
        build_encoder("resnet18", gray, {"layer": "layer1"})
    enc = build_encoder("resnet18", gray, {"layer": "layer1", "channels_per_frame": 1})
    assert enc(torch.rand(2, 4, 64, 64)).shape == (2, enc.features_dim)
    with pytest.raises(EncoderError, match="channels-last"):
        build_encoder("resnet18", spaces.Box(0, 255, (64, 64, 3), np.uint8))


def test_frozen_resnet_stays_unchanged_in_train_mode():
    enc = build_encoder("resnet18", SPACE, {"layer": "layer1"}).requires_grad_(False)
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    enc.train()
    for _ in range(2):
        enc(torch.rand(4, 3, 64, 64))
    after = enc.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN running stats included


def test_ppo_cnn_policy_learns_with_impala_encoder():
    env = MovingSquare()
    pk = policy_kwargs("impala_cnn", {"channels": [8, 16], "features_dim": 64})
    model = PPO("CnnPolicy", env, policy_kwargs=pk, n_steps=64, batch_size=32, n_epochs=1,
                seed=0, device="cpu")
    model.learn(64)
    assert type(model.policy.features_extractor).__name__ == "ImpalaCNN"
    assert model.num_timesteps == 64


def test_frozen_resnet_encoder_is_unchanged_by_ppo_learn():
    pk = policy_kwargs("resnet18", {"layer": "layer1", "pool_size": 1})
    model = PPO("CnnPolicy", MovingSquare(), policy_kwargs=pk, n_steps=64, batch_size=32,
                n_epochs=1, seed=0, device="cpu")
    encoder = model.policy.features_extractor.requires_grad_(False)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    head = model.policy.action_net.weight.clone()
    model.learn(64)
    after = encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN statistics
    assert not torch.equal(head, model.policy.action_net.weight)  # the rest did train


# --------------------------------------------------------------------------- weights


def _source_resnet18(seed: int = 3) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    net = torchvision.models.resnet18(weights=None)
    for m in net.modules():  # non-default BN statistics, so buffers are checked too
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    return net.state_dict()


def _assert_backbone_equal(enc: TorchvisionBackbone, source: dict[str, torch.Tensor]) -> None:
    own = enc.state_dict()
    keys = [k for k in own if k.startswith("backbone.")]
    assert keys and any(k.startswith("backbone.layer2.") for k in keys)
    for key in keys:
        assert torch.equal(own[key], source[key.removeprefix("backbone.")]), key


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_resnet18_loads_tensor_equal_from_local_file(tmp_path, suffix):
    source = _source_resnet18()
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in source.items()}, str(path))
    else:
        torch.save(source, path)
    enc = build_encoder("resnet18", SPACE, {"layer": "layer2", "weights": str(path)})
    _assert_backbone_equal(enc, source)
    random_init = build_encoder("resnet18", SPACE, {"layer": "layer2"})
    assert not torch.equal(random_init.state_dict()["backbone.conv1.weight"],
                           source["conv1.weight"])


def test_pickled_code_in_weights_file_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1), "f": print}, path)
    with pytest.raises(EncoderError, match="cannot read weights file"):
        build_encoder("resnet18", SPACE, {"layer": "layer1", "weights": str(path)})


def test_missing_weights_file_names_the_file_to_provide(tmp_path):
    with pytest.raises(EncoderError) as err:
        build_encoder("resnet18", SPACE, {"weights": str(tmp_path / "nope.pth")})
    msg = str(err.value)
    assert "nope.pth" in msg and "not found" in msg
    assert "resnet18-f37072fd.pth" in msg and "weights=" in msg


def test_torchvision_enum_offline_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(EncoderError) as err:
        build_encoder("resnet18", SPACE, {"weights": "IMAGENET1K_V1"})
    msg = str(err.value)
    assert "resnet18-f37072fd.pth" in msg and "weights='/path/to/resnet18-f37072fd.pth'" in msg
    assert "URLError" in msg


def test_torchvision_enum_uses_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url",
                        lambda *a, **k: pytest.fail("must not download when cached"))
    source = _source_resnet18(seed=5)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(source, tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    enc = build_encoder("resnet18", SPACE, {"layer": "layer2", "weights": "DEFAULT"})
    _assert_backbone_equal(enc, source)


@pytest.mark.parametrize(
    "state, match",
    [
        ({"conv1.weight": torch.zeros(64, 3, 3, 3)}, "size mismatch"),  # wrong shape
        ({"layer1.2.conv1.weight": torch.zeros(64, 64, 3, 3)}, "unexpected keys"),  # resnet34
        ({"fc.weight": torch.zeros(1000, 512)}, "missing keys"),  # nothing before the cut
    ],
)
def test_weights_of_another_architecture_are_an_encoder_error(tmp_path, state, match):
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(EncoderError, match=match):
        build_encoder("resnet18", SPACE, {"layer": "layer1", "weights": str(tmp_path / "other.pt")})


def test_imagenet_normalization_is_applied():
    enc = build_encoder("resnet18", SPACE, {"layer": "stem", "pool_size": 1})
    raw = build_encoder("resnet18", SPACE, {"layer": "stem", "pool_size": 1, "normalize": False})
    raw.load_state_dict(enc.state_dict())
    x = torch.rand(2, 3, 64, 64)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    enc.eval()
    raw.eval()
    torch.testing.assert_close(enc(x), raw((x - mean) / std))


# --------------------------------------------------------------------------- random shift


def test_random_shift_is_a_whole_pixel_translation_per_sample():
    pad = 2
    x = torch.rand(16, 3, 12, 10)
    y = random_shift(x, pad=pad, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == x.dtype
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    offsets = set()
    for i in range(len(x)):
        matches = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                   if torch.equal(y[i], padded[i, :, dy : dy + 12, dx : dx + 10])]
        assert len(matches) == 1, f"sample {i} is not a crop of the padded frame"
        offsets.add(matches[0])
    assert len(offsets) > 3  # per-sample shifts, not one shift for the batch
    again = random_shift(x, pad=pad, generator=torch.Generator().manual_seed(0))
    assert torch.equal(y, again)


def test_random_shift_keeps_uint8_and_zero_pad_is_identity():
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    y = random_shift(x, pad=1, generator=torch.Generator().manual_seed(1))
    assert y.dtype == torch.uint8 and y.shape == x.shape
    assert set(y.unique().tolist()) <= set(x.unique().tolist())
    assert random_shift(x, pad=0) is x
