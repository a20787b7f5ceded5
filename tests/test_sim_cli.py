"""`cnn2gate quantize` and `cnn2gate simulate` end to end on a small ONNX model."""
import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from cnn2gate.cli import main
from cnn2gate.frontend import load_model
from cnn2gate.ir.reference import predict
from cnn2gate.quant import load_formats
from cnn2gate.sim import simulate


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((4, 1, 3, 3)) * 0.5).astype(np.float32)
    b1 = (rng.standard_normal(4) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((3, 4 * 3 * 3)) * 0.3).astype(np.float32)
    b2 = (rng.standard_normal(3) * 0.1).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], transB=1),
        helper.make_node("Softmax", ["y"], ["prob"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 6, 6])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    d = tmp_path_factory.mktemp("model")
    onnx.save(m, d / "tiny.onnx")
    x = rng.uniform(0, 1, (70, 1, 6, 6)).astype(np.float32)
    np.save(d / "x.npy", x)
    return d


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_quantize_then_simulate(model):
    onnx_path, x_path, f_path, y_path = model / "tiny.onnx", model / "x.npy", model / "f.json", model / "y.npy"
    r = run("quantize", onnx_path, "--calib", x_path, "--bits", 8, "--method", "percentile", "-o", f_path)
    assert r.exit_code == 0, r.output
    d = json.loads(f_path.read_text())
    assert d["stats"]["method"] == "percentile" and d["stats"]["calibration"]["samples"] == 70
    graph = load_model(str(onnx_path))
    fm = load_formats(f_path, graph)
    r = run("simulate", onnx_path, "--input", x_path, "--formats", f_path, "--report", "--batch-size", 32, "-o", y_path)
    assert r.exit_code == 0, r.output
    assert "SQNR dB" in r.output
    y = np.load(y_path)
    x = np.load(x_path)
    want = simulate(graph, fm, x).output_float
    np.testing.assert_array_equal(y, want)  # batching does not change a bit
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-9)  # host softmax applied
    assert (y.argmax(1) == predict(graph, x).argmax(1)).mean() > 0.9
    r = run("simulate", onnx_path, "--input", x_path, "--formats", f_path, "--ints", "-o", y_path)
    assert r.exit_code == 0
    np.testing.assert_array_equal(np.load(y_path), simulate(graph, fm, x).output_int)
    r = run("simulate", onnx_path, "--input", x_path, "--float", "-o", y_path)
    assert r.exit_code == 0
    np.testing.assert_allclose(np.load(y_path), predict(graph, x))


def test_simulate_without_formats_quantises_on_the_fly(model):
    r = CliRunner().invoke(main, ["simulate", str(model / "tiny.onnx"), "--input", str(model / "x.npy"),
                                  "-o", str(model / "y2.npy")])
    assert r.exit_code == 0, r.output
    assert np.load(model / "y2.npy").shape == (70, 3)


def test_bad_inputs_exit_2(model, tmp_path):
    np.save(tmp_path / "wrong.npy", np.zeros((2, 3, 6, 6), np.float32))
    r = CliRunner().invoke(main, ["simulate", str(model / "tiny.onnx"), "--input", str(tmp_path / "wrong.npy"),
                                  "-o", str(tmp_path / "y.npy")])
    assert r.exit_code == 2 and "expects (1, 6, 6)" in r.output
    (tmp_path / "bad.json").write_text(json.dumps({"input": {"bits": 8, "frac": 0}, "layers": {}}))
    r = CliRunner().invoke(main, ["simulate", str(model / "tiny.onnx"), "--input", str(model / "x.npy"),
                                  "--formats", str(tmp_path / "bad.json"), "-o", str(tmp_path / "y.npy")])
    assert r.exit_code == 2 and "bad.json" in r.output and "missing" in r.output
    r = CliRunner().invoke(main, ["quantize", str(model / "tiny.onnx"), "--calib", str(tmp_path / "none.npy"),
                                  "-o", str(tmp_path / "f.json")])
    assert r.exit_code == 2 and "none.npy" in r.output
    assert not (tmp_path / "y.npy").exists() and not (tmp_path / "f.json").exists()
