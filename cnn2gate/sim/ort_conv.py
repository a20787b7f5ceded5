"""Exact convolutions and max pools on onnxruntime's CPU kernels (MLAS).

The same argument as in sim/fast.py makes the convolutions exact: MLAS computes every
output as a sum of products in float32 (direct NCHWc, channel-wise or im2col + GEMM
kernels, any order, with or without FMA; no transform-based algorithm for float32),
and the plan's bound keeps every subset of that sum (bias included) within 2^24 units
of its power-of-two scale, so no operation rounds. Its blocked direct convolutions are
several times faster than im2col + BLAS on small feature maps, and its channel-wise
ones about ten times faster than a NumPy multiply-add over the window taps.
A max pool only compares (exact for any float); onnxruntime, like the hardware,
never lets padding win.
"""
from __future__ import annotations

import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from ..quant.params import QLayer


def _session(q: QLayer, node, inits: list, threads: int) -> ort.InferenceSession:
    """One-node model x -> y for layer q's shapes (batch left free)."""
    layer = q.layer
    graph = helper.make_graph(
        [node], layer.kind,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", *layer.in_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", *layer.out_shape])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return open_session(onnx.shape_inference.infer_shapes(model), threads)


def open_session(model: onnx.ModelProto, threads: int) -> ort.InferenceSession:
    """A CPU session of `threads` intra-op threads for one layer or one run of layers."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    # One pool per session. Its workers spin while the run lasts (waking a sleeping one costs
    # more than a small layer's share of the work) and stop when it returns: idle spinning
    # threads of twenty sessions would starve the working one.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1")
    opts.add_session_config_entry("session.force_spinning_stop", "1")
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def session_key(threads: int) -> tuple[int, int]:
    """Sessions by process and thread count: a forked child has none of its parent's
    onnxruntime threads, so it builds its own sessions."""
    return os.getpid(), threads


def conv(q: QLayer, x: np.ndarray, plans, threads: int) -> np.ndarray:
    """W·x + bias exactly, for float32 single-chunk plans with the bias inside the bound (one
    per group): z for fused plans, the accumulator itself otherwise."""
    sessions = q.cache.setdefault("ort_conv", {})
    key = session_key(threads)
    sess = sessions.get(key)
    if sess is None:
        layer = q.layer
        m, cg, kh, kw = q.weight.shape
        w = np.concatenate([p.w for p in plans]).reshape(m, cg, kh, kw).astype(np.float32)
        bias = np.concatenate([p.bias for p in plans]).astype(np.float32)
        node = helper.make_node("Conv", ["x", "w", "b"], ["y"], strides=list(layer.stride),
                                pads=list(layer.pads), dilations=list(layer.dilation), group=layer.groups)
        inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "b")]
        sess = sessions[key] = _session(q, node, inits, threads)
    return sess.run(None, {"x": np.ascontiguousarray(x, dtype=np.float32)})[0]


def max_pool(q: QLayer, x: np.ndarray, threads: int) -> np.ndarray:
    """The window maxima of a max pool (before its activation)."""
    sessions = q.cache.setdefault("ort_pool", {})
    key = session_key(threads)
    sess = sessions.get(key)
    if sess is None:
        layer = q.layer
        node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=list(layer.kernel),
                                strides=list(layer.stride), pads=list(layer.pads))
        sess = sessions[key] = _session(q, node, [], threads)
    return sess.run(None, {"x": np.ascontiguousarray(x, dtype=np.float32)})[0]
