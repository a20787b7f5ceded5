"""A small mutable view of an ONNX graph that the passes rewrite.

Nodes keep ONNX op types and attributes (as Python values); constants live in one
dict (initializers and folded Constant nodes alike); static shapes come from ONNX
shape inference and are updated by the passes that create tensors. Fused extras
(activation, merged node names) ride on the node until lowering.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import ModelError

#: Domain of the internal nodes the passes create (never written back to ONNX).
INTERNAL = "cnn2gate"


@dataclass(eq=False)
class Node:
    op: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict = field(default_factory=dict)
    domain: str = ""
    act: str = "none"
    alpha: float = 0.0
    sources: list[str] = field(default_factory=list)  # ONNX node names merged into this node

    @property
    def label(self) -> str:
        return f"{self.name or '<unnamed>'!r} ({self.op})"


@dataclass(eq=False)
class WGraph:
    name: str
    source: str
    opset: int
    input: str
    output: str
    nodes: list[Node]
    consts: dict[str, np.ndarray]
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, int]
    meta: dict = field(default_factory=dict)
    _counter: int = 0
    #: every graph output in order; outputs[0] is `output`
    outputs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.outputs:
            self.outputs = [self.output]

    def is_output(self, tensor: str) -> bool:
        return tensor in self.outputs

    # -- queries ---------------------------------------------------------
    def is_const(self, tensor: str) -> bool:
        return tensor in self.consts

    def producer(self, tensor: str) -> Node | None:
        for node in self.nodes:
            if tensor in node.outputs:
                return node
        return None

    def consumers(self, tensor: str) -> list[Node]:
        return [n for n in self.nodes if tensor in n.inputs]

    def sole_consumer(self, tensor: str) -> Node | None:
        """The one node reading `tensor`, or None if it has several readers or is the graph output."""
        users = self.consumers(tensor)
        if len(users) != 1 or self.is_output(tensor) or users[0].inputs.count(tensor) != 1:
            return None
        return users[0]

    def shape(self, tensor: str) -> tuple[int, ...] | None:
        if tensor in self.consts:
            return tuple(self.consts[tensor].shape)
        return self.shapes.get(tensor)

    # -- edits -----------------------------------------------------------
    def fresh(self, base: str) -> str:
        """A tensor name not used anywhere yet."""
        while True:
            self._counter += 1
            name = f"{base}__c2g{self._counter}"
            if name not in self.shapes and name not in self.consts:
                return name

    def add_const(self, base: str, value: np.ndarray) -> str:
        name = self.fresh(base)
        self.consts[name] = value
        return name

    def remove(self, node: Node) -> None:
        self.nodes.remove(node)

    def rename_uses(self, old: str, new: str) -> None:
        """Every reader of `old` reads `new` instead (used when a node is bypassed)."""
        for node in self.nodes:
            node.inputs = [new if t == old else t for t in node.inputs]
        self.outputs = [new if t == old else t for t in self.outputs]
        self.output = self.outputs[0]

    def bypass(self, node: Node) -> None:
        """Remove a node whose first output equals its first input (Identity-like)."""
        self.remove(node)
        self.rename_uses(node.outputs[0], node.inputs[0])

    def insert_after(self, anchor: Node, node: Node) -> None:
        self.nodes.insert(self.nodes.index(anchor) + 1, node)

    def prune(self) -> int:
        """Drop nodes whose outputs nobody reads, and constants nobody uses."""
        removed = 0
        while True:
            live = set(self.outputs) | {t for n in self.nodes for t in n.inputs}
            dead = [n for n in self.nodes if not any(o in live for o in n.outputs if o)]
            if not dead:
                break
            for n in dead:
                self.remove(n)
            removed += len(dead)
        live = {t for n in self.nodes for t in n.inputs}
        for name in [c for c in self.consts if c not in live]:
            del self.consts[name]
        return removed


def _attr_value(attr: onnx.AttributeProto):
    value = helper.get_attribute_value(attr)
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode("utf-8", "replace") for v in value]
    return value


def _static_shape(vi: onnx.ValueInfoProto) -> tuple[int, ...] | None:
    if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
        return None
    dims = []
    for d in vi.type.tensor_type.shape.dim:
        if not d.HasField("dim_value"):
            return None
        dims.append(int(d.dim_value))
    return tuple(dims)


def from_model(model: onnx.ModelProto, source: str, input_name: str) -> WGraph:
    from .prepare import default_opset

    g = model.graph
    consts: dict[str, np.ndarray] = {}
    for t in g.initializer:
        try:
            consts[t.name] = numpy_helper.to_array(t)
        except (ValueError, TypeError, RuntimeError) as err:
            raise ModelError(f"{source}: initializer {t.name!r} cannot be decoded: {err}") from err
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, int] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        s = _static_shape(vi)
        if s is not None:
            shapes[vi.name] = s
        if vi.type.HasField("tensor_type"):
            dtypes[vi.name] = vi.type.tensor_type.elem_type
    for t in g.initializer:
        dtypes[t.name] = t.data_type
    nodes = []
    for n in g.node:
        attrs = {}
        for a in n.attribute:
            try:
                attrs[a.name] = _attr_value(a)
            except (ValueError, TypeError, RuntimeError) as err:
                raise ModelError(f"{source}: node {n.name!r} ({n.op_type}): attribute {a.name!r} cannot be read: {err}") from err
        nodes.append(Node(n.op_type, n.name, list(n.input), list(n.output), attrs,
                          domain=n.domain if n.domain != "ai.onnx" else "", sources=[n.name]))
    return WGraph(name=g.name, source=source, opset=default_opset(model), input=input_name,
                  output=g.output[0].name, outputs=[o.name for o in g.output], nodes=nodes, consts=consts, shapes=shapes, dtypes=dtypes)


def _attr_for_onnx(value):
    if isinstance(value, np.ndarray):
        return numpy_helper.from_array(value)
    return value


def to_model(wg: WGraph, template: onnx.ModelProto, small_consts_only: bool = False) -> onnx.ModelProto:
    """Write the graph back as ONNX (only valid while it holds standard ops).

    With `small_consts_only`, large constants are declared as typed graph inputs instead of
    initializers: shape inference needs their shapes, not their values, and this avoids
    serializing hundreds of MB of weights just to infer shapes.
    """
    for n in wg.nodes:
        if n.domain == INTERNAL:
            raise AssertionError("to_model called after internal nodes were introduced")
    nodes = [helper.make_node(n.op, n.inputs, n.outputs, name=n.name, domain=n.domain or None,
                              **{k: _attr_for_onnx(v) for k, v in n.attrs.items()}) for n in wg.nodes]
    inits, typed = [], []
    for k, v in wg.consts.items():
        v = np.asarray(v)
        if small_consts_only and v.size > _SMALL_CONST:
            typed.append(helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), list(v.shape)))
        else:
            inits.append(numpy_helper.from_array(v, name=k))
    inp = [i for i in template.graph.input if i.name == wg.input]
    if inp and wg.input in wg.shapes:  # the input may have been re-laid-out (NHWC absorbed)
        inp = [helper.make_tensor_value_info(wg.input, inp[0].type.tensor_type.elem_type, list(wg.shapes[wg.input]))]
    outs = [helper.make_tensor_value_info(o, wg.dtypes.get(o, onnx.TensorProto.FLOAT), None) for o in wg.outputs]
    graph = helper.make_graph(nodes, template.graph.name, inp + typed, outs, initializer=inits)
    model = helper.make_model(graph, opset_imports=list(template.opset_import))
    # IR < 4 only types initializers that are also graph inputs; we no longer list them.
    model.ir_version = max(template.ir_version, 7)
    return model


#: Constants with more elements than this are not needed by value for shape inference.
_SMALL_CONST = 4096


def update_shapes(wg: WGraph, inferred: onnx.ModelProto) -> None:
    """Take static shapes and element types from an inferred model into the graph."""
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        s = _static_shape(vi)
        if s is not None:
            wg.shapes[vi.name] = s
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
            wg.dtypes[vi.name] = vi.type.tensor_type.elem_type
