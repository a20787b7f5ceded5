"""ONNX front end: an .onnx file (or ModelProto) → the layer IR (`cnn2gate.ir.Graph`).

    load_model(path, input_shape=None) -> Graph
    convert(model_proto, *, source="<memory>", base_dir=None, input_shape=None) -> Graph

Steps: read (external data only from the model's folder) → onnx.checker → opset
upgrade → batch 1 and static shapes → constant folding → shape inference again →
rewrite passes (`passes/`) → lowering to IR (`lower.py`). Any problem with the
model raises `cnn2gate.errors.ModelError` naming the file; see docs/frontend.md.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

import onnx

from ..errors import ModelError
from ..ir.layers import Graph
from . import checks, prepare as _prepare, wgraph
from .lower import SUPPORTED_OPS, lower
from .passes import STAGE1, STAGE2, run_stage
from .reader import load_external_data, read_model

__all__ = ["load_model", "convert", "SUPPORTED_OPS"]

_MAX_FOLD_ROUNDS = 8


def load_model(path: str | os.PathLike, input_shape=None) -> Graph:
    """Read an ONNX file and convert it to the IR. Errors: ModelError naming the file."""
    source = str(path)
    return _guarded(source, lambda: _convert(read_model(path), source, input_shape, Path(source).stem, source))


def convert(model: onnx.ModelProto, *, source: str = "<memory>", base_dir=None, input_shape=None) -> Graph:
    """Convert an in-memory ModelProto (external data is read from `base_dir`, if any)."""
    if not isinstance(model, onnx.ModelProto):
        raise ModelError(f"{source}: expected an onnx.ModelProto, got {type(model).__name__}")

    def run() -> Graph:
        proto = copy.deepcopy(model)  # the caller's proto is never modified
        load_external_data(proto, None if base_dir is None else Path(base_dir), source)
        return _convert(proto, source, input_shape, "model", None)

    return _guarded(source, run)


def _guarded(source: str, run) -> Graph:
    try:
        return run()
    except ModelError as err:
        if source not in str(err):  # every message names the file, whichever pass raised it
            raise ModelError(f"{source}: {err}") from err
        raise
    except Exception as err:  # a malformed model can trip onnx/numpy/the OS anywhere; report it as the model's fault
        raise ModelError(f"{source}: cannot convert the model ({type(err).__name__}: {err})") from err


def _convert(model: onnx.ModelProto, source: str, input_shape, fallback_name: str, path: str | None) -> Graph:
    if not model.HasField("graph") or not model.graph.node:
        raise ModelError(f"{source}: not an ONNX model (no graph or no nodes)")
    source_opset = _prepare.default_opset(model)
    model = _prepare.prepare(model, source, input_shape, path)
    inp, _ = _prepare.single_io(model, source)
    graph_problems = _prepare.output_problems(model)
    g = wgraph.from_model(model, source, inp.name)
    checks.check_weights(g)
    # Folding turns shape arithmetic into constants, which lets inference find more static
    # shapes (e.g. after a Pad with computed pads), which lets more Shape nodes fold.
    for _ in range(_MAX_FOLD_ROUNDS):
        before = sum(g.meta.get("passes", {}).values())
        run_stage(g, STAGE1)
        if sum(g.meta.get("passes", {}).values()) == before:
            break
        inferred = _prepare.infer_shapes(wgraph.to_model(g, model, small_consts_only=True), source)
        wgraph.update_shapes(g, inferred)
    checks.check_weights(g)  # again: Constant nodes are values only now
    g.name = model.graph.name or fallback_name
    checks.check_shapes(g)
    run_stage(g, STAGE2)
    graph = lower(g, graph_problems)
    checks.check_layer_values(graph, source)
    graph.meta["opset"] = g.opset
    graph.meta["source_opset"] = source_opset
    return graph
