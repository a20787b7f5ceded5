"""Choosing formats: the three rules, tied tensors, the accumulator guarantee, synthetic calibration."""
import numpy as np
import pytest

from cnn2gate.ir.layers import GRAPH_INPUT
from cnn2gate.quant import QFormat, quantize, quantize_params
from cnn2gate.quant.calibrate import choose_frac, frac_for, quant_mse
from cnn2gate.sim import report, simulate
from cnn2gate.zoo import Builder


@pytest.mark.parametrize("max_abs,bits", [(1.0, 8), (0.999, 8), (127.0, 8), (127.5, 8), (128.0, 8), (3e-5, 4), (5e4, 16), (6.0, 2)])
def test_frac_for_is_the_largest_frac_without_clipping(max_abs, bits):
    f = frac_for(max_abs, bits)
    hi = 2 ** (bits - 1) - 1
    assert np.floor(max_abs * 2.0**f + 0.5) <= hi
    assert np.floor(max_abs * 2.0 ** (f + 1) + 0.5) > hi


def test_methods_order_and_mse_optimality():
    rng = np.random.default_rng(0)
    v = rng.standard_normal(100_000)
    v[0] = 40.0  # one outlier
    f_max, f_pct, f_mse = (choose_frac(v, 8, m) for m in ("maxabs", "percentile", "mse"))
    assert f_max == frac_for(40.0, 8)
    assert f_pct > f_max and f_mse > f_max  # both ignore the outlier
    assert quant_mse(v, QFormat(8, f_mse)) <= quant_mse(v, QFormat(8, f_max))
    with pytest.raises(ValueError, match="unknown calibration method"):
        choose_frac(v, 8, "magic")


def branchy():
    b = Builder("b", (3, 8, 8), 1)
    a = b.conv(GRAPH_INPUT, 4, 3, name="a")
    c = b.conv(GRAPH_INPUT, 4, 3, act="none", name="c")
    m = b.pool(c, "max", 2, stride=1, pad=0, name="m")
    a2 = b.pool(a, "avg", 2, stride=1, name="a2")
    cat = b.concat(a2, m, name="cat")
    d = b.conv(cat, 6, 1, pad=0, act="leaky", name="d")
    s = b.add(d, b.conv(cat, 6, 1, pad=0, act="relu6", name="e"), act="relu", name="s")
    b.dense(s, 3, name="fc")
    return b.build(softmax=True)


def test_tied_tensors_share_formats():
    g = branchy()
    fm = quantize(g, np.random.default_rng(0).standard_normal((8, 3, 8, 8)))
    assert fm.out("a2") == fm.out("m") == fm.out("cat") == fm.out("c")  # concat inputs, and max pool in/out
    qg = quantize_params(g, fm)
    assert qg["m"].shift == 0 and qg["cat"].shift == 0


def test_synthetic_calibration_is_deterministic_and_recorded():
    g = branchy()
    f1, f2 = quantize(g), quantize(g)
    assert f1.to_dict() == f2.to_dict()
    assert f1.stats["calibration"]["kind"] == "synthetic" and f1.stats["calibration"]["samples"] == 16
    real = quantize(g, np.random.default_rng(5).standard_normal((3, 3, 8, 8)))
    assert real.stats["calibration"] == {"kind": "user", "samples": 3}


def test_weight_bits_and_bits():
    g = branchy()
    fm = quantize(g, bits=6, weight_bits=4, method="percentile")
    assert fm.input.bits == 6 and all(lf.out.bits == 6 for lf in fm.layers.values())
    assert {lf.weight.bits for lf in fm.layers.values() if lf.weight} == {4}
    with pytest.raises(ValueError):
        quantize(g, bits=17)


def test_wide_formats_widen_the_accumulator_instead_of_cutting_weight_precision():
    b = Builder("wide", (512, 3, 3), 0)
    b.conv(GRAPH_INPUT, 8, 3, name="c")
    g = b.build()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 512, 3, 3))
    fm16 = quantize(g, x, bits=16)
    qg = quantize_params(g, fm16)
    # the weights keep the precision their range allows; the worst case needs a 64-bit accumulator
    w_max = float(np.abs(g.layer("c").weight).max())
    assert fm16.layers["c"].weight.frac >= frac_for(w_max, 16)
    assert "w_frac_reduced_for_accumulator" not in fm16.layers["c"].stats
    assert 2**31 <= qg["c"].acc_bound <= 2**63 - 1 and qg.acc_bits == 64
    # worst-case inputs of the same sign as each weight: no overflow, no warning
    worst = np.sign(g.layer("c").weight.sum(axis=0, keepdims=True)) * 1e6
    res = simulate(g, fm16, worst, path="fast")
    assert not res.warnings and res.acc_bits == 64 and res.stats["c"]["acc_bits"] > 31
    # 8 bits: the same layer fits int32, so the design keeps the 32-bit accumulator
    assert quantize_params(g, quantize(g, x, bits=8)).acc_bits == 32
    # the int32-only rule on request: weight precision given up, a 32-bit design
    fm32 = quantize(g, x, bits=16, max_acc_bits=32)
    assert fm32.layers["c"].stats["w_frac_reduced_for_accumulator"] > 0
    assert quantize_params(g, fm32)["c"].acc_bound <= 2**31 - 1 and quantize_params(g, fm32).acc_bits == 32
    with pytest.raises(ValueError, match="max_acc_bits"):
        quantize(g, x, bits=16, max_acc_bits=48)


def test_weight_precision_is_given_up_only_beyond_64_bits():
    b = Builder("huge_bias", (64, 1, 1), 0)
    name = b.dense(GRAPH_INPUT, 2, act="none")
    g = b.build()
    # tiny weights and inputs: many fractional bits, so the bias at accumulator scale passes 2^63
    rng = np.random.default_rng(0)
    g.layer(name).weight = (rng.standard_normal((2, 64)) * 1e-6).astype(np.float32)
    g.layer(name).bias = np.array([3e4, -2.0], dtype=np.float32)
    fm = quantize(g, rng.standard_normal((4, 64, 1, 1)) * 1e-3, bits=16)
    qg = quantize_params(g, fm)
    assert fm.layers[name].stats["w_frac_reduced_for_accumulator"] > 0
    assert qg[name].acc_bound <= 2**63 - 1 and qg[name].bias_saturated == 0


@pytest.mark.parametrize("act,cut", [("none", False), ("leaky", True)])
def test_a_leaky_layer_keeps_acc_times_slope_inside_64_bits(act, cut):
    b = Builder("leaky_bias", (64, 1, 1), 0)
    name = b.dense(GRAPH_INPUT, 2, act=act)
    g = b.build()
    rng = np.random.default_rng(0)
    g.layer(name).weight = (rng.standard_normal((2, 64)) * 1e-6).astype(np.float32)
    g.layer(name).bias = np.array([-1.0, 1.0], dtype=np.float32)  # about 2^56 at accumulator scale
    x = rng.standard_normal((4, 64, 1, 1)) * 1e-3
    fm = quantize(g, x, bits=16)
    q = quantize_params(g, fm)[name]
    assert ("w_frac_reduced_for_accumulator" in fm.layers[name].stats) == cut
    assert q.acc_bound * (q.alpha_q if act == "leaky" else 1) <= 2**63 - 1
    simulate(g, fm, -np.sign(g.layer(name).weight[:1]).reshape(1, 64, 1, 1) * 1e3)  # no overflow


@pytest.mark.parametrize("bits,min_db", [(16, 50), (8, 25), (4, 5)])
def test_report_sqnr_tracks_bits(bits, min_db):
    g = branchy()
    x = np.random.default_rng(3).standard_normal((8, 3, 8, 8))
    rows = report(g, quantize(g, x, bits=bits), x)
    assert [r["name"] for r in rows] == [layer.name for layer in g.layers]
    assert min(r["sqnr_db"] for r in rows) > min_db
    assert {"sat_low", "sat_high", "format"} <= set(rows[0]) and "acc_bits" in rows[0]


@pytest.mark.parametrize("bits", [3, 8, 12, 16])
def test_calibrated_graph_paths_agree(bits):
    g = branchy()
    x = np.random.default_rng(bits).standard_normal((3, 3, 8, 8)) * 3
    fm = quantize(g, x[:2], bits=bits)
    a = simulate(g, fm, x, path="fast")
    b = simulate(g, fm, x, path="reference")
    for name in a.ints:
        np.testing.assert_array_equal(a.ints[name], b.ints[name], err_msg=name)
    assert a.stats == b.stats
