"""Hand-built graphs: Caffe2-era exports (opset 7-9) and residual/depthwise/grouped blocks."""
from __future__ import annotations

import numpy as np
import pytest

from cnn2gate.errors import ModelError
from cnn2gate.frontend import convert, load_model
from cnn2gate.ir.layers import GRAPH_INPUT
import onnx_builders as B

TOL = 1e-4


@pytest.mark.parametrize("opset", [7, 8, 9])
def test_caffe2_era_graph(opset, tmp_path):
    model = B.caffe2_alexnet_like(opset=opset, inits_as_inputs=True)
    weights = {t.name for t in model.graph.initializer}
    assert weights and weights <= {i.name for i in model.graph.input}  # Caffe2 style
    path = tmp_path / "c2.onnx"
    path.write_bytes(model.SerializeToString())
    g = load_model(path)
    assert g.meta["source_opset"] == opset and g.meta["opset"] == 13
    assert g.input_source == "data" and g.layers[0].inputs == [GRAPH_INPUT]
    by_name = {layer.name: layer for layer in g}
    assert by_name["norm1"].kind == "lrn" and by_name["norm1"].size == 5
    assert by_name["conv2"].groups == 2
    assert by_name["inc_concat"].kind == "concat" and by_name["inc_concat"].out_shape[0] == 16
    assert by_name["sum3"].kind == "add" and by_name["sum3"].act == "relu"  # Sum → Add, Relu fused
    assert "bn3" in by_name["conv3"].source  # BatchNormalization folded into conv3
    assert by_name["fc6"].kind == "dense" and by_name["fc6"].in_shapes == [(16, 2, 2)]
    assert "drop6" not in by_name and g.softmax
    assert g.name == "caffe2_alexnet_like_v1"
    assert B.parity(g, model) < TOL


@pytest.mark.parametrize("opset", [1, 2, 3, 4, 5, 6])
def test_oldest_opsets_upgrade(opset, tmp_path):
    """Opsets 1-6 are upgraded; onnxruntime runs the opset-13 copy (it lacks some opset-1 kernels)."""
    model = B.caffe2_legacy_net(opset=opset)
    path = tmp_path / "old.onnx"
    path.write_bytes(model.SerializeToString())
    g = load_model(path)
    assert g.meta["source_opset"] == opset and g.meta["opset"] == 13
    by_name = {layer.name: layer for layer in g}
    assert by_name["norm1"].kind == "lrn" and by_name["inc_concat"].kind == "concat"
    assert "bn2" in by_name["conv2"].source and by_name["conv2"].act == "leaky"
    assert g.softmax
    modern = B.caffe2_legacy_net(opset=13)
    assert B.parity(g, modern) < TOL


def test_opset_converter_failure_names_the_node():
    b = B.GraphBuilder("old_pad")
    x = b.node("Pad", ["data"], name="legacy_pad", paddings=[0, 0, 1, 1, 0, 0, 1, 1])
    x = b.conv(x, 3, 4, 3, "conv")
    model = b.build([1, 3, 8, 8], x, opset=1, inits_as_inputs=True, out_shape=[1, 4, 8, 8])
    with pytest.raises(ModelError) as err:
        convert(model, source="old.onnx")
    msg = str(err.value)
    assert msg.startswith("old.onnx: cannot convert opset 1 to 13") and "'legacy_pad' (Pad)" in msg


def test_unfusable_activations_become_act_layers():
    """Relu on a tensor with other readers, LeakyRelu on the graph input, Clip(0,6) after a
    layer that already has an activation: each its own `act` layer, priced and run."""
    from cnn2gate.hw import estimate

    def build(b):
        x = b.node("LeakyRelu", ["data"], name="in_leaky", alpha=0.2)
        c = b.conv(x, 4, 6, 3, "conv", pad=1)
        r = b.node("Relu", [c], name="shared_relu")  # conv's output is also read by the Add
        x = b.node("Add", [r, c], name="add")
        x = b.node("Relu", [x], name="add_relu")  # fused into the add
        return b.node("Clip", [x, b.tensor("lo", np.float32(0)), b.tensor("hi", np.float32(6))], name="clip6")

    model = _single_layer_model(build)
    g = convert(model)
    acts = {layer.name: layer for layer in g if layer.kind == "act"}
    assert {n: (a.act, a.inputs) for n, a in acts.items()} == {
        "in_leaky": ("leaky", [GRAPH_INPUT]), "shared_relu": ("relu", ["conv"]), "clip6": ("relu6", ["add"])}
    assert acts["in_leaky"].alpha == pytest.approx(0.2) and g.layer("add").act == "relu"
    assert B.parity(g, model) < TOL
    est = estimate(g, "a10", {"vec_size": 4, "lane_num": 4, "conv_gp_size_x": 2})
    assert "act" in est.resources.kernels and est.resources.kernels["act"]["alm"] > 0
    assert all(le.cycles > 0 for le in est.layers if le.kind == "act")


def test_residual_block_batchnorm_folded():
    model = B.resnet_block()
    g = convert(model)
    assert [layer.kind for layer in g] == ["conv"] * 3 + ["add"] + ["conv"] * 3 + ["add", "pool", "dense"]
    assert all("bn" in layer.source for layer in g if layer.kind == "conv")
    assert g.layer("b1_add").inputs == ["b1_conv2", "stem"]
    assert B.parity(g, model) < TOL


@pytest.mark.parametrize("opset", [9, 13, 18])
def test_mobilenet_block_clip_reduce_mean_matmul(opset):
    """Clip bounds as attributes (opset 9) or inputs; ReduceMean axes as attribute or input (18)."""
    model = B.mobilenet_block(opset=opset)
    g = convert(model)
    assert g.meta["source_opset"] == opset
    assert [layer.act for layer in g if layer.kind == "conv"] == ["relu6", "relu6", "relu6", "none"]
    assert g.layer("dw").depthwise
    assert g.layer("pool").mode == "global_avg"
    assert g.layer("fc").kind == "dense" and "fc_bias" in g.layer("fc").source  # MatMul + Add → dense
    assert B.parity(g, model) < TOL


def test_old_opset_residual_block_upgrades():
    model = B.resnet_block(opset=9)
    g = convert(model)
    assert g.meta["source_opset"] == 9
    assert B.parity(g, model) < TOL


def _single_layer_model(build, x_shape=(1, 4, 9, 9), opset=13):
    b = B.GraphBuilder("single")
    out = build(b)
    return b.build(list(x_shape), out, opset=opset)


def test_gemm_any_trans_alpha_beta():
    def build(b):
        x = b.node("Flatten", ["data"], name="flat")
        w = b.weight("w", (4 * 9 * 9, 6))  # (K, M): transB=0
        c = b.weight("c", (1, 6), 0.5)
        return b.node("Gemm", [x, w, c], name="fc", alpha=0.5, beta=2.0, transB=0)

    model = _single_layer_model(build)
    g = convert(model)
    assert g.layers[0].kind == "dense" and g.layers[0].weight.shape == (6, 324)
    assert B.parity(g, model) < TOL


def test_pad_folded_into_conv_and_bias_add_folded():
    def build(b):
        pads = b.tensor("pads", np.array([0, 0, 1, 2, 0, 0, 1, 0], dtype=np.int64))
        x = b.node("Pad", ["data", pads], name="pad", mode="constant")
        x = b.conv(x, 4, 5, 3, "conv", bias=False)
        x = b.node("Add", [x, b.weight("bias", (1, 5, 1, 1), 0.3)], name="bias_add")
        return b.node("LeakyRelu", [x], name="leaky", alpha=0.2)

    model = _single_layer_model(build)
    g = convert(model)
    (conv,) = g.layers
    assert conv.pads == (1, 2, 1, 0) and conv.act == "leaky" and conv.alpha == pytest.approx(0.2)
    assert B.parity(g, model) < TOL


def test_standalone_scale_becomes_depthwise_conv():
    def build(b):
        x = b.node("Mul", ["data", b.tensor("scale", np.array([0.5, 2.0, -1.0, 3.0], np.float32).reshape(4, 1, 1))],
                   name="normalise_scale")
        x = b.node("Sub", [x, b.tensor("mean", np.float32(0.25))], name="normalise_shift")
        return b.node("MaxPool", [x], name="pool", kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")

    model = _single_layer_model(build)
    g = convert(model)
    assert [layer.kind for layer in g] == ["conv", "pool"] and g.layers[0].depthwise
    assert g.layers[1].pads == (1, 1, 1, 1)
    assert B.parity(g, model) < TOL


def test_names_are_sanitized_and_unique():
    def build(b):
        x = b.conv("data", 4, 4, 3, "layer/1:conv", pad=1)
        x = b.conv(x, 4, 4, 3, "layer.1.conv", pad=1)
        x = b.conv(x, 4, 4, 3, "", pad=1)
        x = b.conv(x, 4, 4, 3, "9lives", pad=1)
        return b.conv(x, 4, 4, 3, "input", pad=1)  # must not clash with the graph-input marker

    g = convert(_single_layer_model(build))
    names = [layer.name for layer in g]
    assert names == ["layer_1_conv", "layer_1_conv_2", "conv2", "conv_9lives", "input_2"]
    assert [layer.source for layer in g][:2] == ["layer/1:conv", "layer.1.conv"]


def test_long_names_truncated_to_40():
    def build(b):
        x = b.conv("data", 4, 4, 1, "a" * 60)
        return b.conv(x, 4, 4, 1, "a" * 61)

    g = convert(_single_layer_model(build))
    assert [len(layer.name) for layer in g] == [40, 40]
    assert g.layers[1].name.endswith("_2")
