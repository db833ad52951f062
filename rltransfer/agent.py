"""Pretrain, transfer and train PPO/SAC agents: the verbs of the Python API.

- :func:`pretrain`: train a source agent, evaluate it, write a checkpoint.
- :func:`transfer`: a target agent initialized from a source checkpoint by a method,
  ready to ``learn``.
- :func:`learn_with_eval`: train, evaluating every N steps into a curve.
- :func:`train_and_save`: that, then save the trained agent with its final evaluation.
- :func:`make_teacher`: the source policy, frozen, for methods that learn from it.

The rest of the agent API lives in two modules and is importable from here as well:
:mod:`rltransfer.agent_build` (:func:`build_agent`, :func:`make_env`,
:func:`make_eval_env`) and :mod:`rltransfer.agent_checkpoint` (:func:`save_agent`,
:func:`load_agent`, :func:`check_weights`, :func:`import_sb3`, :func:`extract_encoder`).

Example (one PPO update of the CartPole preset each, to show the calls):
    >>> import rltransfer as rlt
    >>> src = rlt.pretrain("cartpole", algo="ppo", steps=256, seed=0, out="src",
    ...                    eval_episodes=2, progress_bar=False)
    >>> rlt.load_checkpoint(src).card["steps"]
    256
    >>> model = rlt.transfer(src, "cartpole", knobs={"length": 1.0}, method="finetune",
    ...                      seed=1)
    >>> rows = rlt.learn_with_eval(model, 256, eval_every=128, eval_episodes=2)
    >>> [row["step"] for row in rows]
    [0, 128, 256]
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm

from rltransfer import envs as rl_envs
from rltransfer.agent_build import (
    ALGORITHMS,
    EVAL_SEED_OFFSET,
    AgentInfo,
    agent_info,
    build_agent,
    install_random_shift,
    make_env,
    make_eval_env,
)
from rltransfer.agent_checkpoint import (
    check_weights,
    extract_encoder,
    import_sb3,
    load_agent,
    load_normalization,
    save_agent,
    versions,
)
from rltransfer.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from rltransfer.envs.adapter import Adapter, ResolvedAdapter
from rltransfer.envs.catalogue import family_blocks, parse_adapter
from rltransfer.methods import MethodContext, TransferError, TransferLog, get_method
from rltransfer.methods.adapter import AdaptedTeacher, adapt_checkpoint
from rltransfer.methods.teacher import install_state_teacher
from rltransfer.presets import Preset, check_algo
from rltransfer.sb3 import Learner
from rltransfer.training import EvalCurveCallback, learn_checked, log_to

__all__ = [
    "ALGORITHMS",
    "EVAL_SEED_OFFSET",
    "AgentInfo",
    "build_agent",
    "check_weights",
    "during_run",
    "extract_encoder",
    "import_sb3",
    "install_random_shift",
    "learn_with_eval",
    "load_agent",
    "make_env",
    "make_eval_env",
    "make_teacher",
    "pretrain",
    "raised_during_run",
    "save_agent",
    "train_and_save",
    "transfer",
    "versions",
]

log = logging.getLogger("rltransfer")


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
             preset: str | os.PathLike | Mapping[str, Any] | Preset | None = None,
             overrides: Mapping[str, Any] | None = None, out: str | os.PathLike,
             eval_episodes: int = 10, progress_bar: bool = True,
             tensorboard_log: str | os.PathLike | None = None, overwrite: bool = False,
             device: str = "cpu", eval_every: int | None = None,
             curve_csv: str | os.PathLike | None = None,
             extra: Mapping[str, Any] | None = None) -> Path:
    """Train a source agent on ``env`` for ``steps`` steps, evaluate it, write a checkpoint.

    The one pretraining path: ``rltransfer pretrain``, this function and the experiment
    runner's source runs all come here. It evaluates at step 0, every ``eval_every`` steps
    (default: only at the end) and after the last step; ``curve_csv`` receives the curve,
    ``tensorboard_log`` (a folder) SB3's training scalars and the curve as one TensorBoard
    run. ``preset`` may also be an already resolved :class:`rltransfer.presets.Preset`, used
    as is. Returns the checkpoint folder ``out``; its card's ``evaluation`` is the final
    point.
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
             device: str = "cpu",
             adapter: str | Adapter | Mapping[str, Any] | ResolvedAdapter | None = None,
             **method_options: Any) -> Learner:
    """A target agent for ``env`` initialized from ``source`` by ``method``, ready to learn.

    ``method`` is a name (``rltransfer list methods``), a mapping ``{name: {options}}``, or a
    method object; ``method_options`` are merged into it (for example ``roles=["actor"]``).
    ``algo`` defaults to the source's. Normalization statistics of the source travel with the
    weights; ``normalize_update`` says whether the target keeps updating them (``True``) or
    holds them fixed.

    ``adapter``: when the source's observation or action layout differs from the target's,
    how their dimensions correspond: a pair name whose adapter to use
    (``"hopper/to-walker2d"``), an :class:`rltransfer.envs.Adapter` or its mapping. The
    source is then rewritten into the target's shapes, function-preserving at step 0
    (:mod:`rltransfer.methods.adapter`), before the method moves weights; a teacher sees its
    own observation. The card records it under ``transfer.adapter``.

    The method's hooks run in order: ``configure`` (learner arguments), the agent is built,
    ``wrap_env`` (the training env only), ``initialize`` (weights), then its callbacks and
    loss terms are installed on the model, so a plain ``model.learn()`` runs all of it.

    Example (``src``: a CartPole checkpoint, as :func:`pretrain` writes):
        >>> src = pretrain("cartpole", steps=256, seed=0, out="src", eval_episodes=2,
        ...                progress_bar=False)
        >>> model = transfer(src, "cartpole", knobs={"length": 1.0}, seed=1,
        ...                  method="partial", roles=["actor"])
        >>> tlog = model.rltransfer_log  # the actor's tensors moved; the critic's are new
        >>> tlog.method, len(tlog.moved), len(tlog.fresh), len(tlog.frozen)
        ('partial[actor]', 6, 6, 0)
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
    state_teacher = m.needs_teacher and ckpt is not None and _sees_state(ckpt, pixels, adapter)
    if state_teacher and tuple(getattr(m, "roles", ())):
        raise TransferError(
            f"method {m.label!r}: the source sees the state and the target pixels, so no "
            "weight fits; its teacher is fed the state behind each frame. Move no weights: "
            f"{{{m.name}: {{roles: []}}}}")
    src_norm = (ckpt.card.get("normalize")
                if ckpt is not None and m.moves_weights and not state_teacher else None)
    model = build_agent(env, algo=algo, seed=seed, knobs=knobs, pixels=pixels, preset=preset,
                        overrides=overrides, normalize=src_norm if src_norm else True,
                        tensorboard_log=tensorboard_log, device=device, method=m)
    resolved = _resolve_adapter(adapter, ckpt, model, env, pixels)
    moved = (adapt_checkpoint(ckpt, model, resolved)
             if resolved is not None and ckpt is not None else ckpt)
    teacher = (make_teacher(ckpt, env, knobs=knobs, adapter=resolved,
                            action_space=model.action_space)
               if m.needs_teacher and ckpt is not None else None)
    if state_teacher:
        assert ckpt is not None
        teacher, feeders = install_state_teacher(model, teacher, ckpt, m.distils)
        model.rlt.callbacks.extend(feeders)
    ctx = MethodContext(source=moved, on_mismatch=on_mismatch, teacher=teacher, seed=seed,
                        adapter=resolved)
    wrapped = m.wrap_env(model.env, model, ctx)
    if wrapped is not model.env:
        model.env = wrapped
        model._last_obs = None  # learn() resets through the wrapper
    tlog: TransferLog = m.initialize(model, ctx)
    model.rlt.teacher = teacher
    model.rlt.callbacks.extend(m.callbacks(model, ctx))
    model.rlt.loss_terms.extend(m.loss_terms(model, ctx))
    info = agent_info(model)
    if src_norm and moved is not None:  # (src_norm comes from ckpt)
        assert info.normalize is not None  # build_agent normalized as src_norm says
        load_normalization(model, moved, normalize_update)
        info.normalize = {**info.normalize, "update": bool(normalize_update),
                          "from_source": True}
    info.transfer = {**tlog.summary(), "label": m.label, "spec": m.spec()}
    info.structure = tlog.structure
    if resolved is not None:  # only then: cards of same-space transfers stay as they were
        info.transfer["adapter"] = resolved.to_json()
    if ckpt is not None:
        info.source = {"sha256": ckpt.card.get("sha256"), "env": ckpt.card.get("env"),
                       "algo": ckpt.card.get("algo"), "kind": ckpt.card.get("kind", "agent"),
                       "path": str(ckpt.path) if ckpt.path else None}
    for note in tlog.notes:
        log.info("%s: %s", m.label, note)
    model.rltransfer_log = tlog
    return model


def make_teacher(source: Checkpoint, env: str, *,
                 knobs: Mapping[str, Any] | None = None,
                 adapter: ResolvedAdapter | None = None, action_space: Any = None) -> Any:
    """The source agent's policy as a frozen, eval-mode teacher on the target's spaces.

    Built from the checkpoint's own preset on the target env (so its spaces are the
    target's); its parameters have ``requires_grad`` off and it is in no optimizer. With an
    ``adapter`` it is built on the source's own env and wrapped in an
    :class:`~rltransfer.methods.adapter.AdaptedTeacher`, which takes the target's
    observations and gives actions in the target's ``action_space``.
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):  # building it must not move the target's RNGs
            if adapter is not None:
                agent = load_agent(source, seed=0)  # the source's env: its own spaces
            else:
                agent = load_agent(source, env=env, knobs=knobs, seed=0)
    except RuntimeError as exc:
        raise TransferError(f"the source policy does not fit the target env {env!r} "
                            f"(its spaces differ; give an adapter): "
                            f"{str(exc).splitlines()[0]}") from None
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    teacher = agent.policy
    teacher.set_training_mode(False)
    for p in teacher.parameters():
        p.requires_grad_(False)
    if agent.env is not None:
        agent.env.close()
    if adapter is not None:
        return AdaptedTeacher(teacher, adapter, source.card["algo"],
                              action_space if action_space is not None else agent.action_space)
    return teacher


def _sees_state(source: Checkpoint, pixels: Mapping[str, Any] | None, adapter: Any) -> bool:
    """Whether a teacher must be a state teacher: the target is a pixel view and the source
    an agent that saw the state (a flat vector), with no adapter between them."""
    if not pixels or adapter is not None or source.card.get("kind", "agent") != "agent":
        return False
    return len(source.observation_space().shape or ()) == 1


def _resolve_adapter(adapter: Any, ckpt: Checkpoint | None, model: BaseAlgorithm, env: str,
                     pixels: Mapping[str, Any] | None) -> ResolvedAdapter | None:
    """``adapter`` (a pair name, a spec or its mapping) resolved against the source card's
    spaces and the target model's."""
    if adapter is None or isinstance(adapter, ResolvedAdapter):
        if adapter is not None and ckpt is None:
            raise ValueError("adapter: there is no source checkpoint to adapt (source=None)")
        return adapter
    if ckpt is None:
        raise ValueError("adapter: there is no source checkpoint to adapt (source=None)")
    where = "transfer"
    if isinstance(adapter, str):
        declared = rl_envs.get_pair(adapter).adapter
        where = f"pair {adapter!r}"
        if declared is None:
            raise TransferError(f"adapter: pair {adapter!r} declares no adapter")
        spec: Adapter | None = declared
    else:
        spec = parse_adapter(adapter, where)
    if spec is None:
        return None
    src_env = ckpt.card.get("env") or {}
    return spec.resolve(
        source_obs=ckpt.observation_space(), target_obs=model.observation_space,
        source_act=ckpt.action_space(), target_act=model.action_space,
        source_blocks=family_blocks(src_env.get("family"), src_env.get("pixels")),
        target_blocks=family_blocks(env, pixels), where=where)


def learn_with_eval(model: BaseAlgorithm, steps: int, *, eval_every: int, eval_episodes: int,
                    curve_csv: str | os.PathLike | None = None, progress_bar: bool = False,
                    tb_log_name: str = "run",
                    on_eval: Callable[[dict[str, float]], None] | None = None,
                    ) -> list[dict[str, float]]:
    """Train ``model`` for ``steps`` steps, evaluating at step 0, every ``eval_every`` and at
    the end.

    Returns the curve rows (also written to ``curve_csv``); the last row is the trained
    agent's (an evaluation is added after the last step if the schedule did not fall on it).
    ``steps=0`` evaluates the initialized agent once and trains nothing. A parameter, loss,
    reward or return that becomes NaN or infinite stops training with
    :class:`rltransfer.training.DivergedError` (``diverged at step N: ...``).

    Example:
        >>> model = build_agent("cartpole", seed=0)
        >>> rows = learn_with_eval(model, 512, eval_every=256, eval_episodes=2)
        >>> [row["step"] for row in rows], sorted(rows[0])
        ([0, 256, 512], ['episodes', 'mean_return', 'std_return', 'step', 'wall_time'])
    """
    _check_steps(steps)
    info = agent_info(model)
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

    Example:
        >>> model = build_agent("cartpole", seed=0)
        >>> rows = train_and_save(model, 512, out="ckpt", eval_every=256, eval_episodes=2)
        >>> [row["step"] for row in rows]
        [0, 256, 512]
        >>> from rltransfer.checkpoint import load_checkpoint
        >>> load_checkpoint("ckpt").card["evaluation"]["step"]
        512
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


def _check_steps(steps: int) -> None:
    if not isinstance(steps, int | np.integer) or steps < 0:
        raise ValueError(f"steps={steps!r}: must be a whole number >= 0")
