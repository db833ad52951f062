"""Tests for rltransfer.metrics: known arrays give known numbers, verdicts follow the CIs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rltransfer import metrics as mt
from rltransfer.metrics import bootstrap as bs
from rltransfer.report import tables as rp_tables

STEPS = np.array([0.0, 10.0, 20.0])
REPS = 500  # enough for stable tests, fast


# --------------------------------------------------------------------------- per run


def test_jumpstart_is_first_evaluation():
    assert mt.jumpstart(STEPS, np.array([3.0, 5.0, 9.0])) == 3.0
    np.testing.assert_array_equal(mt.jumpstart(STEPS, np.array([[1.0, 2, 3], [4, 5, 6]])), [1, 4])


def test_final_return_means_last_k():
    r = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    assert mt.final_return(r) == pytest.approx(3.0)  # default k = 3: mean(2, 3, 4)
    assert mt.final_return(r, k=1) == 4.0
    assert mt.final_return(r[:2], k=3) == pytest.approx(0.5)  # fewer evals than k: all
    with pytest.raises(ValueError):
        mt.final_return(r, k=0)


def test_auc_is_normalized_trapezoid():
    # Area: 0.5 * 10 * (0 + 1) + 10 * 1 = 15, span 20 -> 0.75.
    assert mt.auc(STEPS, np.array([0.0, 1.0, 1.0])) == pytest.approx(0.75)
    # A constant curve's AUC is that constant, whatever the spacing.
    steps = np.array([0.0, 5.0, 40.0, 100.0])
    assert mt.auc(steps, np.full(4, -7.0)) == pytest.approx(-7.0)
    np.testing.assert_allclose(mt.auc(STEPS, np.array([[0.0, 1, 1], [2, 2, 2]])), [0.75, 2.0])
    assert mt.auc(np.array([0.0]), np.array([4.0])) == 4.0


def test_auc_rejects_mismatched_or_unsorted_steps():
    with pytest.raises(ValueError, match="evaluations"):
        mt.auc(STEPS, np.zeros(4))
    with pytest.raises(ValueError, match="increasing"):
        mt.auc(np.array([0.0, 20.0, 10.0]), np.zeros(3))


def test_time_to_threshold_reached_and_censored():
    steps = np.arange(6) * 10.0
    assert mt.time_to_threshold(steps, np.array([0.0, 5, 9, 5, 1, 0]), 5.0, 60) == (10.0, False)
    assert mt.time_to_threshold(steps, np.array([6.0, 5, 9, 0, 0, 0]), 5.0, 60) == (0.0, False)
    # Never sustained: censored at the budget (default: last step).
    assert mt.time_to_threshold(steps, np.array([0.0, 5, 0, 5, 5, 0]), 5.0, 60) == (60.0, True)
    assert mt.time_to_threshold(steps, np.array([0.0, 1, 2, 3, 4, 4]), 5.0) == (50.0, True)
    t, c = mt.time_to_threshold(steps, np.array([[0.0, 1, 2, 3, 4, 5], [0, 7, 0, 7, 7, 7]]), 5, 60)
    np.testing.assert_array_equal(t, [60.0, 30.0])
    np.testing.assert_array_equal(c, [True, False])


def test_time_to_threshold_jumpstart_then_collapse_is_not_zero():
    # The cartpole_demo finetune pattern: above 475 at step 0, collapses, recovers later.
    steps = np.arange(8) * 5000.0
    r = np.array([500.0, 480.0, 120.0, 90.0, 300.0, 476.0, 490.0, 500.0])
    assert mt.time_to_threshold(steps, r, 475.0) == (25000.0, False)  # default sustain 3
    assert mt.time_to_threshold(steps, r, 475.0, sustain=2) == (0.0, False)  # 500, 480
    assert mt.time_to_threshold(steps, r, 475.0, sustain=1) == (0.0, False)
    # Collapsing for good after the jumpstart: censored, not 0.
    gone = np.array([500.0, 480.0, 120.0, 90.0, 80.0, 70.0, 60.0, 50.0])
    assert mt.time_to_threshold(steps, gone, 475.0) == (35000.0, True)
    out = mt.per_run_metrics(steps, np.vstack([r, gone]), threshold=475.0)
    np.testing.assert_array_equal(out["time_to_threshold"], [25000.0, 35000.0])
    np.testing.assert_array_equal(out["censored"], [False, True])


@pytest.mark.parametrize("sustain", [2, 3, 4])
def test_time_to_threshold_needs_sustain_evaluations_left(sustain):
    steps = np.arange(6) * 10.0
    # Above the threshold only in the last sustain - 1 evaluations: censored.
    r = np.zeros(6)
    r[6 - (sustain - 1):] = 9.0
    assert mt.time_to_threshold(steps, r, 5.0, sustain=sustain) == (50.0, True)
    # One more evaluation above: exactly sustain of them, the run counts.
    r[6 - sustain] = 9.0
    assert mt.time_to_threshold(steps, r, 5.0, sustain=sustain) == (10.0 * (6 - sustain), False)
    # Fewer evaluations than sustain: nothing can count.
    assert mt.time_to_threshold(steps[:1], np.array([9.0]), 5.0, sustain=sustain) == (0.0, True)


def test_time_to_threshold_evaluations_after_the_budget_do_not_count():
    steps = np.arange(6) * 10.0
    r = np.array([0.0, 0, 9, 9, 9, 9])
    assert mt.time_to_threshold(steps, r, 5.0, budget=50) == (20.0, False)
    assert mt.time_to_threshold(steps, r, 5.0, budget=35) == (35.0, True)  # 20, 30 only
    assert mt.time_to_threshold(steps, r, 5.0, budget=40) == (20.0, False)


def test_time_to_threshold_sustain_1_is_the_first_crossing(rng):
    steps = np.arange(12) * 7.0
    r = rng.normal(0.0, 1.0, (50, 12))
    hit = r >= 0.8
    old = np.where(hit.any(axis=1), steps[np.argmax(hit, axis=1)], 100.0)
    t, c = mt.time_to_threshold(steps, r, 0.8, budget=100, sustain=1)
    np.testing.assert_array_equal(t, old)
    np.testing.assert_array_equal(c, ~hit.any(axis=1))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, None])
def test_time_to_threshold_rejects_bad_sustain(bad):
    with pytest.raises(ValueError, match="sustain"):
        mt.time_to_threshold(STEPS, np.zeros(3), 1.0, sustain=bad)


@pytest.mark.parametrize("name", ["", ".per_run", ".bootstrap", ".compare"])
def test_module_doctests(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"rltransfer.metrics{name}"))
    assert result.failed == 0
    assert result.attempted >= {"": 10, ".per_run": 2}.get(name, 0)


# --------------------------------------------------------------------------- aggregates


def test_iqm_known_values():
    assert mt.iqm(np.arange(1.0, 9.0)) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert mt.iqm(np.array([1.0, 2.0, 3.0, 100.0])) == pytest.approx(2.5)  # outlier trimmed
    assert mt.iqm(np.array([7.0])) == 7.0
    assert mt.iqm(np.array([1.0, 3.0])) == 2.0


def test_bootstrap_reproducible_and_covers_point(rng):
    x = rng.normal(size=(8, 1))
    a = mt.bootstrap_ci(bs.IQM, x, reps=REPS, seed=3)
    b = mt.bootstrap_ci(bs.IQM, x, reps=REPS, seed=3)
    c = mt.bootstrap_ci(bs.IQM, x, reps=REPS, seed=4)
    assert a[1][0] == b[1][0] and a[2][0] == b[2][0]
    assert (a[1][0], a[2][0]) != (c[1][0], c[2][0])
    assert a[1][0] <= a[0][0] <= a[2][0]


def test_bootstrap_leaves_global_rng_alone():
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    mt.bootstrap_ci(bs.IQM_DIFF, np.ones((3, 1)), np.zeros((4, 1)), reps=50, seed=0)
    assert np.random.rand() == expected


_SHIM_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    try:
        from rliable import library  # noqa: F401
    except Exception:
        # arch < 8 breaks on pandas >= 3: adapt deprecate_kwarg to arch's old call.
        import pandas.util._decorators as d
        orig = d.deprecate_kwarg
        def shim(*a, **k):
            if a and isinstance(a[0], str):
                return orig(FutureWarning, *a, **k)
            return orig(*a, **k)
        d.deprecate_kwarg = shim
        for m in [m for m in sys.modules if m == "arch" or m.startswith("arch.")]:
            del sys.modules[m]
        try:
            from rliable import library  # noqa: F401
        except Exception:
            print(json.dumps("unavailable")); sys.exit(0)
    from rltransfer import metrics as mt
    from rltransfer.metrics import bootstrap as bs
    rng = np.random.default_rng(1)
    x, y, z = rng.normal(size=(5, 1)), rng.normal(size=(5, 1)), rng.normal(size=(3, 1))
    c = rng.normal(size=(4, 6))
    cases = [(bs.IQM, (x,)), (bs.IQM_DIFF, (x, y)), (bs.IQM_DIFF, (x, z)),
             (bs.POI, (x, y)), (bs.iqm_ratio(-3.0), (x, z)), (bs.IQM_CURVE, (c,))]
    same = []
    for stat, s in cases:
        a = mt.bootstrap_ci(stat, *s, reps=100, seed=7, backend="rliable")
        b = mt.bootstrap_ci(stat, *s, reps=100, seed=7, backend="builtin")
        same.append(all(np.allclose(u, v) for u, v in zip(a[:3], b[:3])))
    print(json.dumps(same))
    """
)


def test_builtin_bootstrap_matches_rliable_in_process(rng):
    """The fallback draws the same resamples as rliable, so both give identical CIs."""
    if not mt.rliable_available():
        pytest.skip("rliable.library cannot be imported here (arch < 8 with pandas >= 3)")
    x, y = rng.normal(size=(5, 1)), rng.normal(size=(3, 1))
    for stat, s in [(bs.IQM, (x,)), (bs.IQM_DIFF, (x, y)), (bs.POI, (x, y))]:
        a = mt.bootstrap_ci(stat, *s, reps=100, seed=7, backend="rliable")
        b = mt.bootstrap_ci(stat, *s, reps=100, seed=7, backend="builtin")
        assert all(np.allclose(u, v) for u, v in zip(a[:3], b[:3], strict=True))


def test_rliable_backend_takes_any_callable(rng):
    """A plain rliable-style statistic (not a ``Stat``) runs on the rliable backend."""
    if not mt.rliable_available():
        pytest.skip("rliable.library cannot be imported here (arch < 8 with pandas >= 3)")
    x = rng.normal(size=(5, 1))
    point, low, high, used = mt.bootstrap_ci(lambda s: np.array([s.mean()]), x, reps=50,
                                             backend="rliable")
    assert used == "rliable" and low[0] <= point[0] <= high[0]
    with pytest.raises(TypeError, match="builtin"):
        mt.bootstrap_ci(lambda s: np.array([s.mean()]), x, reps=50, backend="builtin")


@pytest.mark.expensive
def test_builtin_bootstrap_matches_rliable_with_pandas_shim():
    """Same check in a subprocess that patches pandas so arch < 8 imports (slow: imports)."""
    proc = subprocess.run(
        [sys.executable, "-c", _SHIM_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result == "unavailable":
        pytest.skip("rliable.library cannot be imported here, even with the pandas shim")
    assert result == [True] * 6


# --------------------------------------------------------------------------- verdict


@pytest.mark.parametrize(
    ("low", "high", "hib", "expected"),
    [
        (1.0, 2.0, True, "positive"),
        (-2.0, -1.0, True, "negative"),
        (-1.0, 1.0, True, "inconclusive"),
        (0.0, 1.0, True, "inconclusive"),  # touching 0 is not "entirely above"
        (None, 1.0, True, "inconclusive"),
        (float("nan"), 1.0, True, "inconclusive"),
        (1.0, 2.0, False, "negative"),  # e.g. time to threshold: higher is worse
        (-2.0, -1.0, False, "positive"),
    ],
)
def test_verdict_rule(low, high, hib, expected):
    assert mt.verdict(low, high, higher_is_better=hib) == expected


# --------------------------------------------------------------------------- compute


def _curves(rng, n_seeds=5, n_evals=11, offset=0.0, noise=10.0):
    base = np.linspace(20.0, 400.0, n_evals)
    return base[None] + offset + rng.normal(0.0, noise, (n_seeds, n_evals))


@pytest.fixture
def experiment(rng):
    steps = np.arange(11) * 1000.0
    scratch = _curves(rng)
    return steps, {
        "scratch": scratch,
        "better": scratch + 100.0,
        "worse": scratch - 100.0,
        "same": scratch.copy(),
    }


def test_compute_verdicts(experiment):
    steps, results = experiment
    out = mt.compute(results, steps, threshold=300.0, seed=0, reps=REPS)
    methods = out["methods"]
    assert methods["better"]["verdict"] == "positive"
    assert methods["worse"]["verdict"] == "negative"
    assert methods["same"]["verdict"] == "inconclusive"
    assert "verdict" not in methods["scratch"]
    assert methods["better"]["difference"]["auc"]["iqm"] == pytest.approx(100.0)
    assert methods["better"]["probability_of_improvement"]["value"] == 1.0
    assert methods["worse"]["probability_of_improvement"]["value"] == 0.0
    assert methods["same"]["probability_of_improvement"]["value"] == 0.5
    assert out["primary_metric"] == "auc"
    json.dumps(out, allow_nan=False)  # strictly JSON-able


def test_compute_values_match_per_run_functions(experiment):
    steps, results = experiment
    out = mt.compute(results, steps, threshold=300.0, seed=0, reps=REPS)
    s = results["scratch"]
    m = out["methods"]["scratch"]["metrics"]
    assert m["auc"]["iqm"] == pytest.approx(mt.iqm(mt.auc(steps, s)))
    assert m["jumpstart"]["iqm"] == pytest.approx(mt.iqm(s[:, 0]))
    assert m["final_return"]["iqm"] == pytest.approx(mt.iqm(s[:, -3:].mean(axis=1)))
    for e in out["methods"].values():
        for v in e["metrics"].values():
            assert v["low"] <= v["iqm"] <= v["high"]


def test_compute_is_reproducible(experiment):
    steps, results = experiment
    a = mt.compute(results, steps, threshold=300.0, seed=5, reps=REPS)
    b = mt.compute(results, steps, threshold=300.0, seed=5, reps=REPS)
    assert a == b


def test_transfer_ratio_uses_shift_by_min_return(rng):
    # Pendulum-like negative returns: better method must still have ratio > 1.
    steps = np.arange(6) * 100.0
    scratch = np.linspace(-1500, -600, 6)[None] + rng.normal(0, 5, (4, 6))
    results = {"scratch": scratch, "finetune": scratch + 300.0}
    out = mt.compute(results, steps, seed=0, reps=REPS)
    ref = out["reference_return"]
    assert ref == pytest.approx(scratch.min())
    expected = (mt.iqm(mt.auc(steps, scratch + 300)) - ref) / (mt.iqm(mt.auc(steps, scratch)) - ref)
    ratio = out["methods"]["finetune"]["transfer_ratio"]
    assert ratio["value"] == pytest.approx(expected)
    assert ratio["value"] > 1 and ratio["low"] > 1
    assert "time_to_threshold" not in out["methods"]["finetune"]["metrics"]  # no threshold


def test_time_to_threshold_censoring_and_speedup():
    steps = np.array([0.0, 10.0, 20.0, 30.0, 40.0])
    fast = np.array([[0, 5, 5, 5, 0], [0, 5, 5, 5, 5], [0, 0, 5, 5, 5]], dtype=float)
    slow = np.array([[0, 0, 5, 5, 5], [0, 0, 0, 5, 5], [0, 0, 0, 0, 0]], dtype=float)
    out = mt.compute({"scratch": slow, "fast": fast}, steps, threshold=5.0, budget=100, reps=REPS)
    assert out["sustain"] == 3
    t_slow = out["methods"]["scratch"]["metrics"]["time_to_threshold"]
    assert t_slow["censored"] == 2
    assert t_slow["iqm"] == pytest.approx((20 + 100 + 100) / 3)
    fast_e = out["methods"]["fast"]
    assert fast_e["metrics"]["time_to_threshold"]["censored"] == 0
    assert fast_e["time_to_threshold_speedup"]["value"] == pytest.approx((220 / 3) / (40 / 3))
    assert "time_to_threshold_ratio" not in fast_e
    assert fast_e["difference"]["time_to_threshold"]["iqm"] < 0
    [note] = [n for n in fast_e["notes"] if "censored" in n]
    assert "2/3 seeds of scratch" in note and "speed-up is a lower bound" in note
    # A censored method makes the speed-up an upper bound.
    back = mt.compute({"scratch": fast, "slow": slow}, steps, threshold=5.0, budget=100,
                      reps=REPS)["methods"]["slow"]
    assert back["time_to_threshold_speedup"]["value"] == pytest.approx((40 / 3) / (220 / 3))
    assert any("2/3 seeds of this method" in n and "upper bound" in n for n in back["notes"])


def test_speedup_hand_computed():
    steps = np.arange(9) * 10_000.0
    scratch = np.zeros((3, 9))
    for i, start in enumerate([3, 4, 5]):  # 30k, 40k, 50k: IQM of 3 seeds = mean = 40k
        scratch[i, start:] = 500.0
    method = np.zeros((3, 9))
    method[:, 1:] = 500.0  # 10k for every seed
    method[0, 0] = 500.0  # a jumpstart that collapses at the next evaluation: still 10k
    method[0, 1] = 0.0
    method[0, 2:] = 500.0
    out = mt.compute({"scratch": scratch, "ft": method}, steps, threshold=475.0, reps=REPS)
    np.testing.assert_array_equal(out["methods"]["ft"]["per_seed"]["time_to_threshold"],
                                  [20_000.0, 10_000.0, 10_000.0])
    method[0] = 0.0
    method[0, 1:] = 500.0
    out = mt.compute({"scratch": scratch, "ft": method}, steps, threshold=475.0, reps=REPS)
    s = out["methods"]["ft"]["time_to_threshold_speedup"]
    assert s["value"] == pytest.approx(4.0)
    assert s["low"] <= 4.0 <= s["high"] and s["kind"] == "estimate"
    boot = mt.compute({"scratch": scratch, "ft": method}, steps, threshold=475.0, reps=REPS,
                      interval="percentile")["methods"]["ft"]["time_to_threshold_speedup"]
    assert boot["low"] >= 3.0 and boot["high"] <= 5.0  # resampled 30k..50k over 10k
    assert not any("censored" in n or "evaluation interval" in n
                   for n in out["methods"]["ft"]["notes"])


def test_speedup_floors_a_time_of_zero_at_one_evaluation_interval():
    steps = np.arange(9) * 10_000.0
    scratch = np.zeros((3, 9))
    scratch[:, 4:] = 500.0  # 40k
    method = np.full((3, 9), 500.0)  # above the threshold from step 0 on: time 0
    out = mt.compute({"scratch": scratch, "ft": method}, steps, threshold=475.0, reps=REPS)
    e = out["methods"]["ft"]
    assert e["per_seed"]["time_to_threshold"] == [0.0, 0.0, 0.0]  # the raw times stay 0
    assert e["metrics"]["time_to_threshold"]["iqm"] == 0.0
    s = e["time_to_threshold_speedup"]
    # 40k / 10k (one interval), not 40k / 0; reported as "at step 0", a lower bound
    assert s["value"] == pytest.approx(4.0) and s["bound"] == pytest.approx(4.0)
    assert s["kind"] == "at_step_0"
    assert rp_tables.fmt_speedup(s) == "at step 0 (≥ 4.0×)"
    note = next(n for n in e["notes"] if "evaluation interval" in n)
    assert "3/3 seeds of this method" in note and "10000 steps" in note
    assert "lower bound" in note
    json.dumps(out, allow_nan=False)


@pytest.mark.parametrize("n_seeds", [1, 2])
def test_compute_few_seeds_falls_back(rng, n_seeds):
    steps = np.arange(5) * 10.0
    scratch = _curves(rng, n_seeds=n_seeds, n_evals=5)
    out = mt.compute({"scratch": scratch, "ft": scratch + 1000}, steps, threshold=100, reps=REPS)
    e = out["methods"]["ft"]
    assert e["verdict"] == "inconclusive"  # by rule, despite a huge gap
    assert any("fewer than 3 seeds" in n for n in out["notes"])
    if n_seeds == 1:
        assert e["metrics"]["auc"]["low"] is None and e["difference"]["auc"]["low"] is None
        assert e["metrics"]["auc"]["iqm"] == pytest.approx(float(mt.auc(steps, scratch[0] + 1000)))
    else:
        assert e["difference"]["auc"]["low"] is not None
    json.dumps(out, allow_nan=False)


def test_compute_without_baseline(rng):
    steps = np.arange(5) * 10.0
    out = mt.compute({"finetune": _curves(rng, n_evals=5)}, steps, reps=REPS)
    assert "verdict" not in out["methods"]["finetune"]
    assert any("baseline" in n for n in out["notes"])


def test_iqm_curve_band(rng):
    r = _curves(rng, n_seeds=6, n_evals=4)
    center, low, high = mt.iqm_curve(r, reps=REPS, seed=0)
    assert center.shape == low.shape == high.shape == (4,)
    assert np.all(low <= center) and np.all(center <= high)
    one = mt.iqm_curve(r[:1])
    np.testing.assert_array_equal(one[0], r[0])
