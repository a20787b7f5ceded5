"""A channel range of a feature map (ONNX `Split` on axis 1, `Slice` of the channel axis), done by addressing.

Each output of a Split becomes one layer that holds channels [c_off, c_off + C) of its
input. The layer runs no kernel and moves no data: its output is a view into its input's
buffer at channel offset c_off (`Op.placed`), and every kernel reads a channel range at an
offset already (in_c_off). A concat that wants such a tensor in its own buffer gets a copy
(ir/copies.py). Nothing is rescaled, so the output keeps its input's format (tied).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..hw import cycles
from ..ir.layers import Layer, Shape
from ..quant import fixedpoint as fx
from .base import ArchLimit, KernelLayer, Op, Unsupported, chw


@dataclass(eq=False, kw_only=True)
class Split(Layer):
    """Channels [c_off, c_off + channels) of the input."""

    c_off: int = 0
    channels: int = 1

    kind: ClassVar[str] = "split"

    def infer_shape(self) -> Shape:
        c, h, w = self.in_shape
        if self.c_off < 0 or self.channels < 1 or self.c_off + self.channels > c:
            raise ValueError(f"layer {self.name}: channels [{self.c_off}, {self.c_off + self.channels}) of a "
                             f"{c}-channel input")
        return (self.channels, h, w)


def _ints(v) -> list[int]:
    return [int(x) for x in np.asarray(v).reshape(-1)]


def _split_sizes(lw, n, c: int) -> list[int]:
    sizes = n.attrs.get("split")
    if sizes is None and len(n.inputs) > 1 and n.inputs[1]:
        sizes = lw.const(n, 1)
        if sizes is None:
            raise Unsupported("the split sizes are not a constant")
    if sizes is not None:
        sizes = _ints(sizes)
    else:  # equal parts, the last one smaller when C does not divide (opset 18 num_outputs)
        k = len(n.outputs)
        step = -(-c // k)
        sizes = [min(step, c - i * step) for i in range(k)]
    if sum(sizes) != c or len(sizes) != len(n.outputs) or min(sizes) < 1:
        raise Unsupported(f"split sizes {sizes} do not cut {c} channels into {len(n.outputs)} parts")
    return sizes


def _slice_range(lw, n, c: int) -> tuple[int, int]:
    if lw.g.opset < 10:
        starts, ends, axes, steps = n.attrs.get("starts"), n.attrs.get("ends"), n.attrs.get("axes"), None
    else:
        starts, ends = lw.const(n, 1), lw.const(n, 2)
        axes = lw.const(n, 3) if len(n.inputs) > 3 and n.inputs[3] else None
        steps = lw.const(n, 4) if len(n.inputs) > 4 and n.inputs[4] else None
        if starts is None or ends is None or (len(n.inputs) > 3 and n.inputs[3] and axes is None) \
                or (len(n.inputs) > 4 and n.inputs[4] and steps is None):
            raise Unsupported("the slice bounds are not constants")
    starts, ends = _ints(starts), _ints(ends)
    axes = _ints(axes) if axes is not None else list(range(len(starts)))
    steps = _ints(steps) if steps is not None else [1] * len(starts)
    lo, hi = 0, c
    for a, s, e, st in zip(axes, starts, ends, steps):
        a %= 4
        if a == 1 and st == 1:
            lo = max(0, min(c, s + c if s < 0 else s))
            hi = max(0, min(c, e + c if e < 0 else e))
        elif not (st == 1 and a in (2, 3) and s == 0 and e >= 2 ** 31 - 1):
            along = {0: "the batch", 1: "channels", 2: "H", 3: "W"}[a]
            raise Unsupported(f"a Slice of a feature map along {along} (axis {a}, {s}:{e}:{st}) is not supported; "
                              "only a channel Slice with step 1 is")
    if hi <= lo:
        raise Unsupported(f"the channel slice [{lo}, {hi}) is empty")
    return lo, hi


class SplitOp(Op):
    name = "split"
    layer_type = Split
    onnx_types = ("Split", "Slice")
    limits = "Split on channels (constant sizes), Slice of channels (constant bounds, step 1); by addressing"
    emulator_tests = ("tests/test_shuffle.py::test_shufflenet_v2_bit_exact_in_emulator",)
    host_kind = "KIND_SPLIT"

    def from_onnx(self, lw, n) -> None:
        if n.inputs[0] in lw.g.consts or not lw.is_feature(n.inputs[0]):
            raise Unsupported("shape computation that does not reduce to a constant")
        if lw.g.shape(n.inputs[0]) is not None and len(lw.g.shape(n.inputs[0])) != 4:
            raise Unsupported(f"a {n.op} of a tensor of shape {tuple(lw.g.shape(n.inputs[0]))}: only channel "
                              "ranges of (N, C, H, W) feature maps are supported")
        x, shape = lw.input_of(n)
        if len(shape) != 3:
            raise Unsupported(f"input must be a feature map (C,H,W), got {shape}")
        c = shape[0]
        if n.op == "Slice":
            lo, hi = _slice_range(lw, n, c)
            ranges = [(lo, hi - lo)]
        else:
            if int(n.attrs.get("axis", 0)) % 4 != 1:
                raise Unsupported(f"only a Split along channels is supported (axis={n.attrs.get('axis', 0)})")
            offs = np.cumsum([0] + _split_sizes(lw, n, c))
            ranges = [(int(a), int(b - a)) for a, b in zip(offs[:-1], offs[1:])]
        for out, (off, ch) in zip(n.outputs, ranges):
            layer = Split(**lw.common(n, "split"), inputs=[x], in_shapes=[shape], out_shape=(), c_off=off,
                          channels=ch)
            ir = tuple(layer.infer_shape())
            onnx_shape = lw.g.shape(out)
            if onnx_shape is not None and tuple(onnx_shape[1:]) != ir:
                raise Unsupported(f"IR shape {ir} differs from ONNX's {tuple(onnx_shape[1:])}")
            layer.out_shape = ir
            lw.layers.append(layer)
            lw.src[out] = (layer.name, ir)

    def describe(self, layer) -> str:
        return f"channels {layer.c_off}:{layer.c_off + layer.channels}"

    def float_ref(self, layer, x):
        return x[:, layer.c_off:layer.c_off + layer.channels]

    def int_ref(self, q, x):
        acc = x[:, q.layer.c_off:q.layer.c_off + q.layer.channels]
        return fx.requant(acc, 0, q.out, q.act, q.alpha_q), acc

    def tied_inputs(self, layer) -> tuple[int, ...]:
        return (0,)

    def tie_violation(self, layer, ins, out) -> str | None:
        return None if ins[0] == out else f"a channel split keeps its input format {ins[0]}, got {out}"

    def quant_params(self, q, ins, wfmt) -> None:
        q.shift = 0

    # -- hardware ----------------------------------------------------------------------
    def check(self, layer) -> str | None:
        return f"layer {layer.name}: a channel split cannot carry an activation" if layer.act != "none" else None

    def placed(self, layer, graph) -> tuple[str, int]:
        if layer.act != "none":
            raise ArchLimit(f"layer {layer.name}: a channel split cannot carry an activation")
        return layer.inputs[0], layer.c_off

    def lower(self, layer: Split, graph) -> KernelLayer:
        return KernelLayer(op=self, kind="split", cg=chw(layer.in_shape)[0], mg=layer.channels,
                           **self.common(layer, graph))

    def cost(self, k, ctx):
        return cycles.free(k)  # readers address the input's buffer at c_off


OP = SplitOp()
