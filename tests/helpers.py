"""Small shared settings for fast tests (tiny networks, tiny rollouts)."""

PPO_TINY = {"n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 2,
            "policy_kwargs": {"net_arch": {"pi": [16, 16], "vf": [16, 16]}}}
SAC_TINY = {"learning_starts": 64, "batch_size": 32, "buffer_size": 2000,
            "policy_kwargs": {"net_arch": [16, 16]}}
