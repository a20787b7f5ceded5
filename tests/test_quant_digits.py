"""Accuracy target on the digits CNN: 8-bit calibrated loses at most 0.5 % against float."""
from pathlib import Path

import numpy as np
import pytest

from cnn2gate.ir.reference import predict
from cnn2gate.quant import quantize
from cnn2gate.sim import simulate

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"
FILES = ["digits_cnn.onnx", "test_x.npy", "test_y.npy", "calib_x.npy"]


@pytest.fixture(scope="module")
def digits():
    missing = [f for f in FILES if not (DIGITS / f).exists()]
    if missing:
        pytest.skip(f"examples/digits lacks {', '.join(missing)}")
    from cnn2gate.frontend import load_model

    graph = load_model(str(DIGITS / "digits_cnn.onnx"))
    return graph, *(np.load(DIGITS / f) for f in FILES[1:])


@pytest.mark.parametrize("bits,max_loss", [(8, 0.005), (6, 0.02)])
def test_accuracy_loss(digits, bits, max_loss):
    graph, tx, ty, cx = digits
    float_acc = float((predict(graph, tx).argmax(-1) == ty).mean())
    fm = quantize(graph, cx, bits=bits, method="mse")
    res = simulate(graph, fm, tx)
    q_acc = float((res.output_float.argmax(-1) == ty).mean())
    assert float_acc - q_acc <= max_loss, (float_acc, q_acc)
    assert not res.warnings


def test_paths_agree_on_real_data(digits):
    graph, tx, _, cx = digits
    fm = quantize(graph, cx, bits=8)
    a = simulate(graph, fm, tx[:64], path="fast")
    b = simulate(graph, fm, tx[:64], path="reference")
    for name in a.ints:
        np.testing.assert_array_equal(a.ints[name], b.ints[name])
