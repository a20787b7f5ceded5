"""A gymnasium environment over the design space, for RL agents.

Observation (float32, fixed length):
  model features · board features · the current design (each knob's index scaled to
  [0, 1]) · utilisation of dsp, alm and ram_blocks (fraction of the board, clipped at 4)
  · normalised latency ln(t / t_initial) / 5 · fidelity margin (SQNR − bound) / 20
  · feasible flag · best-so-far normalised latency · fraction of the episode elapsed.
Action: Discrete(3 * knobs): action 3j steps knob j down its legal list, 3j + 1 steps it
  up (a step off either end stays put), 3j + 2 jumps it to a random other legal value.
Reward: the drop in score (ln latency, plus a penalty of 10 + overshoot when the design
  does not fit or misses the fidelity bound) times 10, clipped to ±20, plus 1 whenever
  the step finds a new best feasible design. The return of an episode is therefore how
  much better its last design is than its first.
Episodes last `horizon` steps and start from the best design found so far (the lowest
score, so while nothing is feasible the one closest to feasibility; or, with
probability `restart_prob`, from a random point), so the policy learns moves that improve
on the incumbent. When `stall` steps in a row only revisit designs already costed, the
episode ends, the next one starts from a random point and the horizon doubles (up to
`max_horizon`): the search widens around an incumbent it has exhausted, and narrows back
to `horizon` when it finds a new best. Every costing goes through the shared, cached
`Evaluator`.
"""
from __future__ import annotations

import math

import gymnasium as gym
import numpy as np

from .evaluator import BudgetExhausted, Evaluation, Evaluator

RESOURCES = ("dsp", "alm", "ram_blocks")


class DesignEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, evaluator: Evaluator, features: np.ndarray | None = None, *, horizon: int = 16,
                 restart_prob: float = 0.25, stall: int = 32, max_horizon: int = 32):
        super().__init__()
        self.ev = evaluator
        self.space = evaluator.space
        self.features = np.zeros(0, np.float32) if features is None else np.asarray(features, np.float32)
        self.horizon = int(horizon)
        self.max_horizon = max(int(max_horizon), self.horizon)
        self._h = self.horizon  # current horizon
        self.restart_prob = float(restart_prob)
        self.stall = int(stall)
        self._stalled = 0
        k = len(self.space.knobs)
        self.action_space = gym.spaces.Discrete(3 * k)
        n_obs = len(self.features) + k + len(RESOURCES) + 5
        self.observation_space = gym.spaces.Box(-10.0, 10.0, shape=(n_obs,), dtype=np.float32)
        self.stopped = False  # set when the evaluation budget is spent; the agent then stops
        self._ref = None
        self._cur: Evaluation | None = None
        self._t = 0

    # -- helpers --------------------------------------------------------------------
    def _try(self, point) -> Evaluation | None:
        try:
            return self.ev.evaluate(point)
        except BudgetExhausted:
            self.stopped = True
            return None

    def _norm_latency(self, ev: Evaluation | None) -> float:
        if ev is None:
            return 0.0
        return float(np.clip(math.log(ev.total_ms / self._ref) / 5.0, -2.0, 2.0))

    def _obs(self) -> np.ndarray:
        cur = self._cur
        util = [min(cur.resources.get(r, 0.0) / 100.0, 4.0) for r in RESOURCES]
        if cur.fidelity is None or self.ev.min_sqnr is None:
            margin = 0.0
        else:
            margin = float(np.clip((cur.fidelity - self.ev.min_sqnr) / 20.0, -2.0, 2.0))
        tail = [self._norm_latency(cur), margin, float(cur.feasible),
                self._norm_latency(self.ev.best_feasible()), min(self._t / self._h, 1.0)]
        obs = np.concatenate([self.features, self.space.normalised(cur.point), np.array(util + tail, np.float32)])
        return np.clip(obs, -10.0, 10.0).astype(np.float32)

    # -- gymnasium API --------------------------------------------------------------
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if self._ref is None:
            first = self._try(self.space.initial)
            if first is None:  # budget already spent before the first step
                first = self.ev.lowest
            self._ref = first.total_ms
            self._cur = first
        start = None
        if self.ev.best is not None and self._stalled < self.stall and self.np_random.random() >= self.restart_prob:
            start = self.ev.lowest
        else:
            start = self._try(self.space.random_point(self.np_random))
            if start is None:
                start = self.ev.lowest
        self._cur = start
        self._t = 0
        if self._stalled >= self.stall:
            self._stalled = 0
            self._h = min(2 * self._h, self.max_horizon)
        return self._obs(), {}

    def step(self, action):
        best_before, before = self.ev.best_feasible(), self.ev.n_evals
        point = self.propose(action)
        return self.finish(self._try(point), best_before, new=self.ev.n_evals > before)

    # -- the two halves of a step, so that a vectorised wrapper can cost many points at once
    def propose(self, action) -> tuple:
        """The design point `action` moves the current design to (not costed yet)."""
        knob, kind = divmod(int(action), 3)
        point = list(self._cur.point)
        n = self.space.dims[knob]
        if kind == 2 and n > 1:
            i = int(self.np_random.integers(n - 1))
            point[knob] = i + 1 if i >= point[knob] else i
        else:
            point[knob] = min(max(point[knob] + (1 if kind == 1 else -1), 0), n - 1)
        return tuple(point)

    def finish(self, nxt: Evaluation | None, best_before: Evaluation | None, *, new: bool):
        """Complete a step whose proposed point was costed as `nxt` (None: the budget is spent).

        best_before: the best feasible design before the point was costed; new: whether
        costing it was a new evaluation rather than a cache hit.
        """
        self._t += 1
        if nxt is None:
            self.stopped = True
            return self._obs(), 0.0, False, True, {"budget_spent": True}
        prev = self._cur
        self._stalled = 0 if new else self._stalled + 1
        reward = float(np.clip((prev.score - nxt.score) * 10.0, -20.0, 20.0))
        best_after = self.ev.best_feasible()
        if best_after is not None and best_after is not best_before and best_after is nxt:
            reward += 1.0
            self._h = self.horizon
        self._cur = nxt
        return self._obs(), reward, False, self._t >= self._h or self._stalled >= self.stall, {}
