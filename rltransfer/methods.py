"""Transfer methods: what moves from a source checkpoint into a freshly built target agent.

A method is a small frozen dataclass with ``apply(model, source, on_mismatch) -> TransferLog``.
It copies the parameters of the roles it moves (see :mod:`rltransfer.roles`), may freeze
some, and may install a training-time component on the model's optimizers (torch optimizer
step hooks, so it works whatever calls ``learn``). ``scratch`` is a method like any other.

==========  ===================================================  ======================
method      what moves                                           options
==========  ===================================================  ======================
scratch     nothing (the control)
finetune    every weight; SAC: actor, critics, target critics,
            entropy coefficient
partial     the chosen roles; the rest stays freshly initialized ``roles``
frozen      the encoder role, frozen (``requires_grad`` off,      ``roles``,
            out of the optimizer); optionally unfrozen at step    ``unfreeze_at``,
            ``unfreeze_at``, or trained at ``lr_scale`` times the ``lr_scale``
            learning rate instead of frozen
==========  ===================================================  ======================

Example:
    >>> get_method({"partial": {"roles": ["actor"]}}).label
    'partial[actor]'
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from rltransfer.checkpoint import Checkpoint
from rltransfer.roles import ParamInfo, check_roles, classify, encoder_prefixes, parts_for

ON_MISMATCH = ("error", "reinit")


class TransferError(ValueError):
    """A transfer that cannot be done as asked (shapes differ, wrong method options...)."""


@dataclass
class TransferLog:
    """What a method did: parameters moved, kept fresh, frozen, and shape mismatches."""

    method: str
    moved: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)
    reinit: list[tuple[str, str, tuple, tuple]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary for checkpoint cards and logs."""
        return {
            "method": self.method,
            "moved": len(self.moved),
            "fresh": len(self.fresh),
            "frozen": len(self.frozen),
            "reinitialized_on_mismatch": [list(r[:2]) + [list(r[2]), list(r[3])]
                                          for r in self.reinit],
            "notes": self.notes,
        }


# --------------------------------------------------------------------------- the methods


@dataclass(frozen=True)
class Scratch:
    """The control: the target agent keeps its random initialization."""

    name = "scratch"
    moves_weights = False

    @property
    def label(self) -> str:
        return "scratch"

    def apply(self, model: Any, source: Checkpoint | None, on_mismatch: str = "error"
              ) -> TransferLog:
        log = TransferLog(self.label)
        log.fresh = list(model.policy.state_dict())
        return log


@dataclass(frozen=True)
class Finetune:
    """Every weight moves; all of them keep training."""

    name = "finetune"
    moves_weights = True

    @property
    def label(self) -> str:
        return "finetune"

    def apply(self, model: Any, source: Checkpoint | None, on_mismatch: str = "error"
              ) -> TransferLog:
        log = copy_roles(model, _need(source, self.name), ["all"], on_mismatch, self.label)
        if "log_ent_coef" in source.extras and getattr(model, "log_ent_coef", None) is not None:
            with torch.no_grad():
                model.log_ent_coef.copy_(source.extras["log_ent_coef"])
            log.moved.append("log_ent_coef")
        return log


@dataclass(frozen=True)
class Partial:
    """The chosen roles move; the rest of the network stays freshly initialized."""

    roles: tuple[str, ...] = ("encoder",)
    name = "partial"
    moves_weights = True

    def __post_init__(self) -> None:
        check_roles(self.roles, where=f"{self.name}.roles: ")

    @property
    def label(self) -> str:
        return f"partial[{','.join(self.roles)}]"

    def apply(self, model: Any, source: Checkpoint | None, on_mismatch: str = "error"
              ) -> TransferLog:
        return copy_roles(model, _need(source, self.name), self.roles, on_mismatch, self.label)


@dataclass(frozen=True)
class Frozen:
    """The encoder moves and is frozen; the rest is fresh and trains.

    ``unfreeze_at``: environment step at which the frozen weights start training.
    ``lr_scale``: instead of freezing, train the moved weights at this fraction of the
    learning rate (0 < lr_scale < 1).
    ``cache``: when a whole features extractor is frozen for good (no ``unfreeze_at``), its
    output for an observation is computed once and reused (PPO's epochs revisit every
    rollout observation), see :class:`FeatureCache`.
    ``weights``: ``"source"`` (default) freezes weights copied from the source checkpoint;
    ``"init"`` takes no source and freezes the target's own initial weights of ``roles``:
    the random-features control (a randomly initialized ResNet-18), or an encoder whose
    preset loads pretrained weights itself (ResNet-18 with ImageNet weights).
    """

    roles: tuple[str, ...] = ("encoder",)
    unfreeze_at: int | None = None
    lr_scale: float | None = None
    cache: bool = True
    weights: str = "source"
    name = "frozen"

    def __post_init__(self) -> None:
        check_roles(self.roles, where=f"{self.name}.roles: ")
        if self.weights not in ("source", "init"):
            raise TransferError(f"frozen.weights={self.weights!r}: choose 'source' (weights "
                                "from the source checkpoint) or 'init' (the target's own)")
        if self.unfreeze_at is not None and self.unfreeze_at < 0:
            raise TransferError(f"frozen.unfreeze_at={self.unfreeze_at!r}: must be >= 0")
        if self.lr_scale is not None and not 0 < self.lr_scale <= 1:
            raise TransferError(f"frozen.lr_scale={self.lr_scale!r}: must be in (0, 1]")

    @property
    def moves_weights(self) -> bool:
        """Whether a source checkpoint is needed (not for ``weights="init"``)."""
        return self.weights == "source"

    @property
    def label(self) -> str:
        extra = []
        if self.weights == "init":
            extra.append("init")
        if self.roles != ("encoder",):
            extra.append(",".join(self.roles))
        if self.unfreeze_at is not None:
            extra.append(f"unfreeze@{self.unfreeze_at}")
        if self.lr_scale is not None:
            extra.append(f"lr×{self.lr_scale:g}")
        return "frozen" + (f"[{';'.join(extra)}]" if extra else "")

    def apply(self, model: Any, source: Checkpoint | None, on_mismatch: str = "error"
              ) -> TransferLog:
        if self.weights == "init":
            log = _own_roles(model, self.roles, self.label)
        else:
            log = copy_roles(model, _need(source, self.name), self.roles, on_mismatch,
                             self.label)
        moved = {k for k in log.moved if not k.startswith("critic_target.")}
        params = {n: p for n, p in model.policy.named_parameters() if n in moved}
        _sync_targets(model, params)
        if self.lr_scale is not None:
            for opt in _optimizers(model):
                _move_to_scaled_group(opt, params.values(), self.lr_scale)
            log.notes.append(f"{len(params)} transferred tensors train at lr x {self.lr_scale}")
            return log
        freeze(model, params.keys())
        log.frozen = sorted(params)
        if self.unfreeze_at is not None:
            _install_unfreeze(model, list(params.values()), self.unfreeze_at)
            log.notes.append(f"frozen tensors unfreeze at step {self.unfreeze_at}")
        elif self.cache:
            cached = _cache_frozen_extractors(model)
            if cached:
                log.notes.append(f"features of {cached} frozen extractor(s) are cached")
        return log


METHODS: dict[str, type] = {"scratch": Scratch, "finetune": Finetune, "partial": Partial,
                            "frozen": Frozen}


def get_method(spec: str | Mapping[str, Any] | Any, **options: Any) -> Any:
    """A method from a name, a one-key mapping ``{name: {options}}``, or a method object.

    Errors name the method or option and list what is accepted.
    """
    if hasattr(spec, "apply") and hasattr(spec, "label"):
        return spec
    if isinstance(spec, Mapping):
        if len(spec) != 1:
            raise TransferError(f"method {dict(spec)!r}: write one method as {{name: {{options}}}}")
        (name, opts), = spec.items()
        options = {**(opts or {}), **options}
    else:
        name = spec
    if name not in METHODS:
        close = difflib.get_close_matches(str(name), list(METHODS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise TransferError(f"method {name!r} is unknown{hint}; choose from {list(METHODS)}")
    cls = METHODS[name]
    allowed = list(cls.__dataclass_fields__)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TransferError(f"method {name!r} has no option {unknown[0]!r}; "
                            f"options: {allowed or 'none'}")
    if "roles" in options:
        roles = options["roles"]
        options["roles"] = (roles,) if isinstance(roles, str) else tuple(roles)
    return cls(**options)


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


def _own_roles(model: Any, roles: Iterable[str], label: str) -> TransferLog:
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
    rows = []
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
    _load_partial(model, new_state, info)
    if rows:
        log.notes.append(f"{len(rows)} tensors did not fit and were freshly initialized: "
                         + ", ".join(r[1] for r in rows))
    return log


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


def _load_partial(model: Any, new_state: dict[str, torch.Tensor],
                  info: Mapping[str, ParamInfo]) -> None:
    state = model.policy.state_dict()
    # SAC: a moved online critic tensor whose target twin was not in the source gets the
    # online value, so critic and target critic stay consistent.
    for key in list(new_state):
        if key.startswith("critic.") and not info[key].target:
            twin = "critic_target." + key[len("critic."):]
            if twin in state and twin not in new_state:
                new_state[twin] = new_state[key]
    state.update(new_state)
    model.policy.load_state_dict(state, strict=True)


def _sync_targets(model: Any, params: Mapping[str, torch.nn.Parameter]) -> None:
    """SAC: target twins of frozen online critic weights take the online values.

    Polyak averaging then keeps them there (up to rounding), so a frozen critic layer and
    its target agree instead of the target drifting from the source's lagged copy.
    """
    state = dict(model.policy.named_parameters())
    with torch.no_grad():
        for name, param in params.items():
            if name.startswith("critic."):
                twin = state.get("critic_target." + name[len("critic."):])
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
    for opt in _optimizers(model):
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


def _cache_frozen_extractors(model: Any) -> int:
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


def _optimizers(model: Any) -> list[torch.optim.Optimizer]:
    policy = model.policy
    opts = [getattr(policy, "optimizer", None)]
    for sub in ("actor", "critic"):
        opts.append(getattr(getattr(policy, sub, None), "optimizer", None))
    return [o for o in opts if o is not None]


def _move_to_scaled_group(opt: torch.optim.Optimizer, params: Iterable[torch.nn.Parameter],
                          scale: float) -> None:
    ids = {id(p) for p in params}
    moved = []
    for group in opt.param_groups:
        keep = []
        for p in group["params"]:
            (moved if id(p) in ids else keep).append(p)
        group["params"] = keep
    if moved:
        opt.add_param_group({"params": moved, "lr_scale": scale})
        _ensure_lr_scale_hooks(opt)


def _ensure_lr_scale_hooks(opt: torch.optim.Optimizer) -> None:
    """Scale the lr of groups with ``lr_scale`` for each step only.

    SB3 sets every group's lr from its schedule before each update; the pre-hook scales it
    for the step and the post-hook restores it.
    """
    if getattr(opt, "_rlt_lr_scale_hooks", False):
        return

    def pre(optimizer, args, kwargs):
        for g in optimizer.param_groups:
            if "lr_scale" in g:
                g["_base_lr"] = g["lr"]
                g["lr"] = g["lr"] * g["lr_scale"]

    def post(optimizer, args, kwargs):
        for g in optimizer.param_groups:
            if "_base_lr" in g:
                g["lr"] = g.pop("_base_lr")

    opt.register_step_pre_hook(pre)
    opt.register_step_post_hook(post)
    opt._rlt_lr_scale_hooks = True


def _install_unfreeze(model: Any, params: list[torch.nn.Parameter], at: int) -> None:
    """Unfreeze ``params`` at the first optimizer step once ``model.num_timesteps >= at``."""
    state = {"done": False}
    opts = _optimizers(model)
    groups = {id(o): [p for p in params if _belongs(model, o, p)] for o in opts}

    def pre(optimizer, args, kwargs):
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


def _belongs(model: Any, opt: torch.optim.Optimizer, param: torch.nn.Parameter) -> bool:
    policy = model.policy
    if opt is getattr(policy, "optimizer", None):
        return True
    for sub in ("actor", "critic"):
        module = getattr(policy, sub, None)
        if module is not None and opt is getattr(module, "optimizer", None):
            return any(param is p for p in module.parameters())
    return False


def algo_name(model: Any) -> str:
    """``"ppo"`` or ``"sac"`` for an SB3 model."""
    return type(model).__name__.lower()


def _need(source: Checkpoint | None, method: str) -> Checkpoint:
    if source is None:
        raise TransferError(f"method {method!r} needs a source checkpoint; got none")
    return source
