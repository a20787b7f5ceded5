"""Which activation buffers a 16-bit design stores as 8-bit `char` in external memory.

A design whose data_t is `short` still keeps a buffer at one byte per element when
every tensor in it (tensors placed at channel offsets share their buffer) is at most
8 bits (the graph input's format too: the host then writes it as char), and every
kernel that touches it converts on the way: the conv chain's mem_read / mem_write on
their whole-vector and folded-input paths (ConvOp.vector_io), and the kernel of every
operator with `char_activations` (all the others today), which takes one flag per
pointer (docs/architecture.md "Activations at their own width"). The host allocates,
writes, strides and reads back such a buffer at one byte per element
(templates/host/main.cpp.j2).

One decision for the plan (codegen/plan.py) and the cost model (hw/latency.py), so the
estimate prices the traffic of the project that `compile` writes.
"""
from __future__ import annotations

import weakref
from typing import Any, Mapping

from .. import ops
from ..ir.layers import GRAPH_INPUT
from ..ops.base import ArchLimit, chw
from .cycles import read_side
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
    """Layer -> activation width (GRAPH_INPUT -> the input's, where the formats give it), from a
    quantized graph, a formats object or JSON dict, or the explorer's {layer: {"a_bits"}}
    mapping; {} when not given."""
    if formats is None:
        return {}
    if hasattr(formats, "formats") and hasattr(formats, "acc_bits"):  # a QuantizedGraph
        formats = formats.formats
    layers = formats.get("layers", formats) if isinstance(formats, Mapping) else getattr(formats, "layers", None)
    if not isinstance(layers, Mapping):
        return {}
    out = {}
    inp = formats.get("input") if isinstance(formats, Mapping) else getattr(formats, "input", None)
    in_bits = inp.get("bits") if isinstance(inp, Mapping) else getattr(inp, "bits", None)
    if in_bits is not None:
        out[GRAPH_INPUT] = int(in_bits)
    for name, entry in layers.items():
        if isinstance(entry, Mapping) or hasattr(entry, "out"):
            b = _bits(entry, "out", "a_bits")
            if b is not None:
                out[str(name)] = b
    return out


def char_io(k, n_inputs: int, vec: int, lanes: int) -> tuple[bool, bool]:
    """(reads, writes): whether layer k's kernels can read its inputs / write its output
    as char. The conv chain only on its whole-vector paths and for a single input."""
    from ..ops.conv import CHAIN, vector_io

    if k.op.kernels == CHAIN:
        rd, wr = vector_io(k, vec, lanes)
        return rd and n_inputs == 1, wr
    return (True, True) if k.op.char_activations else (False, False)


def narrow_io(graph, lowered, out_bits: Mapping[str, int], data_bytes: int, vec: int,
              lanes: int) -> frozenset[tuple[str, str]]:
    """{(layer, side)}: the kernel layers whose input i (side read_side(i)) or output (side
    "wr") is a narrow buffer. Empty unless data_t is `short` and some buffer qualifies."""
    if data_bytes == 1:
        return frozenset()
    roots = buffer_roots(graph)
    kl = {k.name: k for k in lowered.layers}
    bad = set()
    for name, root in roots.items():  # a width not given counts as wide (the input's too)
        if out_bits.get(name, 16) > NARROW_BITS:
            bad.add(root)
    kernel_layers = []
    for layer in graph.layers:
        k = kl.get(layer.name)
        if k is None or not k.op.kernels:
            continue  # done by addressing: its tensors are its neighbours' buffers
        rd, wr = char_io(k, len(layer.inputs), vec, lanes)
        kernel_layers.append(layer)
        if not wr:
            bad.add(roots[layer.name])
        if not rd:
            bad.update(roots[s] for s in layer.inputs)
    flags = set()
    for layer in kernel_layers:
        if roots[layer.name] not in bad:
            flags.add((layer.name, "wr"))
        for i, src in enumerate(layer.inputs):
            if roots[src] not in bad:
                flags.add((layer.name, read_side(i)))
    return frozenset(flags)


def narrow_buffers(graph, narrow: frozenset) -> list[tuple[int, int, int]]:
    """(C, H, W) of every buffer that `narrow` (narrow_io) stores as char."""
    roots = buffer_roots(graph)
    shapes = {GRAPH_INPUT: chw(graph.input_shape), **{layer.name: chw(layer.out_shape) for layer in graph.layers}}
    inputs = {layer.name: layer.inputs for layer in graph.layers}
    sides = {read_side(i): i for i in range(max((len(v) for v in inputs.values()), default=0))}
    held = {roots[name] if side == "wr" else roots[inputs[name][sides[side]]] for name, side in narrow}
    return [shapes[r] for r in sorted(held)]


def char_kernels(lowered, narrow: frozenset) -> dict[str, str]:
    """Kernel -> "char" (every feature map it reads or writes is char-stored) or "both" (some
    are char, some data_t: each access carries both sites behind a flag), for the kernels
    of operators with `char_activations`; a kernel absent keeps its data_t accesses."""
    seen: dict[str, set[bool]] = {}
    for k in lowered.layers:
        if not k.op.char_activations:
            continue
        sides = [read_side(i) for i in range(k.n_inputs)] + ["wr"]
        seen.setdefault(k.op.kernels[0], set()).update((k.name, side) in narrow for side in sides)
    return {kernel: "char" if got == {True} else "both" for kernel, got in seen.items() if True in got}
