"""Ranking candidate sources with cheap probes (issue #15.1).

Candidates are built, not trained: a CartPole PPO policy whose action logits are a linear
controller (it balances every pole length tested here for 500 steps), the same controller
with its signs flipped (it falls in a few steps), and a critic that is the constant
``1 / (1 - gamma)``, exact while the pole never falls. Env steps are counted where the env
takes them (``CartPoleEnv.step``), not where the ranker says it took them.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from helpers import PPO_TINY, SAC_TINY

import rltransfer as rlt
from rltransfer.agent import build_agent, load_agent, make_eval_env, save_agent
from rltransfer.checkpoint import CheckpointError, save_checkpoint
from rltransfer.cli import main
from rltransfer.rank import PROBES, Probe, ProbeResult, RankError, RolloutRequest, get_probe
from rltransfer.rank.probes import td_targets
from rltransfer.training import evaluate

TARGET = {"length": 1.0, "masspole": 0.5}
LINEAR = {"n_envs": 1, "n_steps": 64, "batch_size": 64,
          "policy_kwargs": {"net_arch": {"pi": [], "vf": []}}}
GAINS = [0.1, 0.5, 10.0, 2.0]  # push right when x, x', theta, theta' say the pole leans right
GAMMA = 0.98  # the CartPole preset's


def _controller(out, knobs, sign=1.0, value=1.0 / (1.0 - GAMMA)):
    model = build_agent("cartpole", seed=0, knobs=knobs, overrides=LINEAR)
    with torch.no_grad():
        w = sign * torch.tensor(GAINS)
        model.policy.action_net.weight.copy_(torch.stack([-w, w]))
        model.policy.action_net.bias.zero_()
        model.policy.value_net.weight.zero_()
        model.policy.value_net.bias.fill_(value)
    assert model.gamma == GAMMA
    return save_agent(model, out)


@pytest.fixture(scope="module")
def cands(tmp_path_factory):
    """good: the controller, trained on the target; short: the same controller, trained on a
    short light pole; flipped: it pushes the wrong way; pendulum: spaces that do not fit."""
    root = tmp_path_factory.mktemp("candidates")
    paths = {
        "good": _controller(root / "good", TARGET),
        "short": _controller(root / "short", {"length": 0.3}),
        "flipped": _controller(root / "flipped", TARGET, sign=-1.0),
    }
    paths["pendulum"] = save_agent(build_agent("pendulum", algo="sac", seed=0,
                                               overrides=SAC_TINY), root / "pendulum")
    return {k: str(v) for k, v in paths.items()}


@pytest.fixture
def steps(monkeypatch):
    """Steps CartPole took, per (length, masspole)."""
    counts: dict[tuple[float, float], int] = {}
    original = CartPoleEnv.step

    def counted(self, action):
        key = (round(float(self.length), 3), round(float(self.masspole), 3))
        counts[key] = counts.get(key, 0) + 1
        return original(self, action)

    monkeypatch.setattr(CartPoleEnv, "step", counted)
    return counts


def _rank(cands, names, **kw):
    kw.setdefault("budget", 300)
    return rlt.rank_sources([cands[n] for n in names], "cartpole", knobs=TARGET, **kw)


def _row(table, path):
    return next(r for r in table.rows if r.path == path)


def test_every_probe_spends_at_most_the_budget_on_the_target(cands, steps):
    table = _rank(cands, ["good", "short"], budget=300)
    # one shared target rollout per candidate, and good's source rollout: its own env is
    # the target's member (reported as source steps, apart)
    assert steps[(1.0, 0.5)] == 2 * 300 + 300
    assert steps[(0.3, 0.1)] == 300  # short's own env
    for row in table.rows:
        assert row.target_steps == 300 and row.source_steps == 300
        assert set(row.scores) == set(PROBES)
        for s in row.scores.values():
            assert s.target_steps <= 300 and s.score is not None
        assert row.scores["jumpstart"].source_steps == 0
        assert row.scores["dynamics_gap"].source_steps == 300
    assert table.cost()["total"] == {"target": 300, "source": 300}


def test_probes_that_cannot_share_a_rollout_each_stay_within_the_budget(cands, steps):
    table = _rank(cands, ["good"], budget=200,
                  probes=["jumpstart", {"value_consistency": {"deterministic": False}}])
    row = table.rows[0]
    assert steps == {(1.0, 0.5): 400}  # two target rollouts, no source rollout
    assert row.target_steps == 400
    assert [s.target_steps for s in row.scores.values()] == [200, 200]


def test_a_candidates_own_return_comes_from_its_card(cands, tmp_path):
    """Not a probe: the card's evaluation on the candidate's own env, shown beside the probes
    (a source that never learned its own task can still start well on the target)."""
    model = build_agent("cartpole", seed=0, knobs={"length": 0.3}, overrides=LINEAR)
    weak = save_agent(model, tmp_path / "weak",
                      evaluation={"mean": 21.5, "std": 0.5, "episodes": 5, "step": 512})
    table = rlt.rank_sources([str(weak), cands["short"]], "cartpole", knobs=TARGET,
                             budget=100, probes=["jumpstart"])
    assert {r.label: r.own_return for r in table.rows} == {"weak": 21.5, "short": None}
    assert {r["label"]: r["own_return"] for r in table.to_dict()["rows"]} == \
        {"weak": 21.5, "short": None}
    head, *lines = [ln for ln in table.text().splitlines() if "weak" in ln or "own return" in ln]
    assert "own return" in head and "21.5" in lines[0]


def test_jumpstart_equals_an_independent_evaluation_with_the_same_seed(cands):
    for name in ("good", "flipped"):
        table = _rank(cands, [name], budget=1200, probes=["jumpstart"], seed=3)
        score = table.rows[0].scores["jumpstart"]
        episodes = score.details["episodes"]
        model = load_agent(cands[name], env="cartpole", knobs=TARGET, seed=0)
        expected = evaluate(model, make_eval_env(model), episodes=episodes, seed=3)
        assert episodes >= 2
        assert score.score == pytest.approx(expected["mean"], abs=1e-9)
    again = _rank(cands, ["flipped"], budget=1200, probes=["jumpstart"], seed=3)
    assert again.to_dict() == table.to_dict()  # the same seed, the same table


def test_a_candidate_that_balances_ranks_first_on_jumpstart(cands):
    table = _rank(cands, ["flipped", "good"], budget=1000, probes=["jumpstart"])
    assert table.best == "good" and table.ranking() == ["good", "flipped"]
    good, flipped = (_row(table, cands[n]).scores["jumpstart"] for n in ("good", "flipped"))
    assert good.score == 500.0 and good.details["episodes"] == 2
    assert flipped.score < 50


def test_one_episode_longer_than_the_budget_is_truncated_and_said(cands):
    score = _rank(cands, ["good"], budget=120, probes=["jumpstart"]).rows[0].scores["jumpstart"]
    assert score.score == 120.0 and score.details["episodes"] == 0
    assert "truncated at 120 steps" in score.note


def test_td_error_of_an_exact_critic_is_zero_and_of_a_wrong_one_as_computed_by_hand(cands):
    table = _rank(cands, ["good", "flipped"], budget=1000, probes=["value_consistency"])
    good = _row(table, cands["good"]).scores["value_consistency"]
    assert good.details["terminal"] == 0  # two episodes cut by the time limit: bootstrapped
    assert abs(good.score) < 1e-6
    bad = _row(table, cands["flipped"]).scores["value_consistency"]
    n, k, v = 1000, bad.details["terminal"], 1.0 / (1.0 - GAMMA)
    assert k >= 10
    # V = v everywhere: delta = 0 before a fall, 1 - v at it; targets v before, 1 at it
    expected = -math.sqrt(k * (1 - v) ** 2 / n) / math.sqrt(((n - k) * v ** 2 + k) / n)
    assert bad.score == pytest.approx(expected, rel=1e-5)


def test_td_targets_bootstrap_except_past_a_terminal_state():
    y = td_targets(np.array([1.0, 2.0, 3.0]), np.array([10.0, 10.0, 10.0]),
                   np.array([False, True, False]), gamma=0.5)
    assert y.tolist() == [6.0, 2.0, 8.0]


def test_dynamics_gap_prefers_the_source_with_the_target_dynamics(cands):
    table = _rank(cands, ["good", "short"], budget=600,
                  probes=["dynamics_gap", "state_overlap"])
    good, short = _row(table, cands["good"]), _row(table, cands["short"])
    gap = {n: r.scores["dynamics_gap"] for n, r in (("good", good), ("short", short))}
    assert gap["good"].score > -0.05  # the same env: little of the change left unexplained
    assert gap["short"].score < -1.0  # a short light pole: the model is worse than the mean
    assert gap["good"].details["source_unexplained"] < 0.01
    overlap = good.scores["state_overlap"]  # the same env and policy: one distribution
    assert -0.3 < overlap.score <= 0 and overlap.details["energy_coefficient"] == -overlap.score


def test_unusable_candidates_are_listed_with_the_reason(cands, tmp_path):
    encoder = save_checkpoint(tmp_path / "encoder", {"w": torch.zeros(2)}, {"kind": "encoder"})
    table = rlt.rank_sources([cands["pendulum"], encoder, cands["good"]], "cartpole",
                             knobs=TARGET, budget=50, probes=["jumpstart"])
    assert [r.status for r in table.rows] == ["ok", "unusable", "unusable"]
    pend = _row(table, cands["pendulum"])
    assert "observation space Box(3,) does not fit the target's Box(4,)" in pend.reason
    assert "action space Box(1,) does not fit the target's Discrete(2)" in pend.reason
    assert "--pair" in pend.reason and not pend.scores
    assert "kind='encoder'" in _row(table, str(encoder)).reason
    text = table.text()
    assert "unusable:" in text and "Box(3,)" in text


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_a_candidate_with_other_spaces_is_mapped_through_the_pairs_adapter(tmp_path, algo):
    tiny = PPO_TINY if algo == "ppo" else SAC_TINY  # PPO's preset normalizes: stats mapped too
    src = save_agent(build_agent("invertedpendulum", algo=algo, seed=0, overrides=tiny),
                     tmp_path / "pendulum")
    plain = rlt.rank_sources(src, "inverteddoublependulum", budget=40, probes=["jumpstart"])
    assert plain.rows[0].status == "unusable"
    assert "Box(4,) does not fit the target's Box(9,)" in plain.rows[0].reason
    table = rlt.rank_sources(src, "inverteddoublependulum", budget=40,
                             adapter="invertedpendulum/to-double")
    row = table.rows[0]
    assert row.status == "adapted" and "invertedpendulum/to-double" in row.reason
    assert row.target_steps == 40 and row.source_steps == 40
    assert all(s.score is not None and s.target_steps <= 40 for s in row.scores.values())
    assert row.scores["dynamics_gap"].details["dims"] == 4  # the shared observation dims


def test_a_probe_that_cannot_read_the_candidates_algorithm_says_so(cands, monkeypatch):
    class SacOnly(Probe):
        name = "sac_only"
        algos = ("sac",)

        def rollouts(self, budget):
            return (RolloutRequest("target", budget),)

        def score(self, candidate):
            return ProbeResult(1.0)

    monkeypatch.setitem(PROBES, "sac_only", SacOnly)
    table = _rank(cands, ["good"], budget=50, probes=["jumpstart", "sac_only"])
    score = table.rows[0].scores["sac_only"]
    assert score.score is None and "reads ['sac'] agents, not 'ppo'" in score.note
    assert "n/a" in table.text()


def test_the_command_line_prints_the_table_and_writes_json(cands, tmp_path, capsys):
    out = tmp_path / "rank.json"
    args = ["rank", "--target", "cartpole", "--knob", "length=1.0", "--knob", "masspole=0.5",
            "--candidates", cands["flipped"], cands["good"], "--budget", "100",
            "--probes", "jumpstart,value_consistency", "--json", str(out), "--no-progress"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "sorted by jumpstart" in text and "value_consistency" in text
    lines = [ln for ln in text.splitlines() if ln.strip().startswith(("1 ", "2 "))]
    assert " good " in lines[0] and " flipped " in lines[1]
    data = json.loads(out.read_text())
    assert data["budget"] == 100 and data["probes"] == ["jumpstart", "value_consistency"]
    assert [r["label"] for r in data["rows"]] == ["good", "flipped"]
    assert data["rows"][0]["path"] == cands["good"]
    assert data["rows"][0]["scores"]["jumpstart"]["target_steps"] <= 100
    assert main(args) == 2  # the JSON file exists now
    assert "--overwrite" in capsys.readouterr().err
    assert main(["list", "probes"]) == 0
    assert "state_overlap" in capsys.readouterr().out


def test_a_folder_of_candidates_is_searched(cands, tmp_path):
    root = tmp_path / "pool"
    for name in ("good", "flipped"):
        save_agent(load_agent(cands[name]), root / "sub" / name)
    (root / ".half-written").mkdir()
    table = rlt.rank_sources(root, "cartpole", knobs=TARGET, budget=30, probes=["jumpstart"])
    assert sorted(r.label for r in table.rows) == ["sub/flipped", "sub/good"]


@pytest.mark.parametrize("kwargs, words", [
    ({"probes": ["jumpstrt"]}, ["'jumpstrt' is unknown", "did you mean 'jumpstart'",
                                 "value_consistency"]),
    ({"probes": [{"dynamics_gap": {"ridge": -1}}]}, ["option ridge", "-1", "greater than 0"]),
    ({"probes": [{"jumpstart": {"episodes": 3}}]}, ["has no option 'episodes'",
                                                   "deterministic"]),
    ({"probes": []}, ["probes: none given", "jumpstart"]),
    ({"budget": 0}, ["budget=0", "whole number", ">= 1"]),
    ({"budget": 2.5}, ["budget=2.5"]),
    ({"sort_by": "speed"}, ["sort_by='speed'", "mean_rank"]),
    ({"adapter": "cartpole/long-heavy-pole"}, ["declares no adapter",
                                              "invertedpendulum/to-double"]),
])
def test_bad_input_names_the_field_the_value_and_what_is_accepted(cands, kwargs, words):
    with pytest.raises(RankError) as exc:
        _rank(cands, ["good"], **kwargs)
    for w in words:
        assert w in str(exc.value)


def test_bad_candidates_are_refused_before_any_step(cands, tmp_path, steps):
    with pytest.raises(RankError, match="no checkpoint found in .*card.json"):
        rlt.rank_sources(tmp_path, "cartpole", budget=10)
    with pytest.raises(RankError, match="does not exist"):
        rlt.rank_sources(tmp_path / "nope", "cartpole", budget=10)
    tampered = save_agent(load_agent(cands["good"]), tmp_path / "tampered")
    blob = bytearray((tampered / "model.safetensors").read_bytes())
    blob[-1] ^= 0xFF
    (tampered / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="sha256 of model.safetensors"):
        rlt.rank_sources([cands["good"], tampered], "cartpole", budget=10)
    assert not steps  # nothing ran: the good candidate was not scored first


def test_the_command_line_exits_2_with_one_line_for_bad_input(tmp_path, capsys):
    assert main(["rank", "--target", "cartpole", "--candidates", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no checkpoint found in" in err[0]
    assert main(["rank", "--target", "cartpole", "--candidates", str(tmp_path),
                 "--probes", "jumpstart,speed"]) == 2
    assert "probe 'speed' is unknown" in capsys.readouterr().err
    assert main(["rank", "--target", "cartpole", "--candidates", str(tmp_path),
                 "--probe-options", '{"dynamics_gap": {"ridge": 0}}', "--probes",
                 "jumpstart"]) == 2
    assert "for probes of --probes (jumpstart)" in capsys.readouterr().err


def test_get_probe_accepts_a_probe_object_and_reports_its_spec():
    probe = get_probe({"dynamics_gap": {"source_steps": 500}})
    assert get_probe(probe) is probe and probe.spec() == {"dynamics_gap": {"source_steps": 500}}
    assert probe.rollouts(200) == (RolloutRequest("target", 200),
                                   RolloutRequest("source", 500))


def test_a_pixel_target_is_ranked_through_the_candidates_encoders(tmp_path):
    px = {"size": 64, "grayscale": True, "frame_stack": 2}
    for name, knobs in (("near", {"length": 1.0}), ("far", {"length": 0.3})):
        save_agent(build_agent("cartpole", seed=0, knobs=knobs, pixels=px,
                               overrides={"n_envs": 1, "batch_size": 64}), tmp_path / name)
    save_agent(build_agent("cartpole", seed=0), tmp_path / "state")
    table = rlt.rank_sources(tmp_path, "cartpole", knobs={"length": 1.0}, pixels=px,
                             budget=40, probes=["jumpstart", "state_overlap"])
    rows = {r.label: r for r in table.rows}
    assert rows["state"].status == "unusable" and "Box(2, 64, 64) uint8" in rows["state"].reason
    assert rows["near"].scores["state_overlap"].details["dims"] == 256  # the CNN's features
    assert all(s.score is not None for n in ("near", "far") for s in rows[n].scores.values())


def test_the_progress_bar_redraws_sparsely_into_a_log(cands, monkeypatch, capsys):
    """stderr a file or a pipe (`nohup rltransfer rank ... > log 2>&1`): every redraw is
    appended, so the bar redraws every 30 s there, not at tqdm's 10 a second (a 2-minute
    probe once wrote a 30 kB line of frames into a log)."""
    import time

    original = CartPoleEnv.step

    def slow(self, action):  # ~1 s of probing in all, so that 0.1 s redraws would show
        time.sleep(0.002)
        return original(self, action)

    monkeypatch.setattr(CartPoleEnv, "step", slow)
    import rltransfer.rank.api as rank_api

    timing = {}
    real_tqdm = rank_api.tqdm

    def spy(*args, **kwargs):
        timing.update({k: kwargs[k] for k in ("mininterval", "maxinterval") if k in kwargs})
        return real_tqdm(*args, **kwargs)

    monkeypatch.setattr(rank_api, "tqdm", spy)
    _rank(cands, ["good", "short"], budget=250, probes=["jumpstart"], progress=True)
    frames = [f for f in capsys.readouterr().err.split("\r") if "rank" in f]
    assert 1 <= len(frames) <= 3, frames  # the first frame, the last, and no more
    # tqdm's monitor thread redraws a bar idle for maxinterval (10 s by default): a long
    # probe in a log drew a frame every 10-20 s until maxinterval was raised to 30 too
    assert timing == {"mininterval": 30.0, "maxinterval": 30.0}
