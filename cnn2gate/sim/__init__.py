"""Bit-accurate simulation of a quantized graph (docs/fixed-point.md).

Two paths that agree bit for bit: "reference" (plain int64) and "fast" (exact
float BLAS, see sim/fast.py; runs of consecutive layers it can compute in float32 share
one onnxruntime session, see sim/chain.py). The float executor is cnn2gate.ir.reference.

The accumulator is as wide as the formats need (docs/fixed-point.md): 32 bits when
every layer's worst case fits int32, else 64. A multiply-accumulate layer whose worst
case passes 2^52 leaves the fast path (float64 sums would round) for the int64 one.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from ..batch import as_batch
from ..errors import AccumulatorOverflow
from ..ir import reference as float_ref
from ..ir.layers import GRAPH_INPUT, Graph
from ..quant import fixedpoint as fx
from ..quant.formats import Formats
from ..quant.params import QuantizedGraph, quantize_params
from . import chain, fast, reference

PATHS = ("fast", "reference")


class _IntView(Mapping):
    """Layer outputs as int64 arrays, converted from the stored integer-valued arrays on access."""

    def __init__(self, store: dict[str, np.ndarray]):
        self._store = store

    def __getitem__(self, name: str) -> np.ndarray:
        v = self._store[name]
        return v if v.dtype == np.int64 else v.astype(np.int64)

    def __iter__(self):
        return iter(self._store)

    def __len__(self) -> int:
        return len(self._store)


class _FloatView(_IntView):
    def __init__(self, store, qgraph: QuantizedGraph):
        super().__init__(store)
        self._q = qgraph

    def __getitem__(self, name: str) -> np.ndarray:
        return fx.dequantize(self._store[name], self._q.formats.out(name))


@dataclass
class SimResult:
    graph: Graph
    qgraph: QuantizedGraph
    input_int: np.ndarray
    values: dict[str, np.ndarray]  # integer-valued arrays (int64 or float32), per layer
    stats: dict[str, dict]
    warnings: list[str] = field(default_factory=list)
    acc_bits: int = fx.ACC_BITS  # the design's accumulator width (QuantizedGraph.acc_bits)

    @property
    def ints(self) -> Mapping:
        return _IntView(self.values)

    @property
    def floats(self) -> Mapping:
        return _FloatView(self.values, self.qgraph)

    @property
    def output_int(self) -> np.ndarray:
        return self.ints[self.graph.output]

    @property
    def output_float(self) -> np.ndarray:
        y = self.floats[self.graph.output]
        return float_ref.softmax(y.reshape(y.shape[0], -1)).reshape(y.shape) if self.graph.softmax else y

    @property
    def outputs_int(self) -> list[np.ndarray]:
        """Every graph output's integers, in the graph's output order."""
        return [self.ints[name] for name in self.graph.outputs]

    @property
    def outputs_float(self) -> list[np.ndarray]:
        """Every graph output dequantised (softmax only exists with a single output)."""
        return [self.output_float] + [self.floats[name] for name in self.graph.outputs[1:]]


def _as_qgraph(graph: Graph, formats) -> QuantizedGraph:
    if isinstance(formats, QuantizedGraph):
        return formats
    if not isinstance(formats, Formats):
        raise TypeError("formats must be a Formats or a QuantizedGraph")
    return quantize_params(graph, formats)


def simulate(graph: Graph, formats, x, *, path: str = "fast", check_overflow: bool = True,
             keep: str = "all") -> SimResult:
    """Run the integer design on a float batch x (N, C, H, W); the input is quantised first.

    formats: a Formats (validated against graph) or a QuantizedGraph from quantize_params.
    keep="output" drops intermediate layer values as soon as no later layer needs them.
    Raises AccumulatorOverflow when an accumulator leaves the design's accumulator (only
    possible where the worst case needs more than 64 bits) or a LeakyReLU's scaled
    accumulator leaves 64 bits (unless check_overflow=False: then the values wrap, as the
    hardware's would).
    """
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    qg = _as_qgraph(graph, formats)
    x = as_batch(graph, x, error=ValueError, strict=False)
    input_int = fx.quantize_tensor(x, qg.formats.input)
    run = fast.run_layer if path == "fast" else reference.run_layer
    values: dict[str, np.ndarray] = {GRAPH_INPUT: input_int if path == "reference" else input_int.astype(np.float32)}
    last_use = {src: i for i, layer in enumerate(graph.layers) for src in layer.inputs}
    stats, warnings = {}, []
    runs = chain.runs(graph, qg) if path == "fast" and chain.ENABLED else {}
    done = {}  # results of a run of layers in one session (sim/chain.py), by layer name
    for i, layer in enumerate(graph.layers):
        q = qg[layer.name]
        ins = [values[s] for s in layer.inputs]
        here = runs.get(i)
        if here is not None and here.fits(input_int.shape[0]):
            done = dict(zip((r.name for r in here.layers), here.run(values)))
        if layer.name in done:
            y, info = done.pop(layer.name)
        elif path == "fast" and layer.has_weights and q.acc_bound >= fast.F64_EXACT // 2:
            y, info = reference.run_layer(q, *(np.asarray(v).astype(np.int64) for v in ins))
            y = y.astype(np.float32)
        else:
            y, info = run(q, *ins)
        values[layer.name] = y
        stats[layer.name] = st = _layer_stats(q, info, y.size)
        if layer.has_weights:
            _check_accumulator(q, st, info, ins, check_overflow, warnings)
        if keep == "output":
            for s in layer.inputs:
                if last_use.get(s) == i and s not in graph.outputs:
                    values.pop(s, None)
    values.pop(GRAPH_INPUT, None)
    return SimResult(graph, qg, input_int, values, stats, warnings, qg.acc_bits)


def _check_accumulator(q, st: dict, info: dict, ins: list, check: bool, warnings: list) -> None:
    """Worst case beyond 64 bits: a warning, and an error if an actual sum wrapped; a
    LeakyReLU's acc * alpha_q must stay inside 64 bits as well."""
    name = q.layer.name
    wide = fx.acc_width(q.acc_bound) is None
    if wide:
        warnings.append(f"layer {name}: worst-case accumulator needs {st['bound_bits']} bits (+ sign) > 63, "
                        f"more than the {fx.WIDE_ACC_BITS}-bit accumulator; the inputs seen so far "
                        f"stay within {st['acc_bits']} bits")
    if not check:
        return
    if wide and _wrapped(q, ins):
        raise AccumulatorOverflow(
            f"layer {name}: an accumulator left int{fx.WIDE_ACC_BITS}; the hardware would wrap. "
            "Use fewer weight/input fractional bits for this layer.")
    if q.act == "leaky" and not fx.fits_acc(info["acc_min"] * abs(q.alpha_q), 0, fx.WIDE_ACC_BITS):
        raise AccumulatorOverflow(
            f"layer {name}: accumulator {info['acc_min']} times the leaky slope {q.alpha_q} / 2^16 leaves "
            f"int{fx.WIDE_ACC_BITS}. Use fewer weight/input fractional bits for this layer.")


def _wrapped(q, ins: list) -> bool:
    """Whether bias + products left int64 for some output (the products alone always fit:
    at most 2^30 per product). Two's-complement addition overflows iff both terms have
    the sign the wrapped sum lacks."""
    ins = [np.asarray(v).astype(np.int64) for v in ins]
    _, acc = reference.run_kernel(q, *ins)
    _, prod = reference.run_kernel(replace(q, bias=np.zeros_like(q.bias), cache={}), *ins)
    with np.errstate(over="ignore"):
        bias = acc - prod  # exact: the wrap cancels
        return bool(np.any(((prod ^ acc) & (bias ^ acc)) < 0))


def _layer_stats(q, info: dict, n_out: int) -> dict:
    peak = max(abs(info["acc_min"]), abs(info["acc_max"]))
    st = {"kind": q.kind, "sat_low": info["sat_low"], "sat_high": info["sat_high"], "outputs": int(n_out)}
    if q.layer.has_weights:
        st.update(acc_bits=fx.magnitude_bits(peak), bound_bits=fx.magnitude_bits(q.acc_bound))
    return st


def sqnr_db(ref: np.ndarray, test: np.ndarray) -> float:
    """10 log10(signal power / error power); inf when identical."""
    ref = np.asarray(ref, dtype=np.float64)
    err = np.asarray(test, dtype=np.float64) - ref
    p_err = float(np.mean(err * err))
    p_sig = float(np.mean(ref * ref))
    if p_err == 0:
        return float("inf")
    if p_sig == 0:
        return float("-inf")
    return float(10.0 * np.log10(p_sig / p_err))


def report(graph: Graph, formats, x, *, path: str = "fast") -> list[dict]:
    """Per layer: output format, SQNR of the simulated output vs the float executor (dB),
    saturation counts and accumulator bits (actual and worst case)."""
    x = as_batch(graph, x, error=ValueError, strict=False)
    res = simulate(graph, formats, x, path=path, check_overflow=False)
    ref = float_ref.execute(graph, x)
    rows = []
    for layer in graph.layers:
        fmt = res.qgraph.formats.out(layer.name)
        st = res.stats[layer.name]
        row = {"name": layer.name, "kind": layer.kind, "format": str(fmt),
               "sqnr_db": round(float(sqnr_db(ref[layer.name], res.floats[layer.name])), 2),
               "sat_low": st["sat_low"], "sat_high": st["sat_high"], "outputs": st["outputs"]}
        if layer.has_weights:
            row.update(weight_format=str(res.qgraph.formats.layers[layer.name].weight),
                       acc_bits=st["acc_bits"], bound_bits=st["bound_bits"])
        rows.append(row)
    return rows


__all__ = ["simulate", "report", "SimResult", "sqnr_db", "PATHS"]
