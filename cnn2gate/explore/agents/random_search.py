"""Uniform random search without repetition, costed in batches (on the pool when there is one)."""
from __future__ import annotations

import numpy as np

#: Below this size the whole space is shuffled; above it points are drawn and repeats skipped.
SHUFFLE_LIMIT = 1 << 20
#: Points handed to the evaluator at once. Fixed, so the history does not depend on the workers.
BATCH = 64


def search(ev, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    space = ev.space
    if space.size <= SHUFFLE_LIMIT:
        order = rng.permutation(space.size)
        for i in range(0, len(order), BATCH):
            if ev.exhausted:
                return
            ev.evaluate_many([space.unravel(flat) for flat in order[i:i + BATCH]])
        return
    misses = 0
    while not ev.exhausted and misses < 10_000:
        batch: list = []
        while len(batch) < min(BATCH, ev.remaining or BATCH) and misses < 10_000:
            point = space.random_point(rng)
            if ev.seen(point) or point in batch:
                misses += 1
                continue
            misses = 0
            batch.append(point)
        ev.evaluate_many(batch)
