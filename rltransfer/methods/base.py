"""What every transfer method shares: the hooks, the log, the errors, the option types.

A method is a pydantic model (its options, typed and validated) with five hooks, each doing
nothing by default, called in this order by :func:`rltransfer.transfer`:

============  ===========================================  ==============================
hook          when                                          e.g.
============  ===========================================  ==============================
configure     before the agent is built: algorithm and      a rollout buffer that knows
              policy keyword arguments                      which steps a guide took
wrap_env      the *training* env (never the evaluation     the guide acts for the first
              env)                                          h steps of each episode
initialize    after the agent is built: copy, freeze, map   finetune, partial, frozen
              weights; returns a :class:`TransferLog`
callbacks     SB3 callbacks run by every ``learn()``        unfreeze at step k
loss_terms    terms added to the algorithm's update         kickstarting
============  ===========================================  ==============================

The source reaches a method as tensors (``ctx.source``, a checkpoint) and, for methods with
``needs_teacher``, as a frozen eval-mode policy on the target's spaces (``ctx.teacher``).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from rltransfer.checkpoint import Checkpoint
from rltransfer.roles import check_roles

__all__ = ["BuildSpec", "Method", "MethodContext", "OptionalRoles", "Roles", "TransferError",
           "TransferLog"]


class TransferError(ValueError):
    """A transfer that cannot be done as asked (shapes differ, wrong method options...)."""


@dataclasses.dataclass
class TransferLog:
    """What a method did: parameters moved, kept fresh, frozen, and shape mismatches."""

    method: str
    moved: list[str] = dataclasses.field(default_factory=list)
    fresh: list[str] = dataclasses.field(default_factory=list)
    frozen: list[str] = dataclasses.field(default_factory=list)
    reinit: list[tuple[str, str, tuple, tuple]] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    structure: dict[str, Any] | None = None
    """A change to the network's structure that a checkpoint must record to be reloaded
    (``progressive``'s columns); saved as the card's ``structure``."""

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


@dataclasses.dataclass
class BuildSpec:
    """What ``configure`` may change before the agent is built."""

    algo: str
    algo_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Keyword arguments for the learner (PPO/SAC) on top of the preset's."""
    preset: Any = None
    """The resolved preset (read-only: change ``algo_kwargs`` instead)."""


@dataclasses.dataclass
class MethodContext:
    """What a method gets besides the model: the source, as tensors and as a teacher."""

    source: Checkpoint | None
    on_mismatch: str = "error"
    teacher: Any = None
    """The source policy, frozen, in eval mode, on the target's spaces (``needs_teacher``);
    through an adapter, a :class:`rltransfer.methods.adapter.AdaptedTeacher`."""
    seed: int = 0
    adapter: Any = None
    """The :class:`rltransfer.envs.ResolvedAdapter` between source and target spaces, if
    any; ``source`` is then already in the target's shapes (its card's ``adapter`` says how)."""


def _as_tuple(value: Any) -> Any:
    if isinstance(value, str):
        return (value,)
    return tuple(value) if isinstance(value, list) else value


def _checked_roles(value: tuple[str, ...]) -> tuple[str, ...]:
    check_roles(value)
    return value


Roles = Annotated[tuple[str, ...], BeforeValidator(_as_tuple), AfterValidator(_checked_roles)]
"""A non-empty tuple of role names (a single string is accepted); see :mod:`rltransfer.roles`."""

OptionalRoles = Annotated[tuple[str, ...], BeforeValidator(_as_tuple),
                          AfterValidator(lambda v: _checked_roles(v) if v else v)]
"""Like :data:`Roles`, but empty is allowed (nothing moves)."""


class Method(BaseModel):
    """A transfer method: typed options plus the hooks it fills (see the module docstring).

    Subclasses set ``name`` and ``summary``, declare options as fields (each with a
    docstring: it is the help of ``rltransfer list methods``), register with
    :func:`rltransfer.methods.register_method`, and override the hooks they need.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    """One line for ``rltransfer list methods``."""
    algos: ClassVar[tuple[str, ...]] = ("ppo", "sac")
    """The algorithms the method works with."""
    needs_teacher: ClassVar[bool] = False
    """Whether the method uses the source as a policy (``ctx.teacher``)."""
    distils: ClassVar[bool] = False
    """Whether it asks the teacher about training minibatches (a loss term), not only about
    the env's current observations."""

    @property
    def moves_weights(self) -> bool:
        """Whether the method needs a source checkpoint."""
        return True

    @property
    def label(self) -> str:
        """The method's name in reports and TensorBoard."""
        return self.name

    def spec(self) -> str | dict[str, Any]:
        """The canonical spec: ``name``, or ``{name: {options that differ from defaults}}``."""
        opts = {}
        for field, info in type(self).model_fields.items():
            value = getattr(self, field)
            if value != info.default:
                opts[field] = list(value) if isinstance(value, tuple) else value
        return {self.name: opts} if opts else self.name

    # ------------------------------------------------------------------ the hooks

    def configure(self, build: BuildSpec) -> None:
        """Before the agent is built: change ``build.algo_kwargs``."""

    def wrap_env(self, venv: Any, model: Any, ctx: MethodContext) -> Any:
        """The training env the agent will use (``venv`` unchanged by default)."""
        return venv

    def initialize(self, model: Any, ctx: MethodContext) -> TransferLog:
        """After the agent is built: move, freeze or map weights."""
        log = TransferLog(self.label)
        log.fresh = list(model.policy.state_dict())
        return log

    def callbacks(self, model: Any, ctx: MethodContext) -> list[Any]:
        """SB3 callbacks every ``learn()`` of the model runs."""
        return []

    def loss_terms(self, model: Any, ctx: MethodContext) -> list[Any]:
        """Terms the algorithm's update adds (see :class:`rltransfer.sb3.LossTerm`)."""
        return []


def need_source(ctx: MethodContext, method: str) -> Checkpoint:
    """``ctx.source``, or a :class:`TransferError` saying the method needs one."""
    if ctx.source is None:
        raise TransferError(f"method {method!r} needs a source checkpoint; got none")
    return ctx.source
