"""Float NumPy executor over the IR: the numbers the quantized design is compared to."""
from __future__ import annotations

from typing import Callable

import numpy as np

from .layers import GRAPH_INPUT, LRN, Add, Concat, Conv, Dense, Graph, Layer, Pool
from .windows import lrn_window, patch_matrix, patches, valid_counts


def activate(y: np.ndarray, layer: Layer) -> np.ndarray:
    if layer.act == "relu":
        return np.maximum(y, 0)
    if layer.act == "relu6":
        return np.clip(y, 0, 6)
    if layer.act == "leaky":
        return np.where(y < 0, y * layer.alpha, y)
    return y


def conv(layer: Conv, x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    m, cg, kh, kw = layer.weight.shape
    _, oh, ow = layer.out_shape
    g = layer.groups
    mg = m // g
    x = np.asarray(x, dtype=np.float64)
    w = layer.weight.astype(np.float64, copy=False)
    bias = layer.bias.astype(np.float64, copy=False)
    if g == 1:
        # im2col + one GEMM: (N*OH*OW, C*kh*kw) @ (C*kh*kw, M)
        cols = patch_matrix(x, (kh, kw), layer.stride, layer.pads, layer.dilation)
        out = cols @ w.reshape(m, -1).T
        del cols
        out += bias
        return out.reshape(n, oh * ow, m).transpose(0, 2, 1).reshape(n, m, oh, ow)
    v = patches(x, (kh, kw), layer.stride, layer.pads, layer.dilation)  # (N, C, OH, OW, kh, kw) view
    if cg == 1 and mg == 1:
        # depthwise: out[n, c] = sum over the window of x * w[c]; one multiply-add per tap
        out = np.zeros((n, m, oh, ow), dtype=np.float64)
        for ky in range(kh):
            for kx in range(kw):
                out += v[:, :, :, :, ky, kx] * w[:, 0, ky, kx][:, None, None]
        out += bias[:, None, None]
        return out
    # general grouped conv: one batched GEMM over the groups,
    # (G, N*OH*OW, cg*kh*kw) @ (G, cg*kh*kw, mg)
    cols = v.reshape(n, g, cg, oh, ow, kh, kw).transpose(1, 0, 3, 4, 2, 5, 6)
    cols = np.ascontiguousarray(cols).reshape(g, n * oh * ow, cg * kh * kw)
    out = cols @ w.reshape(g, mg, cg * kh * kw).transpose(0, 2, 1)  # (G, N*OH*OW, mg)
    del cols
    out = out.reshape(g, n, oh * ow, mg).transpose(1, 0, 3, 2).reshape(n, m, oh, ow)
    out += bias[:, None, None]
    return out


def dense(layer: Dense, x: np.ndarray) -> np.ndarray:
    flat = x.reshape(x.shape[0], -1).astype(np.float64, copy=False)
    return flat @ layer.weight.T.astype(np.float64, copy=False) + layer.bias.astype(np.float64, copy=False)


def pool(layer: Pool, x: np.ndarray) -> np.ndarray:
    if layer.mode == "global_avg":
        return x.mean(axis=(2, 3), keepdims=True)
    if layer.mode == "max":
        return patches(x, layer.kernel, layer.stride, layer.pads, pad_value=-np.inf).max(axis=(-1, -2))
    sums = patches(x, layer.kernel, layer.stride, layer.pads).sum(axis=(-1, -2))
    if layer.count_include_pad:
        return sums / (layer.kernel[0] * layer.kernel[1])
    return sums / valid_counts(x.shape[2:], layer.kernel, layer.stride, layer.pads)


def lrn(layer: LRN, x: np.ndarray) -> np.ndarray:
    sq = np.concatenate([np.zeros_like(x[:, :1]), np.cumsum(x.astype(np.float64) ** 2, axis=1)], axis=1)
    lo, hi = lrn_window(x.shape[1], layer.size)
    window_sum = sq[:, hi] - sq[:, lo]
    return x / (layer.bias + layer.lrn_alpha / layer.size * window_sum) ** layer.beta


def add(layer: Add, *xs: np.ndarray) -> np.ndarray:
    return np.sum(xs, axis=0)


def concat(layer: Concat, *xs: np.ndarray) -> np.ndarray:
    return np.concatenate(xs, axis=1)


KERNELS: dict[type, Callable] = {Conv: conv, Dense: dense, Pool: pool, LRN: lrn, Add: add, Concat: concat}


def run_layer(layer: Layer, *xs: np.ndarray) -> np.ndarray:
    return activate(KERNELS[type(layer)](layer, *xs), layer)


def execute(graph: Graph, x: np.ndarray) -> dict[str, np.ndarray]:
    """Run the graph on a batch x of shape (N, C, H, W); returns every layer's output (float64).

    The final softmax (if any) is not applied: see `softmax`.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == len(graph.input_shape):
        x = x[None]
    if tuple(x.shape[1:]) != tuple(graph.input_shape):
        raise ValueError(f"input shape {x.shape[1:]} does not match the model's {graph.input_shape}")
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
