"""Self-supervised encoder pretraining on frames collected in a source env.

Three steps, each a plain function:

1. :func:`collect_frames` rolls out a seeded random policy and keeps the pixel transitions.
2. :func:`pretrain_encoder` trains a registered encoder (:mod:`rltransfer.encoders`) on them:

   - ``"contrastive"`` (CURL, Srinivas et al. 2020; ATC, Stooke et al. 2021): two DrQ random
     shifts of the same frame (``positive="same"``, CURL) or of frames t and t+1
     (``positive="next"``, ATC-like) are a positive pair, the rest of the batch are negatives;
     query encoder + projection (linear, LayerNorm), a momentum (EMA) copy as key encoder, a
     bilinear similarity and the InfoNCE loss.
   - ``"inverse_dynamics"``: predict the action from the features of (t, t+1), both shifted
     by the same offset (cross-entropy for discrete actions, mean squared error for
     continuous ones).

   The loss per step goes to TensorBoard under ``ssl/loss`` and a tqdm bar shows progress.
3. :func:`save_encoder` writes a checkpoint holding the encoder alone (its own
   ``state_dict()`` keys, no prefix) with a card; :func:`load_encoder` rebuilds it.

:func:`pretrain_encoder_cli` chains the three for ``rltransfer pretrain-encoder``.

Example:
    >>> import gymnasium as gym, numpy as np, tempfile
    >>> class Dots(gym.Env):
    ...     observation_space = gym.spaces.Box(0, 255, (32, 32, 3), np.uint8)
    ...     action_space = gym.spaces.Discrete(2)
    ...     def reset(self, *, seed=None, options=None):
    ...         super().reset(seed=seed)
    ...         return self.observation_space.sample(), {}
    ...     def step(self, action):
    ...         return self.observation_space.sample(), 0.0, False, False, {}
    >>> frames = collect_frames(Dots, 64, seed=0)
    >>> frames["obs"].shape
    (64, 32, 32, 3)
    >>> enc, losses = pretrain_encoder(frames, encoder="small_cnn",
    ...     encoder_kwargs={"features_dim": 32}, steps=3, batch_size=16, lr=1e-3, seed=0,
    ...     progress_bar=False)
    >>> len(losses)
    3
    >>> out = save_encoder(tempfile.mkdtemp() + "/enc", enc, name="small_cnn",
    ...                    kwargs={"features_dim": 32}, card_extra={"objective": "contrastive"})
    >>> load_encoder(out).features_dim
    32
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from rltransfer import envs as rl_envs
from rltransfer._io import write_text_atomic
from rltransfer._progress import bar_timing
from rltransfer._versions import versions
from rltransfer.checkpoint import load_checkpoint, save_checkpoint, space_from_json, space_to_json
from rltransfer.encoders import EncoderError, build_encoder, random_shift
from rltransfer.encoders import encoder_kwargs as merge_encoder_kwargs
from rltransfer.metrics import encoder_collapsed

log = logging.getLogger("rltransfer")

__all__ = [
    "OBJECTIVES",
    "collect_frames",
    "encoder_space",
    "load_encoder",
    "pretrain_encoder",
    "pretrain_encoder_cli",
    "save_encoder",
]

#: Self-supervised objectives understood by :func:`pretrain_encoder`.
OBJECTIVES = ("contrastive", "inverse_dynamics")


# --------------------------------------------------------------------------- frames


def collect_frames(env_fn: Callable[[], gym.Env], n: int, *, seed: int) -> dict[str, Any]:
    """Roll out a uniformly random policy for ``n`` steps and keep the transitions.

    The env must emit image observations (``Box`` of uint8, ``(H, W, C)`` as pixel views
    do; channels-first is accepted too and kept as is). The policy and the first reset are
    seeded with ``seed``; later resets continue the env's own seeded generator.

    Returns a dict with ``obs`` and ``next_obs`` (uint8, ``(n, *obs_shape)``), ``actions``
    (``(n, *action_shape)``), ``rewards`` (float32), ``dones`` (bool: the episode ended at
    that step, by termination or truncation; ``next_obs`` is still the true next frame),
    and the env's ``observation_space`` and ``action_space``.

    Example:
        >>> import gymnasium as gym, numpy as np
        >>> class Noise(gym.Env):
        ...     observation_space = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)
        ...     action_space = gym.spaces.Discrete(3)
        ...     def reset(self, *, seed=None, options=None):
        ...         super().reset(seed=seed)
        ...         return self.observation_space.sample(), {}
        ...     def step(self, action):
        ...         return self.observation_space.sample(), 0.0, False, False, {}
        >>> f = collect_frames(Noise, 10, seed=0)
        >>> f["obs"].dtype, f["actions"].shape
        (dtype('uint8'), (10,))
    """
    if n <= 0:
        raise ValueError(f"collect_frames needs n > 0, got {n}")
    env = env_fn()
    try:
        space = env.observation_space
        if not isinstance(space, spaces.Box) or not is_image_space(space, check_channels=False):
            raise EncoderError(
                f"collect_frames needs pixel observations (Box uint8, (H, W, C), frame stacks "
                f"included), got {space}; use the env family's pixel view"
            )
        env.action_space.seed(seed)
        obs, _ = env.reset(seed=seed)
        all_obs = np.empty((n, *space.shape), dtype=np.uint8)
        next_obs = np.empty_like(all_obs)
        actions = []
        rewards = np.empty(n, dtype=np.float32)
        dones = np.zeros(n, dtype=bool)
        for t in range(n):
            action = env.action_space.sample()
            nxt, reward, terminated, truncated, _ = env.step(action)
            all_obs[t], next_obs[t], rewards[t] = obs, nxt, reward
            actions.append(action)
            dones[t] = terminated or truncated
            obs = env.reset()[0] if dones[t] else nxt
    finally:
        env.close()
    return {
        "obs": all_obs,
        "next_obs": next_obs,
        "actions": np.asarray(actions),
        "rewards": rewards,
        "dones": dones,
        "observation_space": space,
        "action_space": env.action_space,
    }


def encoder_space(observation_space: gym.Space) -> spaces.Box:
    """The channels-first space an encoder sees for an env's image space (SB3's transpose).

    Example:
        >>> import numpy as np
        >>> encoder_space(spaces.Box(0, 255, (32, 32, 3), np.uint8)).shape
        (3, 32, 32)
    """
    if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 3:
        raise EncoderError(f"expected an image Box space, got {observation_space}")
    if is_image_space_channels_first(observation_space):
        return observation_space
    h, w, c = observation_space.shape
    return spaces.Box(
        low=np.transpose(observation_space.low, (2, 0, 1)),
        high=np.transpose(observation_space.high, (2, 0, 1)),
        shape=(c, h, w),
        dtype=observation_space.dtype,
    )


def _to_chw_uint8(frames: np.ndarray, channels_first: bool) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(frames))
    return x if channels_first else x.permute(0, 3, 1, 2).contiguous()


# --------------------------------------------------------------------------- objectives


class _Projection(nn.Module):
    """Linear + LayerNorm on top of encoder features (CURL's compressor)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, out_dim), nn.LayerNorm(out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _ema_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    with torch.no_grad():
        for t, o in zip(target.parameters(), online.parameters(), strict=True):
            t.lerp_(o, tau)
        for tb, ob in zip(target.buffers(), online.buffers(), strict=True):
            tb.copy_(ob)


def pretrain_encoder(
    frames: Mapping[str, Any],
    *,
    encoder: str,
    encoder_kwargs: Mapping[str, Any] | None = None,
    objective: str = "contrastive",
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    tb_dir: str | None = None,
    progress_bar: bool = True,
    positive: str = "same",
    shift_pad: int = 4,
    proj_dim: int = 64,
    ema_tau: float = 0.05,
    device: str = "cpu",
) -> tuple[BaseFeaturesExtractor, list[float]]:
    """Train encoder ``encoder`` self-supervised on ``frames`` from :func:`collect_frames`.

    Returns the trained encoder (on CPU, eval mode) and the loss of every step. The same
    ``seed`` gives the same weights and losses on CPU; the global torch RNG is left as it was.

    Args:
        frames: output of :func:`collect_frames`.
        encoder: registry name (:data:`rltransfer.encoders.ENCODERS`).
        encoder_kwargs: constructor keywords for the encoder (JSON-able).
        objective: ``"contrastive"`` or ``"inverse_dynamics"``.
        steps: gradient steps.
        batch_size: frames per step; for the contrastive loss, the other frames of the batch
            are the negatives (sampled without replacement, capped at the number of frames).
        lr: Adam learning rate.
        seed: seeds initialization, batch sampling and augmentation.
        tb_dir: TensorBoard log folder; the loss goes under ``ssl/loss``.
        progress_bar: show a tqdm bar.
        positive: contrastive positives: ``"same"`` frame (CURL) or ``"next"`` frame (ATC).
        shift_pad: random-shift padding in pixels (0 disables augmentation).
        proj_dim: size of the projection the contrastive loss compares.
        ema_tau: momentum-encoder update rate (target <- target + tau * (online - target)).
        device: torch device to train on.

    Example:
        >>> import numpy as np
        >>> from gymnasium import spaces
        >>> frames = {"obs": np.random.default_rng(0).integers(0, 255, (32, 32, 32, 3), np.uint8),
        ...           "observation_space": spaces.Box(0, 255, (32, 32, 3), np.uint8)}
        >>> enc, losses = pretrain_encoder(frames, encoder="small_cnn", steps=2, batch_size=8,
        ...                                lr=1e-3, seed=0, progress_bar=False)
        >>> enc.features_dim, len(losses)
        (256, 2)
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose from {OBJECTIVES}")
    if positive not in ("same", "next"):
        raise ValueError(f"positive must be 'same' or 'next', got {positive!r}")
    if steps <= 0 or batch_size <= 1:
        raise ValueError(f"need steps > 0 and batch_size > 1, got {steps} and {batch_size}")
    env_space = frames["observation_space"]
    enc_space = encoder_space(env_space)
    channels_first = enc_space is env_space
    obs = _to_chw_uint8(frames["obs"], channels_first)
    needs_next = objective == "inverse_dynamics" or positive == "next"
    nxt = _to_chw_uint8(frames["next_obs"], channels_first) if needs_next else None
    n = obs.shape[0]
    batch_size = min(int(batch_size), n)
    dev = torch.device(device)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        online = build_encoder(encoder, enc_space, encoder_kwargs).to(dev)
        fdim = online.features_dim
        head: nn.Module
        if objective == "contrastive":
            head = _Projection(fdim, proj_dim).to(dev)
            bilinear = nn.Parameter(torch.rand(proj_dim, proj_dim, device=dev))
            target = copy.deepcopy(online).requires_grad_(False)
            target_head = copy.deepcopy(head).requires_grad_(False)
            params = [*online.parameters(), *head.parameters(), bilinear]
        else:
            action_space = frames["action_space"]
            discrete = isinstance(action_space, spaces.Discrete)
            if not discrete and not isinstance(action_space, spaces.Box):
                raise EncoderError(
                    f"inverse_dynamics supports Discrete and Box actions, got {action_space}"
                )
            out_dim = int(action_space.n) if discrete else int(np.prod(action_space.shape))
            head = nn.Sequential(nn.Linear(2 * fdim, 256), nn.ReLU(), nn.Linear(256, out_dim))
            head = head.to(dev)
            acts = torch.as_tensor(np.asarray(frames["actions"]))
            acts = acts.long() if discrete else acts.float().reshape(n, -1)
            params = [*online.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam([p for p in params if p.requires_grad], lr=lr)
    gen = torch.Generator().manual_seed(seed)

    def augment(batch: torch.Tensor) -> torch.Tensor:
        x = batch.to(dev).float().div_(255.0)
        return random_shift(x, pad=shift_pad, generator=gen) if shift_pad > 0 else x

    writer = None
    if tb_dir is not None:
        writer = SummaryWriter(log_dir=str(tb_dir))
    losses: list[float] = []
    online.train()
    bar = tqdm(range(steps), desc=f"pretrain {encoder} ({objective})", disable=not progress_bar,
               **bar_timing())
    try:
        for step in bar:
            idx = torch.randperm(n, generator=gen)[:batch_size]
            if objective == "contrastive":
                anchor = augment(obs[idx])
                pos = augment(nxt[idx] if nxt is not None else obs[idx])
                q = head(online(anchor))
                with torch.no_grad():
                    k = target_head(target(pos))
                logits = q @ bilinear @ k.T
                logits = logits - logits.max(dim=1, keepdim=True).values.detach()
                loss = F.cross_entropy(logits, torch.arange(len(idx), device=dev))
            else:
                # one shift for both frames: independent shifts would hide the motion
                assert nxt is not None  # read whenever the objective is inverse dynamics
                pair = augment(torch.cat([obs[idx], nxt[idx]], dim=1))
                before, after = pair.split(obs.shape[1], dim=1)
                feats = torch.cat([online(before), online(after)], dim=1)
                pred = head(feats)
                target_a = acts[idx].to(dev)
                loss = (F.cross_entropy(pred, target_a) if discrete
                        else F.mse_loss(pred, target_a))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if objective == "contrastive":
                _ema_update(target, online, ema_tau)
                _ema_update(target_head, head, ema_tau)
            value = float(loss.detach())
            losses.append(value)
            if writer is not None:
                writer.add_scalar("ssl/loss", value, step)
            if step % 10 == 0 or step == steps - 1:
                bar.set_postfix(loss=f"{value:.4f}")
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return online.cpu().eval(), losses


# --------------------------------------------------------------------------- checkpoints


def save_encoder(
    out_dir: str | Path,
    encoder_module: BaseFeaturesExtractor,
    *,
    name: str,
    kwargs: Mapping[str, Any] | None = None,
    observation_space: gym.Space | None = None,
    card_extra: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``encoder_module`` as a checkpoint holding the encoder alone, with its card.

    Tensors are the encoder's own ``state_dict()`` keys (no prefix; under an SB3 policy they
    live at ``features_extractor.<key>``). The card records ``kind: "encoder"``, the registry
    ``name``, the full constructor ``kwargs`` (with ``weights`` reset to ``None``: the weights
    are in the checkpoint now; the original source is kept as ``encoder.init_weights``), the
    ``features_dim``, the channels-first ``observation_space`` the encoder was built on (an
    env's channels-last space is transposed), library versions, and ``card_extra`` (env,
    objective, steps, seed, final loss...).

    Example:
        >>> import numpy as np, tempfile
        >>> from rltransfer.encoders import build_encoder
        >>> enc = build_encoder("small_cnn", spaces.Box(0, 255, (3, 32, 32), np.uint8))
        >>> p = save_encoder(tempfile.mkdtemp() + "/e", enc, name="small_cnn")
        >>> (p / "card.json").is_file()
        True
    """
    own_space = encoder_module._observation_space
    space = own_space if observation_space is None else encoder_space(observation_space)
    if space_to_json(space) != space_to_json(own_space):
        raise EncoderError(
            f"observation_space {observation_space} does not match the space the encoder was "
            f"built on ({own_space})"
        )
    full_kwargs = merge_encoder_kwargs(name, kwargs)
    init_weights = full_kwargs.get("weights")
    if "weights" in full_kwargs:
        full_kwargs["weights"] = None
    card = {
        "kind": "encoder",
        **dict(card_extra or {}),
        "encoder": {
            "name": name,
            "kwargs": full_kwargs,
            "features_dim": int(encoder_module.features_dim),
            "class": f"{type(encoder_module).__module__}:{type(encoder_module).__qualname__}",
            "init_weights": init_weights,
        },
        "observation_space": space_to_json(space),
        "versions": versions(),
    }
    return save_checkpoint(out_dir, encoder_module.state_dict(), card, overwrite=overwrite)


def load_encoder(path: str | Path) -> BaseFeaturesExtractor:
    """Rebuild an encoder written by :func:`save_encoder` and load its weights (strict).

    The checkpoint's sha256 is verified and nothing is unpickled. The module comes back in
    eval mode; the global torch RNG is left as it was.

    Example:
        >>> import numpy as np, tempfile
        >>> from rltransfer.encoders import build_encoder
        >>> enc = build_encoder("impala_cnn", spaces.Box(0, 255, (3, 32, 32), np.uint8))
        >>> p = save_encoder(tempfile.mkdtemp() + "/e", enc, name="impala_cnn")
        >>> type(load_encoder(p)).__name__
        'ImpalaCNN'
    """
    ckpt = load_checkpoint(path)
    card = ckpt.card
    if card.get("kind") != "encoder" or "encoder" not in card:
        raise EncoderError(
            f"{str(path)!r} is not an encoder checkpoint (card kind {card.get('kind')!r}); "
            "policy checkpoints carry their encoder under 'features_extractor.' keys"
        )
    info = card["encoder"]
    space = space_from_json(card["observation_space"])
    with torch.random.fork_rng(devices=[]):
        module = build_encoder(info["name"], space, info.get("kwargs", {}))
    module.load_state_dict(ckpt.tensors, strict=True)
    return module.eval()


# --------------------------------------------------------------------------- CLI entry


def pretrain_encoder_cli(
    env: str,
    knobs: Mapping[str, Any] | None,
    *,
    pixels: Mapping[str, Any] | None,
    encoder: str,
    objective: str,
    frames: int,
    steps: int,
    seed: int,
    out: str | Path,
    tb_dir: str | None,
    encoder_kwargs: Mapping[str, Any] | None = None,
    batch_size: int = 64,
    lr: float = 1e-3,
    positive: str = "same",
    progress_bar: bool = True,
    overwrite: bool = False,
    loss_csv: str | Path | None = None,
) -> Path:
    """``rltransfer pretrain-encoder``: collect ``frames`` frames in ``env``, pretrain, save.

    Builds the env with ``rltransfer.envs.make(env, knobs, pixels=pixels)`` and records
    ``rltransfer.envs.describe(...)`` as the card's ``env``. ``loss_csv``: also write the
    loss of every step there (``step,loss``). Returns the checkpoint folder.

    Example:
        >>> # rltransfer pretrain-encoder cartpole --pixels '{"size": 64}' --encoder impala_cnn
        >>> pretrain_encoder_cli  # doctest: +ELLIPSIS
        <function pretrain_encoder_cli at ...>
    """
    def env_fn() -> gym.Env:
        if pixels is None:
            return rl_envs.make(env, knobs)
        return rl_envs.make(env, knobs, pixels=dict(pixels))

    data = collect_frames(env_fn, frames, seed=seed)
    module, losses = pretrain_encoder(
        data,
        encoder=encoder,
        encoder_kwargs=encoder_kwargs,
        objective=objective,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        tb_dir=tb_dir,
        progress_bar=progress_bar,
        positive=positive,
    )
    if loss_csv is not None:
        write_text_atomic(Path(loss_csv), "step,loss\n" + "".join(
            f"{i},{loss!r}\n" for i, loss in enumerate(losses, 1)))
    env_card = (rl_envs.describe(env, knobs) if pixels is None
                else rl_envs.describe(env, knobs, pixels=dict(pixels)))
    tail = losses[-10:]
    if encoder_collapsed(objective, sum(tail) / len(tail), batch_size):
        log.warning("pretrain-encoder: the %s loss ended at chance level (%.3f, ln %d = %.3f): "
                    "the encoder collapsed and its features do not tell frames apart; try "
                    "another seed, a lower lr or fewer steps", objective,
                    sum(tail) / len(tail), batch_size, float(np.log(batch_size)))
    extra = {
        "env": env_card,
        "env_observation_space": space_to_json(data["observation_space"]),
        "objective": objective,
        "positive": positive if objective == "contrastive" else None,
        "frames": int(frames),
        "steps": int(steps),
        "batch_size": int(batch_size),
        "lr": float(lr),
        "seed": int(seed),
        "final_loss": float(sum(tail) / len(tail)),
        "first_loss": float(losses[0]),
    }
    return save_encoder(out, module, name=encoder, kwargs=encoder_kwargs, card_extra=extra,
                        overwrite=overwrite)
