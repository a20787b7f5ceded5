"""Costing design points on several local cores.

`CostPool` runs the evaluator's cost and fidelity functions in forked worker processes.
The functions are handed to the workers by the fork itself (a module global set just
before the pool starts), so only configurations travel to the workers and only `Cost`
records and SQNR values travel back. The `Evaluator` records the results in the order
the points were asked for, so a search gives the same history with any number of
workers; only the wall time changes.
"""
from __future__ import annotations

import math
import multiprocessing as mp
import os

_FUNCS = None  # (cost, fidelity) in a worker, inherited through fork


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _init_worker() -> None:
    # One BLAS thread per worker: the pool already fills the cores.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _cost_chunk(jobs):
    cost, fidelity = _FUNCS
    return [(cost(config, bits), None if bits is None or fidelity is None else fidelity(bits))
            for config, bits in jobs]


class CostPool:
    """A fork process pool costing (config, bits) pairs with fixed cost and fidelity functions."""

    def __init__(self, cost, fidelity, workers: int):
        global _FUNCS
        if workers < 2:
            raise ValueError(f"a cost pool needs at least 2 workers, got {workers}")
        self.workers = int(workers)
        # Kept until close(): the pool re-forks a worker that dies, and the new one needs them too.
        _FUNCS = (cost, fidelity)
        self._pool = mp.get_context("fork").Pool(self.workers, initializer=_init_worker)

    def map(self, jobs: list) -> list:
        """[(Cost, fidelity or None)] for [(config, bits)], in order; one chunk per worker."""
        per = math.ceil(len(jobs) / self.workers)
        chunks = [jobs[i:i + per] for i in range(0, len(jobs), per)]
        return [r for chunk in self._pool.map(_cost_chunk, chunks) for r in chunk]

    def close(self) -> None:
        global _FUNCS
        self._pool.terminate()
        self._pool.join()
        _FUNCS = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
