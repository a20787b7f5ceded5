"""Integer parameters of a quantized graph: the one source for the simulator and the code generator."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import ops
from ..ir.layers import Graph, Layer
from . import fixedpoint as fx
from .formats import Formats, QFormat, validate


@dataclass
class QLayer:
    """What one layer needs at run time, all integers.

    shift: the right shift of the shared requant step (negative = left shift).
    Each operator's `quant_params` (cnn2gate/ops/) fills what its kind uses: weights
    (int64, same shape as the float weights), bias (int64 at accumulator scale,
    saturated to 64 bits) and acc_bound (worst-case |acc|, a Python int); per-position divisor and
    multiplier; a lookup table; in_shifts (left shifts onto a common fraction).
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

    def __getstate__(self):
        # The cache holds onnxruntime sessions (not picklable) and is rebuilt on first use.
        return {**self.__dict__, "cache": {}}

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

    @property
    def acc_bits(self) -> int:
        """The design's accumulator width (docs/fixed-point.md): 32 bits when every layer's
        worst case fits int32 (the guarantee that costs nothing), else 64."""
        bound = max((q.acc_bound for q in self.layers.values() if q.layer.has_weights), default=0)
        return fx.ACC_BITS if fx.acc_width(bound) == fx.ACC_BITS else fx.WIDE_ACC_BITS


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
    ops.op_for(layer).quant_params(q, ins, wfmt)
    return q
