"""The execution plan of a quantized graph on the generated accelerator.

Decides, per layer, which kernel runs it, where every tensor lives (buffers and
channel-offset views for concat), the integer kernel arguments, and the weight
arrays in the device layout (docs/architecture.md). Everything the templates
render comes from here; the templates hold no model logic.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, ModelError
from ..ir.layers import GRAPH_INPUT, LRN, Add, Concat, Conv, Dense, Pool
from ..quant.params import QuantizedGraph
from . import layout
from .names import layer_stem

ACT_CODES = {"none": 0, "relu": 1, "relu6": 2, "leaky": 3}
ALL_KERNELS = ("mem_read", "conv_core", "mem_write", "dw_conv", "pool", "lrn", "eltwise")
ADD_MAX_INPUTS = 4
CHANNEL_DEPTH = 64

#: fields of every layer's host configuration (host/layers.h), zero unless set
_FIELDS = (
    "in_c", "in_h", "in_w", "out_c", "out_h", "out_w", "groups", "cg", "cv", "mg", "mb_num",
    "k_h", "k_w", "stride_y", "stride_x", "dil_y", "dil_x", "pad_t", "pad_l",
    "is_max", "lrn_size", "lrn_half_lo", "shift", "out_bits", "act", "alpha_q", "six_q",
)


@dataclass(frozen=True)
class HwParams:
    vec_size: int
    lane_num: int
    conv_gp_size_x: int

    @classmethod
    def from_config(cls, config) -> "HwParams":
        """From an HwConfig (attributes) or a plain dict with the same keys."""
        values = {}
        for key in ("vec_size", "lane_num", "conv_gp_size_x"):
            v = config.get(key) if isinstance(config, dict) else getattr(config, key, None)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= int(v) <= 256:
                raise ConfigError(f"hardware config: {key} must be an integer in [1, 256], got {v!r}")
            values[key] = int(v)
        return cls(**values)


@dataclass(frozen=True)
class View:
    buf: int
    c_off: int


@dataclass
class Buffer:
    name: str
    c: int
    h: int
    w: int


@dataclass
class LayerPlan:
    index: int
    stem: str
    kind: str  # conv | dwconv | pool | lrn | add | concat
    ir_kind: str
    inputs: list[View]
    output: View
    args: dict[str, int]
    lsh: list[int] = field(default_factory=lambda: [0] * ADD_MAX_INPUTS)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # "w", "b", "lut" -> device layout


@dataclass
class Plan:
    model: str
    hw: HwParams
    data_bits: int  # 8 or 16
    input_shape: tuple[int, int, int]
    buffers: list[Buffer]
    layers: list[LayerPlan]
    output_layer: int
    kernels: list[str]
    sizes: dict[str, int]

    @property
    def data_dtype(self) -> np.dtype:
        return np.dtype("i1") if self.data_bits == 8 else np.dtype("<i2")


def chw(shape) -> tuple[int, int, int]:
    """Feature maps as (C, H, W); a vector (N,) is (N, 1, 1)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 3:
        return shape
    if len(shape) == 1:
        return (shape[0], 1, 1)
    raise ModelError(f"tensor shape {shape} is neither (C, H, W) nor (N,)")


def _data_bits(qg: QuantizedGraph) -> int:
    fm = qg.formats
    bits = [fm.input.bits] + [lf.out.bits for lf in fm.layers.values()]
    bits += [lf.weight.bits for lf in fm.layers.values() if lf.weight is not None]
    return 8 if max(bits) <= 8 else 16


def _concat_owners(graph) -> dict[str, tuple[str, int]]:
    """Tensor -> (concat that holds it, channel offset inside that concat)."""
    owners: dict[str, tuple[str, int]] = {}
    for layer in graph.layers:
        if not isinstance(layer, Concat):
            continue
        if layer.act != "none":
            raise ModelError(f"layer {layer.name}: a concat cannot carry an activation")
        off = 0
        for src in layer.inputs:
            if src == GRAPH_INPUT:
                raise ModelError(f"layer {layer.name}: concatenating the graph input is not supported")
            if src in owners:
                raise ModelError(f"layer {layer.name}: tensor {src} feeds more than one concat (or the same one twice); "
                                 "concat is done by addressing, so a tensor can live in one concat buffer only")
            owners[src] = (layer.name, off)
            off += chw(graph.shape_of(src))[0]
    return owners


def make_plan(qg: QuantizedGraph, hw: HwParams) -> Plan:
    graph = qg.graph
    graph.validate()
    owners = _concat_owners(graph)
    buffers = [Buffer("input", *chw(graph.input_shape))]
    own_buf = {GRAPH_INPUT: 0}
    stems = {}
    for i, layer in enumerate(graph.layers):
        stems[layer.name] = layer_stem(i, layer.name)
        if layer.name not in owners:
            own_buf[layer.name] = len(buffers)
            buffers.append(Buffer(stems[layer.name], *chw(layer.out_shape)))

    def view(name: str) -> View:
        if name in owners:
            parent, off = owners[name]
            pv = view(parent)
            return View(pv.buf, pv.c_off + off)
        return View(own_buf[name], 0)

    layers = []
    for i, layer in enumerate(graph.layers):
        q = qg[layer.name]
        args = dict.fromkeys(_FIELDS, 0)
        ic, ih, iw = chw(layer.in_shapes[0])
        oc, oh, ow = chw(layer.out_shape)
        args.update(in_c=ic, in_h=ih, in_w=iw, out_c=oc, out_h=oh, out_w=ow,
                    shift=q.shift, out_bits=q.out.bits, act=ACT_CODES[layer.act], alpha_q=q.alpha_q, six_q=q.six_q)
        lp = LayerPlan(i, stems[layer.name], "", layer.kind, [view(s) for s in layer.inputs], view(layer.name), args)
        _fill(lp, layer, q, hw)
        layers.append(lp)

    kernels = []
    kinds = {lp.kind for lp in layers}
    if "conv" in kinds:
        kernels += ["mem_read", "conv_core", "mem_write"]
    for kind, kernel in (("dwconv", "dw_conv"), ("pool", "pool"), ("lrn", "lrn"), ("add", "eltwise")):
        if kind in kinds:
            kernels.append(kernel)
    if not kernels:
        raise ModelError(f"model {graph.name} has no layer that runs on the device")

    convs = [lp.args for lp in layers if lp.kind == "conv"]
    sizes = {
        "win_buf_size": max([a["cv"] * a["k_h"] * layout.window_width(a, hw) for a in convs], default=1),
        "weight_buf_size": max([a["cv"] * a["k_h"] * a["k_w"] for a in convs], default=1),
        "lrn_max_size": max([lp.args["lrn_size"] for lp in layers if lp.kind == "lrn"], default=1),
        "add_max_inputs": ADD_MAX_INPUTS,
        "channel_depth": CHANNEL_DEPTH,
    }
    return Plan(graph.name, hw, _data_bits(qg), chw(graph.input_shape), buffers, layers,
                [lp.index for lp in layers if lp.stem == stems[graph.output]][0], kernels, sizes)


def _fill(lp: LayerPlan, layer, q, hw: HwParams) -> None:
    a = lp.args
    if isinstance(layer, Conv) and layer.depthwise and layer.out_channels == layer.in_shape[0]:
        lp.kind = "dwconv"
        _geometry(a, layer.kernel, layer.stride, layer.dilation, layer.pads)
        a.update(groups=layer.groups, cg=1, mg=1)
        lp.arrays["w"], lp.arrays["b"] = layout.depthwise_weights(q.weight, q.bias, hw.vec_size)
    elif isinstance(layer, (Conv, Dense)):
        lp.kind = "conv"
        if isinstance(layer, Conv):
            weight, groups = q.weight, layer.groups
            _geometry(a, layer.kernel, layer.stride, layer.dilation, layer.pads)
        else:  # a conv whose kernel covers the whole input map: one output pixel
            weight, groups = q.weight.reshape((q.weight.shape[0],) + (a["in_c"], a["in_h"], a["in_w"])), 1
            _geometry(a, (a["in_h"], a["in_w"]), (1, 1), (1, 1), (0, 0, 0, 0))
        m, cg = weight.shape[:2]
        mg = m // groups
        a.update(groups=groups, cg=cg, mg=mg, cv=-(-cg // hw.vec_size), mb_num=-(-mg // hw.lane_num))
        lp.arrays["w"], lp.arrays["b"] = layout.conv_weights(weight, q.bias, groups, hw.vec_size, hw.lane_num)
    elif isinstance(layer, Pool):
        lp.kind = "pool"
        if layer.mode == "global_avg":
            _geometry(a, (a["in_h"], a["in_w"]), (1, 1), (1, 1), (0, 0, 0, 0))
        else:
            _geometry(a, layer.kernel, layer.stride, (1, 1), layer.pads)
        a["is_max"] = int(layer.mode == "max")
        if layer.mode != "max":
            lp.arrays["lut"] = layout.int32(np.broadcast_to(q.multiplier, (a["out_h"], a["out_w"])))
    elif isinstance(layer, LRN):
        lp.kind = "lrn"
        a.update(lrn_size=layer.size, lrn_half_lo=(layer.size - 1) // 2)
        lp.arrays["lut"] = layout.int32(q.lut)
    elif isinstance(layer, Add):
        lp.kind = "add"
        if len(layer.inputs) > ADD_MAX_INPUTS:
            raise ModelError(f"layer {layer.name}: an add of {len(layer.inputs)} inputs; at most {ADD_MAX_INPUTS} are supported")
        lp.lsh = list(q.in_shifts) + [0] * (ADD_MAX_INPUTS - len(q.in_shifts))
    elif isinstance(layer, Concat):
        lp.kind = "concat"
    else:
        raise ModelError(f"layer {layer.name}: kind {layer.kind!r} has no kernel")


def _geometry(a: dict, kernel, stride, dilation, pads) -> None:
    a.update(k_h=int(kernel[0]), k_w=int(kernel[1]), stride_y=int(stride[0]), stride_x=int(stride[1]),
             dil_y=int(dilation[0]), dil_x=int(dilation[1]), pad_t=int(pads[0]), pad_l=int(pads[1]))
