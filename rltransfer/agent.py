"""Build, pretrain, transfer, save and import PPO/SAC agents.

The public verbs:

- :func:`build_agent`: an SB3 model for an env from its preset, with an explicit seed.
- :func:`pretrain`: train a source agent, evaluate it, write a checkpoint.
- :func:`transfer`: a target agent initialized from a source checkpoint by a method,
  ready to ``learn``.
- :func:`save_agent` / :func:`load_agent`: checkpoints of SB3 models (weights in
  safetensors, normalization statistics as tensors, a JSON card).
- :func:`import_sb3`: a stable-baselines3 ``.zip`` (an RL Zoo agent, say) as a checkpoint,
  reading only its weights with ``weights_only=True``.

Example:
    >>> import rltransfer as rlt
    >>> src = rlt.pretrain("CartPole-v1", algo="ppo", steps=256, seed=0,
    ...                    out=tmp / "src", progress_bar=False)           # doctest: +SKIP
    >>> model = rlt.transfer(src, "CartPole-v1", method="finetune", seed=1)  # doctest: +SKIP
    >>> model.learn(256)                                                    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import random
import time
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import (
    DummyVecEnv,
    VecEnv,
    VecNormalize,
    VecTransposeImage,
    is_vecenv_wrapped,
)

from rltransfer import envs as rl_envs
from rltransfer._versions import versions
from rltransfer.checkpoint import (
    MODEL_FILE,
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
    space_to_json,
)
from rltransfer.methods import BuildSpec, MethodContext, TransferError, TransferLog, get_method
from rltransfer.presets import NormalizeSpec, Preset, check_algo, parse_preset, resolve_preset
from rltransfer.sb3 import LEARNERS
from rltransfer.training import EvalCurveCallback, learn_checked, log_to

log = logging.getLogger("rltransfer")
ALGORITHMS: dict[str, type[BaseAlgorithm]] = LEARNERS
"""The learner per algorithm: stable-baselines3's PPO and SAC, one subclass each that runs
transfer methods (:mod:`rltransfer.sb3`); without a method they train exactly as SB3's."""
EVAL_SEED_OFFSET = 1_000_003


@dataclass
class AgentInfo:
    """What rltransfer knows about a model it built (kept as ``model.rltransfer``)."""

    env: str
    knobs: dict[str, Any]
    pixels: dict[str, Any] | None
    algo: str
    preset: Preset
    seed: int
    normalize: dict[str, Any] | None = None
    transfer: dict[str, Any] | None = None
    source: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def env_description(self) -> dict[str, Any]:
        return rl_envs.describe(self.env, self.knobs, **_pix(self.pixels))


# --------------------------------------------------------------------------- building


def make_env(env: str, knobs: Mapping[str, Any] | None = None, *, n_envs: int = 1,
             seed: int = 0, pixels: Mapping[str, Any] | None = None,
             normalize: NormalizeSpec | Mapping[str, Any] | None = None, gamma: float = 0.99,
             training: bool = True) -> VecEnv:
    """A seeded VecEnv of ``n_envs`` copies of an env member, normalized when asked."""
    factory = rl_envs.env_fn(env, dict(knobs or {}), **_pix(pixels))
    venv = make_vec_env(factory, n_envs=n_envs, seed=seed, vec_env_cls=DummyVecEnv)
    if normalize:
        spec = _norm_spec(normalize)
        venv = VecNormalize(venv, training=training, norm_obs=spec.norm_obs,
                            norm_reward=spec.norm_reward and training, clip_obs=spec.clip_obs,
                            clip_reward=spec.clip_reward, gamma=gamma)
    return venv


def build_agent(env: str, *, algo: str = "ppo", seed: int, knobs: Mapping[str, Any] | None = None,
                pixels: Mapping[str, Any] | None = None,
                preset: str | os.PathLike | Mapping[str, Any] | Preset | None = None,
                overrides: Mapping[str, Any] | None = None,
                normalize: NormalizeSpec | Mapping[str, Any] | None | bool = True,
                tensorboard_log: str | os.PathLike | None = None, device: str = "cpu",
                verbose: int = 0, method: Any = None) -> BaseAlgorithm:
    """A freshly initialized SB3 model for ``env`` from its preset, seeded with ``seed``.

    ``normalize``: ``True`` follows the preset; ``None``/``False`` disables normalization;
    a spec overrides the preset's. ``method``: a transfer method whose ``configure`` hook may
    add learner keyword arguments (see :func:`transfer`).
    """
    algo = check_algo(algo)
    knobs = dict(knobs or {})
    desc = rl_envs.describe(env, knobs, **_pix(pixels))
    if isinstance(preset, Preset.__args__):  # type: ignore[attr-defined]
        p = preset if not overrides else resolve_preset(
            env, algo, preset.model_dump(exclude_unset=True), overrides=overrides)
    else:
        p = resolve_preset(env, algo, preset, family=desc.get("family"),
                           gym_id=desc.get("gym_id"), pixels=bool(pixels), overrides=overrides)
    norm = p.normalize_spec() if normalize is True else (normalize or None)
    venv = make_env(env, knobs, n_envs=p.n_envs, seed=seed, pixels=pixels, normalize=norm,
                    gamma=p.gamma)
    if algo == "sac" and not isinstance(venv.action_space, spaces.Box):
        raise ValueError(f"algo='sac' needs a continuous (Box) action space; env {env!r} has "
                         f"{venv.action_space}. Use algo='ppo' for this env.")
    build = BuildSpec(algo=algo, preset=p)
    if method is not None:
        method.configure(build)
    model = ALGORITHMS[algo](
        p.policy, venv, seed=seed, device=device, verbose=verbose,
        tensorboard_log=str(tensorboard_log) if tensorboard_log else None,
        policy_kwargs=p.policy_kwargs.to_kwargs(), **{**p.hyperparams(), **build.algo_kwargs},
    )
    if p.augment_shift:
        install_random_shift(model, p.augment_shift)
    norm_card = None
    if isinstance(venv, VecNormalize):
        spec = _norm_spec(norm)
        norm_card = {**spec.model_dump(), "gamma": p.gamma, "epsilon": venv.epsilon,
                     "update": True}
    model.rltransfer = AgentInfo(env=env, knobs=knobs, pixels=dict(pixels) if pixels else None,
                                 algo=algo, preset=p, seed=seed, normalize=norm_card)
    return model


def install_random_shift(model: BaseAlgorithm, pad: int) -> int:
    """DrQ-style augmentation: randomly shift the images every features extractor sees while
    the policy is in training mode (SB3's gradient updates), never in rollouts or evaluation.

    Installed as forward pre-hooks, so parameter names and checkpoints are unchanged.
    Returns the number of extractors hooked.
    """
    from rltransfer.encoders import random_shift

    def hook(module: torch.nn.Module, args: tuple) -> tuple | None:
        if module.training and args and args[0].dim() == 4:
            return (random_shift(args[0], pad), *args[1:])
        return None

    seen = set()
    for name, module in model.policy.named_modules():
        if name.endswith("features_extractor") and id(module) not in seen:
            seen.add(id(module))
            module.register_forward_pre_hook(hook)
    return len(seen)


def make_eval_env(model: BaseAlgorithm) -> VecEnv:
    """An evaluation VecEnv built like the model's training env (normalization frozen)."""
    info = _info(model)
    venv = make_env(info.env, info.knobs, n_envs=1, seed=info.seed + EVAL_SEED_OFFSET,
                    pixels=info.pixels, normalize=info.normalize, gamma=info.preset.gamma,
                    training=False)
    if is_vecenv_wrapped(model.get_env(), VecTransposeImage):  # as SB3 wraps the training env
        venv = VecTransposeImage(venv)
    return venv


# --------------------------------------------------------------------------- run failures

_RUN_MARK = "_rltransfer_during_run"


@contextlib.contextmanager
def during_run(what: str) -> Iterator[None]:
    """Mark any exception raised inside as a failure of a run that had started (training,
    evaluation), not of its input; the exception itself passes through unchanged.

    The command line exits 1 for these and 2 for bad input (see :func:`raised_during_run`).
    """
    try:
        yield
    except Exception as exc:
        with contextlib.suppress(AttributeError, TypeError):
            setattr(exc, _RUN_MARK, what)
        raise


def raised_during_run(exc: BaseException) -> bool:
    """Whether ``exc`` was raised while an agent trained or was evaluated (a run failure),
    or by a custom env's code (:class:`rltransfer.envs.EnvFault`)."""
    return bool(getattr(exc, _RUN_MARK, None)) or isinstance(exc, rl_envs.EnvFault)


# --------------------------------------------------------------------------- verbs


def pretrain(env: str, *, algo: str = "ppo", steps: int, seed: int,
             knobs: Mapping[str, Any] | None = None, pixels: Mapping[str, Any] | None = None,
             preset: str | os.PathLike | Mapping[str, Any] | None = None,
             overrides: Mapping[str, Any] | None = None, out: str | os.PathLike,
             eval_episodes: int = 10, progress_bar: bool = True,
             tensorboard_log: str | os.PathLike | None = None, overwrite: bool = False,
             device: str = "cpu", eval_every: int | None = None,
             curve_csv: str | os.PathLike | None = None,
             extra: Mapping[str, Any] | None = None) -> Path:
    """Train a source agent on ``env`` for ``steps`` steps, evaluate it, write a checkpoint.

    The one pretraining path: ``rltransfer pretrain``, this function and the experiment
    runner's source runs all come here. It evaluates at step 0, every ``eval_every`` steps
    (default: only at the end) and after the last step; ``curve_csv`` receives the curve.
    ``preset`` may also be an already resolved :class:`rltransfer.presets.Preset`, used as
    is. Returns the checkpoint folder ``out``; its card's ``evaluation`` is the final point.
    """
    _check_steps(steps)
    if not isinstance(eval_episodes, int | np.integer) or eval_episodes < 1:
        raise ValueError(f"eval_episodes={eval_episodes!r}: must be a whole number >= 1")
    if eval_every is not None and (not isinstance(eval_every, int | np.integer)
                                   or eval_every < 1):
        raise ValueError(f"eval_every={eval_every!r}: must be a whole number of steps >= 1")
    if Path(out).exists() and not overwrite:  # before training, not after
        raise CheckpointError(f"checkpoint folder {str(out)!r} already exists; pass "
                              "overwrite=True (--overwrite) or choose another folder")
    model = build_agent(env, algo=algo, seed=seed, knobs=knobs, pixels=pixels, preset=preset,
                        overrides=overrides, device=device)
    with during_run("pretraining"):
        train_and_save(model, steps, out=out, eval_every=eval_every or max(steps, 1),
                       eval_episodes=eval_episodes, curve_csv=curve_csv,
                       progress_bar=progress_bar, overwrite=overwrite, extra=extra,
                       tensorboard_log=tensorboard_log)
    return Path(out)


def transfer(source: str | os.PathLike | Checkpoint | None, env: str, *,
             method: str | Mapping[str, Any] | Any = "finetune", seed: int,
             algo: str | None = None, knobs: Mapping[str, Any] | None = None,
             pixels: Mapping[str, Any] | None = None,
             preset: str | os.PathLike | Mapping[str, Any] | None = None,
             overrides: Mapping[str, Any] | None = None, on_mismatch: str = "error",
             normalize_update: bool = True, tensorboard_log: str | os.PathLike | None = None,
             device: str = "cpu", **method_options: Any) -> BaseAlgorithm:
    """A target agent for ``env`` initialized from ``source`` by ``method``, ready to learn.

    ``method`` is a name (``rltransfer list methods``), a mapping ``{name: {options}}``, or a
    method object; ``method_options`` are merged into it (for example ``roles=["actor"]``).
    ``algo`` defaults to the source's. Normalization statistics of the source travel with the
    weights; ``normalize_update`` says whether the target keeps updating them (``True``) or
    holds them fixed.

    The method's hooks run in order: ``configure`` (learner arguments), the agent is built,
    ``wrap_env`` (the training env only), ``initialize`` (weights), then its callbacks and
    loss terms are installed on the model, so a plain ``model.learn()`` runs all of it.
    """
    m = get_method(method, **method_options)
    ckpt = None
    if source is not None:
        ckpt = source if isinstance(source, Checkpoint) else check_weights(load_checkpoint(source))
    elif m.moves_weights:
        raise ValueError(f"method {m.label!r} needs a source checkpoint; source=None")
    if algo is None:
        if ckpt is None or not ckpt.card.get("algo"):
            raise ValueError("algo is required when the source does not name one "
                             "(scratch without source, or an encoder checkpoint)")
        algo = ckpt.card["algo"]
    algo = check_algo(algo)
    if algo not in m.algos:
        raise TransferError(f"method {m.name!r} works with algo {list(m.algos)}, not {algo!r}")
    if m.needs_teacher and (ckpt is None or ckpt.card.get("kind", "agent") != "agent"):
        raise TransferError(f"method {m.name!r} needs an agent checkpoint as source (it uses "
                            "the source policy as a teacher)")
    src_norm = (ckpt.card.get("normalize") if ckpt is not None and m.moves_weights else None)
    model = build_agent(env, algo=algo, seed=seed, knobs=knobs, pixels=pixels, preset=preset,
                        overrides=overrides, normalize=src_norm if src_norm else True,
                        tensorboard_log=tensorboard_log, device=device, method=m)
    teacher = make_teacher(ckpt, env, knobs=knobs) if m.needs_teacher else None
    ctx = MethodContext(source=ckpt, on_mismatch=on_mismatch, teacher=teacher, seed=seed)
    wrapped = m.wrap_env(model.env, model, ctx)
    if wrapped is not model.env:
        model.env = wrapped
        model._last_obs = None  # learn() resets through the wrapper
    tlog: TransferLog = m.initialize(model, ctx)
    model.rlt.teacher = teacher
    model.rlt.callbacks.extend(m.callbacks(model, ctx))
    model.rlt.loss_terms.extend(m.loss_terms(model, ctx))
    info = _info(model)
    if src_norm:
        _load_normalization(model, ckpt, normalize_update)
        info.normalize = {**info.normalize, "update": bool(normalize_update),
                          "from_source": True}
    info.transfer = {**tlog.summary(), "label": m.label, "spec": m.spec()}
    if ckpt is not None:
        info.source = {"sha256": ckpt.card.get("sha256"), "env": ckpt.card.get("env"),
                       "algo": ckpt.card.get("algo"), "kind": ckpt.card.get("kind", "agent"),
                       "path": str(ckpt.path) if ckpt.path else None}
    for note in tlog.notes:
        log.info("%s: %s", m.label, note)
    model.rltransfer_log = tlog
    return model


def make_teacher(source: Checkpoint, env: str, *,
                 knobs: Mapping[str, Any] | None = None) -> Any:
    """The source agent's policy as a frozen, eval-mode teacher on the target's spaces.

    Built from the checkpoint's own preset on the target env (so its spaces are the
    target's); its parameters have ``requires_grad`` off and it is in no optimizer.
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):  # building it must not move the target's RNGs
            agent = load_agent(source, env=env, knobs=knobs, seed=0)
    except RuntimeError as exc:
        raise TransferError(f"the source policy does not fit the target env {env!r} "
                            f"(its spaces differ): {str(exc).splitlines()[0]}") from None
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    teacher = agent.policy
    teacher.set_training_mode(False)
    for p in teacher.parameters():
        p.requires_grad_(False)
    agent.env.close()
    return teacher


def learn_with_eval(model: BaseAlgorithm, steps: int, *, eval_every: int, eval_episodes: int,
                    curve_csv: str | os.PathLike | None = None, progress_bar: bool = False,
                    tb_log_name: str = "run", on_eval=None) -> list[dict[str, float]]:
    """Train ``model`` for ``steps`` steps, evaluating at step 0, every ``eval_every`` and at
    the end.

    Returns the curve rows (also written to ``curve_csv``); the last row is the trained
    agent's (an evaluation is added after the last step if the schedule did not fall on it).
    ``steps=0`` evaluates the initialized agent once and trains nothing. A parameter, loss,
    reward or return that becomes NaN or infinite stops training with
    :class:`rltransfer.training.DivergedError` (``diverged at step N: ...``).
    """
    _check_steps(steps)
    info = _info(model)
    cb = EvalCurveCallback(make_eval_env(model), every=eval_every, episodes=eval_episodes,
                           seed=info.seed + EVAL_SEED_OFFSET, csv_path=curve_csv,
                           on_eval=on_eval)
    # learn_checked: model.learn with a DivergenceCallback first (issue #13.4)
    with during_run("training"):
        learn_checked(model, steps, cb, progress_bar=progress_bar, tb_log_name=tb_log_name)
        if cb.rows[-1]["step"] < steps:  # the schedule missed the end: evaluate the final agent
            cb.evaluate_now()
    return cb.rows


def train_and_save(model: BaseAlgorithm, steps: int, *, out: str | os.PathLike,
                   eval_every: int, eval_episodes: int,
                   curve_csv: str | os.PathLike | None = None, progress_bar: bool = False,
                   overwrite: bool = False, extra: Mapping[str, Any] | None = None,
                   tensorboard_log: str | os.PathLike | None = None) -> list[dict[str, float]]:
    """:func:`learn_with_eval`, then :func:`save_agent` into ``out`` with the final point as
    the checkpoint's evaluation (and ``train_wall_time``). Returns the curve rows.

    ``tensorboard_log``: a folder that becomes one TensorBoard run holding SB3's training
    scalars, what the method logs and the evaluation curve (no ``<name>_<n>`` subfolder).
    What pretraining, ``rltransfer transfer`` and every experiment run do after building
    their agent.
    """
    t0 = time.perf_counter()
    logger = log_to(model, tensorboard_log) if tensorboard_log is not None else None
    try:
        rows = learn_with_eval(model, steps, eval_every=eval_every,
                               eval_episodes=eval_episodes, curve_csv=curve_csv,
                               progress_bar=progress_bar)
    finally:
        if logger is not None:
            logger.close()
    last = rows[-1]
    evaluation = {"mean": last["mean_return"], "std": last["std_return"],
                  "episodes": int(last["episodes"]), "step": int(last["step"])}
    save_agent(model, out, evaluation=evaluation, overwrite=overwrite,
               extra={"train_wall_time": round(time.perf_counter() - t0, 3), **(extra or {})})
    return rows


# --------------------------------------------------------------------------- checkpoints


def save_agent(model: BaseAlgorithm, out: str | os.PathLike, *,
               evaluation: Mapping[str, Any] | None = None, overwrite: bool = False,
               extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` as a checkpoint folder (atomic); returns the folder."""
    info = _info(model)
    extras: dict[str, torch.Tensor] = {}
    venv = model.get_vec_normalize_env()
    if venv is not None:
        extras.update(_normalization_tensors(venv))
    if getattr(model, "log_ent_coef", None) is not None:
        extras["log_ent_coef"] = model.log_ent_coef.detach().clone()
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
    return save_checkpoint(out, model.policy.state_dict(), card, extras=extras,
                           overwrite=overwrite)


def load_agent(path: str | os.PathLike | Checkpoint, *, env: str | None = None,
               knobs: Mapping[str, Any] | None = None, seed: int | None = None,
               device: str = "cpu") -> BaseAlgorithm:
    """Rebuild an SB3 model from an agent checkpoint (weights, normalization, preset).

    ``env``/``knobs`` default to the ones on the card.
    """
    ckpt = path if isinstance(path, Checkpoint) else check_weights(load_checkpoint(path))
    card = ckpt.card
    if card.get("kind", "agent") != "agent":
        raise CheckpointError(f"{ckpt.path}: kind={card.get('kind')!r} is not an agent checkpoint")
    env_desc = card.get("env") or {}
    env = env or env_desc.get("name")
    knobs = env_desc.get("knobs", {}) if knobs is None else knobs
    preset = {k: v for k, v in card["preset"].items() if k != "algo"}
    model = build_agent(env, algo=card["algo"], seed=card.get("seed", 0) if seed is None else seed,
                        knobs=knobs, pixels=env_desc.get("pixels"), preset=preset,
                        normalize=card.get("normalize") or None, device=device)
    model.policy.load_state_dict(ckpt.tensors, strict=True)
    if card.get("normalize"):
        _load_normalization(model, ckpt, update=bool(card["normalize"].get("update", True)))
    if "log_ent_coef" in ckpt.extras and getattr(model, "log_ent_coef", None) is not None:
        with torch.no_grad():
            model.log_ent_coef.copy_(ckpt.extras["log_ent_coef"])
    return model


def check_weights(ckpt: Checkpoint) -> Checkpoint:
    """Refuse an agent checkpoint whose weights contradict its card; return it otherwise.

    The card says which policy the weights belong to (algorithm, preset with its network,
    observation and action spaces). That policy is built (on the CPU, without touching the
    global RNG) and every tensor it has must be in ``model.safetensors`` with the same shape
    and dtype, and nothing else may be: a card whose spaces or network do not match its
    weights, or weights of another dtype, raise :class:`CheckpointError` naming the tensor,
    what the file holds and what the card implies. Other kinds (encoder checkpoints) pass.
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
    _info(model).extra["imported_from"] = os.path.basename(str(zip_path))
    return save_agent(model, out, overwrite=overwrite,
                      extra={"imported_from": os.path.basename(str(zip_path)), "steps": None})


# --------------------------------------------------------------------------- helpers


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


def _load_normalization(model: BaseAlgorithm, ckpt: Checkpoint, update: bool) -> None:
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


def _norm_spec(normalize: NormalizeSpec | Mapping[str, Any]) -> NormalizeSpec:
    """A NormalizeSpec from a spec or a card's ``normalize`` entry (extra keys ignored)."""
    if isinstance(normalize, NormalizeSpec):
        return normalize
    return NormalizeSpec(**{k: v for k, v in dict(normalize).items()
                            if k in NormalizeSpec.model_fields})


def _info(model: BaseAlgorithm) -> AgentInfo:
    info = getattr(model, "rltransfer", None)
    if info is None:
        raise ValueError("this model was not built by rltransfer (build_agent/transfer); "
                         "its env and preset are unknown")
    return info


def _pix(pixels: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"pixels": dict(pixels)} if pixels else {}


def _check_steps(steps: int) -> None:
    if not isinstance(steps, int | np.integer) or steps < 0:
        raise ValueError(f"steps={steps!r}: must be a whole number >= 0")


def extract_encoder(source: str | os.PathLike | Checkpoint, out: str | os.PathLike, *,
                    overwrite: bool = False) -> Path:
    """Write the features extractor of an agent checkpoint as an encoder checkpoint.

    The result holds the encoder's own ``state_dict`` (no prefix) and a card with
    ``kind: encoder``; :func:`transfer` places it into any PPO or SAC policy that uses the
    same encoder. MLP policies have no encoder weights (their extractor only flattens):
    move their hidden layers with ``partial``/``frozen`` and ``roles=["encoder"]`` instead.
    """
    from rltransfer.roles import encoder_prefixes

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
