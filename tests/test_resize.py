"""Nearest and bilinear upsampling (ops/resize.py): torch exports and onnx.helper graphs against
onnxruntime, the refusals, the integer rules (reference = replication oracle for nearest, the exact
float interpolation for bilinear, fast path = reference), the error against float, cost, and the
resize kernel bit-exact in the emulator."""
from __future__ import annotations


import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from cnn2gate.emulate import emulate_project
from cnn2gate.errors import ModelError
from cnn2gate.frontend import convert, load_model
from cnn2gate.ir import GRAPH_INPUT
from cnn2gate.pipeline import compile_project
from cnn2gate.quant import quantize
from cnn2gate.ops.resize import LINEAR_COORDS, OP, RESIZE_WEIGHT_BITS, bilinear_int
from cnn2gate.quant import fixedpoint as fx
from cnn2gate.quant.formats import Formats, LayerFormat, QFormat
from cnn2gate.zoo import Builder
from onnx_builders import parity
from sim_checks import EMU_CONFIGS, emulator_test, integer_batch, paths_agree

torch = pytest.importorskip("torch")
nn = torch.nn
from torch_export import export_torch  # noqa: E402  (needs torch)
TOL = 1e-4


# ---- front end -------------------------------------------------------------------------------

class ConvUpConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 6, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.b = nn.Conv2d(6, 4, 3, padding=1)

    def forward(self, x):
        return self.b(self.up(torch.relu(self.a(x))))


class TinyUNet(nn.Module):
    """conv -> maxpool -> conv -> upsample -> concat with the skip -> conv."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Conv2d(3, 6, 3, padding=1)
        self.mid = nn.Conv2d(6, 8, 3, padding=1)
        self.dec = nn.Conv2d(14, 4, 3, padding=1)

    def forward(self, x):
        skip = torch.relu(self.enc(x))
        y = torch.relu(self.mid(nn.functional.max_pool2d(skip, 2)))
        y = nn.functional.interpolate(y, scale_factor=2, mode="nearest")
        return self.dec(torch.cat([y, skip], 1))


def export(model, shape, path, dynamo=False):
    return export_torch(model, shape, path, dynamo=dynamo)


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
@pytest.mark.parametrize("net", ["conv-up-conv", "unet"])
def test_torch_upsampling_matches_onnxruntime(tmp_path, net, exporter):
    torch.manual_seed(1)
    model, shape = {"conv-up-conv": (ConvUpConv(), (3, 5, 7)), "unet": (TinyUNet(), (3, 8, 10))}[net]
    path = export(model, shape, tmp_path / f"{net}.onnx", dynamo=exporter == "dynamo")
    g = load_model(path)
    kinds = [layer.kind for layer in g]
    assert kinds == (["conv", "resize", "conv"] if net == "conv-up-conv"
                     else ["conv", "pool", "conv", "resize", "concat", "conv"])
    r = g.layers[kinds.index("resize")]
    assert r.scale == (2, 2) and r.out_shape[1:] == (2 * r.in_shape[1], 2 * r.in_shape[2])
    assert parity(g, path) < TOL


def bilinear_unet(tmp_path, exporter="legacy"):
    """examples/models.py's U-Net with bilinear upsampling (width 0.25, 32 x 32), exported and parsed."""
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    from examples.models import unet_upsample

    model = unet_upsample(width=0.25, input_size=32, mode="bilinear")
    path = export(model, (3, 32, 32), tmp_path / "unet_bl.onnx", dynamo=exporter == "dynamo")
    return path, load_model(path)


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_bilinear_unet_example_matches_onnxruntime(tmp_path, exporter):
    path, g = bilinear_unet(tmp_path, exporter)
    ups = [layer for layer in g if layer.kind == "resize"]
    assert len(ups) == 4 and all(u.mode == "linear" and u.coord != "align_corners" for u in ups)
    assert parity(g, path) < TOL


@emulator_test
def test_bilinear_unet_example_bit_exact_in_emulator(tmp_path):
    _, g = bilinear_unet(tmp_path)
    x = np.random.default_rng(5).uniform(-1, 1, (2,) + g.input_shape)
    out = compile_project(g, quantize(g, x), "a10", {"vec_size": 8, "lane_num": 4, "conv_gp_size_x": 4}, tmp_path / "p")
    res = emulate_project(out, x, timeout=240, dump_dir=tmp_path / "dump")
    assert res.passed, res.summary()
    assert not any(res.layer_mismatches.values())


def _resize_model(attrs, scales=None, sizes=None, shape=(1, 3, 4, 5), opset=13, op="Resize"):
    inits, ins = [], ["x"]
    if op == "Resize" and opset < 11:  # Resize-10: (X, scales)
        inits.append(helper.make_tensor("scales", TensorProto.FLOAT, [len(scales)], scales))
        ins.append("scales")
    elif op == "Resize":
        ins.append("")
        if scales is not None:
            inits.append(helper.make_tensor("scales", TensorProto.FLOAT, [len(scales)], scales))
            ins.append("scales")
        else:
            ins.append("")
        if sizes is not None:
            inits.append(helper.make_tensor("sizes", TensorProto.INT64, [len(sizes)], sizes))
            ins.append("sizes")
    w = helper.make_tensor("w", TensorProto.FLOAT, [3, 3, 1, 1], np.eye(3, dtype=np.float32).reshape(-1).tolist())
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node(op, ["c"] + ins[1:], ["y"], name="the_resize", **attrs)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "c", "h", "w"])], [w] + inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("attrs,scales,sizes,want", [
    ({"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"},
     [1, 1, 2, 2], None, (2, 2)),
    ({"mode": "nearest"}, [1, 1, 3, 2], None, (3, 2)),  # defaults: half_pixel, round_prefer_floor
    ({"mode": "nearest", "coordinate_transformation_mode": "half_pixel", "nearest_mode": "round_prefer_ceil"},
     None, [1, 3, 12, 5], (3, 1)),
    ({"mode": "nearest", "coordinate_transformation_mode": "tf_half_pixel_for_nn", "nearest_mode": "floor"},
     [1, 1, 4, 3], None, (4, 3)),
])
def test_replicating_coordinate_rules_match_onnxruntime(attrs, scales, sizes, want):
    m = _resize_model(attrs, scales, sizes)
    g = convert(m, source="m.onnx")
    assert [layer.kind for layer in g] == ["conv", "resize"] and g.layers[1].scale == want
    assert parity(g, m) < TOL


def test_upsample_of_an_old_opset_is_upgraded():
    m = _resize_model({"mode": "nearest", "scales": [1.0, 1.0, 2.0, 3.0]}, op="Upsample", opset=7)
    g = convert(m, source="m.onnx")
    assert g.layers[-1].kind == "resize" and g.layers[-1].scale == (2, 3)


class ConvBilinearConv(nn.Module):
    def __init__(self, align_corners):
        super().__init__()
        self.a = nn.Conv2d(3, 6, 3, padding=1)
        self.b = nn.Conv2d(6, 4, 3, padding=1)
        self.align_corners = align_corners

    def forward(self, x):
        y = nn.functional.interpolate(torch.relu(self.a(x)), scale_factor=2, mode="bilinear",
                                      align_corners=self.align_corners)
        return self.b(y)


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
@pytest.mark.parametrize("align_corners", [False, True], ids=["half-pixel", "align-corners"])
def test_torch_bilinear_matches_onnxruntime(tmp_path, align_corners, exporter):
    torch.manual_seed(2)
    path = export(ConvBilinearConv(align_corners), (3, 5, 7), tmp_path / "bl.onnx", dynamo=exporter == "dynamo")
    g = load_model(path)
    assert [layer.kind for layer in g] == ["conv", "resize", "conv"]
    r = g.layers[1]
    assert r.mode == "linear" and r.scale == (2, 2) and r.out_shape == (6, 10, 14)
    # legacy: pytorch_half_pixel, dynamo: half_pixel (the same rule at integer factors)
    assert (r.coord == "align_corners") == align_corners
    assert parity(g, path) < TOL


@pytest.mark.parametrize("coord", ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"])
@pytest.mark.parametrize("scales,sizes", [([1, 1, 2, 2], None), ([1, 1, 3, 2], None), (None, [1, 3, 4, 20]),
                                          ([1, 1, 1, 1], None)])
def test_bilinear_coordinate_rules_match_onnxruntime(coord, scales, sizes):
    m = _resize_model({"mode": "linear", "coordinate_transformation_mode": coord}, scales, sizes)
    g = convert(m, source="m.onnx")
    r = g.layers[1]
    assert r.kind == "resize" and (r.mode, r.coord) == ("linear", coord)
    assert r.scale == ((3, 2) if scales == [1, 1, 3, 2] else (1, 4) if sizes else tuple(scales[2:]))
    assert parity(g, m) < TOL


@pytest.mark.parametrize("op,opset,mode", [("Upsample", 7, "linear"), ("Upsample", 9, "linear"),
                                           ("Resize", 10, "linear")])
def test_old_bilinear_upsampling_is_asymmetric(op, opset, mode):
    attrs = {"mode": mode}
    if op == "Upsample" and opset < 9:
        attrs["scales"] = [1.0, 1.0, 2.0, 3.0]
        m = _resize_model(attrs, op=op, opset=opset)
    elif op == "Upsample":
        m = _resize_model(attrs, op=op, opset=opset)
        m.graph.initializer.append(helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 3]))
        m.graph.node[1].input.append("scales")
    else:
        m = _resize_model(attrs, [1, 1, 2, 3], op=op, opset=opset)
    g = convert(m, source="m.onnx")
    r = g.layers[-1]
    assert (r.mode, r.coord, r.scale) == ("linear", "asymmetric", (2, 3))
    if opset >= 9:  # onnxruntime runs Upsample-9 and Resize-10 (Upsample-7 is converted by the front end)
        assert parity(g, m) < TOL


@pytest.mark.parametrize("attrs,scales,why", [
    ({"mode": "cubic"}, [1, 1, 2, 2], "mode=cubic"),
    ({"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize"}, [1, 1, 2, 2],
     "mode=linear with coordinate_transformation_mode=tf_crop_and_resize"),
    ({"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "round_prefer_floor"},
     [1, 1, 2, 2], "does not replicate pixels"),
    ({"mode": "nearest", "coordinate_transformation_mode": "align_corners"}, [1, 1, 2, 2], "does not replicate"),
    ({"mode": "nearest"}, [1, 1, 1.5, 2], "not an integer factor"),
    ({"mode": "nearest"}, [1, 1, 0.5, 0.5], "not an integer factor"),
    ({"mode": "nearest"}, [1, 2, 2, 2], "batch or channel"),
])
def test_other_resizes_are_refused_naming_the_node(attrs, scales, why):
    with pytest.raises(ModelError, match=why) as err:
        convert(_resize_model(attrs, scales), source="m.onnx")
    assert "the_resize" in str(err.value)


# ---- the integer rule ------------------------------------------------------------------------

@st.composite
def resize_problem(draw):
    c, h, w = draw(st.integers(1, 6)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    b = Builder("r", (c, h, w), draw(st.integers(0, 999)))
    src = b.act(GRAPH_INPUT, act="leaky", alpha=0.25, name="src")
    scale = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    name = b.resize(src, scale, act=draw(st.sampled_from(["none", "relu", "relu6"])), name="up")
    graph = b.build(output=name)
    fmt = QFormat(draw(st.integers(2, 16)), draw(st.integers(-4, 12)))
    formats = Formats(fmt, {"src": LayerFormat(fmt, None), "up": LayerFormat(fmt, None)})
    return graph, formats, integer_batch(draw, fmt, (c, h, w))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(resize_problem())
def test_reference_and_fast_path_replicate_exactly(p):
    graph, formats, x = p
    qg, ref = paths_agree(graph, formats, x, stats=True)
    q = qg["up"]
    assert q.shift == 0
    sy, sx = q.layer.scale
    src = ref.ints["src"]
    want = src[:, :, np.arange(src.shape[2] * sy) // sy][:, :, :, np.arange(src.shape[3] * sx) // sx]
    if q.act == "relu":
        want = np.maximum(want, 0)
    elif q.act == "relu6":
        want = np.clip(want, 0, q.six_q)
    np.testing.assert_array_equal(ref.ints["up"], want)


@st.composite
def bilinear_problem(draw):
    c, h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    b = Builder("bl", (c, h, w), draw(st.integers(0, 999)))
    src = b.act(GRAPH_INPUT, act="leaky", alpha=0.25, name="src")
    scale = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    coord = draw(st.sampled_from(LINEAR_COORDS))
    name = b.resize(src, scale, act=draw(st.sampled_from(["none", "relu", "relu6", "leaky"])), name="up",
                    mode="linear", coord=coord)
    graph = b.build(output=name)
    fmt = QFormat(draw(st.integers(2, 16)), draw(st.integers(-4, 12)))
    formats = Formats(fmt, {"src": LayerFormat(fmt, None), "up": LayerFormat(fmt, None)})
    return graph, formats, integer_batch(draw, fmt, (c, h, w))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bilinear_problem())
def test_bilinear_reference_and_fast_path_agree(p):
    """Every coordinate rule, factors 1 to 4, every activation."""
    graph, formats, x = p
    qg, ref = paths_agree(graph, formats, x, stats=True)
    q = qg["up"]
    assert q.shift == 2 * RESIZE_WEIGHT_BITS + q.in_fmts[0].frac - q.out.frac
    # the exact pre-rounding sum is the float interpolation of the integers, up to the weights'
    # rounding: none for the half-pixel rules and asymmetric at power-of-two factors
    src = ref.ints["src"].astype(np.float64)
    want = OP.float_ref(q.layer, src) * (1 << 2 * RESIZE_WEIGHT_BITS)
    acc = bilinear_int(q.layer, ref.ints["src"])
    exact = q.layer.coord != "align_corners" and all(s & (s - 1) == 0 for s in q.layer.scale)
    span = np.abs(src).max() if src.size else 0
    # each axis' weight w1 is off by e (|e| <= 1/2 unit) and w0 by -e, so an axis' error is
    # e (x1 - x0) <= span: the sum is off by <= span (2^(RESIZE_WEIGHT_BITS + 1) + 1)
    tol = 0 if exact else span * ((2 << RESIZE_WEIGHT_BITS) + 1) + 1e-6
    assert np.abs(acc - want).max() <= tol
    np.testing.assert_array_equal(ref.ints["up"], fx.requant(acc, q.shift, q.out, q.act, q.alpha_q))


def bilinear_error(bits: int, coord: str, scale: int = 2, seed: int = 0) -> tuple[float, float]:
    """(max error in output LSB against the float interpolation of the exact input integers, SQNR dB
    against the float interpolation of normal float inputs, sigma a quarter of the range, input
    quantisation included), on one 16 x 16 x 16 map at Q(bits, bits - 3), the quantiser's tied format."""
    fmt = QFormat(bits, bits - 3)
    b = Builder("e", (16, 16, 16), seed)
    name = b.resize(GRAPH_INPUT, scale, mode="linear", coord=coord, name="up")
    graph = b.build(output=name)
    rng = np.random.default_rng(seed)
    from cnn2gate.quant.params import quantize_params
    from cnn2gate.sim import simulate

    qg = quantize_params(graph, Formats(fmt, {"up": LayerFormat(fmt, None)}))
    xq = rng.integers(fmt.lo, fmt.hi + 1, size=(1, 16, 16, 16))
    y = simulate(graph, qg, np.ldexp(xq.astype(np.float64), -fmt.frac), path="reference").ints["up"]
    f = OP.float_ref(graph.layers[0], xq.astype(np.float64))  # in input LSB = output LSB (tied)
    max_err = float(np.abs(y - f).max())
    xf = rng.normal(0, 2.0 ** (bits - 1 - fmt.frac) / 4, size=(1, 16, 16, 16))
    yq = simulate(graph, qg, xf, path="reference").ints["up"] * 2.0 ** -fmt.frac
    ff = OP.float_ref(graph.layers[0], xf)
    sqnr = 10 * np.log10(np.sum(ff ** 2) / np.sum((yq - ff) ** 2))
    return max_err, float(sqnr)


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("coord,scale", [("half_pixel", 2), ("align_corners", 2), ("half_pixel", 3)])
def test_bilinear_error_against_float(bits, coord, scale):
    """One rounding of an exact sum: at most half an LSB where the weights are exact; align_corners'
    (and odd factors') weights are rounded to 2^-8, which costs up to the difference of two
    neighbours times 2^-RESIZE_WEIGHT_BITS more."""
    max_err, sqnr = bilinear_error(bits, coord, scale)
    exact = coord != "align_corners" and scale & (scale - 1) == 0
    assert max_err <= (0.5 if exact else 0.5 + 2 ** (bits - RESIZE_WEIGHT_BITS))
    # 8 bits: the input's own quantisation dominates; 16 bits: exact weights add nothing to it
    assert sqnr > (33 if bits == 8 else 80 if exact else 70)


# ---- kernels: cost, emulator -----------------------------------------------------------------

def unet_graph():
    """Encoder-decoder with a x2 and a (3, 2) upsampling, concat with the skip, channels padded at V = 4 and 8."""
    b = Builder("unet", (3, 8, 6), seed=7)
    skip = b.conv(GRAPH_INPUT, 5, 3, act="relu")
    y = b.conv(b.pool(skip, "max", 2), 10, 3, act="relu")
    up = b.resize(y, 2)
    z = b.conv(b.concat(up, skip), 6, 3, act="leaky")
    w = b.resize(b.pool(z, "max", (4, 3)), (4, 3), act="relu")
    b.conv(b.concat(w, z), 3, 1, act="none")
    return b.build()


def test_cost_reads_once_and_writes_the_output():
    from cnn2gate.hw import HwConfig
    from cnn2gate.hw.estimate import estimate

    g = unet_graph()
    est = estimate(g, "a10", HwConfig(vec_size=8, lane_num=4, conv_gp_size_x=3), quantize(g))
    ups = [layer for layer in est.layers if layer.kind == "resize"]
    assert [u.ops for u in ups] == [10 * 8 * 6, 6 * 8 * 6]
    assert [u.bytes for u in ups] == [10 * 4 * 3 + 10 * 8 * 6, 6 * 2 * 2 + 6 * 8 * 6]
    assert [u.compute_cycles for u in ups] == [2 * 8 * 6, 1 * 8 * 6]  # ceil(C / V) vectors per output pixel
    assert "resize" in est.resources.kernels


@emulator_test
@EMU_CONFIGS
def test_resize_kernel_bit_exact_in_emulator(tmp_path, cfg):
    g = unet_graph()
    out = compile_project(g, quantize(g), "a10", cfg, tmp_path / "p")
    x = np.random.default_rng(8).uniform(-1, 1, (2,) + g.input_shape)
    res = emulate_project(out, x, timeout=240, dump_dir=tmp_path / "dump")
    assert res.passed, res.summary()
    assert len(res.layer_mismatches) == len(g.layers) and not any(res.layer_mismatches.values())


def bilinear_graph():
    """Conv -> bilinear x2 (half_pixel) -> conv -> bilinear (2, 3) (align_corners) and a nearest (2, 3)
    of the same map, concatenated (so the bilinear output is a view at a channel offset) -> conv."""
    b = Builder("bilinear", (3, 6, 5), seed=9)
    a = b.conv(GRAPH_INPUT, 5, 3, act="relu")
    c = b.conv(b.resize(a, 2, mode="linear", coord="half_pixel"), 6, 3, act="leaky")
    up = b.resize(c, (2, 3), mode="linear", coord="align_corners")
    b.conv(b.concat(b.resize(c, (2, 3)), up), 3, 1, act="none")
    return b.build()


def test_bilinear_cost_prices_four_reads_per_output():
    from cnn2gate.hw import HwConfig
    from cnn2gate.hw.estimate import estimate

    g = bilinear_graph()
    est = estimate(g, "a10", HwConfig(vec_size=4, lane_num=4, conv_gp_size_x=3), quantize(g))
    ups = [layer for layer in est.layers if layer.kind == "resize"]
    # (C, OH, OW, bilinear): the x2, the (2, 3) bilinear, the (2, 3) nearest; 8-bit data, V = 4
    for u, (c, oh, ow, linear) in zip(ups, [(5, 12, 10, True), (6, 24, 30, True), (6, 24, 30, False)], strict=True):
        cv, out = -(-c // 4), c * oh * ow
        assert u.compute_cycles == cv * oh * ow  # one output vector a cycle
        if linear:  # 4 products per output; 4 input reads and 1 write per output, 16-byte taps per row and pixel
            assert (u.ops, u.bytes) == (4 * out, 5 * out + 16 * cv * oh * (ow + 1))
        else:
            assert (u.ops, u.bytes) == (out, out + out // 6)
    res = est.resources.kernels["resize"]
    assert res["dsp"] >= 4 * 4 // 2  # 4 V products of a 25-bit weight: at most 2 per DSP block


@emulator_test
@EMU_CONFIGS
def test_bilinear_kernel_bit_exact_in_emulator(tmp_path, cfg):
    g = bilinear_graph()
    out = compile_project(g, quantize(g), "a10", cfg, tmp_path / "p")
    x = np.random.default_rng(3).uniform(-1, 1, (2,) + g.input_shape)
    res = emulate_project(out, x, timeout=240, dump_dir=tmp_path / "dump")
    assert res.passed, res.summary()
    assert len(res.layer_mismatches) == len(g.layers) and not any(res.layer_mismatches.values())


def test_bilinear_branch_is_built_and_priced_only_with_a_bilinear_layer():
    """The nearest-only U-Net's resize kernel has no bilinear loop nest and no multipliers; the
    design with a bilinear layer has both; source and price follow the one lowering (plan.depths)."""
    from cnn2gate.codegen.plan import make_plan
    from cnn2gate.codegen.project import render_context
    from cnn2gate.codegen.render import render_all
    from cnn2gate.hw import HwConfig
    from cnn2gate.hw.arch import GENERATED
    from cnn2gate.hw.estimate import estimate
    from cnn2gate.hw.resources import lsus
    from cnn2gate.quant import quantize_params

    cfg = HwConfig(vec_size=8, lane_num=4, conv_gp_size_x=3)
    priced = {}
    for g, bilinear in ((unet_graph(), False), (bilinear_graph(), True)):
        qg = quantize(g)
        plan = make_plan(quantize_params(g, qg), cfg)
        assert plan.depths.bilinear == int(bilinear)
        src = render_all(render_context(plan, "a10"))["device/cnn2gate.cl"].decode("ascii")
        body = src[src.index("void resize("):]
        body = body[:body.index("\n}\n")]
        assert ("taps[" in body) == bilinear and ("if (linear)" in body) == bilinear
        est = estimate(g, "a10", cfg, qg)
        assert est.resources.buffers == plan.depths
        priced[bilinear] = est.resources.kernels["resize"]
        wide, narrow = lsus("resize", GENERATED, 8, 4, plan.depths)
        assert narrow == (7 * 8 + 8 if bilinear else 2 * 8)  # V in, V out; bilinear: 4 V in, V out, 8 taps
    assert priced[False]["dsp"] == 0 and priced[True]["dsp"] >= 4 * 8 // 2
    assert priced[False]["alm"] < priced[True]["alm"] and priced[False]["ram_blocks"] <= priced[True]["ram_blocks"]
