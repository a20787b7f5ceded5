"""Channel concatenation of feature maps (inception and dense blocks), done by addressing.

Every input is written by its producer straight into its channel range of the
concatenated buffer, so the layer itself runs no kernel and moves no data. All
inputs share the output's format (tied), since nothing rescales them.
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
class Concat(Layer):
    """Channel concatenation of feature maps (inception/dense blocks)."""

    kind: ClassVar[str] = "concat"

    def infer_shape(self) -> Shape:
        _, h, w = self.in_shapes[0]
        for s in self.in_shapes[1:]:
            if tuple(s[1:]) != (h, w):
                raise ValueError(f"layer {self.name}: concat inputs differ in spatial size {self.in_shapes}")
        return (sum(s[0] for s in self.in_shapes), h, w)


class ConcatOp(Op):
    name = "concat"
    layer_type = Concat
    onnx_types = ("Concat",)
    limits = "feature maps along channels; by addressing (no kernel), no activation"
    emulator_tests = ("tests/test_emulate.py::test_all_layer_kinds_bit_exact",)
    # no fusing_types: done by addressing, a concat cannot apply an activation (a following
    # Relu stays a standalone act layer)
    host_kind = "KIND_CONCAT"

    def from_onnx(self, lw, n) -> None:
        srcs, shapes = lw.inputs_of(n)
        axis = int(n.attrs.get("axis", 1))
        if any(len(s) != 3 for s in shapes) or axis % 4 != 1:
            raise Unsupported(f"only channel concatenation of feature maps is supported (axis={axis}, inputs {shapes})")
        layer = Concat(**lw.common(n, "concat"), inputs=srcs, in_shapes=shapes, out_shape=())
        lw.add(n, layer)

    def float_ref(self, layer, *xs):
        return np.concatenate(xs, axis=1)

    def int_ref(self, q, *xs):
        acc = np.concatenate(xs, axis=1)
        return fx.requant(acc, 0, q.out, q.act, q.alpha_q), acc

    def tied_inputs(self, layer) -> tuple[int, ...]:
        return tuple(range(len(layer.inputs)))

    def tie_violation(self, layer, ins, out) -> str | None:
        bad = [f"{src} {f}" for src, f in zip(layer.inputs, ins) if f != out]
        return f"concat inputs must all be in the output format {out}; got {', '.join(bad)}" if bad else None

    def quant_params(self, q, ins, wfmt) -> None:
        q.shift = 0

    # -- hardware ----------------------------------------------------------------------
    def check(self, layer) -> str | None:
        return f"layer {layer.name}: a concat cannot carry an activation" if layer.act != "none" else None

    def views(self, layer, graph) -> list[tuple[str, int]]:
        """(input, channel offset in this layer's buffer) for every input: the producers
        write there directly."""
        if layer.act != "none":
            raise ArchLimit(f"layer {layer.name}: a concat cannot carry an activation")
        out, off = [], 0
        for src in layer.inputs:
            out.append((src, off))
            off += chw(graph.shape_of(src))[0]
        return out

    def lower(self, layer: Concat, graph) -> KernelLayer:
        return KernelLayer(op=self, kind="concat", cg=layer.in_shape[0], mg=layer.out_shape[0],
                           **self.common(layer, graph))

    def cost(self, k, ctx):
        return cycles.free(k)  # producers write at channel offsets


OP = ConcatOp()
