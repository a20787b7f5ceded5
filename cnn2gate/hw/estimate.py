"""`estimate()`: latency and resources of one (graph, board, config, formats) point."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..ir.layers import Graph
from ..ops.lowering import lower
from .arch import GENERATED, Arch
from .boards import Board, load_board
from .config import HwConfig, check_config, default_config, load_config
from .latency import DRAM_EFFICIENCY, LayerCost, cost_context, layer_costs
from .memory import Footprint, footprint
from .resources import Resources, estimate_resources
from .storage import char_kernels, narrow_io, out_bits_of
from .widths import DataWidths, resolve_accumulator, widths_from_formats


@dataclass(frozen=True)
class LayerEstimate:
    name: str
    kind: str
    cycles: float
    compute_cycles: float  # cycles the multipliers / arithmetic units are busy
    ms: float
    bound: str
    ops: int
    bytes: int
    intensity: float  # ops per byte of external-memory traffic
    gops: float  # this layer's ops over its time

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "cycles": round(self.cycles),
                "compute_cycles": round(self.compute_cycles), "ms": round(self.ms, 6),
                "bound": self.bound, "ops": self.ops, "bytes": self.bytes,
                "intensity": None if self.intensity == float("inf") else round(self.intensity, 3),
                "gops": round(self.gops, 3)}


@dataclass(frozen=True)
class Estimate:
    board: Board
    config: HwConfig
    widths: DataWidths
    fmax_mhz: float
    layers: tuple[LayerEstimate, ...]
    total_ms: float
    gops: float  # 2 x conv/dense MACs per image over total_ms
    resources: Resources
    margin: float
    arch: str = "generated"
    memory: Footprint | None = None  # external-memory footprint against the board's capacity

    @property
    def fits(self) -> bool:
        """The resources fit (with the margin) and the buffers fit the board's external memory."""
        return self.resources.fits(self.margin) and (self.memory is None or self.memory.fits)

    def over(self) -> list[str]:
        """What does not fit: resource names, and "external memory"."""
        return self.resources.over(self.margin) + ([] if self.memory is None or self.memory.fits
                                                  else ["external memory"])

    @property
    def total_cycles(self) -> float:
        return sum(layer.cycles for layer in self.layers)

    @property
    def peak_gops(self) -> float:
        """Compute roof of this configuration: 2 ops per multiplier per cycle."""
        return 2.0 * self.config.vec_size * self.config.lane_num * self.fmax_mhz / 1e3

    @property
    def bandwidth_gbs(self) -> float:
        """Memory roof: the board's bandwidth at the model's sustained efficiency."""
        return self.board.mem_bandwidth_gbs * DRAM_EFFICIENCY

    def to_dict(self) -> dict:
        return {
            "board": self.board.name,
            "arch": self.arch,
            "config": self.config.to_dict(),
            "fmax_mhz": self.fmax_mhz,
            "widths": {"w_bits": self.widths.w_bits, "a_bits": self.widths.a_bits},
            "batch": {"conv": 1, "fc": self.config.fc_batch,
                      "note": "per image; dense layers amortise one weight pass over fc_batch images"},
            "layers": [layer.to_dict() for layer in self.layers],
            "total_ms": round(self.total_ms, 6),
            "gops": round(self.gops, 3),
            "roofline": {"peak_gops": round(self.peak_gops, 3), "bandwidth_gbs": round(self.bandwidth_gbs, 3)},
            "resources": self.resources.to_dict(),
            "dsp_packing": self.resources.dsp_packing,
            "memory": None if self.memory is None else self.memory.to_dict(),
            "margin": self.margin,
            "fits": self.fits,
        }


def memory_refusal(est: Estimate, model: str, graph: Graph) -> str | None:
    """Why the board's external memory cannot hold the design (None: it can); `estimate` and
    `compile` refuse with this one message."""
    from .memory import misfit_message

    if est.memory is None or est.memory.fits:
        return None
    return f"{model}: {misfit_message(est.memory, est.board, est.config, graph.input_shape)}"


def _layer(cost: LayerCost, fmax_mhz: float) -> LayerEstimate:
    ms = cost.cycles / (fmax_mhz * 1e3)
    gops = cost.ops / (ms * 1e6) if ms > 0 else 0.0
    return LayerEstimate(cost.name, cost.kind, cost.cycles, cost.compute_cycles, ms, cost.bound, cost.ops,
                         cost.bytes, cost.intensity, gops)


def estimate(graph: Graph, board: Board | str = "a10", config: HwConfig | dict | str | None = None,
             formats: Any = None, *, margin: float = 0.0, check: bool = True,
             arch: Arch = GENERATED) -> Estimate:
    """Latency and resources of `graph` on `board` with hardware `config`.

    config None takes the board defaults (vec_size lowered to a legal value for the
    graph); a dict or JSON path is read with `load_config`. `formats` gives the data
    widths (default 8-bit). `margin` is the fraction of each resource kept free for
    `fits`. `arch` selects the modelled accelerator (the generated one; PIPECNN for
    validation against published PipeCNN designs). Raises ConfigError for a config
    the graph cannot use.
    """
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    board = load_board(board)
    if config is None:
        config = default_config(graph, board)
    elif not isinstance(config, HwConfig):
        config = load_config(config, board)
    if check:
        check_config(graph, config)
    lowered = lower(graph)
    widths = resolve_accumulator(widths_from_formats(formats), lowered.layers)
    fmax = float(config.fmax_mhz or board.fmax_mhz)
    # activation buffers the generated design keeps at 8 bits in a 16-bit design (hw/storage.py)
    narrow = narrow_io(graph, lowered, out_bits_of(formats), widths.data_bytes, config.vec_size,
                       config.lane_num) if arch is GENERATED else frozenset()
    costs = layer_costs(lowered, config, widths, board.mem_bandwidth_gbs, fmax, arch, narrow)
    layers = tuple(_layer(c, fmax) for c in costs)
    total_ms = sum(layer.ms for layer in layers)
    gops = 2.0 * lowered.total_macs / (total_ms * 1e6) if total_ms > 0 else 0.0
    both = tuple(sorted(k for k, mode in char_kernels(lowered, narrow).items() if mode == "both"))
    resources = estimate_resources(lowered, config, widths, board, arch, bool(narrow), both)
    memory = footprint(graph, lowered, cost_context(lowered, config, widths, board.mem_bandwidth_gbs, fmax, arch,
                                                    narrow), board)
    return Estimate(board, config, widths, fmax, layers, total_ms, gops, resources, margin, arch.name, memory)
