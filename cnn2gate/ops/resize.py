"""Upsampling by integer factors on H and W on the resize kernel (V channels in parallel):
nearest-neighbour replication and bilinear interpolation.

ONNX `Resize` (scales or sizes constant) and the older `Upsample`.

Nearest: only the coordinate rules that reduce to replication are accepted: every output
pixel (oy, ox) copies input (oy // sy, ox // sx). Replication is exact, so the layer keeps
its input's format (tied, as a max pool); the output step is the shared requantisation with
shift in_frac - out_frac (0 with the quantiser's formats).

Linear (bilinear on H and W) with coordinate_transformation_mode half_pixel,
pytorch_half_pixel, align_corners or asymmetric: along each axis output o reads inputs
i0, i1 = min(i0 + 1, n - 1) with integer weights w0 + w1 = 2^RESIZE_WEIGHT_BITS (the source
coordinate's fraction rounded half up, exact for the half-pixel rules at power-of-two
factors); the four products w_y * w_x * x are summed exactly and rounded once
(docs/fixed-point.md). A convex combination never leaves its inputs' range, so the format
stays tied as for nearest and the shift is 2 * RESIZE_WEIGHT_BITS + in_frac - out_frac.
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
from .base import KernelLayer, Unsupported, ceil_div, char_sites, chw, int32
from .moving import MovingOp

#: ALMs per resize lane at 8 bits (output step, address counters; assumption)
ALM_RESIZE_PER_LANE = 20.0
#: ALMs per lane of the bilinear branch at 8 bits (three adders of the four products,
#: wider output step; assumption)
ALM_BILINEAR_PER_LANE = 40.0
#: fractional bits of each axis' interpolation weight: w0 + w1 = 2^12, so a weight product is
#: at most 2^24 (a 27x27 DSP multiply with data of up to 16 bits) and the sum of the four products
#: at most 2^39 in magnitude (64-bit accumulator). 8 bits would keep it in int32 and fit the 18x19
#: mode, but then align_corners' rounded weights cost up to 2^(bits-8) LSB: 180 LSB at 16 bits
RESIZE_WEIGHT_BITS = 12
#: int32 entries per output row or column in the bilinear table: i0, i1, w0, w1
TAPS_PER_COORD = 4

#: (coordinate_transformation_mode, nearest_mode) pairs that give out[o] = in[o // s] at every
#: integer s: asymmetric o/s floored; the half-pixel rules put o/s - 1/2 + (1/2)/s strictly
#: inside (k - 1/2, k + 1/2), so either rounding gives k; tf_half_pixel_for_nn's (o + 1/2)/s floors to k
_REPLICATING = {
    ("asymmetric", "floor"),
    ("half_pixel", "round_prefer_floor"), ("half_pixel", "round_prefer_ceil"),
    ("pytorch_half_pixel", "round_prefer_floor"), ("pytorch_half_pixel", "round_prefer_ceil"),
    ("tf_half_pixel_for_nn", "floor"),
}
#: coordinate rules of the linear mode; pytorch_half_pixel differs from half_pixel only for an
#: output of length 1, which an integer factor >= 1 gives only from an input of length 1 (both 0)
LINEAR_COORDS = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")


@dataclass(eq=False, kw_only=True)
class Resize(Layer):
    scale: tuple[int, int] = (2, 2)  # integer factors on H and W
    mode: str = "nearest"  # or "linear" (bilinear on H and W)
    coord: str = "asymmetric"  # the linear mode's coordinate_transformation_mode

    kind: ClassVar[str] = "resize"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in ("nearest", "linear") or any(int(s) != s or s < 1 for s in self.scale):
            raise ValueError(f"layer {self.name}: resize {self.mode} by {self.scale} (nearest or linear at "
                             "integer factors only)")
        if self.mode == "linear" and self.coord not in LINEAR_COORDS:
            raise ValueError(f"layer {self.name}: linear resize with coordinates {self.coord!r} "
                             f"(one of {', '.join(LINEAR_COORDS)})")

    def infer_shape(self) -> Shape:
        c, h, w = self.in_shape
        return (c, h * self.scale[0], w * self.scale[1])


def replicate(x: np.ndarray, scale) -> np.ndarray:
    """A batch of maps (N, C, H, W) with every pixel repeated sy times down and sx across."""
    return np.repeat(np.repeat(x, scale[0], axis=2), scale[1], axis=3)


def _source(n_in: int, s: int, coord: str) -> tuple[np.ndarray, int]:
    """Source coordinate of every output index along one axis as (numerator >= 0, denominator):
    ONNX's rule, clamped below at 0 as onnxruntime and torch clamp it."""
    o = np.arange(n_in * s, dtype=np.int64)
    if coord in ("half_pixel", "pytorch_half_pixel"):  # (o + 1/2) / s - 1/2
        num, den = 2 * o + 1 - s, 2 * s
    elif coord == "align_corners":  # o (n_in - 1) / (n_out - 1)
        num, den = o * (n_in - 1), max(n_in * s - 1, 1)
    else:  # asymmetric: o / s
        num, den = o, s
    return np.maximum(num, 0), den


def linear_taps(n_in: int, s: int, coord: str) -> np.ndarray:
    """(n_in * s, 4) int64 rows (i0, i1, w0, w1) of one axis: w1 = the coordinate's fraction
    times 2^RESIZE_WEIGHT_BITS, rounded half up; w0 = 2^RESIZE_WEIGHT_BITS - w1."""
    num, den = _source(n_in, s, coord)
    i0, r = num // den, num % den
    one = 1 << RESIZE_WEIGHT_BITS
    w1 = (r * one + den // 2) // den
    return np.stack([i0, np.minimum(i0 + 1, n_in - 1), one - w1, w1], axis=1)


def _float_taps(n_in: int, s: int, coord: str):
    num, den = _source(n_in, s, coord)
    i0 = num // den
    f = (num - i0 * den) / den
    return i0, np.minimum(i0 + 1, n_in - 1), 1.0 - f, f


def _interpolate(x, ty, tx):
    """Separable bilinear interpolation of (N, C, H, W) with per-axis taps (i0, i1, w0, w1)."""
    y0, y1, a0, a1 = ty
    x0, x1, b0, b1 = tx
    h = x[:, :, :, x0] * b0 + x[:, :, :, x1] * b1
    return h[:, :, y0] * a0[:, None] + h[:, :, y1] * a1[:, None]


def layer_taps(layer: Resize) -> tuple[np.ndarray, np.ndarray]:
    """The integer taps of a linear resize along H and along W."""
    _, h, w = layer.in_shape
    return (linear_taps(h, layer.scale[0], layer.coord), linear_taps(w, layer.scale[1], layer.coord))


def bilinear_int(layer: Resize, x: np.ndarray) -> np.ndarray:
    """Exact sum of the four weight products times the input integers (int64), tap by tap."""
    ty, tx = layer_taps(layer)
    x = np.asarray(x, dtype=np.int64)
    acc = np.zeros(x.shape[:2] + (len(ty), len(tx)), dtype=np.int64)
    for a in (0, 1):
        for b in (0, 1):
            w = ty[:, 2 + a][:, None] * tx[:, 2 + b][None, :]
            acc += w * x[:, :, ty[:, a]][:, :, :, tx[:, b]]
    return acc


def _integer_factor(v: float, what: str) -> int:
    if not math.isfinite(v) or v < 1 or v != round(v):
        raise Unsupported(f"{what} {v:g} is not an integer factor >= 1 (only integer upsampling is supported)")
    return int(round(v))


def _factors(lw, n, in_shape) -> tuple[int, int]:
    """(sy, sx) from a Resize's constant scales or sizes, or an Upsample's scales."""
    rank = 4
    if n.op == "Upsample":
        scales = n.attrs.get("scales")
        if scales is None:
            scales = lw.const(n, 1)
        sizes = None
    else:
        # opset 10: (X, scales); 11+: (X, roi, scales, sizes)
        scales = lw.const(n, 1 if lw.g.opset < 11 else 2)
        sizes = lw.const(n, 3) if lw.g.opset >= 11 else None
    full = [float(d) for d in (1,) + tuple(in_shape)]
    if sizes is not None and np.asarray(sizes).size:
        sizes = [int(v) for v in np.asarray(sizes).reshape(-1)]
        if n.attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch":
            raise Unsupported(f"keep_aspect_ratio_policy={n.attrs['keep_aspect_ratio_policy']} is not supported")
        ratio = [s / d for s, d in zip(sizes, full)]
        vals, axes = ratio, n.attrs.get("axes")
    elif scales is not None and np.asarray(scales).size:
        vals, axes = [float(v) for v in np.asarray(scales).reshape(-1)], n.attrs.get("axes")
    else:
        raise Unsupported("scales and sizes are not constants (only a fixed upsampling factor is supported)")
    per_axis = [1.0] * rank
    axes = [int(a) % rank for a in axes] if axes is not None else list(range(rank))
    if len(axes) != len(vals):
        raise Unsupported(f"{len(vals)} factors for {rank} axes")
    for a, v in zip(axes, vals):
        per_axis[a] = v
    if per_axis[0] != 1 or per_axis[1] != 1:
        raise Unsupported(f"factors {per_axis} change the batch or channel axis (only H and W may be scaled)")
    return _integer_factor(per_axis[2], "the H factor"), _integer_factor(per_axis[3], "the W factor")


class ResizeOp(MovingOp):
    keeps_name = "a resize"
    alm_per_lane = ALM_RESIZE_PER_LANE
    name = "resize"
    layer_type = Resize
    onnx_types = ("Resize", "Upsample")
    limits = ("integer factors >= 1 on H and W, constant scales or sizes; nearest with "
              + ", ".join(f"{c} ({'/'.join(sorted(n for cc, n in _REPLICATING if cc == c))})"
                          for c in sorted({c for c, _ in _REPLICATING}))
              + "; linear (bilinear) with " + ", ".join(LINEAR_COORDS) + "; no antialias")
    emulator_tests = ("tests/test_resize.py::test_resize_kernel_bit_exact_in_emulator",
                      "tests/test_resize.py::test_bilinear_kernel_bit_exact_in_emulator")
    kernels = ("resize",)
    host_kind = "KIND_RESIZE"
    # the factors travel in the stride fields (the output step, in output pixels, per input pixel),
    # the interpolation taps per axis in the kernel-size field (1: nearest, 2: bilinear)
    host_fields = ("stride_y", "stride_x", "k_h")

    def from_onnx(self, lw, n) -> None:
        x, shape = lw.input_of(n)
        if len(shape) != 3:
            raise Unsupported(f"input must be a feature map (C,H,W), got {shape}")
        mode = str(n.attrs.get("mode", "nearest"))
        if mode == "bilinear" and n.op == "Upsample":  # Upsample-9's other name for it
            mode = "linear"
        if mode not in ("nearest", "linear"):
            raise Unsupported(f"mode={mode}: only nearest and linear (bilinear) upsampling are supported")
        coord = "asymmetric"  # Upsample, and Resize-10
        if n.op == "Resize" and lw.g.opset >= 11:
            coord = str(n.attrs.get("coordinate_transformation_mode", "half_pixel"))
        if n.op == "Resize" and int(n.attrs.get("antialias", 0)):
            raise Unsupported("antialias=1 is not supported")
        if mode == "nearest" and n.op == "Resize":
            nearest = str(n.attrs.get("nearest_mode", "round_prefer_floor")) if lw.g.opset >= 11 else "floor"
            if (coord, nearest) not in _REPLICATING:
                raise Unsupported(f"coordinate_transformation_mode={coord} with nearest_mode={nearest} does not "
                                  "replicate pixels (supported: asymmetric/floor, half_pixel/round_prefer_floor "
                                  "or round_prefer_ceil, tf_half_pixel_for_nn/floor)")
        if mode == "linear" and coord not in LINEAR_COORDS:
            raise Unsupported(f"mode=linear with coordinate_transformation_mode={coord} is not supported "
                              f"(supported: {', '.join(LINEAR_COORDS)})")
        sy, sx = _factors(lw, n, shape)
        extra = {"mode": "linear", "coord": coord} if mode == "linear" else {}
        lw.add(n, Resize(**lw.common(n, "resize"), inputs=[x], in_shapes=[shape], out_shape=(), scale=(sy, sx),
                         **extra))

    def describe(self, layer) -> str:
        text = f"{layer.mode} x{layer.scale[0]}" + (f"x{layer.scale[1]}" if layer.scale[1] != layer.scale[0] else "")
        return text + (f" {layer.coord}" if layer.mode == "linear" else "")

    def move(self, layer, x):
        return replicate(x, layer.scale)

    # -- references: bilinear interpolates, nearest moves ---------------------------------
    def float_ref(self, layer, x):
        if layer.mode != "linear":
            return self.move(layer, x)
        _, h, w = layer.in_shape
        ty, tx = (_float_taps(n, s, layer.coord) for n, s in zip((h, w), layer.scale))
        return _interpolate(x, ty, tx).astype(x.dtype, copy=False)

    def int_ref(self, q, x):
        if q.layer.mode != "linear":
            return super().int_ref(q, x)
        acc = bilinear_int(q.layer, x)
        return fx.requant(acc, q.shift, q.out, q.act, q.alpha_q), acc

    def fast(self, q, x):
        """Bilinear only: separable in float64, exact (every partial sum is an integer below 2^40)."""
        if q.layer.mode != "linear":
            return None
        from ..sim import fast

        ty, tx = ((t[:, 0], t[:, 1], t[:, 2].astype(np.float64), t[:, 3].astype(np.float64))
                  for t in layer_taps(q.layer))
        acc = _interpolate(np.asarray(x, dtype=np.float64), ty, tx)
        info = fast.acc_info(q, acc)
        bound = 1 << (q.in_fmts[0].bits - 1 + 2 * RESIZE_WEIGHT_BITS)
        return fast.requant_float(q, acc, bound), info

    def quant_params(self, q, ins, wfmt) -> None:
        extra = 2 * RESIZE_WEIGHT_BITS if q.layer.mode == "linear" else 0
        q.shift = extra + ins[0].frac - q.out.frac

    # -- hardware ----------------------------------------------------------------------
    def lower(self, layer: Resize, graph) -> KernelLayer:
        c = chw(layer.in_shape)[0]
        return KernelLayer(op=self, kind="resize", cg=c, mg=c, sy=layer.scale[0], sx=layer.scale[1],
                           extra={"mode": layer.mode}, **self.common(layer, graph))

    def host_args(self, k, q, hw) -> dict:
        return {"stride_y": k.sy, "stride_x": k.sx, "k_h": 2 if k.extra["mode"] == "linear" else 1}

    def device_arrays(self, q, k, hw) -> dict:
        # bilinear: the taps of every output row, then of every output column
        if q.layer.mode != "linear":
            return {}
        ty, tx = layer_taps(q.layer)
        return {"lut": int32(np.concatenate([ty, tx]))}

    def cost(self, k, ctx):
        if k.extra["mode"] != "linear":
            return super().cost(k, ctx)
        # one output vector a cycle from four input vectors (each read from memory), the taps of
        # the output row and column read with it
        cv = ceil_div(k.cg, ctx.config.vec_size)
        compute = cv * k.oh * k.ow
        nbytes = k.out_elems * (4 * ctx.in_bytes(k) + ctx.out_bytes(k)) + 4 * TAPS_PER_COORD * cv * k.oh * (k.ow + 1)
        return cycles.streamed(k, ctx, compute, nbytes, 4 * k.out_elems)

    def buffer_needs(self, k, hw, arch) -> dict:
        # the bilinear branch is generated (and priced) only in a design with a bilinear layer
        return {"bilinear": int(k.extra["mode"] == "linear")}

    def kernel_resources(self, layers, ctx) -> dict:
        # V lanes of the output step; the bilinear branch, where generated, adds 4 V multipliers
        # (a <= 16-bit input by a 25-bit weight product: the 27x27 mode) with their adders
        alm, dsp = ALM_RESIZE_PER_LANE * ctx.scale * ctx.v, 0
        if ctx.buffers.bilinear:
            dsp = math.ceil(4 * ctx.v / ctx.board.native_packing(2 * RESIZE_WEIGHT_BITS + 1))
            alm += ALM_BILINEAR_PER_LANE * ctx.scale * ctx.v
        return {"resize": ctx.block(self, "resize", alm, 0, dsp)}

    def ports(self, kernel, arch, v=1, lanes=1, buffers=None):
        # nearest: V loads and V stores; the bilinear branch adds 4 V loads, V stores and 8 table
        # loads (assumed present when the design is not known)
        if not arch.scalar_ports:
            return 0, 0
        bilinear = buffers is None or bool(buffers.bilinear)
        elements = (2 * v + (5 * v if bilinear else 0)) * char_sites(buffers, kernel)
        return 0, elements + (2 * TAPS_PER_COORD if bilinear else 0)

    def template_constants(self) -> dict[str, int]:
        return {"resize_weight_bits": RESIZE_WEIGHT_BITS}

    def kernel_args(self, kernel, consts) -> list:
        return [K.IN0, K.Arg("taps", K.INTS, "rt.tables[index]"), K.OUT_ARG, K.IN_OFF, K.OUT_OFF, K.CHANNELS,
                *K.fields("in_h", "in_w"), K.num("scale_y", "L.stride_y"), K.num("scale_x", "L.stride_x"),
                K.num("linear", "L.k_h == 2"), *K.REQUANT, *K.narrow_flags(consts)]


OP = ResizeOp()
