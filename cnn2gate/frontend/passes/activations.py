"""Fuse Relu / LeakyRelu / Clip into the layer that produces their input.

Only when that layer's output is read by nothing else: otherwise the other
readers would see the activated values too.
"""
from __future__ import annotations

import math

from ... import ops
from ..wgraph import Node, WGraph
from .affine import is_affine
from .base import Rule, const_of
from .canonical import is_dense

#: ONNX ops (after the other passes) that become an IR layer able to carry an activation.
LAYER_OPS = {t for op in ops.OPS for t in op.fusing_types}


def clip_bounds(g: WGraph, n: Node):
    """(lo, hi) of a Clip with constant bounds (attributes before opset 11, inputs after)."""
    if "min" in n.attrs or "max" in n.attrs:
        return float(n.attrs.get("min", -math.inf)), float(n.attrs.get("max", math.inf))
    bounds = []
    for i, default in ((1, -math.inf), (2, math.inf)):
        if len(n.inputs) <= i or not n.inputs[i]:
            bounds.append(default)
            continue
        c = const_of(g, n, i)
        if c is None or c.size != 1:
            return None
        bounds.append(float(c.reshape(-1)[0]))
    return tuple(bounds)


def activation_of(g: WGraph, n: Node):
    """(act, alpha) for nodes the IR can fuse, else None."""
    if n.domain:
        return None
    if n.op == "Relu":
        return "relu", 0.0
    if n.op == "LeakyRelu":
        return "leaky", float(n.attrs.get("alpha", 0.01))
    if n.op == "Clip":
        b = clip_bounds(g, n)
        if b == (0.0, 6.0):
            return "relu6", 0.0
        if b == (0.0, math.inf):
            return "relu", 0.0
    return None


def can_carry_activation(g: WGraph, p: Node) -> bool:
    return p.act == "none" and (is_affine(p) or is_dense(g, p) or (p.op in LAYER_OPS and not p.domain))


def _fusable(g: WGraph, n: Node) -> Node | None:
    if activation_of(g, n) is None or n.inputs[0] in g.consts:
        return None
    p = g.producer(n.inputs[0])
    if p is None or not can_carry_activation(g, p) or g.sole_consumer(p.outputs[0]) is not n:
        return None
    return p


def _fuse(g: WGraph, n: Node) -> None:
    p = _fusable(g, n)
    p.act, p.alpha = activation_of(g, n)
    p.outputs = [n.outputs[0]] + p.outputs[1:]
    p.sources = p.sources + [s for s in n.sources if s not in p.sources]
    g.remove(n)


RULES = [
    # x * Sigmoid(x) and x * HardSigmoid(x): one activation layer (the pattern is the act op's)
    Rule("fuse_gate", lambda g, n: ops.activation.gate_of(g, n) is not None, ops.activation.fuse_gate),
    Rule("fuse_activation", lambda g, n: _fusable(g, n) is not None, _fuse),
]
