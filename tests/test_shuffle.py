"""Channel split (ops/split.py, done by addressing) and channel shuffle (ops/shuffle.py, its own kernel):
onnx.helper graphs against onnxruntime, the integer rule (reference = fast path = index oracle), and
ShuffleNetV2 (examples/models.py) from both exporters, compiled and emulated bit-exact."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from cnn2gate.emulate import emulate_project
from cnn2gate.frontend import convert
from cnn2gate.ir import GRAPH_INPUT
from cnn2gate.ir.copies import add_view_copies
from cnn2gate.ops.shuffle import source_channels
from cnn2gate.pipeline import compile_project
from cnn2gate.quant.formats import Formats, LayerFormat, QFormat
from cnn2gate.zoo import Builder
from onnx_builders import parity
from sim_checks import emulator_test, integer_batch, paths_agree

TOL = 1e-4


def _w(name, shape, seed):
    v = np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 0.3
    return helper.make_tensor(name, TensorProto.FLOAT, list(shape), v.reshape(-1).tolist())


def _model(mid_nodes, mid_inits, tail_in, c_tail, opset=13, c=8):
    """conv(3->c) -> mid -> concat(tail_in) -> conv(c_tail->4)."""
    nodes = [helper.make_node("Conv", ["x", "w0"], ["a"], pads=[1, 1, 1, 1]), *mid_nodes,
             helper.make_node("Concat", tail_in, ["cat"], axis=1),
             helper.make_node("Conv", ["cat", "w1"], ["y"])]
    inits = [_w("w0", (c, 3, 3, 3), 0), _w("w1", (4, c_tail, 1, 1), 1), *mid_inits]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "c", "h", "w"])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _ints(name, v):
    return helper.make_tensor(name, TensorProto.INT64, [len(v)], v)


@pytest.mark.parametrize("opset", [11, 13])
def test_split_matches_onnxruntime(opset):
    # uneven parts, each read by its own conv, and the first also straight into the concat
    if opset == 11:
        split = helper.make_node("Split", ["a"], ["s0", "s1", "s2"], axis=1, split=[2, 3, 3])
        inits = []
    else:
        split = helper.make_node("Split", ["a", "sizes"], ["s0", "s1", "s2"], axis=1)
        inits = [_ints("sizes", [2, 3, 3])]
    nodes = [split, helper.make_node("Conv", ["s1", "wa"], ["b1"]), helper.make_node("Relu", ["s2"], ["r2"])]
    m = _model(nodes, inits + [_w("wa", (3, 3, 1, 1), 2)], ["s0", "b1", "r2"], 8, opset)
    g = convert(m, source="m.onnx")
    kinds = [layer.kind for layer in g]
    assert kinds.count("split") == 3
    assert [(layer.c_off, layer.channels) for layer in g if layer.kind == "split"] == [(0, 2), (2, 3), (5, 3)]
    assert parity(g, m) < TOL


def test_channel_slice_matches_onnxruntime():
    nodes = [helper.make_node("Slice", ["a", "st", "en", "ax"], ["s0"]),
             helper.make_node("Slice", ["a", "st2", "en2", "ax"], ["s1"])]
    inits = [_ints("st", [0]), _ints("en", [3]), _ints("ax", [1]), _ints("st2", [3]), _ints("en2", [2 ** 62])]
    m = _model(nodes, inits, ["s1", "s0"], 8)
    g = convert(m, source="m.onnx")
    assert [(layer.c_off, layer.channels) for layer in g if layer.kind == "split"] == [(0, 3), (3, 5)]
    assert parity(g, m) < TOL


@pytest.mark.parametrize("groups", [2, 4])
def test_shuffle_pattern_matches_onnxruntime(groups):
    c = 8
    nodes = [helper.make_node("Reshape", ["a", "s5"], ["r5"]),
             helper.make_node("Transpose", ["r5"], ["t5"], perm=[0, 2, 1, 3, 4]),
             helper.make_node("Reshape", ["t5", "s4"], ["sh"])]
    inits = [_ints("s5", [1, groups, c // groups, 5, 6]), _ints("s4", [1, c, 5, 6])]
    m = _model(nodes, inits, ["sh"], c)
    g = convert(m, source="m.onnx")
    assert [layer.kind for layer in g] == ["conv", "shuffle", "concat", "conv"]
    assert g.layers[1].groups == groups
    assert parity(g, m) < TOL


# ---- the integer rule ------------------------------------------------------------------------

@st.composite
def split_shuffle_problem(draw):
    groups = draw(st.integers(1, 4))
    c = groups * draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    b = Builder("s", (c, h, w), draw(st.integers(0, 999)))
    src = b.act(GRAPH_INPUT, act="leaky", alpha=0.25, name="src")
    sh = b.shuffle(src, groups, name="sh")
    off = draw(st.integers(0, c - 1))
    sp = b.split(sh, off, draw(st.integers(1, c - off)), name="sp")
    graph = b.build(output=sp)
    fmt = QFormat(draw(st.integers(2, 16)), draw(st.integers(-4, 12)))
    formats = Formats(fmt, {n: LayerFormat(fmt, None) for n in ("src", "sh", "sp")})
    return graph, formats, integer_batch(draw, fmt, (c, h, w))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(split_shuffle_problem())
def test_reference_and_fast_path_permute_exactly(p):
    graph, formats, x = p
    qg, ref = paths_agree(graph, formats, x)
    sh, sp = qg["sh"].layer, qg["sp"].layer
    src = ref.ints["src"]
    c = src.shape[1]
    want = src[:, [(o % sh.groups) * (c // sh.groups) + o // sh.groups for o in range(c)]]
    np.testing.assert_array_equal(ref.ints["sh"], want)
    np.testing.assert_array_equal(ref.ints["sp"], want[:, sp.c_off:sp.c_off + sp.channels])


def test_source_channels_is_a_permutation():
    for c, g in [(8, 2), (12, 3), (6, 1)]:
        assert sorted(source_channels(c, g)) == list(range(c))


def test_a_split_read_by_a_concat_gets_a_copy():
    b = Builder("c", (4, 3, 3), seed=0)
    x = b.conv(GRAPH_INPUT, 8, 3)
    s0, s1 = b.split(x, 0, 4), b.split(x, 4, 4)
    b.concat(s0, b.conv(s1, 4, 1))
    g = add_view_copies(b.build())
    assert [layer.kind for layer in g] == ["conv", "split", "split", "conv", "act", "concat"]


# ---- ShuffleNetV2 -------------------------------------------------------------------------------

@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_shufflenet_v2_parses_and_matches_onnxruntime(exporter):
    import sys
    from pathlib import Path

    from cnn2gate.frontend import load_model

    root = str(Path(__file__).resolve().parents[1])
    sys.path.insert(0, root)
    try:
        from examples import models
    finally:
        sys.path.remove(root)
    path = str(models.export("shufflenet_v2", exporter=exporter, **models.SMALL["shufflenet_v2"]))
    g = load_model(path)
    kinds = [layer.kind for layer in g]
    # 13 stride-1 units: two channel ranges each, the passed-through half copied into its concat
    assert kinds.count("split") == 26 and kinds.count("shuffle") == 16 and kinds.count("concat") == 16
    assert parity(g, path) < TOL


@emulator_test
def test_shufflenet_v2_bit_exact_in_emulator(tmp_path, example_model):
    g, fm = example_model("shufflenet_v2")
    out = compile_project(g, fm, "a10", {"vec_size": 4, "lane_num": 4, "conv_gp_size_x": 3}, tmp_path / "p")
    res = emulate_project(out, timeout=300, dump_dir=tmp_path / "dump")
    assert res.passed, res.summary()
    assert len(res.layer_mismatches) == len(g.layers) and not any(res.layer_mismatches.values())
