"""Simulate a large input set in chunks, on any executor (cnn2gate.executor).

The graph and formats are the executor's shared object (shipped once); each task is
one chunk of inputs and returns that chunk's outputs, warnings and per-layer statistics.
The chunks are put back together in input order, so the result does not depend on
where (or in what order) the chunks ran.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..executor import SerialExecutor, shared
from . import simulate


@dataclass
class BatchResult:
    outputs: np.ndarray
    warnings: list[str] = field(default_factory=list)
    stats: dict[str, dict] = field(default_factory=dict)  # per layer, over every input
    node_ids: list[str] = field(default_factory=list)  # Ray node of each chunk (distributed runs)
    all_outputs: list[np.ndarray] = field(default_factory=list)  # every graph output; [0] is `outputs`


def _run_chunk(chunk):
    graph, qg, path, ints = shared()
    res = simulate(graph, qg, chunk, path=path, keep="output")
    return (res.outputs_int if ints else res.outputs_float), res.warnings, res.stats


def merge_stats(per_chunk: list[dict]) -> dict:
    """Per-layer statistics of several chunks as if they were one run: counts add, bits take the max."""
    total: dict[str, dict] = {}
    for stats in per_chunk:
        for name, st in stats.items():
            if name not in total:
                total[name] = dict(st)
                continue
            t = total[name]
            for k in ("sat_low", "sat_high", "outputs"):
                t[k] += st[k]
            for k in ("acc_bits", "bound_bits"):
                if k in st:
                    t[k] = max(t[k], st[k])
    return total


def simulate_batches(graph, qgraph, x, *, batch_size: int = 64, path: str = "fast",
                     ints: bool = False, executor=None, progress=None, on_outputs=None) -> BatchResult:
    """Outputs (dequantised, or the output layer's integers with ints=True) for x, chunk by chunk.

    x: a batch, or anything with len() whose slices are batches (`cnn2gate.shards.ShardSet`:
    a folder of .npy shards); chunks are sliced as they are submitted, a few per worker
    ahead, so only those chunks of x are in memory at once.
    executor: where the chunks run; built with shared object (graph, qgraph, path, ints)
    (see `shared_object`). Default: this process. progress(n) as n more chunks finish.
    on_outputs(list of arrays, one per graph output): takes each chunk's outputs, in input
    order, instead of keeping them (the result's outputs are then empty).
    """
    starts = range(0, len(x), batch_size)
    ex = executor if executor is not None else SerialExecutor(shared_object(graph, qgraph, path, ints))
    warnings: list[str] = []
    stats: dict[str, dict] = {}
    kept: list[list[np.ndarray]] = []
    window = 4 * max(1, getattr(ex, "workers", 1))  # chunks in flight: keeps every worker busy
    results = ex.imap(_run_chunk, (x[i:i + batch_size] for i in starts), window=window, progress=progress)
    try:
        for outs, ws, st in results:
            warnings.extend(w for w in ws if w not in warnings)
            stats = merge_stats([stats, st])  # merged as they come: memory does not grow with the set
            if on_outputs is not None:
                on_outputs(outs)
            else:
                kept.append(outs)
    finally:
        results.close()  # if on_outputs failed: cancel the chunks still in flight now
    outputs = [np.concatenate([outs[k] for outs in kept]) if kept else np.empty((0,))
               for k in range(len(graph.outputs))]
    return BatchResult(outputs[0], warnings, stats, list(getattr(ex, "node_ids", [])), outputs)


def shared_object(graph, qgraph, path: str = "fast", ints: bool = False):
    """What every chunk needs: the executor's shared object for simulate_batches."""
    return (graph, qgraph, path, ints)


__all__ = ["simulate_batches", "shared_object", "merge_stats", "BatchResult"]
