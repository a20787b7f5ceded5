"""Unit tests of front-end helpers: name sanitizing, constant folding, NaN in Constant nodes."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper

from cnn2gate.errors import ModelError
from cnn2gate.frontend import convert
from cnn2gate.frontend.names import MAX_LEN, NameAllocator, sanitize
import onnx_builders as B


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=80), min_size=1, max_size=20))
def test_allocated_names_are_safe_and_unique(raws):
    alloc = NameAllocator(reserved=["input"])
    names = [alloc.take(raw, f"conv{i}") for i, raw in enumerate(raws)]
    for name in names:
        assert name.isidentifier() and name.isascii() and len(name) <= MAX_LEN
        assert not name[0].isdigit()
    lowered = [n.lower() for n in names]
    assert len(set(lowered)) == len(lowered) and "input" not in lowered


@pytest.mark.parametrize("raw,expected", [
    ("/features/features.0/Conv", "features_features_0_Conv"),
    ("", "dense3"),
    ("___", "dense3"),
    ("12abc", "dense_12abc"),
    ("ünïcode conv", "n_code_conv"),
])
def test_sanitize_examples(raw, expected):
    assert sanitize(raw, "dense3") == expected


def test_shape_subgraph_folded_before_reshape():
    """Shape → Gather → Unsqueeze → Concat → Reshape (what exporters emit for flatten) folds away."""
    b = B.GraphBuilder("shape_chain")
    x = b.conv("data", 3, 4, 3, "conv")
    shape = b.node("Shape", [x], name="shape")
    batch = b.node("Gather", [shape, b.tensor("zero", np.array(0, dtype=np.int64))], name="gather", axis=0)
    batch = b.node("Unsqueeze", [batch, b.tensor("axes", np.array([0], dtype=np.int64))], name="unsqueeze")
    target = b.node("Concat", [batch, b.tensor("minus1", np.array([-1], dtype=np.int64))], name="concat", axis=0)
    x = b.node("Reshape", [x, target], name="reshape")
    x = b.node("Gemm", [x, b.weight("fc.w", (3, 4 * 6 * 6)), b.weight("fc.b", (3,))], name="fc", transB=1)
    model = b.build([1, 3, 8, 8], x)
    g = convert(model)
    assert [layer.kind for layer in g] == ["conv", "dense"]
    assert g.meta["passes"]["fold_constants"] >= 4
    assert B.parity(g, model) < 1e-4


def test_nan_in_constant_node_is_named():
    b = B.GraphBuilder("nan_const")
    x = b.conv("data", 3, 4, 3, "conv")
    bad = np.full((1, 4, 1, 1), np.nan, dtype=np.float32)
    b.nodes.append(helper.make_node("Constant", [], ["offset"], name="offset_const", value=numpy_helper.from_array(bad)))
    x = b.node("Add", [x, "offset"], name="add_offset")
    model = b.build([1, 3, 8, 8], x)
    with pytest.raises(ModelError, match="'offset' \\(read by 'add_offset'\\) holds 4 NaN/Inf"):
        convert(model)


@settings(max_examples=60, deadline=None)
@given(
    op=st.sampled_from(["MaxPool", "AveragePool"]),
    size=st.integers(4, 11),
    kernel=st.integers(1, 4),
    stride=st.integers(1, 3),
    pads=st.tuples(*[st.integers(0, 2)] * 4),
    ceil=st.booleans(),
    include_pad=st.booleans(),
)
def test_pooling_matches_onnxruntime_or_is_rejected(op, size, kernel, stride, pads, ceil, include_pad):
    """Any pooling the front end accepts must equal onnxruntime; the rest is a ModelError with a reason."""
    from hypothesis import assume

    assume(all(p < kernel for p in pads) and size + pads[0] + pads[2] >= kernel)
    attrs = dict(kernel_shape=[kernel, kernel], strides=[stride, stride], pads=list(pads), ceil_mode=int(ceil))
    if op == "AveragePool":
        attrs["count_include_pad"] = int(include_pad)
    b = B.GraphBuilder("pool")
    model = b.build([1, 2, size, size], b.node(op, ["data"], name="pool", **attrs))
    try:
        g = convert(model)
    except ModelError as err:
        assert "ceil_mode" in str(err)  # the only pooling the IR cannot express
        return
    assert B.parity(g, model, seed=size) < 1e-5
