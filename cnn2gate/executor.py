"""Map a function over tasks, in order: on local processes or on a Ray cluster.

Both backends take the function, the tasks and one `shared` object (a model, formats,
cost functions) that every task reads through `shared()`:

* `LocalExecutor(workers, shared)`: the standard library's process pool with the fork
  start method. The shared object reaches the workers through the fork (copy-on-write),
  never pickled; only tasks and results travel.
* `RayExecutor(address, shared)`: Ray tasks on a running cluster. The shared object is
  put in the object store once, so each node fetches it once, not once per task. Ray is
  imported only here: nothing about Ray is loaded unless this class is used.

Each worker runs with one BLAS thread (the executor fills the cores itself, and OpenBLAS
rounds differently with other thread counts). `map` returns the results in task order;
`imap` yields them in task order while reading the tasks lazily, a bounded window ahead
(for input sets larger than memory). `progress(n)` is called in the driver as n more tasks
finish, wherever they ran.
"""
from __future__ import annotations

import gc
import hashlib
import multiprocessing as mp
import os
import socket
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from .errors import Cnn2GateError

_SHARED = None  # the shared object, in a worker (inherited through fork or set per Ray task)
_IN_WORKER = False
_BLAS_LIMIT = None

RAY_RETRIES = 3  # per task, when its worker or node dies (application errors are not retried)


class ClusterError(Cnn2GateError):
    """The Ray cluster cannot be reached, or one of its nodes cannot run this cnn2gate."""


def shared():
    """The `shared` object of the map this task belongs to."""
    return _SHARED


def in_worker() -> bool:
    """True inside an executor's worker process (which does not start pools of its own)."""
    return _IN_WORKER


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def descendant_pids(root: int | None = None) -> set[int]:
    """`root` (default: this process) and every process it started, from /proc: the local pool's
    workers, or the nodes and workers of a Ray cluster started in-process (loopback tests and
    benchmarks account for their CPU and sockets this way)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # the process ended while we read
            children.setdefault(ppid, []).append(int(d))
    seen, todo = set(), [os.getpid() if root is None else root]
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo.extend(children.get(p, []))
    return seen


def _one_blas_thread() -> None:
    from threadpoolctl import threadpool_limits

    global _BLAS_LIMIT, _IN_WORKER
    _IN_WORKER = True
    _BLAS_LIMIT = threadpool_limits(limits=1)


def _noop():
    return None


class Executor:
    """Runs `fn(task)` for each task; `fn` must be a module-level function (picklable by name)."""

    workers: int = 1

    def map(self, fn, tasks, progress=None) -> list:
        raise NotImplementedError

    def imap(self, fn, tasks, window: int | None = None, progress=None):
        """Yield fn(task) in task order, reading `tasks` (any iterable) only as results are taken.

        At most `window` tasks (default: twice the workers) are submitted and not yet taken,
        so a stream of tasks larger than memory runs in bounded memory. progress(1) as each
        result is taken.
        """
        raise NotImplementedError

    def share(self, shared_state) -> None:
        """Make `shared_state` the shared object of later maps (not possible on a fork pool)."""
        raise NotImplementedError(f"{type(self).__name__} cannot change its shared object")

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SerialExecutor(Executor):
    """In this process, one task after another (the reference the others must match)."""

    def __init__(self, shared_state=None):
        self._shared = shared_state

    def share(self, shared_state) -> None:
        self._shared = shared_state

    def map(self, fn, tasks, progress=None) -> list:
        global _SHARED
        saved, _SHARED = _SHARED, self._shared
        try:
            out = []
            for task in tasks:
                out.append(fn(task))
                if progress:
                    progress(1)
            return out
        finally:
            _SHARED = saved

    def imap(self, fn, tasks, window=None, progress=None):
        global _SHARED
        for task in tasks:
            saved, _SHARED = _SHARED, self._shared
            try:
                result = fn(task)
            finally:
                _SHARED = saved
            if progress:
                progress(1)
            yield result


def _window(window, workers: int) -> int:
    return max(1, int(window) if window else 2 * workers)


class LocalExecutor(Executor):
    """A fork process pool of `workers` processes, all forked when the executor is made."""

    def __init__(self, workers: int, shared_state=None):
        global _SHARED
        if workers < 1:
            raise ValueError(f"an executor needs at least 1 worker, got {workers}")
        self.workers = int(workers)
        # Kept until close(): the workers see the object as it was at the fork.
        _SHARED = shared_state
        # Garbage of this process must die here: an onnxruntime session collected in a forked
        # child waits forever on its thread pool's threads, which the child does not have. And
        # the child's collector leaves what it inherited alone (frozen at the fork).
        gc.collect()
        gc.freeze()
        try:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("fork"),
                                             initializer=_one_blas_thread)
            # Fork now, before the caller starts threads of its own (a fork pool forks every
            # worker on its first task).
            self._pool.submit(_noop).result()
        finally:
            gc.unfreeze()

    def map(self, fn, tasks, progress=None) -> list:
        futures = [self._pool.submit(fn, task) for task in tasks]
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                if progress:
                    progress(len(done))
                for f in done:
                    f.result()  # the first failure ends the map
        except BaseException:
            for f in pending:
                f.cancel()
            raise
        return [f.result() for f in futures]

    def imap(self, fn, tasks, window=None, progress=None):
        window = _window(window, self.workers)
        futures: deque = deque()
        try:
            for task in tasks:
                futures.append(self._pool.submit(fn, task))
                if len(futures) >= window:
                    yield self._take(futures, progress)
            while futures:
                yield self._take(futures, progress)
        finally:  # a failure, Ctrl-C, or the caller stopped reading
            for f in futures:
                f.cancel()

    @staticmethod
    def _take(futures: deque, progress):
        result = futures[0].result()
        futures.popleft()
        if progress:
            progress(1)
        return result

    def close(self) -> None:
        global _SHARED
        pool, self._pool = self._pool, None
        if pool is not None:
            # Do not wait for tasks still queued after a failure: stop the workers.
            for p in list((pool._processes or {}).values()):
                p.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
        _SHARED = None


# ---- Ray ------------------------------------------------------------------------------

def versions() -> dict:
    """What must be the same on the driver and every node: the versions, and cnn2gate's own
    code (a node with an edited copy of the same version would compute other results)."""
    import ray

    from . import __version__

    return {"cnn2gate": __version__, "ray": ray.__version__, "cnn2gate code": _code_digest()}


_CODE_DIGEST = None


def _code_digest() -> str:
    """A digest of cnn2gate's .py files (read once per process, about 10 ms)."""
    global _CODE_DIGEST
    if _CODE_DIGEST is None:
        root = Path(__file__).resolve().parent
        h = hashlib.sha256()
        for path in sorted(root.rglob("*.py")):
            h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
        _CODE_DIGEST = h.hexdigest()[:12]
    return _CODE_DIGEST


def _node_versions():
    import ray

    return ray.get_runtime_context().get_node_id(), versions()


_RAY_SHARED: dict = {}  # in a Ray worker: the last few shared objects, by object id
_RAY_SHARED_KEEP = 4  # explore alternates between a few (sensitivity model, cost functions)


def _ray_task(fn, shared_ref, task, expected):
    """One task on a Ray worker: refuse a node whose versions differ, then fn(task).

    shared_ref comes in a list so that Ray does not resolve it per task: the worker
    deserialises it once and keeps it, with the caches the simulator fills on first use.
    """
    import ray

    global _SHARED
    node = ray.get_runtime_context().get_node_id()
    have = versions()
    if have != expected:
        raise ClusterError(_mismatch(node, have, expected))
    if _BLAS_LIMIT is None:
        _one_blas_thread()
    ref = shared_ref[0]
    key = ref.hex()
    if key not in _RAY_SHARED:
        while len(_RAY_SHARED) >= _RAY_SHARED_KEEP:
            _RAY_SHARED.pop(next(iter(_RAY_SHARED)))  # the oldest
        _RAY_SHARED[key] = ray.get(ref)
    saved, _SHARED = _SHARED, _RAY_SHARED[key]
    try:
        return node, fn(task)
    finally:
        _SHARED = saved


def _mismatch(node: str, have: dict, expected: dict) -> str:
    diff = ", ".join(f"{k} {have.get(k)} (driver: {v})" for k, v in expected.items() if have.get(k) != v)
    return f"Ray node {node} runs {diff}; install the driver's versions on every node"


def resolve_address(address: str) -> str:
    """The address given to --cluster; `auto` reads RAY_ADDRESS."""
    address = (address or "").strip()
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS", "").strip()
        if not address:
            raise ClusterError("--cluster auto: RAY_ADDRESS is not set; give the head's address (HOST:PORT)")
    if not address:
        raise ClusterError("--cluster: empty address; give the head's address (HOST:PORT) or auto")
    return address


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast, naming the address, before Ray's own (long) connection retries."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise ClusterError(f"--cluster {address}: expected HOST:PORT of the Ray head (for example 10.0.0.5:6379)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {e.strerror or e}") from None


class RayExecutor(Executor):
    """Tasks on the Ray cluster at `address` (HOST:PORT of the head, or `auto`).

    Connects on creation (and disconnects on close, unless this process was already
    connected), checks every live node's cnn2gate and Ray versions against the driver's,
    and puts `shared_state` in the object store once. Tasks whose worker or node dies are
    retried up to RAY_RETRIES times; their results are taken once, in task order.
    """

    def __init__(self, address: str, shared_state=None):
        self.address = resolve_address(address)
        _check_reachable(self.address)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray

        self._ray = ray
        self._owns_connection = not ray.is_initialized()
        if self._owns_connection:
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                         logging_level="ERROR", configure_logging=False)
            except Exception as e:  # Ray raises several types for an unusable address
                raise ClusterError(f"cannot connect to the Ray cluster at {self.address}: {e}") from None
        try:
            self.expected = versions()
            self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
            self._check_nodes()
            self._task = ray.remote(num_cpus=1, max_retries=RAY_RETRIES)(_ray_task)
            self._puts: list = []  # (object, its ref): the last few shared objects, kept alive
            self.share(shared_state)
        except BaseException:
            self.close()
            raise
        self.node_ids: list[str] = []  # where each task of the last map (or imap) ran

    def share(self, shared_state) -> None:
        """Make `shared_state` the shared object of later maps.

        It is put in the object store once: sharing an object again that was shared
        recently (explore alternates between a few) reuses its reference.
        """
        for obj, ref in self._puts:
            if obj is shared_state:
                self._shared = ref
                return
        self._shared = self._ray.put(shared_state)
        self._puts = [(shared_state, self._shared)] + self._puts[:_RAY_SHARED_KEEP - 1]

    def _check_nodes(self) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray = self._ray
        probe = ray.remote(num_cpus=0, max_retries=RAY_RETRIES)(_node_versions)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
                for n in nodes]
        try:
            found = ray.get(refs, timeout=120)
        except Exception as e:
            raise ClusterError(f"Ray cluster at {self.address}: a node cannot run cnn2gate: {_cause(e)}") from None
        for node, have in found:
            if have != self.expected:
                raise ClusterError(_mismatch(node, have, self.expected))

    def map(self, fn, tasks, progress=None) -> list:
        ray = self._ray
        refs = [self._task.remote(fn, [self._shared], task, self.expected) for task in tasks]
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                ray.get(done)  # raise the first failure now
                if progress:
                    progress(len(done))
            got = ray.get(refs)
        except ray.exceptions.RayTaskError as e:
            self._cancel(pending)
            cause = _cause(e)
            if isinstance(cause, Exception):
                raise cause from None
            raise
        except ray.exceptions.RayError as e:  # a task lost after all its retries
            self._cancel(pending)
            raise ClusterError(f"Ray cluster at {self.address}: {type(e).__name__}: {e}") from None
        except BaseException:
            # Ctrl-C or a lost task: leave nothing running on the cluster.
            self._cancel(pending)
            raise
        self.node_ids = [node for node, _ in got]
        return [result for _, result in got]

    def imap(self, fn, tasks, window=None, progress=None):
        window = _window(window, self.workers)
        refs: deque = deque()
        self.node_ids = []
        try:
            for task in tasks:
                refs.append(self._task.remote(fn, [self._shared], task, self.expected))
                if len(refs) >= window:
                    yield self._take(refs, progress)
            while refs:
                yield self._take(refs, progress)
        finally:  # a failure, Ctrl-C, or the caller stopped reading: leave nothing running
            self._cancel(refs)

    def _take(self, refs: deque, progress):
        ray = self._ray
        try:
            node, result = ray.get(refs[0])
        except ray.exceptions.RayTaskError as e:
            cause = _cause(e)
            if isinstance(cause, Exception):
                raise cause from None
            raise
        except ray.exceptions.RayError as e:  # a task lost after all its retries
            raise ClusterError(f"Ray cluster at {self.address}: {type(e).__name__}: {e}") from None
        refs.popleft()
        self.node_ids.append(node)
        if progress:
            progress(1)
        return result

    def _cancel(self, refs) -> None:
        """Leave none of `refs` running. A connection this executor opened is closed instead:
        Ray then ends the job and kills its leased workers, while `ray.cancel` of a task whose
        reply is in flight can crash the driver in Ray 2.60 (ray-project/ray#54846: "Tried to
        complete task that was not pending")."""
        if not refs:
            return
        if self._owns_connection:
            self.close()
            return
        for ref in refs:
            self._ray.cancel(ref)

    def close(self) -> None:
        if self._owns_connection and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns_connection = False


def _cause(e: BaseException):
    """The task's own exception inside Ray's wrapper (RayTaskError.cause)."""
    cause = getattr(e, "cause", None)
    return cause if cause is not None else e


def make_executor(cluster: str | None, workers: int = 1, shared_state=None) -> Executor:
    """RayExecutor when `cluster` is given, else local processes (serial for one worker)."""
    if cluster:
        return RayExecutor(cluster, shared_state)
    if workers > 1 and not _IN_WORKER:
        return LocalExecutor(workers, shared_state)
    return SerialExecutor(shared_state)


__all__ = ["Executor", "SerialExecutor", "LocalExecutor", "RayExecutor", "ClusterError", "make_executor",
           "shared", "in_worker", "usable_cores", "resolve_address", "versions"]
