"""Nearest upsampling (ops/resize.py): torch exports and onnx.helper graphs against onnxruntime,
the refusals, the integer rule (reference = replication oracle), cost, and the resize kernel
bit-exact in the emulator."""
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


def _resize_model(attrs, scales=None, sizes=None, shape=(1, 3, 4, 5), opset=13, op="Resize"):
    inits, ins = [], ["x"]
    if op == "Resize":
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


@pytest.mark.parametrize("attrs,scales,why", [
    ({"mode": "linear"}, [1, 1, 2, 2], "mode=linear"),
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
