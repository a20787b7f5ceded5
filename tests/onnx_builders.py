"""Small ONNX graphs built with onnx.helper, and an onnxruntime parity check, for front-end tests.

The Caffe2-era builders mimic what those exporters wrote: opset 1-9, every
initializer also listed as a graph input, LRN, Dropout kept, Reshape with a
constant shape before Gemm(transB=1), Sum instead of Add, Softmax at the end.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from cnn2gate.ir.reference import predict

RNG_SEED = 1234


class GraphBuilder:
    """Accumulates nodes and random initializers; `build()` returns a checked ModelProto."""

    def __init__(self, name="net", seed=RNG_SEED):
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.rng = np.random.default_rng(seed)
        self._n = 0

    def tensor(self, name, array) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(array), name=name))
        return name

    def weight(self, name, shape, scale=None) -> str:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        scale = scale if scale is not None else 1.0 / np.sqrt(fan_in)
        return self.tensor(name, (self.rng.standard_normal(shape) * scale).astype(np.float32))

    def node(self, op, inputs, name=None, n_out=1, **attrs) -> str | list[str]:
        self._n += 1
        name = name if name is not None else f"{op.lower()}{self._n}"
        outs = [f"{name}_out{i}" if i else f"{name}_out" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=name, **attrs))
        return outs[0] if n_out == 1 else outs

    # -- layer helpers --------------------------------------------------------
    def conv(self, x, cin, cout, k, name, stride=1, pad=0, group=1, bias=True, **attrs):
        ins = [x, self.weight(f"{name}.w", (cout, cin // group, k, k))]
        if bias:
            ins.append(self.weight(f"{name}.b", (cout,), scale=0.1))
        return self.node("Conv", ins, name=name, kernel_shape=[k, k], strides=[stride, stride],
                         pads=[pad] * 4, group=group, **attrs)

    def bn(self, x, c, name, spatial=None):
        r = self.rng
        ins = [x, self.tensor(f"{name}.scale", (r.random(c) + 0.5).astype(np.float32)),
               self.tensor(f"{name}.bias", (r.standard_normal(c) * 0.1).astype(np.float32)),
               self.tensor(f"{name}.mean", (r.standard_normal(c) * 0.1).astype(np.float32)),
               self.tensor(f"{name}.var", (r.random(c) + 0.5).astype(np.float32))]
        attrs = {"epsilon": 1e-5}
        if spatial is not None:
            attrs["spatial"] = spatial
        return self.node("BatchNormalization", ins, name=name, **attrs)

    def build(self, x_shape, out, opset=13, inits_as_inputs=False, x_name="data", out_shape=None):
        inputs = [helper.make_tensor_value_info(x_name, TensorProto.FLOAT, x_shape)]
        if inits_as_inputs:
            inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in self.inits]
        graph = helper.make_graph(self.nodes, self.name, inputs,
                                  [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)],
                                  initializer=self.inits)
        ir_version = 3 if opset <= 8 else (4 if opset == 9 else 7)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir_version,
                                  producer_name="onnx_builders")
        if out_shape is None:  # let ONNX work the output shape out (the checker wants one)
            model = onnx.shape_inference.infer_shapes(model)
        onnx.checker.check_model(model)
        return model


# -- whole graphs -------------------------------------------------------------------

def caffe2_alexnet_like(opset=8, inits_as_inputs=True) -> onnx.ModelProto:
    """AlexNet-flavoured Caffe2-era graph: LRN, grouped conv, legacy MaxPool, an inception-like
    Concat, Sum, Dropout, Reshape(const) → Gemm(transB=1), Softmax."""
    b = GraphBuilder("caffe2 alexnet-like/v1")
    x = b.conv("data", 3, 8, 5, "conv1", stride=2, pad=2)
    x = b.node("Relu", [x], name="relu1")
    x = b.node("LRN", [x], name="norm1", size=5, alpha=1e-4, beta=0.75, bias=1.0)
    x = b.node("MaxPool", [x], name="pool1", kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 0, 0])
    x = b.conv(x, 8, 16, 3, "conv2", pad=1, group=2)
    x = b.node("Relu", [x], name="relu2")
    # inception-like block: 1x1 and 3x3 branches concatenated on channels
    a = b.node("Relu", [b.conv(x, 16, 8, 1, "inc_1x1")], name="inc_relu_a")
    c = b.node("Relu", [b.conv(x, 16, 8, 3, "inc_3x3", pad=1)], name="inc_relu_c")
    x = b.node("Concat", [a, c], name="inc_concat", axis=1)
    # residual expressed with Sum, as some Caffe2 graphs did
    y = b.conv(x, 16, 16, 3, "conv3", pad=1)
    y = b.bn(y, 16, "bn3", spatial=1 if opset <= 8 else None)  # 'spatial' existed up to opset 8
    x = b.node("Sum", [x, y], name="sum3")
    x = b.node("Relu", [x], name="relu3")
    x = b.node("MaxPool", [x], name="pool3", kernel_shape=[2, 2], strides=[2, 2], auto_pad="VALID")
    x = b.node("Reshape", [x, b.tensor("fc_shape", np.array([1, -1], dtype=np.int64))], name="flatten_reshape")
    if opset < 7:
        raise ValueError("opset < 7 is not a Caffe2-era ONNX export")
    x = b.node("Gemm", [x, b.weight("fc6.w", (32, 16 * 2 * 2)), b.weight("fc6.b", (32,), 0.1)], name="fc6", transB=1)
    x = b.node("Relu", [x], name="relu6")
    drop_attrs = {"ratio": 0.5} if opset >= 7 else {}
    x = b.node("Dropout", [x], name="drop6", **drop_attrs)
    x = b.node("Gemm", [x, b.weight("fc7.w", (10, 32)), b.weight("fc7.b", (10,), 0.1)], name="fc7", transB=1)
    x = b.node("Softmax", [x], name="prob")
    return b.build([1, 3, 24, 24], x, opset=opset, inits_as_inputs=inits_as_inputs, out_shape=[1, 10])


def caffe2_legacy_net(opset=1, inits_as_inputs=True) -> onnx.ModelProto:
    """A Caffe2-era graph written in the op forms of `opset` (1-13): `consumed_inputs`,
    `is_test`, legacy `broadcast`/`axis` on Add/Mul/Gemm, Reshape's shape as an attribute,
    Clip bounds as attributes. Every opset draws the same weights, so an opset-13 copy
    (which onnxruntime can run) gives the reference outputs."""
    b = GraphBuilder("caffe2 legacy")
    legacy_bcast = {"broadcast": 1, "axis": 1} if opset < 7 else {}
    consumed = (lambda n: {"consumed_inputs": [0] * n}) if opset < 6 else (lambda n: {})

    def per_channel(name, values):  # (C,) with axis=1 before opset 7, (1, C, 1, 1) after
        return b.tensor(name, values if opset < 7 else values.reshape(1, -1, 1, 1))

    x = b.conv("data", 3, 8, 3, "conv1", pad=1)
    x = b.node("Relu", [x], name="relu1", **consumed(1))
    x = b.node("LRN", [x], name="norm1", size=3, alpha=1e-3, beta=0.75, bias=1.0)
    x = b.node("MaxPool", [x], name="pool1", kernel_shape=[2, 2], strides=[2, 2])
    y = b.conv(x, 8, 8, 3, "conv2", pad=1)
    r = b.rng
    stats = [(r.random(8) + 0.5), r.standard_normal(8) * 0.1, r.standard_normal(8) * 0.1, r.random(8) + 0.5]
    bn_ins = [b.tensor(f"bn2.{k}", v.astype(np.float32)) for k, v in zip(("scale", "bias", "mean", "var"), stats)]
    bn_attrs = {"epsilon": 1e-5}
    if opset < 7:
        bn_attrs["is_test"] = 1
    if opset < 6:
        bn_attrs["consumed_inputs"] = [0, 0, 0, 1, 1]
    y = b.node("BatchNormalization", [y] + bn_ins, name="bn2", **bn_attrs)
    y = b.node("LeakyRelu", [y], name="leaky2", alpha=0.1, **consumed(1))
    x = b.node("Sum", [x, y], name="sum2", **consumed(2))
    # Caffe2's Scale layer: per-channel Mul and Add with legacy broadcasting
    x = b.node("Mul", [x, per_channel("scale3.w", (r.random(8) + 0.5).astype(np.float32))], name="scale3_mul",
               **legacy_bcast, **consumed(1))
    x = b.node("Add", [x, per_channel("scale3.b", (r.standard_normal(8) * 0.1).astype(np.float32))],
               name="scale3_add", **legacy_bcast, **consumed(1))
    x = b.node("Clip", [x], name="relu6_3", min=0.0, max=6.0, **consumed(1)) if opset < 11 else \
        b.node("Clip", [x, b.tensor("clip_min", np.float32(0.0)), b.tensor("clip_max", np.float32(6.0))],
               name="relu6_3")
    a = b.conv(x, 8, 4, 1, "inc_1x1")
    c = b.conv(x, 8, 4, 3, "inc_3x3", pad=1)
    x = b.node("Concat", [a, c], name="inc_concat", axis=1)
    x = b.node("AveragePool", [x], name="pool4", kernel_shape=[2, 2], strides=[2, 2])
    if opset < 5:
        x = b.node("Reshape", [x], name="flatten_reshape", shape=[1, -1], **consumed(1))
    else:
        x = b.node("Reshape", [x, b.tensor("fc_shape", np.array([1, -1], dtype=np.int64))], name="flatten_reshape")
    gemm = {"transB": 1, "broadcast": 1} if opset < 7 else {"transB": 1}
    x = b.node("Gemm", [x, b.weight("fc5.w", (10, 8 * 2 * 2)), b.weight("fc5.b", (10,), 0.1)], name="fc5", **gemm)
    x = b.node("Dropout", [x], name="drop5", **({"is_test": 1} if opset < 7 else {}))
    x = b.node("Softmax", [x], name="prob")
    return b.build([1, 3, 8, 8], x, opset=opset, inits_as_inputs=inits_as_inputs, out_shape=[1, 10])


def resnet_block(opset=13) -> onnx.ModelProto:
    """Stem + one basic residual block with un-folded BatchNormalization, global pool, dense."""
    b = GraphBuilder("resnet_block")
    x = b.node("Relu", [b.bn(b.conv("data", 3, 8, 3, "stem", pad=1, bias=False), 8, "stem_bn")], name="stem_relu")
    y = b.node("Relu", [b.bn(b.conv(x, 8, 8, 3, "b1_conv1", pad=1, bias=False), 8, "b1_bn1")], name="b1_relu1")
    y = b.bn(b.conv(y, 8, 8, 3, "b1_conv2", pad=1, bias=False), 8, "b1_bn2")
    x = b.node("Relu", [b.node("Add", [y, x], name="b1_add")], name="b1_relu2")
    # downsampling block with a 1x1 projection shortcut
    y = b.node("Relu", [b.bn(b.conv(x, 8, 16, 3, "b2_conv1", stride=2, pad=1, bias=False), 16, "b2_bn1")], name="b2_relu1")
    y = b.bn(b.conv(y, 16, 16, 3, "b2_conv2", pad=1, bias=False), 16, "b2_bn2")
    s = b.bn(b.conv(x, 8, 16, 1, "b2_proj", stride=2, bias=False), 16, "b2_proj_bn")
    x = b.node("Relu", [b.node("Add", [y, s], name="b2_add")], name="b2_relu2")
    x = b.node("GlobalAveragePool", [x], name="gap")
    x = b.node("Flatten", [x], name="flatten", axis=1)
    x = b.node("Gemm", [x, b.weight("fc.w", (10, 16)), b.weight("fc.b", (10,), 0.1)], name="fc", transB=1)
    return b.build([1, 3, 16, 16], x, opset=opset, out_shape=[1, 10])


def mobilenet_block(opset=13) -> onnx.ModelProto:
    """Inverted residual: 1x1 expand + BN + Clip(0,6), depthwise 3x3 + BN + Clip, 1x1 project + BN, Add."""
    b = GraphBuilder("mobilenet_v2_block")

    def relu6(x, name):
        if opset < 11:  # bounds were attributes before opset 11
            return b.node("Clip", [x], name=name, min=0.0, max=6.0)
        return b.node("Clip", [x, "clip_min", "clip_max"], name=name)

    if opset >= 11:
        b.tensor("clip_min", np.array(0.0, dtype=np.float32))
        b.tensor("clip_max", np.array(6.0, dtype=np.float32))
    x = relu6(b.conv("data", 3, 8, 3, "stem", stride=2, pad=1), "stem_relu6")
    y = relu6(b.bn(b.conv(x, 8, 24, 1, "expand", bias=False), 24, "expand_bn"), "expand_relu6")
    y = relu6(b.bn(b.conv(y, 24, 24, 3, "dw", pad=1, group=24, bias=False), 24, "dw_bn"), "dw_relu6")
    y = b.bn(b.conv(y, 24, 8, 1, "project", bias=False), 8, "project_bn")
    x = b.node("Add", [x, y], name="residual")
    if opset >= 18:  # axes became an input in opset 18
        x = b.node("ReduceMean", [x, b.tensor("axes", np.array([2, 3], dtype=np.int64))], name="pool", keepdims=1)
    else:
        x = b.node("ReduceMean", [x], name="pool", axes=[2, 3], keepdims=1)
    x = b.node("Reshape", [x, b.tensor("shape", np.array([1, 8], dtype=np.int64))], name="flatten")
    x = b.node("MatMul", [x, b.weight("fc.w", (8, 5))], name="fc")
    x = b.node("Add", [x, b.weight("fc.b", (5,), 0.1)], name="fc_bias")
    return b.build([1, 3, 16, 16], x, opset=opset, out_shape=[1, 5])


def with_symbolic_dims(model: onnx.ModelProto, dims: dict[int, str]) -> onnx.ModelProto:
    """The model with some input dimensions made symbolic ({axis: name})."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    shape = out.graph.input[0].type.tensor_type.shape.dim
    for axis, name in dims.items():
        shape[axis].ClearField("dim_value")
        shape[axis].dim_param = name
    return out


# -- parity with onnxruntime ----------------------------------------------------------

def ort_outputs(model: onnx.ModelProto | str, x: np.ndarray) -> np.ndarray:
    data = model if isinstance(model, str) else model.SerializeToString()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # Caffe2-style graphs make ORT warn about initializers listed as inputs
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def parity(graph, model: onnx.ModelProto | str, seed=0, scale=1.0) -> float:
    """max |IR − ORT| / max |ORT| on a random input; NHWC models get the NHWC tensor in ORT."""
    x = (np.random.default_rng(seed).standard_normal((1,) + tuple(graph.input_shape)) * scale).astype(np.float32)
    x_onnx = x.transpose(0, 2, 3, 1) if graph.meta.get("input_layout") == "NHWC" else x
    ref = ort_outputs(model, np.ascontiguousarray(x_onnx))
    ours = predict(graph, x)
    assert ours.size == ref.size, f"output sizes differ: {ours.shape} vs {ref.shape}"
    return float(np.abs(ours.reshape(-1) - ref.reshape(-1)).max() / np.abs(ref).max())
