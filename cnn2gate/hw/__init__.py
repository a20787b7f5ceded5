"""Hardware models: board catalogue, hardware configuration, resource and latency estimates.

    from cnn2gate.hw import estimate, load_board, load_config
    est = estimate(graph, "a10", {"vec_size": 16, "lane_num": 32})
    est.total_ms, est.gops, est.fits, est.resources.pct(), est.to_dict()

Equations and fitted constants: docs/cost-models.md.
"""
from .arch import GENERATED, PIPECNN, Arch
from .boards import DEFAULT_BOARD, Board, list_boards, load_board
from .config import HwConfig, KNOBS, check_config, default_config, legal_values, load_config
from .estimate import Estimate, LayerEstimate, estimate
from ..ops.lowering import lower
from .widths import DataWidths, widths_from_formats

__all__ = [
    "Arch", "GENERATED", "PIPECNN",
    "DEFAULT_BOARD", "Board", "list_boards", "load_board",
    "HwConfig", "KNOBS", "check_config", "default_config", "legal_values", "load_config",
    "Estimate", "LayerEstimate", "estimate", "lower", "DataWidths", "widths_from_formats",
]
