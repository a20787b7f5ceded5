"""Sigmoid, Tanh, HardSigmoid, HardSwish, SiLU: front end vs onnxruntime, the table rule of
docs/fixed-point.md against a scalar oracle and float, and the emulated kernels bit for bit."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnn2gate.frontend import convert, load_model
from cnn2gate.ir import GRAPH_INPUT
from cnn2gate.ops import activation as A
from cnn2gate.quant import fixedpoint as fx
from cnn2gate.quant.formats import Formats, LayerFormat, QFormat
from cnn2gate.quant.params import quantize_params
from cnn2gate.sim import simulate
from cnn2gate.zoo import Builder
from onnx_builders import GraphBuilder, parity

TOL = 1e-4
FNS = {"sigmoid": (0.0, 0.0), "tanh": (0.0, 0.0), "hardsigmoid": (0.2, 0.5), "hardswish": (1 / 6, 0.5),
       "silu": (0.0, 0.0)}


def onnx_acts(opset=14):
    b = GraphBuilder("acts")
    x = b.conv("data", 3, 6, 3, "c1", pad=1)
    x = b.node("Sigmoid", [x], name="sig")
    x = b.conv(x, 6, 6, 3, "c2", pad=1)
    x = b.node("Tanh", [x], name="tanh")
    x = b.conv(x, 6, 6, 3, "c3", pad=1)
    x = b.node("HardSigmoid", [x], name="hsig", alpha=0.3, beta=0.4)
    x = b.conv(x, 6, 6, 3, "c4", pad=1)
    x = b.node("HardSwish", [x], name="hswish")
    x = b.conv(x, 6, 6, 3, "c5", pad=1)
    x = b.node("Mul", [x, b.node("Sigmoid", [x], name="silu_sig")], name="silu_mul")
    x = b.conv(x, 6, 6, 3, "c6", pad=1)
    x = b.node("Mul", [b.node("HardSigmoid", [x], name="hs_gate", alpha=1 / 6, beta=0.5), x], name="hs_mul")
    return b.build([1, 3, 8, 8], x, opset=opset)


def test_onnx_activations_parse_unfused_and_match_onnxruntime():
    m = onnx_acts()
    g = convert(m)
    acts = [(layer.fn, layer.source) for layer in g if layer.kind == "act"]
    assert acts == [("sigmoid", "sig"), ("tanh", "tanh"), ("hardsigmoid", "hsig"), ("hardswish", "hswish"),
                    ("silu", "silu_sig + silu_mul"), ("hardswish", "hs_gate + hs_mul")]
    assert all(layer.act == "none" for layer in g)  # never fused into the convolutions
    hsig = g.layer("hsig")
    assert (hsig.fn_alpha, hsig.fn_beta) == (pytest.approx(0.3), pytest.approx(0.4))
    for scale in (1.0, 4.0):
        assert parity(g, m, scale=scale) < TOL


def test_activation_on_the_graph_input():
    b = GraphBuilder("first")
    x = b.node("Sigmoid", ["data"], name="sig")
    x = b.conv(x, 3, 4, 3, "c1", pad=1)
    m = b.build([1, 3, 6, 6], x)
    g = convert(m)
    assert [layer.kind for layer in g] == ["act", "conv"]
    assert parity(g, m, scale=3.0) < TOL



@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_torch_activations(tmp_path, exporter):
    torch = pytest.importorskip("torch")
    if exporter == "dynamo":
        pytest.importorskip("onnxscript")
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.SiLU(), nn.Conv2d(8, 8, 3, padding=1), nn.Hardswish(),
                          nn.Conv2d(8, 8, 1), nn.Hardsigmoid(), nn.Conv2d(8, 8, 1), nn.Sigmoid(),
                          nn.Conv2d(8, 8, 1), nn.Tanh()).eval()
    torch.manual_seed(0)
    path = str(tmp_path / "m.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "legacy":
            torch.onnx.export(model, (torch.randn(1, 3, 8, 8),), path, dynamo=False, opset_version=14)
        else:
            torch.onnx.export(model, (torch.randn(1, 3, 8, 8),), path, dynamo=True, external_data=False,
                              verbose=False)
    g = load_model(path)
    assert [layer.fn for layer in g if layer.kind == "act"] == ["silu", "hardswish", "hardsigmoid", "sigmoid", "tanh"]
    assert parity(g, path, scale=2.0) < TOL


# ---- the integer rule ------------------------------------------------------------------------

def oracle(fn, alpha, beta, xq: int, fin: QFormat, fout: QFormat) -> int:
    """docs/fixed-point.md with Python ints and math: index, the input it stands for, rounding."""
    s = fin.bits - A.ACT_LUT_BITS
    i = ((xq + (1 << (s - 1))) >> s) if s > 0 else xq << -s
    i = min(max(i, -(1 << (A.ACT_LUT_BITS - 1))), (1 << (A.ACT_LUT_BITS - 1)) - 1)
    c = math.ldexp(i, s - fin.frac)
    if fn == "sigmoid":
        y = 1 / (1 + math.exp(-c)) if c > -700 else 0.0
    elif fn == "silu":
        y = c / (1 + math.exp(-c)) if c > -700 else 0.0
    elif fn == "tanh":
        y = math.tanh(c)
    else:
        h = min(max(alpha * c + beta, 0.0), 1.0)
        y = h if fn == "hardsigmoid" else c * h
    return fx.sat(math.floor(math.ldexp(y, fout.frac) + 0.5), fout.bits)


def one_layer(fn, alpha=0.0, beta=0.0, shape=(2, 3, 4)):
    b = Builder("t", shape, seed=0)
    b.act(GRAPH_INPUT, fn=fn, fn_alpha=alpha, fn_beta=beta, name="a")
    return b.build()


@st.composite
def table_problem(draw):
    fn = draw(st.sampled_from(sorted(FNS)))
    alpha, beta = FNS[fn]
    if fn.startswith("hard") and draw(st.booleans()):
        alpha, beta = draw(st.floats(-2, 2)), draw(st.floats(-2, 2))
    fin = QFormat(draw(st.integers(2, 16)), draw(st.integers(-8, 20)))
    fout = QFormat(draw(st.integers(2, 16)), draw(st.integers(-4, 20)))
    lo, hi = fx.value_range(fin.bits)
    n = draw(st.integers(1, 3))
    g = one_layer(fn, alpha, beta)
    size = n * int(np.prod(g.input_shape))
    xs = draw(st.lists(st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi, 0, -1, 1])), min_size=size,
                       max_size=size))
    xq = np.array(xs, dtype=np.int64).reshape((n,) + g.input_shape)
    return g, fn, alpha, beta, fin, fout, xq


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table_problem())
def test_fast_equals_reference_equals_oracle(p):
    g, fn, alpha, beta, fin, fout, xq = p
    formats = Formats(fin, {"a": LayerFormat(fout, None)})
    x = np.ldexp(xq.astype(np.float64), -fin.frac)
    ref = simulate(g, quantize_params(g, formats), x, path="reference")
    got = simulate(g, quantize_params(g, formats), x, path="fast")
    np.testing.assert_array_equal(got.ints["a"], ref.ints["a"])
    assert got.stats["a"] == ref.stats["a"]
    want = np.array([oracle(fn, alpha, beta, int(v), fin, fout) for v in xq.reshape(-1)]).reshape(xq.shape)
    np.testing.assert_array_equal(ref.ints["a"], want)


def table_error(fn, fin: QFormat, fout: QFormat):
    """(max |error| in output LSBs over every input integer, outside saturation; SQNR in dB of the
    table against float on N(0, (range/4)^2) inputs)."""
    alpha, beta = FNS[fn]
    layer = one_layer(fn, alpha, beta).layer("a")
    table, _ = A.act_table(layer, fin, fout)
    lo, hi = fx.value_range(fin.bits)
    xq = np.arange(lo, hi + 1)
    y = table[A.table_index(xq, fin)]
    f = A.table_float(fn, np.ldexp(xq.astype(np.float64), -fin.frac), alpha, beta)
    olo, ohi = fx.value_range(fout.bits)
    inside = (f * 2.0 ** fout.frac > olo) & (f * 2.0 ** fout.frac < ohi)
    err = np.abs(y - np.ldexp(f, fout.frac))[inside].max()
    rng = np.random.default_rng(0)
    xf = rng.normal(0, 2.0 ** (fin.bits - 1 - fin.frac) / 4, 100_000)
    xi = fx.quantize_tensor(xf, fin)
    yf = A.table_float(fn, xf, alpha, beta)
    yq = np.ldexp(table[A.table_index(xi, fin)].astype(np.float64), -fout.frac)
    sqnr = 10 * np.log10(np.sum(yf ** 2) / np.sum((yf - yq) ** 2))
    return float(err), float(sqnr)


#: output formats that hold each function's range
OUT8 = {"sigmoid": QFormat(8, 7), "tanh": QFormat(8, 7), "hardsigmoid": QFormat(8, 7), "hardswish": QFormat(8, 4),
        "silu": QFormat(8, 4)}


@pytest.mark.parametrize("fn", sorted(FNS))
def test_table_error_against_float(fn):
    # 8-bit input: every input integer has its own entry, so only the output rounding remains
    err, sqnr = table_error(fn, QFormat(8, 4), OUT8[fn])
    assert err <= 0.5
    assert sqnr > 30
    # 16-bit input: the index keeps 12 bits; the error adds the distance to the entry's input
    # (half an index step, just under one at the saturated top entry) times the slope
    fout = QFormat(16, OUT8[fn].frac + 8)
    err16, _ = table_error(fn, QFormat(16, 12), fout)
    slope = {"sigmoid": 0.25, "hardsigmoid": 0.2, "tanh": 1.0, "silu": 1.1, "hardswish": 1.5}[fn]
    assert err16 <= 0.5 + slope * 2.0 ** (16 - 12 - 12 + fout.frac)


def test_table_is_shipped_and_lowered():
    g = one_layer("silu")
    formats = Formats(QFormat(8, 4), {"a": LayerFormat(QFormat(8, 5), None)})
    qg = quantize_params(g, formats)
    q = qg["a"]
    assert q.lut.shape == (A.ACT_LUT_SIZE,) and q.shift == 0
    from cnn2gate.ops import op_for

    op = op_for(g.layer("a"))
    k = op.lower(g.layer("a"), g)
    assert op.host_args(k, q, None) == {"act": A.ACT_TABLE_CODE, "shift": 8 - A.ACT_LUT_BITS}
    assert op.device_arrays(q, k, None)["lut"].dtype == np.int32
    assert op.tied_inputs(g.layer("a")) == ()


# ---- emulated kernels ------------------------------------------------------------------------

def table_acts_graph():
    """Every table function: on the graph input, after a conv, into and out of a concat view."""
    b = Builder("tables", (5, 6, 7), seed=5)
    x = b.act(GRAPH_INPUT, fn="tanh")
    x = b.conv(x, 6, 3, act="none")
    s = b.act(x, fn="sigmoid")
    h = b.act(x, fn="hardswish", fn_alpha=1 / 6, fn_beta=0.5)
    c = b.concat(s, h)
    y = b.act(c, fn="silu")
    z = b.conv(y, 5, 3, act="none")
    w = b.act(z, fn="hardsigmoid", fn_alpha=0.2, fn_beta=0.5)
    b.dense(w, 4)
    return b.build()


@pytest.mark.emulator
@pytest.mark.parametrize("cfg", ["v4l4", "v8l3"])
def test_table_activations_bit_exact_in_emulator(tmp_path, cfg):
    from cnn2gate.emulate import emulate_project, emulator_available
    from cnn2gate.pipeline import compile_project
    from cnn2gate.quant import quantize

    ok, why = emulator_available()
    if not ok:
        pytest.skip(f"Intel FPGA emulation runtime unavailable: {why}")
    configs = {"v4l4": {"vec_size": 4, "lane_num": 4, "conv_gp_size_x": 3},
               "v8l3": {"vec_size": 8, "lane_num": 3, "conv_gp_size_x": 5}}
    g = table_acts_graph()
    out = compile_project(g, quantize(g), "a10", configs[cfg], tmp_path / "p")
    x = np.random.default_rng(6).uniform(-3, 3, (3,) + g.input_shape)
    res = emulate_project(out, x, timeout=240, dump_dir=tmp_path / "dump")
    assert res.passed, res.summary()
    assert len(res.layer_mismatches) == len(g.layers) and not any(res.layer_mismatches.values())
