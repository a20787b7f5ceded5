"""Work on several cores: costing design points, and one-off parallel maps.

Both run on `cnn2gate.executor.LocalExecutor` (a fork process pool, one BLAS thread per
worker), or on a `RayExecutor` with `explore --cluster`. `CostPool` hands the evaluator's
cost and fidelity functions to the workers once (through the fork, or Ray's object
store), so only configurations travel to the workers and only `Cost` records and SQNR
values travel back. The `Evaluator` records the results in the order the points
were asked for, so a search gives the same history with any number of workers; only the
wall time changes.
"""
from __future__ import annotations

import math
import multiprocessing as mp
import sys

from ..executor import LocalExecutor, SerialExecutor, in_worker, shared, usable_cores
from .evaluator import POOL_MIN_SECONDS

#: A Ray task's round trip (a few ms with the configurations and results pickled) is longer
#: than a local pool's: a batch must be estimated to take this much longer before it goes there.
RAY_POOL_FACTOR = 4


def _fork_available() -> bool:
    try:
        mp.get_context("fork")
    except ValueError:
        return False
    return True


def _ray_connected() -> bool:
    """A Ray driver here: forking now can deadlock on the locks of Ray's threads."""
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def fork_map(fn, tasks: list, workers: int, shared_state, executor=None, progress=None) -> list:
    """[fn(task) for task in tasks], on `workers` forked processes; fn reads `shared()`.
    progress(n) is called as tasks finish, wherever they ran.

    The shared state reaches the workers through the fork (copy-on-write), not by
    pickling. Runs serially when workers <= 1, with a single task, where fork is not
    available, or inside a pool worker (no nested pools). With `executor` (a Ray
    cluster), the tasks run there instead, the shared state shipped once.
    """
    if executor is not None:
        executor.share(shared_state)
        return executor.map(fn, tasks, progress)
    if workers <= 1 or len(tasks) <= 1 or not _fork_available() or in_worker() or _ray_connected():
        return SerialExecutor(shared_state).map(fn, tasks, progress)
    with LocalExecutor(min(workers, len(tasks)), shared_state) as ex:
        return ex.map(fn, tasks, progress)


def _cost_chunk(jobs):
    cost, fidelity = shared()
    return [(cost(config, bits), None if bits is None or fidelity is None else fidelity(bits))
            for config, bits in jobs]


class CostPool:
    """Costs (config, bits) pairs with fixed cost and fidelity functions, in parallel.

    On a fork process pool of `workers` processes, or, given `executor` (a Ray cluster),
    as its tasks: the functions are then shipped once through the object store, and the
    executor stays open after close() (it belongs to the caller).
    """

    def __init__(self, cost, fidelity, workers: int, executor=None):
        self._shared = (cost, fidelity)
        self._own = executor is None
        self.min_seconds = POOL_MIN_SECONDS * (1 if executor is None else RAY_POOL_FACTOR)
        if executor is not None:
            self.workers = max(1, int(executor.workers))
            self._ex = executor
            executor.share(self._shared)
        else:
            if workers < 2:
                raise ValueError(f"a cost pool needs at least 2 workers, got {workers}")
            self.workers = int(workers)
            self._ex = LocalExecutor(self.workers, self._shared)
        self.points = 0  # configurations costed here (not in the caller)
        self.node_ids: set = set()  # Ray nodes that costed some (distributed runs)

    def map(self, jobs: list) -> list:
        """[(Cost, fidelity or None)] for [(config, bits)], in order; one chunk per worker."""
        per = math.ceil(len(jobs) / self.workers)
        chunks = [jobs[i:i + per] for i in range(0, len(jobs), per)]
        if not self._own:
            self._ex.share(self._shared)  # the executor may have run other maps since
        out = [r for chunk in self._ex.map(_cost_chunk, chunks) for r in chunk]
        self.points += len(jobs)
        self.node_ids.update(getattr(self._ex, "node_ids", ()))
        return out

    def close(self) -> None:
        if self._own:
            self._ex.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


__all__ = ["CostPool", "fork_map", "shared", "usable_cores"]
