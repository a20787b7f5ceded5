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
_OLDEST_OPSET = 1

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
        raise ModelError(f"{source}: opset {opset} is not a valid ONNX opset (oldest: {_OLDEST_OPSET})")
    if opset >= CANONICAL_OPSET:
        return model
    if opset < 7:
        _align_legacy_broadcast(model)
    linear = _old_linear_resizes(model, opset)
    try:
        return _keep_asymmetric(version_converter.convert_version(model, CANONICAL_OPSET), linear)
    except Exception:  # noqa: BLE001 - old adapters need shapes; retry one opset at a time below
        pass
    # Adapters of the oldest opsets read input shapes, and the ops of opsets < 6 have no shape
    # inference of their own: upgrade one step at a time, re-inferring shapes after each.
    for target in range(opset + 1, CANONICAL_OPSET + 1):
        step = _loose_shapes(model)
        try:
            model = version_converter.convert_version(step, target)
        except Exception as err:  # noqa: BLE001 - the converter raises bare RuntimeErrors and others
            raise ModelError(f"{source}: cannot convert opset {opset} to {CANONICAL_OPSET}: "
                             f"{_failing_nodes(step, target)}: {_first_line(err)}") from err
    return _keep_asymmetric(model, linear)


def _old_linear_resizes(model: onnx.ModelProto, opset: int) -> set[str]:
    """Outputs of the linear Upsample/Resize nodes of an opset < 11, whose coordinates are asymmetric."""
    if opset >= 11:
        return set()
    modes = {"linear", "bilinear"}
    return {n.output[0] for n in model.graph.node if n.op_type in ("Upsample", "Resize") and any(
        a.name == "mode" and a.s.decode() in modes for a in n.attribute)}


def _keep_asymmetric(model: onnx.ModelProto, outputs: set[str]) -> onnx.ModelProto:
    """The converter's Resize-11 takes the default half_pixel coordinates; an older linear
    Upsample/Resize meant asymmetric ones: say so on the converted node."""
    for n in model.graph.node:
        if n.op_type == "Resize" and n.output[0] in outputs:
            kept = [a for a in n.attribute if a.name != "coordinate_transformation_mode"]
            del n.attribute[:]
            n.attribute.extend(kept + [onnx.helper.make_attribute("coordinate_transformation_mode", "asymmetric")])
    return model


#: Binary ops that took `broadcast`/`axis` attributes before opset 7.
_LEGACY_BROADCAST = {"Add", "Sub", "Mul", "Div"}


def _align_legacy_broadcast(model: onnx.ModelProto) -> None:
    """Before opset 7 a constant B was aligned with A from `axis` (Caffe2's per-channel Scale:
    B of shape (C,), axis=1). The converter unsqueezes such a B by one axis too many, so B is
    given its trailing 1s here (numpy form) and `axis` dropped, which it then converts as is."""
    shaped = model
    if default_opset(model) < 6:  # ops before 6 have no shape inference; their opset-6 forms do
        try:
            shaped = version_converter.convert_version(model, 6)
        except Exception:  # noqa: BLE001 - then the ranks stay unknown and B is left alone
            pass
    shaped = _loose_shapes(shaped)
    ranks = {v.name: len(v.type.tensor_type.shape.dim)
             for v in list(shaped.graph.input) + list(shaped.graph.value_info)
             if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape")}
    inits = {t.name: t for t in model.graph.initializer}
    declared = {i.name: i for i in model.graph.input}
    uses: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    for node in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type not in _LEGACY_BROADCAST or len(node.input) != 2 or attrs.get("broadcast") != 1:
            continue
        a, b = node.input
        if "axis" not in attrs or b not in inits or uses.get(b) != 1 or a not in ranks:
            continue
        axis = attrs["axis"] + ranks[a] if attrs["axis"] < 0 else attrs["axis"]
        pad = ranks[a] - axis - len(inits[b].dims)
        if pad <= 0:
            continue
        inits[b].dims.extend([1] * pad)
        if b in declared and declared[b].type.tensor_type.HasField("shape"):
            for _ in range(pad):
                declared[b].type.tensor_type.shape.dim.add().dim_value = 1
        keep = [x for x in node.attribute if x.name != "axis"]
        del node.attribute[:]
        node.attribute.extend(keep)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    line = text.splitlines()[0] if text else type(err).__name__
    return line.rsplit("failed: ", 1)[-1]  # drop the converter's C++ assertion prefix


def _loose_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with whatever shapes inference can work out (none where its ops have no rule)."""
    try:
        inferred = shape_inference.infer_shapes(light_copy(model))
    except Exception:  # noqa: BLE001 - best effort: the converter reports what it still lacks
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.value_info[:]
    out.graph.value_info.extend(inferred.graph.value_info)
    return out


def _failing_nodes(model: onnx.ModelProto, target: int) -> str:
    """The node(s) whose op changes at opset `target`, found by converting each one alone."""
    changing = []
    for node in model.graph.node:
        try:
            if onnx.defs.get_schema(node.op_type, target, node.domain).since_version == target:
                changing.append(node)
        except Exception:  # noqa: BLE001 - an unknown op: the converter's own message says so
            changing.append(node)
    culprits = [n for n in changing if not _converts_alone(model, n, target)] or changing
    shown = ", ".join(f"node {n.name or '(unnamed)'!r} ({n.op_type})" for n in culprits[:5])
    more = f" and {len(culprits) - 5} more" if len(culprits) > 5 else ""
    return f"at opset {target - 1} -> {target}, {shown or 'the graph'}{more}"


def _converts_alone(model: onnx.ModelProto, node: onnx.NodeProto, target: int) -> bool:
    g = model.graph
    typed = {v.name: v for v in list(g.input) + list(g.value_info) + list(g.output)}
    inits = {t.name: t for t in g.initializer}
    inputs, weights = [], []
    for name in node.input:
        if name in inits:
            weights.append(inits[name])
            inputs.append(onnx.helper.make_tensor_value_info(name, inits[name].data_type, list(inits[name].dims)))
        elif name in typed:
            inputs.append(typed[name])
    outputs = [typed.get(o) or onnx.helper.make_empty_tensor_value_info(o) for o in node.output if o]
    one = onnx.helper.make_model(onnx.helper.make_graph([node], "one", inputs, outputs, initializer=weights),
                                 opset_imports=list(model.opset_import), ir_version=model.ir_version)
    try:
        version_converter.convert_version(one, target)
    except Exception:  # noqa: BLE001 - this node is (one of) the culprit(s)
        return False
    return True


def real_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Graph inputs that are not weights (Caffe2-era graphs list every initializer as an input)."""
    weights = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in weights]


def single_io(model: onnx.ModelProto, source: str) -> tuple[onnx.ValueInfoProto, list[onnx.ValueInfoProto]]:
    """The one image input and the graph outputs (one or more, in order)."""
    inputs = real_inputs(model)
    if len(inputs) != 1:
        names = ", ".join(repr(i.name) for i in inputs) or "none"
        raise ModelError(f"{source}: expected exactly one graph input (image), found {len(inputs)}: {names}")
    outputs = list(model.graph.output)
    if not outputs:
        raise ModelError(f"{source}: the graph declares no output")
    return inputs[0], outputs


def output_problems(model: onnx.ModelProto) -> list[str]:
    """Why the graph outputs cannot be results as they are (empty: they can). Reported together
    with the unsupported nodes (frontend/lower.py), so neither hides the other."""
    outputs = list(model.graph.output)
    problems = []
    if len(outputs) > 1:  # several results (detector heads), never a tensor that other nodes read too
        for o in outputs:
            readers = [n.name or n.op_type for n in model.graph.node if o.name in n.input]
            if readers:
                problems.append(f"graph output {o.name!r} is also read by {', '.join(map(repr, readers))}; with "
                                "several graph outputs each must be a final result (or give exactly one graph output)")
    return problems


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
