"""DSP packing: two narrow-weight products per multiplier in conv_core (hw/packing.py).

The split of a packed sum is exact over the whole value range (checked here at the
extremes, and shown tight), the resource model prices the packing from the per-layer
weight widths, every board cites its packing figure, and a packed design runs bit-exact
in the emulator.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from cnn2gate.errors import ConfigError
from cnn2gate.hw import estimate, list_boards, load_board, lower
from cnn2gate.hw.packing import PORT_BITS, plan_packing, shift_for
from cnn2gate.ir import GRAPH_INPUT
from cnn2gate.paths import boards_dir
from cnn2gate.pipeline import compile_project
from cnn2gate.quant import quantize, quantize_params, with_weight_bits
from cnn2gate.zoo import NETS, Builder
from sim_checks import EMU_CONFIGS, emulator_test


def split(p: int, k: int) -> tuple[int, int]:
    """The kernel's split (templates/device/conv.cl.j2 pair_dot), in 32-bit arithmetic."""
    bias = (1 << (k - 1)) - 1
    u = p + bias
    assert -(1 << 31) <= u < (1 << 31)  # the kernel's int does not overflow
    return ((u & ((1 << k) - 1)) - bias, u >> k)


def packed_sum(a, w1, w2, k: int) -> int:
    return sum(int(x) * (int(y) + int(z) * (1 << k)) for x, y, z in zip(a, w1, w2))


def extremes(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


@pytest.mark.parametrize("a_bits", [2, 5, 8])
@pytest.mark.parametrize("w_bits", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("group", [1, 2, 4, 8])
def test_split_is_exact_over_the_range(a_bits, w_bits, group):
    k = shift_for(a_bits, w_bits, group)
    if w_bits + k > PORT_BITS:
        pytest.skip("does not fit an 18-bit port")
    alo, ahi = extremes(a_bits)
    wlo, whi = extremes(w_bits)
    rng = np.random.default_rng(a_bits * 100 + w_bits * 10 + group)
    cases = [(np.full(group, a), np.full(group, w1), np.full(group, w2))
             for a in (alo, ahi) for w1 in (wlo, whi, 0) for w2 in (wlo, whi, 0)]
    cases += [(rng.integers(alo, ahi + 1, group), rng.integers(wlo, whi + 1, group), rng.integers(wlo, whi + 1, group))
              for _ in range(200)]
    for a, w1, w2 in cases:
        lo, hi = split(packed_sum(a, w1, w2, k), k)
        assert (lo, hi) == (int(np.dot(a, w1)), int(np.dot(a, w2))), (a, w1, w2)


def test_shift_is_tight():
    """One bit less and the most negative a times the most negative weight breaks the split."""
    a_bits, w_bits, group = 8, 4, 8
    k = shift_for(a_bits, w_bits, group) - 1
    a, w = np.full(group, -128), np.full(group, -8)
    assert split(packed_sum(a, w, w, k), k) != (int(np.dot(a, w)), int(np.dot(a, w)))


def test_packing_rule():
    assert plan_packing(8, 4, 16, 32, 8).group == 8  # shift 14: 4 + 14 = 18 bits
    assert plan_packing(8, 5, 16, 32, 8).group == 2
    assert (plan_packing(8, 5, 4, 4, 8).shift, plan_packing(8, 5, 4, 4, 8).group) == (13, 2)
    assert plan_packing(8, 2, 64, 8, 8).group == 64
    assert plan_packing(8, 6, 16, 32, 8) is None  # 6 + 13 = 19 bits at one product per split
    assert plan_packing(6, 6, 1, 2, 8).packed_bits == 17  # narrower activations leave room
    assert plan_packing(8, 4, 16, 1, 8) is None  # one lane: nothing to pair
    assert plan_packing(12, 4, 16, 32, 16) is None  # short datapath


def _chain(graph):
    return [k.name for k in lower(graph).layers if "conv_core" in k.op.kernels]


def _bits(graph, w_bits, **override):
    return {n: {"w_bits": override.get(n, w_bits), "a_bits": 8} for n in _chain(graph)}


def test_resources_follow_the_weight_widths():
    g = NETS["alexnet"]()
    cfg = {"vec_size": 16, "lane_num": 32, "conv_gp_size_x": 7}
    core = {}
    for name, bits in {"8": _bits(g, 8), "6": _bits(g, 6), "4": _bits(g, 4), "2": _bits(g, 2),
                       "4+one 8": _bits(g, 4, **{_chain(g)[-1]: 8})}.items():
        est = estimate(g, "a10", cfg, bits)
        core[name] = est.resources.kernels["conv_core"]
        assert est.to_dict()["dsp_packing"]["mode"] == ("pair" if name in ("4", "2") else "none")
    assert core["8"]["dsp"] == 16 * 32 // 2  # two 8x8 products per Arria 10 block (PipeCNN #56)
    assert core["4"]["dsp"] == core["2"]["dsp"] == 16 * 32 // 4  # four packed products per block
    assert core["6"]["dsp"] == core["4+one 8"]["dsp"] == core["8"]["dsp"]  # one wide layer: no packing
    assert core["4"]["alm"] < core["8"]["alm"] and core["2"]["alm"] < core["4"]["alm"]
    # Cyclone V: one product per block unpacked, two packed; an odd lane stays unpacked
    de1 = {b: estimate(g, "de1soc", {"vec_size": 8, "lane_num": 3, "conv_gp_size_x": 7}, _bits(g, b))
           for b in (8, 3)}
    assert de1[8].resources.kernels["conv_core"]["dsp"] == 24
    assert de1[3].resources.kernels["conv_core"]["dsp"] == 8 + 8  # one pair (16 products / 2) + one lane


def test_estimate_says_whether_the_figure_is_an_estimate():
    g = NETS["alexnet"]()
    packed = estimate(g, "a10", None, _bits(g, 4)).to_dict()["dsp_packing"]
    plain = estimate(g, "a10", None, _bits(g, 8)).to_dict()["dsp_packing"]
    assert packed["figure"] == "pair_products_per_dsp" and packed["estimate"] is True
    assert packed["products_per_dsp"] == 4 and packed["shift"] + packed["w_bits"] <= PORT_BITS
    assert plain["figure"] == "dot_mults_per_dsp" and plain["estimate"] is False  # PipeCNN #56, measured
    from cnn2gate.commands.estimate import _packing_line

    line = _packing_line(estimate(g, "a10", None, _bits(g, 4)).resources.dsp_packing)
    assert "two products per 18-bit multiplier" in line and "estimate" in line


@pytest.mark.parametrize("name", list_boards())
def test_every_board_cites_its_dsp_figures(name):
    b = load_board(name)
    assert b.pair_packing() >= b.dot_packing(8)
    assert b.sources["pair_products_per_dsp"].startswith("estimate")  # no packed design synthesised yet
    for key in ("mults_per_dsp", "dot_mults_per_dsp", "pair_products_per_dsp"):
        assert "recalled" not in b.sources[key], key
    assert re.search(r"6\d{5}|PipeCNN", b.sources["mults_per_dsp"] + b.sources["pair_products_per_dsp"])
    assert b.to_dict()["pair_products_per_dsp"] == b.pair_packing()


def test_packing_figure_needs_a_citation(tmp_path):
    text = (boards_dir() / "a10.toml").read_text()
    path = tmp_path / "nocite.toml"
    path.write_text(re.sub(r'^pair_products_per_dsp = ".*"\n', "", text, flags=re.M))
    with pytest.raises(ConfigError, match=r"nocite.toml.*sources.pair_products_per_dsp"):
        load_board(str(path))
    path.write_text(text.replace("pair_products_per_dsp = 4", "pair_products_per_dsp = 0"))
    with pytest.raises(ConfigError, match="'pair_products_per_dsp'"):
        load_board(str(path))


def narrow_graph(w_bits: int):
    """conv0's weights are all -1 or 1 - 2^(1-w_bits) (at w_bits the most negative and most
    positive weight), so an input of -1 drives every packed sum to the ends of its range."""
    b = Builder("narrow", (8, 7, 7), seed=5)
    w = np.full((6, 8, 3, 3), -1.0, dtype=np.float32)
    w[1::2] = 1.0 - 2.0 ** (1 - w_bits)
    x = b.conv(GRAPH_INPUT, 6, 3, act="none", weight=w, bias=np.zeros(6, dtype=np.float32))
    y = b.conv(x, 10, 3, groups=2, act="relu")
    z = b.conv(y, 7, 1, act="leaky")
    b.dense(b.pool(z, "max", 2), 5)
    return b.build()


@pytest.mark.parametrize("w_bits, cfg", [(4, {"vec_size": 8, "lane_num": 4}), (5, {"vec_size": 8, "lane_num": 3}),
                                         (6, {"vec_size": 4, "lane_num": 4})])
def test_compile_packs_as_the_estimate_prices(w_bits, cfg):
    """The generated design and the cost model take one decision (no emulator needed)."""
    from cnn2gate.codegen import make_plan
    from cnn2gate.hw import load_config

    g = narrow_graph(w_bits)
    x = np.random.default_rng(3).uniform(-1, 1, (2,) + g.input_shape)
    fm = with_weight_bits(g, quantize(g, x), {n: w_bits for n in _chain(g)}, x)
    plan = make_plan(quantize_params(g, fm), load_config(dict(cfg, conv_gp_size_x=3), load_board("a10")))
    facts = estimate(g, "a10", dict(cfg, conv_gp_size_x=3), fm).resources.dsp_packing
    if w_bits == 6:
        assert plan.dsp_pack is None and facts["mode"] == "none"
    else:
        assert facts["mode"] == "pair" and plan.dsp_pack.to_dict() == {
            k: facts[k] for k in ("w_bits", "a_bits", "shift", "group", "packed_bits")}


@emulator_test
@EMU_CONFIGS
def test_packed_design_bit_exact_in_the_emulator(tmp_path, cfg):
    """v4l4: 4-bit weights, one split per V-vector; v8l3: 5-bit weights, a split every two
    products and an unpacked odd lane."""
    from cnn2gate.emulate import emulate_project

    w_bits = 4 if cfg["vec_size"] == 4 else 5
    g = narrow_graph(w_bits)
    x = np.concatenate([np.full((1,) + g.input_shape, -1.0),
                        np.random.default_rng(8).uniform(-1, 1, (2,) + g.input_shape)])
    fm = with_weight_bits(g, quantize(g, x), {n: w_bits for n in _chain(g)}, x)
    qg = quantize_params(g, fm)
    lo, hi = extremes(w_bits)
    assert qg["conv0"].weight.min() == lo and qg["conv0"].weight.max() == hi
    assert fm.input.frac == 7  # -1.0 is the most negative input, -128
    out = compile_project(g, fm, "a10", cfg, tmp_path / "p")
    cl = (out / "device" / "cnn2gate.cl").read_text()
    want = plan_packing(8, w_bits, cfg["vec_size"], cfg["lane_num"], 8)
    assert f"#define PACK_SHIFT {want.shift}" in cl and f"#define PACK_GROUP {want.group}" in cl
    assert want.group == (4 if w_bits == 4 else 2)
    res = emulate_project(out, x, timeout=240, dump_dir=tmp_path / "dump")
    assert res.passed, res.summary()
    assert not any(res.layer_mismatches.values()), res.layer_mismatches
