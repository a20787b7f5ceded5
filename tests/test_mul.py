"""The product operator (ops/mul.py): ONNX patterns against onnxruntime, the integer rule
(reference = fast path = a Python-int oracle written from docs/fixed-point.md), and the
mul kernel bit-exact in the emulator."""
from __future__ import annotations


import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from cnn2gate.emulate import emulate_project
from cnn2gate.errors import AccumulatorOverflow, ModelError
from cnn2gate.frontend import convert, load_model
from cnn2gate.ir import GRAPH_INPUT
from cnn2gate.pipeline import compile_project
from cnn2gate.quant import quantize
from cnn2gate.quant.formats import Formats, LayerFormat, QFormat
from cnn2gate.quant.params import quantize_params
from cnn2gate.sim import simulate
from cnn2gate.zoo import Builder
from onnx_builders import parity
from sim_checks import EMU_CONFIGS, emulator_test

torch = pytest.importorskip("torch")
nn = torch.nn
from torch_export import export_torch  # noqa: E402  (needs torch)
TOL = 1e-4


# ---- front end: torch exports against onnxruntime ----------------------------------------

class SE(nn.Module):
    """A conv, then a squeeze-excitation gate: pool -> dense (or 1x1 conv) -> ReLU -> dense -> gate -> Mul."""

    def __init__(self, gate="relu", conv=False, expand="view"):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.conv_se = conv
        self.expand = expand
        self.fc1 = nn.Conv2d(8, 4, 1) if conv else nn.Linear(8, 4)
        self.fc2 = nn.Conv2d(4, 8, 1) if conv else nn.Linear(4, 8)
        self.gate = {"relu": nn.ReLU(), "relu6": nn.ReLU6()}[gate]
        self.head = nn.Conv2d(8, 5, 1)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        if self.conv_se:
            s = nn.functional.adaptive_avg_pool2d(x, 1)
        else:
            s = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        s = self.gate(self.fc2(torch.relu(self.fc1(s))))
        if not self.conv_se:
            s = s.view(-1, 8, 1, 1) if self.expand == "view" else s[:, :, None, None]
        return self.head(x * s)


class Gated(nn.Module):
    """The product of two same-shaped maps (gating), then a ReLU fused into it."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 6, 3, padding=1)
        self.b = nn.Conv2d(3, 6, 1)

    def forward(self, x):
        return torch.relu(self.a(x) * torch.relu(self.b(x)))


def export(model, shape, path, dynamo=False):
    return export_torch(model, shape, path, dynamo=dynamo)


@pytest.mark.parametrize("variant", ["linear-view", "linear-unsqueeze", "conv1x1-relu6"])
def test_squeeze_excitation_matches_onnxruntime(tmp_path, variant):
    kw = {"linear-view": {}, "linear-unsqueeze": {"expand": "unsqueeze"},
          "conv1x1-relu6": {"conv": True, "gate": "relu6"}}[variant]
    torch.manual_seed(1)
    path = export(SE(**kw), (3, 10, 9), tmp_path / "se.onnx")
    g = load_model(path)
    kinds = [layer.kind for layer in g]
    want_mid = ["dense", "dense"] if variant.startswith("linear") else ["conv", "conv"]
    assert kinds == ["conv", "pool", *want_mid, "mul", "conv"]
    mul = g.layers[4]
    assert mul.per_channel and mul.inputs == [g.layers[0].name, g.layers[3].name]
    assert parity(g, path) < TOL


def test_product_of_two_maps_matches_onnxruntime(tmp_path):
    torch.manual_seed(2)
    path = export(Gated(), (3, 7, 8), tmp_path / "gated.onnx")
    g = load_model(path)
    assert [layer.kind for layer in g] == ["conv", "conv", "mul"]
    assert g.layers[2].act == "relu" and not g.layers[2].per_channel
    assert parity(g, path) < TOL


def test_dynamo_export_of_squeeze_excitation(tmp_path):
    torch.manual_seed(3)
    path = export(SE(), (3, 8, 8), tmp_path / "se_dyn.onnx", dynamo=True)
    g = load_model(path)
    assert "mul" in [layer.kind for layer in g]
    assert parity(g, path) < TOL


def _two_input_model(op, a_shape, b_shape, out_shape):
    # x -> Conv(1x1) -> a; x -> GlobalAveragePool or Conv -> b; op(a, b)
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4, 1, 1], np.eye(4, dtype=np.float32).reshape(-1).tolist())
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"]),
             helper.make_node("ReduceMean", ["a"], ["b"], axes=[1], keepdims=1) if b_shape[1] == 1
             else helper.make_node("Conv", ["x", "w"], ["b"]),
             helper.make_node(op, ["a", "b"], ["y"], name="the_op")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("op,b_shape,why", [
    ("Sub", [1, 4, 5, 5], "Sub of two feature maps is not supported"),
    ("Div", [1, 4, 5, 5], "Div of two feature maps is not supported"),
    ("Mul", [1, 1, 5, 5], "only two maps of one shape, or a map and a per-channel vector"),
])
def test_other_products_and_broadcasts_are_refused(op, b_shape, why):
    with pytest.raises(ModelError, match=why) as err:
        convert(_two_input_model(op, [1, 4, 5, 5], b_shape, [1, 4, 5, 5]), source="m.onnx")
    assert "'the_op'" in str(err.value)


# ---- the integer rule: reference = fast path = oracle ---------------------------------------

def o_out(acc, s, fmt, act, alpha_q, six_q):
    rnd = lambda v, s: (v + (1 << (s - 1))) >> s if s > 0 else v << -s  # noqa: E731
    if act == "leaky" and acc < 0:
        return min(max(rnd(acc * alpha_q, s + 16), fmt.lo), fmt.hi)
    y = min(max(rnd(acc, s), fmt.lo), fmt.hi)
    if act == "relu":
        y = max(y, 0)
    if act == "relu6":
        y = min(max(y, 0), six_q)
    return y


@st.composite
def qformat(draw):
    bits = draw(st.integers(2, 16))
    return QFormat(bits, draw(st.integers(-6, bits + 6)))


@st.composite
def mul_problem(draw):
    c, h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    b = Builder("m", (c, h, w), draw(st.integers(0, 999)))
    mode = draw(st.sampled_from(["same", "gate-map", "gate-vector", "square"]))
    src = b.conv(GRAPH_INPUT, c, 1, pad=0, act=draw(st.sampled_from(["none", "relu"])), name="src")
    if mode == "same":
        other = b.act(GRAPH_INPUT, act="leaky", alpha=0.25, name="other")
    elif mode == "square":
        other = src
    else:
        other = b.pool(src, "global_avg", name="other")
        if mode == "gate-vector":
            other = b.dense(other, c, act="relu", name="gate")
    act = draw(st.sampled_from(["none", "relu", "relu6", "leaky"]))
    name = b.mul(src, other, act=act, name="prod")
    graph = b.build(output=name)
    graph.layer(name).alpha = draw(st.floats(0, 1))
    in_fmt = draw(qformat())
    lf = {}
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    for layer in graph.layers:
        wfmt = None
        if layer.has_weights:  # weights on their format's grid (the formats check refuses others)
            wfmt = draw(qformat())
            wq = rng.integers(wfmt.lo, wfmt.hi + 1, size=layer.weight.shape)
            wq.flat[0] = wfmt.hi
            layer.weight = np.ldexp(wq.astype(np.float64), -wfmt.frac)
            layer.bias = np.zeros(layer.bias.shape)
        lf[layer.name] = LayerFormat(draw(qformat()), wfmt)
    n = draw(st.integers(1, 2))
    fmt = in_fmt
    extreme = draw(st.sampled_from(["random", "random", "ends", "max", "min"]))
    shape = (n, c, h, w)
    xq = {"max": np.full(shape, fmt.hi), "min": np.full(shape, fmt.lo),
          "ends": rng.choice([fmt.lo, fmt.hi], size=shape)}.get(extreme)
    if xq is None:
        xq = rng.integers(fmt.lo, fmt.hi + 1, size=shape)
    return graph, Formats(in_fmt, lf), np.ldexp(xq.astype(np.float64), -in_fmt.frac), name


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mul_problem())
def test_mul_fast_equals_reference_equals_oracle(p):
    graph, formats, x, name = p
    try:
        ref = simulate(graph, quantize_params(graph, formats), x, path="reference")
    except AccumulatorOverflow:
        return
    got = simulate(graph, quantize_params(graph, formats), x, path="fast")
    for layer in graph.layers:
        np.testing.assert_array_equal(got.ints[layer.name], ref.ints[layer.name], err_msg=layer.name)
        assert got.stats[layer.name] == ref.stats[layer.name], layer.name
    q = quantize_params(graph, formats)[name]
    assert q.shift == q.in_fmts[0].frac + q.in_fmts[1].frac - q.out.frac
    a, b = (ref.ints[s] for s in q.layer.inputs)
    b = b.reshape(b.shape[:2] + (1,) * (a.ndim - 2)) if b.shape != a.shape else b
    b = np.broadcast_to(b, a.shape)
    want = np.vectorize(lambda u, v: o_out(int(u) * int(v), q.shift, q.out, q.act, q.alpha_q, q.six_q),
                        otypes=[object])(a, b)
    np.testing.assert_array_equal(ref.ints[name], want.astype(np.int64))


# ---- kernels: cost, resources, emulator ------------------------------------------------------

def se_graph():
    """Both broadcasts, on a vector gate and a (C, 1, 1) one, channels padded at V = 4 and 8."""
    b = Builder("se", (5, 6, 7), seed=5)
    x = b.conv(GRAPH_INPUT, 10, 3, act="relu")
    p = b.pool(x, "global_avg")
    g1 = b.dense(b.dense(p, 4, act="relu"), 10, act="relu6")
    y = b.mul(x, g1)
    g2 = b.conv(p, 10, 1, pad=0, act="relu")
    z = b.mul(y, g2, act="leaky")
    m = b.mul(z, b.conv(x, 10, 1, pad=0, act="none"), act="relu")
    c = b.concat(m, z)
    b.dense(b.pool(c, "global_avg"), 4)
    return b.build()


def test_cost_and_resources():
    from cnn2gate.hw import HwConfig
    from cnn2gate.hw.estimate import estimate

    g = se_graph()
    cfg = HwConfig(vec_size=8, lane_num=4, conv_gp_size_x=3)
    est = estimate(g, "a10", cfg, quantize(g))
    muls = [layer for layer in est.layers if layer.kind == "mul"]
    assert len(muls) == 3 and all(m.ops == 10 * 6 * 7 for m in muls)
    # the per-channel gate is read once per channel; a map operand element by element
    assert muls[0].bytes == muls[1].bytes == (2 * 420 + 10)
    assert muls[2].bytes == 3 * 420
    assert all(m.compute_cycles == 2 * 6 * 7 for m in muls)  # ceil(10 / V) channel groups of H x W
    kernel = est.resources.kernels["mul"]
    assert kernel["dsp"] == -(-8 // est.board.native_packing(8))  # V independent multipliers
    # a design without products has no mul kernel
    b = Builder("plain", (3, 5, 5), seed=1)
    b.conv(GRAPH_INPUT, 4, 3)
    assert "mul" not in estimate(b.build(), "a10", cfg).resources.kernels


@emulator_test
@EMU_CONFIGS
def test_mul_kernel_bit_exact_in_emulator(tmp_path, cfg):
    g = se_graph()
    assert sum(layer.kind == "mul" for layer in g) == 3
    out = compile_project(g, quantize(g), "a10", cfg, tmp_path / "p")
    x = np.random.default_rng(6).uniform(-1, 1, (2,) + g.input_shape)
    res = emulate_project(out, x, timeout=240, dump_dir=tmp_path / "dump")
    assert res.passed, res.summary()
    assert len(res.layer_mismatches) == len(g.layers) and not any(res.layer_mismatches.values())
