"""Encoder transfer into pixel agents: extracted and encoder-only checkpoints, PPO and SAC."""

from __future__ import annotations

import pytest
import torch

import rltransfer as rlt

PIX = {"size": 32}
CNN = {"policy_kwargs": {"features_extractor": "small_cnn",
                         "features_extractor_kwargs": {"features_dim": 32},
                         "net_arch": [16]}}
PPO_PIX = {"n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 1, **CNN}
SAC_PIX = {"learning_starts": 32, "batch_size": 16, "buffer_size": 500, **CNN}


@pytest.fixture(scope="module")
def pixel_source(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("vision") / "ppo"
    return rlt.pretrain("cartpole", pixels=PIX, algo="ppo", steps=256, seed=0, out=out,
                        overrides=PPO_PIX, eval_episodes=1, progress_bar=False)


def _encoder_keys(state):
    return {k for k in state if "features_extractor." in k}


def test_frozen_encoder_arrives_equal_and_stays_unchanged(pixel_source):
    src = rlt.load_checkpoint(pixel_source).tensors
    model = rlt.transfer(pixel_source, "cartpole", knobs={"length": 1.0}, pixels=PIX,
                         method="frozen", seed=1, overrides=PPO_PIX)
    state = model.policy.state_dict()
    enc = _encoder_keys(state)
    assert enc
    for k in enc:
        assert torch.equal(state[k], src[k]), k
    fresh = [k for k in state if k not in enc and k.endswith("weight")]
    assert fresh and not any(torch.equal(state[k], src[k]) for k in fresh)
    before = {k: v.clone() for k, v in state.items()}
    model.learn(256)  # lin_ schedules reach lr 0 at the end: two updates, the first with lr > 0
    after = model.policy.state_dict()
    for k in enc:
        assert torch.equal(after[k], before[k])
    assert not torch.equal(after["action_net.weight"], before["action_net.weight"])


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_extracted_encoder_moves_into_ppo_and_sac(pixel_source, tmp_path, algo):
    enc = rlt.extract_encoder(pixel_source, tmp_path / "enc")
    ckpt = rlt.load_checkpoint(enc)
    assert ckpt.card["kind"] == "encoder" and ckpt.card["encoder"]["name"] == "small_cnn"
    env, overrides = ("cartpole", PPO_PIX) if algo == "ppo" else ("pendulum", SAC_PIX)
    model = rlt.transfer(enc, env, pixels=PIX, algo=algo, method="frozen", seed=2,
                         overrides=overrides)
    state = model.policy.state_dict()
    placed = [k for k in state if "features_extractor." in k]
    assert placed
    for k in placed:
        local = k.split("features_extractor.", 1)[1]
        assert torch.equal(state[k], ckpt.tensors[local]), k
    frozen = set(model.rltransfer_log.frozen)
    assert frozen and all("features_extractor." in k for k in frozen)
    model.learn(96 if algo == "sac" else 256)
    params = dict(model.policy.named_parameters())
    for k in frozen:
        assert torch.equal(params[k].detach(), ckpt.tensors[k.split("features_extractor.")[1]])


def test_mlp_checkpoint_has_no_encoder_to_extract(tmp_path):
    src = rlt.pretrain("CartPole-v1", algo="ppo", steps=0, seed=0, out=tmp_path / "s",
                       eval_episodes=1, progress_bar=False)
    with pytest.raises(rlt.CheckpointError, match="has no weights"):
        rlt.extract_encoder(src, tmp_path / "e")


def test_random_shift_augmentation_only_in_training_mode():
    model = rlt.build_agent("cartpole", pixels=PIX, algo="ppo", seed=0,
                            overrides={**PPO_PIX, "augment_shift": 4})
    obs = torch.as_tensor(model.get_env().reset()).float()
    ext = model.policy.features_extractor
    model.policy.set_training_mode(False)
    a, b = ext(obs), ext(obs)
    assert torch.equal(a, b)
    model.policy.set_training_mode(True)
    c = ext(obs)
    assert not torch.equal(a, c)
    model.learn(256)  # trains with the hook in place


def test_frozen_encoder_features_are_cached_and_identical(pixel_source):
    from rltransfer.methods import FeatureCache

    model = rlt.transfer(pixel_source, "cartpole", pixels=PIX, method="frozen", seed=1,
                         overrides=PPO_PIX)
    ext = model.policy.features_extractor
    assert isinstance(ext.forward, FeatureCache)
    obs = torch.rand(5, *model.observation_space.shape)
    first = ext(obs)
    plain = type(ext).forward(ext, obs)
    torch.testing.assert_close(first, plain)
    assert torch.equal(ext(obs), first) and ext.forward.hits == 5
    model.learn(256)
    assert ext.forward.hits > 0
    # with unfreeze_at nothing is cached: the weights will change
    later = rlt.transfer(pixel_source, "cartpole", pixels=PIX, seed=1, overrides=PPO_PIX,
                         method={"frozen": {"unfreeze_at": 100}})
    assert not isinstance(later.policy.features_extractor.forward, FeatureCache)


def test_feature_cache_memory_is_bounded_by_items_times_features():
    from rltransfer.methods import FeatureCache

    row = 4 * 64 * 64 * 4  # 64 KB per float observation (its key)
    cache = FeatureCache(lambda x: x.reshape(x.shape[0], -1)[:, :2] * 2, max_items=100,
                         max_bytes=3 * (row + 8))
    obs = torch.rand(5, 4, 64, 64)
    out = cache(obs)
    torch.testing.assert_close(out, obs.reshape(5, -1)[:, :2] * 2)
    assert len(cache.store) == 3 and cache.misses == 5  # max_bytes holds 3; oldest evicted
    for value in cache.store.values():
        assert value.untyped_storage().nbytes() == 2 * 4  # its own row, not a batch view
    assert torch.equal(cache(obs[4:]), out[4:]) and cache.hits == 1
