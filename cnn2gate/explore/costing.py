"""The hardware model as the explorer's cost function."""
from __future__ import annotations

from .evaluator import Cost
from .space import tensor_widths, weight_width

#: Resources reported by the hardware model that decide `fits` and appear in plots.
RESOURCES = ("dsp", "alm", "ram_blocks")


class HwCost:
    """`cnn2gate.hw.estimate` for one (graph, board): config dict (+ per-layer widths) -> Cost."""

    def __init__(self, graph, board):
        from ..hw import load_board
        from ..quant.calibrate import tied_tensors

        self.graph = graph
        self.board = load_board(board)
        self._groups = tied_tensors(graph)

    def formats(self, bits: dict | None) -> dict | None:
        """The widths of the formats explore writes for `bits` (SensitivityModel.formats_for):
        every tensor's, the input's and the tied ones' included, so that the design priced
        stores each buffer as `compile` will (hw/storage.py)."""
        if bits is None:
            return None
        from ..ir.layers import GRAPH_INPUT

        width = tensor_widths(self.graph, bits, self._groups)
        layers = {}
        for layer in self.graph.layers:
            entry = {"a_bits": width[layer.name]}
            if layer.has_weights:
                entry["w_bits"] = weight_width(layer, bits, width)
            layers[layer.name] = entry
        return {"input": {"bits": width[GRAPH_INPUT]}, "layers": layers}

    def estimate(self, config: dict, bits: dict | None = None):
        from ..hw import estimate

        return estimate(self.graph, self.board, dict(config), formats=self.formats(bits))

    def __call__(self, config: dict, bits: dict | None = None) -> Cost:
        est = self.estimate(config, bits)
        pct = est.resources.pct()
        return Cost(float(est.total_ms), bool(est.fits), {r: float(pct[r]) for r in RESOURCES})
