"""Sanity checks on values and shapes, so that bad numbers fail at load time with a name."""
from __future__ import annotations

import numpy as np

from ..errors import ModelError
from .wgraph import WGraph


def check_weights(g: WGraph) -> None:
    """NaN/Inf in any float constant a node reads → ModelError naming the tensor and its readers."""
    for name, value in g.consts.items():
        if not np.issubdtype(value.dtype, np.floating) or value.size == 0:
            continue
        if np.all(np.isfinite(value)):
            continue
        readers = [n.name or n.op for n in g.consumers(name)]
        if not readers:
            continue
        bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
        raise ModelError(f"{g.source}: initializer {name!r} (read by {', '.join(map(repr, readers))}) "
                         f"holds {bad} NaN/Inf value{'s' if bad != 1 else ''}")


def check_shapes(g: WGraph) -> None:
    """A zero-sized activation means the model cannot run at this input size."""
    for n in g.nodes:
        for o in n.outputs:
            s = g.shapes.get(o)
            if s is not None and 0 in s:
                raise ModelError(f"{g.source}: node {n.name or n.op!r} ({n.op}) produces a zero-sized tensor "
                                 f"{o!r} of shape {s}")
    for n in g.nodes:
        if n.op in ("Conv", "Gemm", "MatMul", "BatchNormalization"):
            for t in n.inputs[1:]:
                if t in g.consts and g.consts[t].size == 0:
                    raise ModelError(f"{g.source}: node {n.name or n.op!r} ({n.op}) has an empty weight {t!r}")


def check_layer_values(graph, source: str) -> None:
    """NaN/Inf in a layer's folded parameters (e.g. a BatchNormalization with a negative
    variance folded into its convolution) → ModelError naming the layer and its nodes."""
    for layer in graph.layers:
        for what in ("weight", "bias"):
            value = getattr(layer, what, None)
            if value is None or not np.issubdtype(np.asarray(value).dtype, np.floating):
                continue
            if not np.all(np.isfinite(value)):
                nodes = f" (nodes {layer.source})" if getattr(layer, "source", "") else ""
                raise ModelError(f"{source}: layer {layer.name!r}{nodes}: folding the model's constants gives "
                                 f"NaN/Inf {what}s (a BatchNormalization with a negative variance, or values "
                                 f"beyond float32?)")
