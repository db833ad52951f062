"""Experiment files: the YAML schema, its validation, and the resolved :class:`Experiment`.

An experiment file names a transfer task (a catalogue ``pair``, or an explicit ``source`` and
``target``), an algorithm, the methods to compare (``scratch``, the control, is always
included), the seeds, the step budget, the evaluation schedule, the return threshold and
how many evaluations in a row must stay at or above it (``sustain``, for time to threshold)::

    pair: cartpole/long-heavy-pole
    algo: ppo
    methods: [scratch, finetune, {partial: {roles: [actor]}}]
    seeds: 5
    steps: 50000
    eval: {every: 2000, episodes: 10}
    threshold: 475
    sustain: 3

A method entry can also carry its own source, preset and label (``method`` is then a key)::

    sources:                 # named sources besides ``agent``, the RL pretraining
      ssl: {kind: ssl, objective: contrastive, frames: 20000, steps: 2000}
    methods:
      - frozen                                   # the source agent's encoder, frozen
      - {method: frozen, source: ssl, label: ssl-frozen}
      - {method: {frozen: {weights: init}}, preset: cartpole-pixels-resnet18,
         label: resnet18-random}

The file is read with ``yaml.safe_load`` (data only) and validated with pydantic
(``extra="forbid"``); every error names the file, the field, the value and what is accepted.
Method names and options are checked by :func:`rltransfer.methods.get_method`, env names
and knobs by :func:`rltransfer.envs.describe`, hyperparameters by the preset schema.

Example (a file's mapping, validated; :func:`load_experiment` reads the same from a file):
    >>> exp = resolve_experiment({"pair": "cartpole/long-heavy-pole", "algo": "ppo",
    ...                           "methods": ["finetune", {"partial": {"roles": ["actor"]}}],
    ...                           "seeds": 2})
    >>> exp.method_labels, exp.seeds
    (['scratch', 'finetune', 'partial[actor]'], [0, 1])
    >>> exp.steps, exp.eval_every, exp.threshold  # from the pair's budget and threshold
    (100000, 5000, 475.0)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
)

from rltransfer import envs
from rltransfer._validation import UNION_TAGS, format_validation_error, read_yaml
from rltransfer.envs.catalogue import parse_adapter, resolve_members
from rltransfer.metrics import DEFAULT_SUSTAIN
from rltransfer.presets import PresetError, resolve_preset

# rltransfer.methods (get_method) is imported inside the functions that check methods: it
# imports torch (2-3 s), and ``import rltransfer.experiment`` stays torch-free, so the process
# that only schedules runs (``rlt.run`` with workers) never loads it.

__all__ = [
    "EvalSchedule",
    "Experiment",
    "ExperimentConfig",
    "ExperimentError",
    "MemberSpec",
    "MethodEntry",
    "MethodSetup",
    "SSLSourceSpec",
    "AgentSourceSpec",
    "load_experiment",
    "resolve_experiment",
]

DEFAULT_SEEDS = 5
DEFAULT_EVAL_EPISODES = 10
DEFAULT_EVAL_POINTS = 20
"""Without ``eval.every``, the target is evaluated this many times over ``steps`` (plus step 0)."""
SOURCE_EVAL_POINTS = 10
SOURCE_EVAL_EPISODES = 5
"""The source pretraining is evaluated ``SOURCE_EVAL_POINTS`` times over ``SOURCE_EVAL_EPISODES``
episodes: a fixed schedule, so experiments that share a source share its cached run."""


class ExperimentError(ValueError):
    """An experiment file or configuration that cannot be run as written."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MemberSpec(_Strict):
    """One side of the task: an env family or Gymnasium id, knob values, an optional pixel view."""

    env: str
    """Env family name (see ``rltransfer list``) or a plain Gymnasium id such as CartPole-v1."""
    knobs: dict[str, Any] = Field(default_factory=dict)
    """Knob values that differ from the family's defaults (constructor keywords for plain ids)."""
    pixels: dict[str, Any] | None = None
    """Pixel view, e.g. ``{size: 64, grayscale: true, frame_stack: 4}``; absent: state obs."""


class EvalSchedule(_Strict):
    """When and how long the target agent is evaluated during training."""

    every: int | None = Field(default=None, gt=0)
    """Environment steps between evaluations (default: ``steps / 20``). Step 0 is always
    evaluated (the jumpstart)."""
    episodes: int = Field(default=DEFAULT_EVAL_EPISODES, gt=0)
    """Deterministic evaluation episodes per point (default 10)."""


MethodSpec = str | dict[str, Any]


def _default_methods() -> list[MethodSpec]:
    return ["scratch", "finetune"]


AGENT_SOURCE = "agent"
"""The name of the default source: the RL agent pretrained on the source env."""


class SSLSourceSpec(_Strict):
    """A self-supervised encoder pretrained on frames of the source env (a named source).

    The same training as ``rltransfer pretrain-encoder``: ``frames`` frames from a uniformly
    random policy in the source env, then ``steps`` gradient steps of ``objective``. The
    encoder architecture defaults to the features extractor of the experiment's target
    preset, so the checkpoint fits the methods that use it.
    """

    kind: Literal["ssl"] = "ssl"
    """The source kind; ``ssl`` (self-supervised encoder) is the one besides ``agent``."""
    objective: Literal["contrastive", "inverse_dynamics"] = "contrastive"
    """Contrastive with random shifts (CURL/ATC style) or inverse dynamics."""
    positive: Literal["same", "next"] = "same"
    """Contrastive positives: the ``same`` frame shifted (CURL) or the ``next`` frame (ATC)."""
    frames: int = Field(default=20000, gt=1)
    """Frames collected in the source env."""
    steps: int = Field(default=2000, gt=0)
    """Gradient steps."""
    batch_size: int = Field(default=128, gt=1)
    """Frames per gradient step (the other frames of a batch are the negatives)."""
    lr: float = Field(default=1e-3, gt=0)
    """Adam learning rate."""
    seed: int = Field(default=0, ge=0)
    """Seeds frame collection, initialization, batches and augmentation."""
    encoder: str | None = None
    """Encoder registry name (default: the target preset's ``features_extractor``)."""
    encoder_kwargs: dict[str, Any] | None = None
    """Encoder keywords (default: the target preset's ``features_extractor_kwargs``)."""


class AgentSourceSpec(_Strict):
    """Another RL agent to start from (a named source): pretrained like the ``agent``
    source, on the experiment's source env or another view of it.

    The common use: a state teacher for a pixel student. With ``pixels: false`` the agent
    is trained on the source env's state while the target sees pixels; methods with a
    teacher (``kickstart`` with ``roles: []``, ``jsrl``) then feed it the state behind each
    frame (:mod:`rltransfer.methods.teacher`).
    """

    kind: Literal["agent"]
    """The source kind."""
    env: str | None = None
    """Env family or Gymnasium id (default: the experiment's source env)."""
    knobs: dict[str, Any] | None = None
    """Knob values (default: the experiment's source knobs)."""
    pixels: dict[str, Any] | Literal[False] | None = None
    """Its pixel view; ``false``: the state; absent: the experiment's source view."""
    steps: int | None = Field(default=None, gt=0)
    """Pretraining steps (default: ``source_steps``)."""
    seed: int | None = Field(default=None, ge=0)
    """Pretraining seed (default: ``source_seed``)."""
    preset: str | dict[str, Any] | None = None
    """Its preset (default: its env's preset; the experiment's ``overrides`` do not apply)."""
    overrides: dict[str, Any] | None = None
    """Hyperparameters merged into its preset."""

    def member(self, source: Member) -> Member:
        """The env this agent trains on, defaults taken from the experiment's ``source``."""
        pixels = source.pixels if self.pixels is None else (self.pixels or None)
        return Member(self.env or source.env,
                      dict(source.knobs if self.knobs is None else self.knobs), pixels)


def _source_kind(value: Any) -> str:
    kind = value.get("kind", "ssl") if isinstance(value, Mapping) else getattr(value, "kind", "ssl")
    return "AgentSourceSpec" if kind == "agent" else "SSLSourceSpec"


UNION_TAGS.update({"SSLSourceSpec", "AgentSourceSpec"})
SourceSpec = Annotated[Annotated[SSLSourceSpec, Tag("SSLSourceSpec")]
                       | Annotated[AgentSourceSpec, Tag("AgentSourceSpec")],
                       Discriminator(_source_kind)]
"""A named source: a self-supervised encoder (``kind: ssl``, the default) or another RL agent
(``kind: agent``); errors name the fields of the kind given."""


class MethodEntry(_Strict):
    """A method with its own source, preset or label (the long form of a ``methods`` item)."""

    method: MethodSpec
    """The method: a name or ``{name: {options}}``, as in the short form."""
    label: str | None = None
    """The name in reports and TensorBoard (default: the method's label, plus ``@source``
    for a named source and ``/preset`` for a preset name)."""
    source: str | None = None
    """``agent`` (default for methods that move weights) or a name under ``sources``."""
    preset: str | dict[str, Any] | None = None
    """This method's preset (default: the experiment's)."""
    overrides: dict[str, Any] | None = None
    """Merged over the experiment's ``overrides`` for this method."""


class ExperimentConfig(_Strict):
    """The experiment file, as written (before defaults from the pair are filled in)."""

    name: str | None = None
    """Experiment name (default: the file name without ``.yaml``)."""
    description: str = ""
    """Free text, copied into experiment.json and the report."""
    pair: str | None = None
    """A source→target pair from the env catalogue (``rltransfer list``), e.g.
    ``cartpole/long-heavy-pole``. Give either ``pair`` or both ``source`` and ``target``."""
    source: MemberSpec | None = None
    """The env the source agent is pretrained on (instead of ``pair``)."""
    target: MemberSpec | None = None
    """The env every method trains on (instead of ``pair``)."""
    algo: Literal["ppo", "sac"] = "ppo"
    """The algorithm: ``ppo`` or ``sac``; source and target use the same."""
    preset: str | dict[str, Any] | None = None
    """Hyperparameter preset: a name from ``agents/<algo>.yaml``, a YAML file, or a mapping
    (default: the target env's preset; the source uses the source env's)."""
    overrides: dict[str, Any] | None = None
    """Hyperparameters merged into the preset for every run, e.g. ``{n_envs: 4}``."""
    methods: list[MethodSpec] = Field(default_factory=_default_methods)
    """Methods to compare: names (``finetune``), ``{name: {options}}`` (``{partial: {roles:
    [actor]}}``), or the long form ``{method, label, source, preset, overrides}``
    (:class:`MethodEntry`). ``scratch`` is added first if missing: it is the baseline."""
    sources: dict[str, SourceSpec] = Field(default_factory=dict)
    """Named sources besides ``agent`` (the RL pretraining), for methods to start from: a
    self-supervised encoder (``kind: ssl``) or another RL agent (``kind: agent``)."""
    seeds: int | list[int] = DEFAULT_SEEDS
    """Number of seeds (``5`` runs seeds 0..4) or an explicit list of seeds."""
    steps: int | None = Field(default=None, gt=0)
    """Target training steps per run (default: the pair's budget)."""
    eval: EvalSchedule = Field(default_factory=EvalSchedule)
    """Evaluation schedule ``{every, episodes}``."""
    threshold: float | None = None
    """Return that counts as solved, for time-to-threshold (default: the pair's)."""
    sustain: int = Field(default=DEFAULT_SUSTAIN, ge=1)
    """Evaluations in a row that must stay at or above ``threshold`` for the time to
    threshold (default 3; 1 is the first crossing). A report setting: no run id depends on
    it, so changing it only needs ``rltransfer report``."""
    source_steps: int | None = Field(default=None, ge=0)
    """Pretraining steps of the source agent (default: ``steps``)."""
    source_seed: int = Field(default=0, ge=0)
    """Seed of the source pretraining (one source agent serves every target seed)."""
    source_seeds: Literal["per_seed"] | list[int] | None = None
    """Give each transfer seed a source agent of its own, so that the intervals cover the
    variation between sources too: ``per_seed`` (transfer seed i starts from the source
    pretrained with seed i) or a list of source seeds (the k-th transfer seed starts from
    ``source_seeds[k mod len]``, e.g. 10 sources for 40 transfer seeds). Absent (the
    default): one source agent, ``source_seed``, for every transfer seed, and every run id is
    what it was before this field existed. Applies to the ``agent`` source."""
    on_mismatch: Literal["error", "reinit"] = "error"
    """When source and target shapes differ: stop (``error``) or re-initialize what differs."""
    adapter: dict[str, Any] | None = None
    """How the source's observation and action dimensions correspond to the target's
    (``{obs, act, mirror}``, see :class:`rltransfer.envs.Adapter`); replaces the pair's."""

    @field_validator("seeds")
    @classmethod
    def _check_seeds(cls, value: int | list[int]) -> int | list[int]:
        if isinstance(value, int):
            if value < 1:
                raise ValueError("must be >= 1 (a number of seeds) or a list of seeds")
            return value
        if not value:
            raise ValueError("the list of seeds is empty")
        if any(s < 0 for s in value):
            raise ValueError("seeds must be >= 0")
        if len(set(value)) != len(value):
            raise ValueError("seeds must be distinct")
        return value

    @field_validator("source_seeds")
    @classmethod
    def _check_source_seeds(cls, value: str | list[int] | None) -> str | list[int] | None:
        if isinstance(value, list):
            if not value:
                raise ValueError("the list of source seeds is empty (or write per_seed)")
            if any(s < 0 for s in value):
                raise ValueError(f"source seeds must be >= 0, got {value}")
            if len(set(value)) != len(value):
                raise ValueError(f"source seeds must be distinct, got {value}")
        return value


@dataclasses.dataclass(frozen=True)
class Member:
    """A resolved env member (the same fields as :class:`MemberSpec`)."""

    env: str
    knobs: dict[str, Any]
    pixels: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"env": self.env, "knobs": dict(self.knobs), "pixels": self.pixels}


@dataclasses.dataclass(frozen=True)
class NamedAgent:
    """A named ``kind: agent`` source, resolved: where it trains, its full preset, its seed
    and its pretraining steps."""

    member: Member
    preset: dict[str, Any]
    seed: int
    steps: int


@dataclasses.dataclass(frozen=True)
class MethodSetup:
    """One resolved method of an experiment."""

    label: str
    spec: MethodSpec
    """Canonical method spec (``name`` or ``{name: {options}}``)."""
    source: str | None
    """``agent``, a name under ``sources``, or ``None`` (the method takes no source)."""
    preset: str | dict[str, Any] | None
    """The preset of this method's runs (the experiment's unless the entry gives one)."""
    overrides: dict[str, Any] | None
    """The experiment's overrides with the entry's merged over them."""
    resolved: dict[str, Any]
    """The full preset of this method's runs on the target (``preset`` with ``overrides``,
    every default filled in): resolved once, here, and read as is by the plan and the runs."""

    def to_json(self, preset: Any = None, overrides: Any = None) -> MethodSpec | dict[str, Any]:
        """The short form where it says everything (given the experiment's ``preset`` and
        ``overrides``), else the long form."""
        from rltransfer.methods import get_method  # torch: see the note on imports

        if (self.label == get_method(self.spec).label and self.source in (None, AGENT_SOURCE)
                and self.preset == preset and self.overrides == overrides):
            return self.spec
        return {"method": self.spec, "label": self.label, "source": self.source,
                "preset": self.preset, "overrides": self.overrides}


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A validated experiment with every default filled in: what the planner expands."""

    name: str
    description: str
    pair: str | None
    source: Member
    target: Member
    algo: str
    preset: str | dict[str, Any] | None
    overrides: dict[str, Any] | None
    setups: list[MethodSetup]
    """Per method, ``scratch`` first: its label, spec, source name, preset and overrides."""
    sources: dict[str, SourceSpec]
    seeds: list[int]
    steps: int
    eval_every: int
    eval_episodes: int
    threshold: float | None
    source_steps: int
    source_seed: int
    on_mismatch: str
    source_preset: dict[str, Any]
    """The full preset of the source pretraining (the experiment's preset and overrides on
    the source env), resolved once."""
    target_preset: dict[str, Any]
    """The experiment's preset and overrides on the target env, resolved once (each method's
    own, which may differ, is :attr:`MethodSetup.resolved`)."""
    sustain: int = DEFAULT_SUSTAIN
    """Evaluations in a row at or above ``threshold`` for the time to threshold (report only:
    not part of any run id)."""
    path: Path | None = None
    adapter: dict[str, Any] | None = None
    """The adapter between source and target spaces (the experiment's, else the pair's), as
    written; checked against both spaces. Part of the id of every run that starts from the
    source agent."""
    named_agents: dict[str, NamedAgent] = dataclasses.field(default_factory=dict)
    """Each named ``kind: agent`` source, resolved once."""
    source_seeds: str | list[int] | None = None
    """``source_seeds`` as written (``per_seed``, a list, or ``None``: one source for all);
    :meth:`source_seed_for` reads it."""

    def source_seed_for(self, seed: int) -> int | None:
        """The seed of the ``agent`` source that transfer seed ``seed`` starts from, or
        ``None`` when one source (``source_seed``) serves every transfer seed."""
        if self.source_seeds is None:
            return None
        if isinstance(self.source_seeds, str):  # "per_seed"
            return seed
        return self.source_seeds[self.seeds.index(seed) % len(self.source_seeds)]

    @property
    def methods(self) -> list[MethodSpec]:
        """Normalized method specs, ``scratch`` first."""
        return [m.spec for m in self.setups]

    @property
    def method_labels(self) -> list[str]:
        """Method labels (names in reports and TensorBoard), ``scratch`` first."""
        return [m.label for m in self.setups]

    @property
    def needs_source(self) -> bool:
        """Whether any method starts from the source agent (so it must be pretrained)."""
        return any(m.source == AGENT_SOURCE for m in self.setups)

    @property
    def used_sources(self) -> list[str]:
        """The names of the sources some method starts from, ``agent`` first."""
        used = {m.source for m in self.setups if m.source is not None}
        return [n for n in [AGENT_SOURCE, *self.sources] if n in used]

    def config_json(self) -> dict[str, Any]:
        """The full validated configuration, JSON-able (for experiment.json and the report)."""
        return {
            "name": self.name, "description": self.description, "pair": self.pair,
            "source": self.source.to_json(), "target": self.target.to_json(),
            "algo": self.algo, "preset": self.preset, "overrides": self.overrides,
            "methods": [m.to_json(self.preset, self.overrides) for m in self.setups],
            "sources": {k: v.model_dump(mode="json") for k, v in self.sources.items()},
            "seeds": self.seeds, "steps": self.steps,
            "eval": {"every": self.eval_every, "episodes": self.eval_episodes},
            "threshold": self.threshold, "sustain": self.sustain,
            "source_steps": self.source_steps,
            **({"source_seed": self.source_seed} if self.source_seeds is None
               else {"source_seeds": self.source_seeds}),
            "on_mismatch": self.on_mismatch,
            **({"adapter": self.adapter} if self.adapter is not None else {}),
        }


# --------------------------------------------------------------------------- loading


def load_experiment(path: str | os.PathLike, *, seeds: int | None = None,
                    steps: int | None = None) -> Experiment:
    """Read, validate and resolve an experiment file.

    Args:
        path: the YAML file.
        seeds: override the file's seeds with seeds ``0..seeds-1`` (for quick looks).
        steps: override the file's target ``steps`` (for quick looks).

    Raises:
        ExperimentError: naming the file, the field, the value and what is accepted.
    """
    path = Path(path)
    if not path.is_file():
        raise ExperimentError(f"experiment file {str(path)!r} not found")
    data = read_yaml(path, ExperimentError, "an experiment file")
    if not isinstance(data, Mapping):
        raise ExperimentError(f"{path}: expected a mapping of fields (pair, algo, methods, "
                              f"seeds, steps, eval, threshold...), got {type(data).__name__}")
    data = dict(data)
    data.setdefault("name", path.stem)
    return resolve_experiment(data, where=str(path), seeds=seeds, steps=steps, path=path)


def resolve_experiment(data: Mapping[str, Any] | ExperimentConfig, *, where: str = "experiment",
                       seeds: int | None = None, steps: int | None = None,
                       path: Path | None = None) -> Experiment:
    """Validate a configuration mapping (or an :class:`ExperimentConfig`) and fill defaults."""
    if isinstance(data, ExperimentConfig):
        cfg = data
    else:
        try:
            cfg = ExperimentConfig.model_validate(dict(data))
        except ValidationError as exc:
            raise ExperimentError(format_validation_error(exc, where, "experiment file",
                                                          ExperimentConfig)) from None

    def fail(field: str, msg: str) -> ExperimentError:
        return ExperimentError(f"{where}: {field}: {msg}")

    # --- the task: a pair or source + target
    pair_obj = None
    if cfg.pair is not None:
        if cfg.source is not None or cfg.target is not None:
            raise fail("pair", "give either 'pair' or both 'source' and 'target', not both")
        try:
            pair_obj = envs.get_pair(cfg.pair)
        except ValueError as exc:
            raise fail("pair", f"{cfg.pair!r}: {exc}") from None
        source = Member(pair_obj.source.env, dict(pair_obj.source.knobs), pair_obj.source.pixels)
        target = Member(pair_obj.target.env, dict(pair_obj.target.knobs), pair_obj.target.pixels)
    else:
        if cfg.source is None or cfg.target is None:
            missing = "source" if cfg.source is None else "target"
            raise fail(missing, "missing: give 'pair' (see `rltransfer list`) or both "
                                "'source' and 'target' ({env, knobs, pixels})")
        source = Member(cfg.source.env, dict(cfg.source.knobs), cfg.source.pixels)
        target = Member(cfg.target.env, dict(cfg.target.knobs), cfg.target.pixels)
    for field, member in (("source", source), ("target", target)):
        _check_member(member, f"{where}: {field}")

    # --- budget, evaluation, threshold
    if steps is not None:
        if not isinstance(steps, int) or steps <= 0:
            raise ExperimentError(f"--steps {steps!r}: must be a positive number of steps")
        n_steps = steps
    elif cfg.steps is not None:
        n_steps = cfg.steps
    elif pair_obj is not None:
        n_steps = int(pair_obj.budget)
    else:
        raise fail("steps", "missing: give the target training steps (no pair to take a "
                            "budget from)")
    every = cfg.eval.every or max(n_steps // DEFAULT_EVAL_POINTS, 1)
    if every > n_steps:
        raise fail("eval.every", f"{every} is more than steps={n_steps}: the curve would have "
                                 "only its step-0 point; lower eval.every"
                                 + (" (or raise --steps)" if steps is not None else ""))
    threshold = cfg.threshold
    if threshold is None and pair_obj is not None:
        threshold = float(pair_obj.threshold)
    source_steps = cfg.source_steps if cfg.source_steps is not None else n_steps

    # --- seeds
    if seeds is not None:
        if not isinstance(seeds, int) or seeds < 1:
            raise ExperimentError(f"--seeds {seeds!r}: must be a number of seeds >= 1")
        seed_list = list(range(seeds))
    elif isinstance(cfg.seeds, int):
        seed_list = list(range(cfg.seeds))
    else:
        seed_list = list(cfg.seeds)

    # --- hyperparameters: resolve now so mistakes surface before anything runs
    presets = {}
    for field, member in (("target", target), ("source", source)):
        try:
            presets[field] = resolved_preset(member, cfg.algo, cfg.preset, cfg.overrides)
        except (PresetError, ValueError) as exc:
            name = "overrides" if cfg.overrides else "preset"
            raise fail(name, f"(for the {field} env {member.env!r}) {exc}") from None

    # --- methods and the sources they start from
    for name in cfg.sources:
        if name == AGENT_SOURCE or name.startswith(f"{AGENT_SOURCE}/"):
            raise fail(f"sources.{name}", f"{AGENT_SOURCE!r} is the RL agent pretrained on the "
                       f"source env (and {AGENT_SOURCE}/seed_<k> its seeds); give named "
                       "sources other names")
    named_agents = {}
    for name, spec in cfg.sources.items():
        if isinstance(spec, AgentSourceSpec):
            member = spec.member(source)
            _check_member(member, f"{where}: sources.{name}")
            try:
                preset = resolved_preset(member, cfg.algo, spec.preset, spec.overrides)
            except (PresetError, ValueError) as exc:
                raise fail(f"sources.{name}", f"preset: {exc}") from None
            named_agents[name] = NamedAgent(
                member, preset, cfg.source_seed if spec.seed is None else spec.seed,
                spec.steps or int(source_steps))
    setups = _check_methods(cfg, target, where, presets["target"])
    adapter = _check_adapter(cfg, pair_obj, source, target, where,
                             any(s.source == AGENT_SOURCE for s in setups))

    return Experiment(
        name=str(cfg.name or (path.stem if path else "experiment")),
        description=cfg.description, pair=cfg.pair, source=source, target=target,
        algo=cfg.algo, preset=cfg.preset, overrides=dict(cfg.overrides or {}) or None,
        setups=setups, sources=dict(cfg.sources), seeds=seed_list, steps=n_steps,
        eval_every=int(every), eval_episodes=cfg.eval.episodes, threshold=threshold,
        source_steps=int(source_steps), source_seed=cfg.source_seed,
        on_mismatch=cfg.on_mismatch, source_preset=presets["source"],
        target_preset=presets["target"], sustain=cfg.sustain,
        path=path, adapter=adapter, named_agents=named_agents,
        source_seeds=_check_source_seeds(cfg, where),
    )


def _check_source_seeds(cfg: ExperimentConfig, where: str) -> str | list[int] | None:
    """``source_seeds`` as written, refused beside an explicit ``source_seed``."""
    if cfg.source_seeds is not None and "source_seed" in cfg.model_fields_set:
        raise ExperimentError(
            f"{where}: source_seeds: {cfg.source_seeds!r} gives each transfer seed its own "
            f"source; source_seed: {cfg.source_seed} gives one source to all: give one of them")
    if isinstance(cfg.source_seeds, list):
        return list(cfg.source_seeds)
    return cfg.source_seeds


def _check_adapter(cfg: ExperimentConfig, pair: Any, source: Member, target: Member,
                   where: str, used: bool) -> dict[str, Any] | None:
    """The experiment's adapter (else the pair's), resolved against both members' spaces
    (which builds them once); ``None`` when none is declared or no method uses the source."""
    if cfg.adapter is not None:
        try:
            spec = parse_adapter(cfg.adapter, where)
        except ValueError as exc:
            raise ExperimentError(str(exc)) from None
        at = f"{where}: pair {pair.name!r}" if pair is not None else where
    elif pair is not None and pair.adapter is not None:
        spec, at = pair.adapter, f"{where}: pair {pair.name!r}"
    else:
        return None
    if spec is None or not used:
        return None
    try:
        resolve_members(
            spec, envs.Member(source.env, dict(source.knobs), source.pixels),
            envs.Member(target.env, dict(target.knobs), target.pixels), where=at)
    except ValueError as exc:
        raise ExperimentError(str(exc)) from None
    return spec.to_json()


def resolved_preset(member: Member, algo: str, preset: Any, overrides: Any) -> dict[str, Any]:
    """The full preset (with overrides) a run on ``member`` uses, as JSON-able data."""
    desc = envs.describe(member.env, member.knobs, **_pix(member.pixels))
    p = resolve_preset(member.env, algo, preset, family=desc.get("family"),
                       gym_id=desc.get("gym_id"), pixels=bool(member.pixels),
                       overrides=overrides)
    return p.model_dump(mode="json")


def _check_member(member: Member, where: str) -> None:
    try:
        envs.describe(member.env, member.knobs, **_pix(member.pixels))
    except ValueError as exc:
        raise ExperimentError(f"{where}: {exc}") from None


def _check_methods(cfg: ExperimentConfig, target: Member, where: str,
                   target_preset: dict[str, Any]) -> list[MethodSetup]:
    """Resolve every ``methods`` item: spec, source, full preset, unique label; scratch first.

    ``target_preset`` is the experiment's preset resolved on the target: the preset of every
    method that gives neither its own preset nor overrides."""
    from rltransfer.methods import get_method  # torch: see the note on imports

    base_overrides = dict(cfg.overrides or {})
    setups: list[MethodSetup] = []
    for i, item in enumerate(cfg.methods):
        at = f"{where}: methods[{i}]"
        if isinstance(item, Mapping) and "method" in item:
            try:
                entry = MethodEntry.model_validate(dict(item))
            except ValidationError as exc:
                raise ExperimentError(format_validation_error(exc, at, "method entry",
                                                              MethodEntry)) from None
        else:
            entry = MethodEntry(method=item)
        try:
            m = get_method(entry.method)
        except (ValueError, TypeError) as exc:
            raise ExperimentError(f"{at}: {entry.method!r}: {exc}") from None
        source = _method_source(m, entry.source, cfg, at)
        label = entry.label or m.label
        if entry.label is None and source not in (None, AGENT_SOURCE):
            label += f"@{source}"
        if entry.label is None and isinstance(entry.preset, str):
            label += f"/{entry.preset}"
        if not label.strip() or label in ("aggregate", "pretrain"):
            raise ExperimentError(f"{at}: label {label!r} is reserved or empty; choose "
                                  "another label")
        if label in [s.label for s in setups]:
            raise ExperimentError(f"{at}: {item!r} duplicates method {label!r}; each method "
                                  "appears once (give it a distinct `label`)")
        overrides = {**base_overrides, **(entry.overrides or {})}
        resolved = target_preset
        if entry.preset is not None or entry.overrides:
            try:
                resolved = resolved_preset(target, cfg.algo, entry.preset or cfg.preset,
                                           overrides)
            except (PresetError, ValueError) as exc:
                raise ExperimentError(f"{at} ({label}): preset: {exc}") from None
        setups.append(MethodSetup(
            label=label, spec=m.spec(), source=source,
            preset=entry.preset if entry.preset is not None else cfg.preset,
            overrides=overrides or None, resolved=resolved))
    labels = [s.label for s in setups]
    if "scratch" not in labels:
        setups.insert(0, MethodSetup("scratch", "scratch", None, cfg.preset,
                                     base_overrides or None, resolved=target_preset))
    elif labels[0] != "scratch":
        setups.insert(0, setups.pop(labels.index("scratch")))
    return setups


def _method_source(method: Any, name: str | None, cfg: ExperimentConfig,
                   at: str) -> str | None:
    """The source a method starts from, checked against what the method can use."""
    if not method.moves_weights:
        if name is not None:
            raise ExperimentError(f"{at}: source: {name!r}, but method {method.label!r} takes "
                                  "no source (remove `source`)")
        return None
    name = AGENT_SOURCE if name is None else name
    if name != AGENT_SOURCE and name not in cfg.sources:
        known = [AGENT_SOURCE, *cfg.sources]
        raise ExperimentError(f"{at}: source: {name!r} is not a source; choose from {known} "
                              "(define named sources under `sources`)")
    if name != AGENT_SOURCE and isinstance(cfg.sources[name], AgentSourceSpec):
        return name
    if name != AGENT_SOURCE and tuple(getattr(method, "roles", ())) != ("encoder",):
        raise ExperimentError(
            f"{at}: source {name!r} is an encoder checkpoint; method {method.label!r} needs "
            "more than an encoder. Use frozen or {partial: {roles: [encoder]}}")
    return name


def _pix(pixels: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"pixels": dict(pixels)} if pixels else {}
