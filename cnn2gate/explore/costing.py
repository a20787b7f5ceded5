"""The hardware model as the explorer's cost function."""
from __future__ import annotations

from .evaluator import Cost

#: Resources reported by the hardware model that decide `fits` and appear in plots.
RESOURCES = ("dsp", "alm", "ram_blocks")


class HwCost:
    """`cnn2gate.hw.estimate` for one (graph, board): config dict (+ per-layer widths) -> Cost."""

    def __init__(self, graph, board):
        from ..hw import load_board

        self.graph = graph
        self.board = load_board(board)

    def estimate(self, config: dict, bits: dict | None = None):
        from ..hw import estimate

        return estimate(self.graph, self.board, dict(config), formats=bits)

    def __call__(self, config: dict, bits: dict | None = None) -> Cost:
        est = self.estimate(config, bits)
        pct = est.resources.pct()
        return Cost(float(est.total_ms), bool(est.fits), {r: float(pct[r]) for r in RESOURCES})
