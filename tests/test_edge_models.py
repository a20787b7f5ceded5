"""Edge networks from examples/models.py (MobileNetV3 small/large, EfficientNet-B0), CI-sized:
8-bit simulation against the float executor, the a10 estimate, and one emulator run each."""
from __future__ import annotations

import numpy as np
import pytest

from cnn2gate.emulate import emulate_project, emulator_available
from cnn2gate.hw import estimate
from cnn2gate.pipeline import compile_project
from cnn2gate.sim import report

_OK, _WHY = emulator_available()
needs_emulator = pytest.mark.skipif(not _OK, reason=f"Intel FPGA emulation runtime unavailable: {_WHY}")

# measured final-output SQNR (dB) is 27.7, 6.3 and 28.3; the floors leave room for calibration changes.
# Random weights: MobileNetV3-Large loses ~1 dB per block at width 0.25, nothing saturates badly.
SQNR_FLOOR = {"mobilenetv3_small": 20.0, "mobilenetv3_large": 3.0, "efficientnet_b0": 20.0}
CONFIG = {"vec_size": 4, "lane_num": 4, "conv_gp_size_x": 3}
TIMEOUT = 240


@pytest.fixture(scope="module")
def edge_model(example_model):
    return example_model


@pytest.mark.parametrize("name", sorted(SQNR_FLOOR))
def test_8bit_simulation_and_a10_estimate(edge_model, name):
    g, fm = edge_model(name)
    x = np.random.default_rng(0).uniform(-1, 1, (4,) + g.input_shape).astype(np.float32)
    rows = report(g, fm, x)
    assert rows[-1]["sqnr_db"] > SQNR_FLOOR[name]
    est = estimate(g, "a10", None, fm)
    assert est.fits and est.total_ms > 0


@needs_emulator
@pytest.mark.emulator
@pytest.mark.parametrize("name", sorted(SQNR_FLOOR))
def test_edge_model_bit_exact(tmp_path, edge_model, name):
    g, fm = edge_model(name)
    out = compile_project(g, fm, "a10", CONFIG, tmp_path / "p")
    res = emulate_project(out, timeout=TIMEOUT)
    assert res.passed, res.summary()
    assert res.elements == int(np.prod(g.output_shape))
