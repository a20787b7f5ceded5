"""One worker against a Ray cluster: simulation over an input set (an array and a folder of
shards), a batched precision search, and the per-task overhead. Results are checked equal.

    python benchmarks/cluster_scaling.py --cluster HOST:PORT|auto [--model vgg16 --width 0.25 --size 32]
    python benchmarks/cluster_scaling.py --loopback            # starts two 1-CPU nodes on 127.0.0.1

Every run uses the executors of `cnn2gate.executor`, as `simulate --cluster` and
`explore --cluster` do. The baseline is this process alone with one BLAS thread (one
worker); the cluster's workers run with one BLAS thread each. With --loopback both nodes
share this machine's cores (and Ray's own processes take CPU too: their CPU time during
the cluster runs is printed), so on a 2-core machine the ratio is the best a 2-node
cluster of 1-CPU machines could do, less Ray's overhead. Loopback only: the nodes and
this driver run with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, so they bind to 127.0.0.1.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
CACHE_DIR = Path(os.environ.get("CNN2GATE_BENCH_CACHE", "/tmp/cnn2gate-bench-cache"))


def _cpu_by_role() -> dict[str, float]:
    """CPU seconds (user + system) so far of the Ray processes this process started:
    task workers (`ray::…`) and Ray's own (raylet, GCS, agents)."""
    from cnn2gate.executor import descendant_pids

    tick = os.sysconf("SC_CLK_TCK")
    out = {"workers": 0.0, "ray": 0.0}
    for pid in descendant_pids() - {os.getpid()}:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        cpu = (int(fields[11]) + int(fields[12])) / tick
        out["workers" if cmd.startswith("ray::") else "ray"] += cpu
    return out


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _noop(_):
    return None


def _niceness(_):
    return os.nice(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--cluster", metavar="ADDRESS", help="HOST:PORT of a running Ray head, or auto (RAY_ADDRESS)")
    where.add_argument("--loopback", action="store_true", help="start two 1-CPU Ray nodes on 127.0.0.1 for the run")
    ap.add_argument("--model", default="vgg16")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--size", type=int, default=64, help="input height and width")
    ap.add_argument("--inputs", type=int, default=384)
    ap.add_argument("--batch", type=int, default=16, help="inputs per simulation task")
    ap.add_argument("--shards", type=int, default=3, help="the same inputs as a folder of this many .npy shards")
    ap.add_argument("--budget", type=int, default=600, help="design points of the precision search")
    ap.add_argument("--calib", type=int, default=8, help="calibration inputs of the precision search")
    ap.add_argument("--max-loss", type=float, default=15.0, help="--max-accuracy-loss of the search (points)")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # nodes and driver on 127.0.0.1
    # Ray starts its workers at niceness 15: on a machine shared with other jobs they would get
    # less CPU than the one-worker baseline (niceness 0). --loopback starts them at the same
    # niceness, so the comparison is fair; for --cluster it is the cluster's own setting.
    os.environ.setdefault("RAY_worker_niceness", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from threadpoolctl import threadpool_limits

    from cnn2gate.executor import RayExecutor, SerialExecutor
    from cnn2gate.explore import ExploreOptions, explore
    from cnn2gate.frontend import load_model
    from cnn2gate.quant import quantize, quantize_params
    from cnn2gate.shards import ShardSet
    from cnn2gate.sim.batches import shared_object, simulate_batches
    from examples import models

    graph = load_model(models.export(args.model, width=args.width, input_size=args.size, cache_dir=CACHE_DIR))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.inputs,) + tuple(graph.input_shape))
    qg = quantize_params(graph, quantize(graph, x[:64]))
    tmp = Path(tempfile.mkdtemp(prefix="cnn2gate-cluster-"))
    for i, part in enumerate(np.array_split(x, args.shards)):
        np.save(tmp / f"part{i:03d}.npy", part)
    shards = ShardSet(graph, tmp)

    cluster = None
    address = args.cluster
    if args.loopback:
        from ray.cluster_utils import Cluster

        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        address = cluster.address
    print(f"{args.model} x{args.width} {args.size}x{args.size}: {args.inputs} inputs, {args.batch} per task "
          f"({-(-args.inputs // args.batch)} tasks), shards {shards.lengths}", flush=True)
    try:
        serial = SerialExecutor(shared_object(graph, qg))
        t_connect, ex = _timed(lambda: RayExecutor(address, shared_object(graph, qg)))
        times: dict[str, list[float]] = {k: [] for k in ("local", "local shards", "cluster", "cluster shards")}
        cpu = {"workers": 0.0, "ray": 0.0}
        ref = ref_stats = None  # the first local run's
        local_cpu: list[float] = []  # CPU time / wall time of the local runs (1: one thread, not starved)
        driver_cpu: list[float] = []  # the same for this process during the cluster runs
        try:  # one connection for the whole run: its workers import cnn2gate once
            for _ in range(args.repeat):  # alternately, so that load from other jobs hits both sides alike
                for name, where, data in (("local", serial, x), ("local shards", serial, shards),
                                          ("cluster", ex, x), ("cluster shards", ex, shards)):
                    kept = []
                    cpu0, self0 = _cpu_by_role(), time.process_time()
                    with threadpool_limits(limits=1):  # one worker: this process, one BLAS thread
                        t, res = _timed(lambda: simulate_batches(graph, qg, data, batch_size=args.batch,
                                                                 executor=where, on_outputs=kept.append))
                    cpu1 = _cpu_by_role()
                    if where is ex:
                        cpu = {k: cpu[k] + cpu1[k] - cpu0[k] for k in cpu}
                        driver_cpu.append((time.process_time() - self0) / t)
                    else:
                        local_cpu.append((time.process_time() - self0) / t)
                    times[name].append(t)
                    out = np.concatenate([o[0] for o in kept])
                    if ref is None:
                        ref, ref_stats = out, res.stats
                    assert out.tobytes() == ref.tobytes() and res.stats == ref_stats, name
            nodes = len(set(ex.node_ids))
            nice = sorted(set(ex.map(_niceness, range(4))))
            t_tasks, _ = _timed(lambda: ex.map(_noop, range(200)))
            t_tasks, _ = _timed(lambda: ex.map(_noop, range(200)))  # workers started by the first
        except BaseException:
            ex.close()
            raise
        print(f"simulate, connect {t_connect:.2f} s; tasks ran on {nodes} nodes (worker niceness {nice}, this "
              f"process {os.nice(0)}); outputs and statistics identical:")
        for name, ts in times.items():
            print(f"  {name:15s} {', '.join(f'{t:.2f}' for t in ts)} s", flush=True)
        print(f"  local runs: CPU time / wall time {min(local_cpu):.2f}-{max(local_cpu):.2f} "
              f"(one thread: at most 1; less when other jobs take the core); this process during the "
              f"cluster runs {min(driver_cpu):.2f}-{max(driver_cpu):.2f}", flush=True)
        if cluster is not None:
            print(f"  during the cluster runs: task workers {cpu['workers']:.1f} CPU s, "
                  f"Ray's own processes {cpu['ray']:.1f} CPU s", flush=True)
        for kind in ("", " shards"):
            print(f"  speed-up{kind} (best of {args.repeat}, the first cluster run starts Ray's workers): "
                  f"{min(times['local' + kind]) / min(times['cluster' + kind]):.2f}x", flush=True)
        print(f"per-task overhead: {1e3 * t_tasks / 200:.2f} ms (200 empty tasks)", flush=True)

        # a batched precision search with an accuracy bound: the sensitivity model, the uniform
        # widths' simulations, design points and candidate checks on the cluster, the same history.
        # Labels: the float model's own top-1 classes (random weights have no data set).
        from cnn2gate.ir.reference import predict

        calib = x[:args.calib]
        labels = np.argmax(predict(graph, calib), axis=1)
        opts = dict(agent="random", budget=args.budget, seed=1, precision=True, calib=calib, labels=labels,
                    max_accuracy_loss=args.max_loss)
        with threadpool_limits(limits=1):
            t_el, e_local = _timed(lambda: explore(graph, "a10", ExploreOptions(workers=1, **opts)))
        with ex:
            t_ed, e_dist = _timed(lambda: explore(graph, "a10", ExploreOptions(**opts), executor=ex))
        same = [(e.point, e.total_ms, e.fidelity) for e in e_local.evaluator.history] == \
               [(e.point, e.total_ms, e.fidelity) for e in e_dist.evaluator.history]
        assert same and getattr(e_local.best, "point", None) == getattr(e_dist.best, "point", None)
        print(f"explore --precision --agent random --budget {args.budget} --max-accuracy-loss {args.max_loss} "
              f"({args.calib} labelled inputs): "
              f"1 worker {t_el:.2f} s (sensitivity model {e_local.timings.sensitivity_s:.2f} s); cluster "
              f"{t_ed:.2f} s (sensitivity model {e_dist.timings.sensitivity_s:.2f} s, "
              f"{e_dist.evaluator.pooled} of {e_dist.evaluator.n_evals} points costed as tasks); "
              f"speed-up {t_el / t_ed:.2f}x; same history and design", flush=True)
    finally:
        if cluster is not None:
            import ray

            if ray.is_initialized():
                ray.shutdown()
            cluster.shutdown()
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()


if __name__ == "__main__":
    main()
