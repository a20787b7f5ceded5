"""Fixed-point formats of a graph: the formats file (docs/quantization.md) and its checks."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import write_file_atomic
from .. import ops
from ..errors import FormatsError
from ..ir.layers import GRAPH_INPUT, Graph, Layer
from ..jsonutil import to_jsonable

MIN_BITS, MAX_BITS = 2, 16
MAX_ABS_FRAC = 64
#: a format whose largest value is this many times below the data's largest is rejected
MAX_CLIP_FACTOR = 16


@dataclass(frozen=True)
class QFormat:
    """Q(bits, frac): a `bits`-bit two's-complement integer q stands for q * 2^-frac."""

    bits: int
    frac: int

    def __post_init__(self) -> None:
        if isinstance(self.bits, bool) or not isinstance(self.bits, (int, np.integer)):
            raise ValueError(f"bits must be an integer, got {self.bits!r}")
        if isinstance(self.frac, bool) or not isinstance(self.frac, (int, np.integer)):
            raise ValueError(f"frac must be an integer, got {self.frac!r}")
        if not MIN_BITS <= self.bits <= MAX_BITS:
            raise ValueError(f"bits must be in [{MIN_BITS}, {MAX_BITS}], got {self.bits}")
        if abs(self.frac) > MAX_ABS_FRAC:
            raise ValueError(f"frac must be in [-{MAX_ABS_FRAC}, {MAX_ABS_FRAC}], got {self.frac}")
        object.__setattr__(self, "bits", int(self.bits))
        object.__setattr__(self, "frac", int(self.frac))

    @property
    def lo(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def hi(self) -> int:
        return (1 << (self.bits - 1)) - 1

    @property
    def step(self) -> float:
        return math.ldexp(1.0, -self.frac)

    @property
    def max_value(self) -> float:
        return self.hi * self.step

    def __str__(self) -> str:
        return f"Q({self.bits},{self.frac})"


@dataclass
class LayerFormat:
    out: QFormat
    weight: QFormat | None = None
    stats: dict = field(default_factory=dict)


@dataclass
class Formats:
    input: QFormat
    layers: dict[str, LayerFormat]
    stats: dict = field(default_factory=dict)

    def out(self, name: str) -> QFormat:
        """Format of a layer's output, or of the graph input for GRAPH_INPUT."""
        return self.input if name == GRAPH_INPUT else self.layers[name].out

    def in_formats(self, graph: Graph, layer: Layer | str) -> list[QFormat]:
        return in_formats(self, graph, layer)

    # ---- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict:
        layers = {}
        for name, lf in self.layers.items():
            entry = {}
            if lf.weight is not None:
                entry.update(w_bits=lf.weight.bits, w_frac=lf.weight.frac)
            entry.update(a_bits=lf.out.bits, a_frac=lf.out.frac)
            entry.update({k: v for k, v in lf.stats.items() if k not in _FORMAT_KEYS})
            layers[name] = entry
        doc = {"input": {"bits": self.input.bits, "frac": self.input.frac}, "layers": layers}
        if self.stats:
            doc["stats"] = self.stats
        return doc

    def to_json(self, path) -> None:
        """Write atomically: a reader never sees a half-written file."""
        write_json_atomic(path, self.to_dict())

    @classmethod
    def from_dict(cls, d: dict, graph: Graph, source: str = "formats") -> "Formats":
        if not isinstance(d, dict):
            raise FormatsError(f"{source}: expected a JSON object")
        if "pipecnn" in d:
            fm = from_pipecnn(d["pipecnn"], graph, source)
        else:
            fm = _parse(d, graph, source)
        validate(fm, graph, source)
        return fm


_FORMAT_KEYS = {"w_bits", "w_frac", "a_bits", "a_frac"}


def write_json_atomic(path, doc) -> None:
    """Complete or not at all (cnn2gate.atomic); OutputError naming `path` on failure."""
    text = json.dumps(doc, indent=2, default=to_jsonable) + "\n"
    write_file_atomic(path, text, "formats file")


def _qformat(bits, frac, source: str, where: str) -> QFormat:
    try:
        return QFormat(bits, frac)
    except ValueError as err:
        raise FormatsError(f"{source}: {where}: {err}") from None


def _parse(d: dict, graph: Graph, source: str) -> Formats:
    for key in ("input", "layers"):
        if key not in d:
            raise FormatsError(f"{source}: missing key {key!r}")
    inp = d["input"]
    if not isinstance(inp, dict) or "bits" not in inp or "frac" not in inp:
        raise FormatsError(f"{source}: 'input' must be {{\"bits\": B, \"frac\": F}}")
    input_fmt = _qformat(inp["bits"], inp["frac"], source, "input")
    entries = d["layers"]
    if not isinstance(entries, dict):
        raise FormatsError(f"{source}: 'layers' must be an object keyed by layer name")
    unknown = [n for n in entries if n not in graph]
    if unknown:
        raise FormatsError(f"{source}: unknown layer(s) {', '.join(unknown)} (not in model {graph.name})")
    layers = {}
    for layer in graph.layers:
        e = entries.get(layer.name)
        if e is None:
            raise FormatsError(f"{source}: layer {layer.name}: missing")
        if not isinstance(e, dict) or "a_bits" not in e or "a_frac" not in e:
            raise FormatsError(f"{source}: layer {layer.name}: needs a_bits and a_frac")
        out = _qformat(e["a_bits"], e["a_frac"], source, f"layer {layer.name}")
        has_w = "w_bits" in e or "w_frac" in e
        if layer.has_weights and not ("w_bits" in e and "w_frac" in e):
            raise FormatsError(f"{source}: layer {layer.name}: a {layer.kind} layer needs w_bits and w_frac")
        if has_w and not layer.has_weights:
            raise FormatsError(f"{source}: layer {layer.name}: a {layer.kind} layer has no weights (w_bits/w_frac given)")
        weight = _qformat(e["w_bits"], e["w_frac"], source, f"layer {layer.name}") if has_w else None
        stats = {k: v for k, v in e.items() if k not in _FORMAT_KEYS}
        layers[layer.name] = LayerFormat(out, weight, stats)
    return Formats(input_fmt, layers, dict(d.get("stats", {})))


def in_formats(formats: Formats, graph: Graph, layer: Layer | str) -> list[QFormat]:
    """Formats of a layer's inputs, in the order of layer.inputs."""
    if isinstance(layer, str):
        layer = graph.layer(layer)
    return [formats.out(src) for src in layer.inputs]


def validate(fm: Formats, graph: Graph, source: str = "formats") -> None:
    """Check a Formats against the graph; raises FormatsError naming the source and layer."""
    names = set(fm.layers)
    unknown = names - {layer.name for layer in graph.layers}
    if unknown:
        raise FormatsError(f"{source}: unknown layer(s) {', '.join(sorted(unknown))}")
    for layer in graph.layers:
        lf = fm.layers.get(layer.name)
        if lf is None:
            raise FormatsError(f"{source}: layer {layer.name}: missing")
        where = f"{source}: layer {layer.name}"
        if layer.has_weights and lf.weight is None:
            raise FormatsError(f"{where}: a {layer.kind} layer needs a weight format")
        if not layer.has_weights and lf.weight is not None:
            raise FormatsError(f"{where}: a {layer.kind} layer has no weights")
        ins = in_formats(fm, graph, layer)
        why = ops.op_for(layer).tie_violation(layer, ins, lf.out)
        if why:
            raise FormatsError(f"{where}: {why}")
        if layer.has_weights:
            _check_weights(layer, lf.weight, where)
        _check_range(lf.stats.get("max_abs"), lf.out, f"{where}: output")
    _check_range(fm.stats.get("input_max_abs"), fm.input, f"{source}: input")


def _check_weights(layer: Layer, w: QFormat, where: str) -> None:
    m = float(np.max(np.abs(layer.weight))) if layer.weight.size else 0.0
    _check_range(m, w, f"{where}: weights")


def _check_range(max_abs, fmt: QFormat, where: str) -> None:
    """Reject a format in which all the data rounds to zero, or that clips it far too hard."""
    if max_abs is None:
        return
    max_abs = float(max_abs)
    if max_abs <= 0 or not math.isfinite(max_abs):
        return
    if math.ldexp(max_abs, fmt.frac) < 0.5:
        raise FormatsError(f"{where}: frac {fmt.frac} cannot represent the data (largest |value| {max_abs:.4g} rounds to 0 in {fmt})")
    if max_abs > MAX_CLIP_FACTOR * fmt.max_value:
        raise FormatsError(
            f"{where}: frac {fmt.frac} cannot represent the data (largest |value| {max_abs:.4g}, {fmt} reaches only {fmt.max_value:.4g})"
        )


def load_formats(path, graph: Graph) -> Formats:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise FormatsError(f"{path}: no such formats file") from None
    except (OSError, json.JSONDecodeError) as err:
        raise FormatsError(f"{path}: cannot read formats file: {err}") from None
    return Formats.from_dict(doc, graph, source=str(path))


def from_pipecnn(table, graph: Graph, source: str = "formats") -> Formats:
    """Import a PipeCNN precision table: rows [frac_w, frac_din, frac_dout] per conv/dense layer, 8 bits.

    Layers without weights keep their input's format, except that a layer whose
    weight-layer consumers all expect another frac_din (PipeCNN's normalisation layer re-scales
    its output) takes that format. Each row's frac_din must match the format
    its layer actually receives.
    """
    weighted = [layer for layer in graph.layers if layer.has_weights]
    if not isinstance(table, list) or len(table) != len(weighted):
        raise FormatsError(f"{source}: 'pipecnn' needs one [frac_w, frac_din, frac_dout] row per conv/dense layer ({len(weighted)})")
    rows = {}
    for layer, row in zip(weighted, table):
        if not (isinstance(row, list) and len(row) == 3 and all(isinstance(v, int) for v in row)):
            raise FormatsError(f"{source}: layer {layer.name}: pipecnn row must be three integers, got {row!r}")
        rows[layer.name] = row
    first = weighted[0] if weighted else None
    input_fmt = _qformat(8, rows[first.name][1] if first else 0, source, "input")
    fm = Formats(input_fmt, {}, {"imported_from": "pipecnn"})
    for layer in graph.layers:
        if layer.has_weights:
            fw, _, fo = rows[layer.name]
            fm.layers[layer.name] = LayerFormat(_qformat(8, fo, source, f"layer {layer.name}"),
                                                _qformat(8, fw, source, f"layer {layer.name}"))
            continue
        out = fm.out(layer.inputs[0])
        wanted = {rows[c.name][1] for c in graph.consumers(layer.name) if c.has_weights}
        if len(wanted) == 1 and not ops.op_for(layer).tied_inputs(layer):
            out = _qformat(8, wanted.pop(), source, f"layer {layer.name}")
        fm.layers[layer.name] = LayerFormat(out)
    for layer in weighted:
        got = fm.out(layer.inputs[0])
        if got.frac != rows[layer.name][1]:
            raise FormatsError(f"{source}: layer {layer.name}: pipecnn frac_din {rows[layer.name][1]} but its input {layer.inputs[0]} is {got}")
    return fm
