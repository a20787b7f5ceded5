"""Exact convolutions on onnxruntime's CPU kernels (MLAS).

The same argument as in sim/fast.py makes this exact: MLAS computes every output
as a sum of products in float32 (direct NCHWc or im2col + GEMM kernels, any order,
with or without FMA; no transform-based algorithm for float32), and the plan's bound
keeps every subset of that sum (bias included) within 2^24 units of its power-of-two
scale, so no operation rounds. Its blocked direct convolutions are several times
faster than im2col + BLAS on small feature maps.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from ..quant.params import QLayer


def _session(q: QLayer, w: np.ndarray, bias: np.ndarray, threads: int) -> ort.InferenceSession:
    layer = q.layer
    c = layer.in_shape[0]
    m = w.shape[0]
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], strides=list(layer.stride),
                            pads=list(layer.pads), dilations=list(layer.dilation), group=layer.groups)
    graph = helper.make_graph(
        [node], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", c, *layer.in_shape[1:]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", m, *layer.out_shape[1:]])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    # one pool per layer: spinning idle threads of twenty sessions would starve the working one
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(onnx.shape_inference.infer_shapes(model).SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def conv(q: QLayer, x: np.ndarray, plans, threads: int) -> np.ndarray:
    """z = W·x + bias for fused float32 single-chunk plans (one per group), exactly."""
    sess = q.cache.get("ort_conv")
    if sess is None:
        m, cg, kh, kw = q.weight.shape
        w = np.concatenate([p.w for p in plans]).reshape(m, cg, kh, kw).astype(np.float32)
        bias = np.concatenate([p.bias for p in plans]).astype(np.float32)
        sess = q.cache["ort_conv"] = _session(q, w, bias, threads)
    return sess.run(None, {"x": np.ascontiguousarray(x, dtype=np.float32)})[0]
