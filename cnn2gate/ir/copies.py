"""Copies for tensors that more than one addressed buffer claims.

An operator done by addressing (`Op.views`) has its producers write straight into its
buffer, so a tensor can live in one such buffer only, and the graph input (its own
buffer, filled by the host) in none. Every further claim gets an identity `act` layer
that copies the tensor into the other buffer. The copy's format is tied to its input,
so every result stays the same; it costs one pass of the act kernel.

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


def add_view_copies(graph: Graph) -> Graph:
    """The graph with a copy layer before every claim after a tensor's first (and before every
    claim of the graph input); the graph itself when nothing needs one."""
    from ..ops.activation import Activation

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


__all__ = ["add_view_copies"]
