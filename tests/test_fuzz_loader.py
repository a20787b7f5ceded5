"""Fuzzing the ONNX loader: whatever the bytes, `load_model` returns a Graph or raises Cnn2GateError.

Two families of inputs, both derived from small valid models:

* byte mutations of the serialized file: bit flips, truncation, insertions, deletions,
  overwrites (mostly rejected by the protobuf parser or the ONNX checker);
* protobuf mutations that still serialize: attributes of the wrong type, negative,
  zero and huge dimensions, missing initializers, huge kernels, strides and pads,
  wrong or missing op versions, renamed ops, rewired inputs, wrong tensor types.

A Graph that is accepted must also be usable: positive shapes and finite weights.
`benchmarks/fuzz_loader.py` runs the same generators for longer.
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from cnn2gate.errors import Cnn2GateError
from cnn2gate.frontend import load_model
from cnn2gate.ir.layers import Graph

# ---- seed models --------------------------------------------------------------------------


def _init(name, shape, rng, scale=0.5):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name=name)


def seed_models() -> list[onnx.ModelProto]:
    """Small valid models covering most supported ops; tiny weights so mutations hit structure."""
    rng = np.random.default_rng(7)
    f32 = TensorProto.FLOAT

    # 1: conv + BN + relu, residual add, maxpool, concat, global pool, flatten, gemm, softmax
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        n("BatchNormalization", ["c1", "s", "bb", "m", "v"], ["bn1"], name="bn1", epsilon=1e-5),
        n("Relu", ["bn1"], ["r1"], name="relu1"),
        n("Conv", ["r1", "w2"], ["c2"], name="conv2", kernel_shape=[1, 1], group=1),
        n("Add", ["c2", "r1"], ["a1"], name="add1"),
        n("MaxPool", ["a1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        n("Concat", ["p1", "p1"], ["cat"], name="cat1", axis=1),
        n("GlobalAveragePool", ["cat"], ["g"], name="gap"),
        n("Flatten", ["g"], ["f"], name="flat", axis=1),
        n("Gemm", ["f", "wf", "bf"], ["y0"], name="fc", transB=1),
        n("Softmax", ["y0"], ["y"], name="prob", axis=1),
    ]
    inits = [_init("w1", (2, 2, 3, 3), rng), _init("b1", (2,), rng), _init("w2", (2, 2, 1, 1), rng),
             numpy_helper.from_array(np.ones(2, np.float32), "s"), _init("bb", (2,), rng), _init("m", (2,), rng),
             numpy_helper.from_array(np.ones(2, np.float32), "v"), _init("wf", (3, 4), rng), _init("bf", (3,), rng)]
    g1 = helper.make_graph(nodes, "fuzz1", [helper.make_tensor_value_info("x", f32, [1, 2, 6, 6])],
                           [helper.make_tensor_value_info("y", f32, [1, 3])], initializer=inits)
    m1 = helper.make_model(g1, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)

    # 2: depthwise conv, clip (relu6), average pool with pads, LRN, reshape with a constant shape, matmul
    nodes = [
        n("Conv", ["x", "dw"], ["d"], name="dw", kernel_shape=[3, 3], group=2, pads=[1, 1, 1, 1]),
        n("Clip", ["d", "lo", "hi"], ["d6"], name="relu6"),
        n("AveragePool", ["d6"], ["ap"], name="avg", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
          count_include_pad=0),
        n("LRN", ["ap"], ["l"], name="lrn", size=3, alpha=1e-4, beta=0.75, bias=1.0),
        n("Reshape", ["l", "shape"], ["flat"], name="reshape"),
        n("MatMul", ["flat", "wm"], ["y"], name="mm"),
    ]
    inits = [_init("dw", (2, 1, 3, 3), rng), numpy_helper.from_array(np.array(0, np.float32), "lo"),
             numpy_helper.from_array(np.array(6, np.float32), "hi"),
             numpy_helper.from_array(np.array([1, -1], np.int64), "shape"), _init("wm", (18, 4), rng)]
    g2 = helper.make_graph(nodes, "fuzz2", [helper.make_tensor_value_info("x", f32, [1, 2, 6, 6])],
                           [helper.make_tensor_value_info("y", f32, [1, 4])], initializer=inits)
    m2 = helper.make_model(g2, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)
    for m in (m1, m2):
        onnx.checker.check_model(m, full_check=True)
    return [m1, m2]


SEEDS = seed_models()
SEED_BYTES = [m.SerializeToString() for m in SEEDS]

# ---- byte mutations ---------------------------------------------------------------------------

_pos = st.integers(min_value=0, max_value=2**20)
byte_edit = st.one_of(
    st.tuples(st.just("flip"), _pos, st.integers(0, 7)),
    st.tuples(st.just("truncate"), _pos),
    st.tuples(st.just("insert"), _pos, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), _pos, st.integers(1, 16)),
    st.tuples(st.just("overwrite"), _pos, st.binary(min_size=1, max_size=8)),
)


def apply_byte_edits(data: bytes, edits) -> bytes:
    b = bytearray(data)
    for edit in edits:
        kind, pos = edit[0], edit[1] % (len(b) + 1)
        if kind == "flip" and pos < len(b):
            b[pos] ^= 1 << edit[2]
        elif kind == "truncate":
            del b[pos:]
        elif kind == "insert":
            b[pos:pos] = edit[2]
        elif kind == "delete":
            del b[pos : pos + edit[2]]
        elif kind == "overwrite":
            b[pos : pos + len(edit[2])] = edit[2]
    return bytes(b)


# ---- protobuf mutations -------------------------------------------------------------------------

_ATTR_NAMES = ["kernel_shape", "strides", "pads", "group", "axis", "dilations", "epsilon", "transB", "size",
               "auto_pad", "count_include_pad", "alpha", "beta", "ceil_mode", "keepdims", "to", "perm", "mode"]
_OPS = ["Conv", "Relu", "Gemm", "MaxPool", "Concat", "Add", "Sin", "Loop", "If", "Softmax", "Reshape", "Flatten",
        "Resize", "Upsample", "ConvTranspose", "BatchNormalization", "Clip", "LRN", "Transpose", "Pad", "Slice",
        "Gather", "Shape", "Identity", "Dropout", "Squeeze", "Unsqueeze", "ReduceMean", "Sum", "Mul", ""]
_weird_int = st.one_of(st.integers(-3, 8), st.sampled_from([0, -1, 2**31 - 1, -(2**31), 2**40, 10**9]))
_attr_value = st.one_of(
    _weird_int,
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.text(max_size=6),
    st.lists(_weird_int, max_size=6),
    st.lists(st.floats(-1e3, 1e3, width=32), max_size=4),
    st.lists(st.text(max_size=3), min_size=1, max_size=3),
)


def _attr(name, value) -> onnx.AttributeProto:
    if isinstance(value, list) and not value:
        return helper.make_attribute(name, [], attr_type=onnx.AttributeProto.INTS)
    if isinstance(value, list) and isinstance(value[0], str):
        return helper.make_attribute(name, [v.encode() for v in value])
    return helper.make_attribute(name, value)


proto_edit = st.one_of(
    st.tuples(st.just("attr"), _pos, st.sampled_from(_ATTR_NAMES), _attr_value),
    st.tuples(st.just("drop_attr"), _pos, _pos),
    st.tuples(st.just("input_dim"), st.integers(0, 3), st.one_of(_weird_int, st.just("sym"))),
    st.tuples(st.just("input_rank"), st.integers(0, 6)),
    st.tuples(st.just("drop_init"), _pos),
    st.tuples(st.just("init_dims"), _pos, st.lists(_weird_int, max_size=5)),
    st.tuples(st.just("init_type"), _pos, st.integers(0, 24)),
    st.tuples(st.just("init_values"), _pos, st.sampled_from(["nan", "inf", "empty", "huge", "int"])),
    st.tuples(st.just("huge_kernel"), _pos, st.sampled_from([10**4, 10**6, 2**31 - 1, 2**40])),
    st.tuples(st.just("opset"), st.one_of(st.integers(-2, 30), st.just(10**6)), st.sampled_from(["", "ai.onnx", "com.evil"])),
    st.tuples(st.just("no_opset"),),
    st.tuples(st.just("ir_version"), st.integers(-1, 20)),
    st.tuples(st.just("op_type"), _pos, st.sampled_from(_OPS)),
    st.tuples(st.just("rewire"), _pos, _pos, st.sampled_from(["", "nope", "x", "y", "same"])),
    st.tuples(st.just("dup_node"), _pos),
    st.tuples(st.just("drop_node"), _pos),
    st.tuples(st.just("swap_nodes"), _pos, _pos),
    st.tuples(st.just("domain"), _pos, st.sampled_from(["com.microsoft", "ai.onnx.ml", "x"])),
    st.tuples(st.just("io"), st.sampled_from(["no_input", "no_output", "two_inputs", "two_outputs", "int_input"])),
)


def apply_proto_edits(model: onnx.ModelProto, edits) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    for edit in edits:
        kind = edit[0]
        nodes, inits = g.node, g.initializer
        if kind == "attr" and nodes:
            node = nodes[edit[1] % len(nodes)]
            keep = [a for a in node.attribute if a.name != edit[2]]
            del node.attribute[:]
            node.attribute.extend(keep + [_attr(edit[2], edit[3])])
        elif kind == "drop_attr" and nodes:
            node = nodes[edit[1] % len(nodes)]
            if node.attribute:
                del node.attribute[edit[2] % len(node.attribute)]
        elif kind == "input_dim" and g.input:
            dims = g.input[0].type.tensor_type.shape.dim
            if edit[1] < len(dims):
                if edit[2] == "sym":
                    dims[edit[1]].dim_param = "N"
                else:
                    dims[edit[1]].dim_value = edit[2]
        elif kind == "input_rank" and g.input:
            shape = g.input[0].type.tensor_type.shape
            dims = [d.dim_value for d in shape.dim]
            del shape.dim[:]
            for v in (dims + [4] * 6)[: edit[1]]:
                shape.dim.add().dim_value = v
        elif kind == "drop_init" and inits:
            del inits[edit[1] % len(inits)]
        elif kind == "init_dims" and inits:
            t = inits[edit[1] % len(inits)]
            del t.dims[:]
            t.dims.extend(edit[2])
        elif kind == "init_type" and inits:
            inits[edit[1] % len(inits)].data_type = edit[2]
        elif kind == "init_values" and inits:
            t = inits[edit[1] % len(inits)]
            try:
                a = numpy_helper.to_array(t).astype(np.float32)
            except Exception:  # an earlier edit broke this tensor already
                continue
            if edit[2] == "nan" and a.size:
                a.flat[0] = np.nan
            elif edit[2] == "inf" and a.size:
                a.flat[-1] = np.inf
            elif edit[2] == "empty":
                a = np.zeros((0,) + a.shape[1:], np.float32)
            elif edit[2] == "huge":
                with np.errstate(over="ignore"):
                    a = a * np.float32(1e30)  # finite, but products overflow float32
            elif edit[2] == "int":
                a = np.nan_to_num(a).astype(np.int64)
            t.CopyFrom(numpy_helper.from_array(a, t.name))
        elif kind == "huge_kernel" and nodes:
            conv_like = [n for n in nodes if n.op_type in ("Conv", "MaxPool", "AveragePool")] or list(nodes)
            node = conv_like[edit[1] % len(conv_like)]
            for name, value in (("kernel_shape", [edit[2], edit[2]]), ("pads", [edit[2]] * 4), ("strides", [edit[2]] * 2)):
                if edit[1] % 3 == ("kernel_shape", "pads", "strides").index(name):
                    keep = [a for a in node.attribute if a.name != name]
                    del node.attribute[:]
                    node.attribute.extend(keep + [helper.make_attribute(name, value)])
        elif kind == "opset":
            del m.opset_import[:]
            m.opset_import.append(helper.make_opsetid(edit[2], edit[1]))
        elif kind == "no_opset":
            del m.opset_import[:]
        elif kind == "ir_version":
            m.ir_version = edit[1]
        elif kind == "op_type" and nodes:
            nodes[edit[1] % len(nodes)].op_type = edit[2]
        elif kind == "rewire" and nodes:
            node = nodes[edit[1] % len(nodes)]
            if node.input:
                i = edit[2] % len(node.input)
                node.input[i] = node.output[0] if edit[3] == "same" else edit[3]
        elif kind == "dup_node" and nodes:
            nodes.add().CopyFrom(nodes[edit[1] % len(nodes)])
        elif kind == "drop_node" and nodes:
            del nodes[edit[1] % len(nodes)]
        elif kind == "swap_nodes" and nodes:
            i, j = edit[1] % len(nodes), edit[2] % len(nodes)
            a, b = onnx.NodeProto(), onnx.NodeProto()
            a.CopyFrom(nodes[i])
            b.CopyFrom(nodes[j])
            nodes[i].CopyFrom(b)
            nodes[j].CopyFrom(a)
        elif kind == "domain" and nodes:
            nodes[edit[1] % len(nodes)].domain = edit[2]
        elif kind == "io":
            what = edit[1]
            if what == "no_input":
                del g.input[:]
            elif what == "no_output":
                del g.output[:]
            elif what == "two_inputs":
                g.input.append(helper.make_tensor_value_info("x2", TensorProto.FLOAT, [1, 2, 6, 6]))
            elif what == "two_outputs":
                g.output.append(helper.make_tensor_value_info(nodes[0].output[0], TensorProto.FLOAT, None))
            elif what == "int_input" and g.input:
                g.input[0].type.tensor_type.elem_type = TensorProto.INT64
    return m


# ---- the property ---------------------------------------------------------------------------------


#: how the front end words an unexpected internal exception it turned into a ModelError
WRAPPED = "cannot convert the model ("


def check_outcome(path: Path, messages: list | None = None) -> str:
    """'accepted' or 'rejected'; any other exception propagates (that is a bug).

    messages: if given, the rejection message is appended (the benchmark's statistics)."""
    try:
        graph = load_model(path)
    except Cnn2GateError as err:
        assert str(err).strip(), "an empty error message"
        assert str(path) in str(err) or path.name in str(err), f"the message does not name the file: {err}"
        if messages is not None:
            messages.append(str(err))
        return "rejected"
    assert isinstance(graph, Graph)
    for layer in graph.layers:  # an accepted graph must be usable
        assert all(int(d) > 0 for d in layer.out_shape), (layer.name, layer.out_shape)
        for arr in (getattr(layer, "weight", None), getattr(layer, "bias", None)):
            if arr is not None:
                assert np.all(np.isfinite(arr)), layer.name
    assert all(int(d) > 0 for d in graph.input_shape)
    assert math.isfinite(float(graph.total_macs())) if hasattr(graph, "total_macs") else True
    return "accepted"


def write_case(folder: Path, data: bytes) -> Path:
    path = folder / "case.onnx"
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory(prefix="cnn2gate-fuzz-") as d:
        yield Path(d)


FUZZ = settings(max_examples=int(os.environ.get("CNN2GATE_FUZZ_EXAMPLES", "3000")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])


@FUZZ
@given(seed=st.integers(0, len(SEEDS) - 1), edits=st.lists(byte_edit, min_size=1, max_size=4))
def test_byte_mutations_are_graphs_or_cnn2gate_errors(folder, seed, edits):
    check_outcome(write_case(folder, apply_byte_edits(SEED_BYTES[seed], edits)))


@FUZZ
@given(seed=st.integers(0, len(SEEDS) - 1), edits=st.lists(proto_edit, min_size=1, max_size=3))
def test_proto_mutations_are_graphs_or_cnn2gate_errors(folder, seed, edits):
    check_outcome(write_case(folder, apply_proto_edits(SEEDS[seed], edits).SerializeToString()))


def test_seed_models_load(folder):
    for data in SEED_BYTES:
        assert check_outcome(write_case(folder, data)) == "accepted"
