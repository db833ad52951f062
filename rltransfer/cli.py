"""The ``rltransfer`` command line: one verb per job, ``--help`` on each.

Verbs: ``pretrain``, ``transfer``, ``rank``, ``import-sb3``, ``inspect``, ``list``,
``pretrain-encoder`` (vision), and the verbs of the experiment harness (``run``, ``report``,
``demo``, from :mod:`rltransfer.experiment.cli`). Nothing imports this module.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything imports mujoco, which reads it once

import torch

from rltransfer import rundir
from rltransfer._io import write_json_atomic
from rltransfer.agent import (
    check_weights,
    during_run,
    import_sb3,
    pretrain,
    raised_during_run,
    train_and_save,
    transfer,
)
from rltransfer.checkpoint import load_checkpoint
from rltransfer.encoders import ENCODER_DEFAULTS, ENCODERS
from rltransfer.envs import format_catalogue, parse_knob_args
from rltransfer.experiment import cli as experiment_cli
from rltransfer.methods import describe_methods, method_names
from rltransfer.presets import ALGOS, load_presets
from rltransfer.rank import (
    DEFAULT_BUDGET,
    DEFAULT_PROBES,
    MEAN_RANK,
    describe_probes,
    probe_names,
    rank_experiment,
    rank_sources,
)
from rltransfer.report.prediction import PROBE_CACHE, prediction_table, verdict_lines
from rltransfer.ssl import pretrain_encoder_cli


class UserError(Exception):
    """An error caused by the command's input: printed without a traceback."""


EXIT_OK, EXIT_RUN_FAILED, EXIT_USER_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130
"""Exit statuses (README, "Command line"): 2 for bad input (a flag, a value, a file), found
before anything is written; 1 for a run that started and failed (training, an evaluation, a
custom env's code, a failed run of an experiment)."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (no usage block) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``low``; the message says what is accepted."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"invalid value {text!r}: expected a whole number >= {low}") from None
        if value < low:
            raise argparse.ArgumentTypeError(
                f"invalid value {text!r}: expected a whole number >= {low}")
        return value

    parse.__name__ = f"int>={low}"
    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}: expected a finite number > 0")
    return value


def _device(text: str) -> str:
    try:
        torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}: expected a torch device such as cpu, cuda, cuda:1 "
            "or mps") from None
    return text


def _fresh_out(out: str, overwrite: bool, flag: str = "--out") -> None:
    """Refuse, before any work, an output path that exists (without --overwrite) or that
    could never be written (a file in the way)."""
    path = Path(out)
    if path.exists() and not overwrite:
        raise UserError(f"{flag} {out!r} exists; pass --overwrite to replace it, or choose "
                        "another path")
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {out!r} is a file; expected a folder path")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{flag} {out!r}: {str(parent)!r} is a file, not a folder")
            break


def _knobs(items: Sequence[str] | None) -> dict[str, Any]:
    return parse_knob_args(list(items or []))


def _add_env_args(p: argparse.ArgumentParser, flag: str = "--env", what: str = "env",
                  required: bool = True) -> None:
    """``FLAG`` (a family or Gymnasium id), repeatable ``--knob`` and ``--pixels``."""
    p.add_argument(flag, required=required, default=None,
                   help=f"{what} family (see `rltransfer list`) or Gymnasium id, "
                        "e.g. CartPole-v1")
    p.add_argument("--knob", action="append", metavar="NAME=VALUE", default=[],
                   help=f"set a knob of the {what}; repeatable (e.g. --knob length=1.0)")
    p.add_argument("--pixels", metavar="JSON", default=None,
                   help=f'the {what} as pixel observations, e.g. '
                        '\'{"size": 64, "grayscale": true}\'')


def _add_agent_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=None,
                   help="preset name from agents/<algo>.yaml or a YAML file (default: the env's)")
    p.add_argument("--seed", type=_int_at_least(0), required=True,
                   help="random seed (explicit, always)")
    p.add_argument("--device", type=_device, default="cpu", help="torch device (default: cpu)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--tensorboard", metavar="DIR", default=None,
                   help="write SB3 training logs to this TensorBoard folder")


def cmd_pretrain(args: argparse.Namespace) -> int:
    _fresh_out(args.out, args.overwrite)
    out = pretrain(args.env, algo=args.algo, steps=args.steps, seed=args.seed,
                   knobs=_knobs(args.knob), pixels=_json_arg(args.pixels, "--pixels"),
                   preset=args.preset, out=args.out, eval_episodes=args.eval_episodes,
                   progress_bar=not args.no_progress, tensorboard_log=args.tensorboard,
                   overwrite=args.overwrite, device=args.device)
    card = load_checkpoint(out).card
    ev = card["evaluation"]
    print(f"checkpoint: {out}\nevaluation return: {ev['mean']:.2f} ± {ev['std']:.2f} "
          f"over {ev['episodes']} episodes after {card['steps']} steps")
    return 0


def _adapter_arg(value: str | None) -> Any:
    """``--adapter``: a pair name, or an adapter written as JSON."""
    if value is None or not value.lstrip().startswith("{"):
        return value
    return _json_arg(value, "--adapter")


def cmd_transfer(args: argparse.Namespace) -> int:
    method: Any = args.method
    options = _json_arg(args.method_options, "--method-options") or {}
    if args.roles:
        options["roles"] = args.roles.split(",")
    if args.unfreeze_at is not None:
        options["unfreeze_at"] = args.unfreeze_at
    if args.lr_scale is not None:
        options["lr_scale"] = args.lr_scale
    out = Path(args.out)
    _fresh_out(args.out, args.overwrite)
    model = transfer(args.source, args.env, method=method, seed=args.seed, algo=args.algo,
                     knobs=_knobs(args.knob), pixels=_json_arg(args.pixels, "--pixels"),
                     preset=args.preset, on_mismatch=args.on_mismatch,
                     normalize_update=not args.fix_normalization, device=args.device,
                     adapter=_adapter_arg(args.adapter), **options)
    tlog = model.rltransfer_log
    print(f"method {tlog.method}: moved {len(tlog.moved)} tensors, {len(tlog.frozen)} frozen, "
          f"{len(tlog.fresh)} fresh" + (f", {len(tlog.reinit)} re-initialized on mismatch"
                                        if tlog.reinit else ""))
    for note in tlog.notes:
        print(f"  note: {note}")
    with during_run("transfer"):  # from here on a failure is the run's, not the input's
        out.mkdir(parents=True, exist_ok=True)
        curve = out / rundir.CURVE
        curve.unlink(missing_ok=True)
        every = args.eval_every or max(args.steps // 10, 1)
        ckpt = out / rundir.CHECKPOINT
        rows = train_and_save(model, args.steps, out=ckpt, eval_every=every,
                              eval_episodes=args.eval_episodes, curve_csv=curve,
                              progress_bar=not args.no_progress, overwrite=True,
                              tensorboard_log=args.tensorboard)
    final = rows[-1]
    print(f"curve: {curve} ({len(rows)} points)\ncheckpoint: {ckpt}\n"
          f"evaluation return: {final['mean_return']:.2f} ± {final['std_return']:.2f} "
          f"(jumpstart {rows[0]['mean_return']:.2f})")
    return 0


_RANK_TARGET_FLAGS = (("target", "--target"), ("candidates", "--candidates"),
                      ("knob", "--knob"), ("pixels", "--pixels"), ("pair", "--pair"),
                      ("sort_by", "--sort-by"), ("json", "--json"), ("markdown", "--markdown"))


def cmd_rank(args: argparse.Namespace) -> int:
    given = [flag for name, flag in _RANK_TARGET_FLAGS if getattr(args, name)]
    if args.experiment is not None:
        if given:
            raise UserError(f"{', '.join(given)}: --experiment takes the target and the "
                            "candidates from the experiment (and writes rank.md and rank.json "
                            "in its folder); drop them")
        return _rank_experiment(args)
    missing = [flag for flag in ("--target", "--candidates")
               if not getattr(args, flag.removeprefix("--"))]
    if missing:
        raise UserError(f"{' and '.join(missing)} required (or --experiment DIR)")
    if args.json is not None:
        _fresh_file(args.json, args.overwrite, "--json")
    probes = _rank_probes(args)
    table = rank_sources(args.candidates, args.target, knobs=_knobs(args.knob),
                         budget=args.budget or DEFAULT_BUDGET, probes=probes, seed=args.seed,
                         adapter=args.pair, pixels=_json_arg(args.pixels, "--pixels"),
                         sort_by=args.sort_by, progress=not args.no_progress)
    print(table.markdown() if args.markdown else table.text(), end="")
    if args.json is not None:
        write_json_atomic(args.json, table.to_dict())
        print(f"json: {args.json}", file=sys.stderr)
    return 0


def _rank_probes(args: argparse.Namespace) -> list[Any]:
    names = ([p.strip() for p in args.probes.split(",") if p.strip()] if args.probes
             else list(DEFAULT_PROBES))
    if not names:
        raise UserError(f"--probes {args.probes!r}: give probe names separated by commas; "
                        f"choose from {probe_names()}")
    options = _json_arg(args.probe_options, "--probe-options") or {}
    if not isinstance(options, dict) or any(k not in names for k in options):
        raise UserError(f"--probe-options {args.probe_options!r}: expected "
                        '{"<probe>": {"<option>": value}} for probes of --probes '
                        f"({', '.join(names)})")
    return [{n: options[n]} if n in options else n for n in names]


def _rank_experiment(args: argparse.Namespace) -> int:
    result = rank_experiment(args.experiment, budget=args.budget, seed=args.seed,
                             probes=_rank_probes(args), progress=not args.no_progress)
    doc = result.doc
    print(f"{doc['experiment']}: {len(doc['gains']['candidates'])} candidates with finished "
          f"runs; probe budget {result.table.budget:,} target steps per candidate, seed "
          f"{result.table.seed}; probed now: {', '.join(result.probed) or 'none'}; reused "
          f"from {PROBE_CACHE}: {', '.join(result.reused) or 'none'}\n")
    print("Verdicts (AUC gain):", *verdict_lines(doc), "", *prediction_table(doc, "auc"),
          sep="\n")
    print(f"\nrank.md: {result.rank_md}\nrank.json: {result.rank_json}")
    return 0


def _fresh_file(out: str, overwrite: bool, flag: str) -> None:
    """Refuse, before any work, an output file that exists (without --overwrite) or sits
    where a file cannot be written."""
    path = Path(out)
    if path.is_dir():
        raise UserError(f"{flag} {out!r} is a folder; expected a file path")
    if path.exists() and not overwrite:
        raise UserError(f"{flag} {out!r} exists; pass --overwrite to replace it, or choose "
                        "another path")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{flag} {out!r}: {str(parent)!r} is a file, not a folder")
            break


def cmd_import(args: argparse.Namespace) -> int:
    _fresh_out(args.out, args.overwrite)
    out = import_sb3(args.zip, args.env, out=args.out, knobs=_knobs(args.knob), algo=args.algo,
                     activation_fn=args.activation, overwrite=args.overwrite)
    print(f"checkpoint: {out}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    ckpt = check_weights(load_checkpoint(args.checkpoint))
    print(json.dumps(ckpt.card, indent=2, sort_keys=True))
    fits = ", weights match the card's policy" if ckpt.card.get("kind", "agent") == "agent" else ""
    print(f"\n{len(ckpt.tensors)} tensors, sha256 verified{fits}")
    return 0


def cmd_pretrain_encoder(args: argparse.Namespace) -> int:
    pixels = _json_arg(args.pixels, "--pixels") or {"size": 64}
    _fresh_out(args.out, args.overwrite)
    out = pretrain_encoder_cli(
        args.env, _knobs(args.knob), pixels=pixels, encoder=args.encoder,
        encoder_kwargs=_json_arg(args.encoder_kwargs, "--encoder-kwargs"),
        objective=args.objective, positive=args.positive, frames=args.frames, steps=args.steps,
        batch_size=args.batch_size, lr=args.lr, seed=args.seed, out=args.out,
        tb_dir=args.tensorboard, progress_bar=not args.no_progress, overwrite=args.overwrite)
    card = load_checkpoint(out).card
    print(f"encoder checkpoint: {out}\nloss: {card.get('first_loss', float('nan')):.3f} -> "
          f"{card.get('final_loss', float('nan')):.3f}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    if args.what in ("envs", "all"):
        print(format_catalogue())
    if args.what in ("methods", "all"):
        print(format_methods())
    if args.what in ("encoders", "all"):
        print(format_encoders())
    if args.what in ("presets", "all"):
        print(format_presets())
    if args.what in ("probes", "all"):
        print(format_probes())
    return 0


def format_probes() -> str:
    """The registered probes of ``rltransfer rank``: name, what it scores, options."""
    lines = ["Probes of `rltransfer rank` (--probes A,B; higher = predicted better transfer):"]
    for p in describe_probes():
        lines.append(f"  {p['name']:<17} {p['summary']}  [{', '.join(p['algos'])}]")
        lines += [f"      {o['name']} = {o['default']!r}" + (f"  {o['doc']}" if o["doc"] else "")
                  for o in p["options"]]
    return "\n".join(lines)


def format_encoders() -> str:
    """The encoder registry: names a preset's ``features_extractor`` accepts."""
    lines = ["Encoders (preset policy_kwargs.features_extractor):"]
    for name, target in ENCODERS.items():
        extra = ENCODER_DEFAULTS.get(name)
        lines.append(f"  {name:<11} {target}" + (f"  {extra}" if extra else ""))
    return "\n".join(lines)


def format_presets() -> str:
    """The agent presets per algorithm: name, where its values come from, what it serves."""
    lines = ["Agent presets (agents/<algo>.yaml; --preset NAME or experiment `preset:`):"]
    for algo in ALGOS:
        lines.append(f"  {algo}:")
        for name, p in load_presets(algo).items():
            match = getattr(p, "match", None)
            lines.append(f"    {name:<22} {getattr(p, 'source', '') or ''}"
                         + (f"  (also {', '.join(match)})" if match else ""))
    return "\n".join(lines)


def format_methods() -> str:
    """The registered transfer methods: name, what it does, algorithms, options."""
    lines = ["Transfer methods (--method NAME, options with --method-options JSON):"]
    for m in describe_methods():
        lines.append(f"  {m['name']:<17} {m['summary']}  [{', '.join(m['algos'])}]")
        for o in m["options"]:
            doc = " ".join(o["doc"].split())
            lines.append(f"      {o['name']}: {o['type']} = {o['default']!r}"
                         + (f"  {doc}" if doc else ""))
    return "\n".join(lines)


def _json_arg(value: str | None, flag: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise UserError(f"{flag} {value!r} is not valid JSON ({exc.msg})") from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every verb (``--help`` on each)."""
    parser = _Parser(
        prog="rltransfer",
        description="Transfer learning for RL: pretrain on a source env, start PPO/SAC on a "
                    "target env from it, and measure the gain over scratch.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", metavar="VERB", required=True)

    p = sub.add_parser("pretrain", help="train a source agent and write a checkpoint",
                       description="Train a source agent with the env's preset, evaluate it, "
                                   "and write a checkpoint (safetensors + card.json).")
    _add_env_args(p)
    p.add_argument("--algo", choices=["ppo", "sac"], default="ppo", help="algorithm")
    p.add_argument("--steps", type=_int_at_least(0), required=True,
                   help="environment steps to train")
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    p.add_argument("--eval-episodes", type=_int_at_least(1), default=10,
                   help="episodes for the evaluation")
    p.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint")
    _add_agent_args(p)
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("transfer", help="start a target agent from a source and train it",
                       description="Initialize a target agent from a source checkpoint with a "
                                   "method, train it evaluating every so often (curve.csv), "
                                   "and write it as a checkpoint. --steps 0 writes the "
                                   "initialized agent untrained.")
    p.add_argument("--source", required=True, help="source checkpoint folder")
    _add_env_args(p)
    p.add_argument("--method", default="finetune",
                   choices=method_names(),
                   help="transfer method (see `rltransfer list methods`)")
    p.add_argument("--roles", default=None,
                   help="comma-separated roles for partial/frozen: encoder, actor, critic, "
                        "heads, features, actor_trunk, critic_trunk, actor_head, critic_head")
    p.add_argument("--unfreeze-at", type=_int_at_least(0), default=None,
                   help="frozen: unfreeze at this step")
    p.add_argument("--lr-scale", type=_positive_float, default=None,
                   help="frozen: train moved weights at this fraction of the lr instead")
    p.add_argument("--method-options", metavar="JSON", default=None, help="method options")
    p.add_argument("--on-mismatch", choices=["error", "reinit"], default="error",
                   help="when shapes differ: stop with a table, or re-initialize what differs")
    p.add_argument("--adapter", metavar="PAIR|JSON", default=None,
                   help="when source and target spaces differ: a pair whose adapter to use "
                        "(e.g. hopper/to-walker2d) or an adapter as JSON {obs, act, mirror}")
    p.add_argument("--fix-normalization", action="store_true",
                   help="hold the source's normalization statistics fixed on the target")
    p.add_argument("--algo", choices=["ppo", "sac"], default=None,
                   help="target algorithm (default: the source's)")
    p.add_argument("--steps", type=_int_at_least(0), required=True,
                   help="environment steps to train (0 ok)")
    p.add_argument("--eval-every", type=_int_at_least(1), default=None,
                   help="steps between evaluations")
    p.add_argument("--eval-episodes", type=_int_at_least(1), default=10,
                   help="episodes per evaluation")
    p.add_argument("--out", required=True, help="output folder (curve.csv, checkpoint/)")
    p.add_argument("--overwrite", action="store_true", help="reuse an existing --out folder")
    _add_agent_args(p)
    p.set_defaults(func=cmd_transfer)

    p = sub.add_parser("rank", help="rank candidate sources for a target with cheap probes",
                       description="Score every candidate source checkpoint on the target "
                                   "with cheap probes (each spends at most --budget target "
                                   "steps per candidate; probes share rollouts) and print them "
                                   "ranked. Higher = predicted better transfer. With "
                                   "--experiment DIR: probe the candidate sources of an "
                                   "experiment and measure whether the probes predict the real "
                                   "gains its runs measured (issue #15 point 2).")
    p.add_argument("--experiment", default=None, metavar="DIR",
                   help="instead of --target and --candidates: an experiment output folder "
                        "whose methods transfer from several agent sources; probe them on "
                        "its target and compare with the real gains its runs measured "
                        "(writes rank.md and rank.json there; probe rows are kept in "
                        f"{PROBE_CACHE}, so a rerun takes no env step)")
    _add_env_args(p, "--target", "target env", required=False)
    p.add_argument("--candidates", nargs="+", default=None, metavar="PATH",
                   help="checkpoint folders, or folders that hold several (searched "
                        "recursively)")
    p.add_argument("--budget", type=_int_at_least(1), default=None,
                   help=f"target env steps each probe may spend per candidate (default "
                        f"{DEFAULT_BUDGET}; with --experiment, 5%% of one transfer run)")
    p.add_argument("--probes", default=None, metavar="A,B",
                   help=f"comma-separated probes, the first sorts the table (default: "
                        f"{','.join(DEFAULT_PROBES)}; choose from {', '.join(probe_names())})")
    p.add_argument("--probe-options", metavar="JSON", default=None,
                   help='options per probe, e.g. \'{"dynamics_gap": {"source_steps": 500}}\' '
                        "(see `rltransfer list probes`)")
    p.add_argument("--sort-by", default=None, metavar="PROBE",
                   help=f"sort by this probe (higher first) or by {MEAN_RANK} (each "
                        "candidate's rank under every probe, averaged; lower first); "
                        "default: the first probe")
    p.add_argument("--seed", type=_int_at_least(0), default=0,
                   help="seed of the target and source envs and of any sampling (default 0)")
    p.add_argument("--pair", default=None, metavar="NAME",
                   help="map candidates whose spaces differ from the target's through this "
                        "pair's adapter (e.g. invertedpendulum/to-double)")
    p.add_argument("--json", default=None, metavar="OUT",
                   help="also write the table, with every probe's details, as JSON")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_rank)

    p = sub.add_parser("import-sb3", help="turn a stable-baselines3 .zip into a checkpoint",
                       description="Read only the weights of an SB3 .zip (weights_only=True; "
                                   "its pickled data is never read) and write a checkpoint, "
                                   "taking the spaces from --env.")
    p.add_argument("zip", help="the SB3 model .zip (for example from RL Zoo)")
    _add_env_args(p)
    p.add_argument("--algo", choices=["ppo", "sac"], default=None, help="default: inferred")
    p.add_argument("--activation", default=None,
                   choices=["tanh", "relu", "elu", "leaky_relu", "gelu", "silu"],
                   help="activation of the hidden layers (default: the env's preset)")
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("pretrain-encoder", help="self-supervised vision encoder on source frames",
                       description="Collect frames from the source env's pixel view with a "
                                   "random policy, train an encoder self-supervised "
                                   "(contrastive with random shifts, or inverse dynamics), and "
                                   "write it as an encoder checkpoint. Loss goes to TensorBoard.")
    _add_env_args(p)
    p.add_argument("--encoder", default="nature_cnn",
                   help="nature_cnn, small_cnn, impala_cnn, resnet18, ... (default nature_cnn)")
    p.add_argument("--encoder-kwargs", metavar="JSON", default=None, help="encoder options")
    p.add_argument("--objective", choices=["contrastive", "inverse_dynamics"],
                   default="contrastive", help="self-supervised objective")
    p.add_argument("--positive", choices=["same", "next"], default="same",
                   help="contrastive positives: two shifts of one frame, or frame t and t+1")
    p.add_argument("--frames", type=_int_at_least(2), default=5000, help="frames to collect")
    p.add_argument("--steps", type=_int_at_least(1), default=2000, help="gradient steps")
    p.add_argument("--batch-size", type=_int_at_least(2), default=64, help="batch size")
    p.add_argument("--lr", type=_positive_float, default=1e-3, help="learning rate")
    p.add_argument("--out", required=True, help="encoder checkpoint folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint")
    p.add_argument("--seed", type=_int_at_least(0), required=True,
                   help="random seed (explicit, always)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--tensorboard", metavar="DIR", default=None, help="loss curve folder")
    p.set_defaults(func=cmd_pretrain_encoder)

    p = sub.add_parser("inspect", help="verify a checkpoint and print its card",
                       description="Verify a checkpoint's hashes and print its card.")
    p.add_argument("checkpoint", help="checkpoint folder")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("list", help="env families and pairs, methods, encoders, presets or "
                                    "probes",
                       description="Show the env catalogue (families, knobs and ranges, "
                                   "pairs), the transfer methods or the probes of `rank` "
                                   "with their options.")
    p.add_argument("what", nargs="?",
                   choices=["envs", "methods", "encoders", "presets", "probes", "all"],
                   default="envs",
                   help="what to list (default: envs)")
    p.set_defaults(func=cmd_list)

    experiment_cli.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rltransfer`` console script and ``python -m rltransfer``.

    Returns the exit status: 0 done; 2 bad input (argparse's errors too, as ``SystemExit``),
    reported before anything is written; 1 a run that started and failed; 130 interrupted.
    Errors are one line ``rltransfer VERB: error: ...`` on stderr; ``-v`` adds the traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # one line, no traceback unless -v
        code = exit_status(exc)
        if args.verbose:
            traceback.print_exc()
        message = str(exc).strip() or type(exc).__name__
        if code == EXIT_RUN_FAILED and not _is_ours(exc):
            message = f"{type(exc).__name__}: {message}"
            if not args.verbose:
                message += " (run with -v for the traceback)"
        print(f"rltransfer {args.command}: error: {message}", file=sys.stderr)
        return code


def exit_status(exc: BaseException) -> int:
    """2 for bad input, 1 for a run that started and failed (see :data:`EXIT_USER_ERROR`).

    Bad input is any of rltransfer's input errors (all ``ValueError`` subclasses: checkpoint,
    preset, transfer, experiment, env catalogue), a missing file, or :class:`UserError`, as
    long as it was raised before training began; whatever is raised while an agent trains or
    is evaluated (rltransfer marks those, see :func:`rltransfer.agent.during_run`), a custom
    env's :class:`~rltransfer.envs.EnvFault`, and any other error are run failures.
    """
    if raised_during_run(exc):  # marked by during_run, or a custom env's EnvFault
        return EXIT_RUN_FAILED
    if isinstance(exc, UserError | ValueError | FileNotFoundError | FileExistsError
                  | NotADirectoryError | IsADirectoryError):
        return EXIT_USER_ERROR
    return EXIT_RUN_FAILED


def _is_ours(exc: BaseException) -> bool:
    """rltransfer's own errors say what went wrong in words; others get their type name."""
    return isinstance(exc, UserError) or type(exc).__module__.startswith("rltransfer")


if __name__ == "__main__":
    sys.exit(main())
