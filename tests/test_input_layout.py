"""Data in the layout the ONNX model declares: NHWC inputs (Keras), squeezed outputs (torch)."""
from __future__ import annotations

import importlib.util
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cnn2gate.batch import as_batch
from cnn2gate.cli import main
from cnn2gate.emulate import emulate_project, emulator_available
from cnn2gate.errors import Cnn2GateError
from cnn2gate.frontend import load_model
from cnn2gate.ir.reference import predict
from cnn2gate.pipeline import compile_project
from cnn2gate.quant import quantize
from cnn2gate.sim import simulate
from onnx_builders import ort_outputs

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from examples import models  # noqa: E402

_EMU, _WHY = emulator_available()
needs_emulator = pytest.mark.skipif(not _EMU, reason=f"Intel FPGA emulation runtime unavailable: {_WHY}")
CFG = {"vec_size": 4, "lane_num": 4, "conv_gp_size_x": 3}


@pytest.fixture(scope="module")
def keras_lenet():
    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras is not installed")
    return models.export("keras_lenet", **models.SMALL["keras_lenet"])  # (1, 32, 32, 1), KERAS_BACKEND=torch


@pytest.fixture(scope="module")
def nhwc_data():
    return np.random.default_rng(5).uniform(0, 1, (6, 32, 32, 1)).astype(np.float32)


def _cli(*args):
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return res.exit_code, res.output


def test_keras_input_layout_recorded(keras_lenet):
    g = load_model(keras_lenet)
    assert g.input_layout == "NHWC" and g.input_shape == (1, 32, 32) and g.declared_input_shape == (32, 32, 1)
    assert g.declared_output is None  # (1, 10) from ONNX is the IR's (10,)


def test_as_batch_converts_declared_layout_once(keras_lenet, nhwc_data):
    g = load_model(keras_lenet)
    x = as_batch(g, nhwc_data)
    assert x.shape == (6, 1, 32, 32)
    np.testing.assert_array_equal(np.asarray(x), nhwc_data.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(np.asarray(as_batch(g, x)), np.asarray(x))  # not transposed again
    np.testing.assert_array_equal(np.asarray(as_batch(g, nhwc_data[0])), np.asarray(x[:1]))  # one sample
    with pytest.raises(Cnn2GateError, match=r"x.npy: samples have shape \(32, 32, 3\), the model expects "
                                            r"\(32, 32, 1\) \(NHWC, as the ONNX model declares it\)"):
        as_batch(g, np.zeros((2, 32, 32, 3)), "x.npy")


def test_keras_cli_takes_nhwc_everywhere(keras_lenet, nhwc_data, tmp_path):
    x_path, bad = tmp_path / "x.npy", tmp_path / "bad.npy"
    np.save(x_path, nhwc_data)
    np.save(bad, nhwc_data.transpose(0, 3, 1, 2)[:, :, :, :31])
    fm = tmp_path / "f.json"
    assert _cli("quantize", keras_lenet, "--calib", x_path, "-o", fm, "-q")[0] == 0
    # float: what onnxruntime gives on the same NHWC array
    assert _cli("simulate", keras_lenet, "--input", x_path, "--float", "-o", tmp_path / "yf.npy", "-q")[0] == 0
    yf = np.load(tmp_path / "yf.npy")
    ref = np.concatenate([ort_outputs(str(keras_lenet), nhwc_data[i:i + 1]) for i in range(len(nhwc_data))])
    assert yf.shape == ref.shape == (6, 10)
    assert np.abs(yf - ref).max() / np.abs(ref).max() < 1e-4
    # integer: the same numbers as the library on the channels-first batch
    assert _cli("simulate", keras_lenet, "--input", x_path, "--formats", fm, "-o", tmp_path / "y.npy", "-q")[0] == 0
    g = load_model(keras_lenet)
    from cnn2gate.quant import load_formats
    want = simulate(g, load_formats(fm, g), nhwc_data.transpose(0, 3, 1, 2)).output_float
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), want)
    # a wrong shape names the declared one
    code, out = _cli("simulate", keras_lenet, "--input", bad, "-o", tmp_path / "z.npy")
    assert code == 2 and "the model expects (32, 32, 1) (NHWC" in out
    code, out = _cli("quantize", keras_lenet, "--calib", bad, "-o", tmp_path / "g.json")
    assert code == 2 and "the model expects (32, 32, 1)" in out
    # compile: the golden input is the NHWC array's first image, stored channels-first
    proj = tmp_path / "p"
    assert _cli("compile", keras_lenet, "--calib", x_path, "--golden-input", x_path, "-o", proj, "-q")[0] == 0
    golden = np.load(proj / "golden" / "input.npy")
    assert golden.shape[1:] == (1, 32, 32)
    assert json.loads((proj / "model" / "model.json").read_text())["input_layout"] == "NHWC"


def test_keras_python_api_takes_nhwc(keras_lenet, nhwc_data, tmp_path):
    g = load_model(keras_lenet)
    fm = quantize(g, nhwc_data)
    assert fm.stats["calibration"]["samples"] == 6
    np.testing.assert_allclose(predict(g, nhwc_data), predict(g, nhwc_data.transpose(0, 3, 1, 2)))
    out = compile_project(g, fm, "a10", CFG, tmp_path / "p", golden_input=nhwc_data[:2])
    golden = np.load(out / "golden" / "input.npy")
    assert golden.shape == (2, 1, 32, 32)


@needs_emulator
@pytest.mark.emulator
def test_keras_emulate_nhwc_input(keras_lenet, nhwc_data, tmp_path):
    g = load_model(keras_lenet)
    out = compile_project(g, quantize(g, nhwc_data), "a10", CFG, tmp_path / "p")
    x_path = tmp_path / "x.npy"
    np.save(x_path, nhwc_data[:3])
    code, text = _cli("emulate", out, "--input", x_path, "--timeout", 240)
    assert code == 0 and "PASS: 30 of 30" in text, text
    res = emulate_project(out, nhwc_data[:2], timeout=240)
    assert res.passed and res.outputs.shape == (2, 10)
    code, text = _cli("emulate", out, "--input", tmp_path / "missing.npy")
    assert code == 2


# ---- squeezed output ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def squeezed_model(tmp_path_factory):
    """Conv → ReLU → global pool → Flatten: ONNX declares (N, 5); the IR's last layer is (5, 1, 1)."""
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 5, 1),
                            torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
    path = tmp_path_factory.mktemp("sq") / "squeezed.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.randn(1, 3, 8, 8),), str(path), dynamo=False, opset_version=13,
                          input_names=["input"], output_names=["output"])
    return path


def test_squeezed_output_keeps_declared_shape(squeezed_model, tmp_path):
    g = load_model(squeezed_model)
    assert g.output_shape == (5, 1, 1) and g.declared_output == (5,)
    x = np.random.default_rng(1).standard_normal((4, 3, 8, 8)).astype(np.float32)
    x_path = tmp_path / "x.npy"
    np.save(x_path, x)
    for extra in (["--float"], []):
        assert _cli("simulate", squeezed_model, "--input", x_path, *extra, "-o", tmp_path / "y.npy", "-q")[0] == 0
        assert np.load(tmp_path / "y.npy").shape == (4, 5)
    out = compile_project(g, quantize(g, x), "a10", CFG, tmp_path / "p")
    assert np.load(out / "golden" / "output.npy").shape[1:] == (5, 1, 1)  # the project keeps its own layout
    assert json.loads((out / "model" / "model.json").read_text())["declared_output"] == [5]


@needs_emulator
@pytest.mark.emulator
def test_squeezed_output_emulated(squeezed_model, tmp_path):
    g = load_model(squeezed_model)
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8))
    out = compile_project(g, quantize(g, x), "a10", CFG, tmp_path / "p")
    res = emulate_project(out, x, timeout=240)
    assert res.passed, res.summary()
    assert res.outputs.shape == (2, 5)
