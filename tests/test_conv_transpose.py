"""Transposed convolution (ops/zero_insert.py): ConvTranspose lowered to zero insertion + a stride-1 conv,
against onnxruntime over a grid of strides, kernels, pads and output paddings (onnx.helper and torch,
legacy and dynamo), the refusals, the integer reference against the fast path, cost, and a small U-Net
with transposed-convolution upsampling bit-exact in the emulator."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from cnn2gate.emulate import emulate_project
from cnn2gate.errors import ModelError
from cnn2gate.frontend import convert, load_model
from cnn2gate.ir import GRAPH_INPUT
from cnn2gate.pipeline import compile_project
from cnn2gate.quant import quantize
from cnn2gate.quant.formats import Formats, LayerFormat, QFormat
from cnn2gate.quant.params import quantize_params
from cnn2gate.ir.reference import predict
from cnn2gate.sim import simulate, sqnr_db
from cnn2gate.zoo import Builder
from onnx_builders import parity
from sim_checks import emulator_test, integer_batch, paths_agree

TOL = 1e-4


def _model(c=3, m=4, k=(3, 3), group=1, hw=(5, 6), bias=True, name="the_up", seed=0, **attrs):
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((c, m // group) + tuple(k)).astype(np.float32), "w")
    inits, ins = [w], ["x", "w"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(m).astype(np.float32), "b"))
        ins.append("b")
    node = helper.make_node("ConvTranspose", ins, ["y"], name=name, kernel_shape=list(k), group=group, **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, *hw])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "c", "h", "w"])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _grid():
    """Every stride 1-4 x kernel 1-4, each with no padding, a padding past k - 1 (a crop) and an
    asymmetric one, at output_padding 0 and stride - 1."""
    for s, k in itertools.product(range(1, 5), range(1, 5)):
        for pads in ((0, 0, 0, 0), (k, 1, 0, k - 1), (1, 0, 2, 1)):
            for op in sorted({0, s - 1}):
                yield s, k, pads, op


@pytest.mark.parametrize("s,k,pads,op", list(_grid()))
def test_grid_matches_onnxruntime(s, k, pads, op):
    m = _model(k=(k, k), strides=[s, s], pads=list(pads), output_padding=[op, op])
    g = convert(m, source="m.onnx")
    assert [layer.kind for layer in g] == ["zero_insert", "conv"]
    zi, conv = g.layers
    assert zi.stride == (s, s) and conv.stride == (1, 1) and min(conv.pads) >= 0 and max(zi.pads) <= 0
    assert parity(g, m) < TOL


@pytest.mark.parametrize("attrs,k,group,c,m", [
    ({"strides": [2, 3], "pads": [1, 0, 0, 2], "output_padding": [1, 2]}, (3, 2), 1, 3, 4),
    ({"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]}, (4, 4), 6, 6, 6),  # depthwise
    ({"strides": [2, 2], "pads": [0, 0, 0, 0]}, (2, 2), 2, 4, 6),  # grouped
    ({"strides": [3, 3], "dilations": [2, 2], "pads": [1, 2, 3, 0]}, (3, 3), 1, 3, 4),
    ({}, (3, 3), 1, 3, 2),  # all defaults: stride 1, a full-padding conv
])
def test_rectangular_grouped_dilated_match_onnxruntime(attrs, k, group, c, m):
    model = _model(c=c, m=m, k=k, group=group, bias=False, **attrs)
    g = convert(model, source="m.onnx")
    assert g.layers[1].groups == group
    assert parity(g, model) < TOL


@pytest.mark.parametrize("attrs,why", [
    ({"auto_pad": "SAME_UPPER", "strides": [2, 2]}, "auto_pad=SAME_UPPER"),
    ({"output_shape": [10, 12], "strides": [2, 2]}, "output_shape"),
])
def test_refusals_name_the_node(attrs, why):
    with pytest.raises(ModelError, match=why) as err:
        convert(_model(**attrs), source="m.onnx")
    assert "the_up" in str(err.value)


# ---- torch -----------------------------------------------------------------------------------

torch = pytest.importorskip("torch")
nn = torch.nn
from torch_export import export_torch  # noqa: E402  (needs torch)


class UpNet(nn.Module):
    def __init__(self, k, s, p, op, groups=1):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.up = nn.ConvTranspose2d(4, 4, k, stride=s, padding=p, output_padding=op, groups=groups)

    def forward(self, x):
        return torch.relu(self.up(torch.relu(self.a(x))))


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
@pytest.mark.parametrize("k,s,p,op,groups", [(2, 2, 0, 0, 1), (3, 2, 1, 1, 1), (4, 4, 1, 2, 1), (1, 3, 0, 2, 1),
                                              (4, 2, 1, 0, 4)])
def test_torch_conv_transpose_matches_onnxruntime(tmp_path, exporter, k, s, p, op, groups):
    torch.manual_seed(2)
    path = export_torch(UpNet(k, s, p, op, groups), (3, 5, 4), tmp_path / "up.onnx", dynamo=exporter == "dynamo")
    g = load_model(path)
    assert [layer.kind for layer in g] == ["conv", "zero_insert", "conv"]
    assert g.layers[-1].act == "relu"  # the ReLU after the ConvTranspose is fused into its conv
    assert parity(g, path) < TOL


class TinyUNet(nn.Module):
    """conv -> strided conv -> conv -> ConvTranspose x2 -> concat with the skip -> conv."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Conv2d(3, 6, 3, padding=1)
        self.down = nn.Conv2d(6, 8, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(8, 6, 2, stride=2)
        self.dec = nn.Conv2d(12, 4, 3, padding=1)

    def forward(self, x):
        skip = torch.relu(self.enc(x))
        y = torch.relu(self.up(torch.relu(self.down(skip))))
        return self.dec(torch.cat([y, skip], 1))


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_torch_unet_matches_onnxruntime(tmp_path, exporter):
    torch.manual_seed(3)
    path = export_torch(TinyUNet(), (3, 8, 10), tmp_path / "unet.onnx", dynamo=exporter == "dynamo")
    g = load_model(path)
    assert [layer.kind for layer in g] == ["conv", "conv", "zero_insert", "conv", "concat", "conv"]
    assert parity(g, path) < TOL


# ---- the integer rule ------------------------------------------------------------------------

@st.composite
def zero_insert_problem(draw):
    c, h, w = draw(st.integers(1, 6)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    b = Builder("z", (c, h, w), draw(st.integers(0, 999)))
    src = b.act(GRAPH_INPUT, act="leaky", alpha=0.25, name="src")
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    crop = [-draw(st.integers(0, 1)) for _ in range(4)]
    for i, n in ((0, h), (1, w)):  # keep at least one row and column
        if (n - 1) * stride[i] + 1 + crop[i] + crop[i + 2] < 1:
            crop[i] = crop[i + 2] = 0
    crop = tuple(crop)
    from cnn2gate.ops import ZeroInsert

    b.layers.append(ZeroInsert(name="up", inputs=[src], in_shapes=[b.shape(src)], out_shape=(), stride=stride,
                               pads=crop))
    b.layers[-1].out_shape = tuple(b.layers[-1].infer_shape())
    graph = b.build(output="up")
    fmt = QFormat(draw(st.integers(2, 16)), draw(st.integers(-4, 12)))
    formats = Formats(fmt, {"src": LayerFormat(fmt, None), "up": LayerFormat(fmt, None)})
    return graph, formats, integer_batch(draw, fmt, (c, h, w))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(zero_insert_problem())
def test_reference_and_fast_path_insert_zeros_exactly(p):
    graph, formats, x = p
    qg, ref = paths_agree(graph, formats, x)
    q = qg["up"]
    assert q.shift == 0
    (sy, sx), (t, left, _, _) = q.layer.stride, q.layer.pads
    src, out = ref.ints["src"], ref.ints["up"]
    n, c, h, w = src.shape
    full = np.zeros((n, c, (h - 1) * sy + 1, (w - 1) * sx + 1), dtype=out.dtype)
    full[:, :, ::sy, ::sx] = src
    np.testing.assert_array_equal(out, full[:, :, -t:-t + out.shape[2], -left:-left + out.shape[3]])


def test_quantized_conv_transpose_tracks_float(tmp_path):
    m = _model(k=(3, 3), strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])
    g = convert(m, source="m.onnx")
    x = np.random.default_rng(5).standard_normal((2,) + g.input_shape)
    qg = quantize_params(g, quantize(g, x))
    res = simulate(g, qg, x)
    assert sqnr_db(predict(g, x), res.floats[g.output]) > 25


# ---- kernels: cost, emulator -----------------------------------------------------------------

def unet_graph():
    """Encoder-decoder with x2 (k2) and x3 (k3, pad 1, output padding 2) transposed convolutions and a skip."""
    b = Builder("unet_t", (3, 8, 6), seed=11)
    skip = b.conv(GRAPH_INPUT, 5, 3, act="relu")
    y = b.conv(b.pool(skip, "max", 2), 10, 3, act="relu")
    up = b.conv_transpose(y, 6, 2, 2, act="relu", name="up1")
    z = b.conv(b.concat(up, skip), 6, 3, act="leaky")
    w = b.conv_transpose(b.pool(z, "max", (4, 3)), 5, 3, (4, 3), 1, (3, 2), act="none", name="up2")
    b.conv(b.concat(w, z), 3, 1, act="none")
    return b.build()


def test_cost_is_one_pass_over_the_output_then_the_full_conv():
    from cnn2gate.hw import HwConfig
    from cnn2gate.hw.estimate import estimate

    g = unet_graph()
    assert g.layer("up1").out_shape == (6, 8, 6) and g.layer("up2").out_shape == (5, 8, 6)
    est = estimate(g, "a10", HwConfig(vec_size=8, lane_num=4, conv_gp_size_x=3), quantize(g))
    zs = [layer for layer in est.layers if layer.kind == "zero_insert"]
    # every output vector written once (zeros included), every input vector read once
    assert [(z.ops, z.bytes, z.compute_cycles) for z in zs] == [
        (10 * 7 * 5, 10 * 4 * 3 + 10 * 7 * 5, 2 * 7 * 5),
        (6 * 5 * 4, 6 * 2 * 2 + 6 * 5 * 4, 1 * 5 * 4)]
    convs = {layer.name: layer for layer in est.layers}
    assert convs["up1"].ops == 2 * g.layer("up1").macs() == 2 * 6 * 10 * 2 * 2 * 8 * 6  # zero MACs counted
    assert "zero_insert" in est.resources.kernels


@emulator_test
def test_zero_insert_kernel_bit_exact_in_emulator(tmp_path):
    g = unet_graph()
    out = compile_project(g, quantize(g), "a10", {"vec_size": 4, "lane_num": 4, "conv_gp_size_x": 3}, tmp_path / "p")
    x = np.random.default_rng(8).uniform(-1, 1, (2,) + g.input_shape)
    res = emulate_project(out, x, timeout=240, dump_dir=tmp_path / "dump")
    assert res.passed, res.summary()
    assert len(res.layer_mismatches) == len(g.layers) and not any(res.layer_mismatches.values())
