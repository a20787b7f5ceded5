"""From a parsed ModelProto to a checked, static-shaped model at a known opset.

Steps: onnx.checker, one real input and one output, opset upgrade (old graphs are
brought to CANONICAL_OPSET), batch fixed to 1 and symbolic dims replaced, shape
inference in strict mode.
"""
from __future__ import annotations

import math

import onnx
from onnx import shape_inference, version_converter

from ..errors import ModelError

#: Graphs older than this are upgraded to it; newer ones are read as they are (the few
#: ops whose form changed after 13 are normalised by the passes).
CANONICAL_OPSET = 13
_OLDEST_OPSET = 7

#: Ops that only move data between layout steps; walked through to find a leading Transpose.
_PASSTHROUGH = {"Cast", "Identity"}


def default_opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    raise ModelError("model declares no opset for the default ONNX domain")


def check(model: onnx.ModelProto, source: str, path: str | None = None) -> None:
    """onnx.checker; given the file's path it reads the file itself (no re-serialization of the weights)."""
    try:
        if path is not None:
            onnx.checker.check_model(path)
        else:
            onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"{source}: the ONNX checker rejects the model: {first}") from err


def upgrade_opset(model: onnx.ModelProto, source: str) -> onnx.ModelProto:
    opset = default_opset(model)
    if opset < _OLDEST_OPSET:
        raise ModelError(f"{source}: opset {opset} is too old (oldest supported: {_OLDEST_OPSET})")
    if opset >= CANONICAL_OPSET:
        return model
    try:
        return version_converter.convert_version(model, CANONICAL_OPSET)
    except (RuntimeError, ValueError, IndexError) as err:
        raise ModelError(f"{source}: cannot convert opset {opset} to {CANONICAL_OPSET}: {err}") from err


def real_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Graph inputs that are not weights (Caffe2-era graphs list every initializer as an input)."""
    weights = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in weights]


def single_io(model: onnx.ModelProto, source: str) -> tuple[onnx.ValueInfoProto, onnx.ValueInfoProto]:
    inputs = real_inputs(model)
    if len(inputs) != 1:
        names = ", ".join(repr(i.name) for i in inputs) or "none"
        raise ModelError(f"{source}: expected exactly one graph input (image), found {len(inputs)}: {names}")
    outputs = list(model.graph.output)
    if len(outputs) != 1:
        names = ", ".join(repr(o.name) for o in outputs) or "none"
        raise ModelError(f"{source}: expected exactly one graph output, found {len(outputs)}: {names}")
    return inputs[0], outputs[0]


def leads_to_nhwc_transpose(model: onnx.ModelProto, name: str) -> bool:
    """True when every path from the input reaches a Transpose(0,3,1,2) through Cast/Identity only."""
    consumers = [n for n in model.graph.node if name in n.input]
    if not consumers:
        return False
    for node in consumers:
        if node.op_type in _PASSTHROUGH:
            if not leads_to_nhwc_transpose(model, node.output[0]):
                return False
        elif node.op_type == "Transpose":
            perm = [a.ints for a in node.attribute if a.name == "perm"]
            if not perm or list(perm[0]) != [0, 3, 1, 2]:
                return False
        else:
            return False
    return True


def fix_input_shape(model: onnx.ModelProto, inp: onnx.ValueInfoProto, input_shape, source: str) -> None:
    """Batch → 1; symbolic dims from `input_shape` (C,H,W) or a ModelError asking for it."""
    tt = inp.type.tensor_type
    if not inp.type.HasField("tensor_type"):
        raise ModelError(f"{source}: input {inp.name!r} is not a tensor")
    if tt.elem_type != onnx.TensorProto.FLOAT:
        kind = onnx.TensorProto.DataType.Name(tt.elem_type)
        raise ModelError(f"{source}: input {inp.name!r} has element type {kind}; only float32 inputs are supported")
    if not tt.HasField("shape"):
        dims = None
    else:
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim]
        if any(d.HasField("dim_value") and d.dim_value == 0 for d in tt.shape.dim):
            raise ModelError(f"{source}: input {inp.name!r} has a zero-sized dimension")
    nhwc = leads_to_nhwc_transpose(model, inp.name)
    if dims is not None and len(dims) != 4:
        raise ModelError(f"{source}: input {inp.name!r} has rank {len(dims)}; expected a 4-D image batch (N,C,H,W)")
    if input_shape is not None:
        want = tuple(int(v) for v in input_shape)
        if len(want) != 3 or any(v <= 0 for v in want):
            raise ModelError(f"{source}: input shape must be three positive integers C,H,W, got {input_shape}")
        c, h, w = want
        given = [1, h, w, c] if nhwc else [1, c, h, w]
        if dims is not None:
            for i, (d, g) in enumerate(zip(dims[1:], given[1:]), start=1):
                if d is not None and d != g:
                    shown = "x".join("?" if v is None else str(v) for v in dims[1:])
                    raise ModelError(f"{source}: --input-shape {c},{h},{w} conflicts with the model's input "
                                     f"{inp.name!r} of shape {shown}{' (NHWC)' if nhwc else ''}")
        new = given
    else:
        if dims is None or any(d is None for d in dims[1:]):
            shown = "unknown" if dims is None else "x".join("?" if d is None else str(d) for d in dims)
            raise ModelError(f"{source}: input {inp.name!r} has dynamic shape {shown}; "
                             "give the size with --input-shape C,H,W (input_shape=(C, H, W))")
        new = [1] + dims[1:]
    tt.ClearField("shape")
    for d in new:
        tt.shape.dim.add().dim_value = int(d)


def clear_inferred(model: onnx.ModelProto) -> None:
    """Drop stale symbolic shapes (batch='N' …) so inference recomputes them from the fixed input."""
    del model.graph.value_info[:]
    for out in model.graph.output:
        if out.type.HasField("tensor_type"):
            out.type.tensor_type.ClearField("shape")


#: Initializers larger than this are given to shape inference as typed inputs, without their values.
_SMALL_INIT = 4096


def light_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with large weights replaced by typed graph inputs: all shape inference needs,
    without serializing hundreds of MB of weights."""
    g = model.graph
    light = onnx.ModelProto()
    light.ir_version = max(model.ir_version, 7)  # IR < 4 would not type initializers missing from inputs
    light.opset_import.extend(model.opset_import)
    light.graph.name = g.name
    light.graph.node.extend(g.node)
    light.graph.output.extend(g.output)
    weights = {t.name for t in g.initializer}
    light.graph.input.extend(i for i in g.input if i.name not in weights)
    for t in g.initializer:
        if math.prod(t.dims) <= _SMALL_INIT:
            light.graph.initializer.append(t)
        else:
            light.graph.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    return light


def infer_shapes(model: onnx.ModelProto, source: str) -> onnx.ModelProto:
    """Strict shape inference; returns `model` with the inferred value_info and output types."""
    try:
        inferred = shape_inference.infer_shapes(light_copy(model), check_type=True, strict_mode=True, data_prop=True)
    except (onnx.shape_inference.InferenceError, RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"{source}: shape inference failed: {first}") from err
    del model.graph.value_info[:]
    model.graph.value_info.extend(inferred.graph.value_info)
    del model.graph.output[:]
    model.graph.output.extend(inferred.graph.output)
    return model


def prepare(model: onnx.ModelProto, source: str, input_shape=None, path: str | None = None) -> onnx.ModelProto:
    check(model, source, path)
    model = upgrade_opset(model, source)
    inp, _ = single_io(model, source)
    fix_input_shape(model, inp, input_shape, source)
    clear_inferred(model)
    return infer_shapes(model, source)
