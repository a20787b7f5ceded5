"""The execution plan of a quantized graph on the generated accelerator.

Built on the one lowering (ops/lowering.py) that the cost model prices: per layer, the
kernel layer its operator chose, where every tensor lives (buffers and channel-offset
views for layers done by addressing), the integer kernel arguments and the weight
arrays in the device layout (docs/architecture.md). Everything the templates render
comes from here; the templates hold no model logic.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import ops
from ..errors import ModelError
from ..hw.arch import ADD_MAX_INPUTS, GENERATED
from ..hw.config import HwConfig
from ..hw.packing import DspPacking, chain_packing
from ..hw.storage import char_kernels, narrow_io, out_bits_of, read_side
from ..hw.widths import weight_type_bits, widths_from_formats
from ..ir.layers import GRAPH_INPUT
from ..ops.base import ArchLimit, KernelLayer, chw
from ..ops.lowering import BufferSizes, buffer_sizes, design_kernels, limits, lower
from ..quant.params import QuantizedGraph
from .interface import KERNELS as ALL_KERNELS
from .layout import pack_weights
from .names import layer_stem

ACT_CODES = {"none": 0, "relu": 1, "relu6": 2, "leaky": 3}

#: fields of every layer's host configuration (host/layers.h), zero unless set: the shapes and
#: the requantisation step, then whatever the operators' kernels read (`Op.host_fields`)
_FIELDS = ("in_c", "in_h", "in_w", "out_c", "out_h", "out_w", "batch", "shift", "out_bits", "act", "alpha_q", "six_q",
           "w_bits",  # the layer's packed weight width; 0 when its weights are data_t
           "rd_narrow", "wr_narrow",  # inputs (bit i: input i) / output stored as char (hw/storage.py)
           *dict.fromkeys(f for op in ops.OPS for f in op.host_fields))


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
    narrow: bool = False  # stored as 8-bit char in a short design (hw/storage.py)


@dataclass
class LayerPlan:
    index: int
    stem: str
    kernel_layer: KernelLayer  # the lowering's entry, also priced by the cost model
    ir_kind: str
    inputs: list[View]
    output: View
    args: dict[str, int]
    lsh: list[int] = field(default_factory=lambda: [0] * ADD_MAX_INPUTS)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # "w", "b", "lut" -> device layout

    @property
    def host_kind(self) -> str:
        return self.kernel_layer.op.host_kind


@dataclass
class Plan:
    model: str
    hw: HwConfig
    data_bits: int  # 8 or 16
    input_shape: tuple[int, int, int]
    buffers: list[Buffer]
    layers: list[LayerPlan]
    output_layer: int
    kernels: list[str]
    depths: BufferSizes  # the lowering's buffer depths (the cost model sizes the same ones)
    packed_weights: bool = False  # weights packed at each layer's width (hw/widths.py)
    output_layers: list[int] = field(default_factory=list)  # every graph output in order; [0] is output_layer
    dsp_pack: DspPacking | None = None  # two products per multiplier in conv_core (hw/packing.py)
    acc_bits: int = 32  # the multiply-accumulate kernels' accumulator, 32 or 64 (QuantizedGraph.acc_bits)
    # kernel -> "char" | "both": how its feature-map accesses are typed (hw/storage.py char_kernels)
    char_modes: dict[str, str] = field(default_factory=dict)
    weight_bits: int = 0  # conv_core's weight_t: 8 or 16 (hw/widths.py weight_type_bits); 0: data_bits

    @property
    def weight_type_bits(self) -> int:
        """Bits of weight_t: below data_bits only in the narrow-weight mode."""
        return self.weight_bits or self.data_bits

    @property
    def narrow_act(self) -> bool:
        """Whether some activation buffer is stored narrower than data_t (hw/storage.py)."""
        return any(b.narrow for b in self.buffers)

    @property
    def data_dtype(self) -> np.dtype:
        return np.dtype("i1") if self.data_bits == 8 else np.dtype("<i2")

    @property
    def acc_dtype(self) -> np.dtype:
        """The biases' type in the weight files: the accumulator's width."""
        return np.dtype("<i8") if self.acc_bits == 64 else np.dtype("<i4")

    @property
    def sizes(self) -> dict[str, int]:
        """Buffer depths as the templates declare them."""
        return self.depths.declared()


def _addressed(graph) -> dict[str, tuple[str, int]]:
    """Tensor -> (layer whose buffer holds it, channel offset there), for layers done by addressing."""
    owners: dict[str, tuple[str, int]] = {}
    for layer in graph.layers:  # outputs that are a channel range of their input's buffer
        placed = ops.op_for(layer).placed(layer, graph)
        if placed is not None:
            owners[layer.name] = placed
    for layer in graph.layers:
        views = ops.op_for(layer).views(layer, graph)
        for src, off in views or ():
            if src == GRAPH_INPUT:
                raise ArchLimit(f"layer {layer.name}: the graph input cannot be placed in a {layer.kind} buffer (a "
                                f"{layer.kind} is done by addressing); cnn2gate.ir.copies.add_view_copies copies it")
            if src in owners:
                raise ArchLimit(f"layer {layer.name}: tensor {src} feeds more than one {layer.kind} (or the same one "
                                f"twice); a {layer.kind} is done by addressing, so a tensor can live in one such buffer "
                                "only; cnn2gate.ir.copies.add_view_copies copies it")
            owners[src] = (layer.name, off)
    return owners


def make_plan(qg: QuantizedGraph, hw: HwConfig) -> Plan:
    graph = qg.graph
    graph.validate()
    try:
        owners = _addressed(graph)
    except ArchLimit as err:
        raise ModelError(str(err)) from None
    problems = limits(graph)
    if problems:
        raise ModelError("; ".join(problems))
    lowered = lower(graph)
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
    for i, (layer, k) in enumerate(zip(graph.layers, lowered.layers)):
        q = qg[layer.name]
        args = dict.fromkeys(_FIELDS, 0)
        ic, ih, iw = chw(layer.in_shapes[0])
        oc, oh, ow = chw(layer.out_shape)
        # batch: images per call of the layer's kernels, as the cost model prices it (Op.batched)
        args.update(in_c=ic, in_h=ih, in_w=iw, out_c=oc, out_h=oh, out_w=ow, batch=hw.fc_batch if k.op.batched else 1,
                    shift=q.shift, out_bits=q.out.bits, act=ACT_CODES[layer.act], alpha_q=q.alpha_q, six_q=q.six_q)
        lp = LayerPlan(i, stems[layer.name], k, layer.kind, [view(s) for s in layer.inputs], view(layer.name), args)
        host = dict(k.op.host_args(k, q, hw))
        if "lsh" in host:
            lp.lsh = host.pop("lsh")
        args.update(host)
        lp.arrays.update(k.op.device_arrays(q, k, hw))
        layers.append(lp)

    kernels = design_kernels(lowered, GENERATED)
    if not kernels:
        raise ModelError(f"model {graph.name} has no layer that runs on the device")
    widths = widths_from_formats(qg.formats)
    # one decision for the design, as the cost model takes it (hw/latency.py cost_context)
    packed = widths.packs_weights(k.name for k in lowered.layers if k.op.packs_weights)
    if packed:
        for lp in layers:
            k = lp.kernel_layer
            if k.op.packs_weights and "w" in lp.arrays:
                bits = widths.weight_bits(k.name)
                lp.arrays["w"] = pack_weights(lp.arrays["w"], bits, *k.op.weight_blocks(k, hw))
                lp.args["w_bits"] = bits
    # activation buffers kept at 8 bits in a 16-bit design: one decision with the cost model
    narrow = narrow_io(graph, lowered, out_bits_of(qg), widths.data_bytes, hw.vec_size, hw.lane_num)
    for lp, layer in zip(layers, graph.layers):
        for i, view_i in enumerate(lp.inputs):  # rd_narrow: bit i for input i
            if (layer.name, read_side(i)) in narrow:
                lp.args["rd_narrow"] |= 1 << i
                buffers[view_i.buf].narrow = True
        if (layer.name, "wr") in narrow:
            lp.args["wr_narrow"] = 1
            buffers[lp.output.buf].narrow = True
    index = {lp.stem: lp.index for lp in layers}
    outputs = [index[stems[name]] for name in graph.outputs]
    return Plan(graph.name, hw, widths.mult_bits, chw(graph.input_shape), buffers, layers, outputs[0], kernels,
                buffer_sizes(lowered, hw, GENERATED), packed, outputs,
                dsp_pack=chain_packing(lowered, widths, hw.vec_size, hw.lane_num), acc_bits=qg.acc_bits,
                weight_bits=_weight_bits(widths, lowered, packed), char_modes=char_kernels(lowered, narrow))


def _weight_bits(widths, lowered, packed: bool) -> int:
    """weight_t's width; the narrow-weight mode needs the weights packed in DDR (char fields
    unpacked by mem_read), which an 8-bit weight in a short design always is."""
    bits = weight_type_bits(widths, lowered)
    assert packed or bits == widths.mult_bits, "narrow-weight mode with unpacked weights"
    return bits


__all__ = ["ACT_CODES", "ALL_KERNELS", "Buffer", "LayerPlan", "Plan", "View", "make_plan"]
