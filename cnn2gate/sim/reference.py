"""Integer reference path: plain int64 NumPy, no BLAS, no floats.

Each operator's `int_ref` (cnn2gate/ops/) returns (y, acc) where acc is the exact
pre-rounding value handed to the shared requant step (the statistics are taken on it).
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..quant import fixedpoint as fx
from ..quant.params import QLayer


def run_kernel(q: QLayer, *xs: np.ndarray):
    """(y, acc): the layer's int64 output and its exact pre-rounding values."""
    xs = [np.asarray(x, dtype=np.int64) for x in xs]
    return ops.op_for(q.layer).int_ref(q, *xs)


def run_layer(q: QLayer, *xs: np.ndarray):
    """(y, accumulator info) for one layer."""
    y, acc = run_kernel(q, *xs)
    return y, acc_info(q, acc)


def acc_info(q: QLayer, acc: np.ndarray) -> dict:
    """Range of the pre-rounding values and how many outputs saturated."""
    lo, hi = fx.saturation_counts(acc, q.shift, q.out, q.act, q.alpha_q)
    return {"acc_min": int(acc.min()) if acc.size else 0, "acc_max": int(acc.max()) if acc.size else 0,
            "sat_low": lo, "sat_high": hi}
