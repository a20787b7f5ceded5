"""External-memory footprint of a design: what the host allocates on the board's DDR/HBM.

Every tensor that is not a view (docs/architecture.md "Data layout") gets its own buffer of
`⌈C/V⌉·H·W·V` data_t (char where hw/storage.py keeps it at 8 bits in a short design),
`fc_batch` copies of it (one slot per image), and no buffer is reused
between layers; the weights are the weight files as `compile` writes them (packed or not).
Biases and lookup tables (a few KiB per layer) and the slots' alignment padding are left out.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

from .. import ops
from ..ir.layers import GRAPH_INPUT, Graph
from ..ops.base import ArchLimit, ceil_div, chw
from .storage import narrow_buffers

GIB = 1 << 30

_BUFFERS: "weakref.WeakKeyDictionary[Graph, tuple]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Footprint:
    feature_bytes: int  # every activation buffer, fc_batch slots each
    weight_bytes: int
    capacity_bytes: int  # the board's external memory; 0 when the board file does not give it

    @property
    def total_bytes(self) -> int:
        return self.feature_bytes + self.weight_bytes

    @property
    def fits(self) -> bool:
        return not self.capacity_bytes or self.total_bytes <= self.capacity_bytes

    def to_dict(self) -> dict:
        return {"feature_bytes": self.feature_bytes, "weight_bytes": self.weight_bytes,
                "total_bytes": self.total_bytes, "capacity_bytes": self.capacity_bytes or None, "fits": self.fits}

    def describe(self) -> str:
        cap = f"{self.capacity_bytes / GIB:.3g} GiB" if self.capacity_bytes else "unknown (no mem_capacity_gib)"
        return (f"external memory {gib(self.total_bytes)} of {cap} (feature maps {gib(self.feature_bytes)}, "
                f"weights {gib(self.weight_bytes)})")


def gib(n: int) -> str:
    return f"{n / GIB:.3f} GiB" if n >= GIB / 1000 else f"{n / (1 << 20):.3f} MiB"


def buffer_shapes(graph: Graph) -> tuple[tuple[int, int, int], ...]:
    """(C, H, W) of every tensor that has a buffer of its own: the input and each layer output
    that is not a view into another buffer (`Op.views`, `Op.placed`)."""
    done = _BUFFERS.get(graph)
    if done is None:
        viewed = set()
        for layer in graph.layers:
            op = ops.op_for(layer)
            try:
                if op.placed(layer, graph) is not None:
                    viewed.add(layer.name)
                viewed.update(src for src, _ in op.views(layer, graph) or ())
            except ArchLimit:
                continue  # refused elsewhere with its reason
        shapes = [chw(graph.input_shape)] if GRAPH_INPUT not in viewed else []
        shapes += [chw(layer.out_shape) for layer in graph.layers if layer.name not in viewed]
        done = _BUFFERS[graph] = tuple(shapes)
    return done


def footprint(graph: Graph, lowered, ctx, board) -> Footprint:
    """The design's external-memory bytes for the config and widths in `ctx` (hw/cycles.CostContext)."""
    v, b = ctx.config.vec_size, ctx.widths.data_bytes
    features = ctx.config.fc_batch * b * sum(ceil_div(c, v) * v * h * w for c, h, w in buffer_shapes(graph))
    if ctx.narrow:  # char-stored buffers take one byte per element instead of b
        features -= ctx.config.fc_batch * (b - 1) * sum(ceil_div(c, v) * v * h * w
                                                          for c, h, w in narrow_buffers(graph, ctx.narrow))
    weights = sum(ctx.weight_bytes(k) for k in lowered.layers)
    return Footprint(int(features), int(weights), int(board.mem_capacity_gib * GIB))


def misfit_message(fp: Footprint, board, config, input_shape) -> str:
    """The one refusal `estimate` and `compile` give for a design the board's memory cannot hold."""
    return (f"input shape {tuple(input_shape)}: the design needs {gib(fp.total_bytes)} of external memory (feature "
            f"maps {gib(fp.feature_bytes)} with "
            f"fc_batch={config.fc_batch}, weights {gib(fp.weight_bytes)}), more than board {board.name}'s "
            f"{board.mem_capacity_gib:g} GiB; use a smaller input size, a smaller vec_size (channels are padded to "
            "a multiple of it) or fc_batch, or a board with more memory")
