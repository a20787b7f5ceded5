"""Activations in the device layout [C/V][H][W][V] of docs/architecture.md.

Weight layouts belong to the operator that reads them (`device_arrays` in cnn2gate/ops/).
"""
from __future__ import annotations

import numpy as np

from ..errors import Cnn2GateError
from ..hw.widths import fields_per_word, packed_words
from ..ops.base import INT32, ceil_to

__all__ = ["INT32", "to_device", "from_device", "pack_weights", "unpack_weights"]


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


def pack_weights(values: np.ndarray, bits: int, blocks: int, per_block: int) -> np.ndarray:
    """Weights in device order -> uint32 words, blocks of `per_block` each starting on a word;
    weight i of a block is the two's-complement field (i % f) * bits.. of word i // f,
    f = 32 // bits (docs/generated-project.md)."""
    v = np.asarray(values, dtype=np.int64).reshape(blocks, per_block)
    if v.size and (v.min() < -(1 << (bits - 1)) or v.max() >= 1 << (bits - 1)):
        raise Cnn2GateError(f"internal error: a weight does not fit {bits} bits")
    f, words = fields_per_word(bits), packed_words(per_block, bits)
    fields = np.zeros((blocks, words * f), dtype=np.uint64)
    fields[:, :per_block] = (v & ((1 << bits) - 1)).astype(np.uint64)
    shifts = (np.arange(f, dtype=np.uint64) * np.uint64(bits))
    packed = (fields.reshape(blocks, words, f) << shifts).sum(axis=-1)  # disjoint fields: sum == or
    return np.ascontiguousarray(packed.astype(np.uint32).reshape(-1))


def unpack_weights(words: np.ndarray, bits: int, blocks: int, per_block: int) -> np.ndarray:
    """Inverse of pack_weights (int64), as the kernels unpack: shift the field to the top, then
    an arithmetic shift back sign-extends it."""
    f = fields_per_word(bits)
    w = np.asarray(words, dtype=np.uint32).reshape(blocks, -1)
    i = np.arange(per_block)
    top = (w[:, i // f].astype(np.uint64) << (32 - (i % f + 1) * bits).astype(np.uint64)) & 0xFFFFFFFF
    return (top.astype(np.uint32).view(np.int32) >> (32 - bits)).astype(np.int64).reshape(-1)
