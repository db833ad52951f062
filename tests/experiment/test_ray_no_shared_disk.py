"""The Ray backend on a cluster whose nodes share no disk with the driver (issue #14.5).

Two Ray nodes are started with ``ray start``, each in its own mount namespace where a fresh
tmpfs hides the driver's folder (its output folder and its source cache): whatever a node
writes to the driver's paths lands in its own tmpfs and never reaches the driver. Each node
works in its own folder (``RLTRANSFER_WORKDIR``). The experiment must still finish with every
run folder and TensorBoard run on the driver, the source shipped to the nodes through Ray.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rltransfer import rundir
from rltransfer.experiment import load_experiment, make_plan

pytest.importorskip("ray")


def _can_hide_folders() -> bool:
    if shutil.which("unshare") is None or not sys.platform.startswith("linux"):
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs none /mnt"],
                           capture_output=True)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not _can_hide_folders(),
                                reason="needs `unshare -m` and tmpfs mounts (root, Linux)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(log: Path, text: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Wait until ``ray start`` wrote ``text`` to its log (minutes on a loaded machine)."""
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        assert proc.poll() is None, f"ray start exited:\n{log.read_text(errors='replace')}"
        assert time.monotonic() < deadline, f"ray start is slow:\n{log.read_text()}"
        time.sleep(0.5)


@pytest.fixture
def cluster(tmp_path):
    """Two one-CPU Ray nodes that cannot see ``tmp_path/driver``; yields (address, driver,
    env), ``env`` being what a driver process needs to join them.

    The cluster uses Ray's token authentication (on by default for ``ray start`` clusters
    since Ray 2.59), one token for the nodes and the driver. The driver runs in a process of
    its own, as a user's would: Ray keeps state across ``ray.init``/``shutdown`` in one
    process, and objects put by a driver that joined a second cluster were lost
    (``OwnerDiedError``) after the test process had used a local Ray before."""
    driver = tmp_path / "driver"
    driver.mkdir()
    port = _free_port()
    address = f"127.0.0.1:{port}"
    ray_exe = str(Path(sys.executable).with_name("ray"))
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
           "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
    procs = []
    try:
        for i in range(2):
            work = tmp_path / f"node{i}"
            work.mkdir()
            start = (f"--head --port={port} --include-dashboard=false" if i == 0
                     else f"--address={address}")
            cmd = (f"mount -t tmpfs none {driver} && "
                   f"exec {ray_exe} start --block --num-cpus=1 {start}")
            log = tmp_path / f"node{i}.log"
            with open(log, "wb") as fh:
                procs.append(subprocess.Popen(
                    ["unshare", "-m", "sh", "-c", cmd],
                    env={**env, "RLTRANSFER_WORKDIR": str(work)}, stdout=fh,
                    stderr=subprocess.STDOUT, start_new_session=True))
            _wait_for(log, "Ray runtime started", procs[-1])
        yield address, driver, env
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        # what Ray started outside those process groups, and its "current cluster" file, which
        # a later plain ray.init() would otherwise try to join
        subprocess.run([ray_exe, "stop", "--force"], capture_output=True, timeout=60)


def _run(path: Path, out: Path, cache: Path, address: str, env: dict[str, str]) -> str:
    """``rltransfer run`` on the cluster, in a driver process of its own; returns what it
    printed."""
    proc = subprocess.run(
        [sys.executable, "-m", "rltransfer", "run", str(path), "--out", str(out), "--cache",
         str(cache), "--backend", "ray", "--ray-address", address, "--no-progress"],
        env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_results_and_sources_travel_through_ray(cluster, tiny, tmp_path):
    address, driver, env = cluster
    path = driver / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny))
    out, cache = driver / "out", driver / "cache"
    said = _run(path, out, cache, address, env)
    assert "5 runs executed, 0 already finished" in said, said

    plan = make_plan(load_experiment(path), out, cache)
    for spec in plan.all_runs:  # every run folder whole on the driver
        run_dir = Path(spec.run_dir)
        assert rundir.run_status(run_dir) == "done", spec.run_id
        assert rundir.read_config(run_dir)["run_id"] == spec.run_id
        steps = rundir.read_curve(run_dir / rundir.CURVE)["step"]
        assert steps[0] == 0 and steps[-1] >= spec.steps
        assert (run_dir / rundir.CHECKPOINT / "card.json").is_file()
        assert list(Path(spec.tb_dir).glob("events.out.tfevents.*")), spec.tb_dir
        assert "rltransfer-" not in (run_dir / rundir.DONE).read_text()  # no node's path
    # the source trained on a node reached the driver's cache, whole
    from rltransfer.experiment.runner import cache_valid

    assert cache_valid(Path(plan.source.cache_dir))
    # the nodes cleaned their private folders
    for i in range(2):
        assert not list((tmp_path / f"node{i}").iterdir())

    again = _run(path, out, cache, address, env)
    assert "0 runs executed, 5 already finished (skipped)" in again, again
