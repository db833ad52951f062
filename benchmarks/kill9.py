"""kill -9, ten times: an experiment killed at random moments loses nothing and redoes nothing.

Runs a small real experiment (CartPole, standard pole -> long heavy pole, ``scratch``,
``finetune`` and ``partial[actor]``, 2 seeds, a few thousand steps, ``--workers 2``) with
``rltransfer run``, and ``kill -9``s it at ``--kills`` random moments, rerunning after each.
The moments are drawn with ``--seed`` and aimed at every phase: during the source
pretraining, while the source's checkpoint is written, during target runs, while a target
run's checkpoint or its ``done.json`` is written, and while the report is written. To land
kills in the middle of a write, the killed commands run with ``RLTRANSFER_SLOW_WRITES`` (every
atomic write pauses halfway through its temporary file). Most kills hit the whole process
group (driver and workers); every third kills the driver's pid alone, as a user would, and
the next command starts at once: its workers must die with it (checked), and the next driver
must not race them.

After each kill the folder is checked as the library would read it: every run with
``done.json`` has its config, a complete curve and a checkpoint whose sha256 verifies, and
``rltransfer.report.load_results`` reads it. At the end, against an uninterrupted run of the
same experiment in another folder:

- every run is done exactly once: each run of the plan has ``done.json``, and no
  ``done.json`` ever changed or vanished once it appeared (same inode, mtime and bytes at the
  end as when first seen), so no finished run was executed again; each rerun skipped exactly
  the runs that were finished when it started;
- the curves are bitwise identical (``step,mean_return,std_return,episodes`` of every row of
  every ``curve.csv``; ``wall_time`` differs by nature) and so are the weights (sha256 of
  every ``model.safetensors``);
- no half-written file was read as valid: the checks above after every kill.

Usage::

    python benchmarks/kill9.py                       # 10 kills, seed 0, a temporary folder
    python benchmarks/kill9.py --kills 20 --seed 3 --root /tmp/k9 --keep

Linux (it reads ``/proc`` to find the workers). Exit status 0 when every check holds.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

EXPERIMENT: dict[str, Any] = {
    "name": "kill9",
    "description": "benchmarks/kill9.py: killed at random moments, rerun after each",
    "pair": "cartpole/long-heavy-pole",
    "algo": "ppo",
    "overrides": {"n_envs": 1, "n_steps": 256, "batch_size": 64, "n_epochs": 4},
    "methods": ["scratch", "finetune", {"partial": {"roles": ["actor"]}}],
    "seeds": 2,
    "steps": 3000,
    "source_steps": 3000,
    "eval": {"every": 500, "episodes": 3},
    "threshold": 475,
}

# The phase each kill aims at, for 10 kills (more or fewer kills scale this pattern). The
# source phases come first (the source is trained once); target-run phases are shuffled.
PATTERN = ["pretrain", "pretrain", "source-checkpoint", "target", "target", "target",
           "checkpoint", "done.json", "report", "report"]
SOURCE_PHASES = ("pretrain", "source-checkpoint")
TARGET_PHASES = ("target", "checkpoint", "done.json")
SLOW_WRITES_S = 0.25
POLL_S = 0.01


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    p.add_argument("--root", default=None, help="work folder (default: a temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    args = p.parse_args(argv)
    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="rltransfer-kill9-"))
    try:
        figures = kill9(root, kills=args.kills, seed=args.seed, log=print)
    finally:
        if not args.keep and args.root is None:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    return 0 if figures["ok"] else 1


# --------------------------------------------------------------------------- the experiment


def kill9(root: Path, *, kills: int = 10, seed: int = 0, log=print,
          experiment: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the reference, then the killed sequence, then compare; returns the figures.

    ``figures["ok"]`` is true when every check held; ``figures["problems"]`` lists those
    that did not.
    """
    import yaml

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    exp_file = root / "kill9.yaml"
    exp_file.write_text(yaml.safe_dump(experiment or EXPERIMENT, sort_keys=False))
    ref_out, out = root / "reference" / "out", root / "killed" / "out"
    for d in (ref_out.parent, out.parent):
        shutil.rmtree(d, ignore_errors=True)
    problems: list[str] = []

    log("reference: an uninterrupted run")
    t0 = time.perf_counter()
    proc = _start(exp_file, ref_out, root / "reference.log", slow=False)
    if proc.wait() != 0:
        raise RuntimeError(f"the reference run failed; see {root / 'reference.log'}")
    ref_wall = time.perf_counter() - t0

    rng = random.Random(seed)
    phases = _phases(kills, rng)
    source_id = _plan(exp_file, out)["source"]
    cache = out.parent / ".sources"
    seen_done: dict[str, tuple[int, int, bytes]] = {}  # path -> (inode, mtime_ns, bytes)
    lost = 0                         # run attempts a kill interrupted
    kill_log: list[dict[str, Any]] = []
    invocations = []
    t0 = time.perf_counter()
    queue = list(phases)
    while queue and len(invocations) < 3 * kills + 5:
        phase = queue[0]
        driver_only = len(kill_log) % 3 == 1
        logfile = root / f"killed-{len(invocations):02d}.log"
        done_before = _n_done(out)
        aim = _reachable(phase, out, cache, source_id)
        proc = _start(exp_file, out, logfile, slow=True)
        hit = _wait_and_kill(proc, aim, out, cache, source_id, rng, driver_only)
        invocations.append({"log": logfile.name, "aimed": aim, "killed": hit is not None,
                            "done_before": done_before})
        if hit is None:  # the command finished before the moment came: run again
            log(f"  command {len(invocations)}: finished before a {aim} moment came")
            continue
        queue.pop(0)
        hit.update(aimed=phase if aim == phase else f"{phase} -> {aim}",
                   invocation=len(invocations))
        if driver_only:
            hit["workers_gone_s"] = _wait_gone(hit.pop("workers"), 10.0)
            if hit["workers_gone_s"] is None:
                problems.append(f"kill {len(kill_log) + 1}: workers outlived their driver")
        else:
            _wait_gone(hit.pop("workers"), 10.0)
        lost += len(hit["in_flight"])
        problems += [f"kill {len(kill_log) + 1}: {p}"
                     for p in _check_folder(out, cache, seen_done)]
        kill_log.append(hit)
        log(f"  kill {len(kill_log)}/{kills} at {hit['at_s']:.2f} s, aimed {hit['aimed']}, "
            f"landed in: {', '.join(hit['landed']) or '-'}"
            f"{' (driver pid alone)' if driver_only else ''}")
    log("final: a rerun to the end")
    final_log = root / f"killed-{len(invocations):02d}.log"
    done_before = _n_done(out)
    proc = _start(exp_file, out, final_log, slow=False)
    if proc.wait() != 0:
        problems.append(f"the final rerun exited {proc.returncode}; see {final_log}")
    invocations.append({"log": final_log.name, "aimed": None, "killed": False,
                        "done_before": done_before})
    killed_wall = time.perf_counter() - t0
    problems += _check_folder(out, cache, seen_done)

    # done exactly once; each command skipped exactly the runs finished when it started
    plan = _plan(exp_file, out)
    for rid in plan["runs"]:
        if not (out / "runs" / rid / "done.json").is_file():
            problems.append(f"run {rid} has no done.json at the end")
    rewritten = 0
    for path, (ino, mtime, data) in seen_done.items():
        st = os.stat(path)
        if (st.st_ino, st.st_mtime_ns) != (ino, mtime) or Path(path).read_bytes() != data:
            problems.append(f"{path} was rewritten after it first appeared")
            rewritten += 1
    skipped = []
    for inv in invocations:
        summary = _summary(root / inv["log"])
        skipped.append(None if summary is None else summary["skipped"])
        if summary is not None and summary["skipped"] != inv["done_before"]:
            problems.append(f"{inv['log']}: skipped {summary['skipped']} runs, "
                            f"{inv['done_before']} were finished")
    # bitwise: curves and weights
    compared = 0
    for rid in plan["runs"]:
        a, b = ref_out / "runs" / rid, out / "runs" / rid
        if _curve_text(a / "curve.csv") != _curve_text(b / "curve.csv"):
            problems.append(f"run {rid}: curve differs from the uninterrupted run's")
        if _weights(a) != _weights(b):
            problems.append(f"run {rid}: weights differ from the uninterrupted run's")
        compared += 1
    leftovers = _temp_files(out) + _temp_files(cache)
    leftovers += [str(p) for p in (out / "runs").glob(".*")]
    leftovers += [str(p) for p in cache.glob(".*") if p.is_dir()]
    for f in leftovers:
        if "/runs/" in f or "/.sources/" in f:
            problems.append(f"temporary file left in a run or the cache: {f}")

    by_phase: dict[str, int] = {}
    for k in kill_log:
        for ph in k["landed"]:
            by_phase[ph] = by_phase.get(ph, 0) + 1
    figures = {
        "ok": not problems,
        "problems": problems,
        "seed": seed,
        "kills": len(kill_log),
        "kills_of_the_driver_alone": sum(1 for k in kill_log if "workers_gone_s" in k),
        "kills_landed_in": by_phase,
        "kills_mid_write": sum(1 for k in kill_log if k["temp_files"]),
        "half_written_files_seen": sum(len(k["temp_files"]) for k in kill_log),
        "commands": len(invocations),
        "commands_finished_before_their_kill": sum(
            1 for i in invocations[:-1] if not i["killed"]),
        "runs": len(plan["runs"]),
        "run_attempts_killed_and_redone": lost,
        "finished_runs_redone": rewritten,
        "runs_compared_bitwise": compared,
        "skipped_per_rerun": skipped,
        "workers_gone_after_driver_kill_s": [k["workers_gone_s"] for k in kill_log
                                             if "workers_gone_s" in k],
        "temp_files_left_outside_runs": [f for f in leftovers
                                         if "/runs/" not in f and "/.sources/" not in f],
        "wall_s": {"reference": round(ref_wall, 1), "killed_sequence": round(killed_wall, 1)},
        "kill_log": kill_log,
    }
    return figures


def _n_done(out: Path) -> int:
    runs = out / "runs"
    return sum(1 for d in runs.glob("*/done.json")) if runs.is_dir() else 0


def _phases(kills: int, rng: random.Random) -> list[str]:
    phases = [PATTERN[i * len(PATTERN) // kills] if kills <= len(PATTERN)
              else PATTERN[int(i * len(PATTERN) / kills)] for i in range(kills)]
    middle = [i for i, p in enumerate(phases) if p in TARGET_PHASES]
    shuffled = [phases[i] for i in middle]
    rng.shuffle(shuffled)
    for i, p in zip(middle, shuffled, strict=True):
        phases[i] = p
    return phases


def _start(exp_file: Path, out: Path, logfile: Path, *, slow: bool) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("RLTRANSFER_SLOW_WRITES", None)
    if slow:
        env["RLTRANSFER_SLOW_WRITES"] = str(SLOW_WRITES_S)
    with open(logfile, "wb") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "rltransfer", "run", str(exp_file), "--out", str(out),
             "--workers", "2"], stdout=fh, stderr=subprocess.STDOUT, env=env,
            start_new_session=True)


def _plan(exp_file: Path, out: Path) -> dict[str, Any]:
    from rltransfer.experiment import load_experiment, make_plan

    plan = make_plan(load_experiment(exp_file), out)
    return {"source": plan.source.run_id if plan.source else None,
            "runs": [r.run_id for r in plan.all_runs],
            "transfer": [r.run_id for r in plan.runs]}


# --------------------------------------------------------------------------- moments


def _state(out: Path, cache: Path, source_id: str, since: float) -> dict[str, Any]:
    """What this command has in flight now, read from the files it wrote after ``since``
    (what an earlier, killed command left is not in flight)."""
    runs = out / "runs"
    run_dirs = [d for d in runs.iterdir() if d.is_dir()] if runs.is_dir() else []
    unfinished = [d for d in run_dirs if not d.name.startswith(".")
                  and not (d / "done.json").exists() and _newer(d / "curve.csv", since)]
    src_tmp = list(cache.glob(f".{source_id}.*/")) if cache.is_dir() else []
    temps = [*_temp_files(out), *(_temp_files(cache) if cache.is_dir() else [])]
    return {
        "source_done": (cache / source_id / "done.json").exists(),
        "source_training": [d for d in src_tmp if _newer(d / "curve.csv", since)],
        "unfinished": unfinished,
        "temps": [t for t in temps if _newer(Path(t), since)],
    }


def _newer(path: Path, since: float) -> bool:
    try:
        return path.stat().st_mtime >= since
    except OSError:
        return False


def _rows(curve: Path) -> int:
    try:
        return max(curve.read_bytes().count(b"\n") - 1, 0)
    except OSError:
        return 0


def _reachable(phase: str, out: Path, cache: Path, source_id: str) -> str:
    """The phase to aim at: ``phase``, or a later one if this folder is past it."""
    if phase in SOURCE_PHASES and (cache / source_id / "done.json").exists():
        phase = "target"
    if phase in TARGET_PHASES:
        runs = out / "runs"
        ids = _plan_ids(out)
        if ids and all((runs / r / "done.json").exists() for r in ids):
            phase = "report"
    return phase


def _plan_ids(out: Path) -> list[str]:
    try:
        return list(json.loads((out / "experiment.json").read_text())["runs"])
    except (OSError, ValueError, KeyError):
        return []


def _trigger(phase: str, st: dict[str, Any], source_id: str) -> tuple[bool, float]:
    """Whether the moment for ``phase`` has come, and the longest random delay after it."""
    temps = st["temps"]
    if phase == "pretrain":
        return any(_rows(d / "curve.csv") >= 2 for d in st["source_training"]), 2.0
    if phase == "source-checkpoint":
        return any(f"/.{source_id}." in t and ".checkpoint.tmp-" in t for t in temps), \
            SLOW_WRITES_S
    if phase == "target":  # once the source is done, so that its users run too
        return st["source_done"] and any(d.name != source_id and _rows(d / "curve.csv") >= 2
                                         for d in st["unfinished"]), 1.5
    if phase == "checkpoint":
        return any("/runs/" in t and ".checkpoint.tmp-" in t for t in temps), SLOW_WRITES_S
    if phase == "done.json":
        return any("/runs/" in t and "/.done.json." in t for t in temps), SLOW_WRITES_S
    if phase == "report":
        return any(re.search(r"/\.(metrics\.json|report\.md)\.[^/]*\.tmp$", t)
                   for t in temps), SLOW_WRITES_S
    raise ValueError(phase)


def _landed(st: dict[str, Any], source_id: str) -> list[str]:
    """The phases a kill at this state interrupted."""
    temps = st["temps"]
    landed = []
    if st["source_training"]:
        landed.append("pretrain")
    if any(f"/.{source_id}." in t and ".checkpoint.tmp-" in t for t in temps):
        landed.append("source-checkpoint")
    if any(d.name != source_id for d in st["unfinished"]):
        landed.append("target")
    if any("/runs/" in t and ".checkpoint.tmp-" in t for t in temps):
        landed.append("checkpoint")
    if any("/runs/" in t and "/.done.json." in t for t in temps):
        landed.append("done.json")
    if any(re.search(r"/\.(metrics\.json|report\.md)\.[^/]*\.tmp$", t) for t in temps):
        landed.append("report")
    return landed


def _wait_and_kill(proc: subprocess.Popen, phase: str, out: Path, cache: Path,
                   source_id: str, rng: random.Random, driver_only: bool
                   ) -> dict[str, Any] | None:
    """Wait for ``phase``, then a random delay, then SIGKILL; None if the command ended."""
    t0 = time.perf_counter()
    since = time.time() - 0.05
    kill_at = None
    while proc.poll() is None:
        now = time.perf_counter()
        if kill_at is None:
            try:
                fired, longest = _trigger(phase, _state(out, cache, source_id, since),
                                          source_id)
            except OSError:  # a file vanished while we looked
                fired = False
            if fired:
                kill_at = now + rng.uniform(0.0, longest)
        elif now >= kill_at:
            workers = _workers(proc.pid)
            st = _state(out, cache, source_id, since)
            if driver_only:
                os.kill(proc.pid, signal.SIGKILL)
            else:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return {"at_s": round(now - t0, 2), "landed": _landed(st, source_id),
                    "temp_files": [t.replace(str(out.parent), "") for t in st["temps"]],
                    "in_flight": sorted(str(d) for d in [*st["unfinished"],
                                                         *st["source_training"]]),
                    "workers": workers, "driver_only": driver_only}
        time.sleep(POLL_S)
    return None


def _workers(driver: int) -> list[int]:
    """The pool workers of ``driver`` (children whose command line is spawn_main)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != driver:
                continue
            cmd = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if b"spawn_main" in cmd:
            pids.append(int(stat.parent.name))
    return pids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _wait_gone(pids: list[int], timeout: float) -> float | None:
    """Seconds until every pid is gone (zombies count as gone); None after ``timeout``."""
    t0 = time.perf_counter()
    while any(_alive(p) for p in pids):
        if time.perf_counter() - t0 > timeout:
            return None
        time.sleep(0.005)
    return round(time.perf_counter() - t0, 3)


# --------------------------------------------------------------------------- checks


def _temp_files(folder: Path) -> list[str]:
    """Temporary files and folders of atomic writes under ``folder``."""
    if not folder.is_dir():
        return []
    pats = ("**/.*.tmp", "**/.*.tmp-*", "**/.*.tmp-*/*", "**/.curves.*.png")
    return sorted({str(p) for pat in pats for p in folder.glob(pat)})


def _check_folder(out: Path, cache: Path, seen_done: dict[str, tuple[int, int, bytes]]
                  ) -> list[str]:
    """Everything the library would trust is whole; returns the problems found."""
    from rltransfer.checkpoint import load_checkpoint

    problems = []
    exp: dict[str, Any] | None = None
    if (out / "experiment.json").exists():
        try:
            exp = json.loads((out / "experiment.json").read_text())
        except ValueError as exc:
            problems.append(f"experiment.json is not valid JSON: {exc}")
    folders = []
    if (out / "runs").is_dir():
        folders += [d for d in (out / "runs").iterdir() if not d.name.startswith(".")]
    if cache.is_dir():
        folders += [d for d in cache.iterdir() if d.is_dir() and not d.name.startswith(".")]
    for d in folders:
        done = d / "done.json"
        if not done.exists():
            continue  # unfinished: never trusted, redone by the next command
        try:
            data = done.read_bytes()
            json.loads(data)
            config = json.loads((d / "config.json").read_text())
            load_checkpoint(d / "checkpoint")
            rows = csv.DictReader((d / "curve.csv").read_text().splitlines())
            steps = [int(float(r["step"])) for r in rows]
        except Exception as exc:  # noqa: BLE001 - any failure is the finding
            problems.append(f"{d} has done.json but is not whole: {type(exc).__name__}: {exc}")
            continue
        total = int(config.get("steps") or 0)
        if not steps or steps[0] != 0 or steps[-1] < total or steps != sorted(set(steps)):
            problems.append(f"{d}: done.json, but its curve has steps {steps}")
        st = done.stat()
        key = str(done)
        if key not in seen_done:
            seen_done[key] = (st.st_ino, st.st_mtime_ns, data)
    if exp is not None:
        try:
            from rltransfer.report import load_results

            res = load_results(out)
            n_done = sum(1 for r in res.runs if r.status == "done")
            on_disk = sum(1 for d in folders if d.parent.name == "runs"
                          and (d / "done.json").exists())
            if n_done != on_disk:
                problems.append(f"load_results counts {n_done} finished runs, {on_disk} on disk")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"load_results failed: {type(exc).__name__}: {exc}")
    for name in ("metrics.json",):
        if (out / name).exists():
            try:
                json.loads((out / name).read_text())
            except ValueError as exc:
                problems.append(f"{name} is not valid JSON: {exc}")
    return problems


def _curve_text(path: Path) -> list[str]:
    """Every row of a curve without its wall_time column, as written (bitwise)."""
    lines = path.read_bytes().decode().splitlines()
    return [line.rsplit(",", 1)[0] for line in lines]


def _weights(run_dir: Path) -> dict[str, str]:
    card = json.loads((run_dir / "checkpoint" / "card.json").read_text())
    return card["files"]


def _summary(logfile: Path) -> dict[str, int] | None:
    """The driver's first line: runs planned, skipped, redone."""
    text = logfile.read_text(errors="replace")
    m = re.search(r": (\d+) runs; (\d+) already finished \(skipped\)"
                  r"(?:; (\d+) unfinished or failed, redone)?; (\d+) to run", text)
    if not m:
        return None
    return {"runs": int(m[1]), "skipped": int(m[2]), "redone": int(m[3] or 0),
            "to_run": int(m[4])}


if __name__ == "__main__":
    sys.exit(main())
