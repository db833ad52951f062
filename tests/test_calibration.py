"""The interval and verdict study: coverage, family-wise error and power on a pool."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rltransfer.metrics import calibration as cal

ROOT = Path(__file__).resolve().parents[1]


def _pool(rng: np.random.Generator, effect: float = 100.0, source_sd: float = 0.0) -> cal.Pool:
    """40 scratch runs and 40 method runs from 10 sources (4 each), normal AUCs."""
    groups = np.repeat(np.arange(10), 4)
    shift = rng.normal(0, source_sd, 10)[groups] if source_sd else 0.0
    s_auc = rng.normal(200, 30, 40)
    m_auc = rng.normal(200 + effect, 30, 40) + shift
    ttt = rng.uniform(10, 40, 40) * 1000
    return cal.Pool(s_auc, m_auc, ttt, ttt / 2, groups, np.zeros(40, bool), np.zeros(40, bool))


def test_per_seed_draws_take_distinct_sources(rng):
    pool = _pool(rng)
    for _ in range(50):
        idx = cal.draw_method(pool, 5, rng)
        assert len(set(pool.groups[idx])) == 5
        one = cal.draw_method(pool, 5, rng, design="one_source")
        assert len(set(pool.groups[one])) == 1
    with pytest.raises(ValueError, match="design"):
        cal.draw_method(pool, 5, rng, design="some")


def test_coverage_sees_what_one_source_hides(rng):
    """Where sources differ a lot, five seeds from one source cover the pool's difference far
    less often than five seeds from five sources: the reason for source_seeds."""
    pool = _pool(rng, source_sd=150.0)
    cov = cal.coverage(pool, draws=300, seed=1)
    per_seed = cov["per_seed"]["auc_difference"]["yuen_hsu"]["rate"]
    one = cov["one_source"]["auc_difference"]["yuen_hsu"]["rate"]
    assert per_seed >= 0.85 and one < per_seed - 0.2
    assert cov["values"]["speedup"] == pytest.approx(2.0, rel=0.2)


def test_holm_holds_the_family_wise_error_where_the_old_rule_does_not(rng):
    scratch = rng.normal(200, 30, 40)
    fwer = cal.family_error(scratch, family_sizes=(6,), draws=300, seed=2)["6"]
    assert fwer["holm_hsu"]["rate"] <= 0.05
    assert fwer["percentile"]["rate"] >= 0.15  # ~1 - 0.95^6 and more
    assert fwer["holm_hsu"]["rate"] <= fwer["holm_welch"]["rate"] <= fwer["yuen_welch"]["rate"]
    assert fwer["holm_hsu"]["mc_error"] == pytest.approx(
        np.sqrt(fwer["holm_hsu"]["rate"] * (1 - fwer["holm_hsu"]["rate"]) / 300))


def test_power_grows_with_seeds_and_falls_with_the_family(rng):
    pool = _pool(rng, effect=45.0)
    pw = cal.power(pool, seeds=(3, 10), family_sizes=(1, 12), draws=150, seed=3)
    assert pw["1"]["10"]["rate"] > pw["1"]["3"]["rate"]
    assert pw["12"]["10"]["rate"] <= pw["1"]["10"]["rate"]


def test_calibrate_command_writes_its_tables(tmp_path):
    folder = tmp_path / "cartpole_demo"
    shutil.copytree(ROOT / "docs" / "results" / "cartpole_demo", folder)
    out = subprocess.run([sys.executable, "-m", "rltransfer", "calibrate", str(folder),
                          "--draws", "8"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    doc = json.loads((folder / "calibration.json").read_text())
    assert doc["pool"]["n_scratch"] == 5 and doc["settings"]["draws"] == 8
    md = (folder / "calibration.md").read_text()
    assert "## Coverage" in md and "Holm" in md and md in out.stdout
    bad = subprocess.run([sys.executable, "-m", "rltransfer", "calibrate", str(folder),
                          "--method", "kickstart"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "'kickstart'" in bad.stderr and "Traceback" not in bad.stderr
