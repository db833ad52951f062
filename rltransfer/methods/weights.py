"""Moving, freezing and caching weights: the mechanics the transfer methods share.

Copy the parameters of chosen roles from a source checkpoint into a target policy (with a
shape table when they do not fit), freeze parameters (out of every optimizer), train some at
a scaled learning rate, unfreeze them at a step, and memoize a frozen features extractor.
Which SB3 names are which is asked of :mod:`rltransfer.sb3`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from rltransfer.checkpoint import Checkpoint
from rltransfer.methods.base import TransferError, TransferLog
from rltransfer.roles import ParamInfo, classify, encoder_prefixes, parts_for
from rltransfer.sb3 import algo_name, internals

ON_MISMATCH = ("error", "reinit")
ENT_COEF_KEY = "log_ent_coef"
"""Where a checkpoint's ``extras`` keep SAC's learned entropy coefficient."""


# --------------------------------------------------------------------------- mechanics


def source_tensors(model: Any, source: Checkpoint) -> dict[str, torch.Tensor]:
    """The source weights under the target policy's names.

    An agent checkpoint's names are SB3's own. An encoder checkpoint (``kind: encoder``)
    holds a features extractor alone; its tensors are placed at every features-extractor
    prefix of the target algorithm.
    """
    if source.card.get("kind") != "encoder":
        src_algo = source.card.get("algo")
        tgt_algo = algo_name(model)
        if src_algo and src_algo != tgt_algo:
            raise TransferError(
                f"source algo {src_algo!r} differs from target algo {tgt_algo!r}: parameter "
                "names do not correspond; extract the encoder (rltransfer.extract_encoder) "
                "and transfer that instead"
            )
        return dict(source.tensors)
    target_keys = set(model.policy.state_dict())
    out = {}
    for prefix in encoder_prefixes(algo_name(model)):
        for key, value in source.tensors.items():
            if prefix + key in target_keys:
                out[prefix + key] = value
    if not out:
        raise TransferError("the encoder checkpoint matches no features-extractor parameter of "
                            "the target policy (is the target's features_extractor the same "
                            f"encoder? checkpoint: {source.card.get('encoder')})")
    return out


def own_roles(model: Any, roles: Iterable[str], label: str) -> TransferLog:
    """A log that lists ``model``'s own parameters of ``roles`` as moved (nothing copied)."""
    target = model.policy.state_dict()
    info = classify(algo_name(model), target)
    parts = parts_for(roles, info)
    log = TransferLog(label)
    for key in target:
        (log.moved if info[key].part in parts else log.fresh).append(key)
    if not log.moved:
        raise TransferError(f"{label}: the target has no parameters for roles {list(roles)}")
    log.notes.append(f"{len(log.moved)} tensors keep their initial weights, frozen")
    return log


def copy_roles(model: Any, source: Checkpoint, roles: Iterable[str], on_mismatch: str,
               label: str) -> TransferLog:
    """Copy the parameters of ``roles`` from ``source`` into ``model``'s policy.

    Shapes must match: with ``on_mismatch="error"`` a :class:`TransferError` shows a table
    of role, parameter, source shape and target shape; with ``"reinit"`` the parts that fit
    move and the others keep their fresh initialization (listed in the log).
    """
    if on_mismatch not in ON_MISMATCH:
        raise TransferError(f"on_mismatch={on_mismatch!r}; choose from {list(ON_MISMATCH)}")
    algo = algo_name(model)
    target = model.policy.state_dict()
    info = classify(algo, target)
    parts = parts_for(roles, info)
    src = source_tensors(model, source)
    log = TransferLog(label)
    rows: list[tuple[str, str, tuple[int, ...] | None, tuple[int, ...]]] = []
    new_state = {}
    for key, tensor in target.items():
        if info[key].part not in parts:
            log.fresh.append(key)
            continue
        if key not in src:
            rows.append((info[key].part, key, None, tuple(tensor.shape)))
            continue
        if tuple(src[key].shape) != tuple(tensor.shape):
            rows.append((info[key].part, key, tuple(src[key].shape), tuple(tensor.shape)))
            continue
        new_state[key] = src[key].to(dtype=tensor.dtype)
        log.moved.append(key)
    if rows and on_mismatch == "error":
        raise TransferError(mismatch_table(rows))
    for part, key, src_shape, tgt_shape in rows:
        log.reinit.append((part, key, src_shape or (), tgt_shape))
        log.fresh.append(key)
    if not new_state:
        raise TransferError(f"{label}: no parameter could be moved for roles {list(roles)}")
    load_partial(model, new_state, info)
    if rows:
        log.notes.append(f"{len(rows)} tensors did not fit and were freshly initialized: "
                         + ", ".join(r[1] for r in rows))
    return log


def move_weights(model: Any, source: Checkpoint, roles: Iterable[str], on_mismatch: str,
                 label: str) -> TransferLog:
    """:func:`copy_roles`, and with ``roles=["all"]`` the learned entropy coefficient too
    (SAC's ``log_ent_coef``, when both source and target have one)."""
    roles = list(roles)
    log = copy_roles(model, source, roles, on_mismatch, label)
    coef = internals(algo_name(model)).entropy_coefficient(model)
    if "all" in roles and coef is not None and ENT_COEF_KEY in source.extras:
        with torch.no_grad():
            coef.copy_(source.extras[ENT_COEF_KEY])
        log.moved.append(ENT_COEF_KEY)
    return log


def move_roles_if_any(model: Any, ctx: Any, roles: Iterable[str], label: str) -> TransferLog:
    """For methods whose target may start fresh: ``move_weights`` of ``roles`` from the
    source, or, with no roles, nothing moved (every parameter listed as fresh)."""
    roles = list(roles)
    if not roles:
        log = TransferLog(label)
        log.fresh = list(model.policy.state_dict())
        return log
    if ctx.source is None:
        raise TransferError(f"{label}: roles {roles} move weights, but there is no source")
    return move_weights(model, ctx.source, roles, ctx.on_mismatch, label)


def mismatch_table(rows: list[tuple[str, str, tuple | None, tuple]]) -> str:
    """The shape-mismatch table shown when a transfer stops."""
    header = ("role", "parameter", "source shape", "target shape")
    body = [(r[0], r[1], "missing" if r[2] is None else str(list(r[2])), str(list(r[3])))
            for r in rows]
    widths = [max(len(x[i]) for x in [header, *body]) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True))
             for line in [header, *body]]
    return ("source and target shapes differ; nothing was guessed. Pass on_mismatch='reinit' "
            "to move what fits and freshly initialize the rest.\n" + "\n".join(lines))


def load_partial(model: Any, new_state: dict[str, torch.Tensor],
                 info: Mapping[str, ParamInfo]) -> None:
    state = model.policy.state_dict()
    # SAC: a moved online critic tensor whose target twin was not in the source gets the
    # online value, so critic and target critic stay consistent.
    twin_of = internals(algo_name(model)).target_twin
    for key in list(new_state):
        if not info[key].target:
            twin = twin_of(key)
            if twin is not None and twin in state and twin not in new_state:
                new_state[twin] = new_state[key]
    state.update(new_state)
    model.policy.load_state_dict(state, strict=True)


def sync_targets(model: Any, params: Mapping[str, torch.nn.Parameter]) -> None:
    """SAC: target twins of frozen online critic weights take the online values.

    Polyak averaging then keeps them there (up to rounding), so a frozen critic layer and
    its target agree instead of the target drifting from the source's lagged copy.
    """
    state = dict(model.policy.named_parameters())
    twin_of = internals(algo_name(model)).target_twin
    with torch.no_grad():
        for name, param in params.items():
            twin_name = twin_of(name)
            twin = state.get(twin_name) if twin_name is not None else None
            if twin is not None:
                twin.copy_(param)


def freeze(model: Any, names: Iterable[str]) -> None:
    """Freeze policy parameters: ``requires_grad`` off and out of every optimizer.

    Batch-norm layers inside frozen modules are kept in eval mode so their running
    statistics do not move either.
    """
    names = set(names)
    frozen_ids = set()
    for name, param in model.policy.named_parameters():
        if name in names:
            param.requires_grad_(False)
            frozen_ids.add(id(param))
    for opt in optimizers(model):
        for group in opt.param_groups:
            group["params"] = [p for p in group["params"] if id(p) not in frozen_ids]
    for module in model.policy.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            own = list(module.parameters(recurse=False))
            if own and all(id(p) in frozen_ids for p in own):
                module.register_forward_pre_hook(_eval_mode_hook)


class FeatureCache:
    """Memoizes a frozen features extractor: one forward per distinct observation.

    Installed as the extractor instance's ``forward`` (its class, parameters and state-dict
    names stay as they are). Rows are keyed by their bytes; past the capacity the oldest
    entries go first. The capacity is ``max_items``, lowered so that keys and values stay
    under ``max_bytes`` (a 64x64x4 float observation is a 64 KB key: 256 MB hold 4,000 of
    them, four PPO rollouts of 8 x 128 steps, which is all the epochs revisit).
    """

    def __init__(self, forward: Any, max_items: int = 65536,
                 max_bytes: int = 256 * 2**20) -> None:
        self.forward = forward
        self.max_items = int(max_items)
        self.max_bytes = int(max_bytes)
        self.store: dict[bytes, torch.Tensor] = {}
        self.hits = 0
        self.misses = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.detach().reshape(x.shape[0], -1).contiguous().cpu().numpy()
        keys = [row.tobytes() for row in flat]
        rows = {k: self.store[k] for k in keys if k in self.store}
        missing = [i for i, k in enumerate(keys) if k not in rows]
        if missing:
            with torch.no_grad():
                out = self.forward(x[missing])
            for j, i in enumerate(missing):
                rows[keys[i]] = self.store[keys[i]] = out[j].clone()  # not a view of out
            per_item = flat.shape[1] * flat.itemsize + out[0].numel() * out.element_size()
            capacity = max(1, min(self.max_items, self.max_bytes // max(per_item, 1)))
            while len(self.store) > capacity:
                self.store.pop(next(iter(self.store)))
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        return torch.stack([rows[k] for k in keys])


def cache_frozen_extractors(model: Any) -> int:
    done = 0
    seen = set()
    for name, module in model.policy.named_modules():
        if not name.endswith("features_extractor") or id(module) in seen:
            continue
        seen.add(id(module))
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            module.forward = FeatureCache(module.forward)
            done += 1
    return done


def _eval_mode_hook(module: torch.nn.Module, args: Any) -> None:
    module.training = False


def optimizers(model: Any) -> list[torch.optim.Optimizer]:
    """The optimizers that train ``model``'s policy parameters."""
    return internals(algo_name(model)).optimizers(model)


def move_to_scaled_group(opt: torch.optim.Optimizer, params: Iterable[torch.nn.Parameter],
                          scale: float) -> None:
    ids = {id(p) for p in params}
    moved: list[torch.Tensor] = []
    for group in opt.param_groups:
        keep: list[torch.Tensor] = []
        for p in group["params"]:
            (moved if id(p) in ids else keep).append(p)
        group["params"] = keep
    if moved:
        opt.add_param_group({"params": moved, "lr_scale": scale})
        _ensure_lr_scale_hooks(opt)


_LR_SCALE_HOOKS = "_rlt_lr_scale_hooks"
"""Marks an optimizer whose lr-scale hooks are installed (an attribute of ours on it)."""


def _ensure_lr_scale_hooks(opt: torch.optim.Optimizer) -> None:
    """Scale the lr of groups with ``lr_scale`` for each step only.

    SB3 sets every group's lr from its schedule before each update; the pre-hook scales it
    for the step and the post-hook restores it.
    """
    if getattr(opt, _LR_SCALE_HOOKS, False):
        return

    def pre(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        for g in optimizer.param_groups:
            if "lr_scale" in g:
                g["_base_lr"] = g["lr"]
                g["lr"] = g["lr"] * g["lr_scale"]

    def post(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        for g in optimizer.param_groups:
            if "_base_lr" in g:
                g["lr"] = g.pop("_base_lr")

    opt.register_step_pre_hook(pre)
    opt.register_step_post_hook(post)
    setattr(opt, _LR_SCALE_HOOKS, True)


def install_unfreeze(model: Any, params: list[torch.nn.Parameter], at: int) -> None:
    """Unfreeze ``params`` at the first optimizer step once ``model.num_timesteps >= at``."""
    state = {"done": False}
    opts = optimizers(model)
    owner = internals(algo_name(model)).optimizer_of
    groups: dict[int, list[torch.nn.Parameter]] = {id(o): [] for o in opts}
    for p in params:
        groups[id(owner(model, p))].append(p)

    def pre(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if state["done"] or model.num_timesteps < at:
            return
        state["done"] = True
        for p in params:
            p.requires_grad_(True)
        for o in opts:
            if groups[id(o)]:
                o.add_param_group({"params": groups[id(o)]})

    for o in opts:
        o.register_step_pre_hook(pre)
