"""Latency model: cycles per layer of the kernel chain (docs/cost-models.md, docs/architecture.md).

Conv, grouped conv and dense layers run on mem_read -> conv_core -> mem_write. For every
group g and LANE_NUM block mb, mem_read loads kh*kw*CV weight vectors, then for every
output row and x-group of CONV_GP_SIZE_X columns loads a window of kh*WW*CV input
vectors and streams OH*OW*kh*kw*CV dot-product steps in total. Each phase runs at one
vector per cycle or at the DRAM rate, whichever is slower. With single buffers the
window loads stall the stream; with a ping-pong buffer (PipeCNN) they overlap it.
PipeCNN's NDRange memWrite stores one lane per cycle, LANE_NUM cycles per output item
(per pooled item when a max pool runs in the stream).
Depthwise, pool, LRN and eltwise kernels read and write external memory directly.
Dense layers take fc_batch images per weight pass; their figures are per image.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .arch import Arch
from .config import HwConfig
from .geometry import GraphGeom, LayerGeom
from .widths import DataWidths

#: sustained fraction of the board's peak DRAM bandwidth (assumption, docs/cost-models.md)
DRAM_EFFICIENCY = 0.8
#: cycles before the first word of a load phase arrives (DDR round trip + loop fill), assumption
LOAD_LATENCY_CYCLES = 100
#: host-side cost of launching one layer's kernels and waiting for them, microseconds (assumption)
LAUNCH_US = 20.0


@dataclass(frozen=True)
class LayerCost:
    name: str
    kind: str
    cycles: float  # per image
    compute_cycles: float  # cycles the arithmetic units are busy (per image)
    bound: str  # compute | memory | none
    ops: int  # per image; MAC layers: 2 x MACs
    bytes: int  # external-memory traffic per image (re-reads included)

    @property
    def intensity(self) -> float:
        return self.ops / self.bytes if self.bytes else float("inf")


def bytes_per_cycle(bandwidth_gbs: float, fmax_mhz: float) -> float:
    return bandwidth_gbs * 1e9 * DRAM_EFFICIENCY / (fmax_mhz * 1e6)


def _load(vectors: float, vector_bytes: float, bpc: float) -> float:
    """Cycles to load `vectors` vectors: one per cycle or the DRAM rate, plus the start-up latency."""
    return max(vectors, vectors * vector_bytes / bpc) + LOAD_LATENCY_CYCLES


def _bound(compute: float, busy: float) -> str:
    return "memory" if busy - compute > compute else "compute"


def conv_cost(g: LayerGeom, c: HwConfig, w: DataWidths, bpc: float, launch: float, arch: Arch) -> LayerCost:
    v, lanes, gp, b = c.vec_size, c.lane_num, c.conv_gp_size_x, w.data_bytes
    cv = -(-g.cg // v)
    blocks = g.groups * -(-g.mg // lanes)
    gp_w = min(gp, g.ow)
    ww = (gp_w - 1) * g.sx + (g.kw - 1) * g.dx + 1
    windows = g.oh * -(-g.ow // gp)
    wvecs = g.kh * g.kw * cv
    weight = _load(wvecs, lanes * v * b, bpc)
    window = _load(g.kh * ww * cv, v * b, bpc)
    out_bytes = g.out_elems * b
    batch = c.fc_batch if g.kind == "dense" else 1
    stream = max(g.oh * g.ow * wvecs, out_bytes / blocks / bpc)
    if arch.write_lane_serial:  # memWrite needs LANE_NUM cycles per stored output item
        stream = max(stream, g.written_pixels * lanes)
    if arch.window_buffers == 1:
        per_image = windows * window + stream
    else:  # ping-pong: only the first window of a block is exposed
        per_image = window + max(windows * (window - LOAD_LATENCY_CYCLES), stream)
    busy = blocks * (weight + batch * per_image) / batch
    compute = blocks * g.oh * g.ow * wvecs
    nbytes = (blocks * (wvecs * lanes * v * b + 4 * lanes)) / batch \
        + blocks * windows * g.kh * ww * cv * v * b + out_bytes
    return LayerCost(g.name, g.kind, busy + launch, compute, _bound(compute, busy), 2 * g.macs, round(nbytes))


def dwconv_cost(g: LayerGeom, c: HwConfig, w: DataWidths, bpc: float, launch: float, arch: Arch) -> LayerCost:
    """Own kernel: V channels in parallel, every tap read from memory (no line buffer)."""
    v, b = c.vec_size, w.data_bytes
    cv = -(-g.cg // v)
    compute = cv * g.oh * g.ow * g.kh * g.kw
    nbytes = compute * v * b + g.out_elems * b + cv * v * (g.kh * g.kw * b + 4)
    busy = max(compute, nbytes / bpc) + LOAD_LATENCY_CYCLES
    return LayerCost(g.name, g.kind, busy + launch, compute, _bound(compute, busy), 2 * g.macs, nbytes)


def pool_cost(g: LayerGeom, c: HwConfig, w: DataWidths, bpc: float, launch: float, arch: Arch) -> LayerCost:
    ops = g.out_elems * g.kh * g.kw
    if arch.pool_in_stream and g.pool_mode == "max":
        return LayerCost(g.name, g.kind, 0.0, 0.0, "none", ops, 0)
    v, b = c.vec_size, w.data_bytes
    compute = -(-g.cg // v) * g.oh * g.ow * g.kh * g.kw
    nbytes = compute * v * b + g.out_elems * b
    busy = max(compute, nbytes / bpc) + LOAD_LATENCY_CYCLES
    return LayerCost(g.name, g.kind, busy + launch, compute, _bound(compute, busy), ops, nbytes)


def lrn_cost(g: LayerGeom, c: HwConfig, w: DataWidths, bpc: float, launch: float, arch: Arch) -> LayerCost:
    compute = g.ih * g.iw * g.cg  # one channel per cycle, window unrolled
    nbytes = (g.in_elems + g.out_elems) * w.data_bytes
    busy = max(compute, nbytes / bpc) + LOAD_LATENCY_CYCLES
    return LayerCost(g.name, g.kind, busy + launch, compute, _bound(compute, busy),
                     g.out_elems * (g.lrn_size + 3), nbytes)


def add_cost(g: LayerGeom, c: HwConfig, w: DataWidths, bpc: float, launch: float, arch: Arch) -> LayerCost:
    compute = -(-g.cg // c.vec_size) * g.ih * g.iw
    nbytes = (g.n_inputs * g.in_elems + g.out_elems) * w.data_bytes
    busy = max(compute, nbytes / bpc) + LOAD_LATENCY_CYCLES
    return LayerCost(g.name, g.kind, busy + launch, compute, _bound(compute, busy),
                     (g.n_inputs - 1) * g.out_elems, nbytes)


def concat_cost(g: LayerGeom, c: HwConfig, w: DataWidths, bpc: float, launch: float, arch: Arch) -> LayerCost:
    return LayerCost(g.name, g.kind, 0.0, 0.0, "none", 0, 0)  # producers write at channel offsets


_COSTS = {"conv": conv_cost, "dense": conv_cost, "dwconv": dwconv_cost, "pool": pool_cost,
          "lrn": lrn_cost, "add": add_cost, "concat": concat_cost}


def layer_costs(geom: GraphGeom, config: HwConfig, widths: DataWidths, bandwidth_gbs: float,
                fmax_mhz: float, arch: Arch) -> list[LayerCost]:
    bpc = bytes_per_cycle(bandwidth_gbs, fmax_mhz)
    launch = LAUNCH_US * fmax_mhz
    out = []
    for g in geom.layers:
        if g.kind == "dwconv" and not arch.depthwise_kernel:
            g = _as_grouped(g)
        out.append(_COSTS[g.kind](g, config, widths, bpc, launch, arch))
    return out


def _as_grouped(g: LayerGeom) -> LayerGeom:
    """Depthwise conv on an architecture without a depthwise kernel: groups of one channel."""
    return replace(g, kind="conv", cg=1, mg=1)
