"""Keras 3 (torch backend) `model.export(format="onnx")` → IR: NHWC input, Transpose pairs, MatMul+Add;
a depthwise / batch-norm / global-pooling / dense model simulated and emulated from NHWC inputs."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest

from cnn2gate.frontend import load_model
from onnx_builders import ort_outputs, parity
from sim_checks import EMU_CONFIGS, emulator_test

if importlib.util.find_spec("keras") is None:  # not imported here: the backend is chosen at first import
    pytest.skip("keras is not installed", allow_module_level=True)

TOL = 1e-4

# Run in a child process: KERAS_BACKEND must be set before keras is first imported.
EXPORT = textwrap.dedent("""
    import sys
    import numpy as np
    import keras
    from keras import layers as L


    def build(kind):
        keras.utils.set_random_seed(0)
        if kind == "lenet":
            m = keras.Sequential([
                keras.Input((28, 28, 1)),
                L.Conv2D(6, 5, padding="same", activation="relu"), L.MaxPooling2D(2),
                L.Conv2D(16, 5, activation="relu"), L.MaxPooling2D(2),
                L.Flatten(), L.Dense(120, activation="relu"), L.Dense(84, activation="relu"),
                L.Dense(10, activation="softmax")])
            shape = (1, 28, 28, 1)
        elif kind == "block":  # MobileNet-like: BatchNorm, ReLU6, depthwise, residual Add, same-padded pooling, GAP
            i = keras.Input((16, 16, 3))
            x = L.Rescaling(1 / 255.0)(i)
            x = L.ZeroPadding2D(1)(x)
            x = L.Conv2D(8, 3, strides=2)(x)
            x = L.ReLU(6.0)(L.BatchNormalization()(x))
            y = L.ReLU()(L.BatchNormalization()(L.DepthwiseConv2D(3, padding="same")(x)))
            x = L.Add()([x, L.Conv2D(8, 1)(y)])
            x = L.Concatenate()([L.Conv2D(4, 1, activation="relu")(x), L.Conv2D(4, 3, padding="same", activation="relu")(x)])
            x = L.MaxPooling2D(3, strides=2, padding="same")(x)
            x = L.Dense(5)(L.GlobalAveragePooling2D()(x))
            m = keras.Model(i, x)
            shape = (1, 16, 16, 3)
        elif kind == "dwnet":  # depthwise (multiplier 1 and 2), batch norm, global pooling, dense
            i = keras.Input((12, 10, 3))
            x = L.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(i)
            x = L.ReLU()(L.BatchNormalization()(x))
            x = L.ReLU(6.0)(L.BatchNormalization()(L.DepthwiseConv2D(3, padding="same")(x)))
            x = L.BatchNormalization()(L.Conv2D(12, 1)(x))
            x = L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, activation="relu")(x)
            x = L.GlobalAveragePooling2D()(L.BatchNormalization()(x))
            x = L.Dense(10, activation="softmax")(L.Dense(16, activation="relu")(x))
            m = keras.Model(i, x)
            shape = (1, 12, 10, 3)
        for layer in m.layers:
            if isinstance(layer, L.BatchNormalization):
                layer.gamma.assign(np.random.uniform(0.5, 1.5, layer.gamma.shape))
                layer.beta.assign(np.random.uniform(-0.2, 0.2, layer.beta.shape))
                layer.moving_mean.assign(np.random.uniform(-0.2, 0.2, layer.moving_mean.shape))
                layer.moving_variance.assign(np.random.uniform(0.5, 1.5, layer.moving_variance.shape))
        m(np.zeros(shape, "float32"))
        return m

    # one process for every model: importing keras and torch is the slow part
    for kind in sys.argv[2:]:
        build(kind).export(f"{sys.argv[1]}/keras_{kind}.onnx", format="onnx", verbose=False)
""")


KINDS = ("lenet", "block", "dwnet")


@pytest.fixture(scope="module")
def keras_models(tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("keras")
    env = dict(os.environ, KERAS_BACKEND="torch")
    proc = subprocess.run([sys.executable, "-c", EXPORT, str(out), *KINDS], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {kind: str(out / f"keras_{kind}.onnx") for kind in KINDS}


@pytest.fixture
def keras_lenet(keras_models) -> str:
    return keras_models["lenet"]


def test_keras_lenet(keras_lenet):
    path = keras_lenet
    nodes = onnx.load(path).graph.node
    assert any(n.op_type == "Transpose" for n in nodes) and any(n.op_type == "MatMul" for n in nodes)
    g = load_model(path)
    assert g.meta["input_layout"] == "NHWC" and g.meta["input_perm"] == [0, 3, 1, 2]
    assert g.input_shape == (1, 28, 28)  # the IR input is NCHW
    assert [layer.kind for layer in g] == ["conv", "pool", "conv", "pool", "dense", "dense", "dense"]
    assert g.softmax
    assert parity(g, path) < TOL


def test_keras_nhwc_flatten_permutes_dense_columns(keras_lenet):
    """Feeding the same image as NHWC to ORT and as NCHW to the IR gives the same logits."""
    path = keras_lenet
    g = load_model(path)
    assert g.meta["passes"]["nhwc_flatten_to_dense"] == 1
    x = np.random.default_rng(3).random((1, 28, 28, 1), dtype=np.float32)
    from cnn2gate.ir.reference import predict

    ours = predict(g, x.transpose(0, 3, 1, 2))
    np.testing.assert_allclose(ours, ort_outputs(path, x), rtol=1e-4, atol=1e-6)


def test_keras_mobilenet_like_block(keras_models):
    path = keras_models["block"]
    g = load_model(path)
    kinds = [layer.kind for layer in g]
    assert kinds.count("add") == 1 and kinds.count("concat") == 1 and kinds[-1] == "dense"
    assert g.meta["passes"]["push_transpose_down"] > 0 and g.meta["passes"]["fold_pad_into_window"] == 2
    assert parity(g, path) < TOL


# ---- NHWC input end to end: depthwise, batch norm, global pooling, dense --------------------

def test_keras_depthwise_bn_gap_dense_matches_onnxruntime(keras_models):
    path = keras_models["dwnet"]
    g = load_model(path)
    assert g.input_layout == "NHWC" and g.declared_input_shape == (12, 10, 3) and g.input_shape == (3, 12, 10)
    convs = [layer for layer in g if layer.kind == "conv"]
    # both DepthwiseConv2D (multiplier 1 and 2) stay channel-wise; every batch norm is folded
    # except the one after a ReLU, which is a channel-wise 1x1 affine layer of its own
    assert [c.groups for c in convs] == [1, 8, 1, 12, 24]
    assert [layer.kind for layer in g][-3:] == ["pool", "dense", "dense"] and g.softmax
    assert not any(n.op_type == "BatchNormalization" for n in onnx.load(path).graph.node)  # exported as Sub/Mul/Add
    assert parity(g, path) < TOL
    # the same NHWC batch given to onnxruntime and to the float executor
    from cnn2gate.ir.reference import predict

    x = np.random.default_rng(4).uniform(-1, 1, (5, 12, 10, 3)).astype(np.float32)
    np.testing.assert_allclose(predict(g, x), ort_outputs(path, x), rtol=TOL, atol=1e-6)


@pytest.fixture(scope="module")
def dwnet_quantized(keras_models):
    from cnn2gate.quant import quantize

    g = load_model(keras_models["dwnet"])
    x = np.random.default_rng(6).uniform(-1, 1, (16, 12, 10, 3)).astype(np.float32)
    return g, quantize(g, x), x


def test_keras_depthwise_model_simulates_nhwc(dwnet_quantized):
    from cnn2gate.ir.reference import predict
    from cnn2gate.sim import simulate

    g, fm, x = dwnet_quantized
    res = simulate(g, fm, x)  # NHWC, as the ONNX model declares it
    np.testing.assert_array_equal(res.output_int, simulate(g, fm, x.transpose(0, 3, 1, 2)).output_int)
    y = res.output_float
    assert y.shape == (16, 10)
    f = predict(g, x)
    sqnr = 10 * np.log10(np.sum(f ** 2) / np.sum((y - f) ** 2))
    assert sqnr > 20, sqnr  # 8-bit, softmax outputs (measured: 53 dB)
    assert (y.argmax(1) == f.argmax(1)).mean() >= 0.75


@emulator_test
@EMU_CONFIGS
def test_keras_depthwise_model_emulates_nhwc_bit_exact(dwnet_quantized, tmp_path, cfg):
    from cnn2gate.emulate import emulate_project
    from cnn2gate.pipeline import compile_project

    g, fm, x = dwnet_quantized
    out = compile_project(g, fm, "a10", cfg, tmp_path / "p")
    res = emulate_project(out, x[:3], timeout=240, dump_dir=tmp_path / "dump")  # NHWC
    assert res.passed, res.summary()
    assert len(res.layer_mismatches) == len(g.layers) and not any(res.layer_mismatches.values())
    assert res.outputs.shape == (3, 10)
