"""Weights and activations in the device layouts of docs/architecture.md."""
from __future__ import annotations

import numpy as np

INT32 = np.dtype("<i4")


def _ceil_to(n: int, m: int) -> int:
    return -(-n // m) * m


def window_width(a: dict, hw) -> int:
    """Input columns under one group of CONV_GP_SIZE_X output columns (mem_read's window)."""
    gp_w = min(hw.conv_gp_size_x, a["out_w"])
    return (gp_w - 1) * a["stride_x"] + (a["k_w"] - 1) * a["dil_x"] + 1


def int32(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.int64)
    if x.size and (x.min() < -(1 << 31) or x.max() >= 1 << 31):
        raise ValueError("value outside int32")
    return np.ascontiguousarray(x.reshape(-1).astype(INT32))


def conv_weights(w: np.ndarray, bias: np.ndarray, groups: int, vec: int, lane: int):
    """(M, Cg, kh, kw) -> [G][MB][CV][kh][kw][L][V]; bias (M,) -> [G][MB][L]; zero-padded."""
    m, cg, kh, kw = w.shape
    mg = m // groups
    mp, cp = _ceil_to(mg, lane), _ceil_to(cg, vec)
    wp = np.zeros((groups, mp, cp, kh, kw), dtype=np.int64)
    wp[:, :mg, :cg] = np.asarray(w, dtype=np.int64).reshape(groups, mg, cg, kh, kw)
    wp = wp.reshape(groups, mp // lane, lane, cp // vec, vec, kh, kw).transpose(0, 1, 3, 5, 6, 2, 4)
    bp = np.zeros((groups, mp), dtype=np.int64)
    bp[:, :mg] = np.asarray(bias, dtype=np.int64).reshape(groups, mg)
    return np.ascontiguousarray(wp).reshape(-1), int32(bp)


def depthwise_weights(w: np.ndarray, bias: np.ndarray, vec: int):
    """(C, 1, kh, kw) -> [CV][kh][kw][V]; bias (C,) -> [CV][V]; zero-padded."""
    c, _, kh, kw = w.shape
    cp = _ceil_to(c, vec)
    wp = np.zeros((cp, kh, kw), dtype=np.int64)
    wp[:c] = np.asarray(w, dtype=np.int64)[:, 0]
    wp = wp.reshape(cp // vec, vec, kh, kw).transpose(0, 2, 3, 1)
    bp = np.zeros(cp, dtype=np.int64)
    bp[:c] = bias
    return np.ascontiguousarray(wp).reshape(-1), int32(bp)


def to_device(x: np.ndarray, vec: int) -> np.ndarray:
    """(C, H, W) -> [C/V][H][W][V] with zero channel padding (int64)."""
    c, h, w = x.shape
    cp = _ceil_to(c, vec)
    xp = np.zeros((cp, h, w), dtype=np.int64)
    xp[:c] = x
    return np.ascontiguousarray(xp.reshape(cp // vec, vec, h, w).transpose(0, 2, 3, 1))


def from_device(d: np.ndarray, c: int, vec: int) -> np.ndarray:
    """Inverse of to_device."""
    cv, h, w, _ = d.shape
    return np.ascontiguousarray(d.transpose(0, 3, 1, 2).reshape(cv * vec, h, w)[:c])
