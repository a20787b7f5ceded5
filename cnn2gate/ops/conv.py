"""Convolution (plain and grouped) on the mem_read -> conv_core -> mem_write chain.

The chain (templates/device/conv.cl.j2, docs/architecture.md): for every group g and
LANE_NUM block, mem_read loads kh*kw*CV weight vectors, then for every output row and
x-group of CONV_GP_SIZE_X columns a window of kh*WW*CV input vectors, and streams
OH*OW*kh*kw*CV dot-product steps. Each phase runs at one vector per cycle or at the
DRAM rate, whichever is slower. With single buffers the window loads stall the
stream; with a ping-pong buffer (PipeCNN) they overlap it. PipeCNN's NDRange memWrite
stores one lane per cycle, LANE_NUM cycles per output item (per pooled item when a
max pool runs in the stream). Dense layers (ops/dense.py) run on the same chain.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from ..hw import cycles
from ..hw import resources as R
from ..ir.layers import Graph, Layer, Shape, conv_out_size
from ..ir.windows import pad_nchw, patch_matrix, patches
from ..quant import fixedpoint as fx
from . import kernel_args as K
from . import placement
from .base import KernelLayer, Op, Unsupported, ceil_div, ceil_to, chw

CHAIN = ("mem_read", "conv_core", "mem_write")
#: images per call (the host's `n`: fc_batch or fewer for a batched layer, else 1) and the
#: distance in data_t between two images' copies of a buffer (the host's slots)
IMAGES = K.num("images", "n")
IN_STRIDE = K.num("in_img_stride", "rt.stride[L.in[0].buf]")
OUT_STRIDE = K.num("out_img_stride", "rt.stride[L.out.buf]")
GEOMETRY_FIELDS = ("k_h", "k_w", "stride_y", "stride_x", "dil_y", "dil_x", "pad_t", "pad_l")


@dataclass(eq=False, kw_only=True)
class Conv(Layer):
    weight: np.ndarray  # (M, C/groups, kh, kw)
    bias: np.ndarray  # (M,)
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, bottom, right
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    kind: ClassVar[str] = "conv"
    has_weights: ClassVar[bool] = True

    @property
    def kernel(self) -> tuple[int, int]:
        return int(self.weight.shape[2]), int(self.weight.shape[3])

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    @property
    def depthwise(self) -> bool:
        return self.groups > 1 and self.groups == self.in_shape[0] and self.weight.shape[1] == 1

    def infer_shape(self) -> Shape:
        c, h, w = self.in_shape
        kh, kw = self.kernel
        oh = conv_out_size(h, kh, self.stride[0], self.pads[0], self.pads[2], self.dilation[0])
        ow = conv_out_size(w, kw, self.stride[1], self.pads[1], self.pads[3], self.dilation[1])
        return (self.out_channels, oh, ow)

    def params(self) -> int:
        return int(self.weight.size + self.bias.size)

    def macs(self) -> int:
        m, cg, kh, kw = self.weight.shape
        _, oh, ow = self.out_shape
        return int(m * cg * kh * kw * oh * ow)


# ---- references ---------------------------------------------------------------------


def float_conv(layer: Conv, x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    m, cg, kh, kw = layer.weight.shape
    _, oh, ow = layer.out_shape
    g = layer.groups
    mg = m // g
    x = np.asarray(x, dtype=np.float64)
    w = layer.weight.astype(np.float64, copy=False)
    bias = layer.bias.astype(np.float64, copy=False)
    if g == 1:
        # im2col + one GEMM: (N*OH*OW, C*kh*kw) @ (C*kh*kw, M)
        cols = patch_matrix(x, (kh, kw), layer.stride, layer.pads, layer.dilation)
        out = cols @ w.reshape(m, -1).T
        del cols
        out += bias
        return out.reshape(n, oh * ow, m).transpose(0, 2, 1).reshape(n, m, oh, ow)
    v = patches(x, (kh, kw), layer.stride, layer.pads, layer.dilation)  # (N, C, OH, OW, kh, kw) view
    if cg == 1 and mg == 1:
        # one input channel per output channel: one multiply-add per tap
        out = np.zeros((n, m, oh, ow), dtype=np.float64)
        for ky in range(kh):
            for kx in range(kw):
                out += v[:, :, :, :, ky, kx] * w[:, 0, ky, kx][:, None, None]
        out += bias[:, None, None]
        return out
    # general grouped conv: one batched GEMM over the groups,
    # (G, N*OH*OW, cg*kh*kw) @ (G, cg*kh*kw, mg)
    cols = v.reshape(n, g, cg, oh, ow, kh, kw).transpose(1, 0, 3, 4, 2, 5, 6)
    cols = np.ascontiguousarray(cols).reshape(g, n * oh * ow, cg * kh * kw)
    out = cols @ w.reshape(g, mg, cg * kh * kw).transpose(0, 2, 1)  # (G, N*OH*OW, mg)
    del cols
    out = out.reshape(g, n, oh * ow, mg).transpose(1, 0, 3, 2).reshape(n, m, oh, ow)
    out += bias[:, None, None]
    return out


def int_conv(q, x: np.ndarray):
    layer = q.layer
    n = x.shape[0]
    m, cg, kh, kw = q.weight.shape
    _, oh, ow = layer.out_shape
    sh, sw = layer.stride
    dh, dw = layer.dilation
    mg = m // layer.groups
    xp = pad_nchw(x, layer.pads)
    acc = np.zeros((n, m, oh, ow), dtype=np.int64)
    for g in range(layer.groups):
        xg = xp[:, g * cg : (g + 1) * cg]
        wg = q.weight[g * mg : (g + 1) * mg]
        for ky in range(kh):
            for kx in range(kw):
                y0, x0 = ky * dh, kx * dw
                tap = xg[:, :, y0 : y0 + (oh - 1) * sh + 1 : sh, x0 : x0 + (ow - 1) * sw + 1 : sw]
                acc[:, g * mg : (g + 1) * mg] += np.einsum("nchw,mc->nmhw", tap, wg[:, :, ky, kx])
    acc += q.bias[None, :, None, None]
    return fx.requant(acc, q.shift, q.out, q.act, q.alpha_q), acc


def weighted_params(q, ins, wfmt) -> None:
    """Weights and bias of a multiply-accumulate layer (docs/fixed-point.md): weights in
    wfmt, bias at accumulator scale, one shift to the output, worst-case |acc|."""
    layer = q.layer
    w = np.asarray(layer.weight, dtype=np.float64)
    q.weight = fx.quantize_tensor(w, wfmt)
    scaled = np.floor(np.ldexp(w, wfmt.frac) + 0.5)
    q.weight_saturated = int(np.count_nonzero((scaled < wfmt.lo) | (scaled > wfmt.hi)))
    acc_frac = ins[0].frac + wfmt.frac
    q.bias, q.bias_saturated = fx.quantize_bias(layer.bias, acc_frac)
    q.shift = fx.conv_shift(ins[0].frac, wfmt.frac, q.out.frac)
    q.acc_bound = fx.acc_bound(q.weight, q.bias, ins[0].bits)  # exact: may pass 2^63


# ---- device layout ------------------------------------------------------------------


def chain_weights(w: np.ndarray, bias: np.ndarray, groups: int, vec: int, lane: int):
    """(M, Cg, kh, kw) -> [G][MB][CV][kh][kw][L][V]; bias (M,) -> [G][MB][L] (int64: the
    project writes it at the accumulator's width); zero-padded."""
    m, cg, kh, kw = w.shape
    mg = m // groups
    mp, cp = ceil_to(mg, lane), ceil_to(cg, vec)
    wp = np.zeros((groups, mp, cp, kh, kw), dtype=np.int64)
    wp[:, :mg, :cg] = np.asarray(w, dtype=np.int64).reshape(groups, mg, cg, kh, kw)
    wp = wp.reshape(groups, mp // lane, lane, cp // vec, vec, kh, kw).transpose(0, 1, 3, 5, 6, 2, 4)
    bp = np.zeros((groups, mp), dtype=np.int64)
    bp[:, :mg] = np.asarray(bias, dtype=np.int64).reshape(groups, mg)
    return np.ascontiguousarray(wp).reshape(-1), bp.reshape(-1)


def geometry_args(k: KernelLayer) -> dict[str, int]:
    return dict(k_h=k.kh, k_w=k.kw, stride_y=k.sy, stride_x=k.sx, dil_y=k.dy, dil_x=k.dx,
                pad_t=k.pad_t, pad_l=k.pad_l)


# ---- the op --------------------------------------------------------------------------


class ConvOp(Op):
    name = "conv"
    layer_type = Conv
    onnx_types = ("Conv",)
    limits = "2-D; constant weights and bias; any kernel, stride, dilation, padding (explicit or auto_pad) and group"
    emulator_tests = ("tests/test_emulate.py::test_all_layer_kinds_bit_exact",)
    fusing_types = ("Conv",)
    kernels = CHAIN
    host_kind = "KIND_CONV"
    host_fields = ("groups", "cg", "cv", "mg", "mb_num", *GEOMETRY_FIELDS, "rd_vec", "wr_vec", "fold")
    precision_knob = True
    packs_weights = True

    def matches(self, layer) -> bool:
        return type(layer) is Conv and not is_channelwise(layer)

    def from_onnx(self, lw, n) -> None:
        x, shape = lw.input_of(n)
        w = lw.const(n, 1)
        if w is None or w.ndim != 4:
            raise Unsupported("only 2-D convolution with constant weights is supported")
        if len(shape) != 3:
            raise Unsupported(f"input must be a feature map (C,H,W), got {shape}")
        b = lw.const(n, 2)
        if len(n.inputs) > 2 and n.inputs[2] and b is None:
            raise Unsupported("bias must be constant")
        if "auto_pad" in n.attrs and n.attrs["auto_pad"] != "NOTSET":
            raise Unsupported(f"auto_pad={n.attrs['auto_pad']} with unknown input size")
        groups = int(n.attrs.get("group", 1))
        if w.shape[1] * groups != shape[0] or w.shape[0] % groups:
            raise Unsupported(f"weight {w.shape} with group={groups} does not fit {shape[0]} input channels")
        pads = [int(v) for v in n.attrs.get("pads", [0, 0, 0, 0])]
        layer = Conv(**lw.common(n, "conv"), inputs=[x], in_shapes=[shape], out_shape=(),
                     weight=w.astype(np.float32), bias=(np.zeros(w.shape[0]) if b is None else b).astype(np.float32).reshape(-1),
                     stride=tuple(int(v) for v in n.attrs.get("strides", [1, 1])), pads=tuple(pads),
                     dilation=tuple(int(v) for v in n.attrs.get("dilations", [1, 1])), groups=groups)
        lw.add(n, layer)

    def describe(self, layer) -> str:
        kh, kw = layer.kernel
        text = f"{kh}x{kw}/{layer.stride[0]}"
        if layer.depthwise:
            text += " dw"
        elif layer.groups > 1:
            text += f" g{layer.groups}"
        return text

    def float_ref(self, layer, x):
        return float_conv(layer, x)

    def int_ref(self, q, x):
        return int_conv(q, x)

    def fast(self, q, x):
        from ..sim import fast

        return fast.conv(q, fast.f32(x))

    def run_nodes(self, b, q, x):
        from ..sim import chain

        return chain.conv_nodes(b, q, x)

    def quant_params(self, q, ins, wfmt) -> None:
        weighted_params(q, ins, wfmt)

    # -- hardware ----------------------------------------------------------------------
    def lower(self, layer: Conv, graph: Graph) -> KernelLayer:
        c = chw(layer.in_shape)[0]
        m = layer.out_channels
        kh, kw = layer.kernel
        return KernelLayer(op=self, kind="conv", groups=layer.groups, cg=c // layer.groups, mg=m // layer.groups,
                           kh=kh, kw=kw, sy=layer.stride[0], sx=layer.stride[1], dy=layer.dilation[0],
                           dx=layer.dilation[1], pad_t=layer.pads[0], pad_l=layer.pads[1],
                           extra=placement_extra(layer, graph),
                           **self.common(layer, graph, written_pixels=stored_pixels(layer, graph)))

    def host_args(self, k, q, hw) -> dict:
        rd, wr = vector_io(k, hw.vec_size, hw.lane_num)
        f, fold = folded(k, hw.vec_size)  # the kernel's geometry; cg stays the real channels
        return dict(geometry_args(f), groups=k.groups, cg=k.cg, mg=k.mg, cv=ceil_div(f.cg, hw.vec_size),
                    mb_num=ceil_div(k.mg, hw.lane_num), rd_vec=int(rd), wr_vec=int(wr), fold=fold)

    def device_arrays(self, q, k, hw) -> dict:
        w, b = chain_weights(fold_weights(q.weight, input_fold(k, hw.vec_size)), q.bias, k.groups, hw.vec_size,
                             hw.lane_num)
        return {"w": w, "b": b}

    def weight_blocks(self, k, hw) -> tuple[int, int]:
        # one block per (group, lane block): mem_read loads each on its own
        f, _ = folded(k, hw.vec_size)
        cv = ceil_div(f.cg, hw.vec_size)
        return k.groups * ceil_div(k.mg, hw.lane_num), f.kh * f.kw * cv * hw.vec_size * hw.lane_num

    def buffer_needs(self, k, hw, arch) -> dict:
        rd, wr = vector_io(k, hw.vec_size, hw.lane_num)
        fold = input_fold(k, hw.vec_size) if arch.fold_narrow_input else 1
        if fold > 1:
            k = folded(k, hw.vec_size)[0]
        cv = ceil_div(k.cg, hw.vec_size)
        # the generated mem_read reuses the block's weight buffer for every image of a
        # batch and loads their windows one after the other: one window is enough
        batch = hw.fc_batch if self.batched and arch.batch_windows else 1
        return {"window_depth": k.kh * k.window_width(hw.conv_gp_size_x) * cv * batch,
                "weight_depth": k.kh * k.kw * cv, "scalar_read": int(not rd), "scalar_write": int(not wr),
                "fold_max": fold, "fold_cg": k.cg // fold if fold > 1 else 0}

    def parallel_extent(self, k):
        return k.cg, k.mg, k.ow

    def cost(self, k, ctx):
        return chain_cost(k, ctx, ctx.config.fc_batch if self.batched else 1)

    def kernel_resources(self, layers, ctx) -> dict:
        v, lanes, bits, rb = ctx.v, ctx.lanes, ctx.bits, ctx.rb
        buf, arch, control = ctx.buffers, ctx.arch, ctx.control
        ram = arch.window_buffers * R.ram_blocks_for(v * bits, buf.window_depth, rb)
        wbits = ctx.w_bits  # weight_t: char in the narrow-weight mode (hw/widths.py)
        ram += lanes * R.ram_blocks_for(v * wbits, buf.weight_depth, rb)  # one weight memory per lane
        mac_dsp, mac_alm = ctx.mac_array(v, lanes)  # packed two lanes per multiplier when narrow
        out = {
            "mem_read": ctx.block(self, "mem_read", R.ALM_BASE / 3, ram, round(control * 2 / 3)),
            "conv_core": ctx.block(self, "conv_core", mac_alm * ctx.acc_scale + ctx.acc_alm(lanes)
                                   + R.ALM_PER_LANE * lanes + R.ALM_BASE / 3,
                                   -(-lanes * R.RAM_BITS_PER_LANE // rb), mac_dsp),
            "mem_write": ctx.block(self, "mem_write", R.ALM_BASE / 3, 0, control - round(control * 2 / 3)),
        }
        if arch.channel_depth:  # data_ch, weight_ch, out_ch FIFOs
            out["channels"] = {"dsp": 0, "alm": 0.0, "ram_blocks": sum(
                R.ram_blocks_for(wd, arch.channel_depth, rb) for wd in (v * bits, lanes * v * wbits, lanes * bits))}
        return out

    def kernel_args(self, kernel, consts) -> list:
        return {
            "mem_read": [
                K.IN0, K.weights_arg("wvec_t", consts), K.IN_OFF, K.num("in_vec", "L.rd_vec"), K.num("fold", "L.fold"),
                IN_STRIDE, IMAGES,
                *K.fields("in_h", "in_w", "groups", "cg", "cv", "mb_num", "out_h", "out_w", "k_h", "k_w",
                          "stride_y", "stride_x", "dil_y", "dil_x", "pad_t", "pad_l"), *K.packed_width(consts),
                *narrow_flag(consts, "in_narrow", "L.rd_narrow"),
            ],
            "conv_core": [
                K.bias_arg(consts),
                K.num("blocks", "L.groups * L.mb_num"), K.num("pixels", "n * L.out_h * L.out_w"),
                K.num("k_len", "L.cv * L.k_h * L.k_w"), *K.REQUANT,
            ],
            "mem_write": [K.OUT_ARG, K.OUT_OFF, K.num("out_vec", "L.wr_vec"), OUT_STRIDE, IMAGES,
                          *K.fields("out_h", "out_w", "groups", "mg", "mb_num"),
                          *narrow_flag(consts, "out_narrow", "L.wr_narrow")],
        }[kernel]

    def ports(self, kernel, arch, v=1, lanes=1, buffers=None):
        if not arch.scalar_ports:
            return {"mem_read": 3, "conv_core": 0, "mem_write": 1}[kernel], 0
        # generated (templates/device/conv.cl.j2): weights, bias and one V-vector of input come
        # in wide; mem_write stores LANE_NUM / WR_CHUNK chunks; the element-wise fallback
        # (V gathered loads, L scattered stores) only where some layer needs it
        scalar_rd = bool(buffers.scalar_read) if buffers is not None else True
        scalar_wr = bool(buffers.scalar_write) if buffers is not None else True
        fold = buffers.fold_max if buffers is not None and buffers.fold_max > 1 else 0  # FOLD_MAX tap loads
        # char-stored buffers (hw/storage.py): a second, char-typed access at each whole-vector
        # site, the folded input's tap loads included
        dup = 2 if buffers is not None and buffers.narrow_act else 1
        return {"mem_read": (2 + fold * dup + dup - 1, v if scalar_rd else 0), "conv_core": (1, 0),
                "mem_write": (dup * (lanes // write_chunk(v, lanes)), lanes if scalar_wr else 0)}[kernel]


def narrow_flag(consts, name: str, host: str) -> list:
    """The per-layer flag of a char-stored buffer (hw/storage.py), only in designs that have one."""
    return [K.num(name, host)] if consts.get("narrow_act") else []


def placement_extra(layer, graph: Graph) -> dict:
    """Channel offsets of the input and output in their buffers and the output buffer's
    channels (ops/placement.py), for the whole-vector decision (vector_io)."""
    in_off, _ = placement.place(graph, layer.inputs[0])
    out_off, out_buf_c = placement.place(graph, layer.name)
    return {"in_c_off": in_off, "out_c_off": out_off, "out_buf_c": out_buf_c}


def write_chunk(v: int, lanes: int) -> int:
    """Elements per mem_write store: gcd(LANE_NUM, VEC_SIZE) (VEC_SIZE is a power of two), so a
    chunk of channels starting at a multiple of it lies inside one V-vector, contiguous."""
    return min(lanes & -lanes, v)


def vector_io(k: KernelLayer, v: int, lanes: int) -> tuple[bool, bool]:
    """Whether mem_read loads whole V-vectors and mem_write stores whole chunks for layer k
    (docs/architecture.md "Alignment of channel views"); else the element-wise path.

    Read: every group's first channel on a vector boundary; channels past the group's Cg in
    its last vector are loaded and zeroed. Write: every chunk of WR_CHUNK lanes starts on a
    chunk boundary, and a last partial chunk (lanes past Mg, written as zero) only covers the
    buffer's padding channels, never another tensor's.
    """
    in_off = k.extra.get("in_c_off", 0)
    out_off = k.extra.get("out_c_off", 0)
    out_buf_c = k.extra.get("out_buf_c", k.groups * k.mg)
    read = in_off % v == 0 and (k.groups == 1 or k.cg % v == 0)
    s = write_chunk(v, lanes)
    write = out_off % s == 0 and (k.mg % s == 0 or (k.groups == 1 and out_off + k.mg == out_buf_c))
    return read, write


def input_fold(k: KernelLayer, v: int) -> int:
    """Kernel columns folded into one V-vector for a conv on the graph input with few channels
    (docs/architecture.md "Narrow input layers"): `fold` taps of Cg channels share a vector,
    so the layer streams kh·⌈kw/fold⌉ vectors per output instead of kh·kw mostly empty ones."""
    if k.kind != "conv" or not k.reads_graph_input or k.groups != 1 or k.cg >= v or k.kw < 2:
        return 1
    return min(v // k.cg, k.kw)


def folded(k: KernelLayer, v: int) -> tuple[KernelLayer, int]:
    """Layer k as mem_read runs it: with `fold` taps per vector it is a conv over fold·Cg
    channels with ⌈kw/fold⌉ columns fold·dx apart (fold 1: k itself)."""
    fold = input_fold(k, v)
    if fold == 1:
        return k, 1
    return replace(k, cg=fold * k.cg, kw=ceil_div(k.kw, fold), dx=fold * k.dx), fold


def fold_weights(w: np.ndarray, fold: int) -> np.ndarray:
    """(M, Cg, kh, kw) -> (M, fold·Cg, kh, ⌈kw/fold⌉): channel j·Cg + c of column q is tap
    q·fold + j of channel c (zero past kw), matching mem_read's folded window."""
    if fold == 1:
        return w
    m, cg, kh, kw = w.shape
    kwf = ceil_div(kw, fold)
    wp = np.zeros((m, cg, kh, kwf * fold), dtype=w.dtype)
    wp[..., :kw] = w
    wp = wp.reshape(m, cg, kh, kwf, fold).transpose(0, 4, 1, 2, 3)  # (M, fold, Cg, kh, ⌈kw/fold⌉)
    return np.ascontiguousarray(wp).reshape(m, fold * cg, kh, kwf)


def is_channelwise(layer: Conv) -> bool:
    """A depthwise conv with one output per input channel: it runs on dw_conv (ops/depthwise.py)."""
    return layer.depthwise and layer.out_channels == layer.in_shape[0]


def stored_pixels(layer, graph: Graph) -> int:
    """Output pixels per channel mem_write stores: PipeCNN pools a layer's only consumer,
    a max pool, in the stream."""
    _, oh, ow = chw(layer.out_shape)
    consumers = graph.consumers(layer.name)
    if len(consumers) == 1 and layer.name not in graph.outputs:
        from . import op_for

        if op_for(consumers[0]).pools_in_stream(consumers[0]):
            _, ph, pw = chw(consumers[0].out_shape)
            return ph * pw
    return oh * ow


def merged_windows(k: KernelLayer, gp: int, wvecs: int, fill: float, images: int = 1) -> float:
    """Iterations of mem_read's fill-and-stream steps over the windows of `images` images in
    one sequence (after window 0's own fill): per window the longer of the next window's
    fill and its own stream (n_x·K; the last x-group may be narrower); the last window of
    the sequence has nothing to fill."""
    x_groups = ceil_div(k.ow, gp)
    streams = [min(gp, k.ow - xg * gp) * wvecs for xg in range(x_groups)]
    row = sum(max(fill, s) for s in streams)
    return images * k.oh * row - max(fill, streams[-1]) + streams[-1]


def chain_cost(k: KernelLayer, ctx, batch: int) -> cycles.LayerCost:
    c, bpc, arch = ctx.config, ctx.bpc, ctx.arch
    fold = 1
    if arch.fold_narrow_input:  # the geometry mem_read runs (input_fold)
        k, fold = folded(k, c.vec_size)
    v, lanes, gp = c.vec_size, c.lane_num, c.conv_gp_size_x
    # per-tensor storage: a char-stored buffer moves one byte per element (hw/storage.py)
    b_in, b_out = ctx.act_bytes(k, "rd"), ctx.act_bytes(k, "wr")
    cv = ceil_div(k.cg, v)
    blocks = k.groups * ceil_div(k.mg, lanes)
    ww = k.window_width(gp)
    windows = k.oh * ceil_div(k.ow, gp)
    wvecs = k.kh * k.kw * cv
    # a block's weights, packed at the layer's width when the design packs
    block_bytes = ctx.widths.weight_file_bytes(k.name, 1, wvecs * lanes * v, ctx.packed and k.op.packs_weights)
    weight = cycles.load(wvecs, block_bytes / wvecs, bpc)
    fill_bytes = v * b_in * fold  # a folded window entry gathers `fold` input vectors
    window = cycles.load(k.kh * ww * cv, fill_bytes, bpc)
    out_bytes = k.out_elems * b_out
    stream = max(k.oh * k.ow * wvecs, out_bytes / blocks / bpc)
    if arch.write_lane_serial:  # memWrite needs LANE_NUM cycles per stored output item
        stream = max(stream, k.written_pixels * lanes)
    if arch.fill_in_stream:  # generated mem_read: window 0 alone, then max(next fill, stream) per window
        # over the windows of all the call's images in one sequence: priced per call, then per image
        per_call = max(window + merged_windows(k, gp, wvecs, cycles.fill(k.kh * ww * cv, fill_bytes, bpc), batch),
                       batch * (windows * k.kh * ww * cv * fill_bytes + out_bytes / blocks) / bpc
                       + cycles.LOAD_LATENCY_CYCLES)
        per_image = per_call / batch
    elif arch.window_buffers == 1:
        per_image = windows * window + stream
    else:  # ping-pong: only the first window of a block is exposed
        per_image = window + max(windows * (window - cycles.LOAD_LATENCY_CYCLES), stream)
    busy = blocks * (weight + batch * per_image) / batch
    compute = blocks * k.oh * k.ow * wvecs
    nbytes = (blocks * (block_bytes + 4 * lanes)) / batch \
        + blocks * windows * k.kh * ww * cv * fill_bytes + out_bytes
    # the host launches a batched layer once per batch of images
    return cycles.LayerCost(k.name, k.kind, busy + ctx.launch / batch, compute, cycles.bound(compute, busy), 2 * k.macs,
                            round(nbytes))


OP = ConvOp()
