"""Fixed-length numeric descriptions of a model and a board (part of the RL observation)."""
from __future__ import annotations

import math

import numpy as np

from ..ops.lowering import lower

MODEL_FEATURES = ("log10_gmacs", "log10_mparams", "layers/100", "dense_mac_frac", "grouped_mac_frac", "log2_max_ch/12")
BOARD_FEATURES = ("log10_dsp", "log10_kalm", "log10_ram_blocks", "bandwidth/100", "fmax/500")


def model_features(graph) -> np.ndarray:
    macs = max(graph.total_macs(), 1)
    layers = lower(graph).layers
    dense = sum(k.macs for k in layers if k.op.batched)
    grouped = sum(k.macs for k in layers if k.groups > 1)
    channels = max([layer.out_shape[0] for layer in graph.layers] + [1])
    return np.array([
        math.log10(macs / 1e9), math.log10(max(graph.total_params(), 1) / 1e6), len(graph.layers) / 100,
        dense / macs, grouped / macs, math.log2(channels) / 12,
    ], dtype=np.float32)


def _field(board, name: str) -> float:
    value = board.get(name) if isinstance(board, dict) else getattr(board, name, None)
    if value is None:
        raise AttributeError(f"board {getattr(board, 'name', board)!r} has no {name!r}")
    return float(value)


def board_features(board) -> np.ndarray:
    return np.array([
        math.log10(max(_field(board, "dsp_blocks"), 1)), math.log10(max(_field(board, "alms"), 1) / 1e3),
        math.log10(max(_field(board, "ram_blocks"), 1)), _field(board, "mem_bandwidth_gbs") / 100,
        _field(board, "fmax_mhz") / 500,
    ], dtype=np.float32)
