"""A named registry of option models (pydantic classes with a ``name``), looked up from a
spec: a name, a one-key mapping ``{name: {options}}``, or an instance.

Transfer methods (:mod:`rltransfer.methods.registry`) and source-ranking probes
(:mod:`rltransfer.rank.registry`) are both such registries; this module is the one place
that turns a spec into an object and a bad spec into one line naming the kind, the name,
the option, the value and what is accepted.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails

from rltransfer._validation import error_lines

T = TypeVar("T", bound=BaseModel)


def type_name(annotation: Any) -> str:
    """A short readable name of a field's type (``tuple[str, ...]``, ``int | None``)."""
    text = getattr(annotation, "__name__", None) if not typing.get_args(annotation) else None
    if text is None:
        text = str(annotation).replace("typing.", "")
    return text.replace("NoneType", "None")


class Registry(Generic[T]):
    """Classes by their ``name`` (a ClassVar), in registration order.

    Args:
        kind: what an entry is called in messages (``"method"``, ``"probe"``).
        base: the class every entry subclasses.
        error: the exception raised for a bad spec.
        options_of: an instance's options as a mapping (to merge more options into).
    """

    def __init__(self, kind: str, base: type[T], error: type[Exception],
                 options_of: Callable[[T], Mapping[str, Any]]) -> None:
        self.kind, self.base, self.error, self.options_of = kind, base, error, options_of
        self.entries: dict[str, type[T]] = {}

    def register(self, cls: type[T]) -> type[T]:
        """Class decorator: add ``cls`` under ``cls.name``."""
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise TypeError(f"{cls!r} is not a subclass of "
                            f"{self.base.__module__}.{self.base.__name__}")
        name = getattr(cls, "name", "")
        if not name or not name.replace("_", "").isalnum():
            raise ValueError(f"{cls.__name__}.name={name!r}: give a short lowercase name")
        if name in self.entries and self.entries[name] is not cls:
            raise ValueError(f"a {self.kind} named {name!r} is already registered "
                             f"({self.entries[name].__module__})")
        self.entries[name] = cls
        return cls

    def get(self, spec: str | Mapping[str, Any] | T, **options: Any) -> T:
        """An entry from a name, a one-key mapping ``{name: {options}}``, or an instance;
        ``options`` are merged into the spec's."""
        kind = self.kind
        if isinstance(spec, self.base):
            if not options:
                return spec
            spec = {spec.name: {**self.options_of(spec), **options}}  # type: ignore[attr-defined]
            options = {}
        if isinstance(spec, Mapping):
            if len(spec) != 1:
                raise self.error(f"{kind} {dict(spec)!r}: write one {kind} as "
                                 "{name: {options}}")
            (name, opts), = spec.items()
            if opts is not None and not isinstance(opts, Mapping):
                raise self.error(f"{kind} {name!r}: options must be a mapping, got {opts!r}")
            options = {**(opts or {}), **options}
        else:
            name = spec  # type: ignore[assignment]  # anything else is reported below
        if not isinstance(name, str) or name not in self.entries:
            close = difflib.get_close_matches(str(name), list(self.entries), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise self.error(f"{kind} {name!r} is unknown{hint}; "
                             f"choose from {list(self.entries)}")
        cls = self.entries[name]
        try:
            return cls(**options)
        except ValidationError as exc:
            raise self.error(self.option_errors(name, cls, exc)) from None

    def option_errors(self, name: str, cls: type[T], exc: ValidationError) -> str:
        """One line: each bad option with its value and what is accepted, then every
        option."""
        parts = []
        for err in exc.errors():
            option = ".".join(str(p) for p in err["loc"]) or "(options)"
            if err["type"] == "extra_forbidden":
                close = difflib.get_close_matches(option, list(cls.model_fields), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                parts.append(f"{self.kind} {name!r} has no option {option!r}{hint}")
            else:
                one = InitErrorDetails(type=err["type"], loc=err["loc"], input=err["input"])
                if "ctx" in err:
                    one["ctx"] = err["ctx"]
                line = error_lines(ValidationError.from_exception_data(exc.title, [one]), cls)[0]
                parts.append(f"{self.kind} {name!r}: option {line}")
        return "; ".join(parts) + f"; options: {self.options_text(cls)}"

    @staticmethod
    def options_text(cls: type[T]) -> str:
        """Every option of ``cls`` with its type and default, or ``none``."""
        fields = cls.model_fields
        if not fields:
            return "none"
        return ", ".join(f"{n} ({type_name(f.annotation)}, default {f.default!r})"
                         for n, f in fields.items())

    def describe(self) -> list[dict[str, Any]]:
        """Every entry: name, one-line summary, algorithms, options (name, type, default,
        description)."""
        return [{"name": name, "summary": getattr(cls, "summary", ""),
                 "algos": list(getattr(cls, "algos", ())),
                 "options": [{"name": n, "type": type_name(f.annotation), "default": f.default,
                              "doc": " ".join((f.description or "").split())}
                             for n, f in cls.model_fields.items()]}
                for name, cls in self.entries.items()]
