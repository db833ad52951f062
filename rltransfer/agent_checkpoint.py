"""Agents as checkpoints: save, load and verify them, import stable-baselines3 zips.

- :func:`save_agent` / :func:`load_agent`: an SB3 model built by rltransfer as a checkpoint
  folder (weights in safetensors, normalization statistics as tensors, a JSON card) and back.
- :func:`check_weights`: refuse a checkpoint whose weights contradict its card.
- :func:`import_sb3`: a stable-baselines3 ``.zip`` (an RL Zoo agent, say) as a checkpoint,
  reading only its weights with ``weights_only=True``.
- :func:`extract_encoder`: the features extractor of an agent checkpoint on its own.

The file format itself (hashes, card, atomic writes) is :mod:`rltransfer.checkpoint`.

Example:
    >>> import tempfile
    >>> from rltransfer.agent_build import build_agent
    >>> out = tempfile.mkdtemp() + "/ckpt"
    >>> path = save_agent(build_agent("CartPole-v1", algo="ppo", seed=0), out)
    >>> model = load_agent(path)
    >>> model.rltransfer.env, model.rltransfer.algo
    ('CartPole-v1', 'ppo')
"""

from __future__ import annotations

import io
import os
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecNormalize

from rltransfer._versions import versions
from rltransfer.agent_build import ALGORITHMS, agent_info, build_agent
from rltransfer.checkpoint import (
    MODEL_FILE,
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
    space_to_json,
)
from rltransfer.methods import TransferError
from rltransfer.methods.progressive import rebuild_structure
from rltransfer.presets import check_algo, parse_preset
from rltransfer.roles import encoder_prefixes
from rltransfer.sb3 import Learner, internals


def save_agent(model: BaseAlgorithm, out: str | os.PathLike, *,
               evaluation: Mapping[str, Any] | None = None, overwrite: bool = False,
               extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` as a checkpoint folder (atomic); returns the folder."""
    info = agent_info(model)
    extras: dict[str, torch.Tensor] = {}
    venv = model.get_vec_normalize_env()
    if venv is not None:
        extras.update(_normalization_tensors(venv))
    log_ent_coef = getattr(model, "log_ent_coef", None)  # SAC's, when the coefficient is learned
    if log_ent_coef is not None:
        extras["log_ent_coef"] = log_ent_coef.detach().clone()
    card = {
        "kind": "agent",
        "algo": info.algo,
        "policy": info.preset.policy,
        "policy_kwargs": info.preset.policy_kwargs.model_dump(exclude_none=True),
        "preset": info.preset.model_dump(mode="json"),
        "observation_space": space_to_json(model.observation_space),
        "action_space": space_to_json(model.action_space),
        "env": info.env_description(),
        "seed": info.seed,
        "steps": int(model.num_timesteps),
        "evaluation": dict(evaluation) if evaluation else None,
        "normalize": info.normalize,
        "transfer": info.transfer,
        "source": info.source,
        "versions": versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **dict(extra or {}),
    }
    if info.structure:  # only then: cards of plain networks stay as they were
        card["structure"] = info.structure
    return save_checkpoint(out, model.policy.state_dict(), card, extras=extras,
                           overwrite=overwrite)


def load_agent(path: str | os.PathLike | Checkpoint, *, env: str | None = None,
               knobs: Mapping[str, Any] | None = None, seed: int | None = None,
               device: str = "cpu") -> Learner:
    """Rebuild an SB3 model from an agent checkpoint (weights, normalization, preset).

    ``env``/``knobs`` default to the ones on the card.
    """
    ckpt = path if isinstance(path, Checkpoint) else check_weights(load_checkpoint(path))
    card = ckpt.card
    if card.get("kind", "agent") != "agent":
        raise CheckpointError(f"{ckpt.path}: kind={card.get('kind')!r} is not an agent checkpoint")
    env_desc = card.get("env") or {}
    env = env or env_desc.get("name")
    if not env:
        raise CheckpointError(f"{ckpt.path}: the card names no env; pass env=")
    knobs = env_desc.get("knobs", {}) if knobs is None else knobs
    preset = {k: v for k, v in card["preset"].items() if k != "algo"}
    model = build_agent(env, algo=card["algo"], seed=card.get("seed", 0) if seed is None else seed,
                        knobs=knobs, pixels=env_desc.get("pixels"), preset=preset,
                        normalize=card.get("normalize") or None, device=device)
    if card.get("structure"):
        rebuild_structure(model.policy, card["algo"], card["structure"])
        internals(card["algo"]).rebuild_optimizers(model)
        agent_info(model).structure = card["structure"]
    model.policy.load_state_dict(ckpt.tensors, strict=True)
    if card.get("normalize"):
        load_normalization(model, ckpt, update=bool(card["normalize"].get("update", True)))
    log_ent_coef = getattr(model, "log_ent_coef", None)
    if "log_ent_coef" in ckpt.extras and log_ent_coef is not None:
        with torch.no_grad():
            log_ent_coef.copy_(ckpt.extras["log_ent_coef"])
    return model


def check_weights(ckpt: Checkpoint) -> Checkpoint:
    """Refuse an agent checkpoint whose weights contradict its card; return it otherwise.

    The card says which policy the weights belong to (algorithm, preset with its network,
    observation and action spaces). That policy is built (on the CPU, without touching the
    global RNG) and every tensor it has must be in ``model.safetensors`` with the same shape
    and dtype, and nothing else may be: a card whose spaces or network do not match its
    weights, or weights of another dtype, raise :class:`CheckpointError` naming the tensor,
    what the file holds and what the card implies. Other kinds (encoder checkpoints) pass.

    Example:
        >>> ckpt = load_checkpoint(save_agent(build_agent("CartPole-v1", seed=0), "agent"))
        >>> ckpt.tensors["action_net.weight"] = torch.zeros(3, 64)  # three actions, not two
        >>> check_weights(ckpt)
        Traceback (most recent call last):
        ...
        rltransfer.checkpoint.CheckpointError: checkpoint 'agent': the weights contradict
        card.json: action_net.weight has shape (3, 64) in model.safetensors, but ... needs (2, 64)
    """
    card = ckpt.card
    if card.get("kind", "agent") != "agent":
        return ckpt
    where = f"checkpoint {str(ckpt.path)!r}" if ckpt.path else "checkpoint"
    try:
        algo = check_algo(card["algo"])
        raw = card["preset"]
        if not isinstance(raw, Mapping):
            raise TypeError(f"'preset' is {type(raw).__name__}, not a mapping")
        preset = parse_preset({k: v for k, v in raw.items() if k != "algo"}, algo,
                              where="card.json preset")
        obs_space, act_space = ckpt.observation_space(), ckpt.action_space()
    except KeyError as exc:
        raise CheckpointError(f"{where}: card.json has no {exc.args[0]!r}; an agent card names "
                              "its algo, preset and spaces") from None
    except (TypeError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{where}: card.json does not describe a policy: {first}") from None
    policy_cls = ALGORITHMS[algo].policy_aliases.get(preset.policy)
    if policy_cls is None:
        raise CheckpointError(f"{where}: card.json policy {preset.policy!r} is not a {algo} "
                              f"policy; accepted: {sorted(ALGORITHMS[algo].policy_aliases)}")
    try:
        with torch.random.fork_rng(devices=[]):
            policy = policy_cls(obs_space, act_space, lambda _: 0.0, use_sde=preset.use_sde,
                                **preset.policy_kwargs.to_kwargs())
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{where}: the policy card.json describes cannot be built on its "
                              f"spaces ({obs_space}, {act_space}): {first}") from None
    try:
        with torch.random.fork_rng(devices=[]):
            rebuild_structure(policy, algo, card.get("structure"))
    except (TransferError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: card.json structure does not describe a network: "
                              f"{exc}") from None
    expected = policy.state_dict()
    problems = []
    for key, want in expected.items():
        got = ckpt.tensors.get(key)
        if got is None:
            problems.append(f"{key} is missing from {MODEL_FILE} (the card's "
                            f"{preset.policy} needs shape {tuple(want.shape)})")
        elif tuple(got.shape) != tuple(want.shape):
            problems.append(f"{key} has shape {tuple(got.shape)} in {MODEL_FILE}, but the "
                            f"card's {preset.policy} on observation space {obs_space} and "
                            f"action space {act_space} needs {tuple(want.shape)}")
        elif got.dtype != want.dtype:
            problems.append(f"{key} has dtype {str(got.dtype).removeprefix('torch.')} in "
                            f"{MODEL_FILE}; the policy needs "
                            f"{str(want.dtype).removeprefix('torch.')}")
    extra = sorted(set(ckpt.tensors) - set(expected))
    if extra:
        problems.append(f"{MODEL_FILE} holds tensors the card's {preset.policy} does not have: "
                        f"{', '.join(extra[:5])}" + (" ..." if len(extra) > 5 else ""))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CheckpointError(f"{where}: the weights contradict card.json: {problems[0]}{more}")
    return ckpt


def import_sb3(zip_path: str | os.PathLike, env: str, *, out: str | os.PathLike,
               knobs: Mapping[str, Any] | None = None, algo: str | None = None,
               activation_fn: str | None = None, seed: int = 0,
               overwrite: bool = False) -> Path:
    """Turn a stable-baselines3 ``.zip`` into a checkpoint, reading only its weights.

    ``policy.pth`` is read with ``torch.load(weights_only=True)``; the zip's ``data`` (a
    cloudpickle payload) is never read. The spaces come from ``env``; the network shape is
    inferred from the weights; the activation defaults to the env's preset (``relu`` for
    RL Zoo's MuJoCo PPO agents, SB3's default otherwise). Normalization statistics saved
    by RL Zoo as ``vecnormalize.pkl`` are a pickle and are not imported.

    Example (an SB3 model saved the usual way; SB3's PPO uses tanh):
        >>> from stable_baselines3 import PPO
        >>> PPO("MlpPolicy", "CartPole-v1", seed=0).save("zoo_agent.zip")
        >>> path = import_sb3("zoo_agent.zip", "CartPole-v1", out="imported",
        ...                   activation_fn="tanh")
        >>> card = load_checkpoint(path).card
        >>> card["imported_from"], card["policy_kwargs"]["net_arch"]
        ('zoo_agent.zip', {'pi': [64, 64], 'vf': [64, 64]})
        >>> type(load_agent(path)).__name__
        'TransferPPO'
    """
    try:
        with zipfile.ZipFile(zip_path) as zf:
            if "policy.pth" not in zf.namelist():
                raise CheckpointError(f"{zip_path}: no policy.pth inside; not an SB3 model zip")
            raw = zf.read("policy.pth")
    except zipfile.BadZipFile:
        raise CheckpointError(f"{zip_path}: not a zip file") from None
    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError and friends
        raise CheckpointError(f"{zip_path}: policy.pth refused by torch.load(weights_only=True) "
                              f"({type(exc).__name__}); it holds more than weights") from None
    algo = check_algo(algo) if algo else ("sac" if any(k.startswith("actor.") for k in state)
                                          else "ppo")
    spec: dict[str, Any] = {"net_arch": _infer_net_arch(algo, state)}
    if activation_fn:
        spec["activation_fn"] = activation_fn
    if algo == "ppo" and "log_std" in state and state["log_std"].dim() == 2:
        overrides: dict[str, Any] = {"use_sde": True}
    else:
        overrides = {}
    overrides["policy_kwargs"] = spec
    model = build_agent(env, algo=algo, seed=seed, knobs=knobs, overrides=overrides,
                        normalize=None)
    try:
        model.policy.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{zip_path}: weights do not fit a {algo} policy for env {env!r} "
                              f"with net_arch {spec['net_arch']}: {exc}") from None
    agent_info(model).extra["imported_from"] = os.path.basename(str(zip_path))
    return save_agent(model, out, overwrite=overwrite,
                      extra={"imported_from": os.path.basename(str(zip_path)), "steps": None})


def extract_encoder(source: str | os.PathLike | Checkpoint, out: str | os.PathLike, *,
                    overwrite: bool = False) -> Path:
    """Write the features extractor of an agent checkpoint as an encoder checkpoint.

    The result holds the encoder's own ``state_dict`` (no prefix) and a card with
    ``kind: encoder``; :func:`transfer` places it into any PPO or SAC policy that uses the
    same encoder. MLP policies have no encoder weights (their extractor only flattens):
    move their hidden layers with ``partial``/``frozen`` and ``roles=["encoder"]`` instead.

    Example (an agent on CartPole's pixel view, whose CNN is the encoder):
        >>> model = build_agent("cartpole", seed=0, pixels={"size": 64})
        >>> path = extract_encoder(save_agent(model, "agent"), "encoder")
        >>> card = load_checkpoint(path).card
        >>> card["kind"], card["encoder"]
        ('encoder', {'kwargs': {'features_dim': 256}, 'name': 'nature_cnn'})
    """
    ckpt = source if isinstance(source, Checkpoint) else load_checkpoint(source)
    if ckpt.card.get("kind", "agent") != "agent":
        raise CheckpointError(f"{ckpt.path}: kind={ckpt.card.get('kind')!r}; need an agent")
    prefix = encoder_prefixes(ckpt.card["algo"])[0]
    tensors = {k[len(prefix):]: v for k, v in ckpt.tensors.items() if k.startswith(prefix)}
    spec = ckpt.card.get("policy_kwargs") or {}
    if not tensors:
        raise CheckpointError(
            f"{ckpt.path}: the policy's features extractor has no weights (an MLP policy "
            "only flattens observations); use method partial or frozen with roles=['encoder'] "
            "to move its hidden layers instead")
    card = {"kind": "encoder",
            "encoder": {"name": spec.get("features_extractor", "nature_cnn"),
                        "kwargs": spec.get("features_extractor_kwargs") or {}},
            "observation_space": ckpt.card.get("observation_space"),
            "env": ckpt.card.get("env"), "seed": ckpt.card.get("seed"),
            "steps": ckpt.card.get("steps"), "objective": f"rl:{ckpt.card['algo']}",
            "source": {"sha256": ckpt.card.get("sha256"), "algo": ckpt.card["algo"]},
            "versions": versions()}
    return save_checkpoint(out, tensors, card, overwrite=overwrite)

def _infer_net_arch(algo: str, state: Mapping[str, torch.Tensor]) -> Any:
    def sizes(prefix: str, drop_last: bool = False) -> list[int]:
        idx = sorted({int(k[len(prefix):].split(".")[0]) for k in state
                      if k.startswith(prefix) and k.endswith(".weight")})
        out = [int(state[f"{prefix}{i}.weight"].shape[0]) for i in idx]
        return out[:-1] if drop_last else out

    if algo == "ppo":
        return {"pi": sizes("mlp_extractor.policy_net."), "vf": sizes("mlp_extractor.value_net.")}
    return {"pi": sizes("actor.latent_pi."), "qf": sizes("critic.qf0.", drop_last=True)}


def _normalization_tensors(venv: VecNormalize) -> dict[str, torch.Tensor]:
    out = {}
    for name in ("obs_rms", "ret_rms"):
        rms = getattr(venv, name, None)
        if rms is None or isinstance(rms, dict):
            continue
        out[f"vecnormalize.{name}.mean"] = torch.as_tensor(np.asarray(rms.mean, np.float64))
        out[f"vecnormalize.{name}.var"] = torch.as_tensor(np.asarray(rms.var, np.float64))
        out[f"vecnormalize.{name}.count"] = torch.tensor([float(rms.count)], dtype=torch.float64)
    return out


def load_normalization(model: BaseAlgorithm, ckpt: Checkpoint, update: bool) -> None:
    """Put the checkpoint's normalization statistics into the model's VecNormalize; ``update``
    says whether it keeps updating them."""
    venv = model.get_vec_normalize_env()
    if venv is None:
        return
    for name in ("obs_rms", "ret_rms"):
        key = f"vecnormalize.{name}.mean"
        if key not in ckpt.extras:
            continue
        rms = getattr(venv, name)
        mean = ckpt.extras[key].numpy()
        if np.shape(rms.mean) != mean.shape:
            raise ValueError(f"normalization statistics {name} have shape {mean.shape} in the "
                             f"source but {np.shape(rms.mean)} in the target; spaces differ")
        rms.mean = mean.copy()
        rms.var = ckpt.extras[f"vecnormalize.{name}.var"].numpy().copy()
        rms.count = float(ckpt.extras[f"vecnormalize.{name}.count"].item())
    venv.training = bool(update)
