"""Remove nodes that do nothing at inference: Identity, Dropout, Casts to the same type."""
from __future__ import annotations

import onnx

from ..wgraph import Node, WGraph
from .base import Rule


def _is_identity(g: WGraph, n: Node) -> bool:
    return n.op == "Identity" and not n.domain and n.inputs[0] not in g.consts


def _is_dropout(g: WGraph, n: Node) -> bool:
    # Inference Dropout is the identity; its mask output (rarely used) would need real work.
    if n.op != "Dropout" or n.domain:
        return False
    mask_used = len(n.outputs) > 1 and n.outputs[1] and (g.consumers(n.outputs[1]) or g.is_output(n.outputs[1]))
    return not mask_used


def _is_noop_cast(g: WGraph, n: Node) -> bool:
    if n.op != "Cast" or n.domain or n.inputs[0] in g.consts:
        return False
    src = g.dtypes.get(n.inputs[0])
    return src is not None and src == int(n.attrs.get("to", -1)) and src == onnx.TensorProto.FLOAT


def _bypass(g: WGraph, n: Node) -> None:
    g.bypass(n)


RULES = [
    Rule("drop_identity", _is_identity, _bypass),
    Rule("drop_dropout", _is_dropout, _bypass),
    Rule("drop_noop_cast", _is_noop_cast, _bypass),
]
