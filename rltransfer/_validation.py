"""One way to turn a pydantic ``ValidationError`` into lines a user can act on.

Each line names the field, the value and what is accepted; an unknown field gets a "did you
mean" and the list of accepted fields of the model it sits in. Presets, experiment files and
env catalogue entries all report their errors through :func:`error_lines`, and read
their files through :func:`read_yaml`. Depends on pydantic
and the standard library only.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError


def error_lines(exc: ValidationError, *models: type[BaseModel]) -> list[str]:
    """One message per error: ``field: problem`` with the value and what is accepted.

    ``models``: the models that may have been validated; the one ``exc`` names (its title)
    lets unknown fields list the accepted ones.
    """
    model = next((m for m in models if m.__name__ == exc.title), None)
    lines = []
    for err in exc.errors():
        loc = _location(err)
        field = ".".join(str(p) for p in loc) or "(root)"
        if err["type"] == "extra_forbidden":
            allowed = _allowed(model, loc[:-1]) if model is not None else []
            hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            msg = f"{field}: unknown field" + (f" (did you mean {hint[0]!r}?)" if hint else "")
            if allowed:
                msg += f"; accepted fields: {', '.join(allowed)}"
        elif err["type"] == "missing":
            msg = f"{field}: required field missing"
        else:
            msg = f"{field}: value {err.get('input')!r}: {err['msg']}"
            accepted = _accepted(err)
            if accepted and accepted not in err["msg"]:
                msg += f"; accepted: {accepted}"
        lines.append(msg)
    return list(dict.fromkeys(lines))


def format_validation_error(exc: ValidationError, where: str, what: str,
                            *models: type[BaseModel]) -> str:
    """One error: ``<where>: <field>: <problem>``, one line. Several: ``<where>: invalid
    <what>`` followed by :func:`error_lines` as a bulleted list."""
    lines = error_lines(exc, *models)
    if len(lines) == 1:
        return f"{where}: {lines[0]}"
    return "\n".join([f"{where}: invalid {what}", *(f"  - {m}" for m in lines)])


def _location(err: Mapping[str, Any]) -> list[Any]:
    """The error's location without pydantic's union-member tags (``int``, ``list[int]``).

    The first part is a field of the model and, for an unknown field, the last part is the
    user's key: those stay whatever they are called (a key may well be ``"int"`` or ``"["``).
    """
    loc = list(err["loc"])
    if len(loc) <= 1:
        return loc
    keep_last = err["type"] == "extra_forbidden"
    middle = loc[1:-1] if keep_last else loc[1:]
    kept = [p for p in middle if not _is_union_tag(p)]
    return [loc[0], *kept, *([loc[-1]] if keep_last else [])]


UNION_TAGS: set[str] = set()
"""Tags of discriminated unions (``pydantic.Tag``) that models declare, kept out of error
locations like the member types of plain unions."""


def _is_union_tag(part: Any) -> bool:
    # pydantic puts the union member's type in the location ("int", "list[int]", ...)
    return isinstance(part, str) and ("[" in part or part in ("int", "str", "float", "bool")
                                      or part in UNION_TAGS)


def _allowed(model: type[BaseModel], loc: list[Any]) -> list[str]:
    for part in loc:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None)
        sub = next((a for a in getattr(ann, "__args__", (ann,))
                    if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if sub is None:
            return []
        model = sub
    return sorted(model.model_fields)


def _accepted(err: Mapping[str, Any]) -> str:
    ctx = err.get("ctx") or {}
    if "expected" in ctx:
        return str(ctx["expected"])
    for key, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if key in ctx:
            return f"a number {sign} {ctx[key]}"
    return ""


def read_yaml(path: Path, error: type[Exception], what: str) -> Any:
    """The data of a YAML file (``yaml.safe_load``: data only, nothing is run).

    Broken YAML, a file that is not UTF-8 text and an unreadable file all raise ``error``
    with one line naming the file; ``what`` says what the file should be ("an experiment
    file", "a preset file", ...).
    """
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start}); "
                    f"{what} is YAML text") from None
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or exc})") from None
