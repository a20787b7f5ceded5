"""Narrow-weight mode: a 16-bit datapath whose conv_core weights are all <= 8 bits keeps them
as `char` (weight_t, cnn2gate/hw/widths.py) in mem_read's weight buffer, the weight channel
and the multipliers. One rule decides it for the plan, the templates and the cost model;
the generated design is bit-exact in the emulator, and a broken weight conversion is caught.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from cnn2gate.codegen import make_plan
from cnn2gate.codegen.project import render_context
from cnn2gate.codegen.render import render_all
from cnn2gate.hw import HwConfig, estimate, lower
from cnn2gate.hw.arch import GENERATED
from cnn2gate.hw.boards import load_board
from cnn2gate.hw.resources import ALM_PER_MAC, ResourceContext, ram_blocks_for
from cnn2gate.ops.lowering import buffer_sizes
from cnn2gate.hw.widths import DataWidths, chain_layers, weight_type_bits
from cnn2gate.ir import GRAPH_INPUT
from cnn2gate.pipeline import compile_project
from cnn2gate.quant import quantize, quantize_params, with_weight_bits
from cnn2gate.zoo import Builder
from sim_checks import EMU_CONFIGS, emulator_test

CFG = {"vec_size": 4, "lane_num": 4, "conv_gp_size_x": 3}


def chain_graph():
    """conv -> grouped conv -> 1x1 conv -> pool -> dense -> dense: every conv_core shape."""
    b = Builder("narrow_w", (6, 9, 9), seed=11)
    x = b.conv(GRAPH_INPUT, 8, 3, act="relu")
    y = b.conv(x, 10, 3, groups=2, act="leaky")
    z = b.conv(y, 7, 1, act="relu")
    d = b.dense(b.pool(z, "max", 2), 9, act="relu")
    b.dense(d, 5)
    return b.build()


def weight_layers(g):
    return [layer.name for layer in g.layers if layer.has_weights]


def mixed_formats(g, x, a_bits=12, widths=(8, 4, 6, 8, 5)):
    """Activations at a_bits, each weight layer at its own width of at most 8 bits."""
    names = weight_layers(g)
    per_layer = {n: widths[i % len(widths)] for i, n in enumerate(names)}
    return with_weight_bits(g, quantize(g, x, bits=a_bits), per_layer, x)


def _cl(plan) -> str:
    return render_all(render_context(plan, "a10"))["device/cnn2gate.cl"].decode()


def test_weight_type_rule():
    chain = ["c0", "d1"]
    assert DataWidths(8, 8).weight_type_bits(chain) == 8  # a char design: weight_t is data_t
    assert DataWidths(8, 12).weight_type_bits(chain) == 8  # the narrow-weight mode
    assert DataWidths(16, 12, (("c0", 8), ("d1", 4))).weight_type_bits(chain) == 8  # only the chain counts
    assert DataWidths(12, 12, (("c0", 8), ("d1", 9))).weight_type_bits(chain) == 16
    assert DataWidths(8, 12).weight_type_bits([]) == 16  # nothing on conv_core


def test_plan_estimate_and_source_agree():
    """weight_t: the plan, the estimate and the rendered source take one decision; the priced
    weight buffers and weight channel are exactly the declared memories at weight_t's width."""
    g = chain_graph()
    x = np.random.default_rng(1).uniform(-1, 1, (2,) + g.input_shape)
    cfg = HwConfig(**CFG)
    v, lanes = cfg.vec_size, cfg.lane_num
    wide = quantize(g, x, bits=12)  # every weight at 12 bits: no narrow mode
    narrow = mixed_formats(g, x)
    w16 = with_weight_bits(g, narrow, {weight_layers(g)[0]: 16}, x)  # one 16-bit chain weight
    packed = with_weight_bits(g, quantize(g, x), {n: 4 for n in weight_layers(g)}, x)  # DSP packing, char data
    res = {}
    for name, fm, want in (("wide", wide, 16), ("narrow", narrow, 8), ("w16", w16, 16), ("char", quantize(g, x), 8),
                           ("packed", packed, 8)):
        plan = make_plan(quantize_params(g, fm), cfg)
        est = estimate(g, "a10", cfg, fm)
        assert plan.weight_type_bits == weight_type_bits(est.widths, lower(g)) == want, name
        assert est.resources.dsp_packing.get("weight_bits", 8 * est.widths.data_bytes) == want, name
        cl = _cl(plan)
        m = re.search(r"typedef (\w+) weight_t;", cl)
        assert (m is not None) == (name == "narrow"), name  # only the narrow mode renders weight_t
        if m:
            assert m.group(1) == "char" and "typedef short data_t;" in cl
            assert "(weight_t)unpack_weight(" in cl and "weight_t v[VEC_SIZE]; } wlane_t;" in cl
        assert (plan.dsp_pack is not None) == (name == "packed") == ("pair_dot" in cl), name
        res[name] = (est.resources, int(re.search(r"#define WEIGHT_BUF_SIZE (\d+)", cl).group(1)))
    (r_wide, depth), (r_narrow, depth_n) = res["wide"], res["narrow"]
    assert depth == depth_n
    rb = 20480  # a10: M20K
    saved = lanes * (ram_blocks_for(v * 16, depth, rb) - ram_blocks_for(v * 8, depth, rb))
    assert r_wide.kernels["mem_read"]["ram_blocks"] - r_narrow.kernels["mem_read"]["ram_blocks"] == saved > 0
    fifo = ram_blocks_for(lanes * v * 16, 64, rb) - ram_blocks_for(lanes * v * 8, 64, rb)
    assert r_wide.kernels["channels"]["ram_blocks"] - r_narrow.kernels["channels"]["ram_blocks"] == fifo > 0
    # a 16x8 multiply takes the DSP a 16x16 one does (boards/*.toml)
    assert r_wide.kernels["conv_core"]["dsp"] == r_narrow.kernels["conv_core"]["dsp"]
    for kernel in ("mem_read", "channels"):  # one 16-bit chain weight: 16-bit buffers again
        assert res["w16"][0].kernels[kernel] == r_wide.kernels[kernel]


def test_adder_tree_follows_the_product_width():
    """conv_core's multiply-accumulate ALMs scale with the product's width: 16x8 at 3/4 of 16x16."""
    cfg = HwConfig(**CFG)
    board = load_board("a10")
    buffers = buffer_sizes(lower(chain_graph()), cfg, GENERATED)
    alm = {wb: ResourceContext(cfg, DataWidths(8, 12), board, GENERATED, buffers, weight_bits=wb).mac_array(4, 4)
           for wb in (8, 16)}
    assert alm[8][0] == alm[16][0]  # the same DSP blocks
    assert alm[8][1] == ALM_PER_MAC * 1.5 * 16 and alm[16][1] == ALM_PER_MAC * 2 * 16


def test_chain_layers_are_the_conv_core_layers():
    g = chain_graph()
    assert chain_layers(lower(g)) == weight_layers(g)


@pytest.fixture(scope="module")
def batch():
    g = chain_graph()
    # -1 everywhere first: the widest products of the first layer
    x = np.concatenate([np.full((1,) + g.input_shape, -1.0),
                        np.random.default_rng(7).uniform(-1, 1, (4,) + g.input_shape)])
    return g, x


@emulator_test
@EMU_CONFIGS
def test_narrow_weights_bit_exact_in_the_emulator(tmp_path, cfg, batch):
    """16-bit activations, weights at 4-8 bits: conv, grouped conv, 1x1 conv and dense layers
    with fc_batch 4 over 5 images (a partial last batch), every layer dumped and compared."""
    from cnn2gate.emulate import emulate_project

    g, x = batch
    fm = mixed_formats(g, x)
    qg = quantize_params(g, fm)
    w8 = [n for n in weight_layers(g) if fm.layers[n].weight.bits == 8]
    assert w8 and any(qg[n].weight.min() < -64 or qg[n].weight.max() > 63 for n in w8)  # 8 bits in use
    out = compile_project(g, fm, "a10", dict(cfg, fc_batch=4), tmp_path / "p")
    cl = (out / "device" / "cnn2gate.cl").read_text()
    assert "typedef short data_t;" in cl and "typedef char weight_t;" in cl
    assert "constexpr int kFcBatch = 4;" in (out / "host" / "layers.h").read_text()
    res = emulate_project(out, x, timeout=240, dump_dir=tmp_path / "dump")
    assert res.passed, res.summary()
    assert res.images == 5
    assert len(res.layer_mismatches) == len(g.layers) and not any(res.layer_mismatches.values())


@emulator_test
def test_broken_weight_conversion_is_caught(tmp_path, batch):
    """weight_t made unsigned by hand: negative weights turn into large positive ones, and the
    emulated design must fail against the simulator."""
    from cnn2gate.emulate import emulate_project

    g, x = batch
    out = compile_project(g, mixed_formats(g, x), "a10", CFG, tmp_path / "p")
    path = out / "device" / "cnn2gate.cl"
    src = path.read_text()
    assert src.count("typedef char weight_t;") == 1
    path.write_text(src.replace("typedef char weight_t;", "typedef uchar weight_t;"))
    res = emulate_project(out, x[:2], timeout=240, dump_dir=tmp_path / "dump")
    assert not res.passed
    assert any(res.layer_mismatches.values())


@emulator_test
def test_with_char_activation_buffers_bit_exact(tmp_path, batch):
    """Both narrowings at once: 8-bit weights everywhere, and 8-bit activations in the conv
    layers (their buffers stored as char, hw/storage.py) with one 12-bit dense layer."""
    from cnn2gate.emulate import emulate_project
    from cnn2gate.quant import Formats, validate

    g, x = batch
    f8, f12 = quantize(g, x), quantize(g, x, bits=12)
    wide = weight_layers(g)[-2]  # the first dense layer: its output makes data_t short
    fm = Formats(f8.input, {n: (f12 if n == wide else f8).layers[n] for n in f8.layers}, dict(f8.stats))
    validate(fm, g, "mixed widths")
    fm = with_weight_bits(g, fm, {n: 8 for n in weight_layers(g)}, x)
    plan = make_plan(quantize_params(g, fm), HwConfig(**CFG))
    assert plan.data_bits == 16 and plan.weight_type_bits == 8 and plan.narrow_act
    out = compile_project(g, fm, "a10", CFG, tmp_path / "p")
    assert "typedef char weight_t;" in (out / "device" / "cnn2gate.cl").read_text()
    res = emulate_project(out, x, timeout=240, dump_dir=tmp_path / "dump")
    assert res.passed, res.summary()
    assert not any(res.layer_mismatches.values()), res.layer_mismatches
