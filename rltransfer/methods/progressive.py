"""``progressive``: the source stays as a frozen column; a new column learns beside it.

Progressive networks (Rusu et al. 2016, arXiv:1606.04671). Every MLP of the target policy
(each trunk, with its heads) becomes a :class:`ProgressiveMLP`:

- the **new column** is the target's own MLP, freshly initialized, and trains;
- the **source column** is the source's MLP at the same place (its hidden layers: its
  heads are never used), held as buffers, so it is bitwise unchanged by training and in no
  optimizer;
- **laterals**: layer ``i > 0`` of the new column also receives ``U σ(V α h)`` of the
  source column's hidden layer ``i - 1`` (the paper's non-linear adapter: a learned scalar
  ``α``, a projection ``V`` to ``lateral_width`` units, the column's activation, and
  ``U``); the output layer (the heads) receives ``σ(V α h)`` of the source's last hidden
  layer as extra input columns, which start at zero, so at step 0 the heads read the new
  column alone.

Which MLPs those are is said per algorithm (``progressive_sites`` in :mod:`rltransfer.sb3`):
PPO's actor and value trunks with ``action_net`` / ``value_net``; SAC's actor trunk with
``mu`` / ``log_std``, and each critic's Q-network (its target network takes the same
structure and the online values). The source column may have other widths than the new one
(not another depth). Through an adapter between spaces (``ctx.source`` already in the
target's shapes) the source column reads the target's observation as the adapter maps it.

The structure is recorded in the checkpoint card (``structure``: columns, lateral width,
each site's source widths and activation), so a progressive target reloads from its
checkpoint (:func:`rebuild_structure`).
"""

from __future__ import annotations

from typing import Any, cast

import torch
from pydantic import Field
from torch import nn

from rltransfer.checkpoint import Checkpoint
from rltransfer.methods.base import Method, MethodContext, TransferError, TransferLog, need_source
from rltransfer.methods.registry import register_method
from rltransfer.presets import ACTIVATIONS
from rltransfer.roles import classify
from rltransfer.sb3 import algo_name, internals

__all__ = ["FrozenColumn", "Lateral", "Progressive", "ProgressiveMLP", "rebuild_structure"]

KIND = "progressive"
DEFAULT_ACTIVATION = {"ppo": "Tanh", "sac": "ReLU"}  # SB3's defaults per algorithm


class FrozenColumn(nn.Module):
    """A source MLP's hidden layers as buffers (never trained, in no optimizer).

    ``hidden(x)`` gives the activation after every hidden layer. Gradients still flow
    through it to its input (a SAC critic's action, for the actor's loss).
    """

    def __init__(self, widths: list[int], activation: str,
                 tensors: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> None:
        super().__init__()
        self.widths = list(widths)
        self.activation = activation
        self.act = _activation(activation)()
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            w, b = tensors[i] if tensors else (torch.zeros(n_out, n_in), torch.zeros(n_out))
            self.register_buffer(f"weight{i}", w.detach().clone().float())
            self.register_buffer(f"bias{i}", b.detach().clone().float())

    def hidden(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i in range(len(self.widths) - 1):
            x = self.act(nn.functional.linear(x, getattr(self, f"weight{i}"),
                                              getattr(self, f"bias{i}")))
            out.append(x)
        return out


class Lateral(nn.Module):
    """Rusu et al.'s adapter: ``U σ(V (α h))``, or ``σ(V (α h))`` when ``n_out`` is 0."""

    def __init__(self, n_in: int, width: int, n_out: int, activation: str,
                 alpha: float) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))
        self.down = nn.Linear(n_in, width)
        self.act = _activation(activation)()
        self.up = nn.Linear(width, n_out, bias=False) if n_out else None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        a = self.act(self.down(self.alpha * h))
        return self.up(a) if self.up is not None else a


class ProgressiveMLP(nn.Module):
    """A new column (``column``, the target's own MLP) with frozen source columns beside it.

    Returns the new column's last hidden layer concatenated with one lateral output per
    source column; with ``head`` (a Q-network, whose output layer is inside), that
    layer's output.
    """

    def __init__(self, column: nn.Sequential, sources: list[FrozenColumn], width: int,
                 alpha: float, head: nn.Linear | None = None) -> None:
        super().__init__()
        linears = [m for m in column if isinstance(m, nn.Linear)]
        act = type(column[1]).__name__
        self.column = column
        self.sources = nn.ModuleList(sources)
        self.laterals = nn.ModuleList(
            nn.ModuleList(Lateral(src.widths[i], width, lin.out_features, src.activation, alpha)
                          for src in sources)
            for i, lin in enumerate(linears[1:], start=1))
        self.out_laterals = nn.ModuleList(
            Lateral(src.widths[-1], width, 0, act, alpha) for src in sources)
        self.head = head
        self.out_features = linears[-1].out_features + width * len(sources)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        src_hidden = [cast(FrozenColumn, src).hidden(x) for src in self.sources]
        h, layer = x, 0
        for module in self.column:
            if isinstance(module, nn.Linear):
                z = module(h)
                if layer > 0:
                    laterals = cast(nn.ModuleList, self.laterals[layer - 1])
                    for lateral, hidden in zip(laterals, src_hidden, strict=True):
                        z = z + lateral(hidden[layer - 1])
                h, layer = z, layer + 1
            else:
                h = module(h)
        h = torch.cat([h, *(lat(hid[-1]) for lat, hid in
                            zip(self.out_laterals, src_hidden, strict=True))], dim=-1)
        return self.head(h) if self.head is not None else h


@register_method
class Progressive(Method):
    """The source stays as a frozen column; a new column learns with lateral inputs from
    the source column's hidden layers (Rusu et al. 2016). MLP policies."""

    name = "progressive"
    summary = ("the source stays as a frozen column; a new column learns with lateral "
               "inputs from its hidden layers (Rusu et al. 2016)")

    lateral_width: int = Field(default=32, ge=1, le=4096)
    """Units of each lateral adapter (its projection of the source's activations)."""
    alpha: float = Field(default=1.0, gt=0)
    """Initial value of each adapter's learned input scale (the paper's ``α``)."""

    def initialize(self, model: Any, ctx: MethodContext) -> TransferLog:
        source = need_source(ctx, self.name)
        algo = algo_name(model)
        if source.card.get("kind", "agent") != "agent":
            raise TransferError("method 'progressive' needs an agent checkpoint as source "
                                f"(its hidden layers become the frozen column), not "
                                f"kind={source.card.get('kind')!r}")
        if source.card.get("algo") not in (None, algo):
            raise TransferError(f"method 'progressive': source algo {source.card.get('algo')!r} "
                                f"differs from target algo {algo!r}")
        if source.card.get("structure"):
            raise TransferError("method 'progressive': the source is itself a progressive "
                                "network; a third column is not supported yet")
        _check_spaces(source, model, algo)
        sites: dict[str, Any] = {}
        structure = {"kind": KIND, "columns": 2, "lateral_width": self.lateral_width,
                     "alpha": self.alpha, "sites": sites}
        activation = _source_activation(source, algo)
        for site in internals(algo).progressive_sites(model.policy):
            tensors = _source_layers(source, site.path, site.head_inside)
            widths = [int(tensors[0][0].shape[1])] + [int(w.shape[0]) for w, _ in tensors]
            sites[site.path] = {"sources": [{"widths": widths,
                                                          "activation": activation}]}
        install(model.policy, algo, structure, source)
        internals(algo).rebuild_optimizers(model)
        log = TransferLog(self.label, structure=structure)
        for key in model.policy.state_dict():
            if ".sources." in key:
                log.moved.append(key)
                log.frozen.append(key)
            else:
                log.fresh.append(key)
        n_sites = len(sites)
        log.notes.append(f"{n_sites} MLPs get a frozen source column and laterals of width "
                         f"{self.lateral_width}; {len(log.frozen)} source tensors frozen")
        return log


def install(policy: nn.Module, algo: str, structure: dict[str, Any],
            source: Checkpoint | None = None) -> None:
    """Turn ``policy``'s MLPs into :class:`ProgressiveMLP` as ``structure`` says.

    With ``source``, the frozen columns take its weights; without, zeros of the recorded
    shapes (a checkpoint's ``load_state_dict`` fills them).
    """
    module = internals(algo)
    has_features = [k for k, i in classify(algo, policy.state_dict()).items()
                    if i.part == "features"]
    if has_features:
        raise TransferError("method 'progressive' works on MLP policies; this policy's "
                            f"features extractor has weights ({has_features[0]}, ...): use "
                            "frozen or partial with roles=['encoder'] for pixel policies")
    if getattr(policy, "use_sde", False):
        raise TransferError("method 'progressive' needs use_sde=False (gSDE reads the "
                            "trunk's output, whose width a progressive network changes)")
    sites = {s.path: s for s in module.progressive_sites(policy)}
    unknown = sorted(set(structure["sites"]) - set(sites))
    if unknown:
        raise TransferError(f"progressive structure names {unknown}, which this {algo} policy "
                            f"does not have; it has {sorted(sites)}")
    width, alpha = int(structure["lateral_width"]), float(structure["alpha"])
    for path, spec in structure["sites"].items():
        site = sites[path]
        seq = policy.get_submodule(path)
        column, head = _split(seq, path, site.head_inside)
        n_hidden = sum(isinstance(m, nn.Linear) for m in column)
        columns = []
        for src in spec["sources"]:
            if len(src["widths"]) - 1 != n_hidden:
                raise TransferError(
                    f"method 'progressive': at {path} the source has {len(src['widths']) - 1} "
                    f"hidden layers and the target {n_hidden}; columns need the same depth")
            first = next(m for m in column if isinstance(m, nn.Linear))
            if src["widths"][0] != first.in_features:
                raise TransferError(
                    f"method 'progressive': at {path} the source column reads "
                    f"{src['widths'][0]} inputs and the target {first.in_features}; the "
                    "spaces differ: give an adapter")
            tensors = _source_layers(source, path, site.head_inside) if source else None
            columns.append(FrozenColumn(src["widths"], src["activation"], tensors))
        extra = width * len(columns)
        if head is not None:
            head = _widen(head, extra)
        new = ProgressiveMLP(column, columns, width, alpha, head=head)
        _set_submodule(policy, path, new)
        for head_path in site.heads:
            _set_submodule(policy, head_path, _widen(policy.get_submodule(head_path), extra))
    module.after_structure(policy)


def rebuild_structure(policy: nn.Module, algo: str, structure: dict[str, Any] | None) -> None:
    """Give a freshly built ``policy`` the structure a checkpoint card records (nothing for
    ``None``), before its weights are loaded."""
    if not structure:
        return
    if structure.get("kind") != KIND:
        raise TransferError(f"checkpoint structure kind {structure.get('kind')!r} is unknown; "
                            f"this version knows {[KIND]}")
    install(policy, algo, structure)


def _check_spaces(source: Checkpoint, model: Any, algo: str) -> None:
    """The source column reads the target's inputs: observation shapes (and a SAC critic's
    action shapes) must agree, directly or through an adapter."""
    pairs = [("observation", source.observation_space(), model.observation_space)]
    if algo == "sac":
        pairs.append(("action", source.action_space(), model.action_space))
    for what, src, tgt in pairs:
        if src.shape != tgt.shape:
            raise TransferError(
                f"method 'progressive': the source's {what} space {src} and the target's "
                f"{tgt} differ in shape; the source column cannot read the target's inputs: "
                "give an adapter (rltransfer list pairs shows pairs that declare one)")


def _split(seq: nn.Module, path: str, head_inside: bool) -> tuple[nn.Sequential, Any]:
    """The hidden layers of an SB3 MLP (Linear, activation, ...) and its inner head."""
    if not isinstance(seq, nn.Sequential):
        raise TransferError(f"method 'progressive': {path} is a {type(seq).__name__}, not an "
                            "SB3 MLP (is it already progressive?)")
    layers = list(seq)
    head = None
    if head_inside:
        if not layers or not isinstance(layers[-1], nn.Linear):
            raise TransferError(f"method 'progressive': {path} does not end in a linear layer")
        head = layers.pop()
    pairs_ok = (len(layers) >= 2 and len(layers) % 2 == 0
                and all(isinstance(m, nn.Linear) for m in layers[0::2])
                and not any(isinstance(m, nn.Linear) for m in layers[1::2]))
    if not pairs_ok:
        raise TransferError(f"method 'progressive': {path} needs at least one hidden layer "
                            "(net_arch not empty), as linear/activation pairs")
    return nn.Sequential(*layers), head


def _source_layers(source: Checkpoint, path: str,
                   head_inside: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    prefix = path + "."
    idx = sorted({int(k[len(prefix):].split(".")[0]) for k in source.tensors
                  if k.startswith(prefix) and k.endswith(".weight")})
    if head_inside:
        idx = idx[:-1]
    if not idx:
        raise TransferError(f"method 'progressive': the source has no hidden layers at {path} "
                            f"(its tensors: {sorted(source.tensors)[:4]} ...)")
    return [(source.tensors[f"{prefix}{i}.weight"], source.tensors[f"{prefix}{i}.bias"])
            for i in idx]


def _source_activation(source: Checkpoint, algo: str) -> str:
    name = (source.card.get("policy_kwargs") or {}).get("activation_fn")
    return ACTIVATIONS[name] if name else DEFAULT_ACTIVATION[algo]


def _activation(name: str) -> type[nn.Module]:
    if name not in ACTIVATIONS.values():
        raise TransferError(f"progressive: activation {name!r} is unknown; "
                            f"accepted: {sorted(ACTIVATIONS.values())}")
    return getattr(nn, name)


def _widen(linear: nn.Module, extra: int) -> nn.Linear:
    """``linear`` with ``extra`` more input columns, which start at zero."""
    if not isinstance(linear, nn.Linear):
        raise TransferError(f"progressive: a head is a {type(linear).__name__}, not Linear")
    out = nn.Linear(linear.in_features + extra, linear.out_features,
                    bias=linear.bias is not None)
    with torch.no_grad():
        out.weight.zero_()
        out.weight[:, :linear.in_features] = linear.weight
        if linear.bias is not None:
            out.bias.copy_(linear.bias)
    return out


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)
