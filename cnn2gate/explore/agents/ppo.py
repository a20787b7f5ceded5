"""Proximal policy optimisation (stable-baselines3) over `DesignEnv`.

Each step the policy moves one knob one place down or up its legal list, or jumps it to a
random legal value; short episodes start from the best design found so far and widen
when that neighbourhood is used up (see cnn2gate/explore/env.py). The environments step
through `_batched_vec_env`, which costs all their proposals with one evaluate_many call.
N_ENVS is 1: with 4 environments the A10 optima of VGG-16 and ResNet-18 were reached
3-5x later (median over 5 seeds), and a batch of 4 proposals (about 1 ms of costing) is
too cheap for the cost pool, so vectorising gained no speed either. Training stops
when the evaluation budget is spent, or after `STEPS_PER_EVAL` environment steps per
budgeted evaluation (repeat visits are free, so a converged policy could otherwise loop).
"""
from __future__ import annotations

import warnings

import numpy as np

from ..env import DesignEnv

STEPS_PER_EVAL = 8
N_ENVS = 1
#: stall counts one environment's steps (tuned with one environment: 32)
ENV = dict(horizon=2, restart_prob=0.05, stall=32 // N_ENVS, max_horizon=32)
ROLLOUT = 64  # environment steps per policy update, over all environments
HYPER = dict(n_steps=ROLLOUT // N_ENVS, batch_size=64, n_epochs=4, gamma=0.9, gae_lambda=0.9,
             learning_rate=1e-3, ent_coef=0.05, clip_range=0.2)


def _batched_vec_env(ev, envs):
    """A DummyVecEnv whose step costs all environments' proposals with one evaluate_many call."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    class BatchedVecEnv(DummyVecEnv):
        def step_wait(self):
            best_before, before = ev.best_feasible(), ev.n_evals
            points = [env.propose(a) for env, a in zip(self.envs, self.actions)]
            for i, (env, res) in enumerate(zip(self.envs, ev.evaluate_many(points))):
                new = res is not None and res.index >= before
                obs, self.buf_rews[i], terminated, truncated, self.buf_infos[i] = env.finish(res, best_before, new=new)
                self.buf_dones[i] = terminated or truncated
                self.buf_infos[i]["TimeLimit.truncated"] = truncated and not terminated
                if self.buf_dones[i]:
                    self.buf_infos[i]["terminal_observation"] = obs
                    obs, self.reset_infos[i] = env.reset()
                self._save_obs(i, obs)
            return self._obs_from_buf(), np.copy(self.buf_rews), np.copy(self.buf_dones), list(self.buf_infos)

    return BatchedVecEnv([lambda env=env: env for env in envs])


def search(ev, seed: int = 0) -> None:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    envs = [DesignEnv(ev, ev.features, **ENV) for _ in range(N_ENVS)]

    class _StopWhenSpent(BaseCallback):
        def _on_step(self) -> bool:
            return not (ev.exhausted or any(env.stopped for env in envs))

    steps = STEPS_PER_EVAL * (ev.budget or min(ev.space.size, 10_000))
    steps = max(steps, ROLLOUT)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 64x64 policy: more threads only add synchronisation
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = PPO("MlpPolicy", _batched_vec_env(ev, envs), seed=seed, device="cpu", verbose=0,
                        policy_kwargs=dict(net_arch=[64, 64]), **HYPER)
            model.learn(total_timesteps=steps, callback=_StopWhenSpent())
    finally:
        torch.set_num_threads(threads)
