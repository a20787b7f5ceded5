"""Integer reference path: plain int64 NumPy, no BLAS, no floats.

Each kernel returns (y, acc) where acc is the exact pre-rounding value handed to
the shared requant step (the statistics are taken on it).
"""
from __future__ import annotations

import numpy as np

from ..ir.windows import lrn_window, pad_nchw, patches
from ..quant import fixedpoint as fx
from ..quant.params import QLayer

_I64_MIN = np.iinfo(np.int64).min


def _out(q: QLayer, acc: np.ndarray, s: int) -> np.ndarray:
    return fx.requant(acc, s, q.out, q.act, q.alpha_q)


def conv(q: QLayer, x: np.ndarray):
    layer = q.layer
    n = x.shape[0]
    m, cg, kh, kw = q.weight.shape
    _, oh, ow = layer.out_shape
    sh, sw = layer.stride
    dh, dw = layer.dilation
    mg = m // layer.groups
    xp = pad_nchw(x, layer.pads)
    acc = np.zeros((n, m, oh, ow), dtype=np.int64)
    for g in range(layer.groups):
        xg = xp[:, g * cg : (g + 1) * cg]
        wg = q.weight[g * mg : (g + 1) * mg]
        for ky in range(kh):
            for kx in range(kw):
                y0, x0 = ky * dh, kx * dw
                tap = xg[:, :, y0 : y0 + (oh - 1) * sh + 1 : sh, x0 : x0 + (ow - 1) * sw + 1 : sw]
                acc[:, g * mg : (g + 1) * mg] += np.einsum("nchw,mc->nmhw", tap, wg[:, :, ky, kx])
    acc += q.bias[None, :, None, None]
    return _out(q, acc, q.shift), acc


def dense(q: QLayer, x: np.ndarray):
    flat = x.reshape(x.shape[0], -1)
    acc = np.einsum("nk,mk->nm", flat, q.weight) + q.bias[None, :]
    return _out(q, acc, q.shift), acc


def pool(q: QLayer, x: np.ndarray):
    layer = q.layer
    if layer.mode == "max":
        acc = patches(x, layer.kernel, layer.stride, layer.pads, pad_value=_I64_MIN).max(axis=(-1, -2))
        return _out(q, acc, q.shift), acc
    if layer.mode == "global_avg":
        sums = x.sum(axis=(2, 3), keepdims=True)
    else:
        sums = patches(x, layer.kernel, layer.stride, layer.pads).sum(axis=(-1, -2))
    acc = sums * q.multiplier[None, None]
    return _out(q, acc, q.shift), acc


def lrn(q: QLayer, x: np.ndarray):
    lo, hi = lrn_window(x.shape[1], q.layer.size)
    sq = x * x
    ss = np.stack([sq[:, a:b].sum(axis=1) for a, b in zip(lo, hi)], axis=1)
    acc = x * q.lut[fx.lrn_index(ss)]
    return _out(q, acc, q.shift), acc


def add(q: QLayer, *xs: np.ndarray):
    acc = np.zeros_like(xs[0])
    for x, k in zip(xs, q.in_shifts):
        acc = acc + fx.rshift_round(x, -k)
    return _out(q, acc, q.shift), acc


def concat(q: QLayer, *xs: np.ndarray):
    acc = np.concatenate(xs, axis=1)
    return _out(q, acc, 0), acc


KERNELS = {"conv": conv, "dense": dense, "pool": pool, "lrn": lrn, "add": add, "concat": concat}


def run_kernel(q: QLayer, *xs: np.ndarray):
    """(y, acc): the layer's int64 output and its exact pre-rounding values."""
    xs = [np.asarray(x, dtype=np.int64) for x in xs]
    return KERNELS[q.kind](q, *xs)


def run_layer(q: QLayer, *xs: np.ndarray):
    """(y, accumulator info) for one layer."""
    y, acc = run_kernel(q, *xs)
    return y, acc_info(q, acc)


def acc_info(q: QLayer, acc: np.ndarray) -> dict:
    """Range of the pre-rounding values and how many outputs saturated."""
    lo, hi = fx.saturation_counts(acc, q.shift, q.out, q.act, q.alpha_q)
    return {"acc_min": int(acc.min()) if acc.size else 0, "acc_max": int(acc.max()) if acc.size else 0,
            "sat_low": lo, "sat_high": hi}
