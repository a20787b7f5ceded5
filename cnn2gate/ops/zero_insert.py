"""Transposed convolution (ONNX `ConvTranspose`) as a zero-insertion pass plus an ordinary convolution.

ConvTranspose(x, W, stride s, dilation d, pads (pb, pe), output_padding op) equals a stride-1
convolution, dilation d, of the zero-inserted map Z (s - 1 zeros between neighbouring input
pixels, size (H - 1) * s + 1) with the kernel flipped in both spatial axes and its in/out axes
swapped per group, padded by D - 1 - pb at the start and D - 1 - pe + op at the end, where
D = (k - 1) * d + 1 is the dilated kernel extent. Sizes check:
(H - 1) * s + 1 + 2 (D - 1) - pb - pe + op - D + 1 = (H - 1) * s + D - pb - pe + op, ONNX's.

The front end emits two layers: a `zero_insert` layer (this module, a small streaming kernel)
and a `Conv` (ops/conv.py, or ops/depthwise.py when depthwise) that runs unchanged on the
convolution datapath. A padding that would be negative (pb > D - 1) becomes a crop of Z,
done by the zero-insert kernel; non-negative padding stays with the convolution.

Zero insertion moves values and writes zeros, so it is exact: the layer keeps its input's
format (tied, as a resize) and its output step is the shared requantisation with shift
in_frac - out_frac (0 with the quantiser's formats), never an activation (zero stays zero).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..ir.layers import Layer, Shape
from . import kernel_args as K
from .base import KernelLayer, Unsupported, chw
from .moving import MovingOp
from .conv import Conv

#: ALMs per lane at 8 bits (output step, phase test, address counters; assumption)
ALM_ZERO_INSERT_PER_LANE = 24.0


@dataclass(eq=False, kw_only=True)
class ZeroInsert(Layer):
    stride: tuple[int, int] = (2, 2)  # output pixels between neighbouring input pixels
    # rows/columns added (positive: zeros) or cropped (negative) at top, left, bottom, right
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)

    kind: ClassVar[str] = "zero_insert"

    def __post_init__(self) -> None:
        super().__post_init__()
        if any(int(s) < 1 for s in self.stride):
            raise ValueError(f"layer {self.name}: zero insertion stride {self.stride} (must be >= 1)")
        if self.act != "none":
            raise ValueError(f"layer {self.name}: zero insertion takes no activation")

    def infer_shape(self) -> Shape:
        c, h, w = self.in_shape
        t, l, b, r = self.pads
        return (c, (h - 1) * self.stride[0] + 1 + t + b, (w - 1) * self.stride[1] + 1 + l + r)


def insert_zeros(x: np.ndarray, stride, pads, out_hw) -> np.ndarray:
    """(N, C, H, W) -> (N, C, OH, OW): x[.., iy, ix] lands at (t + iy * sy, l + ix * sx), zeros elsewhere."""
    n, c, h, w = x.shape
    sy, sx = stride
    t, l = pads[0], pads[1]
    oh, ow = out_hw
    out = np.zeros((n, c, oh, ow), dtype=x.dtype)
    ys, xs = t + np.arange(h) * sy, l + np.arange(w) * sx
    iy, ix = np.nonzero((ys >= 0) & (ys < oh))[0], np.nonzero((xs >= 0) & (xs < ow))[0]
    out[:, :, ys[iy][:, None], xs[ix][None, :]] = x[:, :, iy[:, None], ix[None, :]]
    return out


def equivalent_weight(w: np.ndarray, groups: int) -> np.ndarray:
    """ConvTranspose weight (C, M/g, kh, kw) -> Conv weight (M, C/g, kh, kw): per group, in/out swapped, flipped."""
    c, mg, kh, kw = w.shape
    cg = c // groups
    out = w.reshape(groups, cg, mg, kh, kw).transpose(0, 2, 1, 3, 4).reshape(groups * mg, cg, kh, kw)
    return np.ascontiguousarray(out[:, :, ::-1, ::-1])


def _ints(n, key, default) -> list[int]:
    v = n.attrs.get(key, default)
    if not isinstance(v, (list, tuple)) or len(v) != len(default) or not all(isinstance(i, int) for i in v):
        raise Unsupported(f"{key}={v!r} is not {len(default)} integers (2-D only)")
    return [int(i) for i in v]


class ZeroInsertOp(MovingOp):
    keeps_name = "zero insertion"
    alm_per_lane = ALM_ZERO_INSERT_PER_LANE
    name = "zero_insert"
    layer_type = ZeroInsert
    onnx_types = ("ConvTranspose",)
    limits = ("ConvTranspose 2-D, constant weights; any strides, pads, output_padding, dilations, group; "
              "then a stride-1 conv; no auto_pad or output_shape")
    emulator_tests = ("tests/test_conv_transpose.py::test_zero_insert_kernel_bit_exact_in_emulator",)
    fusing_types = ("ConvTranspose",)  # the activation goes to the convolution, the node's last layer
    kernels = ("zero_insert",)
    host_kind = "KIND_ZERO_INSERT"
    # the output offsets of the first input pixel travel in the pad fields
    host_fields = ("stride_y", "stride_x", "pad_t", "pad_l")

    def from_onnx(self, lw, n) -> None:
        x, shape = lw.input_of(n)
        if len(shape) != 3:
            raise Unsupported(f"input must be a feature map (C,H,W), got {shape}")
        w = lw.const(n, 1)
        if w is None or w.ndim != 4:
            raise Unsupported("only 2-D transposed convolution with constant weights is supported")
        b = lw.const(n, 2)
        if len(n.inputs) > 2 and n.inputs[2] and b is None:
            raise Unsupported("bias must be constant")
        if str(n.attrs.get("auto_pad", "NOTSET")) != "NOTSET":
            raise Unsupported(f"auto_pad={n.attrs['auto_pad']} is not supported (give explicit pads)")
        if "output_shape" in n.attrs:
            raise Unsupported("output_shape is not supported (give pads and output_padding)")
        groups = n.attrs.get("group", 1)
        c, mg, kh, kw = (int(d) for d in w.shape)
        if not isinstance(groups, int) or groups < 1 or c != shape[0] or c % groups:
            raise Unsupported(f"weight {tuple(w.shape)} with group={groups} does not fit {shape[0]} input channels")
        if "kernel_shape" in n.attrs and _ints(n, "kernel_shape", [kh, kw]) != [kh, kw]:
            raise Unsupported(f"kernel_shape {n.attrs['kernel_shape']} differs from the weight's {(kh, kw)}")
        sy, sx = _ints(n, "strides", [1, 1])
        dy, dx = _ints(n, "dilations", [1, 1])
        pt, pl, pb, pr = _ints(n, "pads", [0, 0, 0, 0])
        oy, ox = _ints(n, "output_padding", [0, 0])
        if min(sy, sx, dy, dx) < 1 or min(pt, pl, pb, pr, oy, ox) < 0:
            raise Unsupported(f"strides {(sy, sx)}, dilations {(dy, dx)}, pads {(pt, pl, pb, pr)} or "
                              f"output_padding {(oy, ox)} out of range")
        ey, ex = (kh - 1) * dy, (kw - 1) * dx  # dilated extent - 1: the full padding of a stride-1 conv
        full = (ey - pt, ex - pl, ey - pb + oy, ex - pr + ox)
        crop = tuple(min(0, p) for p in full)
        common = lw.common(n, "conv")  # the convolution keeps the node's name and its fused activation
        zi = ZeroInsert(name=lw.names.take(f"{common['name']}_zeros", f"zero_insert{len(lw.layers)}"),
                        inputs=[x], in_shapes=[shape], out_shape=(), source=common["source"],
                        stride=(sy, sx), pads=crop)
        zshape = tuple(zi.infer_shape())
        if min(zshape) <= 0:
            raise Unsupported(f"pads {(pt, pl, pb, pr)} crop away the whole output")
        zi.out_shape = zshape
        bias = (np.zeros(mg * groups) if b is None else np.asarray(b)).astype(np.float32).reshape(-1)
        conv = Conv(**common, inputs=[zi.name], in_shapes=[zshape], out_shape=(),
                    weight=equivalent_weight(np.asarray(w, dtype=np.float32), groups), bias=bias,
                    stride=(1, 1), pads=tuple(max(0, p) for p in full), dilation=(dy, dx), groups=groups)
        lw.layers.append(zi)
        try:
            lw.add(n, conv)
        except Unsupported:
            lw.layers.remove(zi)
            raise

    def describe(self, layer) -> str:
        text = f"x{layer.stride[0]}" + (f"x{layer.stride[1]}" if layer.stride[1] != layer.stride[0] else "")
        return text + (f" crop {tuple(-p for p in layer.pads)}" if any(layer.pads) else "")

    def move(self, layer, x):
        return insert_zeros(x, layer.stride, layer.pads, layer.out_shape[1:])

    # -- hardware ----------------------------------------------------------------------
    def lower(self, layer: ZeroInsert, graph) -> KernelLayer:
        c = chw(layer.in_shape)[0]
        return KernelLayer(op=self, kind="zero_insert", cg=c, mg=c, sy=layer.stride[0], sx=layer.stride[1],
                           pad_t=layer.pads[0], pad_l=layer.pads[1], **self.common(layer, graph))

    def host_args(self, k, q, hw) -> dict:
        return {"stride_y": k.sy, "stride_x": k.sx, "pad_t": k.pad_t, "pad_l": k.pad_l}

    def kernel_args(self, kernel, consts) -> list:
        return [K.IN0, K.OUT_ARG, K.IN_OFF, K.OUT_OFF, K.CHANNELS,
                *K.fields("in_h", "in_w", "out_h", "out_w", "stride_y", "stride_x", "pad_t", "pad_l"), *K.REQUANT,
                *K.narrow_flags(consts)]


OP = ZeroInsertOp()
