"""Where a tensor sits in external memory: the buffer that holds it and its channel offset.

Layers done by addressing (concat, channel split: `Op.views`, `Op.placed`) make their
tensors views into another tensor's buffer (docs/architecture.md "Data layout"). The
lowering records each chain layer's placement so that the code generator and the cost
model take the same whole-vector-or-scalar decision for its memory accesses
(ConvOp.vector_io). The rules mirror codegen/plan.py's buffer assignment; a graph that
breaks them is refused there with its reason.
"""
from __future__ import annotations

import weakref

from ..ir.layers import GRAPH_INPUT, Graph
from .base import ArchLimit, chw

_OWNERS: "weakref.WeakKeyDictionary[Graph, dict]" = weakref.WeakKeyDictionary()


def _owners(graph: Graph) -> dict[str, tuple[str, int]]:
    done = _OWNERS.get(graph)
    if done is not None:
        return done
    from . import op_for

    owners: dict[str, tuple[str, int]] = {}
    for layer in graph.layers:  # channel ranges of their input's buffer
        try:
            placed = op_for(layer).placed(layer, graph)
        except ArchLimit:
            continue
        if placed is not None:
            owners[layer.name] = placed
    for layer in graph.layers:  # producers writing into a concat's buffer
        try:
            views = op_for(layer).views(layer, graph)
        except ArchLimit:
            continue
        for src, off in views or ():
            if src != GRAPH_INPUT and src not in owners:
                owners[src] = (layer.name, off)
    _OWNERS[graph] = owners
    return owners


def place(graph: Graph, name: str) -> tuple[int, int]:
    """(channel offset of tensor `name` in its buffer, channels of that buffer)."""
    owners, off = _owners(graph), 0
    while name in owners:
        name, step = owners[name]
        off += step
    return off, chw(graph.shape_of(name))[0]
