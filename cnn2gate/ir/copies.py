"""Copies for tensors that more than one addressed buffer claims.

An operator done by addressing (`Op.views`) has its producers write straight into its
buffer, so a tensor can live in one such buffer only, and the graph input (its own
buffer, filled by the host) in none. Every further claim gets an identity `act` layer
that copies the tensor into the other buffer. The copy's format is tied to its input,
so every result stays the same; it costs one pass of the act kernel.

Before that, a join that extends an earlier one nests it: when the inputs of an earlier
addressed layer A appear, in order and back to back, among the inputs of a later one B
of the same operator (a DenseNet block: join_k reads x_0 .. x_k-1, join_k+1 reads
x_0 .. x_k), B reads A instead of that run. A then becomes a view into B's buffer at
the run's offset and its inputs land exactly where B had them, so the values and every
other placement stay the same, and the tensors of the run are claimed once instead of
once per join: a dense block of depth n needs no copies instead of n(n+1)/2.

The front end runs this on every graph it builds; a graph built in code (cnn2gate.zoo)
calls `add_view_copies` itself before quantising.
"""
from __future__ import annotations

import dataclasses

from .layers import GRAPH_INPUT, Graph


def _claims(graph: Graph) -> list[tuple[int, int]]:
    """(layer index, input index) of every input placed in another layer's buffer."""
    from .. import ops
    from ..ops.base import ArchLimit

    out = []
    for li, layer in enumerate(graph.layers):
        try:
            views = ops.op_for(layer).views(layer, graph)
        except ArchLimit:
            continue  # refused by the plan with its own reason
        if views:
            out.extend((li, i) for i in range(len(views)))
    return out


def _placed(layer, graph: Graph) -> bool:
    from .. import ops
    from ..ops.base import ArchLimit

    try:
        return ops.op_for(layer).placed(layer, graph) is not None
    except ArchLimit:
        return False


def _views(layer, graph: Graph):
    from .. import ops
    from ..ops.base import ArchLimit

    try:
        return ops.op_for(layer).views(layer, graph)
    except ArchLimit:
        return None


def _find_run(seq: list[str], run: list[str]) -> int:
    """Index where `run` starts in `seq` (-1: nowhere)."""
    n = len(run)
    for i in range(len(seq) - n + 1):
        if seq[i:i + n] == run:
            return i
    return -1


def _packed(layer, views, graph: Graph) -> bool:
    """True when the layer's inputs lie back to back in its buffer, in order, and fill it."""
    from ..ops.base import chw

    off = 0
    for src, at in views:
        if at != off:
            return False
        off += chw(graph.shape_of(src))[0]
    return off == chw(layer.out_shape)[0]


def nest_extending_joins(graph: Graph) -> Graph:
    """The graph with every addressed layer that extends an earlier one (same operator, the
    earlier one's inputs a run of its own) reading the earlier one instead of the run; the
    graph itself when there is none. Each earlier layer is nested at most once, and only one
    that no other addressed layer claims and that is not a graph output; the longest run
    first, the earliest layer on a tie."""
    layers = graph.layers
    joins = {}  # name -> (layer index, layer), addressed layers whose inputs fill their buffer in order
    for i, layer in enumerate(layers):
        views = _views(layer, graph)
        if views and _packed(layer, views, graph):
            joins[layer.name] = (i, layer)
    claimed = {src for layer in layers for src, _ in (_views(layer, graph) or ())}
    free = [name for name in joins if name not in claimed and name not in graph.outputs]
    new_inputs: dict[str, list[str]] = {}
    for b_name, (bi, b_layer) in joins.items():
        inputs = list(b_layer.inputs)
        while True:
            best = None
            for a_name in free:
                ai, a_layer = joins[a_name]
                if ai >= bi or type(a_layer) is not type(b_layer):
                    continue
                at = _find_run(inputs, list(a_layer.inputs))
                if at >= 0 and (best is None or len(a_layer.inputs) > len(joins[best[0]][1].inputs)):
                    best = (a_name, at)
            if best is None:
                break
            a_name, at = best
            inputs[at:at + len(joins[a_name][1].inputs)] = [a_name]  # same channels, same offsets after it
            free.remove(a_name)
        if inputs != list(b_layer.inputs):
            new_inputs[b_name] = inputs
    if not new_inputs:
        return graph
    out = []
    for layer in layers:
        if layer.name in new_inputs:
            inputs = new_inputs[layer.name]
            layer = dataclasses.replace(layer, inputs=inputs, in_shapes=[tuple(graph.shape_of(s)) for s in inputs])
        out.append(layer)
    nested = dataclasses.replace(graph, layers=out)
    nested.validate()
    return nested


def add_view_copies(graph: Graph) -> Graph:
    """The graph with extending joins nested (`nest_extending_joins`), then a copy layer before
    every claim after a tensor's first (and before every claim of the graph input); the graph
    itself when nothing changes."""
    from ..ops.activation import Activation

    graph = nest_extending_joins(graph)
    claims = _claims(graph)
    # a tensor that is itself a range of another buffer (Op.placed) cannot also be written into one
    seen: set[str] = {layer.name for layer in graph.layers if _placed(layer, graph)}
    need: dict[int, list[int]] = {}
    for li, i in claims:
        src = graph.layers[li].inputs[i]
        if src == GRAPH_INPUT or src in seen:
            need.setdefault(li, []).append(i)
        seen.add(src)
    if not need:
        return graph
    names = {layer.name for layer in graph.layers} | {GRAPH_INPUT}
    layers = []
    for li, layer in enumerate(graph.layers):
        if li in need:
            inputs = list(layer.inputs)
            for i in need[li]:
                src = inputs[i]
                name, n = f"{src}_copy", 1
                while name in names:
                    n += 1
                    name = f"{src}_copy{n}"
                names.add(name)
                shape = tuple(graph.shape_of(src))
                layers.append(Activation(name=name, inputs=[src], in_shapes=[shape], out_shape=shape,
                                         source=layer.source))
                inputs[i] = name
            layer = dataclasses.replace(layer, inputs=inputs)
        layers.append(layer)
    out = dataclasses.replace(graph, layers=layers)
    out.validate()
    return out


__all__ = ["add_view_copies", "nest_extending_joins"]
