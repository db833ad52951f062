"""Does a probe predict? Judging the probes of ``rltransfer rank`` on an experiment (#15.2).

Three layers: the statistics on hand-made numbers (Spearman, the bootstrap over seeds,
regret); the real gains read from synthetic experiment folders (runs written by hand, so
the pairing by seed is checked on known AUCs) and the refusals of folders that cannot be
judged; and one real, tiny experiment (three CartPole sources of 512 steps, finetune from
each, 2 seeds of 1,024 steps) ranked end to end, its probe rows reused on a rerun. Env steps
are counted where CartPole takes them.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from helpers import PPO_TINY
from scipy import stats

import rltransfer as rlt
from rltransfer import rundir
from rltransfer.cli import main
from rltransfer.metrics.prediction import predicts, resampled_means, spearman
from rltransfer.rank import RankError, rank_experiment
from rltransfer.report import build_report, load_results
from rltransfer.report.prediction import (
    BEST_OTHER,
    PredictionError,
    evaluate_probes,
    measured_gains,
    render_prediction,
)

TARGET = {"length": 1.0, "masspole": 0.5}


@pytest.fixture
def steps(monkeypatch):
    """Steps CartPole took (any member)."""
    count = {"n": 0}
    original = CartPoleEnv.step

    def counted(self, action):
        count["n"] += 1
        return original(self, action)

    monkeypatch.setattr(CartPoleEnv, "step", counted)
    return count


# ---------------------------------------------------------------------- statistics


def test_spearman_is_scipys_with_ties_sharing_their_mean_rank(rng):
    for _ in range(100):
        n = int(rng.integers(3, 9))
        x = rng.integers(0, 4, n).astype(float)  # many ties
        y = rng.integers(0, 4, n).astype(float)
        ours = spearman(x, y)
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            assert np.isnan(ours)
        else:
            assert ours == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_a_perfect_ranking_scores_one_with_a_ci_of_one_and_no_regret():
    gains = np.array([[1.0, 1.5, 0.8], [2.0, 2.4, 2.2], [3.0, 3.5, 2.9], [4.0, 4.1, 4.5]])
    p = predicts(np.array([-3.0, 0.0, 1.0, 7.0]), gains, reps=500, seed=0)
    assert (p["spearman"], p["low"], p["high"]) == (1.0, 1.0, 1.0)
    assert p["valid_reps"] == 500
    assert (p["pick"], p["best"], p["regret"], p["regret_fraction"]) == (3, 3, 0.0, 0.0)


def test_a_reversed_ranking_scores_minus_one_and_regrets_the_whole_spread():
    gains = np.array([[1.0, 1.5], [2.0, 2.4], [3.0, 3.5]])
    p = predicts(np.array([3.0, 2.0, 1.0]), gains, reps=500, seed=0)
    assert (p["spearman"], p["low"], p["high"]) == (-1.0, -1.0, -1.0)
    assert p["pick"] == 0 and p["best"] == 2
    assert p["regret"] == pytest.approx(3.25 - 1.25)
    assert p["regret_fraction"] == pytest.approx(2.0 / 3.25)


def test_the_seeds_are_resampled_together_for_every_candidate():
    """A seed whose scratch run was unlucky lifts every gain of that seed alike: resampling
    seeds jointly keeps the candidates' order, resampling each candidate alone would not."""
    luck = np.array([0.0, 50.0, -40.0, 90.0, 10.0])
    gains = np.array([1.0, 2.0, 3.0])[:, None] + luck[None, :]
    boot = resampled_means(gains, reps=300, seed=1)
    assert np.all(np.diff(boot, axis=0) == pytest.approx(1.0))
    p = predicts(np.array([1.0, 2.0, 3.0]), gains, reps=300, seed=1)
    assert (p["low"], p["high"]) == (1.0, 1.0)


def test_the_regret_fraction_is_undefined_when_no_candidate_helps():
    p = predicts(np.array([1.0, 2.0, 3.0]), np.array([[-1.0], [-5.0], [-9.0]]), reps=50)
    assert p["spearman"] == -1.0 and p["regret"] == 8.0 and p["regret_fraction"] is None


def test_the_bootstrap_is_seeded():
    gains = np.random.default_rng(3).normal(size=(5, 4))
    scores = np.arange(5.0)
    assert predicts(scores, gains, seed=7, reps=300) == predicts(scores, gains, seed=7, reps=300)


# ---------------------------------------------------------------------- synthetic folders

STEPS = [0, 500, 1000]


def _run(out, rid, method, seed, returns, spec=None, source=None, done=True):
    d = out / rundir.RUNS / rid
    rundir.write_config(d, {"run_id": rid, "kind": "transfer", "method": method,
                            "method_spec": spec or method, "seed": seed, "source_id": source})
    for step, r in zip(STEPS, returns, strict=True):
        rundir.append_curve(d / rundir.CURVE, {"step": step, "mean_return": r, "std_return": 0.0,
                                               "episodes": 2, "wall_time": 0.1})
    if done:
        rundir.write_done(d, {"wall_time": 1.0})


def _experiment(out, runs, sources=("a", "b", "c"), threshold=None):
    """An experiment folder: ``runs`` maps ``(label, seed)`` to a constant return (its AUC)
    or None (an unfinished run); a label ``m@src`` starts from source ``src``."""
    out.mkdir(parents=True)
    labels = list(dict.fromkeys(label for label, _ in runs))
    (out / rundir.EXPERIMENT).write_text(json.dumps({
        "name": out.name, "methods": labels, "seeds": [0, 1, 2], "steps": 1000,
        "eval": {"every": 500, "episodes": 2}, "threshold": threshold, "sustain": 1,
        "baseline": "scratch",
        "sources": {s: {"run_id": f"src{s}", "kind": "pretrain", "cache": None}
                    for s in sources},
        "config": {"target": {"env": "cartpole", "knobs": TARGET, "pixels": None},
                   "sources": {s: {"kind": "agent", "knobs": {"length": 0.5}}
                               for s in sources}}}))
    for i, ((label, seed), value) in enumerate(runs.items()):
        method, _, src = label.rpartition("@") if "@" in label else (label, "", "")
        returns = [0.0, 0.0, 0.0] if value is None else (
            value if isinstance(value, list) else [value] * 3)
        _run(out, f"r{i}", label, seed, returns, spec=method,
             source=f"src{src}" if src else None, done=value is not None)
    return out


def test_gains_are_differences_from_scratch_with_the_same_seed(tmp_path):
    out = _experiment(tmp_path / "e", {
        ("scratch", 0): 100.0, ("scratch", 1): 300.0,
        ("finetune@a", 0): 150.0, ("finetune@a", 1): 310.0,   # +50, +10
        ("finetune@b", 0): None, ("finetune@b", 1): 400.0,     # seed 0 unfinished: +100 only
        ("finetune@c", 0): 90.0, ("finetune@c", 1): 290.0,     # -10, -10
    })
    g = measured_gains(load_results(out))
    ft = g["groups"]["finetune"]
    assert g["candidates"] == ["a", "b", "c"] and ft["finetune"]
    assert ft["per_candidate"]["a"]["auc"] == {"per_seed": {"0": 50.0, "1": 10.0},
                                               "mean": 30.0}
    # paired with scratch's seed 1 (300), not with scratch's mean (200)
    assert ft["per_candidate"]["b"]["seeds"] == [1]
    assert ft["per_candidate"]["b"]["auc"]["mean"] == 100.0
    assert ft["per_candidate"]["c"]["auc"]["mean"] == -10.0


def test_time_to_threshold_gains_are_paired_too(tmp_path):
    out = _experiment(tmp_path / "e", {
        ("scratch", 0): [0.0, 0.0, 9.0], ("scratch", 1): [0.0, 9.0, 9.0],
        ("finetune@a", 0): [9.0, 9.0, 9.0], ("finetune@a", 1): [9.0, 9.0, 9.0],
        ("finetune@b", 0): [0.0, 9.0, 9.0], ("finetune@b", 1): [0.0, 0.0, 0.0],
        ("finetune@c", 0): [0.0, 0.0, 9.0], ("finetune@c", 1): [0.0, 9.0, 9.0],
    }, threshold=5.0)
    ft = measured_gains(load_results(out))["groups"]["finetune"]["per_candidate"]
    assert ft["a"]["ttt_saved"]["per_seed"] == {"0": 1000.0, "1": 500.0}
    assert ft["b"]["ttt_saved"]["per_seed"] == {"0": 500.0, "1": -500.0}  # seed 1 censored
    assert ft["b"]["censored"] == 1
    assert ft["c"]["ttt_saved"]["mean"] == 0.0 and ft["c"]["speedup"] == 1.0
    # a reaches it at step 0, counted as one evaluation interval (500): (1000 + 500) / 500
    assert ft["a"]["speedup"] == pytest.approx(1.5)


def _table(scores, cost=250):
    """A probe table as RankTable.to_dict writes it: probe -> {candidate: score}."""
    probes = list(scores)
    labels = sorted({c for s in scores.values() for c in s})
    rows = [{"label": c, "path": c, "algo": "ppo", "source": f"cartpole {c}", "status": "ok",
             "reason": "", "target_steps": cost, "source_steps": 0, "mean_rank": 1.0,
             "scores": {p: {"score": scores[p].get(c), "target_steps": cost, "source_steps": 0,
                            "note": "", "details": {}} for p in probes}} for c in labels]
    return {"target": "cartpole", "budget": cost, "seed": 0, "probes": probes, "specs": probes,
            "sort_by": probes[0], "cost": {**{p: {"target": cost, "source": 0} for p in probes},
                                           "total": {"target": cost, "source": 0}},
            "rows": rows}


def test_each_probe_is_judged_against_each_methods_gain_and_the_goal(tmp_path):
    runs = {("scratch", s): 100.0 for s in (0, 1)}
    for cand, ft, ks, cw in (("a", 110.0, 150.0, 120.0), ("b", 130.0, 120.0, 190.0),
                             ("c", 160.0, 101.0, 102.0), ("d", 105.0, 105.0, 105.0)):
        for s in (0, 1):
            runs[(f"finetune@{cand}", s)] = ft + s
            runs[(f"kickstart@{cand}", s)] = ks - s
            runs[(f"critic_warmup@10000@{cand}", s)] = cw
    out = _experiment(tmp_path / "e", runs, sources=("a", "b", "c", "d"))
    res = load_results(out)
    # 'good' orders the finetune gains exactly (c > b > a > d); 'bad' reverses them
    table = _table({"good": {"a": 2.0, "b": 3.0, "c": 4.0, "d": 1.0},
                    "bad": {"a": 3.0, "b": 2.0, "c": 1.0, "d": 4.0}}, cost=50)
    doc = evaluate_probes(res, table, reps=200)
    g = doc["gains"]
    assert list(g["groups"]) == ["finetune", "kickstart", "critic_warmup@10000"]
    assert g["best_other"] == {"a": "kickstart", "b": "critic_warmup@10000",
                               "c": "critic_warmup@10000", "d": "critic_warmup@10000"}
    by = {(e["probe"], e["gain"], e["metric"]): e for e in doc["predictions"]}
    good = by[("good", "finetune", "auc")]
    assert (good["spearman"], good["low"], good["high"], good["pick"], good["regret"]) == \
        (1.0, 1.0, 1.0, "c", 0.0)
    assert good["cost"] == {"target": 50, "source": 0, "fraction": 0.05}
    assert good["goal"]["met"] is True
    bad = by[("bad", "finetune", "auc")]
    assert bad["spearman"] == -1.0 and bad["pick"] == "d" and bad["best"] == "c"
    assert bad["regret"] == pytest.approx(60.5 - 5.5)
    assert bad["goal"]["met"] is False and any("ρ -1.00 < 0.8" in w for w in bad["goal"]["why"])
    best = by[("good", BEST_OTHER, "auc")]  # each candidate's best of the two other methods
    assert best["mean_gains"] == {"a": 49.5, "b": 90.0, "c": 2.0, "d": 5.0}
    assert best["pick"] == "c" and best["regret"] == pytest.approx(88.0)
    assert ("mean_rank", "finetune", "auc") in by
    text = render_prediction(doc)
    assert "| good | finetune | 4 | 1.00 [1.00, 1.00] | c (+60.5) | c (+60.5) |" in text
    assert "**good**: finetune: meets the goal" in text


def test_a_probe_over_the_cost_misses_the_goal_whatever_its_ranking(tmp_path):
    runs = {("scratch", 0): 0.0}
    runs.update({(f"finetune@{c}", 0): v for c, v in (("a", 1.0), ("b", 2.0), ("c", 3.0))})
    doc = evaluate_probes(load_results(_experiment(tmp_path / "e", runs)),
                          _table({"p": {"a": 1.0, "b": 2.0, "c": 3.0}}, cost=51), reps=50)
    e = doc["predictions"][0]
    assert e["spearman"] == 1.0 and e["goal"]["met"] is False
    assert "cost 5.1% of a run > 5%" in e["goal"]["why"]


@pytest.mark.parametrize(("runs", "sources", "words"), [
    ({("scratch", 0): 1.0}, (), "transfers from an agent source, so there is no candidate"),
    ({("finetune@a", 0): 1.0, ("finetune@b", 0): 1.0, ("finetune@c", 0): 1.0}, ("a", "b", "c"),
     "no finished scratch run"),
    ({("scratch", 0): 1.0, ("finetune@a", 0): 1.0, ("finetune@b", 0): 1.0,
      ("finetune@c", 0): None}, ("a", "b", "c"), "2 candidate(s) with a finished transfer run"),
])
def test_folders_that_cannot_be_judged_are_refused_before_any_step(tmp_path, steps, runs,
                                                                   sources, words):
    out = _experiment(tmp_path / "e", runs, sources=sources)
    with pytest.raises(PredictionError, match=re.escape(words)):
        rank_experiment(out, budget=100)
    assert steps["n"] == 0 and not (out / "rank.json").exists()


def test_the_command_line_refuses_bad_input_in_one_line(tmp_path, capsys):
    assert main(["rank", "--experiment", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not an experiment output folder" in err and len(err.splitlines()) == 1
    assert main(["rank", "--experiment", str(tmp_path), "--target", "cartpole"]) == 2
    assert "--target: --experiment takes the target" in capsys.readouterr().err
    assert main(["rank", "--target", "cartpole"]) == 2
    assert "--candidates required (or --experiment DIR)" in capsys.readouterr().err
    with pytest.raises(RankError, match="not an experiment output folder"):
        rank_experiment(tmp_path / "nowhere")


# ---------------------------------------------------------------------- a real experiment

SOURCES = {"short": {"length": 0.25}, "standard": {"length": 0.5}, "target": TARGET}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """Three CartPole sources (512 steps), finetune from each and scratch, 2 seeds of 1,024
    steps: run in this process, no report (the tests build it)."""
    root = tmp_path_factory.mktemp("rank_eval")
    result = rlt.run({
        "name": "tiny_rank", "pair": "cartpole/long-heavy-pole", "overrides": PPO_TINY,
        "sources": {n: {"kind": "agent", "knobs": k, "steps": 512, "overrides": PPO_TINY}
                    for n, k in SOURCES.items()},
        "methods": ["scratch", *({"method": "finetune", "source": n} for n in SOURCES)],
        "seeds": 2, "steps": 1024, "eval": {"every": 512, "episodes": 2}, "threshold": 100,
    }, out=root / "exp", cache=root / "cache", workers=0, progress=False, report=False)
    assert not result.failed
    return root / "exp"


def test_a_real_experiment_is_ranked_and_its_probe_rows_are_reused(experiment, steps,
                                                                    capsys):
    first = rank_experiment(experiment, budget=200, seed=0)
    # 3 candidates x (200 steps on the target + 200 on their own env), rollouts shared
    assert steps["n"] == 3 * (200 + 200)
    assert first.probed == ["short", "standard", "target"] and first.reused == []
    doc = json.loads((experiment / "rank.json").read_text())
    assert doc["gains"]["candidates"] == ["short", "standard", "target"]
    assert doc["probe_settings"]["budget"] == 200
    judged = {e["probe"] for e in doc["predictions"]
              if e["gain"] == "finetune" and e["metric"] == "auc"}
    assert judged == {"jumpstart", "value_consistency", "dynamics_gap", "state_overlap",
                      "mean_rank"}
    e = next(e for e in doc["predictions"] if e["probe"] == "jumpstart")
    assert e["cost"]["fraction"] == pytest.approx(200 / 1024)
    assert e["goal"]["met"] is False  # 19.5% of a run is over the goal's 5%
    md = (experiment / "rank.md").read_text()
    assert md.startswith("# Does a probe predict? tiny_rank")

    steps["n"] = 0
    again = rank_experiment(experiment, budget=200, seed=0)
    assert steps["n"] == 0 and again.reused == ["short", "standard", "target"]
    assert (experiment / "rank.md").read_text() == md
    # each candidate's own return is its card's evaluation, also where the probe row came
    # from a cache written before rows had it
    own = {}
    for r in again.table.rows:
        card = json.loads((experiment / r.path / "card.json").read_text())
        own[r.label] = card["evaluation"]["mean"]
        assert r.own_return == pytest.approx(own[r.label])
    assert "| candidate | source | own return |" in md
    cache = json.loads((experiment / "rank_probes.json").read_text())
    for entry in cache["entries"]:
        del entry["row"]["own_return"]
    (experiment / "rank_probes.json").write_text(json.dumps(cache))
    older = rank_experiment(experiment, budget=200, seed=0)
    assert steps["n"] == 0 and older.reused == ["short", "standard", "target"]
    assert {r.label: r.own_return for r in older.table.rows} == pytest.approx(own)
    assert (experiment / "rank.md").read_text() == md
    assert main(["rank", "--experiment", str(experiment), "--budget", "200",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert steps["n"] == 0 and "reused from rank_probes.json: short, standard, target" in out
    assert "Verdicts (AUC gain):" in out and "| jumpstart | finetune | 3 |" in out

    other = rank_experiment(experiment, budget=100, seed=0)  # another budget: probed anew
    assert steps["n"] == 3 * (100 + 100) and other.probed == ["short", "standard", "target"]


def test_the_report_rebuilds_rank_md_and_links_it_byte_for_byte(experiment):
    if not (experiment / "rank.json").exists():
        rank_experiment(experiment, budget=100, seed=0)
    build_report(experiment, reps=20, tensorboard=False)
    files = {n: (experiment / n).read_bytes() for n in ("rank.md", "rank.json", "report.md")}
    assert b"## Does a probe predict?" in files["report.md"]
    assert b"[rank.md](rank.md)" in files["report.md"]
    build_report(experiment, reps=20, tensorboard=False)
    assert {n: (experiment / n).read_bytes() for n in files} == files
