"""Simulated annealing with fpgaConvNet's schedule (T 10 -> 1e-4, 10 moves per temperature).

fpgaConvNet cools by 0.97 per step, about 3,800 moves in all. Here the cooling factor
is chosen so that one schedule spans the evaluation budget (0.97 at a budget of ~3,800);
when a schedule ends with budget left, it reheats from the best design. A move changes
one random knob by one step (or, one time in ten, to a random legal value). The score
difference is taken in percent of log-latency, so T = 10 accepts a design 10 % slower
with probability 1/e.
"""
from __future__ import annotations

import math

import numpy as np

T_START = 10.0
T_MIN = 1e-4
MOVES_PER_T = 10
COOL_DEFAULT = 0.97
JUMP_PROB = 0.1


def cooling_for(budget: int | None) -> float:
    if budget is None:
        return COOL_DEFAULT
    steps = max(budget / MOVES_PER_T, 10.0)
    return (T_MIN / T_START) ** (1.0 / steps)


def neighbour(space, point, rng):
    j = int(rng.integers(len(point)))
    n = space.dims[j]
    if n == 1:
        return point
    if rng.random() < JUMP_PROB:
        i = int(rng.integers(n - 1))
        i = i + 1 if i >= point[j] else i
    else:
        step = 1 if rng.random() < 0.5 else -1
        i = point[j] + step
        if not 0 <= i < n:
            i = point[j] - step
    return point[:j] + (i,) + point[j + 1:]


def search(ev, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    space = ev.space
    cool = cooling_for(ev.budget)
    current = ev.evaluate(space.initial)
    max_moves = 50 * (ev.budget or 4000) + 10_000
    moves = 0
    while not ev.exhausted and moves < max_moves:
        t = T_START
        while t > T_MIN and moves < max_moves:
            for _ in range(MOVES_PER_T):
                cand = ev.evaluate(neighbour(space, current.point, rng))
                moves += 1
                delta = (cand.score - current.score) * 100.0
                if delta <= 0 or rng.random() < math.exp(-delta / t):
                    current = cand
            t *= cool
        current = ev.lowest
