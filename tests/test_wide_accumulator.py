"""The accumulator is as wide as the formats need (docs/fixed-point.md): 32 bits where every
layer's worst case fits int32, else 64, in the quantiser, the simulator and the kernels."""
from __future__ import annotations

import numpy as np
import pytest

from cnn2gate.codegen.interface import KERNEL_ARGS, kernel_args
from cnn2gate.codegen.plan import make_plan
from cnn2gate.codegen.project import array_files, render_context
from cnn2gate.emulate import emulate_project
from cnn2gate.hw import DataWidths, HwConfig, estimate
from cnn2gate.ir import GRAPH_INPUT
from cnn2gate.ir import reference as float_ref
from cnn2gate.pipeline import compile_project
from cnn2gate.quant import Formats, LayerFormat, QFormat, quantize, quantize_params
from cnn2gate.sim import simulate, sqnr_db
from cnn2gate.zoo import Builder
from sim_checks import EMU_CONFIGS, emulator_test
from test_kernel_interface import CFG, every_kernel_graph, mismatches, render


def test_sqnr_does_not_fall_as_bits_rise(example_model):
    """The CI-sized ResNet-18: with the 32-bit rule its 16-bit design lost to the 12-bit one
    (43.1 against 43.9 dB), because the weights gave up fractional bits to keep int32."""
    g, _ = example_model("resnet18")
    x = np.random.default_rng(1).standard_normal((4,) + tuple(g.input_shape))
    ref = float_ref.execute(g, x)[g.output]
    sqnr, acc = {}, {}
    for bits in (8, 12, 16):
        fm = quantize(g, x, bits=bits)
        assert not any("w_frac_reduced_for_accumulator" in lf.stats for lf in fm.layers.values())
        res = simulate(g, fm, x)
        sqnr[bits], acc[bits] = sqnr_db(ref, res.floats[g.output]), res.acc_bits
    assert sqnr[16] >= sqnr[12] >= sqnr[8], sqnr
    assert acc[8] == 32 and acc[16] == 64


def wide_graph():
    """conv, depthwise (with leaky) and dense whose actual sums pass int32 on positive inputs:
    all weights positive, so every product adds."""
    b = Builder("wideacc", (16, 6, 6), seed=5)
    x = b.conv(GRAPH_INPUT, 12, 3, pad=1, act="none")
    y = b.conv(x, 12, 5, pad=2, groups=12, act="leaky")
    b.dense(y, 5, act="none")
    g = b.build()
    for layer in g.layers:
        if layer.has_weights:
            layer.weight = np.abs(layer.weight)
    return g


def wide_inputs(g, n=3):
    return np.random.default_rng(4).uniform(0.5, 1, (n,) + g.input_shape)


def test_generated_sources_follow_the_accumulator():
    g = every_kernel_graph()
    narrow = make_plan(quantize_params(g, quantize(g)), HwConfig(**CFG))
    wide = make_plan(quantize_params(g, quantize(g, bits=16)), HwConfig(**CFG))
    assert (narrow.acc_bits, wide.acc_bits) == (32, 64)
    files32, files64 = render(render_context(narrow, "a10")), render(render_context(wide, "a10"))
    cl32, cl64 = files32["device/cnn2gate.cl"], files64["device/cnn2gate.cl"]
    assert "uint acc[LANE_NUM];" in cl32 and "ulong" not in cl32 and "const int *restrict bias" in cl32
    assert "ulong acc[LANE_NUM];" in cl64 and "ulong acc[VEC_SIZE];" in cl64 and "uint acc[" not in cl64
    assert "const long *restrict bias" in cl64 and "(long)(int)acc" not in cl64
    wide_table = kernel_args(acc_bits=64)
    assert mismatches(files64, wide_table) == [] and mismatches(files64, KERNEL_ARGS)
    assert {k for k in KERNEL_ARGS if KERNEL_ARGS[k] != wide_table[k]} == {"conv_core", "dw_conv"}
    # bias files at the accumulator's width, and the host reads that many bytes
    for plan, width in ((narrow, 4), (wide, 8)):
        files = array_files(plan)
        for lp in plan.layers:
            if "b" in lp.arrays:
                data = files[f"weights/{lp.stem}.b.bin"]
                assert len(data) == lp.arrays["b"].size * width
                assert np.array_equal(np.frombuffer(data, dtype=f"<i{width}"), lp.arrays["b"])
                assert f"L.bias_bytes = {len(data)};" in render(render_context(plan, "a10"))["host/layers.h"]


def test_the_wide_accumulator_is_priced_and_the_narrow_one_costs_nothing():
    g = every_kernel_graph()
    qg16, qg8 = quantize_params(g, quantize(g, bits=16)), quantize_params(g, quantize(g))
    wide = estimate(g, "a10", CFG, qg16)
    as32 = estimate(g, "a10", CFG, DataWidths(16, 16, wide.widths.layer_w_bits, acc_bits=32))
    assert wide.widths.acc_bits == 64
    for kernel in ("conv_core", "dw_conv"):
        w, n = wide.resources.kernels[kernel], as32.resources.kernels[kernel]
        assert w["alm"] > n["alm"] and (w["dsp"], w["ram_blocks"]) == (n["dsp"], n["ram_blocks"])
    narrow = estimate(g, "a10", CFG, qg8)
    assert narrow.widths.acc_bits == 32
    assert narrow.resources == estimate(g, "a10", CFG, DataWidths(8, 8, narrow.widths.layer_w_bits)).resources
    # from bit widths alone (the explorer): 16-bit data is priced wide, 8-bit narrow
    bits = {layer.name: {"w_bits": 16, "a_bits": 16} for layer in g.layers}
    assert estimate(g, "a10", CFG, bits).widths.acc_bits == 64
    bits8 = {name: {"w_bits": 8, "a_bits": 8} for name in bits}
    assert estimate(g, "a10", CFG, bits8).widths.acc_bits == 32


@emulator_test
@EMU_CONFIGS
def test_64_bit_accumulator_bit_exact_in_the_emulator(tmp_path, cfg):
    g = wide_graph()
    x = wide_inputs(g)
    fm = quantize(g, x, bits=16)
    res = simulate(g, fm, x)
    assert res.acc_bits == 64
    # every multiply-accumulate layer really leaves int32: a 32-bit kernel would fail here
    assert all(res.stats[layer.name]["acc_bits"] > 31 for layer in g.layers if layer.has_weights)
    out = compile_project(g, fm, "a10", cfg, tmp_path / "p")
    assert "ulong acc[LANE_NUM];" in (out / "device" / "cnn2gate.cl").read_text()
    emu = emulate_project(out, x, timeout=240, dump_dir=tmp_path / "dump")
    assert emu.passed, emu.summary()
    assert not any(emu.layer_mismatches.values())


@pytest.mark.parametrize("path", ["fast", "reference"])
def test_sums_past_2_to_the_52_stay_exact(path):
    """A bias near 2^62 makes the worst case pass what float64 holds exactly: the fast path
    runs that layer on int64. acc = 2^62 + 2^47 - 1 lies just below a rounding tie of the
    shift by 48; in float64 it would become the tie and round up."""
    b = Builder("big", (4, 1, 1), seed=0)
    name = b.dense(GRAPH_INPUT, 1, act="none")
    g = b.build()
    g.layer(name).weight = np.array([[1.0, 1.0, 1.0, 1.0]])
    g.layer(name).bias = np.array([2.0**62 + 2.0**47])
    fm = Formats(QFormat(16, 0), {name: LayerFormat(QFormat(16, -48), QFormat(16, 0))})
    x = np.array([-1.0, 0.0, 0.0, 0.0]).reshape(1, 4, 1, 1)
    acc = (1 << 62) + (1 << 47) - 1
    res = simulate(g, fm, x, path=path)
    assert int(res.output_int.ravel()[0]) == ((acc >> 47) + 1) >> 1 == 1 << 14
    assert res.stats[name]["acc_bits"] == 63 and res.acc_bits == 64
