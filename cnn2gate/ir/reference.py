"""Float NumPy executor over the IR: the numbers the quantized design is compared to.

Each layer runs its operator's `float_ref` (cnn2gate/ops/), then its fused activation.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..batch import as_batch
from .layers import GRAPH_INPUT, Graph, Layer


def activate(y: np.ndarray, layer: Layer) -> np.ndarray:
    if layer.act == "relu":
        return np.maximum(y, 0)
    if layer.act == "relu6":
        return np.clip(y, 0, 6)
    if layer.act == "leaky":
        return np.where(y < 0, y * layer.alpha, y)
    return y


def run_layer(layer: Layer, *xs: np.ndarray) -> np.ndarray:
    return activate(ops.op_for(layer).float_ref(layer, *xs), layer)


def execute(graph: Graph, x: np.ndarray) -> dict[str, np.ndarray]:
    """Run the graph on a batch x of shape (N, C, H, W); returns every layer's output (float64).

    The final softmax (if any) is not applied: see `softmax`.
    """
    x = as_batch(graph, x, error=ValueError, strict=False)
    values: dict[str, np.ndarray] = {GRAPH_INPUT: x}
    for layer in graph.layers:
        values[layer.name] = run_layer(layer, *(values[s] for s in layer.inputs))
    del values[GRAPH_INPUT]
    return values


def softmax(y: np.ndarray) -> np.ndarray:
    z = y - y.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def predict(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Model output (softmax applied when the model ends with one)."""
    y = execute(graph, x)[graph.output]
    return softmax(y) if graph.softmax else y
