"""Lowering: the rewritten graph → IR layers, with every unsupported node collected.

Each handler turns one node into one IR layer (or an alias for shape-only ops
such as Flatten) or raises `Unsupported` with a reason; lowering carries on past
failures (using ONNX's inferred shapes) so that a single error can list them all.
"""
from __future__ import annotations

import math

from .. import ops
from ..errors import ModelError
from ..ir.copies import add_view_copies
from ..ir.layers import GRAPH_INPUT, Graph, Layer
from ..ops.base import Unsupported
from .names import NameAllocator, sanitize
from .passes.base import const_of
from .passes.canonical import is_dense
from .passes.layout import flatten_to_2d, perm_of
from .wgraph import INTERNAL, Node, WGraph

#: ONNX ops the front end accepts (the table in docs/frontend.md): those an operator builds a
#: layer from, and those the rewrite passes fold, fuse or drop.
SUPPORTED_OPS = sorted({op_type for op in ops.OPS for op_type in op.onnx_types} | {
    "MatMul", "BatchNormalization", "Sum", "ReduceMean", "Flatten", "Reshape",
    "Squeeze", "Transpose", "Pad", "Softmax", "Dropout", "Identity", "Cast", "Constant", "Shape", "Gather",
    "Unsqueeze", "Slice", "ConstantOfShape", "Range",
})


class _Upstream(Exception):
    """An input comes from a node that already failed: do not report this node too."""


class Lowering:
    def __init__(self, g: WGraph):
        self.g = g
        self.names = NameAllocator(reserved=[GRAPH_INPUT])
        self.layers: list[Layer] = []
        self.errors: list[tuple[Node, str]] = []
        self.src: dict[str, tuple[str | None, tuple | None]] = {}
        self.softmax = False
        self._features: set[str] | None = None

    # -- helpers -----------------------------------------------------------
    def input_of(self, n: Node, i: int = 0) -> tuple[str, tuple]:
        t = n.inputs[i]
        if t in self.g.consts:
            raise Unsupported(f"input {i} is a constant where a feature map is expected")
        if t not in self.src:
            raise Unsupported(f"input {t!r} is produced by no node")
        layer, shape = self.src[t]
        if layer is None or shape is None:
            raise _Upstream()
        return layer, shape

    def common(self, n: Node, kind: str) -> dict:
        name = self.names.take(n.name, f"{kind}{len(self.layers)}")
        return dict(name=name, act=n.act, alpha=n.alpha, source=" + ".join(s for s in n.sources if s))

    def add(self, n: Node, layer: Layer, squeezed: bool = False) -> None:
        ir = tuple(layer.infer_shape())
        if any(int(d) <= 0 for d in ir):
            raise Unsupported(f"output shape {ir} is empty: the window does not fit the input {tuple(layer.in_shape)}")
        onnx_shape = self.g.shape(n.outputs[0])
        if onnx_shape is not None:
            want = tuple(onnx_shape[1:])
            same = want == ir or (squeezed and math.prod(want) == math.prod(ir))
            if not same:
                raise Unsupported(f"IR shape {ir} differs from ONNX's {want} (semantics not representable)")
        layer.out_shape = ir
        self.layers.append(layer)
        self.src[n.outputs[0]] = (layer.name, ir)

    def inputs_of(self, n: Node) -> tuple[list[str], list[tuple]]:
        """(producing layers, shapes) of every input of n."""
        ins = [self.input_of(n, i) for i in range(len(n.inputs))]
        return [x for x, _ in ins], [s for _, s in ins]

    def alias(self, n: Node, i: int = 0) -> None:
        self.src[n.outputs[0]] = self.input_of(n, i)

    def is_feature(self, t: str) -> bool:
        """True when tensor t carries image data (derived from the graph input other than through
        its shape), so that an op on it is a layer, not shape arithmetic."""
        if self._features is None:
            self._features = _feature_tensors(self.g)
        return t in self._features

    def const(self, n: Node, i: int):
        """Input i of n as a constant array (None when it is not one)."""
        return const_of(self.g, n, i)

    def is_dense(self, n: Node) -> bool:
        return is_dense(self.g, n)

    # -- structural handlers (layers come from the operators in cnn2gate/ops/) ---------
    def reshape(self, n: Node) -> None:
        if self._gate_vector(n):
            return self.alias(n)
        if not flatten_to_2d(self.g, n):
            raise Unsupported(f"only flattening (N,C,H,W) → (N,C·H·W) is supported, not {self.g.shape(n.inputs[0])} → "
                              f"{self.g.shape(n.outputs[0])}")
        self._vector_alias(n)

    def squeeze(self, n: Node) -> None:
        src, dst = self.g.shape(n.inputs[0]), self.g.shape(n.outputs[0])
        if src is None or dst is None or len(dst) != 2 or dst[0] != 1 or math.prod(src) != dst[1]:
            raise Unsupported(f"only squeezing (1,C,1,1) → (1,C) is supported, not {src} → {dst}")
        self._vector_alias(n)

    def unsqueeze(self, n: Node) -> None:
        if not self._gate_vector(n):
            raise Unsupported(_why_unknown(self.g, n, self))
        self.alias(n)

    def _gate_vector(self, n: Node) -> bool:
        """A (1, C) vector reshaped to (1, C, 1, 1) (maybe in steps) that only per-channel products
        read: the IR vector already is one value per channel, so it needs no layer."""
        src, dst = self.g.shape(n.inputs[0]), self.g.shape(n.outputs[0])
        if src is None or dst is None or len(dst) < 3 or dst[0] != 1 or any(d != 1 for d in dst[2:]) \
                or math.prod(src) != dst[1]:
            return False
        readers = self.g.consumers(n.outputs[0])
        return bool(readers) and all(not r.domain and (r.op == "Mul" or r.op in ("Reshape", "Unsqueeze")
                                                       and self._gate_vector(r)) for r in readers)

    def _vector_alias(self, n: Node) -> None:
        # The IR Dense flattens its input NCHW itself, so the flatten has no layer of its own;
        # everything reading it must therefore be a dense layer (or the graph output).
        readers = self.g.consumers(n.outputs[0])
        bad = [r for r in readers if not (is_dense(self.g, r) or r.op in ("Flatten", "Reshape", "Squeeze", "Softmax"))]
        if bad:
            raise Unsupported(f"a flattened tensor may only feed dense layers, not {bad[0].label}")
        self.alias(n)

    def transpose(self, n: Node) -> None:
        raise Unsupported(f"a Transpose with perm {perm_of(n)} that is not a layout change the front end can absorb "
                          "(input NHWC→NCHW, or NHWC before a Flatten into a dense layer)")

    def softmax_op(self, n: Node) -> None:
        shape = self.g.shape(n.inputs[0])
        if n.outputs[0] != self.g.output or len(self.g.outputs) > 1:
            raise Unsupported("Softmax is only supported as the last node of a model with one output (it runs on "
                              "the host)")
        axis = int(n.attrs.get("axis", -1 if self.g.opset >= 13 else 1))
        if shape is None or any(d != 1 for i, d in enumerate(shape) if i not in (0, axis % len(shape))):
            raise Unsupported(f"Softmax over axis {axis} of {shape} is not over the class vector")
        self.softmax = True
        self.alias(n)

    HANDLERS = {
        "Flatten": reshape, "Reshape": reshape, "Squeeze": squeeze, "Unsqueeze": unsqueeze, "Transpose": transpose,
        "Softmax": softmax_op,
    }

    # -- driver ----------------------------------------------------------------
    def lower_node(self, n: Node) -> None:
        op = ops.onnx_handlers(INTERNAL).get((n.domain, n.op))
        if op is not None:
            return op.from_onnx(self, n)
        if n.domain:
            raise Unsupported(f"custom domain {n.domain!r} is not supported")
        handler = self.HANDLERS.get(n.op)
        if handler is None:
            raise Unsupported(_why_unknown(self.g, n, self))
        handler(self, n)

    def check_made(self, made: int) -> None:
        """Refuse, as this node's error, layers the generated architecture cannot run (`Op.check`):
        every command refuses them at load time, not only `compile`."""
        why = [w.removeprefix(f"layer {layer.name}: ") for layer in self.layers[made:]
               if (w := ops.op_for(layer).check(layer))]
        if why:
            del self.layers[made:]
            raise Unsupported("; ".join(why))

    def run(self) -> None:
        g = self.g
        shape = g.shapes.get(g.input)
        self.src[g.input] = (GRAPH_INPUT, tuple(shape[1:]))
        for n in toposort(g):
            try:
                made = len(self.layers)
                self.lower_node(n)
                self.check_made(made)
            except Unsupported as err:
                self.errors.append((n, str(err)))
                for o in n.outputs:
                    s = g.shape(o)
                    self.src[o] = (None, None if s is None else tuple(s[1:]))
            except _Upstream:
                for o in n.outputs:
                    self.src[o] = (None, None)


def _feature_tensors(g: WGraph) -> set[str]:
    """Tensors computed from the graph input's values (not only from its shape)."""
    found, changed = {g.input}, True
    while changed:
        changed = False
        for n in g.nodes:
            if n.op in ("Shape", "Size") or not any(t in found for t in n.inputs):
                continue
            new = [o for o in n.outputs if o and o not in found]
            if new:
                found.update(new)
                changed = True
    return found


def _not_a_layer(g: WGraph, n: Node) -> str:
    """Why a shape-style op (Gather, Slice, Unsqueeze, ...) reading image data is not a layer."""
    shape = g.shape(n.inputs[0])
    what = "a feature map" if shape is not None and len(shape) == 4 else "image data"
    shown = "" if shape is None else f" of shape {tuple(shape)}"
    why = (" (feature maps can be sliced only along channels, with Split or a Slice of step 1)"
           if n.op in ("Gather", "Slice") else "")
    return f"{n.op} of {what}{shown} is not supported{why}"


def _why_unknown(g: WGraph, n: Node, low: "Lowering | None" = None) -> str:
    if n.op in ("Shape", "Gather", "Unsqueeze", "Slice", "ConstantOfShape", "Range", "Cast", "Constant"):
        if low is not None and n.inputs and n.op != "Shape" and low.is_feature(n.inputs[0]):
            return _not_a_layer(g, n)
        return "shape computation that does not reduce to a constant"
    if n.op == "BatchNormalization":
        return "BatchNormalization needs constant statistics and inference mode"
    if n.op == "Pad":
        return "only constant padding of H and W is supported: zeros, or -inf/edge padding right before a MaxPool"
    if n.op == "ReduceMean":
        return "only ReduceMean over H and W (global average pooling) is supported"
    if n.op == "MatMul":
        return "only x·W with a constant 2-D W on a (1, K) input is supported"
    return "op not supported"


def toposort(g: WGraph) -> list[Node]:
    """Nodes in dependency order, keeping the graph's own order wherever it is already valid."""
    produced = {g.input} | set(g.consts)
    pending, order = list(g.nodes), []
    while pending:
        ready = next((n for n in pending if all(not t or t in produced for t in n.inputs)), None)
        if ready is None:
            names = ", ".join(n.label for n in pending[:5])
            raise ModelError(f"{g.source}: graph has a cycle or reads undefined tensors near {names}")
        order.append(ready)
        produced.update(ready.outputs)
        pending.remove(ready)
    return order


def _format_errors(g: WGraph, errors: list[tuple[Node, str]], problems: list[str]) -> str:
    """One message for every unsupported node and every graph-level problem."""
    if not errors and len(problems) == 1:
        return f"{g.source}: {problems[0]}"
    lines = []
    if errors:
        lines.append(f"{g.source}: {len(errors)} unsupported node{'s' if len(errors) != 1 else ''}:")
        for n, why in errors:
            names = [s for s in n.sources if s] or ["<unnamed>"]
            lines.append(f"  - {', '.join(repr(s) for s in names)} ({n.op}): {why}")
    if problems:
        head = f"{len(problems)} graph problem{'s' if len(problems) != 1 else ''}:"
        lines.append(f"and {head}" if errors else f"{g.source}: {head}")
        lines += [f"  - {p}" for p in problems]
    if errors:
        lines.append("supported ONNX ops: " + ", ".join(SUPPORTED_OPS))
    return "\n".join(lines)


def _declared_output(onnx_shape, ir_shape) -> tuple[int, ...] | None:
    """The ONNX output shape (batch dropped) when only size-1 axes tell it from the IR's."""
    if not onnx_shape or onnx_shape[0] != 1:
        return None
    declared = tuple(int(d) for d in onnx_shape[1:])
    if declared == tuple(ir_shape) or [d for d in declared if d != 1] != [d for d in ir_shape if d != 1]:
        return None
    return declared


def lower(g: WGraph, problems=()) -> Graph:
    """The IR graph of `g`; ModelError listing every unsupported node together with the graph-level
    `problems` (and those found here), so that no check hides another."""
    low = Lowering(g)
    low.run()
    problems = list(problems)
    out_layers = []
    for out in g.outputs:
        out_layer, _ = low.src.get(out, (None, None))
        if out_layer is None or out_layer == GRAPH_INPUT:
            if not low.errors:  # otherwise a failed node explains it
                problems.append(f"the graph output {out!r} is not computed by any supported layer")
            continue
        if out_layer in out_layers:
            problems.append(f"graph outputs {g.outputs[out_layers.index(out_layer)]!r} and {out!r} are the same tensor")
            continue
        out_layers.append(out_layer)
    if low.errors or problems:
        raise ModelError(_format_errors(g, low.errors, problems))
    graph = Graph(name=sanitize(g.name, "model"), input_shape=tuple(g.shapes[g.input][1:]), layers=low.layers,
                  output=out_layers[0], softmax=low.softmax, input_source=g.input, meta=dict(g.meta),
                  input_layout=g.meta.get("input_layout", "NCHW"), outputs=out_layers)
    graph.declared_output = _declared_output(g.shape(g.output), graph.output_shape)
    for out, name in list(zip(g.outputs, out_layers))[1:]:
        declared = _declared_output(g.shape(out), graph.layer(name).out_shape)
        if declared is not None:
            graph.declared_outputs[name] = declared
    try:
        graph.validate()
        graph = add_view_copies(graph)  # a tensor in several addressed buffers (docs/frontend.md)
    except ValueError as err:
        raise ModelError(f"{g.source}: internal inconsistency after conversion: {err}") from err
    if not any(ops.op_for(layer).kernels for layer in graph.layers):
        kinds = ", ".join(sorted({layer.kind for layer in graph.layers}))
        raise ModelError(f"{g.source}: no layer runs on the device (the model's layers, {kinds}, are all done by "
                         "addressing), so there is nothing to compile")
    return graph
