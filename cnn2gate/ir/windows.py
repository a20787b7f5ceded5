"""Sliding-window views shared by the float reference and the integer simulator."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def pad_nchw(x: np.ndarray, pads: tuple[int, int, int, int], value=0) -> np.ndarray:
    top, left, bottom, right = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def patches(x: np.ndarray, kernel, stride, pads, dilation=(1, 1), pad_value=0) -> np.ndarray:
    """View of shape (N, C, OH, OW, kh, kw): the window under every output position."""
    kh, kw = kernel
    dh, dw = dilation
    xp = pad_nchw(x, pads, pad_value)
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    v = sliding_window_view(xp, span, axis=(2, 3))
    return v[:, :, :: stride[0], :: stride[1], ::dh, ::dw]


def patch_matrix(x: np.ndarray, kernel, stride, pads, dilation=(1, 1)) -> np.ndarray:
    """im2col: (N*OH*OW, C*kh*kw) rows in (c, ky, kx) order, matching weight.reshape(M, -1)."""
    v = patches(x, kernel, stride, pads, dilation)
    n, c, oh, ow, kh, kw = v.shape
    return np.ascontiguousarray(v.transpose(0, 2, 3, 1, 4, 5)).reshape(n * oh * ow, c * kh * kw)


def valid_counts(shape_hw, kernel, stride, pads) -> np.ndarray:
    """Number of non-padding elements under each pooling window, shape (OH, OW)."""
    ones = np.ones((1, 1) + tuple(shape_hw), dtype=np.int64)
    return patches(ones, kernel, stride, pads).sum(axis=(-1, -2))[0, 0]
