"""Work on several local cores: costing design points, and one-off parallel maps.

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
_SHARED = None  # fork_map's shared state in a worker, inherited through fork
_BLAS_LIMIT = None


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _init_worker() -> None:
    # One BLAS thread per worker: the pool already fills the cores (and OpenBLAS rounds
    # differently with other thread counts, so callers that need bit-identical serial and
    # parallel results run their serial path with one thread too).
    from threadpoolctl import threadpool_limits

    global _BLAS_LIMIT
    _BLAS_LIMIT = threadpool_limits(limits=1)


def shared():
    """The `shared` object of the fork_map this worker (or serial run) belongs to."""
    return _SHARED


def fork_map(fn, tasks: list, workers: int, shared_state) -> list:
    """[fn(task) for task in tasks], on `workers` forked processes; fn reads `shared()`.

    The shared state reaches the workers through the fork (copy-on-write), not by
    pickling. Runs serially when workers <= 1, with a single task, where fork is not
    available, or inside a pool worker (which cannot have children).
    """
    global _SHARED
    try:
        ctx = mp.get_context("fork")
    except ValueError:
        ctx = None
    _SHARED = shared_state
    try:
        if workers <= 1 or len(tasks) <= 1 or ctx is None or mp.current_process().daemon:
            return [fn(task) for task in tasks]
        with ctx.Pool(min(workers, len(tasks)), initializer=_init_worker) as pool:
            # chunksize 1: tasks of very different cost are spread over the workers.
            return pool.map(fn, tasks, chunksize=1)
    finally:
        _SHARED = None


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
