"""The one lowering: IR graph -> kernel layers, shared by the code generator and the cost model.

`lower(graph)` asks each layer's operator for its `KernelLayer` once per graph (cached
weakly on the graph object, so the explorer can price thousands of configs without
touching numpy arrays again). `buffer_sizes` and `design_kernels` derive, for a
hardware config, the on-chip buffer depths and the kernel set; `codegen/plan.py`
renders exactly these and `hw/` prices exactly these.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import lru_cache

from .. import ops as registry  # the package's registry, read at call time
from ..ir.layers import Graph
from .base import KernelLayer, prod


@dataclass(frozen=True, eq=False)
class Lowered:
    """Hashed and compared by identity: one object per lowered graph."""

    name: str
    layers: tuple[KernelLayer, ...]
    total_macs: int
    total_params: int
    input_elems: int
    output_elems: int

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(k.kind for k in self.layers)


_CACHE: "weakref.WeakKeyDictionary[Graph, Lowered]" = weakref.WeakKeyDictionary()


def lower(graph: Graph) -> Lowered:
    """The graph's kernel layers (cached per graph object; graphs are treated as immutable)."""
    done = _CACHE.get(graph)
    if done is None:
        layers = tuple(registry.op_for(layer).lower(layer, graph) for layer in graph.layers)
        done = Lowered(graph.name, layers, sum(k.macs for k in layers), sum(k.params for k in layers),
                       prod(graph.input_shape), sum(prod(graph.layer(o).out_shape) for o in graph.outputs))
        _CACHE[graph] = done
    return done


def limits(graph: Graph) -> list[str]:
    """Why the generated architecture cannot run some layers of `graph` (empty: it can)."""
    return [why for layer in graph.layers if (why := registry.op_for(layer).check(layer))]


@dataclass(frozen=True)
class BufferSizes:
    window_depth: int  # WIN_BUF_SIZE: V-vectors
    weight_depth: int  # WEIGHT_BUF_SIZE: L x V-vectors
    pool_line: int  # pixels per pooling line buffer (PipeCNN's in-stream pooling only)
    lrn_max: int  # largest LRN window
    # 1 when some chain layer's input (output) cannot be moved in whole vectors, so mem_read
    # (mem_write) carries the element-wise fallback path and its narrow ports (ConvOp.vector_io)
    scalar_read: int = 0
    scalar_write: int = 0
    # narrow input layers (ConvOp.input_fold): most taps folded into one vector, and the
    # graph input's channels (one value: every such layer reads the graph input)
    fold_max: int = 0
    fold_cg: int = 0
    # 1 when some resize layer is bilinear, so the resize kernel carries that branch (ResizeOp.buffer_needs)
    bilinear: int = 0
    # 1 when some activation buffer is stored as char in a short design (hw/storage.py): mem_read
    # and mem_write carry a second, char-typed access at their whole-vector sites
    narrow_act: int = 0
    # kernels off the conv chain that see both char and data_t feature maps (hw/storage.py
    # char_kernels): each access carries a data_t and a char site behind a flag
    char_both: tuple[str, ...] = ()

    def declared(self) -> dict[str, int]:
        """The depths as the generated source declares them (a C array needs one element at least)."""
        return {"win_buf_size": max(1, self.window_depth), "weight_buf_size": max(1, self.weight_depth),
                "lrn_max_size": max(1, self.lrn_max)}


def buffer_sizes(lowered: Lowered, config, arch) -> BufferSizes:
    """On-chip buffer depths for `config`: the largest any layer asks for (0 when none does)."""
    return _buffer_sizes(lowered, config.vec_size, config.lane_num, config.conv_gp_size_x, config.fc_batch, arch)


@lru_cache(maxsize=1024)
def _buffer_sizes(lowered: Lowered, vec: int, lanes: int, gp: int, fc_batch: int, arch) -> BufferSizes:
    hw = _Extents(vec, lanes, gp, fc_batch)
    need = dict.fromkeys(("window_depth", "weight_depth", "pool_line", "lrn_max", "scalar_read", "scalar_write",
                          "bilinear", "fold_max", "fold_cg"), 0)
    for k in lowered.layers:
        for key, depth in k.op.buffer_needs(k, hw, arch).items():
            need[key] = max(need[key], depth)
    if arch.pool_line_depth:
        need["pool_line"] = arch.pool_line_depth
    return BufferSizes(**need)


@dataclass(frozen=True)
class _Extents:
    vec_size: int
    lane_num: int
    conv_gp_size_x: int
    fc_batch: int


def design_kernels(lowered: Lowered, arch) -> list[str]:
    """The device kernels the design contains, in source order: those its layers run on,
    or the architecture's fixed set (PipeCNN compiles its kernels whatever the model)."""
    if arch.fixed_kernels:
        return list(arch.fixed_kernels)
    used = {kernel for k in lowered.layers for kernel in k.op.kernels}
    return [kernel for kernel in registry.ALL_KERNELS if kernel in used]


def kernel_groups(lowered: Lowered, arch) -> list[tuple[object, list[KernelLayer]]]:
    """(owning operator, its layers) for every operator whose kernels the design contains."""
    owners = []
    for kernel in design_kernels(lowered, arch):
        op = registry.kernel_owner(kernel)
        if op not in owners:
            owners.append(op)
    return [(op, [k for k in lowered.layers if set(k.op.kernels) & set(op.kernels)]) for op in owners]
