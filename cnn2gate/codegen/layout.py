"""Activations in the device layout [C/V][H][W][V] of docs/architecture.md.

Weight layouts belong to the operator that reads them (`device_arrays` in cnn2gate/ops/).
"""
from __future__ import annotations

import numpy as np

from ..ops.base import INT32, ceil_to

__all__ = ["INT32", "to_device", "from_device"]


def to_device(x: np.ndarray, vec: int) -> np.ndarray:
    """(C, H, W) -> [C/V][H][W][V] with zero channel padding (int64)."""
    c, h, w = x.shape
    cp = ceil_to(c, vec)
    xp = np.zeros((cp, h, w), dtype=np.int64)
    xp[:c] = x
    return np.ascontiguousarray(xp.reshape(cp // vec, vec, h, w).transpose(0, 2, 3, 1))


def from_device(d: np.ndarray, c: int, vec: int) -> np.ndarray:
    """Inverse of to_device."""
    cv, h, w, _ = d.shape
    return np.ascontiguousarray(d.transpose(0, 3, 1, 2).reshape(cv * vec, h, w)[:c])
