"""The integer arithmetic of docs/fixed-point.md, implemented once.

Every function is pure and works on Python ints or NumPy int64 arrays. The
simulator's two paths, the quantiser and the code generator (constants, LUTs)
all call these, so there is exactly one definition of each rounding step.
"""
from __future__ import annotations

import math

import numpy as np

from .formats import QFormat

#: the accumulator widths a design can have: 32 bits where every layer's worst case fits
#: int32 (the narrow adders of the older families), else 64 (docs/fixed-point.md)
ACC_BITS = 32
WIDE_ACC_BITS = 64
#: fractional bits of every multiplier table and factor (LeakyReLU slope, average-pool
#: reciprocals, normalisation factors)
MUL_FRAC = 16


def value_range(bits: int) -> tuple[int, int]:
    """[-2^(bits-1), 2^(bits-1) - 1]."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def sat(v, bits: int):
    """Clamp v into the two's-complement range of `bits` bits (int64 result for arrays)."""
    lo, hi = value_range(bits)
    if isinstance(v, (int, np.integer)):
        return int(min(max(int(v), lo), hi))
    return np.clip(np.asarray(v, dtype=np.int64), lo, hi)


def rshift_round(v, s: int):
    """Round-half-up right shift by s (s < 0: exact left shift), the only rounding operator.

    Computed as t = v >> (s-1); (t >> 1) + (t & 1), which equals (v + 2^(s-1)) >> s
    for every v (floor(floor(a)/2) = floor(a/2)) but never overflows.
    Shifts of 64 or more behave as infinitely wide arithmetic shifts.
    """
    s = int(s)
    if isinstance(v, (int, np.integer)):
        v = int(v)
        if s > 0:
            t = v >> (s - 1)
            return (t >> 1) + (t & 1)
        return v << -s
    v = np.asarray(v, dtype=np.int64)
    if s > 0:
        t = v >> min(s - 1, 63)
        return (t >> 1) + (t & 1)
    if s == 0:
        return v.copy()
    if -s >= 64:
        if np.any(v != 0):
            raise OverflowError(f"rshift_round: left shift by {-s} overflows 64 bits")
        return v.copy()
    limit = 1 << (63 + s)  # v must lie in [-2^(63-|s|), 2^(63-|s|))
    if v.size and (v.max() >= limit or v.min() < -limit):
        raise OverflowError(f"rshift_round: left shift by {-s} overflows 64 bits")
    return v << -s


def requant(acc, s: int, fmt: QFormat, act: str = "none", alpha_q: int = 0):
    """The output step every layer shares: round, saturate once, apply the fused activation.

    `acc` is the exact pre-rounding value with in_frac + w_frac (or the layer's
    equivalent) fractional bits; `s` the shift to the output's frac.
    """
    acc = np.asarray(acc, dtype=np.int64)
    y = _round_sat(acc, s, fmt.bits)
    if act == "relu":
        return np.maximum(y, 0)
    if act == "relu6":
        return np.clip(y, 0, relu6_limit(fmt))
    if act == "leaky":
        neg = acc < 0
        if np.any(neg):
            if abs(alpha_q) >= 1 << 31:
                raise OverflowError(f"leaky slope {alpha_q} / 2^16 is out of range")
            y = np.where(neg, _round_sat(acc * alpha_q, s + MUL_FRAC, fmt.bits), y)
        return y
    if act != "none":
        raise ValueError(f"unknown activation {act!r}")
    return y


def _round_sat(v: np.ndarray, s: int, bits: int) -> np.ndarray:
    if s < 0:
        # Anything outside the output range stays outside after a left shift, and any
        # nonzero value shifted by more than bits+1 saturates: clamping the value and
        # the shift count first is exact and keeps the shift inside 64 bits.
        v = sat(v, bits + 1)
        s = max(s, -(bits + 1))
    return sat(rshift_round(v, s), bits)


def quantize_tensor(x, fmt: QFormat) -> np.ndarray:
    """Host-side float -> integer: sat(floor(x * 2^frac + 0.5), bits)."""
    scaled = np.floor(np.ldexp(np.asarray(x, dtype=np.float64), fmt.frac) + 0.5)
    lo, hi = value_range(fmt.bits)
    return np.clip(scaled, lo, hi).astype(np.int64)


def quantize_bias(b, frac: int, bits: int = WIDE_ACC_BITS) -> tuple[np.ndarray, int]:
    """Bias at accumulator scale, saturated to `bits` bits (the widest accumulator by
    default); returns (q, number saturated)."""
    scaled = np.floor(np.ldexp(np.asarray(b, dtype=np.float64), frac) + 0.5)
    lo, hi = value_range(bits)
    # compare in float, convert only what is in range: 2^63 - 1 has no float64
    low, high = scaled < lo, scaled >= float(hi) + 1
    q = np.where(low | high, 0.0, scaled).astype(np.int64)
    q[low], q[high] = lo, hi
    return q, int(np.count_nonzero(low | high))


def acc_bound(wq, bias_q, in_bits: int) -> int:
    """Worst-case |acc| of a multiply-accumulate layer: max over output rows of
    |bias| + sum |w| * 2^(in_bits-1), exact (Python ints: it may pass 2^63)."""
    wq = np.asarray(wq, dtype=np.int64)
    rows = np.abs(wq.reshape(wq.shape[0], -1)).sum(axis=1) if wq.size else np.zeros(0, dtype=np.int64)
    xmax = 1 << (in_bits - 1)
    bias = np.asarray(bias_q, dtype=np.int64).reshape(-1)
    return max((int(r) * xmax + abs(int(b)) for r, b in zip(rows, bias)), default=0)


def acc_width(bound: int) -> int:
    """The accumulator a layer needs: 32 bits when its worst case fits int32, else 64
    (None when even 64 bits could wrap)."""
    if bound <= (1 << (ACC_BITS - 1)) - 1:
        return ACC_BITS
    return WIDE_ACC_BITS if bound <= (1 << (WIDE_ACC_BITS - 1)) - 1 else None


def dequantize(q, fmt: QFormat) -> np.ndarray:
    return np.ldexp(np.asarray(q, dtype=np.float64), -fmt.frac)


def relu6_limit(fmt: QFormat) -> int:
    """six_q = sat(floor(6 * 2^frac + 0.5), bits)."""
    return sat(math.floor(math.ldexp(6.0, fmt.frac) + 0.5), fmt.bits)


def leaky_alpha_q(alpha: float) -> int:
    """LeakyReLU slope with 16 fractional bits."""
    return int(math.floor(alpha * (1 << MUL_FRAC) + 0.5))


def avg_multiplier(n):
    """floor((2^16 + floor(n/2)) / n): 2^16/n rounded half up (int or int64 array)."""
    if isinstance(n, (int, np.integer)):
        n = int(n)
        if n <= 0:
            raise ValueError("average-pool divisor must be positive")
        return ((1 << MUL_FRAC) + n // 2) // n
    n = np.asarray(n, dtype=np.int64)
    if np.any(n <= 0):
        raise ValueError("average-pool divisor must be positive")
    return ((1 << MUL_FRAC) + n // 2) // n


def conv_shift(in_frac: int, w_frac: int, out_frac: int) -> int:
    return in_frac + w_frac - out_frac


def avg_shift(in_fmt: QFormat, out_fmt: QFormat) -> int:
    return MUL_FRAC + in_fmt.frac - out_fmt.frac


def add_shifts(in_fmts: list[QFormat], out_fmt: QFormat) -> tuple[list[int], int]:
    """Left shift of each input onto F = max frac, and the final right shift F - out_frac."""
    f = max(fmt.frac for fmt in in_fmts)
    return [f - fmt.frac for fmt in in_fmts], f - out_fmt.frac


def magnitude_bits(v: int) -> int:
    """Bits of |v| without the sign (0 for 0); the accumulator statistics are in these units."""
    return abs(int(v)).bit_length()


def fits_int32(lo: int, hi: int) -> bool:
    return fits_acc(lo, hi, ACC_BITS)


def fits_acc(lo: int, hi: int, bits: int) -> bool:
    """Whether [lo, hi] lies inside a `bits`-bit two's-complement accumulator."""
    a, b = value_range(bits)
    return a <= int(lo) and int(hi) <= b


def in_range_bounds(s: int, fmt: QFormat) -> tuple[int, int]:
    """[t_lo, t_hi] such that sat(rshift_round(v, s)) does not saturate iff t_lo <= v <= t_hi."""
    lo, hi = value_range(fmt.bits)
    if s > 0:
        half = 1 << (s - 1)
        return (lo << s) - half, ((hi + 1) << s) - half - 1
    k = -s
    return -((-lo) >> k), hi >> k


def saturation_counts(acc, s: int, fmt: QFormat, act: str = "none", alpha_q: int = 0) -> tuple[int, int]:
    """How many outputs the requant step clamps at the low and at the high end."""
    acc = np.asarray(acc, dtype=np.int64)
    t_lo, t_hi = in_range_bounds(s, fmt)
    if act != "leaky":
        return int(np.count_nonzero(acc < t_lo)), int(np.count_nonzero(acc > t_hi))
    pos = acc[acc >= 0]
    neg = acc[acc < 0] * alpha_q
    n_lo, n_hi = in_range_bounds(s + MUL_FRAC, fmt)
    return (int(np.count_nonzero(neg < n_lo)),
            int(np.count_nonzero(pos > t_hi)) + int(np.count_nonzero(neg > n_hi)))
