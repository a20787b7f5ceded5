"""Resource model: DSP blocks, ALMs and RAM blocks per kernel, plus the BSP (docs/cost-models.md).

The structure follows the kernels the architecture instantiates (docs/architecture.md):
mem_read (window and weight buffers), conv_core (LANE_NUM x VEC_SIZE multipliers and
their adder trees), mem_write, the channels between them, and dw_conv / pool / lrn /
eltwise when the model has such layers. Buffers are sized for the largest layer, as
the generated code sizes them. Fitted constants are marked FITTED; the fits and the
data behind them are in docs/cost-models.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .arch import Arch
from .boards import Board
from .config import HwConfig
from .geometry import GraphGeom
from .widths import DataWidths

RESOURCES = ("dsp", "alm", "ram_blocks")

#: DSP blocks for address arithmetic and control outside the MAC array, per DSP
#: architecture. FITTED: PipeCNN #56 (Arria 10, VEC 8 x LANE 64: 292 DSPs) and #37
#: (Cyclone V, VEC 8 x LANE 8: 73 DSPs), less the MAC array and the LRN kernel.
CONTROL_DSP = {"18x19": 29, "9x9": 2}
DSP_ARCH = {"Cyclone V": "9x9", "Stratix V": "9x9", "Arria 10": "18x19", "Stratix 10": "18x19", "Agilex 7": "18x19"}

#: ALMs of adder tree and pipeline per 8x8 multiply-accumulate, scaled by data width:
#: PipeCNN #56's breakdown, 14,362 ALUTs of 32-bit adds for 512 MACs, at 2 ALUTs per ALM.
ALM_PER_MAC = 14.0
#: ALMs per lane (accumulator, requantisation, per-lane buffer ports and write-back).
#: FITTED with ALM_BASE to #37 and #56 (two equations, two unknowns).
ALM_PER_LANE = 792.0
#: ALMs of loop control and channel endpoints of mem_read + conv_core + mem_write. FITTED.
ALM_BASE = 8050.0
#: ALMs per wide global-memory load/store unit (burst-coalesced vector LSU; assumption).
ALM_PER_LSU = 1000.0
#: ALMs and RAM bits per narrow (one data_t element) LSU of an unrolled access (assumption).
ALM_PER_NARROW_LSU = 300.0
RAM_BITS_PER_NARROW_LSU = 10 * 1024
#: ALMs per pooling / element-wise lane at 8 bits (comparators or adders, muxes; assumption).
ALM_POOL_PER_LANE = 25.0
ALM_ELTWISE_PER_LANE = 30.0
#: ALMs of the LRN kernel (unrolled window, LUT index, requantisation; assumption).
ALM_LRN = 4000.0
#: RAM bits behind each global-memory LSU (FIFOs, burst buffers) and per lane (stall
#: FIFOs and replicated weight-bank ports). FITTED to #37 and #56 (two equations, two unknowns).
RAM_BITS_PER_LSU = 133 * 1024
RAM_BITS_PER_LANE = 197 * 1024

#: PipeCNN's global-memory ports per kernel (vector accesses; pooling in the stream has none)
_VECTOR_LSUS = {"mem_read": 3, "conv_core": 0, "mem_write": 1, "pool": 0, "lrn": 3}
#: M20K/M10K port widths (bits) the compiler can configure
_RAM_WIDTHS = (40, 20, 10, 5, 2, 1)
#: LRN lookup table (fixed-point.md): 1408 int32 entries
LRN_LUT_ENTRIES = 1408


@lru_cache(maxsize=4096)
def ram_blocks_for(width_bits: int, depth: int, block_bits: int) -> int:
    """Blocks for one memory of `width_bits` x `depth` in the cheapest port-width mode."""
    if width_bits <= 0 or depth <= 0:
        return 0
    best = None
    for mode_w in _RAM_WIDTHS:
        mode_d = 1 << ((block_bits // mode_w).bit_length() - 1)
        n = -(-width_bits // mode_w) * -(-depth // mode_d)
        best = n if best is None else min(best, n)
    return best


@dataclass(frozen=True)
class BufferSizes:
    window_depth: int  # WIN_BUF_SIZE: V-vectors
    weight_depth: int  # WEIGHT_BUF_SIZE: L x V-vectors
    pool_line: int  # pixels per pooling line buffer (PipeCNN's in-stream pooling only)
    lrn_max: int


def buffer_sizes(geom: GraphGeom, c: HwConfig, arch: Arch) -> BufferSizes:
    return _buffer_sizes(geom, c.vec_size, c.conv_gp_size_x, c.fc_batch, arch)


@lru_cache(maxsize=1024)
def _buffer_sizes(geom: GraphGeom, v: int, gp: int, fc_batch: int, arch: Arch) -> BufferSizes:
    win = wgt = line = lrn = 0
    for g in geom.layers:
        if g.kind in ("conv", "dense") or (g.kind == "dwconv" and not arch.depthwise_kernel):
            cv = -(-(g.cg if g.kind != "dwconv" else 1) // v)
            ww = (min(gp, g.ow) - 1) * g.sx + (g.kw - 1) * g.dx + 1
            win = max(win, g.kh * ww * cv * (fc_batch if g.kind == "dense" else 1))
            wgt = max(wgt, g.kh * g.kw * cv)
        elif g.kind == "pool":
            line = max(line, g.iw)
        elif g.kind == "lrn":
            lrn = max(lrn, g.lrn_size)
    if arch.pool_line_depth:
        line = arch.pool_line_depth
    return BufferSizes(win, wgt, line, lrn)


@dataclass(frozen=True)
class Resources:
    kernels: dict  # kernel -> {"dsp", "alm", "ram_blocks"}
    bsp: dict
    available: dict
    buffers: BufferSizes

    @property
    def used(self) -> dict:
        return {r: self.bsp[r] + sum(k[r] for k in self.kernels.values()) for r in RESOURCES}

    @property
    def kernel_total(self) -> dict:
        return {r: sum(k[r] for k in self.kernels.values()) for r in RESOURCES}

    def pct(self) -> dict:
        used = self.used
        return {r: 100.0 * used[r] / self.available[r] for r in RESOURCES}

    def fits(self, margin: float = 0.0) -> bool:
        """True when every resource stays within (1 - margin) of the device."""
        return not self.over(margin)

    def over(self, margin: float = 0.0) -> list[str]:
        used = self.used
        return [r for r in RESOURCES if used[r] > (1.0 - margin) * self.available[r]]

    def to_dict(self) -> dict:
        used, pct = self.used, self.pct()
        out = {r: {"used": round(used[r]), "available": self.available[r], "pct": round(pct[r], 2)}
               for r in RESOURCES}
        out["kernels"] = {k: {r: round(v[r]) for r in RESOURCES} for k, v in self.kernels.items()}
        out["bsp"] = dict(self.bsp)
        return out


def lsus(kernel: str, arch: Arch, v: int = 1, lanes: int = 1, lrn_size: int = 5) -> tuple[int, int]:
    """(wide, narrow) global-memory ports of `kernel`.

    Generated kernels (templates/device): wide ports for weights, bias and LUTs, one
    narrow port per unrolled element access of a feature map: mem_read gathers V,
    mem_write stores L, dw_conv and pool read and write V, lrn reads its window plus
    the centre and writes one, eltwise reads 4 x V and writes V.
    """
    if not arch.scalar_ports:
        return _VECTOR_LSUS[kernel], 0
    return {
        "mem_read": (1, v), "conv_core": (1, 0), "mem_write": (0, lanes), "dw_conv": (2, 2 * v),
        "pool": (1, 2 * v), "lrn": (1, lrn_size + 2), "eltwise": (0, 5 * v),
    }[kernel]


CORE_KERNELS = ("mem_read", "conv_core", "mem_write")
#: layer kind -> the kernel that runs it, for kernels generated only when needed
_OPTIONAL = {"dwconv": "dw_conv", "pool": "pool", "lrn": "lrn", "add": "eltwise"}


def optional_kernels(geom: GraphGeom, arch: Arch) -> list[str]:
    """Kernels besides the conv chain: those the model needs (PipeCNN: always pool and lrn)."""
    if arch.all_kernels:
        return ["pool", "lrn"]
    return [kernel for kind, kernel in _OPTIONAL.items() if kind in geom.kinds]


def estimate_resources(geom: GraphGeom, c: HwConfig, w: DataWidths, board: Board, arch: Arch) -> Resources:
    v, lanes, bits = c.vec_size, c.lane_num, w.mult_bits
    rb = board.ram_block_bits
    buf = buffer_sizes(geom, c, arch)
    scale = bits / 8.0
    pack = board.dot_packing(bits)
    control = CONTROL_DSP[DSP_ARCH.get(board.family, "18x19")]

    def base(kernel: str, alm: float = 0.0, ram: int = 0, dsp: int = 0) -> dict:
        wide, narrow = lsus(kernel, arch, v, lanes, max(buf.lrn_max, 1))
        port_bits = wide * RAM_BITS_PER_LSU + narrow * RAM_BITS_PER_NARROW_LSU
        return {"dsp": dsp, "alm": ALM_PER_LSU * wide + ALM_PER_NARROW_LSU * narrow + alm,
                "ram_blocks": -(-port_bits // rb) + ram}

    k = {}
    ram = arch.window_buffers * ram_blocks_for(v * bits, buf.window_depth, rb)
    ram += lanes * ram_blocks_for(v * bits, buf.weight_depth, rb)  # one weight memory per lane
    k["mem_read"] = base("mem_read", ALM_BASE / 3, ram, round(control * 2 / 3))
    k["conv_core"] = base("conv_core", ALM_PER_MAC * scale * v * lanes + ALM_PER_LANE * lanes + ALM_BASE / 3,
                          -(-lanes * RAM_BITS_PER_LANE // rb), -(-v * lanes // pack))
    k["mem_write"] = base("mem_write", ALM_BASE / 3, 0, control - round(control * 2 / 3))
    if arch.channel_depth:  # data_ch, weight_ch, out_ch FIFOs
        k["channels"] = {"dsp": 0, "alm": 0.0, "ram_blocks": sum(
            ram_blocks_for(wd * bits, arch.channel_depth, rb) for wd in (v, lanes * v, lanes))}
    for name in optional_kernels(geom, arch):
        if name == "dw_conv":
            k[name] = base(name, ALM_PER_MAC * scale * v + ALM_PER_LANE * v, 0, -(-v // pack))
        elif name == "pool":
            p_lanes = lanes if arch.pool_in_stream else v
            line_ram = 2 * ram_blocks_for(p_lanes * bits, buf.pool_line, rb) if arch.pool_in_stream else 0
            avg = bool(geom.pool_modes - {"max"}) and not arch.pool_in_stream
            k[name] = base(name, ALM_POOL_PER_LANE * scale * p_lanes, line_ram, v if avg else 0)
        elif name == "lrn":
            lut = ram_blocks_for(32, LRN_LUT_ENTRIES, rb)
            k[name] = base(name, ALM_LRN, lut, max(buf.lrn_max, 5) + 2)  # squares, LUT slope, scale
        elif name == "eltwise":
            k[name] = base(name, ALM_ELTWISE_PER_LANE * scale * v)
    bsp = {"dsp": board.bsp_overhead["dsp_blocks"], "alm": board.bsp_overhead["alms"],
           "ram_blocks": board.bsp_overhead["ram_blocks"]}
    available = {"dsp": board.dsp_blocks, "alm": board.alms, "ram_blocks": board.ram_blocks}
    return Resources(k, bsp, available, buf)
