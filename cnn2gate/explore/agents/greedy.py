"""Hill climbing: first-improvement moves along one knob at a time, random restarts at local optima.

Starts from the space's initial design (the board default). Neighbours (one knob one
step up or down) are tried in a random order; the first that lowers the score is taken.
When no neighbour improves, the climb restarts from a random unseen point.
"""
from __future__ import annotations

import numpy as np


def search(ev, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    space = ev.space
    current = ev.evaluate(space.initial)
    while not ev.exhausted:
        neighbours = space.neighbours(current.point)
        improved = None
        for j in rng.permutation(len(neighbours)):
            cand = ev.evaluate(neighbours[j])
            if cand.score < current.score:
                improved = cand
                break
        if improved is not None:
            current = improved
            continue
        start = _unseen(ev, rng)
        if start is None:
            return
        current = ev.evaluate(start)


def _unseen(ev, rng, tries: int = 1000):
    for _ in range(tries):
        point = ev.space.random_point(rng)
        if not ev.seen(point):
            return point
    return None
