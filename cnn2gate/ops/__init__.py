"""The operators: one module per layer kind, each the one place that says what the kind is.

    from cnn2gate import ops
    op = ops.op_for(layer)          # the Op that owns this layer
    op.float_ref(layer, x); op.int_ref(q, x); op.lower(layer, graph); op.cost(k, ctx)

The registry order is the order of the device kernels in the generated source
(the convolution chain first). docs/adding-an-op.md shows how to add one.
"""
from __future__ import annotations

from .base import ArchLimit, KernelLayer, Op, Unsupported
from . import activation, add, concat, conv, dense, depthwise, lrn, mul, pool, resize  # noqa: E402  (registry below)
from . import zero_insert  # noqa: E402
from . import shuffle, split  # noqa: E402
from .activation import Activation
from .add import Add
from .concat import Concat
from .conv import Conv
from .dense import Dense
from .lrn import LRN
from .mul import Mul
from .pool import Pool
from .resize import Resize
from .shuffle import Shuffle
from .split import Split
from .zero_insert import ZeroInsert

#: every operator, in kernel order; each layer is claimed by exactly one
OPS: tuple[Op, ...] = (conv.OP, dense.OP, depthwise.OP, pool.OP, lrn.OP, add.OP, activation.OP, mul.OP, resize.OP,
                       zero_insert.OP, shuffle.OP, concat.OP, split.OP)

#: IR kind name -> layer class (what a stored project's model.json names)
LAYER_TYPES = {op.layer_type.kind: op.layer_type for op in OPS}

#: every device kernel, in the order the generated source defines them
ALL_KERNELS: tuple[str, ...] = tuple(dict.fromkeys(k for op in OPS for k in op.kernels))


def op_for(layer) -> Op:
    for op in OPS:
        if op.matches(layer):
            return op
    raise TypeError(f"layer {getattr(layer, 'name', layer)!r}: no operator owns {type(layer).__name__}")


def kernel_owner(kernel: str) -> Op:
    """The first operator that runs on `kernel` (it prices and renders it)."""
    for op in OPS:
        if kernel in op.kernels:
            return op
    raise KeyError(f"unknown device kernel {kernel!r}")


def onnx_handlers(internal_domain: str) -> dict[tuple[str, str], Op]:
    """(domain, op type) -> the operator that builds a layer from such a node; the front
    end's own rewritten nodes live in `internal_domain`."""
    out = {}
    for op in OPS:
        for t in op.onnx_types:
            out[("", t)] = op
        for t in op.internal_types:
            out[(internal_domain, t)] = op
    return out


from . import lowering  # noqa: E402  (after the registry it reads)

__all__ = ["OPS", "ALL_KERNELS", "LAYER_TYPES", "op_for", "kernel_owner", "onnx_handlers", "Op", "KernelLayer",
           "Unsupported", "ArchLimit", "Conv", "Dense", "Pool", "LRN", "Add", "Activation", "Mul", "Resize",
           "ZeroInsert", "Concat", "Shuffle", "Split"]
