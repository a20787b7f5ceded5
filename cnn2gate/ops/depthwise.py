"""Depthwise convolution with one output per input channel, on its own dw_conv kernel.

The IR layer is a `Conv` (groups = channels, one weight channel per group); this op
claims those layers (ops/conv.py keeps depthwise multipliers above 1). dw_conv runs
VEC_SIZE channels in parallel and reads every tap from memory (no line buffer). A
per-channel scale and shift the front end could not fold (a BatchNormalization with
no producer to absorb it) becomes a 1x1 layer of this kind.
On an architecture without such a kernel (PipeCNN) it is priced as a grouped
convolution of one-channel groups.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..hw import cycles
from ..hw import resources as R
from . import kernel_args as K
from .base import KernelLayer, Unsupported, ceil_div, ceil_to, char_sites
from .conv import Conv, ConvOp, chain_cost, geometry_args, is_channelwise


def channel_weights(w: np.ndarray, bias: np.ndarray, vec: int):
    """(C, 1, kh, kw) -> [CV][kh][kw][V]; bias (C,) -> [CV][V] (int64, written at the
    accumulator's width); zero-padded."""
    c, _, kh, kw = w.shape
    cp = ceil_to(c, vec)
    wp = np.zeros((cp, kh, kw), dtype=np.int64)
    wp[:c] = np.asarray(w, dtype=np.int64)[:, 0]
    wp = wp.reshape(cp // vec, vec, kh, kw).transpose(0, 2, 3, 1)
    bp = np.zeros(cp, dtype=np.int64)
    bp[:c] = bias
    return np.ascontiguousarray(wp).reshape(-1), bp


class DepthwiseOp(ConvOp):
    name = "depthwise"
    onnx_types = ()
    fusing_types = ()
    internal_types = ("ChannelAffine",)  # frontend/passes/affine.py
    patterns = {"Conv": "Conv with group = input channels = output channels",
                "ChannelAffine": "BatchNormalization, or Add/Sub/Mul/Div by a per-channel constant, that no "
                                 "producer absorbs (a 1x1 layer)"}
    limits = "one output channel per input channel; any kernel, stride, dilation, padding"
    emulator_tests = ("tests/test_emulate.py::test_all_layer_kinds_bit_exact",)
    kernels = ("dw_conv",)
    host_kind = "KIND_DWCONV"
    char_activations = True

    def matches(self, layer) -> bool:
        return type(layer) is Conv and is_channelwise(layer)

    def from_onnx(self, lw, n) -> None:
        x, shape = lw.input_of(n)
        if len(shape) != 3:
            raise Unsupported("a per-channel scale/shift on a vector must follow a Conv or dense layer (nothing to fold it into)")
        c = shape[0]
        scale, shift = n.attrs["scale"], n.attrs["shift"]
        layer = Conv(**lw.common(n, "scale"), inputs=[x], in_shapes=[shape], out_shape=(),
                     weight=scale.astype(np.float32).reshape(c, 1, 1, 1), bias=shift.astype(np.float32), groups=c)
        lw.add(n, layer)

    def lower(self, layer, graph) -> KernelLayer:
        k = super().lower(layer, graph)
        return replace(k, op=self, kind="dwconv", cg=k.cg * k.groups, mg=k.mg * k.groups)

    def host_args(self, k, q, hw) -> dict:
        return dict(geometry_args(k), groups=k.groups, cg=1, mg=1)

    def device_arrays(self, q, k, hw) -> dict:
        w, b = channel_weights(q.weight, q.bias, hw.vec_size)
        return {"w": w, "b": b}

    def weight_blocks(self, k, hw) -> tuple[int, int]:
        return 1, ceil_to(k.cg, hw.vec_size) * k.kh * k.kw

    def _as_grouped(self, k: KernelLayer) -> KernelLayer:
        return replace(k, kind="conv", cg=1, mg=1)

    def buffer_needs(self, k, hw, arch) -> dict:
        return {} if arch.has_kernel(self.kernels[0]) else super().buffer_needs(self._as_grouped(k), hw, arch)

    def parallel_extent(self, k):
        return 1, 1, k.ow

    def cost(self, k, ctx):
        if not ctx.arch.has_kernel(self.kernels[0]):
            return chain_cost(self._as_grouped(k), ctx, 1)
        v = ctx.config.vec_size
        cv = ceil_div(k.cg, v)
        compute = cv * k.oh * k.ow * k.kh * k.kw
        nbytes = compute * v * ctx.in_bytes(k) + k.out_elems * ctx.out_bytes(k) + ctx.weight_bytes(k) + cv * v * 4
        return cycles.streamed(k, ctx, compute, nbytes, 2 * k.macs)

    def kernel_resources(self, layers, ctx) -> dict:
        v = ctx.v
        return {"dw_conv": ctx.block(self, "dw_conv", R.ALM_PER_MAC * ctx.scale * ctx.acc_scale * v + ctx.acc_alm(v)
                                     + R.ALM_PER_LANE * v, 0,
                                     -(-v // ctx.pack))}

    def kernel_args(self, kernel, consts) -> list:
        return [
            K.IN0, K.weights_arg("vec_t", consts),
            K.bias_arg(consts), K.OUT_ARG, K.IN_OFF, K.OUT_OFF, K.CHANNELS,
            *K.fields("in_h", "in_w", "out_h", "out_w", "k_h", "k_w",
                      "stride_y", "stride_x", "dil_y", "dil_x", "pad_t", "pad_l"),
            *K.REQUANT, *K.packed_width(consts), *K.narrow_flags(consts),
        ]

    def ports(self, kernel, arch, v=1, lanes=1, buffers=None):
        return (2, 2 * v * char_sites(buffers, kernel)) if arch.scalar_ports else (0, 0)


OP = DepthwiseOp()
