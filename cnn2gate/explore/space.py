"""The design space, declared once: hardware knobs plus optional per-layer precision.

A design *point* is a tuple of indices, one per knob, into that knob's list of legal
values. Agents only ever see indices, so an illegal value can never be proposed: the
legal lists come from the hardware model (`cnn2gate.hw.config.legal_values`), which
applies the divisibility, power-of-two and buffer-size rules for the model and board.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from .. import ops
from ..errors import ConfigError

#: Bit widths offered per layer for weights and activations when precision is explored: the
#: widths the packed weights of the generated design store (32 // bits fields per word) and
#: the quantiser supports (2..16 bits), with 10 and 12 between 8 and 16.
PRECISION_BITS: tuple[int, ...] = (2, 3, 4, 5, 6, 8, 10, 12, 16)
#: Kept for callers that named the narrow set before it became the default.
NARROW_PRECISION_BITS: tuple[int, ...] = PRECISION_BITS

#: Kinds of layer that own a weight and an activation precision knob.

Point = tuple[int, ...]


@dataclass(frozen=True)
class Knob:
    """One design factor: a name, its legal values (sorted ascending) and what it controls.

    role is "hw" for a hardware-config key, "w_bits" / "a_bits" for a layer's weight /
    activation width (then `layer` names the IR layer).
    """

    name: str
    values: tuple
    role: str = "hw"
    layer: str | None = None

    def __post_init__(self) -> None:
        if not self.values:
            raise ConfigError(f"design knob {self.name!r} has no legal value")
        if self.role not in ("hw", "w_bits", "a_bits"):
            raise ValueError(f"knob {self.name!r}: unknown role {self.role!r}")
        if list(self.values) != sorted(set(self.values)):
            raise ValueError(f"knob {self.name!r}: values must be sorted and distinct, got {self.values}")

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class DesignSpace:
    knobs: tuple[Knob, ...]
    initial: Point  # where searches start by default (the board's default config, 8-bit precision)

    def __post_init__(self) -> None:
        if len(self.initial) != len(self.knobs):
            raise ValueError("initial point does not match the knobs")
        self.check(self.initial)

    # -- size and shape -------------------------------------------------------------
    @property
    def dims(self) -> list[int]:
        return [len(k) for k in self.knobs]

    @property
    def size(self) -> int:
        return math.prod(self.dims)

    @property
    def hw_knobs(self) -> list[Knob]:
        return [k for k in self.knobs if k.role == "hw"]

    @property
    def has_precision(self) -> bool:
        return any(k.role != "hw" for k in self.knobs)

    def check(self, point: Sequence[int]) -> Point:
        point = tuple(int(i) for i in point)
        if len(point) != len(self.knobs):
            raise ValueError(f"design point has {len(point)} indices, the space has {len(self.knobs)} knobs")
        for i, k in zip(point, self.knobs):
            if not 0 <= i < len(k):
                raise ValueError(f"index {i} out of range for knob {k.name!r} ({len(k)} values)")
        return point

    # -- decoding -------------------------------------------------------------------
    def config(self, point: Point) -> dict:
        """The hardware-config part of a point (the keys of best_config.json)."""
        return {k.name: k.values[i] for k, i in zip(self.knobs, point) if k.role == "hw"}

    def precision(self, point: Point) -> dict[str, dict[str, int]] | None:
        """Per-layer bit widths {layer: {"w_bits": b, "a_bits": b}}, or None without precision knobs."""
        if not self.has_precision:
            return None
        out: dict[str, dict[str, int]] = {}
        for k, i in zip(self.knobs, point):
            if k.role != "hw":
                out.setdefault(k.layer, {})[k.role] = int(k.values[i])
        return out

    def describe(self, point: Point) -> dict:
        doc = dict(self.config(point))
        prec = self.precision(point)
        if prec is not None:
            doc["bits"] = {layer: [b["w_bits"], b["a_bits"]] for layer, b in prec.items()}
        return doc

    def point_of(self, config: dict, bits: dict[str, tuple[int, int]] | None = None) -> Point:
        """Inverse of `config`/`precision`: raises ConfigError for a value that is not legal."""
        idx = []
        for k in self.knobs:
            if k.role == "hw":
                value = config.get(k.name, None)
            else:
                pair = (bits or {}).get(k.layer)
                value = None if pair is None else pair[0 if k.role == "w_bits" else 1]
            if value not in k.values:
                raise ConfigError(f"{k.name}={value!r} is not one of the legal values {list(k.values)}")
            idx.append(k.values.index(value))
        return tuple(idx)

    # -- moves ----------------------------------------------------------------------
    def move(self, point: Point, deltas: Sequence[int]) -> Point:
        """Step every knob by its delta (clamped to the ends of its legal list)."""
        return tuple(min(max(i + int(d), 0), n - 1) for i, d, n in zip(point, deltas, self.dims))

    def neighbours(self, point: Point) -> list[Point]:
        """Points one step away along a single knob, in knob order (down before up)."""
        out = []
        for j, n in enumerate(self.dims):
            for d in (-1, 1):
                i = point[j] + d
                if 0 <= i < n:
                    out.append(point[:j] + (i,) + point[j + 1:])
        return out

    def random_point(self, rng: np.random.Generator) -> Point:
        return tuple(int(rng.integers(n)) for n in self.dims)

    def unravel(self, flat: int) -> Point:
        return tuple(int(i) for i in np.unravel_index(int(flat), self.dims))

    def enumerate(self) -> Iterator[Point]:
        return itertools.product(*(range(n) for n in self.dims))

    def normalised(self, point: Point) -> np.ndarray:
        """Each index scaled to [0, 1] (0 for a knob with a single value)."""
        return np.array([i / (n - 1) if n > 1 else 0.0 for i, n in zip(point, self.dims)], dtype=np.float32)


def precision_layers(graph) -> list[str]:
    """Names of the layers that get weight/activation precision knobs (multiply-accumulate layers)."""
    return [layer.name for layer in graph.layers if has_precision_knob(layer)]


def has_precision_knob(layer) -> bool:
    return ops.op_for(layer).precision_knob


#: the model input is always quantised to 8 bits (an image)
INPUT_BITS = 8


def tensor_widths(graph, bits: dict, groups) -> dict[str, int]:
    """Every tensor's activation width for per-layer widths {layer: {"a_bits"}} (GRAPH_INPUT
    included): a layer without a precision knob takes the widest of its inputs, and tensors
    that share a format (`groups`: quant.calibrate.tied_tensors) the widest of their group.
    The one rule for the formats explore writes and the design it prices."""
    from ..ir.layers import GRAPH_INPUT

    width = {GRAPH_INPUT: INPUT_BITS}
    for layer in graph.layers:
        if has_precision_knob(layer):
            width[layer.name] = int(bits[layer.name]["a_bits"])
        else:
            width[layer.name] = max(width[s] for s in layer.inputs)
    widest: dict[str, int] = {}
    for name, b in width.items():
        root = groups.find(name)
        widest[root] = max(widest.get(root, 0), b)
    return {name: widest[groups.find(name)] for name in width}


def weight_width(layer, bits: dict, width: dict[str, int]) -> int:
    """A weighted layer's weight width: its knob, else its activation width."""
    return int(bits[layer.name]["w_bits"]) if layer.name in bits else width[layer.name]


def hw_legal_values(graph, board) -> dict[str, list]:
    """Legal values of every hardware knob for this model on this board (from the hw model)."""
    from ..hw import config as hwconfig  # the cost model owns the legality rules

    legal = hwconfig.legal_values(graph, board)
    out = {}
    for name, values in legal.items():
        values = sorted(set(values))
        if len(values) == 0:
            raise ConfigError(f"no legal value of {name} for model {graph.name} on board {getattr(board, 'name', board)}")
        out[name] = values
    return out


def build_space(graph, board, *, precision: bool = False, bits: Sequence[int] = PRECISION_BITS,
                legal: dict[str, list] | None = None, initial_config: dict | None = None,
                initial_bits: int = 8) -> DesignSpace:
    """Declare the space for `graph` on `board`.

    legal: knob name -> legal values; taken from the hardware model when omitted.
    initial_config: where searches start; the board's default config when omitted.
    """
    if legal is None:
        legal = hw_legal_values(graph, board)
    if initial_config is None:
        initial_config = default_config(graph, board, legal)
    knobs = [Knob(name, tuple(values)) for name, values in legal.items()]
    initial = [nearest_index(k.values, initial_config.get(k.name, k.values[0])) for k in knobs]
    if precision:
        bits = tuple(sorted(set(int(b) for b in bits)))
        layers = precision_layers(graph)
        if not layers:
            raise ConfigError(f"model {graph.name} has no conv or dense layer to choose a precision for")
        for name in layers:
            for role in ("w_bits", "a_bits"):
                knobs.append(Knob(f"{role}:{name}", bits, role=role, layer=name))
                initial.append(nearest_index(bits, initial_bits))
    return DesignSpace(tuple(knobs), tuple(initial))


def default_config(graph, board, legal: dict[str, list]) -> dict:
    """The hardware model's default config for this board, or the smallest legal values."""
    try:
        from ..hw import config as hwconfig
        defaults = hwconfig.HwConfig.defaults(board) if hasattr(hwconfig.HwConfig, "defaults") else {}
        defaults = defaults.to_dict() if hasattr(defaults, "to_dict") else dict(defaults)
    except ImportError:
        defaults = {}
    return {name: defaults.get(name, values[0]) for name, values in legal.items()}


def nearest_index(values: Sequence, target) -> int:
    """Index of the legal value closest to target (ties go to the smaller value)."""
    if target in values:
        return list(values).index(target)
    return int(np.argmin([abs(float(v) - float(target)) for v in values]))


def start_at_uniform_width(space: DesignSpace, fidelity, min_sqnr: float | None) -> DesignSpace:
    """The same space, starting from the narrowest uniform width whose modelled fidelity meets
    the bound (the widest when none does). A no-op without precision knobs or bound."""
    if not space.has_precision or min_sqnr is None:
        return space
    bits = next(k.values for k in space.knobs if k.role != "hw")
    chosen = bits[-1]
    for b in bits:
        trial = {layer: {"w_bits": b, "a_bits": b} for layer in space.precision(space.initial)}
        if fidelity(trial) >= min_sqnr:
            chosen = b
            break
    initial = tuple(i if k.role == "hw" else k.values.index(chosen) for k, i in zip(space.knobs, space.initial))
    return DesignSpace(space.knobs, initial)
