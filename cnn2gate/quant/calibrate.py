"""Choosing fractional bits from data: maxabs, percentile and MSE rules, and the calibration run."""
from __future__ import annotations

import math

import numpy as np

from .. import ops
from ..batch import as_batch, internal_batch
from ..executor import SerialExecutor
from ..ir import reference as float_ref
from ..ir.layers import GRAPH_INPUT, Graph
from ..shards import ShardSet
from . import fixedpoint as fx
from .formats import MAX_ABS_FRAC, Formats, LayerFormat, QFormat

METHODS = ("maxabs", "percentile", "mse")
PERCENTILE = 99.99
#: the MSE search also tries up to this many extra fractional bits (clipping the top)
MSE_EXTRA_FRAC = 3
SAMPLE = 1 << 18
SYNTHETIC = {"kind": "synthetic", "distribution": "normal(0, 1)", "samples": 16, "seed": 0}


def frac_for(max_abs: float, bits: int) -> int:
    """Largest frac whose range holds max_abs without clipping."""
    hi = (1 << (bits - 1)) - 1
    if not max_abs > 0 or not math.isfinite(max_abs):
        return bits - 1
    f = math.floor(math.log2(hi / max_abs))
    # exact condition for "rounds into range": floor(m 2^f + 0.5) <= hi  <=>  m 2^f < hi + 0.5
    while max_abs * 2.0**f >= hi + 0.5:
        f -= 1
    while max_abs * 2.0 ** (f + 1) < hi + 0.5:
        f += 1
    return int(min(max(f, -MAX_ABS_FRAC), MAX_ABS_FRAC))


def _sample(values: np.ndarray, seed: int = 0, size: int = SAMPLE) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size > size:
        v = v[np.random.default_rng(seed).choice(v.size, size, replace=False)]
    return v


def quant_mse(v: np.ndarray, fmt: QFormat) -> float:
    return float(np.mean((fx.dequantize(fx.quantize_tensor(v, fmt), fmt) - v) ** 2))


def choose_frac(values: np.ndarray, bits: int, method: str, max_abs: float | None = None) -> int:
    """Fraction for a tensor given (a sample of) its values; max_abs: the exact largest |value|
    when `values` is only a sample."""
    v = _sample(values)
    if v.size == 0:
        return bits - 1
    a = np.abs(v)
    max_abs = float(a.max()) if max_abs is None else float(max_abs)
    if method == "maxabs":
        return frac_for(max_abs, bits)
    if method == "percentile":
        return frac_for(float(np.percentile(a, PERCENTILE)), bits)
    if method == "mse":
        f0 = frac_for(max_abs, bits)
        cands = [f for f in range(f0, f0 + MSE_EXTRA_FRAC + 1) if abs(f) <= MAX_ABS_FRAC]
        errs = [quant_mse(v, QFormat(bits, f)) for f in cands]
        return cands[int(np.argmin(errs))]
    raise ValueError(f"unknown calibration method {method!r}; choose from {', '.join(METHODS)}")


#: calibration runs the float executor on batches of about this many MACs
BATCH_MACS = 4e9


def synthetic_count(graph: Graph) -> int:
    """Samples in the synthetic set: 16, fewer for big models (at least 2)."""
    return int(min(SYNTHETIC["samples"], max(2, BATCH_MACS // max(graph.total_macs(), 1))))


def synthetic_calibration(graph: Graph) -> np.ndarray:
    """Deterministic normal(0, 1) inputs: 16 samples, fewer for big models (at least 2)."""
    n = synthetic_count(graph)
    rng = np.random.default_rng(SYNTHETIC["seed"])
    return internal_batch(rng.standard_normal((n,) + tuple(graph.input_shape)))


def _batch_stats(graph: Graph, x: np.ndarray, seed: int, size: int):
    """One calibration batch: per tensor its max |value| and a sample of at most `size` values."""
    values = float_ref.execute(graph, x)
    values[GRAPH_INPUT] = x
    return [(name, float(np.max(np.abs(v))) if v.size else 0.0, _sample(v, seed=seed, size=size))
            for name, v in values.items()]


def _batch_task(task):
    from ..executor import shared

    return _batch_stats(shared(), *task)


def batch_size(graph: Graph, n: int) -> int:
    """Inputs per calibration batch (about BATCH_MACS each) for a set of n inputs."""
    return int(max(1, min(n, BATCH_MACS // max(graph.total_macs(), 1))))


def collect(graph: Graph, calib: np.ndarray, executor=None,
            progress=None) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Run the float executor batch by batch; per tensor the exact max |value| and a random
    sample of at most SAMPLE values (memory stays bounded for big models and sets).

    executor: run the batches as its tasks (its shared object must be `graph`); the
    batches and their sampling seeds do not depend on it, and the results are merged
    in batch order, so the statistics are the same as in this process.
    progress(1) as each batch finishes.
    """
    n = calib.shape[0]
    batch = batch_size(graph, n)
    n_batches = -(-n // batch)
    size = SAMPLE // n_batches + 1
    tasks = ((calib[i : i + batch], i, size) for i in range(0, n, batch))  # sliced as they run: a shard
    # folder (cnn2gate.shards) is read a batch at a time
    if executor is None:
        results = SerialExecutor(graph).imap(_batch_task, tasks, progress=progress)  # one batch at a time
    else:
        results = executor.imap(_batch_task, tasks, progress=progress)
    max_abs: dict[str, float] = {}
    parts: dict[str, list[np.ndarray]] = {}
    for stats in results:
        for name, m, sample in stats:
            max_abs[name] = max(max_abs.get(name, 0.0), m)
            parts.setdefault(name, []).append(sample)
    return max_abs, {name: np.concatenate(p) for name, p in parts.items()}


class _Groups:
    """Union-find over tensor names that must share one format (an operator's `tied_inputs`)."""

    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, a: str) -> str:
        self.parent.setdefault(a, a)
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


def tied_tensors(graph: Graph) -> _Groups:
    groups = _Groups()
    for layer in graph.layers:
        groups.find(layer.name)
        for i in ops.op_for(layer).tied_inputs(layer):
            groups.union(layer.inputs[i], layer.name)
    groups.find(GRAPH_INPUT)
    return groups


def calibrate(graph: Graph, calib, bits: int, method: str, weight_bits: int, executor=None,
              progress=None, max_acc_bits: int = fx.WIDE_ACC_BITS) -> Formats:
    """max_acc_bits: the widest accumulator the design may have (64; 32 keeps every worst
    case inside int32 at the cost of weight precision, the rule before 64-bit accumulators)."""
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; choose from {', '.join(METHODS)}")
    if max_acc_bits not in (fx.ACC_BITS, fx.WIDE_ACC_BITS):
        raise ValueError(f"max_acc_bits must be {fx.ACC_BITS} or {fx.WIDE_ACC_BITS}, got {max_acc_bits!r}")
    acc_limit = (1 << (max_acc_bits - 1)) - 1
    source = {"kind": "user", "samples": None}
    if calib is None:
        calib = synthetic_calibration(graph)
        source = dict(SYNTHETIC)
    if not isinstance(calib, ShardSet):  # a ShardSet checks its samples as it reads them
        calib = as_batch(graph, calib, "calibration data", error=ValueError, strict=False)
    source["samples"] = int(calib.shape[0])
    max_abs, samples = collect(graph, calib, executor, progress)

    groups = tied_tensors(graph)
    members: dict[str, list[str]] = {}
    for name in [GRAPH_INPUT] + [layer.name for layer in graph.layers]:
        members.setdefault(groups.find(name), []).append(name)
    act_fmt: dict[str, QFormat] = {}
    for root, names in members.items():
        data = np.concatenate([samples[n] for n in names])
        fmt = QFormat(bits, choose_frac(data, bits, method, max(max_abs[n] for n in names)))
        for n in names:
            act_fmt[n] = fmt

    layers = {}
    for layer in graph.layers:
        v = samples[layer.name]
        out = act_fmt[layer.name]
        st = {"max_abs": max_abs[layer.name],
              "clipped": float(np.mean(np.abs(v) >= out.max_value + out.step / 2)) if v.size else 0.0}
        wfmt = None
        if layer.has_weights:
            w = np.asarray(layer.weight, dtype=np.float64)
            wfmt = QFormat(weight_bits, choose_frac(w, weight_bits, "maxabs" if method == "maxabs" else "mse"))
            in_fmt = act_fmt[layer.inputs[0]]
            # The accumulator is as wide as the formats need (32 bits, else 64: docs/fixed-point.md);
            # weight precision is given up only where even the widest allowed one could wrap.
            reduced = 0
            while True:
                wq = fx.quantize_tensor(w, wfmt)
                bq, _ = fx.quantize_bias(layer.bias, in_fmt.frac + wfmt.frac)
                bound = fx.acc_bound(wq, bq, in_fmt.bits)
                # a leaky layer's negative branch scales acc by alpha_q, in 64 bits
                scaled = bound * abs(fx.leaky_alpha_q(layer.alpha)) if layer.act == "leaky" else 0
                if (bound <= acc_limit and fx.acc_width(scaled) is not None) or wfmt.frac <= -MAX_ABS_FRAC:
                    break
                wfmt = QFormat(weight_bits, wfmt.frac - 1)
                reduced += 1
            st["w_max_abs"] = float(np.max(np.abs(w))) if w.size else 0.0
            if reduced:
                st["w_frac_reduced_for_accumulator"] = reduced
        st["sqnr_db"] = _tensor_sqnr(v, out)
        layers[layer.name] = LayerFormat(out, wfmt, st)

    stats = {"method": method, "bits": bits, "weight_bits": weight_bits, "calibration": source,
             "input_max_abs": max_abs[GRAPH_INPUT]}
    return Formats(act_fmt[GRAPH_INPUT], layers, stats)


def _tensor_sqnr(v: np.ndarray, fmt: QFormat) -> float:
    s = _sample(v)
    err = quant_mse(s, fmt)
    sig = float(np.mean(s * s))
    if err == 0:
        return 999.0
    return round(10 * math.log10(sig / err), 2) if sig > 0 else -999.0
