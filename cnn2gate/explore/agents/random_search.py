"""Uniform random search without repetition."""
from __future__ import annotations

import numpy as np

#: Below this size the whole space is shuffled; above it points are drawn and repeats skipped.
SHUFFLE_LIMIT = 1 << 20


def search(ev, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    space = ev.space
    if space.size <= SHUFFLE_LIMIT:
        for flat in rng.permutation(space.size):
            ev.evaluate(space.unravel(flat))
        return
    misses = 0
    while not ev.exhausted and misses < 10_000:
        point = space.random_point(rng)
        if ev.seen(point):
            misses += 1
            continue
        misses = 0
        ev.evaluate(point)
