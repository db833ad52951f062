"""MuJoCo knobs: scale model fields by name, and scale limb geometry by editing the XML.

Model scales act on a freshly built env, so a scale is relative to the XML's value.
XML edits are written once to a cache file named by the content hash and handed to the env
as ``xml_file=`` (Gymnasium's MuJoCo v5 envs take it).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rltransfer.envs.errors import EnvError, unknown_name
from rltransfer.envs.knobs import Knob

# ``mujoco`` (and ``gymnasium.envs.mujoco``, which imports it) is imported inside the functions
# that use it: ``import mujoco`` reads MUJOCO_GL (the rendering backend) once, so it must not
# happen before the caller sets it, and every ``import rltransfer.envs`` would pay for it
# (0.18 s in a fresh process after ``import rltransfer.cli``).


def gym_assets_dir() -> Path:
    """The folder of Gymnasium's MuJoCo XML files."""
    import gymnasium.envs.mujoco as gm

    return Path(gm.__file__).parent / "assets"


def _names(model: Any, objtype: Any, count: int) -> list[str]:
    import mujoco

    out = []
    for i in range(count):
        name = mujoco.mj_id2name(model, objtype, i)
        if name:
            out.append(name)
    return out


def _ids(model: Any, objtype: Any, count: int, names: tuple[str, ...] | None, what: str) -> list:
    import mujoco

    if names is None:
        return list(range(count))
    ids = []
    for n in names:
        i = mujoco.mj_name2id(model, objtype, n)
        if i < 0:
            raise unknown_name(what, n, _names(model, objtype, count))
        ids.append(i)
    return ids


def _actuator_ids(model: Any, names: tuple[str, ...] | None) -> list[int]:
    """Actuators by actuator name, or by the name of the joint they drive."""
    import mujoco

    if names is None:
        return list(range(model.nu))
    ids: list[int] = []
    for n in names:
        a = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, n)
        if a >= 0:
            ids.append(a)
            continue
        j = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n)
        found = [
            a
            for a in range(model.nu)
            if model.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT
            and model.actuator_trnid[a, 0] == j
        ]
        if j < 0 or not found:
            known = _names(model, mujoco.mjtObj.mjOBJ_ACTUATOR, model.nu)
            known += _names(model, mujoco.mjtObj.mjOBJ_JOINT, model.njnt)
            raise unknown_name("actuator or actuated joint", n, known)
        ids.extend(found)
    return ids


def apply_model_knobs(env: gym.Env, knobs: Mapping[str, Knob], values: Mapping[str, Any]) -> None:
    """Scale MuJoCo model fields of ``env.unwrapped.model`` in place, then refresh constants."""
    if not values:
        return
    import mujoco

    base: Any = env.unwrapped  # a MujocoEnv (checked next): .model and .data
    model = getattr(base, "model", None)
    if not isinstance(model, mujoco.MjModel):
        raise EnvError(
            f"mujoco knobs {sorted(values)} need a MuJoCo env; {type(base).__name__} has no MjModel"
        )
    obj = mujoco.mjtObj
    for name, scale in values.items():
        knob = knobs[name]
        s = float(scale)
        if knob.field == "body_mass":
            ids = _ids(model, obj.mjOBJ_BODY, model.nbody, knob.names, "body")
            model.body_mass[ids] *= s
            model.body_inertia[ids] *= s  # same shape, denser material
        elif knob.field == "geom_friction":
            ids = _ids(model, obj.mjOBJ_GEOM, model.ngeom, knob.names, "geom")
            model.geom_friction[ids, 0] *= s
        elif knob.field == "dof_damping":
            joints = _ids(model, obj.mjOBJ_JOINT, model.njnt, knob.names, "joint")
            width = {0: 6, 1: 3, 2: 1, 3: 1}  # free, ball, slide, hinge
            for j in joints:
                start = model.jnt_dofadr[j]
                model.dof_damping[start : start + width[int(model.jnt_type[j])]] *= s
        elif knob.field == "actuator_gear":
            model.actuator_gear[_actuator_ids(model, knob.names), 0] *= s
        elif knob.field == "gravity":
            model.opt.gravity[:] = np.asarray(model.opt.gravity) * s
    mujoco.mj_setConst(model, base.data)


# ----------------------------------------------------------------------------- XML edits


def _floats(text: str) -> list[float]:
    return [float(t) for t in text.split()]


def _fmt(values: list[float]) -> str:
    return " ".join(repr(float(v)) for v in values)


def _scale_attr(el: ET.Element, attr: str, s: float, idx: slice | int = slice(None)) -> None:
    if attr not in el.attrib:
        return
    v = _floats(el.attrib[attr])
    if isinstance(idx, int):
        if idx < len(v):
            v[idx] *= s
    else:
        v = [x * s for x in v[idx]] + v[len(v[idx]) :]
    el.attrib[attr] = _fmt(v)


def _scale_body(body: ET.Element, s: float, mode: str) -> None:
    """Scale one body's own geometry about its origin (not its ``pos`` in the parent)."""
    for child in body:
        if child.tag == "geom":
            if mode == "radius":
                _scale_attr(child, "size", s, 0)
                continue
            _scale_attr(child, "fromto", s)
            _scale_attr(child, "pos", s)
            if "fromto" not in child.attrib and child.get("type") in ("capsule", "cylinder"):
                _scale_attr(child, "size", s, 1)  # half-length
        elif mode == "length" and child.tag in ("body", "joint", "site", "camera"):
            _scale_attr(child, "pos", s)


def _find_body(root: ET.Element, name: str) -> ET.Element:
    for body in root.iter("body"):
        if body.get("name") == name:
            return body
    known = [n for b in root.iter("body") if (n := b.get("name"))]
    raise unknown_name("body", name, known, where=" in the MuJoCo XML")


def edited_xml(xml_path: str | Path, knobs: Mapping[str, Knob], values: Mapping[str, Any]) -> Path:
    """Write the XML at ``xml_path`` with the xml knobs ``values`` applied; return its path.

    The file lives in a cache folder and is named by a hash of the source and the edits, so
    concurrent workers share it and a rebuild is free.

    Example:
        >>> from rltransfer.envs.knobs import Knob

# ``mujoco`` (and ``gymnasium.envs.mujoco``, which imports it) is imported inside the functions
# that use it: ``import mujoco`` reads MUJOCO_GL (the rendering backend) once, so it must not
# happen before the caller sets it, and every ``import rltransfer.envs`` would pay for it
# (0.18 s in a fresh process after ``import rltransfer.cli``).
        >>> k = {"reach": Knob(kind="xml", default=1.0, bodies=("body0",))}
        >>> edited_xml(gym_assets_dir() / "reacher.xml", k, {"reach": 1.5}).suffix
        '.xml'
    """
    src = Path(xml_path)
    if not src.is_absolute() and not src.exists():
        src = gym_assets_dir() / src
    if not src.exists():
        raise EnvError(f"MuJoCo XML file {str(xml_path)!r} not found")
    text = src.read_text()
    root = ET.fromstring(text)
    for name in sorted(values):
        knob, s = knobs[name], float(values[name])
        for body_name in knob.bodies or ():
            _scale_body(_find_body(root, body_name), s, knob.mode)
        if knob.lift is not None and knob.mode == "length":
            body = _find_body(root, knob.lift.body)
            dz = (s - 1.0) * knob.lift.by
            pos = _floats(body.get("pos", "0 0 0"))
            pos[2] += dz
            body.set("pos", _fmt(pos))
            for j in body.findall("joint"):  # slide joints measuring height keep reading it
                vertical = _floats(j.get("axis", "0 0 1")) == [0.0, 0.0, 1.0]
                if j.get("type") == "slide" and "ref" in j.attrib and vertical:
                    j.set("ref", repr(float(j.get("ref", "0")) + dz))
    compiler = root.find("compiler")
    if compiler is None:
        compiler = ET.SubElement(root, "compiler")
    for attr in ("meshdir", "texturedir"):
        if attr not in compiler.attrib:
            compiler.set(attr, str(src.parent))
    out_text = ET.tostring(root, encoding="unicode")
    digest = hashlib.sha256((str(src) + out_text).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("RLTRANSFER_CACHE", Path(tempfile.gettempdir()) / "rltransfer"))
    out = cache / "xml" / f"{src.stem}-{digest}.xml"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(out_text)
        os.replace(tmp, out)
    return out
