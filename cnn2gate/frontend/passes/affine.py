"""Per-channel affine ops: BatchNormalization and constant Add/Sub/Mul/Div.

Each becomes an internal ChannelAffine node (y = x·scale + shift along the channel
axis); consecutive ones merge, and one right after a Conv or dense layer that
nothing else reads folds into its weights and bias. Whatever is left on a feature
map is lowered to a 1x1 convolution with one group per channel, which represents it exactly.
"""
from __future__ import annotations

import numpy as np

from ...errors import ModelError
from ..wgraph import INTERNAL, Node, WGraph
from .base import Rule, const_of, merge_sources
from .canonical import is_dense

AFFINE = "ChannelAffine"


def is_affine(n: Node) -> bool:
    return n.op == AFFINE and n.domain == INTERNAL


def _make_affine(g: WGraph, n: Node, x: str, scale, shift) -> None:
    n.op, n.domain = AFFINE, INTERNAL
    n.inputs = [x]
    n.outputs = n.outputs[:1]
    n.attrs = {"scale": np.asarray(scale, dtype=np.float64), "shift": np.asarray(shift, dtype=np.float64)}


# -- BatchNormalization -----------------------------------------------------

def _is_inference_bn(g: WGraph, n: Node) -> bool:
    if n.op != "BatchNormalization" or n.domain or int(n.attrs.get("training_mode", 0)):
        return False
    if any(o and (g.consumers(o) or g.is_output(o)) for o in n.outputs[1:]):
        return False  # running-statistics outputs are training-only
    s = g.shape(n.inputs[0])
    return (s is not None and len(s) in (2, 4) and n.inputs[0] not in g.consts
            and all(const_of(g, n, i) is not None for i in range(1, 5)))


def _bn_to_affine(g: WGraph, n: Node) -> None:
    scale, bias, mean, var = (g.consts[n.inputs[i]].astype(np.float64).reshape(-1) for i in range(1, 5))
    denom = var + float(n.attrs.get("epsilon", 1e-5))
    if not np.all(denom > 0):  # a corrupt model: the folded weights would be NaN/Inf
        raise ModelError(f"{g.source}: node {n.name or n.op!r} (BatchNormalization): variance + epsilon must be "
                         f"positive, got {float(np.min(denom)):.4g} in {n.inputs[4]!r}")
    s = scale / np.sqrt(denom)
    _make_affine(g, n, n.inputs[0], s, bias - mean * s)


# -- constant arithmetic ------------------------------------------------------

def _per_channel(g: WGraph, n: Node):
    """(x, k as (C,) vector, k is first operand) when n is x∘k with k constant along the channel axis."""
    if n.op not in ("Add", "Sub", "Mul", "Div") or n.domain or len(n.inputs) != 2:
        return None
    consts = [i for i, t in enumerate(n.inputs) if t in g.consts]
    if len(consts) != 1:
        return None
    ki = consts[0]
    x = n.inputs[1 - ki]
    xs, k = g.shape(x), g.consts[n.inputs[ki]]
    if xs is None or len(xs) not in (2, 4) or k.ndim > len(xs) or g.shape(n.outputs[0]) != xs:
        return None
    if not np.issubdtype(k.dtype, np.floating):
        return None
    kr = k.reshape((1,) * (len(xs) - k.ndim) + k.shape)
    if any(kr.shape[i] != 1 for i in range(len(xs)) if i != 1) or kr.shape[1] not in (1, xs[1]):
        return None
    if n.op == "Div" and ki == 0:
        return None  # k / x is not affine
    return x, np.broadcast_to(kr.reshape(-1).astype(np.float64), (xs[1],)), ki == 0


def _arith_to_affine(g: WGraph, n: Node) -> None:
    x, k, k_first = _per_channel(g, n)
    ones, zeros = np.ones_like(k), np.zeros_like(k)
    if n.op == "Add":
        scale, shift = ones, k
    elif n.op == "Sub":
        scale, shift = (-ones, k) if k_first else (ones, -k)
    elif n.op == "Mul":
        scale, shift = k, zeros
    else:  # Div by the constant
        scale, shift = 1.0 / k, zeros
    _make_affine(g, n, x, scale, shift)


# -- merging and folding -----------------------------------------------------

def _affine_after_affine(g: WGraph, n: Node) -> Node | None:
    if not is_affine(n):
        return None
    first = g.producer(n.inputs[0])
    if first is None or not is_affine(first) or g.sole_consumer(first.outputs[0]) is not n:
        return None
    return first


def _merge(g: WGraph, n: Node) -> None:
    first = _affine_after_affine(g, n)
    s1, t1, s2, t2 = first.attrs["scale"], first.attrs["shift"], n.attrs["scale"], n.attrs["shift"]
    n.attrs = {"scale": s1 * s2, "shift": t1 * s2 + t2}
    n.inputs = list(first.inputs)
    n.sources = first.sources + [s for s in n.sources if s not in first.sources]
    g.remove(first)


def _foldable_producer(g: WGraph, n: Node) -> Node | None:
    if not is_affine(n):
        return None
    p = g.producer(n.inputs[0])
    if p is None or p.act != "none" or g.sole_consumer(p.outputs[0]) is not n:
        return None
    if p.op == "Conv" and not p.domain and const_of(g, p, 1) is not None and const_of(g, p, 1).ndim == 4 \
            and (len(p.inputs) < 3 or not p.inputs[2] or const_of(g, p, 2) is not None):
        return p
    if is_dense(g, p):
        return p
    return None


def _fold_into_producer(g: WGraph, n: Node) -> None:
    p = _foldable_producer(g, n)
    s, t = n.attrs["scale"], n.attrs["shift"]
    w = g.consts[p.inputs[1]].astype(np.float64)
    m = w.shape[0]
    b = const_of(g, p, 2)
    b = np.zeros(m) if b is None else b.astype(np.float64)
    w = w * s.reshape((m,) + (1,) * (w.ndim - 1))
    b = b * s + t
    limit = np.finfo(np.float32).max
    if not (np.all(np.abs(w) <= limit) and np.all(np.abs(b) <= limit)):  # also catches NaN
        raise ModelError(f"{g.source}: folding node {n.name or n.op!r} into {p.name or p.op!r} gives "
                         "weights outside the float32 range")
    p.inputs = [p.inputs[0], g.add_const(p.inputs[1] + "_folded", w.astype(np.float32)),
                g.add_const(p.inputs[1] + "_bias_folded", b.astype(np.float32))]
    g.remove(n)
    p.outputs = [n.outputs[0]] + p.outputs[1:]
    merge_sources(p, n)


RULES = [
    Rule("batchnorm_to_affine", _is_inference_bn, _bn_to_affine),
    Rule("arith_to_affine", lambda g, n: _per_channel(g, n) is not None, _arith_to_affine),
    Rule("merge_affine", lambda g, n: _affine_after_affine(g, n) is not None, _merge),
    Rule("fold_affine_into_conv_dense", lambda g, n: _foldable_producer(g, n) is not None, _fold_into_producer),
]
