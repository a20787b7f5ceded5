"""Channel shuffle (ShuffleNet), on the shuffle kernel (V channels a cycle).

ONNX has no shuffle node: exporters write Reshape (N,C,H,W)->(N,g,C/g,H,W), Transpose
(0,2,1,3,4), Reshape back to (N,C,H,W). The op owns that pattern (`shuffle_of`), which the
front end replaces by one internal ChannelShuffle node. Output channel o reads input channel
(o % g) * (C/g) + o // g. A permutation is not a contiguous channel range, so it cannot be a
view; the kernel gathers each output vector of V channels from its V source channels and
writes it once. (Folding it into the consumer's weights would only serve a convolution
consumer; ShuffleNetV2's shuffles feed splits and depthwise convolutions.) Nothing is
rescaled: the output keeps its input's format (tied), shift in_frac - out_frac (0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..ir.layers import Layer, Shape
from . import kernel_args as K
from .base import KernelLayer, Unsupported, chw
from .moving import MovingOp

#: ALMs per shuffle lane at 8 bits (source-channel address, output step; assumption)
ALM_SHUFFLE_PER_LANE = 25.0


@dataclass(eq=False, kw_only=True)
class Shuffle(Layer):
    groups: int = 2

    kind: ClassVar[str] = "shuffle"

    def infer_shape(self) -> Shape:
        c, h, w = self.in_shape
        if self.groups < 1 or c % self.groups:
            raise ValueError(f"layer {self.name}: {c} channels do not split into {self.groups} groups")
        return (c, h, w)


def source_channels(c: int, groups: int) -> np.ndarray:
    """Input channel of every output channel."""
    o = np.arange(c)
    return (o % groups) * (c // groups) + o // groups


def shuffle(x: np.ndarray, groups: int) -> np.ndarray:
    return x[:, source_channels(x.shape[1], groups)]


# -- ONNX pattern: Reshape(N,g,C/g,H,W) -> Transpose(0,2,1,3,4) -> Reshape(N,C,H,W) ------------
def shuffle_of(g, n):
    """(transpose, last reshape, groups) when n is the first Reshape of a channel shuffle."""
    if n.op != "Reshape" or n.domain or n.inputs[0] in g.consts or g.is_output(n.outputs[0]):
        return None
    src, mid = g.shape(n.inputs[0]), g.shape(n.outputs[0])
    if src is None or mid is None or len(src) != 4 or len(mid) != 5 or mid[0] != src[0] \
            or tuple(mid[3:]) != tuple(src[2:]) or mid[1] * mid[2] != src[1]:
        return None
    t = g.sole_consumer(n.outputs[0])
    if t is None or t.op != "Transpose" or t.domain or [int(v) for v in t.attrs.get("perm", ())] != [0, 2, 1, 3, 4]:
        return None
    r = g.sole_consumer(t.outputs[0])
    if r is None or r.op != "Reshape" or r.domain or g.shape(r.outputs[0]) is None \
            or tuple(g.shape(r.outputs[0])) != tuple(src):
        return None
    return t, r, int(mid[1])


def fuse_shuffle(g, n) -> None:
    from ..frontend.wgraph import INTERNAL, Node

    t, r, groups = shuffle_of(g, n)
    node = Node(op="ChannelShuffle", name=r.name or n.name, inputs=[n.inputs[0]], outputs=list(r.outputs),
                attrs={"groups": groups}, domain=INTERNAL,
                sources=[s for m in (n, t, r) for s in m.sources if s] or [m.name for m in (n, t, r) if m.name])
    g.insert_after(r, node)
    for m in (n, t, r):
        g.remove(m)


class ShuffleOp(MovingOp):
    keeps_name = "a channel shuffle"
    alm_per_lane = ALM_SHUFFLE_PER_LANE
    name = "shuffle"
    layer_type = Shuffle
    internal_types = ("ChannelShuffle",)
    patterns = {"ChannelShuffle": "Reshape (N,C,H,W)->(N,g,C/g,H,W), Transpose (0,2,1,3,4), Reshape back"}
    limits = "g groups dividing C; each node read only by the next"
    emulator_tests = ("tests/test_shuffle.py::test_shufflenet_v2_bit_exact_in_emulator",)
    kernels = ("shuffle",)
    host_kind = "KIND_SHUFFLE"
    host_fields = ("groups",)

    def from_onnx(self, lw, n) -> None:
        x, shape = lw.input_of(n)
        if len(shape) != 3:
            raise Unsupported(f"input must be a feature map (C,H,W), got {shape}")
        lw.add(n, Shuffle(**lw.common(n, "shuffle"), inputs=[x], in_shapes=[shape], out_shape=(),
                          groups=int(n.attrs["groups"])))

    def describe(self, layer) -> str:
        return f"{layer.groups} groups"

    def move(self, layer, x):
        return shuffle(x, layer.groups)

    # -- hardware ----------------------------------------------------------------------
    def lower(self, layer: Shuffle, graph) -> KernelLayer:
        c = chw(layer.in_shape)[0]
        return KernelLayer(op=self, kind="shuffle", cg=c, mg=c, groups=layer.groups, **self.common(layer, graph))

    def host_args(self, k, q, hw) -> dict:
        return {"groups": k.groups}

    def kernel_args(self, kernel, consts) -> list:
        return [K.IN0, K.OUT_ARG, K.IN_OFF, K.OUT_OFF, K.CHANNELS, K.num("h", "L.out_h"), K.num("w", "L.out_w"),
                *K.fields("groups"), *K.REQUANT, *K.narrow_flags(consts)]


OP = ShuffleOp()
