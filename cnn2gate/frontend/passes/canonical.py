"""One form per operation: Sum → Add, MatMul/Gemm → canonical dense, ReduceMean(H,W) → global pool.

Canonical dense is a Gemm with inputs (x, W of shape (M, K), b of shape (M,)),
transA=0, transB=1, alpha=beta=1 — the IR's Dense layout.
"""
from __future__ import annotations

import numpy as np

from ..wgraph import Node, WGraph
from .base import Rule, const_of

DENSE_ATTRS = {"transB": 1}


def _is_sum(g: WGraph, n: Node) -> bool:
    return n.op == "Sum" and not n.domain


def _sum_to_add(g: WGraph, n: Node) -> None:
    if len(n.inputs) == 1:
        g.bypass(n)
        return
    n.op = "Add"  # the IR's Add takes two or more inputs, so an n-ary Sum maps directly


def _is_matmul_dense(g: WGraph, n: Node) -> bool:
    if n.op != "MatMul" or n.domain or len(n.inputs) != 2:
        return False
    w = const_of(g, n, 1)
    xs = g.shape(n.inputs[0])
    return w is not None and w.ndim == 2 and n.inputs[0] not in g.consts and xs is not None and len(xs) == 2


def _matmul_to_gemm(g: WGraph, n: Node) -> None:
    w = g.consts[n.inputs[1]]  # (K, M)
    m = w.shape[1]
    n.op = "Gemm"
    n.attrs = dict(DENSE_ATTRS)
    n.inputs = [n.inputs[0], g.add_const(n.inputs[1] + "_t", np.ascontiguousarray(w.T)),
                g.add_const(n.name + "_zero_bias", np.zeros(m, dtype=w.dtype))]


def is_dense(g: WGraph, n: Node) -> bool:
    """A Gemm already in canonical form."""
    if n.op != "Gemm" or n.domain or n.attrs != DENSE_ATTRS or len(n.inputs) != 3:
        return False
    w, b = const_of(g, n, 1), const_of(g, n, 2)
    return w is not None and b is not None and w.ndim == 2 and b.shape == (w.shape[0],)


def _is_gemm_to_normalise(g: WGraph, n: Node) -> bool:
    if n.op != "Gemm" or n.domain or is_dense(g, n):
        return False
    if len(n.inputs) > 2 and n.inputs[2] and n.inputs[2] not in g.consts:
        return False  # a computed C is not a bias: left for lowering to report
    b = const_of(g, n, 1)
    a_shape = g.shape(n.inputs[0])
    if b is None or b.ndim != 2 or n.inputs[0] in g.consts or a_shape is None:
        return False
    if int(n.attrs.get("transA", 0)):
        # A is (K, 1) with batch 1: A^T holds the same K values in the same order.
        return a_shape[1] == 1
    return a_shape[0] == 1


def _normalise_gemm(g: WGraph, n: Node) -> None:
    a = n.attrs
    w = g.consts[n.inputs[1]].astype(np.float32)
    w = w if int(a.get("transB", 0)) else w.T  # now (M, K)
    w = w * np.float32(a.get("alpha", 1.0))
    m = w.shape[0]
    c = const_of(g, n, 2)
    if c is None:
        bias = np.zeros(m, dtype=np.float32)
    else:
        bias = (np.broadcast_to(c, (1, m)).reshape(m) * np.float32(a.get("beta", 1.0))).astype(np.float32)
    n.attrs = dict(DENSE_ATTRS)
    n.inputs = [n.inputs[0], g.add_const(n.inputs[1] + "_w", np.ascontiguousarray(w)),
                g.add_const(n.name + "_b", bias)]


def reduce_axes(g: WGraph, n: Node):
    if "axes" in n.attrs:
        return [int(v) for v in n.attrs["axes"]]
    c = const_of(g, n, 1)
    return None if c is None else [int(v) for v in c.reshape(-1)]


def _is_spatial_mean(g: WGraph, n: Node) -> bool:
    if n.op != "ReduceMean" or n.domain:
        return False
    s = g.shape(n.inputs[0])
    axes = reduce_axes(g, n)
    return s is not None and len(s) == 4 and axes is not None and sorted(a % 4 for a in axes) == [2, 3]


def _mean_to_gap(g: WGraph, n: Node) -> None:
    keep = int(n.attrs.get("keepdims", 1))
    n.op = "GlobalAveragePool"
    n.inputs = n.inputs[:1]
    # keepdims=0 gives (1, C): the same values as (1, C, 1, 1), and the IR Dense flattens anyway.
    n.attrs = {} if keep else {"squeezed": 1}


RULES = [
    Rule("sum_to_add", _is_sum, _sum_to_add),
    Rule("matmul_to_dense", _is_matmul_dense, _matmul_to_gemm),
    Rule("gemm_canonical", _is_gemm_to_normalise, _normalise_gemm),
]

POOL_RULES = [
    Rule("reduce_mean_to_global_pool", _is_spatial_mean, _mean_to_gap),
]
