"""The model inside a generated project (model/): the IR and formats, keyed by safe layer stems.

`cnn2gate emulate DIR --input X.npy` re-simulates from this copy, so a project is
self-contained. Layer names are replaced by their stems: no name from the model
is stored, and dumps, golden files and the simulator use the same keys.
"""
from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np

from ..errors import Cnn2GateError
from .. import ops
from ..ir.layers import GRAPH_INPUT, Graph
from ..jsonutil import to_jsonable
from ..quant.formats import Formats

FORMAT_VERSION = 1
_SKIP = {"source"}  # never stored: free text from the model file


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def save_model(graph: Graph, formats: Formats, stems: dict[str, str]) -> dict[str, bytes]:
    rename = dict(stems, **{GRAPH_INPUT: GRAPH_INPUT})
    files: dict[str, bytes] = {}
    layers = []
    for layer in graph.layers:
        entry = {"kind": layer.kind}
        for f in dataclasses.fields(layer):
            if f.name in _SKIP:
                continue
            v = getattr(layer, f.name)
            if f.name == "name":
                v = rename[v]
            elif f.name == "inputs":
                v = [rename[s] for s in v]
            if isinstance(v, np.ndarray):
                path = f"model/{rename[layer.name]}.{f.name}.npy"
                files[path] = npy_bytes(v)
                v = {"npy": path}
            entry[f.name] = to_jsonable(v)
        layers.append(entry)
    fm = {"input": {"bits": formats.input.bits, "frac": formats.input.frac}, "layers": {}}
    for layer in graph.layers:
        lf = formats.layers[layer.name]
        e = {"a_bits": lf.out.bits, "a_frac": lf.out.frac}
        if lf.weight is not None:
            e.update(w_bits=lf.weight.bits, w_frac=lf.weight.frac)
        fm["layers"][rename[layer.name]] = e
    doc = {"version": FORMAT_VERSION, "input_shape": list(graph.input_shape), "output": rename[graph.output],
           "softmax": bool(graph.softmax), "layers": layers, "formats": fm}
    if graph.input_layout != "NCHW":  # only when set, so channels-first projects stay as they were
        doc["input_layout"] = graph.input_layout
    if graph.declared_output is not None:
        doc["declared_output"] = list(graph.declared_output)
    if len(graph.outputs) > 1:  # only then, so single-output projects stay as they were
        doc["outputs"] = [rename[o] for o in graph.outputs]
        if graph.declared_outputs:
            doc["declared_outputs"] = {rename[k]: list(v) for k, v in graph.declared_outputs.items()}
    files["model/model.json"] = (json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=True) + "\n").encode()
    return files


def _restore(name: str, v, root: Path):
    if isinstance(v, dict) and "npy" in v:
        rel = Path(v["npy"])
        if rel.is_absolute() or ".." in rel.parts:
            raise Cnn2GateError(f"{root}: bad array path in model/model.json")
        return np.load(root / rel, allow_pickle=False)
    if name == "inputs":
        return list(v)
    if name == "in_shapes":
        return [tuple(s) for s in v]
    if isinstance(v, list):
        return tuple(v)
    return v


def user_output_shape(project: Path) -> tuple[int, ...] | None:
    """One output as the ONNX model declares it (golden files hold (C, H, W)); None if unreadable."""
    try:
        doc = json.loads((Path(project) / "model" / "model.json").read_text())
        shape = doc.get("declared_output")
        if shape is None:
            shape = next(e["out_shape"] for e in doc["layers"] if e["name"] == doc["output"])
        return tuple(int(d) for d in shape)
    except (OSError, ValueError, TypeError, AttributeError, KeyError, StopIteration):
        return None


def user_output_shapes(project: Path) -> list[tuple[int, ...] | None]:
    """Each graph output as the ONNX model declares it, in order (one entry for a single output)."""
    try:
        doc = json.loads((Path(project) / "model" / "model.json").read_text())
        names = doc.get("outputs")
        if not names:
            return [user_output_shape(project)]
        declared = doc.get("declared_outputs") or {}
        shapes = {e["name"]: e["out_shape"] for e in doc["layers"]}
        return [user_output_shape(project) if i == 0 else tuple(int(d) for d in declared.get(name, shapes[name]))
                for i, name in enumerate(names)]
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        return [None]


def load_model(project: Path) -> tuple[Graph, Formats]:
    """The graph and formats stored by `save_model` (layer names are the stems)."""
    project = Path(project)
    path = project / "model" / "model.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise Cnn2GateError(f"{path}: cannot read the project's model: {err}") from None
    if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
        version = doc.get("version") if isinstance(doc, dict) else None
        raise Cnn2GateError(f"{path}: unsupported project model version {version!r}")
    try:
        layers = []
        for entry in doc["layers"]:
            cls = ops.LAYER_TYPES[entry["kind"]]
            kwargs = {k: _restore(k, v, project) for k, v in entry.items() if k != "kind"}
            layers.append(cls(**kwargs))
        graph = Graph("model", tuple(doc["input_shape"]), layers, doc["output"], softmax=doc["softmax"],
                      input_layout=doc.get("input_layout", "NCHW"), outputs=list(doc.get("outputs") or []),
                      declared_outputs={k: tuple(int(d) for d in v)
                                        for k, v in (doc.get("declared_outputs") or {}).items()})
        declared = doc.get("declared_output")
        graph.declared_output = None if declared is None else tuple(int(d) for d in declared)
        if graph.input_layout not in ("NCHW", "NHWC") or (
                declared is not None and np.prod(graph.declared_output) != np.prod(graph.output_shape)):
            raise ValueError("input_layout or declared_output does not match the model")
        graph.validate()
        return graph, Formats.from_dict(doc["formats"], graph, source=str(path))
    except Cnn2GateError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, OSError) as err:  # a damaged or hand-edited project
        raise Cnn2GateError(f"{path}: damaged project model ({type(err).__name__}: {err}); "
                            "compile the project again") from None
