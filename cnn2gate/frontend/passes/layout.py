"""Layout: make the graph NCHW end to end.

Keras (and TF-converted) graphs wrap every NCHW op in Transpose pairs and feed an
NHWC image. NCHW→NHWC transposes are pushed down, and NHWC→NCHW ones pulled up,
through element-wise ops, Pad and Concat until they meet their inverse and
cancel; what is left at the input is absorbed (the IR input
becomes NCHW and graph meta records the original layout); a Transpose(0,2,3,1)
right before a Flatten into a dense layer becomes a permutation of the dense
weight columns, so the IR Dense always flattens NCHW.
"""
from __future__ import annotations

import numpy as np

from ... import ops
from ..wgraph import Node, WGraph
from .base import Rule, const_of, merge_sources
from .canonical import is_dense, reduce_axes

NHWC_TO_NCHW = [0, 3, 1, 2]
NCHW_TO_NHWC = [0, 2, 3, 1]

#: Ops through which a transpose commutes; the first group broadcasts constants.
_BROADCASTING = {"Add", "Sub", "Mul", "Div", "Sum"}
_UNARY = {"Relu", "LeakyRelu", "Clip", "Cast", "Identity", "Pad"}


def _moved_const(g: WGraph, n: Node, index: int, perm: list[int]) -> str:
    """The constant input `index` of n, re-expressed for the layout `x.transpose(perm)` of its input."""
    t = n.inputs[index]
    k = g.consts[t]
    if n.op == "Pad" and index == 1:  # [begin per axis..., end per axis...]
        pads = k.reshape(2, 4)
        return g.add_const(t, np.ascontiguousarray(pads[:, perm].reshape(-1)))
    if n.op in _BROADCASTING:
        k4 = k.reshape((1,) * (4 - k.ndim) + k.shape)
        return g.add_const(t, np.ascontiguousarray(k4.transpose(perm)))
    return t  # scalar parameters (Clip bounds, Pad value) do not depend on the layout


def perm_of(n: Node) -> list[int] | None:
    if n.op != "Transpose" or n.domain:
        return None
    perm = n.attrs.get("perm")
    return None if perm is None else [int(v) for v in perm]


def _is_transpose4(g: WGraph, n: Node) -> bool:
    p = perm_of(n)
    return p is not None and len(p) == 4 and n.inputs[0] not in g.consts


# -- split a transpose read by several nodes into one per reader ---------

def _is_shared_transpose(g: WGraph, n: Node) -> bool:
    return _is_transpose4(g, n) and not g.is_output(n.outputs[0]) and len(g.consumers(n.outputs[0])) > 1


def _split(g: WGraph, n: Node) -> None:
    out = n.outputs[0]
    for reader in g.consumers(out)[1:]:
        clone_out = g.fresh(out)
        g.shapes[clone_out] = g.shapes[out]
        clone = Node("Transpose", n.name, [n.inputs[0]], [clone_out], dict(n.attrs), sources=list(n.sources))
        g.nodes.insert(g.nodes.index(n) + 1, clone)
        reader.inputs = [clone_out if t == out else t for t in reader.inputs]


# -- Transpose ∘ Transpose -------------------------------------------------

def _feeding_transpose(g: WGraph, n: Node) -> Node | None:
    if not _is_transpose4(g, n):
        return None
    first = g.producer(n.inputs[0])
    if first is None or not _is_transpose4(g, first) or g.sole_consumer(first.outputs[0]) is not n:
        return None
    return first


def _compose(g: WGraph, n: Node) -> None:
    first = _feeding_transpose(g, n)
    p1, p2 = perm_of(first), perm_of(n)
    combined = [p1[i] for i in p2]
    g.remove(first)
    if combined == list(range(4)):
        g.remove(n)
        g.rename_uses(n.outputs[0], first.inputs[0])
    else:
        n.inputs = [first.inputs[0]]
        n.attrs = {"perm": combined}
        merge_sources(n, first)


# -- push a transpose below the op that reads it ----------------------------

def _pushable(g: WGraph, n: Node):
    """For an op whose every activation input is a same-perm Transpose read only by it: (perm, transposes)."""
    if n.domain or len(n.outputs) != 1 or n.op not in _BROADCASTING | _UNARY | {"Concat"}:
        return None
    acts = [t for t in n.inputs if t and t not in g.consts]
    if not acts or (n.op in _UNARY and n.inputs[0] not in acts):
        return None
    if n.op in _UNARY and len(acts) != 1:
        return None
    perms, trans = set(), []
    for t in acts:
        p = g.producer(t)
        if p is None or not _is_transpose4(g, p) or g.sole_consumer(t) is not n:
            return None
        perms.add(tuple(perm_of(p)))
        trans.append(p)
    if len(perms) != 1 or g.shape(n.outputs[0]) is None or len(g.shape(n.outputs[0])) != 4:
        return None
    if n.op == "Concat" and len(acts) != len(n.inputs):
        return None
    if n.op in _BROADCASTING and any(g.consts[t].ndim > 4 for t in n.inputs if t in g.consts):
        return None
    if n.op == "Pad" and (const_of(g, n, 1) is None or const_of(g, n, 1).size != 8 or (len(n.inputs) > 3 and n.inputs[3])):
        return None
    perm = list(perms.pop())
    # Only NHWC-making transposes move down (towards the NCHW op that undoes them); the
    # inverse kind moves up (towards the input). One direction each, so they never ping-pong.
    return (perm, trans) if perm == NCHW_TO_NHWC else None


def _push_down(g: WGraph, n: Node) -> None:
    perm, trans = _pushable(g, n)
    inv = list(np.argsort(perm))
    by_out = {t.outputs[0]: t for t in trans}
    new_inputs = []
    for i, t in enumerate(n.inputs):
        if t in by_out:
            new_inputs.append(by_out[t].inputs[0])
        elif t in g.consts:
            new_inputs.append(_moved_const(g, n, i, inv))
        else:
            new_inputs.append(t)
    if n.op == "Concat":
        n.attrs = dict(n.attrs, axis=int(perm[int(n.attrs.get("axis", 0)) % 4]))
    out = n.outputs[0]
    mid = g.fresh(out)
    s = g.shapes[out]
    g.shapes[mid] = tuple(s[inv[j]] for j in range(4))
    if out in g.dtypes:
        g.dtypes[mid] = g.dtypes[out]
    n.inputs, n.outputs = new_inputs, [mid]
    for t in trans:
        g.remove(t)
    moved = Node("Transpose", trans[0].name, [mid], [out], {"perm": perm}, sources=list(trans[0].sources))
    g.insert_after(n, moved)


# -- pull a transpose above the op that feeds it -----------------------------

def _pullable(g: WGraph, n: Node) -> Node | None:
    """The single-input element-wise op (or Pad) feeding an NHWC→NCHW Transpose, read only by it."""
    if perm_of(n) != NHWC_TO_NCHW or n.inputs[0] in g.consts:
        return None
    x = g.producer(n.inputs[0])
    if x is None or x.domain or len(x.outputs) != 1 or x.op not in _BROADCASTING | _UNARY:
        return None
    acts = [t for t in x.inputs if t and t not in g.consts]
    if len(acts) != 1 or x.inputs[0] != acts[0] and x.op not in _BROADCASTING or g.sole_consumer(x.outputs[0]) is not n:
        return None
    s = g.shape(acts[0])
    if s is None or len(s) != 4 or any(g.consts[t].ndim > 4 for t in x.inputs if t in g.consts and x.op in _BROADCASTING):
        return None
    if x.op == "Pad" and (const_of(g, x, 1) is None or const_of(g, x, 1).size != 8 or (len(x.inputs) > 3 and x.inputs[3])):
        return None
    return x


def _pull_up(g: WGraph, n: Node) -> None:
    x = _pullable(g, n)
    perm = perm_of(n)
    a = next(t for t in x.inputs if t and t not in g.consts)
    mid = g.fresh(a)
    g.shapes[mid] = tuple(g.shapes[a][p] for p in perm)
    if a in g.dtypes:
        g.dtypes[mid] = g.dtypes[a]
    x.inputs = [mid if t == a else (_moved_const(g, x, i, perm) if t in g.consts else t) for i, t in enumerate(x.inputs)]
    out = n.outputs[0]
    g.remove(n)
    n.inputs, n.outputs = [a], [mid]
    g.nodes.insert(g.nodes.index(x), n)
    g.rename_uses(out, x.outputs[0])
    g.shapes[x.outputs[0]] = g.shapes[out]


# -- ReduceMean over a transposed tensor --------------------------------------

def _mean_after_transpose(g: WGraph, n: Node):
    if n.op != "ReduceMean" or n.domain:
        return None
    t = g.producer(n.inputs[0])
    axes = reduce_axes(g, n)
    if t is None or axes is None or not _is_transpose4(g, t) or g.sole_consumer(t.outputs[0]) is not n:
        return None
    perm = perm_of(t)
    if perm != NCHW_TO_NHWC:
        return None
    axes = sorted(a % 4 for a in axes)
    kept = [perm[i] for i in range(4) if i not in axes]
    if not int(n.attrs.get("keepdims", 1)) and kept != sorted(kept):
        return None  # would need a transpose of lower rank afterwards; rare, left alone
    return t, perm, [perm[a] for a in axes]


def _push_through_mean(g: WGraph, n: Node) -> None:
    t, perm, new_axes = _mean_after_transpose(g, n)
    n.inputs = [t.inputs[0]] + ([g.add_const("axes", np.array(new_axes, dtype=np.int64))] if len(n.inputs) > 1 else [])
    if "axes" in n.attrs:
        n.attrs = dict(n.attrs, axes=new_axes)
    g.remove(t)
    if int(n.attrs.get("keepdims", 1)):
        out = n.outputs[0]
        mid = g.fresh(out)
        inv = list(np.argsort(perm))
        s = g.shapes[out]
        g.shapes[mid] = tuple(s[inv[j]] for j in range(4))
        n.outputs = [mid]
        g.insert_after(n, Node("Transpose", t.name, [mid], [out], {"perm": perm}, sources=list(t.sources)))


# -- what remains at the input and before Flatten ---------------------------

def _is_input_transpose(g: WGraph, n: Node) -> bool:
    if perm_of(n) != NHWC_TO_NCHW or n.inputs[0] != g.input:
        return False
    return all(perm_of(c) == NHWC_TO_NCHW for c in g.consumers(g.input))


def _absorb_input(g: WGraph, n: Node) -> None:
    g.shapes[g.input] = g.shapes[n.outputs[0]]
    g.meta["input_layout"] = "NHWC"
    g.meta["input_perm"] = list(NHWC_TO_NCHW)
    g.meta.setdefault("absorbed", []).extend(n.sources)
    g.remove(n)
    g.rename_uses(n.outputs[0], g.input)


def flatten_to_2d(g: WGraph, n: Node) -> bool:
    """Flatten(axis=1) or a Reshape to (1, K) of a 4-D tensor: the same bytes as NCHW flatten."""
    src, dst = g.shape(n.inputs[0]) if n.inputs else None, g.shape(n.outputs[0])
    if n.domain or src is None or dst is None or len(src) < 2 or len(dst) != 2:
        return False
    if n.op == "Flatten":
        return int(n.attrs.get("axis", 1)) % len(src) == 1 or (src[0] == 1 and int(n.attrs.get("axis", 1)) == 0)
    if n.op == "Reshape":
        return n.inputs[1] in g.consts and dst[0] == 1 and dst[1] == int(np.prod(src))
    return False


def _nhwc_flatten(g: WGraph, n: Node):
    if perm_of(n) != NCHW_TO_NHWC or n.inputs[0] in g.consts:
        return None
    flat = g.sole_consumer(n.outputs[0])
    if flat is None or flat.op not in ("Flatten", "Reshape") or not flatten_to_2d(g, flat):
        return None
    readers = g.consumers(flat.outputs[0])
    if not readers or g.is_output(flat.outputs[0]) or not all(is_dense(g, r) and r.inputs[0] == flat.outputs[0] for r in readers):
        return None
    return flat, readers


def _permute_dense_columns(g: WGraph, n: Node) -> None:
    flat, readers = _nhwc_flatten(g, n)
    _, h, w, c = g.shapes[n.outputs[0]]
    for r in readers:
        wt = g.consts[r.inputs[1]]
        m = wt.shape[0]
        # columns were (h, w, c)-ordered; the IR flattens (c, h, w)
        wt = wt.reshape(m, h, w, c).transpose(0, 3, 1, 2).reshape(m, h * w * c)
        r.inputs = [r.inputs[0], g.add_const(r.inputs[1] + "_nchw", np.ascontiguousarray(wt)), r.inputs[2]]
        merge_sources(r, n)
    flat.inputs = [n.inputs[0]] + flat.inputs[1:]
    g.remove(n)


RULES = [
    Rule("split_shared_transpose", _is_shared_transpose, _split),
    Rule("compose_transposes", lambda g, n: _feeding_transpose(g, n) is not None, _compose),
    Rule("push_transpose_down", lambda g, n: _pushable(g, n) is not None, _push_down),
    Rule("pull_transpose_up", lambda g, n: _pullable(g, n) is not None, _pull_up),
    Rule("push_transpose_through_mean", lambda g, n: _mean_after_transpose(g, n) is not None, _push_through_mean),
    Rule("absorb_input_transpose", _is_input_transpose, _absorb_input),
    Rule("nhwc_flatten_to_dense", lambda g, n: _nhwc_flatten(g, n) is not None, _permute_dense_columns),
    # Reshape -> Transpose(0,2,1,3,4) -> Reshape: one channel shuffle (the pattern is the shuffle op's)
    Rule("channel_shuffle", lambda g, n: ops.shuffle.shuffle_of(g, n) is not None, ops.shuffle.fuse_shuffle),
]
