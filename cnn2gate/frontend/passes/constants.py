"""Constant folding: evaluate nodes whose inputs are all known, with NumPy.

This is what removes the shape arithmetic exporters emit for Flatten/Reshape
(Shape → Gather → Unsqueeze → Concat → Reshape), once the batch is fixed to 1.
Only the small op set below is evaluated; other constant subgraphs stay and are
reported by lowering if they remain unsupported.
"""
from __future__ import annotations

import numpy as np
from onnx import helper

from ..wgraph import Node, WGraph
from .base import Rule


def _ints(a) -> list[int]:
    return [int(v) for v in np.asarray(a).reshape(-1)]


def _axes(node: Node, inputs: list, pos: int):
    """Axes given as attribute (old opsets) or as input `pos` (opset 13+)."""
    if "axes" in node.attrs:
        return node.attrs["axes"]
    if len(inputs) > pos and inputs[pos] is not None:
        return _ints(inputs[pos])
    return None


def _shape(g, node, x):
    start = int(node.attrs.get("start", 0))
    end = node.attrs.get("end")
    return np.array(x.shape[start:end], dtype=np.int64)


def _gather(g, node, x, idx):
    return np.take(x, idx.astype(np.int64), axis=int(node.attrs.get("axis", 0)))


def _unsqueeze(g, node, x, *rest):
    axes = _axes(node, [x, *rest], 1)
    out = x
    rank = x.ndim + len(axes)
    for a in sorted(a % rank for a in axes):
        out = np.expand_dims(out, a)
    return out


def _squeeze(g, node, x, *rest):
    axes = _axes(node, [x, *rest], 1)
    return np.squeeze(x, axis=None if axes is None else tuple(a % x.ndim for a in axes))


def _concat(g, node, *xs):
    return np.concatenate(xs, axis=int(node.attrs["axis"]))


def _cast(g, node, x):
    return x.astype(helper.tensor_dtype_to_np_dtype(int(node.attrs["to"])))


def _slice(g, node, x, *rest):
    if "starts" in node.attrs:  # opset < 10
        starts, ends = node.attrs["starts"], node.attrs["ends"]
        axes = node.attrs.get("axes", list(range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts, ends = _ints(rest[0]), _ints(rest[1])
        axes = _ints(rest[2]) if len(rest) > 2 and rest[2] is not None else list(range(len(starts)))
        steps = _ints(rest[3]) if len(rest) > 3 and rest[3] is not None else [1] * len(starts)
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        index[a % x.ndim] = slice(s, e, st)  # Python slicing clamps like ONNX
    return x[tuple(index)]


def _reshape(g, node, x, shape):
    dims = _ints(shape)
    if not node.attrs.get("allowzero", 0):
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return x.reshape(dims)


def _binary(fn):
    def run(g, node, a, b):
        if np.issubdtype(a.dtype, np.integer) and fn is np.divide:
            return np.trunc(a / b).astype(a.dtype)  # ONNX integer Div truncates
        return fn(a, b).astype(np.result_type(a, b))
    return run


def _transpose(g, node, x):
    perm = node.attrs.get("perm")
    return np.transpose(x, perm)


def _constant_of_shape(g, node, shape):
    value = node.attrs.get("value", np.zeros(1, dtype=np.float32))
    return np.full(_ints(shape), np.asarray(value).reshape(-1)[0], dtype=np.asarray(value).dtype)


def _flatten(g, node, x):
    axis = int(node.attrs.get("axis", 1)) % max(x.ndim, 1)
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


def _range(g, node, start, limit, delta):
    return np.arange(start.item(), limit.item(), delta.item(), dtype=start.dtype)


EVALUATORS = {
    "Shape": _shape, "Gather": _gather, "Unsqueeze": _unsqueeze, "Squeeze": _squeeze,
    "Concat": _concat, "Cast": _cast, "Slice": _slice, "Reshape": _reshape,
    "Add": _binary(np.add), "Sub": _binary(np.subtract), "Mul": _binary(np.multiply), "Div": _binary(np.divide),
    "Transpose": _transpose, "ConstantOfShape": _constant_of_shape, "Flatten": _flatten, "Range": _range,
    "Identity": lambda g, node, x: x,
}


def _input_value(g: WGraph, node: Node, i: int, tensor: str):
    if not tensor:
        return None
    if i == 0 and node.op == "Shape":
        shape = g.shape(tensor)
        return None if shape is None else np.broadcast_to(np.float32(0), shape)  # only the shape is read
    return g.consts.get(tensor)


def _foldable(g: WGraph, node: Node) -> bool:
    if node.domain or node.op not in EVALUATORS or len(node.outputs) != 1:
        return False
    for i, t in enumerate(node.inputs):
        if not t:
            continue
        if node.op == "Shape" and i == 0:
            if g.shape(t) is None:
                return False
        elif t not in g.consts:
            return False
    return True


def _fold(g: WGraph, node: Node) -> None:
    values = [_input_value(g, node, i, t) for i, t in enumerate(node.inputs)]
    result = np.asarray(EVALUATORS[node.op](g, node, *values))
    g.remove(node)
    g.consts[node.outputs[0]] = result
    g.shapes[node.outputs[0]] = tuple(result.shape)


_NUMERIC_CONSTANT = ("value", "value_float", "value_floats", "value_int", "value_ints")


def _is_constant_node(g: WGraph, node: Node) -> bool:
    return node.op == "Constant" and not node.domain and any(k in node.attrs for k in _NUMERIC_CONSTANT)


def _constant_to_value(g: WGraph, node: Node) -> None:
    attrs = node.attrs
    if "value" in attrs:
        value = np.asarray(attrs["value"])
    elif "value_float" in attrs:
        value = np.array(attrs["value_float"], dtype=np.float32)
    elif "value_floats" in attrs:
        value = np.array(attrs["value_floats"], dtype=np.float32)
    elif "value_int" in attrs:
        value = np.array(attrs["value_int"], dtype=np.int64)
    else:
        value = np.array(attrs["value_ints"], dtype=np.int64)
    g.remove(node)
    g.consts[node.outputs[0]] = value
    g.shapes[node.outputs[0]] = tuple(value.shape)


RULES = [
    Rule("constant_nodes", _is_constant_node, _constant_to_value),
    Rule("fold_constants", _foldable, _fold),
]
