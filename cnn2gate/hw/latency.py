"""Latency model: cycles per layer of the generated kernels (docs/cost-models.md, docs/architecture.md).

Every layer is priced by its operator (`op.cost`, in cnn2gate/ops/) on the kernel
layers of the one lowering (ops/lowering.py) that the code generator renders too.
The building blocks (DRAM rate, load latency, launch overhead) are in hw/cycles.py.
Dense layers take fc_batch images per weight pass; their figures are per image.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .arch import Arch
from .cycles import DRAM_EFFICIENCY, LAUNCH_US, LOAD_LATENCY_CYCLES, CostContext, LayerCost, bytes_per_cycle
from .widths import DataWidths

if TYPE_CHECKING:  # pragma: no cover
    from .config import HwConfig

__all__ = ["layer_costs", "cost_context", "LayerCost", "DRAM_EFFICIENCY", "LAUNCH_US", "LOAD_LATENCY_CYCLES",
           "bytes_per_cycle"]


def layer_costs(lowered, config: HwConfig, widths: DataWidths, bandwidth_gbs: float,
                fmax_mhz: float, arch: Arch, narrow: frozenset = frozenset()) -> list[LayerCost]:
    """One LayerCost per kernel layer of `lowered` (ops.lowering.lower); `narrow`: the
    char-stored conv-chain tensors (hw/storage.py narrow_io)."""
    ctx = cost_context(lowered, config, widths, bandwidth_gbs, fmax_mhz, arch, narrow)
    return [k.op.cost(k, ctx) for k in lowered.layers]


def cost_context(lowered, config: HwConfig, widths: DataWidths, bandwidth_gbs: float,
                 fmax_mhz: float, arch: Arch, narrow: frozenset = frozenset()) -> CostContext:
    # packing is one decision for the whole design, as in codegen/plan.py
    packed = widths.packs_weights(k.name for k in lowered.layers if k.op.packs_weights)
    return CostContext(config, widths, bytes_per_cycle(bandwidth_gbs, fmax_mhz), LAUNCH_US * fmax_mhz, arch, packed,
                       frozenset(narrow))
