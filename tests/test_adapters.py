"""Adapters between spaces (issue #11.1 and the adapter tests of #11.4).

Sources are built, not trained: every weight is drawn at random (so a zero or a copy is
visible) and the source's normalization statistics are made non-trivial. Each test builds a
target through ``rlt.transfer`` and compares it with the source at step 0.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import PPO_TINY, SAC_TINY

import rltransfer as rlt
import rltransfer.envs as rte
from rltransfer.agent import build_agent, load_agent, save_agent
from rltransfer.checkpoint import load_checkpoint
from rltransfer.envs import Adapter, AdapterError
from rltransfer.experiment.config import ExperimentError, resolve_experiment
from rltransfer.experiment.plan import make_plan
from rltransfer.methods import TransferError
from rltransfer.methods.adapter import AdaptedTeacher

TINY = {"ppo": PPO_TINY, "sac": SAC_TINY}
ROBOT_PAIRS = ["hopper/to-walker2d", "invertedpendulum/to-double"]
ATOL = 1e-5


def _random_source(env: str, algo: str, out) -> str:
    """An agent checkpoint for ``env`` with random weights and random normalization stats."""
    model = build_agent(env, algo=algo, seed=0, overrides=TINY[algo])
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.policy.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.4)
        for twin, online in zip(getattr(model.policy, "critic_target", model.policy).parameters(),
                                getattr(model.policy, "critic", model.policy).parameters(),
                                strict=True):
            twin.copy_(online)
    venv = model.get_vec_normalize_env()
    if venv is not None:
        rng = np.random.default_rng(2)
        venv.obs_rms.mean = rng.normal(size=venv.obs_rms.mean.shape)
        venv.obs_rms.var = rng.uniform(0.5, 2.0, size=venv.obs_rms.var.shape)
    return str(save_agent(model, out / f"{env}-{algo}"))


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    out = tmp_path_factory.mktemp("adapter-sources")
    cache = {}

    def get(env: str, algo: str) -> str:
        if (env, algo) not in cache:
            cache[env, algo] = _random_source(env, algo, out)
        return cache[env, algo]

    return get


def _pair_models(sources, pair_name, algo, method="finetune", adapter=None, **options):
    pair = rte.get_pair(pair_name)
    path = sources(pair.source.env, algo)
    target = rlt.transfer(path, pair.target.env, method=method, seed=3, algo=algo,
                          overrides=TINY[algo], adapter=adapter or pair_name, **options)
    return load_agent(path), target, pair.resolve_adapter(adapter)


def _policy_inputs(source, target, resolved, rng, n=32):
    """Random raw target observations, as each policy sees them (normalized by its own
    statistics; dropped source dims at the source's mean, which normalizes to 0)."""
    raw_t = rng.normal(scale=2.0, size=(n, len(resolved.obs))).astype(np.float32)
    raw_s = resolved.source_obs(raw_t)
    src_venv, tgt_venv = source.get_vec_normalize_env(), target.get_vec_normalize_env()
    if src_venv is not None:
        raw_s[:, resolved.dropped_obs] = src_venv.obs_rms.mean[resolved.dropped_obs]
        obs_s, obs_t = src_venv.normalize_obs(raw_s), tgt_venv.normalize_obs(raw_t)
    else:
        obs_s, obs_t = raw_s, raw_t
    return (torch.as_tensor(obs_s, dtype=torch.float32),
            torch.as_tensor(obs_t, dtype=torch.float32))


@pytest.mark.parametrize("algo", ["ppo", "sac"])
@pytest.mark.parametrize("pair_name", [*ROBOT_PAIRS, "walker2d/to-hopper"])
def test_step0_target_acts_and_values_as_the_source(sources, pair_name, algo, rng):
    source, target, ad = _pair_models(sources, pair_name, algo)
    obs_s, obs_t = _policy_inputs(source, target, ad, rng)
    with torch.no_grad():
        act_s = source.policy._predict(obs_s, deterministic=True)
        act_t = target.policy._predict(obs_t, deterministic=True)
    tgt_idx, src_idx = ad.act_pairs(mirrors=True) if ad.act else ([0], [0])
    torch.testing.assert_close(act_t[:, tgt_idx], act_s[:, src_idx], atol=ATOL, rtol=0)
    new = [t for t, s in enumerate(ad.act or [0]) if s < 0]
    assert torch.all(act_t[:, new] == 0)  # new action dims: a zero mean
    with torch.no_grad():
        if algo == "ppo":
            torch.testing.assert_close(target.policy.predict_values(obs_t),
                                       source.policy.predict_values(obs_s), atol=ATOL, rtol=0)
        else:  # Q takes the action too: map the shared action dims back
            a_t = torch.as_tensor(rng.uniform(-1, 1, size=(len(obs_t), len(ad.act))),
                                  dtype=torch.float32)
            a_s = torch.zeros(len(obs_t), ad.source_act_dim)
            t, s = ad.act_pairs(mirrors=False)
            a_s[:, s] = a_t[:, t]
            for net in ("critic", "critic_target"):
                q_t = getattr(target.policy, net)(obs_t, a_t)
                q_s = getattr(source.policy, net)(obs_s, a_s)
                for qt, qs in zip(q_t, q_s, strict=True):
                    torch.testing.assert_close(qt, qs, atol=ATOL, rtol=0)


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_first_layer_columns_and_mirrored_rows(sources, algo):
    source, target, ad = _pair_models(sources, "hopper/to-walker2d", algo)
    src, tgt = source.policy.state_dict(), target.policy.state_dict()
    tgt_obs, src_obs = ad.obs_pairs()
    first = (["mlp_extractor.policy_net.0.weight", "mlp_extractor.value_net.0.weight"]
             if algo == "ppo" else ["actor.latent_pi.0.weight", "critic.qf0.0.weight",
                                    "critic_target.qf1.0.weight"])
    for key in first:
        assert torch.equal(tgt[key][:, ad.new_obs], torch.zeros_like(tgt[key][:, ad.new_obs]))
        assert torch.equal(tgt[key][:, tgt_obs], src[key][:, src_obs])
    if algo == "sac":  # the critic's action columns: shared copied, mirrored ones zero
        n_t, n_s = len(ad.obs), ad.source_obs_dim
        w_t, w_s = tgt["critic.qf0.0.weight"], src["critic.qf0.0.weight"]
        assert torch.equal(w_t[:, n_t:n_t + 3], w_s[:, n_s:n_s + 3])
        assert not w_t[:, n_t + 3:].any()
    heads = (["action_net.weight", "action_net.bias", "log_std"] if algo == "ppo" else
             ["actor.mu.weight", "actor.mu.bias", "actor.log_std.weight", "actor.log_std.bias"])
    assert ad.mirror == (3, 4, 5)
    for key in heads:
        for t in ad.mirror:  # the walker's left leg starts as the hopper's leg
            assert torch.equal(tgt[key][t], src[key][ad.act[t]]), key


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_new_action_rows_have_zero_mean_and_fresh_log_std(sources, algo):
    adapter = {"obs": rte.get_pair("hopper/to-walker2d").adapter.obs, "act": {"right_leg": "leg"}}
    source, target, ad = _pair_models(sources, "hopper/to-walker2d", algo, adapter=adapter)
    fresh = build_agent("walker2d", algo=algo, seed=3, overrides=TINY[algo]).policy.state_dict()
    tgt = target.policy.state_dict()
    mean, std = (("action_net.", "log_std") if algo == "ppo" else ("actor.mu.", "actor.log_std."))
    for key, value in tgt.items():
        if key.startswith(mean):
            assert not value[3:].any()
        elif key.startswith(std):
            assert torch.equal(value[3:], fresh[key][3:])


def test_normalization_statistics_follow_the_mapping(sources):
    source, target, ad = _pair_models(sources, "hopper/to-walker2d", "ppo")
    s_rms, t_rms = source.get_vec_normalize_env().obs_rms, target.get_vec_normalize_env().obs_rms
    tgt, src = ad.obs_pairs()
    np.testing.assert_array_equal(t_rms.mean[tgt], s_rms.mean[src])
    np.testing.assert_array_equal(t_rms.var[tgt], s_rms.var[src])
    assert np.all(t_rms.mean[ad.new_obs] == 0) and np.all(t_rms.var[ad.new_obs] == 1)


@pytest.mark.parametrize("method", [{"partial": {"roles": ["actor"]}}, "frozen",
                                    {"critic_warmup": {"steps": 64}},
                                    {"jsrl": {"roles": ["all"]}}, "kickstart"])
def test_every_weight_moving_method_works_through_the_adapter(sources, method, rng):
    source, target, ad = _pair_models(sources, "hopper/to-walker2d", "ppo", method=method)
    assert target.rltransfer_log.moved and not target.rltransfer_log.reinit
    if method != "frozen":  # frozen moves the encoder (MLP: both trunks), not the heads
        obs_s, obs_t = _policy_inputs(source, target, ad, rng)
        with torch.no_grad():
            act_t = target.policy._predict(obs_t, deterministic=True)
            act_s = source.policy._predict(obs_s, deterministic=True)
        torch.testing.assert_close(act_t[:, :3], act_s, atol=ATOL, rtol=0)
    target.learn(128)  # trains: the guide, the KL term and the held actor all run


def test_replay_warmstart_guide_acts_in_the_target_space_through_the_adapter(sources):
    _, target, _ = _pair_models(sources, "hopper/to-walker2d", "sac", method="replay_warmstart",
                                steps=64)
    target.learn(80)
    guided = target.replay_buffer.actions[:64, 0]  # (step, 6), scaled to [-1, 1]
    assert guided.shape == (64, 6) and np.abs(guided).max() > 0
    np.testing.assert_allclose(guided[:, 3:], guided[:, :3], atol=1e-6)  # the left leg mirrors


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_kickstart_teacher_gets_the_source_observation(sources, algo, rng):
    source, target, ad = _pair_models(sources, "hopper/to-walker2d", algo, method="kickstart")
    teacher = target.rlt.teacher
    assert isinstance(teacher, AdaptedTeacher)
    seen = []
    if algo == "ppo":
        original = teacher.policy.get_distribution
        teacher.policy.get_distribution = lambda obs: (seen.append(obs), original(obs))[1]
    else:
        original = teacher.policy.actor.get_action_dist_params
        teacher.policy.actor.get_action_dist_params = \
            lambda obs: (seen.append(obs), original(obs))[1]
    _, obs_t = _policy_inputs(source, target, ad, rng)
    term = target.rlt.loss_terms[0]
    if algo == "ppo":
        dist = target.policy.get_distribution(obs_t).distribution
    else:
        mean, log_std, kw = target.policy.actor.get_action_dist_params(obs_t)
        dist = target.policy.actor.action_dist.proba_distribution(mean, log_std, **kw).distribution
    kl = term.loss(obs_t, dist)
    assert seen and seen[0].shape == (len(obs_t), 11)  # the hopper's observation
    torch.testing.assert_close(seen[0], torch.as_tensor(ad.source_obs(obs_t.numpy())))
    assert float(kl.detach()) < 1e-8  # at step 0 the target is the teacher on the shared dims
    # a guide (jsrl, replay_warmstart) acts in the target's action space
    actions, _ = teacher.predict(obs_t.numpy(), deterministic=True)
    assert actions.shape == (len(obs_t), 6)
    own, _ = target.policy.predict(obs_t.numpy(), deterministic=True)
    np.testing.assert_allclose(actions, own, atol=ATOL)


def test_card_records_the_adapter(sources, tmp_path):
    _, target, ad = _pair_models(sources, "invertedpendulum/to-double", "sac")
    card = load_checkpoint(save_agent(target, tmp_path / "t")).card
    assert card["transfer"]["adapter"]["obs"] == list(ad.obs)
    assert card["transfer"]["adapter"]["spec"] == rte.get_pair(
        "invertedpendulum/to-double").adapter.to_json()
    plain = rlt.transfer(sources("invertedpendulum", "sac"), "invertedpendulum", seed=0,
                         overrides=SAC_TINY)
    assert "adapter" not in plain.rltransfer.transfer  # same-space cards stay as they were


def test_run_ids_include_the_adapter_only_when_present(tmp_path):
    def plan(**kw):
        exp = resolve_experiment({"algo": "ppo", "methods": ["finetune", "kickstart"],
                                  "seeds": 1, "steps": 1000, **kw})
        return {r.method: r for r in make_plan(exp, tmp_path / "out").runs}

    same = plan(pair="hopper/heavy-torso")
    assert all("adapter" not in r.identity and r.adapter is None for r in same.values())
    runs = plan(pair="hopper/to-walker2d")
    assert "adapter" not in runs["scratch"].identity  # scratch takes no source
    assert runs["finetune"].identity["adapter"] == rte.get_pair("hopper/to-walker2d") \
        .adapter.to_json()
    override = plan(pair="hopper/to-walker2d",
                    adapter={"obs": {"torso_pos": "torso_pos", "right_leg_pos": "leg_pos"},
                             "act": {"right_leg": "leg"}})
    assert override["finetune"].run_id != runs["finetune"].run_id
    assert override["scratch"].run_id == runs["scratch"].run_id


BAD = [
    ({"obs": {"torso": "torso_pos"}}, "adapter.obs: 'torso' is not a dim of the target "
     "observation space; valid names: ['left_leg_pos', 'left_leg_vel', 'right_leg_pos'"),
    ({"obs": {"torso_pos": "torso_pos", 20: 3}}, "index 20 is outside the target observation "
     "space (17 dims: 0..16)"),
    ({"obs": {"right_leg_pos": "torso_pos"}}, "'right_leg_pos' is 3 target dims but "
     "'torso_pos' is 2 source dims"),
    ({"obs": {"torso_pos": "torso_pos"}}, "adapter.act: missing, but the action spaces differ "
     "(3 -> 6 dims)"),
    ({"obs": {"0:2": "0:2", "2:4": "0:2"}, "act": {"right_leg": "leg"}},
     "source observation dim 0 feeds target dims 0 and 2"),
    ({"obs": {"torso_pos": "torso_pos"}, "act": {"right_leg": "leg"},
      "mirror": {"right_thigh": "thigh"}}, "adapter.mirror: target action dim 0 "
     "('right_thigh') already reads source dim 0; mirror only new dims"),
    ({"obs": [0, 1]}, "adapter.obs: a list needs one entry per target observation dim (17)"),
]


@pytest.mark.parametrize(("adapter", "message"), BAD)
def test_bad_mapping_is_refused_naming_pair_field_and_valid_names(adapter, message):
    with pytest.raises(AdapterError) as err:
        rte.get_pair("hopper/to-walker2d").resolve_adapter(adapter)
    assert str(err.value).startswith("pair 'hopper/to-walker2d': adapter.")
    assert message in str(err.value)


def test_bad_mapping_is_refused_in_catalogue_experiment_and_transfer(sources):
    with pytest.raises(AdapterError, match=r"pair 'hopper/bad'.*adapter.obs: 'knee' is not a "
                                           r"block of the target 'walker2d'; valid names: "):
        rte.register_pair("hopper/bad", "hopper", "walker2d", threshold=1, budget=10,
                          adapter={"obs": {"knee": "knee_angle"}})
    with pytest.raises(AdapterError, match=r"pair 'hopper/bad'.adapter: osb: unknown field "
                                           r"\(did you mean 'obs'\?\)"):
        rte.register_pair("hopper/bad", "hopper", "walker2d", threshold=1, budget=10,
                          adapter={"osb": {}})
    with pytest.raises(ExperimentError, match=r"experiment: pair 'hopper/to-walker2d': "
                                              r"adapter.act: 'leg' is not a dim"):
        resolve_experiment({"pair": "hopper/to-walker2d", "methods": ["finetune"],
                            "adapter": {"obs": {"torso_pos": "torso_pos"},
                                        "act": {"leg": "leg"}}})
    with pytest.raises(TransferError, match="declares no adapter"):
        rlt.transfer(sources("hopper", "ppo"), "walker2d", seed=0, adapter="hopper/heavy-torso")
    with pytest.raises(AdapterError, match=r"transfer: adapter.obs.0: index 11 is outside the "
                                           r"source observation space \(11 dims: 0..10\)"):
        rlt.transfer(sources("hopper", "ppo"), "walker2d", seed=0, overrides=PPO_TINY,
                     adapter={"obs": {0: 11}, "act": {"right_leg": "leg"}})


def test_adapter_spec_forms_agree():
    """The list form, the index mapping and the named mapping resolve to the same arrays."""
    named = rte.get_pair("invertedpendulum/to-double").resolve_adapter()
    by_index = rte.get_pair("invertedpendulum/to-double").resolve_adapter(
        {"obs": {0: 0, 1: 1, "5:7": [2, 3]}})
    as_list = rte.get_pair("invertedpendulum/to-double").resolve_adapter(
        {"obs": [0, "pole_angle", None, None, None, 2, 3, None, None]})
    assert named.obs == by_index.obs == as_list.obs == (0, 1, -1, -1, -1, 2, 3, -1, -1)
    assert Adapter.model_validate(named.spec).to_json() == named.spec


def test_every_family_block_fits_its_space():
    for fam in rte.families():
        if not (fam.obs_blocks or fam.act_blocks):
            continue
        env = fam.make()
        for blocks, space in ((fam.obs_blocks, env.observation_space),
                              (fam.act_blocks, env.action_space)):
            for name, block in blocks.items():
                rte.adapter.block_indices(name, block, space.shape[0])
        env.close()
