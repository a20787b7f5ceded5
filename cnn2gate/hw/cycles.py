"""Building blocks of the latency model shared by every operator's `cost` (docs/cost-models.md).

Each operator module prices its own kernel work from these: the DRAM rate, the
start-up latency of a load phase, the launch overhead, and the common shape of a
kernel that streams its tensors through external memory.
"""
from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class CostContext:
    """What every layer's cost needs besides its own extents."""

    config: object  # HwConfig
    widths: object  # DataWidths
    bpc: float  # DRAM bytes per kernel cycle
    launch: float  # launch overhead in cycles
    arch: object  # Arch
    packed: bool = False  # weights stored packed at each layer's width (DataWidths.packs_weights)
    # {(layer, side)}: inputs ("rd", "rd1", ...) and outputs ("wr") stored as char in a short
    # design (hw/storage.py narrow_io)
    narrow: frozenset = frozenset()

    def act_bytes(self, k, side: str) -> int:
        """Bytes per element of layer k's first input ("rd"), input i (read_side(i)) or
        output ("wr") buffer in external memory."""
        return 1 if (k.name, side) in self.narrow else self.widths.data_bytes

    def in_bytes(self, k, i: int = 0) -> int:
        """Bytes per element of layer k's input i in external memory."""
        return self.act_bytes(k, read_side(i))

    def out_bytes(self, k) -> int:
        """Bytes per element of layer k's output in external memory."""
        return self.act_bytes(k, "wr")

    def weight_bytes(self, k) -> int:
        """Bytes of layer k's weight file, as the code generator writes it."""
        blocks, per_block = k.op.weight_blocks(k, self.config)
        return self.widths.weight_file_bytes(k.name, blocks, per_block, self.packed and k.op.packs_weights)


def read_side(i: int) -> str:
    """The key of a layer's input i in the narrow set: "rd" for the first, "rd1", "rd2", ... after."""
    return "rd" if i == 0 else f"rd{i}"


def bytes_per_cycle(bandwidth_gbs: float, fmax_mhz: float) -> float:
    return bandwidth_gbs * 1e9 * DRAM_EFFICIENCY / (fmax_mhz * 1e6)


def load(vectors: float, vector_bytes: float, bpc: float) -> float:
    """Cycles to load `vectors` vectors: one per cycle or the DRAM rate, plus the start-up latency."""
    return max(vectors, vectors * vector_bytes / bpc) + LOAD_LATENCY_CYCLES


def fill(vectors: float, vector_bytes: float, bpc: float) -> float:
    """Cycles of a load that overlaps other work (no exposed start-up latency)."""
    return max(vectors, vectors * vector_bytes / bpc)


def bound(compute: float, busy: float) -> str:
    return "memory" if busy - compute > compute else "compute"


def streamed(k, ctx: CostContext, compute: float, nbytes, ops: int) -> LayerCost:
    """A kernel that reads and writes external memory directly: busy for its arithmetic or
    its traffic, whichever is slower, after one load latency."""
    busy = max(compute, nbytes / ctx.bpc) + LOAD_LATENCY_CYCLES
    return LayerCost(k.name, k.kind, busy + ctx.launch, compute, bound(compute, busy), ops, nbytes)


def free(k, ops: int = 0) -> LayerCost:
    """Work that takes no time of its own (done by addressing or inside another kernel's stream)."""
    return LayerCost(k.name, k.kind, 0.0, 0.0, "none", ops, 0)
