"""Integer parameters of a quantized graph: the one source for the simulator and the code generator."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir.layers import Graph, Layer
from ..ir.windows import valid_counts
from . import fixedpoint as fx
from .formats import Formats, QFormat, validate


@dataclass
class QLayer:
    """What one layer needs at run time, all integers.

    shift: the right shift of the shared requant step (negative = left shift).
    Conv/dense: weight (int64, same shape as the float weights), bias (int64 at
    accumulator scale in_frac + w_frac, saturated to 32 bits), acc_bound (worst-case |acc|).
    Avg pool: divisor and multiplier per output position (OH, OW).
    LRN: lut (1408 int64 entries). Add: in_shifts (left shifts onto the common frac).
    """

    layer: Layer
    out: QFormat
    in_fmts: list[QFormat]
    shift: int = 0
    alpha_q: int = 0
    six_q: int = 0
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    acc_bound: int = 0
    bias_saturated: int = 0
    weight_saturated: int = 0
    divisor: np.ndarray | None = None
    multiplier: np.ndarray | None = None
    lut: np.ndarray | None = None
    in_shifts: list[int] = field(default_factory=list)
    cache: dict = field(default_factory=dict, repr=False)  # derived data of the simulator's fast path

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def kind(self) -> str:
        return self.layer.kind

    @property
    def act(self) -> str:
        return self.layer.act


@dataclass
class QuantizedGraph:
    graph: Graph
    formats: Formats
    layers: dict[str, QLayer]

    def __getitem__(self, name: str) -> QLayer:
        return self.layers[name]

    @property
    def input(self) -> QFormat:
        return self.formats.input


def quantize_params(graph: Graph, formats: Formats, *, check: bool = True) -> QuantizedGraph:
    if check:
        validate(formats, graph)
    out = {}
    for layer in graph.layers:
        out[layer.name] = _qlayer(layer, formats.out(layer.name), formats.in_formats(graph, layer),
                                  formats.layers[layer.name].weight)
    return QuantizedGraph(graph, formats, out)


def _qlayer(layer: Layer, out: QFormat, ins: list[QFormat], wfmt: QFormat | None) -> QLayer:
    q = QLayer(layer, out, ins)
    if layer.act == "leaky":
        q.alpha_q = fx.leaky_alpha_q(layer.alpha)
    if layer.act == "relu6":
        q.six_q = fx.relu6_limit(out)
    kind = layer.kind
    if layer.has_weights:
        w = np.asarray(layer.weight, dtype=np.float64)
        q.weight = fx.quantize_tensor(w, wfmt)
        scaled = np.floor(np.ldexp(w, wfmt.frac) + 0.5)
        q.weight_saturated = int(np.count_nonzero((scaled < wfmt.lo) | (scaled > wfmt.hi)))
        acc_frac = ins[0].frac + wfmt.frac
        q.bias, q.bias_saturated = fx.quantize_bias(layer.bias, acc_frac)
        q.shift = fx.conv_shift(ins[0].frac, wfmt.frac, out.frac)
        xmax = 1 << (ins[0].bits - 1)
        per_out = np.abs(q.weight).reshape(q.weight.shape[0], -1).sum(axis=1) * xmax + np.abs(q.bias)
        q.acc_bound = int(per_out.max()) if per_out.size else 0
    elif kind == "pool":
        if layer.mode == "max":
            q.shift = ins[0].frac - out.frac  # 0: validated formats keep the input format
        else:
            if layer.mode == "global_avg":
                n = np.full((1, 1), layer.in_shape[1] * layer.in_shape[2], dtype=np.int64)
            elif layer.count_include_pad:
                n = np.full(layer.out_shape[1:], layer.kernel[0] * layer.kernel[1], dtype=np.int64)
            else:
                n = valid_counts(layer.in_shape[1:], layer.kernel, layer.stride, layer.pads).astype(np.int64)
            q.divisor = n
            q.multiplier = fx.avg_multiplier(n)
            q.shift = fx.avg_shift(ins[0], out)
    elif kind == "lrn":
        q.lut = fx.lrn_table(layer, ins[0])
        q.shift = fx.lrn_shift(ins[0], out)
    elif kind == "add":
        q.in_shifts, q.shift = fx.add_shifts(ins, out)
    elif kind == "concat":
        q.shift = 0
    else:
        raise ValueError(f"layer {layer.name}: no integer rule for kind {kind!r}")
    return q
