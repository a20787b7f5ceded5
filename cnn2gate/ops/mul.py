"""Element-wise product of two feature maps, or of a map and a per-channel vector, on the mul kernel.

The two broadcasts CNNs use: a (C, H, W) map times a (C,) or (C, 1, 1) gate (the
squeeze-excitation gate, after a global pool and dense or 1x1 layers) and the product
of two maps of one shape (gating). The exact integer product carries
frac_a + frac_b fractional bits and is rounded once to the output format.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..hw import cycles
from ..ir.layers import Layer, Shape
from ..quant import fixedpoint as fx
from . import kernel_args as K
from .base import KernelLayer, Op, Unsupported, ceil_div, char_sites, chw

#: ALMs per product lane at 8 bits (gate register, rounding shift, saturation; assumption)
ALM_MUL_PER_LANE = 30.0


def _is_gate(map_shape, other) -> bool:
    """True when `other` is one value per channel of `map_shape` (not the same shape)."""
    return tuple(other) != tuple(map_shape) and chw(other) == (chw(map_shape)[0], 1, 1)


@dataclass(eq=False, kw_only=True)
class Mul(Layer):
    """inputs[0] (a map) times inputs[1]: a map of the same shape or one value per channel."""

    kind: ClassVar[str] = "mul"

    def infer_shape(self) -> Shape:
        a, b = (tuple(s) for s in self.in_shapes)
        if len(self.in_shapes) != 2 or not (a == b or chw(b) == (chw(a)[0], 1, 1)):
            raise ValueError(f"layer {self.name}: mul needs a map and a map of its shape or a per-channel vector, "
                             f"got {self.in_shapes}")
        return a

    @property
    def per_channel(self) -> bool:
        return _is_gate(self.in_shapes[0], self.in_shapes[1])


def _broadcast(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """b (a batch of maps or of per-channel vectors) shaped to multiply a batch of maps a."""
    if b.shape == a.shape:
        return b
    return b.reshape((b.shape[0], a.shape[1]) + (1,) * (a.ndim - 2))


def _onnx_operands(lw, n):
    """Index of the input with the output's full ONNX shape (the map), or why the broadcast is refused."""
    if len(n.inputs) != 2:
        raise Unsupported(f"Mul with {len(n.inputs)} inputs")
    shapes = [lw.g.shape(t) for t in n.inputs]
    out = lw.g.shape(n.outputs[0])
    if out is None or any(s is None for s in shapes):
        raise Unsupported("Mul inputs without static shapes")
    rank = len(out)
    full = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    for i in (0, 1):
        other = full[1 - i]
        if full[i] != tuple(out):
            continue
        if other == tuple(out):
            return i
        if rank == 4 and other[1] == out[1] and all(d == 1 for j, d in enumerate(other) if j != 1):
            return i
    raise Unsupported(f"Mul of {shapes[0]} and {shapes[1]}: only two maps of one shape, or a map and a "
                      "per-channel vector (N, C, 1, 1), are supported")


class MulOp(Op):
    name = "mul"
    layer_type = Mul
    onnx_types = ("Mul",)
    limits = "two maps of one shape, or a map times a per-channel (1, C, 1, 1) vector; Mul by a constant is folded"
    emulator_tests = ("tests/test_mul.py::test_mul_kernel_bit_exact_in_emulator",)
    fusing_types = ("Mul",)
    kernels = ("mul",)
    host_kind = "KIND_MUL"
    char_activations = True

    def from_onnx(self, lw, n) -> None:
        # a per-channel constant factor was folded by the affine pass already
        if any(t in lw.g.consts for t in n.inputs):
            raise Unsupported("the constant operand is not per-channel (or its producer cannot absorb it)")
        first = _onnx_operands(lw, n)
        srcs, shapes = lw.inputs_of(n)
        order = (first, 1 - first)  # the product commutes: the full map goes first
        srcs, shapes = [srcs[i] for i in order], [shapes[i] for i in order]
        if any(len(s) not in (1, 3) for s in shapes):
            raise Unsupported(f"inputs of shapes {shapes} are not feature maps or vectors")
        if chw(shapes[0]) == chw(shapes[1]) and len(shapes[1]) > len(shapes[0]):
            srcs, shapes = srcs[::-1], shapes[::-1]  # a (C, 1, 1) map rather than a vector as the output shape
        if not (tuple(shapes[1]) == tuple(shapes[0]) or chw(shapes[1]) == (chw(shapes[0])[0], 1, 1)):
            raise Unsupported(f"inputs of shapes {shapes} are neither equal nor a map and a per-channel vector")
        lw.add(n, Mul(**lw.common(n, "mul"), inputs=srcs, in_shapes=shapes, out_shape=()),
               squeezed=len(shapes[0]) != 3)  # two vectors: ONNX says (C, 1, 1)

    def describe(self, layer) -> str:
        return "per-channel" if layer.per_channel else "element-wise"

    def float_ref(self, layer, a, b):
        return a * _broadcast(a, b)

    def int_ref(self, q, a, b):
        acc = a * _broadcast(a, b)
        return fx.requant(acc, q.shift, q.out, q.act, q.alpha_q), acc

    def fast(self, q, a, b):
        from ..sim import fast

        a, b = fast.f32(a), fast.f32(b)
        # every product is an integer below 2^30: exact in float64, and in float32 below 2^24
        bound = (1 << (q.in_fmts[0].bits - 1)) * (1 << (q.in_fmts[1].bits - 1))
        dt = np.float32 if bound <= fast.F32_EXACT else np.float64
        acc = np.multiply(a, _broadcast(a, b), dtype=dt)
        info = fast.acc_info(q, acc)
        return fast.requant_float(q, acc, bound), info

    def quant_params(self, q, ins, wfmt) -> None:
        q.shift = ins[0].frac + ins[1].frac - q.out.frac

    # -- hardware ----------------------------------------------------------------------
    def lower(self, layer: Mul, graph) -> KernelLayer:
        c = chw(layer.in_shape)[0]
        return KernelLayer(op=self, kind="mul", cg=c, mg=c, extra={"per_channel": layer.per_channel},
                           **self.common(layer, graph))

    def cost(self, k, ctx):
        compute = ceil_div(k.cg, ctx.config.vec_size) * k.ih * k.iw
        second = k.cg if k.extra["per_channel"] else k.in_elems  # the gate is read once per channel
        nbytes = k.in_elems * ctx.in_bytes(k, 0) + second * ctx.in_bytes(k, 1) + k.out_elems * ctx.out_bytes(k)
        return cycles.streamed(k, ctx, compute, nbytes, k.out_elems)

    def kernel_resources(self, layers, ctx) -> dict:
        # V independent products (no adder tree): the DSP's native packing
        dsp = math.ceil(ctx.v / ctx.board.native_packing(ctx.bits))
        return {"mul": ctx.block(self, "mul", ALM_MUL_PER_LANE * ctx.scale * ctx.v, 0, dsp)}

    def kernel_args(self, kernel, consts) -> list:
        # a per-channel operand lives in a buffer of one pixel (vectors and (C, 1, 1) maps alike)
        one_pixel = "kBuffers[L.in[1].buf].h * kBuffers[L.in[1].buf].w == 1"
        return [
            K.Arg("in0", K.IN, "in(0)"), K.Arg("in1", K.IN, "in(1)"), K.OUT_ARG,
            K.num("off0", "L.in[0].c_off"), K.num("off1", "L.in[1].c_off"), K.OUT_OFF, K.CHANNELS,
            K.num("h", "L.out_h"), K.num("w", "L.out_w"), K.num("per_channel", one_pixel), *K.REQUANT,
            *K.narrow_flags(consts),
        ]

    def ports(self, kernel, arch, v=1, lanes=1, buffers=None):
        # V loads each of in0, in1 by element and in1's gate (its own unrolled loop); V stores
        return (0, 4 * v * char_sites(buffers, kernel)) if arch.scalar_ports else (0, 0)


OP = MulOp()
