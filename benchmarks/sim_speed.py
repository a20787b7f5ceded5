"""Bit-accurate simulation speed vs onnxruntime float32 on the same model, same process, same threads.

    python benchmarks/sim_speed.py [--models vgg16,resnet18,mobilenetv2] [--threads N] [--repeat 10] [--ort-spinning 0|1] [--ort-spin-stop 0|1] [--layer-sessions]

Models are the full-size random-weight networks of examples/models.py (224x224,
batch 1). The simulator runs its fast path (exact integer arithmetic on BLAS)
with 8-bit formats calibrated on two synthetic images. The two sides run
alternately, so load from other processes hits both alike; per model the ratio
of the best of N runs of each and the ratio of medians are printed. Last line, the
ratios of medians of every model in order:
`ratio sim/onnxruntime (vgg16, resnet18, mobilenetv2): 1.25, 1.40, 3.10`.

Threads: onnxruntime gets `--threads` intra-op threads; the BLAS is limited to
the same count (threadpoolctl), and the simulator runs its tiled GEMMs on that
many threads with the BLAS held at one thread meanwhile (sim/fast.py).
onnxruntime's workers spin while waiting for work by default
(`session.intra_op.allow_spinning`); `--ort-spinning 0` turns that off, which
frees the cores between its runs but can cost onnxruntime some latency. By default the
benchmark's session also stops spinning when its run returns
(`session.force_spinning_stop`; `--ort-spin-stop 0` keeps the old behaviour): otherwise
its workers keep one of the cores busy well into the simulator's run that follows, and
that run, not onnxruntime's, pays for them (ResNet-18 on 2 cores: simulator 32-36 ms
instead of 23-25 ms). onnxruntime's own runs still spin while they work.
`--layer-sessions` runs every layer in its own onnxruntime session (sim/fast.py) instead
of joining runs of layers into one session (sim/chain.py), for before/after comparisons.
ONNX exports are cached in $CNN2GATE_BENCH_CACHE (default /tmp/cnn2gate-bench-cache).
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
CACHE_DIR = Path(os.environ.get("CNN2GATE_BENCH_CACHE", "/tmp/cnn2gate-bench-cache"))


def _times(fns, repeat: int) -> list[list[float]]:
    """Run the functions alternately `repeat` times each (after one warm-up), so that load from
    other processes hits both sides alike; returns the times per function."""
    for fn in fns:
        fn()  # warm-up: plans, caches, thread pools
    times = [[] for _ in fns]
    for _ in range(repeat):
        for fn, ts in zip(fns, times):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    return times


def bench(name: str, threads: int, repeat: int, ort_spinning: str = "1", spin_stop: str = "1") -> float:
    import onnxruntime as ort

    from cnn2gate.frontend import load_model
    from cnn2gate.quant import quantize, quantize_params
    from cnn2gate.sim import fast, simulate, sqnr_db
    from examples import models

    path = models.export(name, cache_dir=CACHE_DIR)
    graph = load_model(path)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1,) + tuple(graph.input_shape)).astype(np.float32)
    t = time.perf_counter()
    formats = quantize(graph, rng.standard_normal((2,) + tuple(graph.input_shape)), bits=8, method="maxabs")
    qg = quantize_params(graph, formats)
    t_quant = time.perf_counter() - t

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", ort_spinning)
    opts.add_session_config_entry("session.force_spinning_stop", spin_stop)
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x}
    result = {}

    def sim():
        result["r"] = simulate(graph, qg, x, path="fast")

    ts_ort, ts_sim = _times([lambda: sess.run(None, feed), sim], repeat)
    # best of N: the least disturbed run of each side (timeit's convention); medians printed too
    t_ort, t_sim = min(ts_ort), min(ts_sim)
    med_ratio = statistics.median(ts_sim) / statistics.median(ts_ort)
    fast.release_scratch()  # so the im2col buffer is counted in the peak
    tracemalloc.start()
    sim()
    sim_peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    y_ort = sess.run(None, feed)[0].reshape(1, -1)
    y_sim = result["r"].output_float.reshape(1, -1)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{name}: {graph.total_macs() / 1e9:.2f} GMAC, best of {repeat}: onnxruntime {t_ort * 1e3:.1f} ms, "
          f"simulator {t_sim * 1e3:.1f} ms, ratio {t_sim / t_ort:.2f}; medians: onnxruntime "
          f"{statistics.median(ts_ort) * 1e3:.1f} ms, simulator {statistics.median(ts_sim) * 1e3:.1f} ms, "
          f"ratio {med_ratio:.2f}; "
          f"quantise {t_quant:.1f} s, output SQNR vs onnxruntime {sqnr_db(y_ort, y_sim):.1f} dB, "
          f"simulator peak allocation {sim_peak_mb:.0f} MB (NumPy, one run), process peak RSS {peak_mb:.0f} MB",
          flush=True)
    return med_ratio


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="vgg16,resnet18,mobilenetv2")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--ort-spinning", choices=["0", "1"], default="1",
                    help="onnxruntime session.intra_op.allow_spinning (default 1, its own default)")
    ap.add_argument("--layer-sessions", action="store_true",
                    help="one onnxruntime session per layer (no runs of layers in one session)")
    ap.add_argument("--ort-spin-stop", choices=["0", "1"], default="1",
                    help="onnxruntime session.force_spinning_stop: 1 (default) stops its idle workers "
                         "spinning when a run returns, so they do not slow the simulator's run after it")
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_info, threadpool_limits

    print(f"threads: {args.threads} (onnxruntime intra-op and BLAS), onnxruntime spinning {args.ort_spinning} "
          f"(stopped after each run: {args.ort_spin_stop}), "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    names = [n.strip() for n in args.models.split(",")]
    if args.layer_sessions:
        from cnn2gate.sim import chain

        chain.ENABLED = False
    ratios = []
    with threadpool_limits(limits=args.threads):
        blas = [f"{i['internal_api']} {i['version']} ({i['threading_layer']}): {i['num_threads']} threads"
                for i in threadpool_info() if i["user_api"] == "blas"]
        print("BLAS:", "; ".join(blas) or "none found", flush=True)
        for name in names:
            ratios.append(bench(name, args.threads, args.repeat, args.ort_spinning, args.ort_spin_stop))
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    print(f"ratio sim/onnxruntime ({', '.join(names)}): {', '.join(f'{r:.2f}' for r in ratios)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
