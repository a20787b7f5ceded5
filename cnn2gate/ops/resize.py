"""Nearest-neighbour upsampling by integer factors on H and W, on the resize kernel (V channels in parallel).

ONNX `Resize` (scales or sizes constant) and the older `Upsample`. Only the coordinate
rules that reduce to replication are accepted: every output pixel (oy, ox) copies input
(oy // sy, ox // sx). Replication is exact, so the layer keeps its input's format (tied,
as a max pool); the output step is the shared requantisation with shift in_frac - out_frac
(0 with the quantiser's formats).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..ir.layers import Layer, Shape
from . import kernel_args as K
from .base import KernelLayer, Unsupported, chw
from .moving import MovingOp

#: ALMs per resize lane at 8 bits (output step, address counters; assumption)
ALM_RESIZE_PER_LANE = 20.0

#: (coordinate_transformation_mode, nearest_mode) pairs that give out[o] = in[o // s] at every
#: integer s: asymmetric o/s floored; the half-pixel rules put o/s - 1/2 + (1/2)/s strictly
#: inside (k - 1/2, k + 1/2), so either rounding gives k; tf_half_pixel_for_nn's (o + 1/2)/s floors to k
_REPLICATING = {
    ("asymmetric", "floor"),
    ("half_pixel", "round_prefer_floor"), ("half_pixel", "round_prefer_ceil"),
    ("pytorch_half_pixel", "round_prefer_floor"), ("pytorch_half_pixel", "round_prefer_ceil"),
    ("tf_half_pixel_for_nn", "floor"),
}


@dataclass(eq=False, kw_only=True)
class Resize(Layer):
    scale: tuple[int, int] = (2, 2)  # integer factors on H and W
    mode: str = "nearest"

    kind: ClassVar[str] = "resize"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode != "nearest" or any(int(s) != s or s < 1 for s in self.scale):
            raise ValueError(f"layer {self.name}: resize {self.mode} by {self.scale} (nearest at integer factors only)")

    def infer_shape(self) -> Shape:
        c, h, w = self.in_shape
        return (c, h * self.scale[0], w * self.scale[1])


def replicate(x: np.ndarray, scale) -> np.ndarray:
    """A batch of maps (N, C, H, W) with every pixel repeated sy times down and sx across."""
    return np.repeat(np.repeat(x, scale[0], axis=2), scale[1], axis=3)


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
    keeps_name = "a nearest resize"
    alm_per_lane = ALM_RESIZE_PER_LANE
    name = "resize"
    layer_type = Resize
    onnx_types = ("Resize", "Upsample")
    kernels = ("resize",)
    host_kind = "KIND_RESIZE"
    # the factors travel in the stride fields: the output step, in output pixels, per input pixel
    host_fields = ("stride_y", "stride_x")

    def from_onnx(self, lw, n) -> None:
        x, shape = lw.input_of(n)
        if len(shape) != 3:
            raise Unsupported(f"input must be a feature map (C,H,W), got {shape}")
        mode = str(n.attrs.get("mode", "nearest"))
        if mode != "nearest":
            raise Unsupported(f"mode={mode}: only nearest-neighbour upsampling is supported")
        if n.op == "Resize":
            ctm = str(n.attrs.get("coordinate_transformation_mode", "half_pixel"))
            nearest = str(n.attrs.get("nearest_mode", "round_prefer_floor"))
            if lw.g.opset < 11:  # Resize-10 is asymmetric with floor only
                ctm, nearest = "asymmetric", "floor"
            if (ctm, nearest) not in _REPLICATING:
                raise Unsupported(f"coordinate_transformation_mode={ctm} with nearest_mode={nearest} does not "
                                  "replicate pixels (supported: asymmetric/floor, half_pixel/round_prefer_floor "
                                  "or round_prefer_ceil, tf_half_pixel_for_nn/floor)")
            if int(n.attrs.get("antialias", 0)):
                raise Unsupported("antialias=1 is not supported")
        sy, sx = _factors(lw, n, shape)
        lw.add(n, Resize(**lw.common(n, "resize"), inputs=[x], in_shapes=[shape], out_shape=(), scale=(sy, sx)))

    def describe(self, layer) -> str:
        return f"{layer.mode} x{layer.scale[0]}" + (f"x{layer.scale[1]}" if layer.scale[1] != layer.scale[0] else "")

    def move(self, layer, x):
        return replicate(x, layer.scale)

    # -- hardware ----------------------------------------------------------------------
    def lower(self, layer: Resize, graph) -> KernelLayer:
        c = chw(layer.in_shape)[0]
        return KernelLayer(op=self, kind="resize", cg=c, mg=c, sy=layer.scale[0], sx=layer.scale[1],
                           extra={"mode": layer.mode}, **self.common(layer, graph))

    def host_args(self, k, q, hw) -> dict:
        return {"stride_y": k.sy, "stride_x": k.sx}

    def kernel_args(self, kernel, consts) -> list:
        return [K.IN0, K.OUT_ARG, K.IN_OFF, K.OUT_OFF, K.CHANNELS, *K.fields("in_h", "in_w"),
                K.num("scale_y", "L.stride_y"), K.num("scale_x", "L.stride_x"), *K.REQUANT]


OP = ResizeOp()
