"""Per-layer geometry the cost models need, computed once per graph.

`prepare(graph)` walks the IR once and keeps plain integers per layer, mapped the way
the code generator maps them (docs/architecture.md): a dense layer over a (C, H, W)
map is a conv with an (H, W) kernel and one output pixel; a dense layer over a vector
(N,) is a 1x1 conv over N channels; global average pooling is pooling with an (H, W)
window. The result is cached on the graph object (weakly), so the explorer can call
`estimate` thousands of times without touching numpy arrays again.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

from ..ir.layers import GRAPH_INPUT, LRN, Add, Concat, Conv, Dense, Graph, Pool


@dataclass(frozen=True)
class LayerGeom:
    name: str
    kind: str  # conv | dense | dwconv | pool | lrn | add | concat
    groups: int = 1
    cg: int = 0  # input channels per group (pool/lrn/add/dwconv: channels)
    mg: int = 0  # output channels per group
    kh: int = 1
    kw: int = 1
    sx: int = 1
    dx: int = 1  # dilation along x
    ih: int = 1
    iw: int = 1
    oh: int = 1
    ow: int = 1
    in_elems: int = 0  # elements of each input tensor
    n_inputs: int = 1
    out_elems: int = 0
    macs: int = 0
    params: int = 0
    reads_graph_input: bool = False
    lrn_size: int = 0
    pool_mode: str = ""
    written_pixels: int = 0  # output pixels stored per channel, after a max pool that can run in the stream

    @property
    def is_mac(self) -> bool:
        return self.kind in ("conv", "dense", "dwconv")


@dataclass(frozen=True, eq=False)
class GraphGeom:
    """Hashed and compared by identity: one object per prepared graph."""

    name: str
    layers: tuple[LayerGeom, ...]
    kinds: frozenset[str]
    pool_modes: frozenset[str]
    total_macs: int
    total_params: int
    input_elems: int
    output_elems: int


def _prod(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _chw(shape) -> tuple[int, int, int]:
    return (int(shape[0]), int(shape[1]), int(shape[2])) if len(shape) == 3 else (int(shape[0]), 1, 1)


def _streamed_pool(layer, graph: Graph) -> Pool | None:
    """The max pool that is the only consumer of `layer` (PipeCNN pools such layers in the stream)."""
    consumers = graph.consumers(layer.name)
    if len(consumers) == 1 and isinstance(consumers[0], Pool) and consumers[0].mode == "max" \
            and layer.name != graph.output:
        return consumers[0]
    return None


def _geom(layer, graph: Graph) -> LayerGeom:
    c, h, w = _chw(layer.in_shape)
    m, oh, ow = _chw(layer.out_shape)
    common = dict(name=layer.name, reads_graph_input=layer.inputs[0] == GRAPH_INPUT, macs=layer.macs(),
                  params=layer.params(), in_elems=_prod(layer.in_shape), out_elems=_prod(layer.out_shape),
                  n_inputs=len(layer.inputs), ih=h, iw=w, oh=oh, ow=ow, written_pixels=oh * ow)
    pool = _streamed_pool(layer, graph) if isinstance(layer, (Conv, Dense)) else None
    if pool is not None:
        _, ph, pw = _chw(pool.out_shape)
        common["written_pixels"] = ph * pw
    if isinstance(layer, Conv):
        kh, kw = layer.kernel
        if layer.depthwise and layer.out_channels == c:
            return LayerGeom(kind="dwconv", groups=layer.groups, cg=c, mg=m, kh=kh, kw=kw, sx=layer.stride[1],
                             dx=layer.dilation[1], **common)
        return LayerGeom(kind="conv", groups=layer.groups, cg=c // layer.groups, mg=m // layer.groups, kh=kh, kw=kw,
                         sx=layer.stride[1], dx=layer.dilation[1], **common)
    if isinstance(layer, Dense):
        return LayerGeom(kind="dense", cg=c, mg=m, kh=h, kw=w, **common)
    if isinstance(layer, Pool):
        kh, kw = layer.window()
        return LayerGeom(kind="pool", cg=c, mg=c, kh=kh, kw=kw, sx=1 if layer.mode == "global_avg" else layer.stride[1],
                         pool_mode=layer.mode, **common)
    if isinstance(layer, LRN):
        return LayerGeom(kind="lrn", cg=c, mg=c, lrn_size=layer.size, **common)
    if isinstance(layer, (Add, Concat)):
        return LayerGeom(kind=layer.kind, cg=c, mg=m, **common)
    raise NotImplementedError(f"layer {layer.name}: no cost model for kind {layer.kind!r}")


_CACHE: "weakref.WeakKeyDictionary[Graph, GraphGeom]" = weakref.WeakKeyDictionary()


def prepare(graph: Graph) -> GraphGeom:
    """The graph's layer geometry (cached per graph object; graphs are treated as immutable)."""
    geom = _CACHE.get(graph)
    if geom is None:
        layers = tuple(_geom(layer, graph) for layer in graph.layers)
        geom = GraphGeom(graph.name, layers, frozenset(g.kind for g in layers),
                         frozenset(g.pool_mode for g in layers if g.kind == "pool"),
                         sum(g.macs for g in layers), sum(g.params for g in layers),
                         _prod(graph.input_shape), _prod(graph.output_shape))
        _CACHE[graph] = geom
    return geom
