"""Fast float reference for grouped convolutions, and the parallel sensitivity-model build."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import onnx_builders as B
from cnn2gate.explore.fidelity import SensitivityModel
from cnn2gate.frontend import convert, load_model
from cnn2gate.ir.layers import GRAPH_INPUT
from cnn2gate.ops.conv import Conv, float_conv

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits" / "digits_cnn.onnx"
DIGITS_CALIB = ROOT / "examples" / "digits" / "calib_x.npy"
BITS = (4, 6, 8, 10, 12, 16)


def make_conv(rng, c, hw, m, groups, k, stride=1, pads=(0, 0, 0, 0), dilation=1) -> Conv:
    layer = Conv(name="c", inputs=[GRAPH_INPUT], in_shapes=[(c,) + hw], out_shape=(0, 0, 0),
                 weight=rng.standard_normal((m, c // groups) + k).astype(np.float32),
                 bias=rng.standard_normal(m).astype(np.float32),
                 stride=(stride, stride), pads=pads, dilation=(dilation, dilation), groups=groups)
    layer.out_shape = layer.infer_shape()
    return layer


def loop_conv(layer: Conv, x: np.ndarray) -> np.ndarray:
    """Straightforward grouped convolution: loop over output channels and kernel taps."""
    m, cg, kh, kw = layer.weight.shape
    _, oh, ow = layer.out_shape
    top, left, bottom, right = layer.pads
    sh, sw = layer.stride
    dh, dw = layer.dilation
    mg = m // layer.groups
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)))
    w = layer.weight.astype(np.float64)
    out = np.zeros((x.shape[0], m, oh, ow))
    for oc in range(m):
        g = oc // mg
        for ci in range(cg):
            for ky in range(kh):
                for kx in range(kw):
                    win = xp[:, g * cg + ci, ky * dh : ky * dh + sh * (oh - 1) + 1 : sh,
                             kx * dw : kx * dw + sw * (ow - 1) + 1 : sw]
                    out[:, oc] += w[oc, ci, ky, kx] * win
        out[:, oc] += float(layer.bias[oc])
    return out


CASES = {
    "dense 3x3 pad": dict(c=3, hw=(9, 9), m=8, groups=1, k=(3, 3), pads=(1, 1, 1, 1)),
    "dense 1x1": dict(c=5, hw=(6, 7), m=4, groups=1, k=(1, 1)),
    "groups 2 stride 2 uneven pads": dict(c=4, hw=(8, 7), m=6, groups=2, k=(3, 3), stride=2, pads=(0, 1, 2, 1)),
    "groups 4 2x2 kernel": dict(c=8, hw=(9, 9), m=16, groups=4, k=(2, 2), pads=(0, 0, 1, 1)),
    "depthwise": dict(c=6, hw=(10, 10), m=6, groups=6, k=(3, 3), pads=(1, 1, 1, 1)),
    "depthwise stride 2 dilation 2": dict(c=8, hw=(11, 9), m=8, groups=8, k=(3, 3), stride=2, pads=(1, 1, 1, 1),
                                          dilation=2),
    "depthwise multiplier 2": dict(c=4, hw=(7, 7), m=8, groups=4, k=(3, 3), pads=(1, 1, 1, 1)),
    "depthwise 5x3 kernel": dict(c=5, hw=(9, 8), m=5, groups=5, k=(5, 3), pads=(2, 1, 2, 1)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_conv_matches_loop_implementation(name):
    rng = np.random.default_rng(sorted(CASES).index(name))
    layer = make_conv(rng, **CASES[name])
    x = rng.standard_normal((2,) + layer.in_shape)
    got = float_conv(layer, x)
    want = loop_conv(layer, x)
    assert got.dtype == np.float64 and got.shape == want.shape == (2,) + tuple(layer.out_shape)
    assert np.max(np.abs(got - want)) <= 1e-12 * np.max(np.abs(want))
    # float32 input: same numbers (the reference always computes in float64)
    x32 = x.astype(np.float32)
    assert np.allclose(float_conv(layer, x32), loop_conv(layer, x32), rtol=1e-12, atol=1e-12)


def assert_same_model(a: SensitivityModel, b: SensitivityModel) -> None:
    assert list(a.noise) == list(b.noise)
    assert all(a.noise[k] == b.noise[k] for k in a.noise)  # bit for bit, no tolerance
    assert a.input_noise == b.input_noise
    assert a.signal_power == b.signal_power


def test_parallel_build_identical_on_digits():
    g = load_model(DIGITS)
    calib = np.load(DIGITS_CALIB)[:16]
    weights = {layer.name: layer.weight for layer in g.layers if layer.has_weights}
    serial = SensitivityModel.build(g, calib, BITS)
    parallel = SensitivityModel.build(g, calib, BITS, workers=2)
    assert_same_model(serial, parallel)
    n_weighted = sum(1 for layer in g.layers if layer.kind in ("conv", "dense"))
    assert len(serial.noise) == n_weighted * len(BITS) * 2
    # the build hands the graph back with its own weight arrays
    for layer in g.layers:
        if layer.has_weights:
            assert layer.weight is weights[layer.name] and layer.weight.dtype == np.float32


def test_parallel_build_identical_with_depthwise():
    g = convert(B.mobilenet_block())
    assert g.layer("dw").depthwise
    calib = np.random.default_rng(0).standard_normal((3,) + tuple(g.input_shape))
    serial = SensitivityModel.build(g, calib, (6, 8, 12))
    parallel = SensitivityModel.build(g, calib, (6, 8, 12), workers=3)
    assert_same_model(serial, parallel)
    assert serial.noise[("dw", "w_bits", 6)] > serial.noise[("dw", "w_bits", 12)] > 0


def test_build_workers_default_and_one_are_serial():
    g = convert(B.mobilenet_block())
    calib = np.random.default_rng(1).standard_normal((2,) + tuple(g.input_shape))
    assert_same_model(SensitivityModel.build(g, calib, (8,)), SensitivityModel.build(g, calib, (8,), workers=1))
    assert_same_model(SensitivityModel.build(g, calib, (8,)), SensitivityModel.build(g, calib, (8,), workers=0))


@pytest.mark.parametrize("workers", [1, 2])
def test_build_reports_progress_to_its_total_and_changes_nothing(workers):
    g = convert(B.mobilenet_block())
    calib = np.random.default_rng(2).standard_normal((2,) + tuple(g.input_shape))
    calls = []
    watched = SensitivityModel.build(g, calib, (6, 8), workers=workers, progress=lambda d, t: calls.append((d, t)))
    assert_same_model(watched, SensitivityModel.build(g, calib, (6, 8)))
    totals = {t for _, t in calls}
    assert len(totals) == 1
    total = totals.pop()
    # every quantiser run (widths 6 and 8; the input's 8 bits are among them) and every noise term
    # (the input's, then 2 roles x 2 widths per layer with a precision knob) counted once, in order
    assert total == 2 + 1 + len(watched.noise)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and calls[-1][0] == total
