"""Proximal policy optimisation (stable-baselines3) over `DesignEnv`.

Each step the policy moves one knob one place down or up its legal list, or jumps it to a
random legal value; short episodes start from the best design found so far and widen
when that neighbourhood is used up (see cnn2gate/explore/env.py). Training stops when the
evaluation budget is spent, or after `STEPS_PER_EVAL` environment steps per budgeted
evaluation (repeat visits are free, so a converged policy could otherwise loop).
"""
from __future__ import annotations

import warnings

from ..env import DesignEnv

STEPS_PER_EVAL = 8
ENV = dict(horizon=2, restart_prob=0.05, stall=32, max_horizon=32)
HYPER = dict(n_steps=64, batch_size=64, n_epochs=4, gamma=0.9, gae_lambda=0.9, learning_rate=1e-3,
             ent_coef=0.05, clip_range=0.2)


def search(ev, seed: int = 0) -> None:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    class _StopWhenSpent(BaseCallback):
        def _on_step(self) -> bool:
            return not (env.stopped or ev.exhausted)

    env = DesignEnv(ev, ev.features, **ENV)
    steps = STEPS_PER_EVAL * (ev.budget or min(ev.space.size, 10_000))
    steps = max(steps, HYPER["n_steps"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 64x64 policy: more threads only add synchronisation
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0,
                        policy_kwargs=dict(net_arch=[64, 64]), **HYPER)
            model.learn(total_timesteps=steps, callback=_StopWhenSpent())
    finally:
        torch.set_num_threads(threads)
