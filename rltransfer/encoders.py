"""Vision encoders: SB3 features extractors chosen by name, plus DrQ-style random shifts.

Every encoder here is a direct subclass of SB3's ``BaseFeaturesExtractor``: it receives the
observation space *as the policy sees it* (channels first, ``(C, H, W)``, after SB3's
``VecTransposeImage``) and image batches that SB3 has already scaled to ``[0, 1]`` floats
(``normalize_images=True``, SB3's default). All constructor keywords are JSON-able, so an
agent preset names an encoder and its keywords as plain data::

    features_extractor: impala_cnn
    features_extractor_kwargs: {channels: [16, 32, 32], features_dim: 256}

Registry names (:data:`ENCODERS`):

============  ==========================================================================
name          network
============  ==========================================================================
flatten       SB3 ``FlattenExtractor`` (no learning; vector observations)
nature_cnn    SB3 ``NatureCNN`` (Mnih et al. 2015), needs images of at least 36x36
small_cnn     :class:`SmallCNN`, a lighter 3-layer CNN for 32x32 to 84x84 frames
impala_cnn    :class:`ImpalaCNN` (Espeholt et al. 2018), residual stacks
resnet18/34/50 :class:`TorchvisionBackbone`, a torchvision ResNet cut after ``layer``
============  ==========================================================================

Example:
    >>> import numpy as np, torch
    >>> from gymnasium import spaces
    >>> space = spaces.Box(0, 255, (3, 64, 64), np.uint8)
    >>> kw = policy_kwargs("impala_cnn", {"features_dim": 64})
    >>> enc = kw["features_extractor_class"](space, **kw["features_extractor_kwargs"])
    >>> enc(torch.rand(2, 3, 64, 64)).shape
    torch.Size([2, 64])
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
import torch.nn.functional as F
from gymnasium import spaces
from safetensors.torch import load_file
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

__all__ = [
    "ENCODERS",
    "ENCODER_DEFAULTS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "EncoderError",
    "ImpalaCNN",
    "SmallCNN",
    "TorchvisionBackbone",
    "build_encoder",
    "encoder_kwargs",
    "get_encoder",
    "load_state_dict_file",
    "policy_kwargs",
    "random_shift",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class EncoderError(ValueError):
    """An encoder cannot be built: unknown name, unsupported input, or unavailable weights."""


# --------------------------------------------------------------------------- registry

#: Encoder name -> ``"module:attr"`` of its features-extractor class (imported lazily).
ENCODERS: dict[str, str] = {
    "flatten": "stable_baselines3.common.torch_layers:FlattenExtractor",
    "nature_cnn": "stable_baselines3.common.torch_layers:NatureCNN",
    "small_cnn": "rltransfer.encoders:SmallCNN",
    "impala_cnn": "rltransfer.encoders:ImpalaCNN",
    "resnet18": "rltransfer.encoders:TorchvisionBackbone",
    "resnet34": "rltransfer.encoders:TorchvisionBackbone",
    "resnet50": "rltransfer.encoders:TorchvisionBackbone",
}

#: Keywords a registry name implies (merged under the caller's by :func:`encoder_kwargs`).
ENCODER_DEFAULTS: dict[str, dict[str, Any]] = {
    "resnet18": {"arch": "resnet18"},
    "resnet34": {"arch": "resnet34"},
    "resnet50": {"arch": "resnet50"},
}


def get_encoder(name: str) -> type[BaseFeaturesExtractor]:
    """The features-extractor class registered under ``name``.

    Names that stand for a configuration of a shared class (``resnet18`` and ``resnet34``
    are both :class:`TorchvisionBackbone`) also imply keywords; use :func:`policy_kwargs`
    or :func:`encoder_kwargs` to get them merged in.

    Example:
        >>> get_encoder("impala_cnn").__name__
        'ImpalaCNN'
    """
    if name not in ENCODERS:
        close = difflib.get_close_matches(str(name), ENCODERS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise EncoderError(
            f"unknown encoder {name!r}; known encoders: {', '.join(sorted(ENCODERS))}.{hint}"
        )
    module_name, attr = ENCODERS[name].split(":")
    return getattr(importlib.import_module(module_name), attr)


def encoder_kwargs(name: str, kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The constructor keywords for ``name``: its implied defaults updated by ``kwargs``.

    Example:
        >>> encoder_kwargs("resnet34", {"layer": "layer1"})
        {'arch': 'resnet34', 'layer': 'layer1'}
    """
    get_encoder(name)  # validates the name
    merged = dict(ENCODER_DEFAULTS.get(name, {}))
    merged.update(dict(kwargs or {}))
    return merged


def policy_kwargs(name: str, kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """SB3 ``policy_kwargs`` entries that plug encoder ``name`` into a policy.

    Example:
        >>> pk = policy_kwargs("resnet18", {"layer": "layer1"})
        >>> pk["features_extractor_class"].__name__, pk["features_extractor_kwargs"]["arch"]
        ('TorchvisionBackbone', 'resnet18')
    """
    return {
        "features_extractor_class": get_encoder(name),
        "features_extractor_kwargs": encoder_kwargs(name, kwargs),
    }


def build_encoder(
    name: str, observation_space: gym.Space, kwargs: Mapping[str, Any] | None = None
) -> BaseFeaturesExtractor:
    """Instantiate encoder ``name`` on a channels-first ``observation_space``.

    Example:
        >>> import numpy as np
        >>> enc = build_encoder("small_cnn", spaces.Box(0, 255, (3, 32, 32), np.uint8))
        >>> enc.features_dim
        256
    """
    return get_encoder(name)(observation_space, **encoder_kwargs(name, kwargs))


# --------------------------------------------------------------------------- helpers


def _image_shape(observation_space: gym.Space, who: str) -> tuple[int, int, int]:
    if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 3:
        raise EncoderError(
            f"{who} needs a channels-first image Box space (C, H, W), got {observation_space}; "
            "use the 'flatten' encoder for vector observations"
        )
    c, h, w = (int(x) for x in observation_space.shape)
    if c > h or c > w:
        raise EncoderError(
            f"{who} got observation shape {observation_space.shape}, which looks channels-last; "
            "SB3 transposes image observations to (C, H, W) before the features extractor "
            "(VecTransposeImage); build the encoder on the transposed space"
        )
    return c, h, w


def _flat_dim(net: nn.Module, shape: tuple[int, int, int], who: str) -> int:
    try:
        with torch.no_grad():
            return int(net(torch.zeros(1, *shape)).shape[1])
    except RuntimeError as exc:
        raise EncoderError(f"{who} cannot run on {shape[1]}x{shape[2]} frames ({exc})") from None


# --------------------------------------------------------------------------- small CNNs


class SmallCNN(BaseFeaturesExtractor):
    """A light 3-layer CNN for small frames (32x32 to 84x84), cheaper than NatureCNN.

    conv(32, 4, stride 2) -> conv(64, 4, stride 2) -> conv(64, 3, stride 1) -> linear.
    Expects ``[0, 1]`` floats shaped ``(B, C, H, W)``, as SB3 delivers them.

    Example:
        >>> import numpy as np, torch
        >>> enc = SmallCNN(spaces.Box(0, 255, (3, 32, 32), np.uint8), features_dim=32)
        >>> enc(torch.rand(4, 3, 32, 32)).shape
        torch.Size([4, 32])
    """

    def __init__(
        self,
        observation_space: gym.Space,
        features_dim: int = 256,
        channels: Sequence[int] = (32, 64, 64),
    ) -> None:
        super().__init__(observation_space, int(features_dim))
        shape = _image_shape(observation_space, "SmallCNN")
        if len(channels) != 3:
            raise EncoderError(f"SmallCNN channels must list 3 ints, got {list(channels)}")
        c1, c2, c3 = (int(c) for c in channels)
        self.cnn = nn.Sequential(
            nn.Conv2d(shape[0], c1, 4, stride=2), nn.ReLU(),
            nn.Conv2d(c1, c2, 4, stride=2), nn.ReLU(),
            nn.Conv2d(c2, c3, 3, stride=1), nn.ReLU(),
            nn.Flatten(),
        )  # fmt: skip
        flat = _flat_dim(self.cnn, shape, type(self).__name__)
        self.linear = nn.Sequential(nn.Linear(flat, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(self.cnn(observations))


class _ResidualBlock(nn.Module):
    """relu -> conv3x3 -> relu -> conv3x3, plus the input (Espeholt et al. 2018)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(F.relu(self.conv0(F.relu(x))))


def _impala_stack(in_channels: int, out_channels: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.MaxPool2d(3, stride=2, padding=1),
        *[_ResidualBlock(out_channels) for _ in range(blocks)],
    )


class ImpalaCNN(BaseFeaturesExtractor):
    """The IMPALA residual CNN (Espeholt et al. 2018), as used by Procgen baselines.

    Each entry of ``channels`` is one stack: conv3x3 -> maxpool(3, stride 2) ->
    ``blocks_per_stack`` residual blocks; then relu -> flatten -> linear(``features_dim``)
    -> relu. Expects ``[0, 1]`` floats shaped ``(B, C, H, W)``, as SB3 delivers them.

    Example:
        >>> import numpy as np, torch
        >>> enc = ImpalaCNN(spaces.Box(0, 255, (3, 64, 64), np.uint8), channels=[8, 16])
        >>> enc(torch.rand(2, 3, 64, 64)).shape
        torch.Size([2, 256])
    """

    def __init__(
        self,
        observation_space: gym.Space,
        features_dim: int = 256,
        channels: Sequence[int] = (16, 32, 32),
        blocks_per_stack: int = 2,
    ) -> None:
        super().__init__(observation_space, int(features_dim))
        shape = _image_shape(observation_space, "ImpalaCNN")
        if not channels:
            raise EncoderError("ImpalaCNN channels must list at least one int")
        stacks, prev = [], shape[0]
        for c in channels:
            stacks.append(_impala_stack(prev, int(c), int(blocks_per_stack)))
            prev = int(c)
        self.cnn = nn.Sequential(*stacks, nn.ReLU(), nn.Flatten())
        flat = _flat_dim(self.cnn, shape, type(self).__name__)
        self.linear = nn.Sequential(nn.Linear(flat, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(self.cnn(observations))


# --------------------------------------------------------------------------- torchvision

# torchvision is imported inside the functions that build its networks: importing it costs
# 1.9-3.8 s after ``import rltransfer.cli`` (measured in a fresh process), and every
# ``rltransfer`` command imports this module for the encoder registry.

_RESNET_LAYERS = ("stem", "layer1", "layer2", "layer3", "layer4")
_STEM_MODULES = ("conv1", "bn1", "relu", "maxpool")


def _weights_enum(arch: str) -> Any:
    from torchvision import models

    try:
        return models.get_model_weights(arch)
    except (ValueError, KeyError) as exc:
        raise EncoderError(f"torchvision has no weights for architecture {arch!r}") from exc


def _weights_hint(arch: str) -> str:
    """Where to get the ImageNet file for ``arch`` and how to pass it."""
    try:
        entry = _weights_enum(arch)["DEFAULT"]
    except (EncoderError, KeyError):
        return ""
    filename = os.path.basename(entry.url)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / filename
    return (
        f" For ImageNet weights of {arch}, download {entry.url} (file {filename!r}) on a machine "
        f"with network access, then pass weights='/path/to/{filename}' (or copy it to "
        f"{cached} and pass weights='{entry.name}')."
    )


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read weights from ``.safetensors`` or a torch ``state_dict`` file, never unpickling code.

    ``.pt``/``.pth``/``.bin`` files are read with ``torch.load(weights_only=True)``; a dict that
    wraps the weights under ``"state_dict"`` or ``"model"`` is unwrapped, and a DataParallel
    ``"module."`` prefix is stripped.

    Example:
        >>> import tempfile, torch
        >>> p = Path(tempfile.mkdtemp()) / "w.pt"
        >>> torch.save({"w": torch.ones(1)}, p)
        >>> load_state_dict_file(p)["w"].tolist()
        [1.0]
    """
    path = Path(path)
    if not path.is_file():
        raise EncoderError(f"weights file {str(path)!r} not found")
    state: Any  # checked below: a flat name -> tensor mapping, or an error
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except EncoderError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad weights file
        raise EncoderError(
            f"cannot read weights file {str(path)!r} ({type(exc).__name__}: {exc}); expected "
            "a .safetensors file or a torch state_dict saved with torch.save (no pickled code)"
        ) from None
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise EncoderError(f"weights file {str(path)!r} does not hold a flat name->tensor dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _resolve_weights(arch: str, weights: str) -> dict[str, torch.Tensor]:
    """A local path, or a torchvision enum name (cache first, then download)."""
    enum = None
    with contextlib.suppress(EncoderError):
        enum = _weights_enum(arch)
    looks_like_path = (
        os.sep in weights
        or "/" in weights
        or Path(weights).suffix in (".pt", ".pth", ".bin", ".safetensors")
        or Path(weights).exists()
    )
    if looks_like_path or enum is None or weights not in enum.__members__:
        if not Path(weights).is_file():
            names = f" or a torchvision enum name ({', '.join(enum.__members__)})" if enum else ""
            raise EncoderError(
                f"weights file {weights!r} not found; weights= takes a local .safetensors/.pt/.pth "
                f"file{names}, or None for random init.{_weights_hint(arch)}"
            )
        return load_state_dict_file(weights)
    entry = enum[weights]
    filename = os.path.basename(entry.url)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if cached.is_file():
        return load_state_dict_file(cached)
    try:
        state = torch.hub.load_state_dict_from_url(
            entry.url, map_location="cpu", progress=False, weights_only=True
        )
    except Exception as exc:  # noqa: BLE001 - offline shows up as many exception types
        raise EncoderError(
            f"cannot fetch torchvision weights {type(entry).__name__}.{entry.name} "
            f"({type(exc).__name__}: {exc}); offline, provide the file {filename!r} yourself: "
            f"download {entry.url} elsewhere and pass weights='/path/to/{filename}', or copy it "
            f"to {cached}."
        ) from None
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


class TorchvisionBackbone(BaseFeaturesExtractor):
    """A torchvision ResNet cut after ``layer``, pooled, optionally projected to ``features_dim``.

    Early layers transfer best to control (PVR, Parisi et al. 2022), so the default cut is
    ``layer2``. Input: ``[0, 1]`` floats ``(B, C, H, W)`` as SB3 delivers them; the module
    applies ImageNet mean/std itself (``normalize=True``), optionally resizes to ``resize``
    pixels, runs the backbone, adaptive-average-pools to ``pool_size x pool_size`` and
    flattens. With ``features_dim=None`` that is the output (``channels * pool_size**2 * k``);
    with an int, a trainable linear + ReLU maps it to ``features_dim``.

    Frame stacks: the channel axis is read as ``k`` frames of ``channels_per_frame`` channels
    (3 for RGB, 1 for grayscale, which is repeated to RGB). Each frame goes through the
    backbone on its own and the ``k`` feature vectors are concatenated (as PVR does), so
    pretrained first-layer weights stay intact. A channel count that is not a multiple of
    ``channels_per_frame`` is an :class:`EncoderError`.

    Weights (``weights=``): ``None`` (random init, the control); a local ``.safetensors`` or
    torch ``state_dict`` file (``.pt``/``.pth``, read with ``weights_only=True``) of the full
    torchvision model, for example ``resnet18-f37072fd.pth``; or a torchvision enum name such
    as ``"IMAGENET1K_V1"``/``"DEFAULT"``, served from the torch hub cache or downloaded where
    the network allows. Keys after the cut (``layer3``, ``fc``, ...) are ignored.

    BatchNorm: with ``freeze_bn=True`` (default) batch-norm layers stay in eval mode even while
    the policy trains, so running statistics never drift (a frozen encoder stays bit-identical
    through ``learn()``) and small RL batches do not disturb pretrained statistics.

    Example:
        >>> import numpy as np, torch
        >>> space = spaces.Box(0, 255, (3, 64, 64), np.uint8)
        >>> enc = TorchvisionBackbone(space, arch="resnet18", layer="layer1")
        >>> enc(torch.rand(2, 3, 64, 64)).shape
        torch.Size([2, 256])
    """

    mean: torch.Tensor  # ImageNet statistics, buffers registered in __init__
    std: torch.Tensor

    def __init__(
        self,
        observation_space: gym.Space,
        arch: str | None = None,
        layer: str = "layer2",
        weights: str | None = None,
        features_dim: int | None = None,
        pool_size: int = 2,
        resize: int | None = None,
        normalize: bool = True,
        channels_per_frame: int = 3,
        freeze_bn: bool = True,
    ) -> None:
        if arch is None:
            raise EncoderError(
                "TorchvisionBackbone needs arch= ('resnet18', 'resnet34', 'resnet50'); "
                "registry names imply it: use rltransfer.encoders.policy_kwargs(name, kwargs)"
            )
        if not str(arch).startswith("resnet"):
            raise EncoderError(f"TorchvisionBackbone supports ResNets only, got arch={arch!r}")
        if layer not in _RESNET_LAYERS:
            raise EncoderError(f"layer={layer!r} is not a cut point; choose from {_RESNET_LAYERS}")
        c, h, w = _image_shape(observation_space, "TorchvisionBackbone")
        cpf = int(channels_per_frame)
        if cpf not in (1, 3) or c % cpf:
            raise EncoderError(
                f"TorchvisionBackbone got {c} input channels with channels_per_frame={cpf}; it "
                "reads the channel axis as k stacked RGB frames (channels_per_frame=3, C=3k) or "
                "k grayscale frames (channels_per_frame=1, C=k)"
            )
        from torchvision import models

        try:
            net = getattr(models, arch)(weights=None)
        except AttributeError:
            raise EncoderError(f"torchvision.models has no architecture {arch!r}") from None
        keep = _modules_up_to(layer)
        if weights is not None:
            state = _resolve_weights(arch, str(weights))
            state = {k: v for k, v in state.items() if k.split(".")[0] in keep}
            try:
                result = net.load_state_dict(state, strict=False)
            except RuntimeError as exc:
                raise EncoderError(f"weights {weights!r} do not fit {arch}: {exc}") from None
            missing = [k for k in result.missing_keys if k.split(".")[0] in keep]
            for what, bad in (("unexpected", result.unexpected_keys), ("missing", missing)):
                if bad:
                    raise EncoderError(
                        f"weights {weights!r} do not fit {arch} up to {layer}: {what} keys "
                        f"{bad[:5]}{' ...' if len(bad) > 5 else ''}"
                    )
        # torchvision's own module names, so state_dict keys read backbone.layer1.0.conv1...
        backbone = nn.Sequential(OrderedDict((name, getattr(net, name)) for name in keep))

        self.frames = c // cpf
        self.channels_per_frame = cpf
        self.resize = int(resize) if resize else None
        self.normalize = bool(normalize)
        self.freeze_bn = bool(freeze_bn)
        pool = int(pool_size)
        probe_hw = (self.resize, self.resize) if self.resize else (h, w)
        with torch.no_grad():
            probe = backbone.eval()(torch.zeros(1, 3, *probe_hw))
        flat = int(probe.shape[1]) * pool * pool * self.frames
        super().__init__(observation_space, int(features_dim) if features_dim else flat)
        self.backbone = backbone
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(pool), nn.Flatten())
        self.linear = (
            nn.Sequential(nn.Linear(flat, int(features_dim)), nn.ReLU())
            if features_dim
            else nn.Identity()
        )
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.train(True)

    def train(self, mode: bool = True) -> TorchvisionBackbone:
        """Set train/eval mode; batch-norm layers stay in eval mode when ``freeze_bn``."""
        super().train(mode)
        if self.freeze_bn:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        b, c, h, w = observations.shape
        x = observations.reshape(b * self.frames, self.channels_per_frame, h, w)
        if self.channels_per_frame == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.resize:
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear",
                              align_corners=False)
        if self.normalize:
            x = (x - self.mean) / self.std
        feats = self.pool(self.backbone(x)).reshape(b, -1)
        return self.linear(feats)


def _modules_up_to(layer: str) -> list[str]:
    names = list(_STEM_MODULES)
    if layer != "stem":
        names += [f"layer{i}" for i in range(1, int(layer[-1]) + 1)]
    return names


# --------------------------------------------------------------------------- augmentation


def random_shift(
    x: torch.Tensor, pad: int = 4, generator: torch.Generator | None = None
) -> torch.Tensor:
    """DrQ-style random shift: replicate-pad by ``pad``, crop back at a random offset per sample.

    Vectorized with ``F.grid_sample`` as in DrQ-v2 (Yarats et al. 2021); offsets are whole
    pixels in ``[-pad, pad]`` on each axis, so values are moved, never blended. Works on any
    ``(B, C, H, W)`` batch; integer dtypes (uint8 frames) come back in their own dtype.

    Example:
        >>> import torch
        >>> x = torch.rand(8, 3, 16, 16)
        >>> y = random_shift(x, pad=2, generator=torch.Generator().manual_seed(0))
        >>> y.shape == x.shape, bool((y != x).any())
        (True, True)
    """
    if x.ndim != 4:
        raise ValueError(f"random_shift expects (B, C, H, W), got shape {tuple(x.shape)}")
    if pad <= 0:
        return x
    dtype = x.dtype
    xf = x if x.is_floating_point() else x.float()
    n, _, h, w = xf.shape
    padded = F.pad(xf, (pad, pad, pad, pad), mode="replicate")
    hp, wp = h + 2 * pad, w + 2 * pad
    # pixel-centre coordinates of the top-left h x w window in normalized [-1, 1] units
    xs = torch.linspace(-1.0 + 1.0 / wp, 1.0 - 1.0 / wp, wp, device=x.device)[:w]
    ys = torch.linspace(-1.0 + 1.0 / hp, 1.0 - 1.0 / hp, hp, device=x.device)[:h]
    base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (h, w, 2) as (x, y)
    gen_device = generator.device if generator is not None else x.device
    shift = torch.randint(0, 2 * pad + 1, (n, 1, 1, 2), generator=generator, device=gen_device)
    shift = shift.to(device=x.device, dtype=xf.dtype)
    shift = shift * torch.tensor([2.0 / wp, 2.0 / hp], device=x.device, dtype=xf.dtype)
    grid = base.unsqueeze(0).to(xf.dtype) + shift
    out = F.grid_sample(padded, grid, mode="nearest", padding_mode="border", align_corners=False)
    if dtype != out.dtype:
        out = out.round().to(dtype)
    return out
