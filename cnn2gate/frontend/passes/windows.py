"""Window ops (Conv, MaxPool, AveragePool): explicit pads instead of auto_pad, and Pad folded into them."""
from __future__ import annotations

import math

import numpy as np

from ..wgraph import Node, WGraph
from .base import Rule, const_of

WINDOW_OPS = ("Conv", "MaxPool", "AveragePool")


def kernel_shape(g: WGraph, n: Node) -> list[int] | None:
    if "kernel_shape" in n.attrs:
        return [int(v) for v in n.attrs["kernel_shape"]]
    w = const_of(g, n, 1) if n.op == "Conv" else None
    return None if w is None else list(w.shape[2:])


def _has_auto_pad(g: WGraph, n: Node) -> bool:
    if n.op not in WINDOW_OPS or n.domain:
        return False
    mode = n.attrs.get("auto_pad", "NOTSET")
    s = g.shape(n.inputs[0])
    return mode != "NOTSET" and s is not None and len(s) == 4 and kernel_shape(g, n) is not None


def _explicit_pads(g: WGraph, n: Node) -> None:
    mode = n.attrs["auto_pad"]
    spatial = g.shape(n.inputs[0])[2:]
    k = kernel_shape(g, n)
    strides = [int(v) for v in n.attrs.get("strides", [1, 1])]
    dil = [int(v) for v in n.attrs.get("dilations", [1, 1])]
    begin, end = [], []
    for size, kk, s, d in zip(spatial, k, strides, dil):
        if mode == "VALID":
            total = 0
        else:  # SAME_UPPER / SAME_LOWER: output = ceil(size / stride)
            total = max((math.ceil(size / s) - 1) * s + (kk - 1) * d + 1 - size, 0)
        small, large = total // 2, total - total // 2
        begin.append(large if mode == "SAME_LOWER" else small)
        end.append(small if mode == "SAME_LOWER" else large)
    n.attrs = {k2: v for k2, v in n.attrs.items() if k2 != "auto_pad"}
    n.attrs["pads"] = begin + end


def _spatial_pad(g: WGraph, n: Node):
    """((top, left, bottom, right), mode, value) for a Pad of H and W only with constant amounts; else None."""
    if n.op != "Pad" or n.domain or (len(n.inputs) > 3 and n.inputs[3]):
        return None
    mode = n.attrs.get("mode", "constant")
    pads = n.attrs.get("pads")
    if pads is None:
        c = const_of(g, n, 1)
        if c is None:
            return None
        pads = c.reshape(-1).tolist()
    value = const_of(g, n, 2) if len(n.inputs) > 2 and n.inputs[2] else np.float32(n.attrs.get("value", 0.0))
    if value is None or np.size(value) != 1:
        return None
    pads = [int(v) for v in pads]
    if len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)) or any(v < 0 for v in pads):
        return None
    return (pads[2], pads[3], pads[6], pads[7]), mode, float(np.asarray(value).reshape(-1)[0])


def _is_zero_pad(spec) -> bool:
    return spec is not None and spec[1] == "constant" and spec[2] == 0.0


def _is_max_neutral_pad(spec, kernel) -> bool:
    """Padding a max pool cannot tell from -inf: -inf itself, or edge replication while every
    window still covers a real element (then the replicated edge value is in the window anyway)."""
    if spec is None:
        return False
    (top, left, bottom, right), mode, value = spec
    if mode == "constant" and value == -math.inf:
        return True
    return mode == "edge" and max(top, bottom) < kernel[0] and max(left, right) < kernel[1]


def _pad_before_window(g: WGraph, n: Node):
    spec = _spatial_pad(g, n)
    if spec is None:
        return None
    op = g.sole_consumer(n.outputs[0])
    if op is None or op.op not in ("Conv", "MaxPool") or op.domain or op.inputs[0] != n.outputs[0] \
            or op.attrs.get("auto_pad", "NOTSET") != "NOTSET":
        return None
    if op.op == "Conv" and _is_zero_pad(spec):
        return op
    k = kernel_shape(g, op)
    if op.op == "MaxPool" and k is not None and len(k) == 2 and _is_max_neutral_pad(spec, k):
        return op
    return None


def _fold_pad(g: WGraph, n: Node) -> None:
    op = _pad_before_window(g, n)
    top, left, bottom, right = _spatial_pad(g, n)[0]
    p = [int(v) for v in op.attrs.get("pads", [0, 0, 0, 0])]
    op.attrs = dict(op.attrs, pads=[p[0] + top, p[1] + left, p[2] + bottom, p[3] + right])
    op.inputs = [n.inputs[0]] + op.inputs[1:]
    op.sources = n.sources + op.sources
    g.remove(n)


def _is_zero_pad_alone(g: WGraph, n: Node) -> bool:
    return _is_zero_pad(_spatial_pad(g, n)) and _pad_before_window(g, n) is None


def _zero_pad_as_pool(g: WGraph, n: Node) -> None:
    """A zero Pad no convolution takes over (before a max pool, whose own padding is -inf, say)
    becomes a 1x1 average pool that counts its padding: an identity that writes zeros around."""
    top, left, bottom, right = _spatial_pad(g, n)[0]
    n.op = "AveragePool"
    n.inputs = n.inputs[:1]
    n.attrs = {"kernel_shape": [1, 1], "strides": [1, 1], "pads": [top, left, bottom, right], "count_include_pad": 1}


RULES = [
    Rule("explicit_pads", _has_auto_pad, _explicit_pads),
    Rule("fold_pad_into_window", lambda g, n: _pad_before_window(g, n) is not None, _fold_pad),
    Rule("zero_pad_as_pool", _is_zero_pad_alone, _zero_pad_as_pool),
]
