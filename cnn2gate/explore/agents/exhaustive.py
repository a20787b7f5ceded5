"""Exhaustive search: cost every point of the space (only when the budget covers it)."""
from __future__ import annotations

import itertools

from ...errors import ConfigError

#: Largest space this agent will walk.
MAX_POINTS = 2_000_000
#: Points handed to the evaluator (and its pool) at once.
BATCH = 256


def search(ev, seed: int = 0) -> None:
    size = ev.space.size
    if size > MAX_POINTS:
        raise ConfigError(f"the design space has {size:,} points, too many for --agent exhaustive "
                          f"(limit {MAX_POINTS:,}); use another agent")
    if ev.budget is not None and ev.budget < size:
        raise ConfigError(f"--agent exhaustive needs --budget of at least {size:,} (the size of the space), "
                          f"got {ev.budget:,}")
    points = ev.space.enumerate()
    while batch := list(itertools.islice(points, BATCH)):
        ev.evaluate_many(batch)
