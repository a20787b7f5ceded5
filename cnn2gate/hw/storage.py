"""Which activation buffers a 16-bit design stores as 8-bit `char` in external memory.

A design whose data_t is `short` still keeps a buffer at one byte per element when
every tensor in it (tensors placed at channel offsets share their buffer) is at
most 8 bits, and every kernel that touches it is a conv-chain memory kernel: written
only by mem_write and read only by mem_read, both on their whole-vector paths. Those
two kernels convert on the way (docs/architecture.md "Activations at their own
width"); every other kernel keeps `data_t` pointers. The host allocates, strides and
reads back such a buffer at one byte per element (templates/host/main.cpp.j2).

One decision for the plan (codegen/plan.py) and the cost model (hw/latency.py), so the
estimate prices the traffic of the project that `compile` writes.
"""
from __future__ import annotations

import weakref
from typing import Any, Mapping

from .. import ops
from ..ir.layers import GRAPH_INPUT
from ..ops.base import ArchLimit, chw
from .widths import _bits

NARROW_BITS = 8

_ROOTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # graph -> buffer_roots (explore asks often)


def buffer_roots(graph) -> dict[str, str]:
    """Tensor -> the tensor whose buffer holds it (itself unless it is a view)."""
    done = _ROOTS.get(graph)
    if done is None:
        done = _ROOTS[graph] = _roots(graph)
    return done


def _roots(graph) -> dict[str, str]:
    parent: dict[str, str] = {}
    for layer in graph.layers:
        op = ops.op_for(layer)
        try:
            placed = op.placed(layer, graph)
            views = op.views(layer, graph) or ()
        except ArchLimit:
            continue  # refused elsewhere with its reason
        if placed is not None:
            parent[layer.name] = placed[0]
        for src, _ in views:
            parent[src] = layer.name

    def root(name: str) -> str:
        seen = set()
        while name in parent and name not in seen:
            seen.add(name)
            name = parent[name]
        return name

    return {name: root(name) for name in [GRAPH_INPUT, *(layer.name for layer in graph.layers)]}


def out_bits_of(formats: Any) -> dict[str, int]:
    """Layer -> activation width, from a quantized graph, a formats object or JSON dict,
    or the explorer's {layer: {"a_bits"}} mapping; {} when not given."""
    if formats is None:
        return {}
    if hasattr(formats, "formats") and hasattr(formats, "acc_bits"):  # a QuantizedGraph
        formats = formats.formats
    layers = formats.get("layers", formats) if isinstance(formats, Mapping) else getattr(formats, "layers", None)
    if not isinstance(layers, Mapping):
        return {}
    out = {}
    for name, entry in layers.items():
        if isinstance(entry, Mapping) or hasattr(entry, "out"):
            b = _bits(entry, "out", "a_bits")
            if b is not None:
                out[str(name)] = b
    return out


def narrow_io(graph, lowered, out_bits: Mapping[str, int], data_bytes: int, vec: int,
              lanes: int) -> frozenset[tuple[str, str]]:
    """{(layer, "rd" | "wr")}: the conv-chain layers whose mem_read input / mem_write output
    is a narrow buffer. Empty unless data_t is `short` and some buffer qualifies."""
    if data_bytes == 1:
        return frozenset()
    from ..ops.conv import CHAIN, vector_io

    roots = buffer_roots(graph)
    kl = {k.name: k for k in lowered.layers}
    bad = {roots[GRAPH_INPUT]}  # the host writes the input at data_t
    for name, root in roots.items():
        if name != GRAPH_INPUT and out_bits.get(name, 16) > NARROW_BITS:
            bad.add(root)
    chain: dict[str, tuple[bool, bool]] = {}
    for layer in graph.layers:
        k = kl.get(layer.name)
        if k is None or not k.op.kernels:
            continue  # done by addressing: its tensors are its neighbours' buffers
        if k.op.kernels == CHAIN:
            rd, wr = vector_io(k, vec, lanes)
            chain[layer.name] = (rd, wr)
        else:
            rd = wr = False
        if not wr:
            bad.add(roots[layer.name])
        if not rd or len(layer.inputs) > 1:
            bad.update(roots[s] for s in layer.inputs)
    flags = set()
    for layer in graph.layers:
        if layer.name in chain:
            if roots[layer.name] not in bad:
                flags.add((layer.name, "wr"))
            if roots[layer.inputs[0]] not in bad:
                flags.add((layer.name, "rd"))
    return frozenset(flags)


def narrow_buffers(graph, narrow: frozenset) -> list[tuple[int, int, int]]:
    """(C, H, W) of every buffer that `narrow` (narrow_io) stores as char."""
    roots = buffer_roots(graph)
    shapes = {layer.name: chw(layer.out_shape) for layer in graph.layers}
    inputs = {layer.name: layer.inputs[0] for layer in graph.layers if layer.inputs}
    held = {roots[name] if side == "wr" else roots[inputs[name]] for name, side in narrow}
    return [shapes[r] for r in sorted(held)]
