"""The trained digits model with squeeze-excitation, SiLU and hard-swish (examples/digits/digits_se.onnx):
accuracy in float, in the 8-bit simulator and through the emulated kernels.

Uses the committed files only; examples/digits/train_se.py is never run here."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnn2gate.emulate import emulate_project, emulator_available
from cnn2gate.ir.reference import predict
from cnn2gate.pipeline import compile_project
from cnn2gate.quant import quantize
from cnn2gate.sim import simulate

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"
FILES = ["digits_se.onnx", "test_x.npy", "test_y.npy", "calib_x.npy"]
# measured: 97.78 % float, 98.06 % 8-bit simulated and emulated (360 images); the floor leaves room
# for a retrained file on another machine
FLOAT_FLOOR = 0.95
MAX_8BIT_GAP = 0.02
EMULATED_IMAGES = 60
CONFIG = {"vec_size": 4, "lane_num": 4, "conv_gp_size_x": 3}
TIMEOUT = 240
_OK, _WHY = emulator_available()
needs_emulator = pytest.mark.skipif(not _OK, reason=f"Intel FPGA emulation runtime unavailable: {_WHY}")


@pytest.fixture(scope="module")
def digits_se():
    missing = [f for f in FILES if not (DIGITS / f).exists()]
    if missing:
        pytest.skip(f"examples/digits lacks {', '.join(missing)}")
    from cnn2gate.frontend import load_model

    graph = load_model(str(DIGITS / "digits_se.onnx"))
    tx, ty, cx = (np.load(DIGITS / f) for f in FILES[1:])
    return graph, tx, ty, cx, quantize(graph, cx, bits=8)


def test_parses_with_se_silu_and_hardswish(digits_se):
    graph = digits_se[0]
    fns = sorted(layer.fn for layer in graph.layers if layer.kind == "act")
    assert fns == ["hardsigmoid", "hardswish", "silu", "silu"]
    gates = [layer for layer in graph.layers if layer.kind == "mul"]
    assert len(gates) == 1 and gates[0].per_channel
    assert graph.output_shape == (10,)


def test_float_and_8bit_accuracy(digits_se):
    graph, tx, ty, _, fm = digits_se
    float_acc = float((predict(graph, tx).argmax(-1) == ty).mean())
    res = simulate(graph, fm, tx)
    q_acc = float((res.output_float.argmax(-1) == ty).mean())
    print(f"digits_se: float {float_acc:.2%}, 8-bit simulated {q_acc:.2%} on {len(ty)} images")
    assert float_acc >= FLOAT_FLOOR
    assert abs(float_acc - q_acc) <= MAX_8BIT_GAP, (float_acc, q_acc)
    assert not res.warnings


@needs_emulator
@pytest.mark.emulator
def test_emulated_kernels_bit_exact_and_accurate(tmp_path, digits_se):
    graph, tx, ty, _, fm = digits_se
    x, y = tx[:EMULATED_IMAGES], ty[:EMULATED_IMAGES]
    out = compile_project(graph, fm, "a10", CONFIG, tmp_path / "p")
    res = emulate_project(out, x, timeout=TIMEOUT)
    assert res.passed, res.summary()
    assert res.elements == len(x) * 10
    acc = float(np.mean(res.outputs.reshape(len(x), 10).argmax(axis=1) == y))
    print(f"digits_se: emulated top-1 {acc:.2%} on {len(x)} images")
    assert acc >= FLOAT_FLOOR
