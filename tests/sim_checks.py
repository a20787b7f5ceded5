"""Helpers the operator tests share: exact integer inputs, the two simulator paths
compared layer by layer, and the emulator's skip marker and configs."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import strategies as st

from cnn2gate.emulate import emulator_available
from cnn2gate.quant.params import quantize_params
from cnn2gate.sim import simulate

_OK, _WHY = emulator_available()
#: an emulator test: marked, and skipped with the reason when the runtime is missing
needs_emulator = [pytest.mark.emulator,
                  pytest.mark.skipif(not _OK, reason=f"Intel FPGA emulation runtime unavailable: {_WHY}")]
#: two configs per emulated model: one where every channel count is padded (3 lanes, 8-wide vectors)
EMU_CONFIGS = pytest.mark.parametrize("cfg", [{"vec_size": 4, "lane_num": 4, "conv_gp_size_x": 3},
                                              {"vec_size": 8, "lane_num": 3, "conv_gp_size_x": 5}],
                                      ids=["v4l4", "v8l3"])


def emulator_test(fn):
    for mark in needs_emulator:
        fn = mark(fn)
    return fn


def integer_batch(draw, fmt, chw) -> np.ndarray:
    """A batch of 1 or 2 inputs whose values are exactly representable in `fmt`."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    xq = rng.integers(fmt.lo, fmt.hi + 1, size=(draw(st.integers(1, 2)),) + tuple(chw))
    return np.ldexp(xq.astype(np.float64), -fmt.frac)


def paths_agree(graph, formats, x, *, stats: bool = False):
    """Assert the fast path equals the int64 reference on every layer; (quantized graph, reference run)."""
    qg = quantize_params(graph, formats)
    ref = simulate(graph, qg, x, path="reference")
    got = simulate(graph, quantize_params(graph, formats), x, path="fast")
    for layer in graph.layers:
        np.testing.assert_array_equal(got.ints[layer.name], ref.ints[layer.name], err_msg=layer.name)
        if stats:
            assert got.stats[layer.name] == ref.stats[layer.name], layer.name
    return qg, ref
