"""Resource model: DSP blocks, ALMs and RAM blocks per kernel, plus the BSP (docs/cost-models.md).

The structure follows the kernels the design instantiates (docs/architecture.md): each
operator in cnn2gate/ops/ prices the kernels it owns (`kernel_resources`), sized by the
one lowering's buffer depths, as the generated code sizes them. This module holds what
they share: memory-port and RAM-block pricing and the constants fitted to PipeCNN's
designs (marked FITTED; the fits and the data behind them are in docs/cost-models.md).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from dataclasses import dataclass, replace
from functools import lru_cache

from .. import ops
from ..ops.lowering import BufferSizes, buffer_sizes, kernel_groups
from .arch import GENERATED, Arch
from .boards import Board
from .packing import DspPacking, chain_packing
from .widths import DataWidths, weight_type_bits

if TYPE_CHECKING:  # pragma: no cover
    from .config import HwConfig

RESOURCES = ("dsp", "alm", "ram_blocks")

#: DSP blocks for address arithmetic and control outside the MAC array, per DSP
#: architecture. FITTED: PipeCNN #56 (Arria 10, VEC 8 x LANE 64: 292 DSPs) and #37
#: (Cyclone V, VEC 8 x LANE 8: 73 DSPs), less the MAC array and the normalisation kernel.
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
#: RAM bits behind each global-memory LSU (FIFOs, burst buffers) and per lane (stall
#: FIFOs and replicated weight-bank ports). FITTED to #37 and #56 (two equations, two unknowns).
RAM_BITS_PER_LSU = 133 * 1024
RAM_BITS_PER_LANE = 197 * 1024
#: DSP packing (hw/packing.py), assumptions: splitting a packed sum takes two adders of
#: `shift` bits (ALM_PER_SPLIT_BIT ALMs per bit of shift); combining a weight pair takes
#: one adder over the upper weight (ALM_PER_COMBINE_BIT per weight bit).
ALM_PER_SPLIT_BIT = 1.0
ALM_PER_COMBINE_BIT = 0.5
#: The 64-bit accumulator (docs/fixed-point.md), ASSUMED: the dot-product adds run at the
#: accumulator's width (ALM_PER_MAC prices 32-bit adds), and every accumulator register
#: and adder grows by the extra bits at two bits per ALM (two full adders per ALM). The
#: hard 64-bit accumulators of the DSP blocks (Arria 10 and later) are not counted on.
ALM_PER_ACC_BIT = 0.5

#: M20K/M10K port widths (bits) the compiler can configure
_RAM_WIDTHS = (40, 20, 10, 5, 2, 1)


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
class Resources:
    kernels: dict  # kernel -> {"dsp", "alm", "ram_blocks"}
    bsp: dict
    available: dict
    buffers: BufferSizes
    dsp_packing: dict | None = None  # how conv_core's multipliers are counted (dsp_packing_facts)

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


def lsus(kernel: str, arch: Arch, v: int = 1, lanes: int = 1, buffers: BufferSizes | None = None) -> tuple[int, int]:
    """(wide, narrow) global-memory ports of `kernel`, as the operator that owns it declares.

    Generated kernels (templates/device): wide ports for weights, bias and tables, one
    narrow port per unrolled element access of a feature map. PipeCNN accesses its
    tensors in vectors (wide ports only).
    """
    return ops.kernel_owner(kernel).ports(kernel, arch, v, lanes, buffers)


@dataclass(frozen=True)
class ResourceContext:
    """What every operator's `kernel_resources` needs: the config, the widths and the board."""

    config: HwConfig
    widths: DataWidths
    board: Board
    arch: Arch
    buffers: BufferSizes
    dsp_pack: DspPacking | None = None  # conv_core's packing (None: one product per multiply)
    weight_bits: int = 0  # conv_core's weight_t (hw/widths.py weight_type_bits); 0: data_t's width

    @property
    def v(self) -> int:
        return self.config.vec_size

    @property
    def lanes(self) -> int:
        return self.config.lane_num

    @property
    def bits(self) -> int:
        return self.widths.mult_bits

    @property
    def scale(self) -> float:
        return self.bits / 8.0

    @property
    def w_bits(self) -> int:
        """Bits of conv_core's weight_t: its weight buffer, weight channel and one multiplier
        operand (8 in the narrow-weight mode of a 16-bit design)."""
        return self.weight_bits or self.bits

    @property
    def pack(self) -> int:
        return self.board.dot_packing(self.bits)

    @property
    def rb(self) -> int:
        return self.board.ram_block_bits

    @property
    def control(self) -> int:
        return CONTROL_DSP[DSP_ARCH.get(self.board.family, "18x19")]

    @property
    def acc_scale(self) -> float:
        """Width of the dot-product adds relative to the 32 bits ALM_PER_MAC prices."""
        return (self.widths.acc_bits or 32) / 32.0

    def acc_alm(self, accumulators: int) -> float:
        """ALMs `accumulators` accumulators grow by beyond 32 bits (0 for a 32-bit design)."""
        return ALM_PER_ACC_BIT * ((self.widths.acc_bits or 32) - 32) * accumulators

    def mac_array(self, v: int, lanes: int) -> tuple[int, float]:
        """DSP blocks and ALMs (adder trees, splits) of `lanes` V-wide dot products that share
        each input: with packing, lanes 2q and 2q+1 share every multiplier (an odd last lane
        does not) and the board's `pair_products_per_dsp` prices them."""
        p = self.dsp_pack
        if p is None:
            # a data_t x weight_t product takes the multiplier data_t x data_t does on every
            # family (boards/*.toml: no mode below 18 bits holds a 16-bit operand); its adder
            # tree scales with the product width (ESTIMATE: 16x8 at 3/4 of 16x16)
            prod = (self.bits + self.w_bits) / 16.0
            return -(-v * lanes // self.pack), ALM_PER_MAC * prod * v * lanes
        pairs, single = divmod(lanes, 2)
        dsp = -(-(2 * v * pairs * self.pack + v * single * self.board.pair_packing())
                // (self.board.pair_packing() * self.pack))
        split = ALM_PER_SPLIT_BIT * p.shift * (v // p.group) + ALM_PER_COMBINE_BIT * p.w_bits * v
        return dsp, ALM_PER_MAC * self.scale * v * (pairs + single) + split * pairs

    def block(self, op, kernel: str, alm: float = 0.0, ram: int = 0, dsp: int = 0) -> dict:
        """A kernel's resources: its own logic plus the price of its memory ports."""
        wide, narrow = op.ports(kernel, self.arch, self.v, self.lanes, self.buffers)
        port_bits = wide * RAM_BITS_PER_LSU + narrow * RAM_BITS_PER_NARROW_LSU
        return {"dsp": dsp, "alm": ALM_PER_LSU * wide + ALM_PER_NARROW_LSU * narrow + alm,
                "ram_blocks": -(-port_bits // self.rb) + ram}


def estimate_resources(lowered, c: HwConfig, w: DataWidths, board: Board, arch: Arch,
                       narrow_act: bool = False, char_both: tuple[str, ...] = ()) -> Resources:
    """Every kernel the design contains (ops.lowering.design_kernels), priced by its operator;
    `narrow_act`: some activation buffer is stored as char in a short design; `char_both`: the
    kernels that access char and data_t feature maps alike (hw/storage.py char_kernels)."""
    sizes = buffer_sizes(lowered, c, arch)
    ctx = ResourceContext(c, w, board, arch, replace(sizes, narrow_act=1, char_both=char_both) if narrow_act else sizes,
                          chain_packing(lowered, w, c.vec_size, c.lane_num),
                          weight_type_bits(w, lowered) if arch is GENERATED else w.mult_bits)
    k = {}
    for op, layers in kernel_groups(lowered, arch):
        k.update(op.kernel_resources(layers, ctx))
    bsp = {"dsp": board.bsp_overhead["dsp_blocks"], "alm": board.bsp_overhead["alms"],
           "ram_blocks": board.bsp_overhead["ram_blocks"]}
    available = {"dsp": board.dsp_blocks, "alm": board.alms, "ram_blocks": board.ram_blocks}
    return Resources(k, bsp, available, ctx.buffers, dsp_packing_facts(board, ctx.dsp_pack, w.mult_bits, ctx.w_bits))


def dsp_packing_facts(board: Board, pack: DspPacking | None, bits: int, weight_bits: int = 0) -> dict:
    """conv_core's multiply mode, the board figure that prices it and whether that figure
    is an estimate (a citation starting with "estimate", or none at all); `weight_bits`:
    weight_t's width (below `bits` in the narrow-weight mode: the same DSP figure applies)."""
    key = "pair_products_per_dsp" if pack is not None else "dot_mults_per_dsp"
    products = board.pair_packing() if pack is not None else board.dot_packing(bits)
    source = board.sources.get(key, "")
    facts = {"mode": "pair" if pack is not None else "none", "products_per_dsp": products,
             "figure": key, "estimate": not source or key in board.estimated, "source": source}
    if 0 < weight_bits < bits:  # narrow-weight mode: data_t x weight_t products, same figure
        facts["weight_bits"] = weight_bits
    if pack is not None:
        facts.update(pack.to_dict())
    return facts
