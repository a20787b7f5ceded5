"""Local response normalisation across channels (ONNX LRN semantics), on the lrn kernel.

Integer rule (docs/fixed-point.md): the sum of squares over the channel window
indexes a table of int32 factors (exact below 32, then 6 significant bits), and
the output is x * factor, rounded once. The kernel handles one channel per cycle
with its window unrolled.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..hw import cycles
from ..hw import resources as R
from ..ir.layers import Layer, Shape
from ..quant import fixedpoint as fx
from . import kernel_args as K
from .base import KernelLayer, Op, Unsupported, char_sites, int32


@dataclass(eq=False, kw_only=True)
class LRN(Layer):
    """Local response normalisation across channels (ONNX LRN semantics)."""

    size: int
    lrn_alpha: float = 1e-4
    beta: float = 0.75
    bias: float = 1.0

    kind: ClassVar[str] = "lrn"

    def infer_shape(self) -> Shape:
        return self.in_shape


#: ALMs of the kernel (unrolled window, table index, requantisation; assumption)
ALM_LRN = 4000.0
#: Table index rule: a sum of squares below LRN_EXACT is its own index; a larger one keeps
#: LRN_MANT_BITS bits below its top set bit (6 significant bits), LRN_EXACT entries per octave
LRN_MANT_BITS = 5
LRN_EXACT = 1 << LRN_MANT_BITS
_LRN_MAX_EXP = 47  # sums of squares below 2^48
LRN_TABLE_SIZE = LRN_EXACT * (_LRN_MAX_EXP - LRN_MANT_BITS + 2)  # 1408: indices 0..1407


def _ilog2(v: np.ndarray) -> np.ndarray:
    """floor(log2 v) for 1 <= v < 2^53, exact (frexp of an exactly representable integer)."""
    _, e = np.frexp(v.astype(np.float64))
    return e.astype(np.int64) - 1


def lrn_index(ss):
    """Table index of a sum of squares: exact below 32, else top-6-bit segmentation."""
    scalar = isinstance(ss, (int, np.integer))
    ss = np.asarray(ss, dtype=np.int64)
    if ss.size and (ss.min() < 0 or ss.max() >= 1 << (_LRN_MAX_EXP + 1)):
        raise OverflowError("LRN sum of squares outside [0, 2^48)")
    big = ss >= LRN_EXACT
    e = _ilog2(np.where(big, ss, LRN_EXACT))
    idx = np.where(big, LRN_EXACT * (e - (LRN_MANT_BITS - 1)) + ((ss >> (e - LRN_MANT_BITS)) & (LRN_EXACT - 1)), ss)
    return int(idx) if scalar else idx


def lrn_centres() -> np.ndarray:
    """The sum of squares each table entry stands for (centre of its integer range)."""
    idx = np.arange(LRN_TABLE_SIZE)
    c = idx.astype(np.float64)
    e = idx // LRN_EXACT + (LRN_MANT_BITS - 1)
    m = idx % LRN_EXACT
    step = np.ldexp(1.0, e - LRN_MANT_BITS)
    seg = (LRN_EXACT + m) * step + (step - 1) / 2
    return np.where(idx < LRN_EXACT, c, seg)


def lrn_table(layer, in_fmt) -> np.ndarray:
    """LUT[idx] = 2^16 * (k + alpha/size * c * 2^(-2 in_frac))^(-beta), rounded, capped at 2^31-1 (int64)."""
    c = lrn_centres()
    base = layer.bias + layer.lrn_alpha / layer.size * np.ldexp(c, -2 * in_fmt.frac)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        f = np.floor(np.ldexp(np.power(base, -layer.beta), fx.MUL_FRAC) + 0.5)
    f = np.where(np.isnan(f), (1 << 31) - 1, f)
    return np.clip(f, -(1 << 31), (1 << 31) - 1).astype(np.int64)


def lrn_shift(in_fmt, out_fmt) -> int:
    return fx.MUL_FRAC + in_fmt.frac - out_fmt.frac


def channel_window(channels: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per channel, the first and one-past-last channel of its window (ONNX rule)."""
    c = np.arange(channels)
    lo = np.maximum(0, c - (size - 1) // 2)
    hi = np.minimum(channels, c + (size - 1) - (size - 1) // 2 + 1)
    return lo, hi


class LrnOp(Op):
    name = "lrn"
    layer_type = LRN
    onnx_types = ("LRN",)
    limits = "across channels, ONNX size, alpha, beta, bias; the power by table lookup"
    emulator_tests = ("tests/test_emulate.py::test_all_layer_kinds_bit_exact",)
    fusing_types = ("LRN",)
    kernels = ("lrn",)
    host_kind = "KIND_LRN"
    char_activations = True
    host_fields = ("lrn_size", "lrn_half_lo")

    def from_onnx(self, lw, n) -> None:
        x, shape = lw.input_of(n)
        if len(shape) != 3:
            raise Unsupported(f"input must be a feature map (C,H,W), got {shape}")
        layer = LRN(**lw.common(n, "lrn"), inputs=[x], in_shapes=[shape], out_shape=(), size=int(n.attrs["size"]),
                    lrn_alpha=float(n.attrs.get("alpha", 1e-4)), beta=float(n.attrs.get("beta", 0.75)),
                    bias=float(n.attrs.get("bias", 1.0)))
        lw.add(n, layer)

    def describe(self, layer) -> str:
        return f"size {layer.size}"

    def float_ref(self, layer, x):
        sq = np.concatenate([np.zeros_like(x[:, :1]), np.cumsum(x.astype(np.float64) ** 2, axis=1)], axis=1)
        lo, hi = channel_window(x.shape[1], layer.size)
        window_sum = sq[:, hi] - sq[:, lo]
        return x / (layer.bias + layer.lrn_alpha / layer.size * window_sum) ** layer.beta

    def int_ref(self, q, x):
        lo, hi = channel_window(x.shape[1], q.layer.size)
        sq = x * x
        ss = np.stack([sq[:, a:b].sum(axis=1) for a, b in zip(lo, hi)], axis=1)
        acc = x * q.lut[lrn_index(ss)]
        return fx.requant(acc, q.shift, q.out, q.act, q.alpha_q), acc

    def quant_params(self, q, ins, wfmt) -> None:
        q.lut = lrn_table(q.layer, ins[0])
        q.shift = lrn_shift(ins[0], q.out)

    # -- hardware ----------------------------------------------------------------------
    def lower(self, layer: LRN, graph) -> KernelLayer:
        c = layer.in_shape[0]
        return KernelLayer(op=self, kind="lrn", cg=c, mg=c, extra={"size": layer.size}, **self.common(layer, graph))

    def host_args(self, k, q, hw) -> dict:
        size = k.extra["size"]
        return {"lrn_size": size, "lrn_half_lo": (size - 1) // 2}

    def device_arrays(self, q, k, hw) -> dict:
        return {"lut": int32(q.lut)}

    def buffer_needs(self, k, hw, arch) -> dict:
        return {"lrn_max": k.extra["size"]}

    def cost(self, k, ctx):
        compute = k.ih * k.iw * k.cg  # one channel per cycle, window unrolled
        nbytes = k.in_elems * ctx.in_bytes(k) + k.out_elems * ctx.out_bytes(k)
        return cycles.streamed(k, ctx, compute, nbytes, k.out_elems * (k.extra["size"] + 3))

    def kernel_resources(self, layers, ctx) -> dict:
        lut = R.ram_blocks_for(32, LRN_TABLE_SIZE, ctx.rb)
        window = max(ctx.buffers.lrn_max, 5)
        return {"lrn": ctx.block(self, "lrn", ALM_LRN, lut, window + 2)}  # squares, LUT slope, scale

    def template_constants(self) -> dict[str, int]:
        # the device's index: ss below lrn_exact, else, with e the top set bit of ss,
        # lrn_exact * (e - lrn_exp_bias) + ((ss >> (e - lrn_mant_bits)) & lrn_mant_mask)
        return {"lrn_table_size": LRN_TABLE_SIZE, "lrn_exact": LRN_EXACT, "lrn_mant_bits": LRN_MANT_BITS,
                "lrn_mant_mask": LRN_EXACT - 1, "lrn_exp_bias": LRN_MANT_BITS - 1}

    def kernel_args(self, kernel, consts) -> list:
        return [
            K.IN0, K.Arg("lut", K.INTS, "rt.tables[index]"), K.OUT_ARG, K.IN_OFF, K.OUT_OFF, K.CHANNELS,
            K.num("h", "L.out_h"), K.num("w", "L.out_w"), K.num("size", "L.lrn_size"),
            K.num("half_lo", "L.lrn_half_lo"), *K.REQUANT, *K.narrow_flags(consts),
        ]

    def ports(self, kernel, arch, v=1, lanes=1, buffers=None):
        # reads its window plus the centre, writes one; the table comes in wide
        window = max(buffers.lrn_max, 1) if buffers is not None else 5
        return (1, (window + 2) * char_sites(buffers, kernel)) if arch.scalar_ports else (3, 0)


OP = LrnOp()
