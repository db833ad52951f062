"""Source checkpoints that are safe to share: safetensors weights plus a JSON card.

A checkpoint is a folder::

    model.safetensors    the SB3 policy's ``state_dict`` under SB3's own parameter names
    extras.safetensors   optional: everything else that is a tensor (normalization
                         statistics, SAC's entropy coefficient), under documented names
    card.json            what the weights are: algorithm, network, spaces, env, seed,
                         training steps, evaluation return, versions, sha256 of each file

Loading verifies every file's sha256 against the card and parses the weights with
``safetensors``, which never unpickles: a pickle disguised as ``model.safetensors`` is
refused and its payload never runs. Saving is atomic: files go to a temporary folder that
is renamed into place only once complete, so a crash never leaves a checkpoint that loads.

This module knows safetensors, torch and JSON only.

Example:
    >>> import torch, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "ckpt"
    >>> _ = save_checkpoint(d, {"w": torch.zeros(2)}, {"algo": "ppo"})
    >>> load_checkpoint(d).tensors["w"].tolist()
    [0.0, 0.0]
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from rltransfer._io import disk_full_names, json_text, write_in_halves

MODEL_FILE = "model.safetensors"
EXTRAS_FILE = "extras.safetensors"
CARD_FILE = "card.json"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, tampered with, or not in rltransfer's format."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: weights, extra tensors and the card that describes them."""

    path: Path | None
    tensors: dict[str, torch.Tensor]
    card: dict[str, Any]
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def algo(self) -> str:
        """The algorithm that produced the weights (``"ppo"``, ``"sac"``, ...)."""
        return str(self.card.get("algo", ""))

    def observation_space(self) -> spaces.Space:
        """The observation space the weights were trained on, rebuilt from the card."""
        return space_from_json(self.card["observation_space"])

    def action_space(self) -> spaces.Space:
        """The action space the weights were trained on, rebuilt from the card."""
        return space_from_json(self.card["action_space"])


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(
    out: str | os.PathLike,
    tensors: Mapping[str, torch.Tensor],
    card: Mapping[str, Any],
    *,
    extras: Mapping[str, torch.Tensor] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a checkpoint folder atomically and return its path.

    ``card`` is completed with the format version and the sha256 of every file. An existing
    folder at ``out`` is an error unless ``overwrite`` is true; then it is replaced only
    after the new checkpoint is complete.

    A full disk raises :class:`rltransfer._io.DiskFullError` ("disk full while writing
    <out>/<file>"); the temporary folder is removed and an existing checkpoint at ``out``
    stays as it was.

    Example:
        >>> path = save_checkpoint("ckpt", {"w": torch.ones(2, 3)}, {"algo": "ppo"})
        >>> sorted(p.name for p in path.iterdir())
        ['card.json', 'model.safetensors']
        >>> load_checkpoint(path).tensors["w"].shape
        torch.Size([2, 3])
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise CheckpointError(f"checkpoint folder {str(out)!r} already exists; pass overwrite=True")
    with disk_full_names(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        files = {MODEL_FILE: _contiguous(tensors)}
        if extras:
            files[EXTRAS_FILE] = _contiguous(extras)
        hashes = {}
        for name, data in files.items():
            blob = safetensors_bytes(data)
            _write_synced(tmp / name, blob, shown=out / name)
            hashes[name] = hashlib.sha256(blob).hexdigest()
        full_card = {**dict(card), "format_version": FORMAT_VERSION}
        full_card["files"] = hashes
        full_card["sha256"] = hashes[MODEL_FILE]
        _write_synced(tmp / CARD_FILE, json_text(full_card).encode("utf-8"),
                      shown=out / CARD_FILE)
        with disk_full_names(out):
            _fsync_dir(tmp)
            if out.exists():
                old = out.with_name(f".{out.name}.old-{os.getpid()}")
                os.replace(out, old)
                os.replace(tmp, out)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, out)
            _fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write_synced(path: Path, data: bytes, *, shown: Path) -> None:
    """Write ``data`` to a new file and fsync it; a full disk names ``shown``."""
    with disk_full_names(shown), open(path, "wb") as fh:
        write_in_halves(fh, data)
        fh.flush()
        os.fsync(fh.fileno())


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load and verify a checkpoint folder; never unpickles anything.

    Raises :class:`CheckpointError` when the folder or card is missing, the card is not a
    JSON object or names a file other than ``model.safetensors``/``extras.safetensors``, a
    file is a symbolic link that leads out of the folder, a file's sha256 differs from the
    card, or a weights file is not valid safetensors. The safetensors header is checked
    before anything is read into memory: its length must fit the file (and
    :data:`MAX_HEADER_BYTES`), each tensor's dtype must be one of :data:`DTYPES` and its
    byte range must lie inside the file and match its shape.

    Example:
        >>> path = save_checkpoint("ckpt", {"w": torch.zeros(4)}, {"algo": "sac"})
        >>> ckpt = load_checkpoint(path)
        >>> ckpt.algo, sorted(ckpt.card["files"])  # each file with its sha256
        ('sac', ['model.safetensors'])
        >>> _ = (path / "model.safetensors").write_bytes(b"not weights")
        >>> load_checkpoint(path)
        Traceback (most recent call last):
        ...
        rltransfer.checkpoint.CheckpointError: checkpoint 'ckpt': sha256 of model.safetensors
        is ..., the card says ...; the file was modified or corrupted, refusing to load it
    """
    path = Path(path)
    if isinstance(path, Path) and path.name == MODEL_FILE:
        path = path.parent
    card_path = path / CARD_FILE
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {str(path)!r} is not a folder (expected {CARD_FILE} "
                              f"and {MODEL_FILE} inside)")
    if not card_path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} has no {CARD_FILE}; an incomplete or "
                              "foreign folder is never loaded")
    _inside(path, CARD_FILE)
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{card_path}: not valid JSON ({exc}); the card is the JSON "
                              "object rltransfer wrote") from None
    except OSError as exc:
        raise CheckpointError(f"{card_path}: cannot be read ({exc.strerror or exc})") from None
    if not isinstance(card, dict):
        raise CheckpointError(f"{card_path}: a card is a JSON object (algo, spaces, files, "
                              f"...), not {_json_kind(card)}")
    hashes = card.get("files") or {MODEL_FILE: card.get("sha256")}
    if not isinstance(hashes, dict):
        raise CheckpointError(f"{card_path}: 'files' is {_json_kind(hashes)}; expected an object "
                              f"of file name to sha256, e.g. {{{MODEL_FILE!r}: '<hex>'}}")
    if not isinstance(hashes.get(MODEL_FILE), str) or not hashes[MODEL_FILE]:
        raise CheckpointError(f"{card_path}: card lists no sha256 for {MODEL_FILE}")
    for name, expected in hashes.items():
        if name not in (MODEL_FILE, EXTRAS_FILE):
            raise CheckpointError(f"{card_path}: 'files' names {name!r}; a checkpoint holds "
                                  f"only {MODEL_FILE} and {EXTRAS_FILE}")
        if not isinstance(expected, str):
            raise CheckpointError(f"{card_path}: files.{name} is {_json_kind(expected)}, "
                                  "expected a sha256 hex string")
    loaded: dict[str, dict[str, torch.Tensor]] = {}
    for name, expected in hashes.items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"checkpoint {str(path)!r}: {name} is missing")
        _inside(path, name)
        actual = sha256_file(file)
        if actual != expected:
            raise CheckpointError(
                f"checkpoint {str(path)!r}: sha256 of {name} is {actual}, the card says "
                f"{expected}; the file was modified or corrupted, refusing to load it"
            )
        check_safetensors_header(file, where=f"checkpoint {str(path)!r}: {name}")
        try:
            loaded[name] = load_file(str(file), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(
                f"checkpoint {str(path)!r}: {name} is not a valid safetensors file ({exc}); "
                "rltransfer never unpickles weights, so pickled files are refused"
            ) from None
    return Checkpoint(
        path=path, tensors=loaded[MODEL_FILE], card=card, extras=loaded.get(EXTRAS_FILE, {})
    )


MAX_HEADER_BYTES = 100 * 1024 * 1024
"""The largest safetensors header accepted (the safetensors library's own limit)."""
DTYPES = {"BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2, "I32": 4,
          "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
"""safetensors dtypes a checkpoint may hold, with their size in bytes."""


def check_safetensors_header(file: str | os.PathLike, *, where: str | None = None) -> None:
    """Refuse a file whose safetensors header is absurd, before anything is allocated.

    Reads the 8-byte length and then the header only (never more than
    :data:`MAX_HEADER_BYTES`): the header must fit in the file and be a JSON object; every
    tensor's dtype must be one of :data:`DTYPES`, its shape a list of whole numbers >= 0,
    and its ``data_offsets`` a byte range inside the file whose length is the shape's size
    times the dtype's.
    """
    file = Path(file)
    where = where or str(file)

    def bad(problem: str) -> CheckpointError:
        return CheckpointError(f"{where} is not a valid safetensors file: {problem}")

    size = file.stat().st_size
    with open(file, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise bad(f"{size} bytes, too short (8-byte header length, header, data)")
        n = int.from_bytes(head, "little")
        if n > MAX_HEADER_BYTES or n > size - 8:
            raise bad(f"its header claims {n} bytes, but the file has {size} (accepted: at "
                      f"most the file size - 8 and {MAX_HEADER_BYTES}); a truncated file, or a "
                      "pickle in disguise (rltransfer never unpickles weights)")
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise bad("its header is not JSON (rltransfer never unpickles weights)") from None
    if not isinstance(header, dict):
        raise bad(f"its header is {_json_kind(header)}, not a JSON object")
    data_size = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            raise bad(f"tensor {name!r}: header entry is {_json_kind(info)}, not an object")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in DTYPES:
            raise bad(f"tensor {name!r} has dtype {dtype!r}; accepted: {', '.join(DTYPES)}")
        if (not isinstance(shape, list)
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                           for d in shape)):
            raise bad(f"tensor {name!r} has shape {shape!r}; expected a list of whole "
                      "numbers >= 0")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise bad(f"tensor {name!r} has data_offsets {offsets!r}; expected [begin, end]")
        begin, end = offsets
        need = DTYPES[dtype] * int(np.prod(shape, dtype=object))
        if not 0 <= begin <= end <= data_size or end - begin != need:
            raise bad(f"tensor {name!r} ({dtype}, shape {shape}) claims bytes [{begin}, {end}) "
                      f"of a {data_size}-byte data section; its shape needs {need} bytes "
                      "inside it (a truncated or forged file)")


def _inside(folder: Path, name: str) -> None:
    """Refuse ``folder/name`` when it is a symbolic link that leads out of ``folder``."""
    file = folder / name
    if not file.is_symlink():
        return
    target = file.resolve()
    if not target.is_relative_to(folder.resolve()):
        raise CheckpointError(f"checkpoint {str(folder)!r}: {name} is a symbolic link to "
                              f"{str(target)!r}, outside the checkpoint folder; only files "
                              "inside it are read")


def _json_kind(value: Any) -> str:
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return f"{kinds.get(type(value), type(value).__name__)} ({_short(value)})"


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- spaces as JSON


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """Describe a Gymnasium space in JSON, precisely enough to rebuild and compare it."""
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": str(space.dtype),
            "low": _compact(space.low),
            "high": _compact(space.high),
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist()}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_json(v) for k, v in space.spaces.items()}}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_json(s) for s in space.spaces]}
    raise CheckpointError(f"space {space!r} of type {type(space).__name__} cannot be stored; "
                          "supported: Box, Discrete, MultiDiscrete, MultiBinary, Dict, Tuple")


def space_from_json(data: Mapping[str, Any]) -> spaces.Space:
    """Rebuild a space written by :func:`space_to_json`.

    Raises :class:`CheckpointError` for anything that does not describe a space.
    """
    try:
        return _space_from_json(data)
    except CheckpointError:
        raise
    except Exception as exc:
        first = (str(exc).splitlines() or [""])[0]
        raise CheckpointError(f"space {_short(data)} in the card is not a valid space "
                              f"({type(exc).__name__}: {first})") from None


def _space_from_json(data: Mapping[str, Any]) -> spaces.Space:
    if not isinstance(data, Mapping):
        raise CheckpointError(f"space {_short(data)} in the card is not an object")
    kind = data.get("type")
    if kind == "Box":
        shape = tuple(data["shape"])
        dtype = np.dtype(data["dtype"])
        return spaces.Box(_expand(data["low"], shape, dtype), _expand(data["high"], shape, dtype),
                          shape=shape, dtype=dtype)
    if kind == "Discrete":
        return spaces.Discrete(data["n"], start=data.get("start", 0))
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(data["nvec"])
    if kind == "MultiBinary":
        return spaces.MultiBinary(data["n"])
    if kind == "Dict":
        return spaces.Dict({k: _space_from_json(v) for k, v in data["spaces"].items()})
    if kind == "Tuple":
        return spaces.Tuple([_space_from_json(v) for v in data["spaces"]])
    raise CheckpointError(f"unknown space type {kind!r} in card")


def spaces_equal(a: spaces.Space, b: spaces.Space) -> bool:
    """True when two spaces have the same JSON description (type, shape, dtype, bounds)."""
    return space_to_json(a) == space_to_json(b)


# --------------------------------------------------------------------------- helpers


def _compact(arr: np.ndarray) -> Any:
    """A Box bound as one number when uniform (image spaces), else a nested list."""
    flat = np.asarray(arr).ravel()
    if flat.size and np.all(flat == flat[0]):
        return _json_number(flat[0])
    return [_json_number(x) for x in flat.tolist()] if arr.ndim == 1 else np.asarray(arr).tolist()


def _json_number(x: Any) -> Any:
    x = float(x) if isinstance(x, np.floating | float) else int(x)
    if isinstance(x, float) and not np.isfinite(x):
        return "inf" if x > 0 else "-inf"
    return x


def _expand(value: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    def conv(v: Any) -> Any:
        if isinstance(v, list):
            return [conv(u) for u in v]
        return float(v) if isinstance(v, str) else v

    arr = np.asarray(conv(value), dtype=np.float64)
    return np.broadcast_to(arr, shape).astype(dtype)


def _contiguous(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
