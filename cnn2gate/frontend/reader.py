"""Reading an ONNX file safely: bytes → ModelProto with external data resolved and checked.

Everything that can go wrong here is the user's file, so every failure becomes a
`ModelError` that names it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import onnx
from google.protobuf.message import DecodeError

from ..errors import ModelError

# A protobuf of a few bytes can parse as an empty model; anything this short is not a model.
_MIN_BYTES = 16


def read_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Parse the file at `path` and pull in its external data (only from its own folder)."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"{p}: no such file")
    if p.is_dir():
        raise ModelError(f"{p}: is a directory, expected an .onnx file")
    try:
        data = p.read_bytes()
    except OSError as err:
        raise ModelError(f"{p}: cannot read: {err.strerror or err}") from err
    if len(data) < _MIN_BYTES:
        raise ModelError(f"{p}: file is empty or truncated ({len(data)} bytes), not an ONNX model")
    try:
        model = onnx.ModelProto.FromString(data)
    except (DecodeError, RuntimeError, ValueError) as err:
        raise ModelError(f"{p}: not a valid ONNX file (truncated or not protobuf): {err}") from err
    if not model.HasField("graph") or not model.graph.node:
        raise ModelError(f"{p}: not an ONNX model (no graph or no nodes)")
    _check_utf8(model.graph, str(p))
    load_external_data(model, p.parent, str(p))
    return model


def _check_utf8(graph: onnx.GraphProto, source: str) -> None:
    """Names must be UTF-8 text; protobuf hands back bytes for anything else, which nothing expects."""
    def bad(value) -> bool:
        return isinstance(value, bytes)

    if bad(graph.name):
        raise ModelError(f"{source}: the graph name is not valid UTF-8")
    for what, items in (("graph input", graph.input), ("graph output", graph.output),
                        ("initializer", graph.initializer), ("value_info", graph.value_info)):
        for i, item in enumerate(items):
            if bad(item.name):
                raise ModelError(f"{source}: {what} #{i} has a name that is not valid UTF-8: {item.name!r}")
    for i, n in enumerate(graph.node):
        fields = [n.name, n.op_type, n.domain, *n.input, *n.output, *(a.name for a in n.attribute)]
        if any(bad(v) for v in fields):
            label = n.name if isinstance(n.name, str) and n.name else f"#{i}"
            raise ModelError(f"{source}: node {label!r} has a name, op type or tensor name that is not valid UTF-8")


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor a graph stores: initializers and tensor attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for sub in attr.graphs:
                yield from _tensors(sub)


def safe_external_path(base_dir: Path, location: str, source: str, tensor: str) -> Path:
    """Resolve an external-data location, refusing anything outside the model's folder."""
    where = f"{source}: tensor {tensor!r} has external data at {location!r}"
    if not location or "\x00" in location:
        raise ModelError(f"{where}: empty or invalid location")
    rel = Path(location)
    if rel.is_absolute() or location.startswith(("/", "\\")) or (len(location) > 1 and location[1] == ":"):
        raise ModelError(f"{where}: absolute paths are refused; external data must sit in the model's folder")
    if ".." in rel.parts or ".." in location.replace("\\", "/").split("/"):
        raise ModelError(f"{where}: '..' is refused; external data must sit in the model's folder")
    base = base_dir.resolve()
    full = (base / rel).resolve()  # follows symlinks, so a link pointing out is caught below
    if full != base and base not in full.parents:
        raise ModelError(f"{where}: resolves to {full}, outside the model's folder {base}")
    if not full.is_file():
        raise ModelError(f"{where}: file not found in {base}")
    return full


def load_external_data(model: onnx.ModelProto, base_dir: Path | None, source: str) -> None:
    """Replace external references by the bytes they point at, after checking every location."""
    external = [t for t in _tensors(model.graph) if t.data_location == onnx.TensorProto.EXTERNAL]
    if not external:
        return
    if base_dir is None:
        raise ModelError(f"{source}: the model uses external data but no folder was given to read it from")
    # Check every location before reading any, so a bad model reads nothing at all.
    plans = []
    for t in external:
        info = {e.key: e.value for e in t.external_data}
        path = safe_external_path(Path(base_dir), info.get("location", ""), source, t.name)
        try:
            offset = int(info.get("offset", 0))
            length = int(info["length"]) if "length" in info else None
        except ValueError as err:
            raise ModelError(f"{source}: tensor {t.name!r}: bad external-data offset/length: {err}") from err
        if offset < 0 or (length is not None and length < 0):
            raise ModelError(f"{source}: tensor {t.name!r}: negative external-data offset/length")
        size = path.stat().st_size
        if offset > size or (length is not None and offset + length > size):
            raise ModelError(f"{source}: tensor {t.name!r}: external data range runs past the end of {path.name}")
        plans.append((t, path, offset, length))
    for t, path, offset, length in plans:
        with open(path, "rb") as f:
            f.seek(offset)
            t.raw_data = f.read() if length is None else f.read(length)
        del t.external_data[:]
        t.data_location = onnx.TensorProto.DEFAULT
