"""Activation buffers kept at 8 bits in a 16-bit design (cnn2gate/hw/storage.py).

A design with one 16-bit layer has data_t `short`; its conv -> conv tensors of at most
8 bits stay `char` in external memory where mem_write is their only writer and mem_read
their only reader. The plan, the cost model and the generated project agree on which.
"""
from __future__ import annotations

import numpy as np

from cnn2gate.codegen.interface import kernel_args
from cnn2gate.codegen.plan import make_plan
from cnn2gate.emulate import emulate_project
from cnn2gate.hw.config import HwConfig
from cnn2gate.hw.estimate import estimate
from cnn2gate.ir import GRAPH_INPUT
from cnn2gate.pipeline import compile_project
from cnn2gate.quant import Formats, quantize, quantize_params, validate
from cnn2gate.zoo import Builder
from sim_checks import EMU_CONFIGS, emulator_test
from test_kernel_interface import device_signatures, host_chains

CFG = {"vec_size": 4, "lane_num": 4, "conv_gp_size_x": 3}


def mixed_graph():
    """conv -> conv and conv -> 1x1 conv into one concat read by a conv (all 8-bit), then a
    pool and two dense layers, the first at 16 bits (so data_t is short)."""
    b = Builder("chars", (5, 9, 9), seed=4)
    x = b.conv(GRAPH_INPUT, 8, 3, act="relu")
    y = b.conv(x, 8, 3, act="relu")
    z = b.conv(x, 4, 1, act="relu")
    u = b.conv(b.concat(y, z), 12, 3, stride=2, act="relu")
    d = b.dense(b.pool(u, "max", 2), 10, act="relu")
    b.dense(d, 4)
    return b.build()


def formats(g, wide=("dense6",)):
    """8-bit formats with the layers in `wide` at 16 bits (weights and output)."""
    f8, f16 = quantize(g), quantize(g, bits=16)
    layers = {n: (f16 if n in wide else f8).layers[n] for n in f8.layers}
    fm = Formats(f8.input, layers, dict(f8.stats))
    validate(fm, g, "mixed widths")
    return fm


def narrow_buffers(plan):
    return sorted(b.name for b in plan.buffers if b.narrow)


def test_only_chain_to_chain_buffers_are_char():
    g = mixed_graph()
    plan = make_plan(quantize_params(g, formats(g)), HwConfig(**CFG))
    assert plan.data_bits == 16
    # the input (host-written), conv4's output (read by pool) and dense6's (16-bit) stay short;
    # the graph output is written by mem_write and read back by the host, which converts
    assert narrow_buffers(plan) == ["L000_conv0", "L003_concat3", "L007_dense7"]
    flags = {lp.stem: (lp.args["rd_narrow"], lp.args["wr_narrow"]) for lp in plan.layers}
    assert flags["L000_conv0"] == (0, 1) and flags["L001_conv1"] == (1, 1) and flags["L002_conv2"] == (1, 1)
    assert flags["L004_conv4"] == (1, 0) and flags["L006_dense6"] == (0, 0) and flags["L007_dense7"] == (0, 1)


def test_a_wide_tensor_in_a_buffer_keeps_it_short():
    """The concat's inputs (tied to its format) at 16 bits: that buffer stays short, conv0's does not."""
    g = mixed_graph()
    plan = make_plan(quantize_params(g, formats(g, wide=("conv1", "conv2", "concat3", "dense6"))), HwConfig(**CFG))
    assert narrow_buffers(plan) == ["L000_conv0", "L007_dense7"]


def test_uniform_designs_have_no_narrow_code(tmp_path):
    g = mixed_graph()
    for fm in (quantize(g), quantize(g, bits=16)):
        assert not make_plan(quantize_params(g, fm), HwConfig(**CFG)).narrow_act
    out = compile_project(g, quantize(g, bits=16), "a10", CFG, tmp_path / "p")
    assert "narrow" not in (out / "device" / "cnn2gate.cl").read_text()
    assert "narrow" not in (out / "host" / "main.cpp").read_text()


def test_kernels_follow_the_narrow_table(tmp_path):
    g = mixed_graph()
    out = compile_project(g, formats(g), "a10", CFG, tmp_path / "p")
    files = {f: (out / f).read_text() for f in ("device/cnn2gate.cl", "host/main.cpp")}
    table = kernel_args(packed_weights=True, narrow_act=True)
    assert table["mem_read"][-1].name == "in_narrow" and table["mem_write"][-1].name == "out_narrow"
    sigs, chains = device_signatures(files["device/cnn2gate.cl"]), host_chains(files["host/main.cpp"])
    for kernel in ("mem_read", "conv_core", "mem_write"):
        assert sigs[kernel] == [(a.name, a.cl_type) for a in table[kernel]], kernel
        assert chains[kernel] == [(a.kind, a.host) for a in table[kernel]], kernel
    assert sigs["mem_read"] != [(a.name, a.cl_type) for a in kernel_args(packed_weights=True)["mem_read"]]


def test_cost_model_prices_the_char_buffers():
    """conv1 reads and writes char: its traffic is that of the all-8-bit design; the
    footprint shrinks by one byte per element of the two char buffers."""
    g = mixed_graph()
    mixed, uniform = estimate(g, "a10", CFG, formats=formats(g)), estimate(g, "a10", CFG, formats=quantize(g))
    short = estimate(g, "a10", CFG, formats=quantize(g, bits=16))
    by = {e: {layer.name: layer.bytes for layer in est.layers} for e, est in
          (("mixed", mixed), ("uniform", uniform), ("short", short))}
    assert by["mixed"]["conv1"] == by["uniform"]["conv1"] < by["short"]["conv1"]
    assert by["mixed"]["pool5"] == by["short"]["pool5"]  # pool keeps data_t
    char_elems = 8 * 9 * 9 + 12 * 9 * 9 + 4  # conv0's, the concat's and the output's buffers (V = 4)
    assert short.memory.feature_bytes - mixed.memory.feature_bytes == char_elems
    # a second, char-typed access at mem_read's and mem_write's whole-vector sites
    assert mixed.resources.kernels["mem_read"]["alm"] > short.resources.kernels["mem_read"]["alm"]


@emulator_test
@EMU_CONFIGS
def test_char_buffers_bit_exact_in_the_emulator(tmp_path, cfg):
    """fc_batch 4 over 5 images (a partial last group): slots of char buffers, the concat view
    and every layer's dump read back from char storage."""
    g = mixed_graph()
    out = compile_project(g, formats(g), "a10", dict(cfg, fc_batch=4), tmp_path / "p")
    h = (out / "host" / "layers.h").read_text()
    assert "typedef short data_t;" in (out / "device" / "cnn2gate.cl").read_text()
    assert "L.rd_narrow = 1; L.wr_narrow = 1;" in h
    x = np.random.default_rng(3).uniform(-1, 1, (5,) + g.input_shape)
    res = emulate_project(out, x, timeout=240, dump_dir=tmp_path / "dump")
    assert res.passed, res.summary()
    assert res.images == 5
    assert len(res.layer_mismatches) == len(g.layers) and not any(res.layer_mismatches.values())
