"""Fast integer path: the same arithmetic as sim/reference.py, on BLAS and
onnxruntime's float32 convolution kernels (sim/ort_conv.py).

Activations travel as float32 arrays holding exact integers (|q| <= 2^15).

Why float GEMM is exact here: every intermediate value a GEMM (any blocking,
any summation order, with or without FMA) produces for one output element is
a sum of a subset of that element's products w*x. Those are integers, and if
the sum of all their magnitudes is at most 2^24 (float32) or 2^53 (float64),
every subset sum is an integer no larger, hence exactly representable, and no
operation ever rounds. `plan_chunks` splits K so that each chunk meets that
bound for the worst input the format allows (|x| <= 2^(in_bits-1)); chunk
results are then added in float64, exact below 2^53.

Convs whose every group is one float32 chunk with the bias inside the exact range
(fused or not; grouped and channel-wise ones too) run on onnxruntime's kernels, which
are sums of products too (sim/ort_conv.py); so do max pools (comparisons only).
Otherwise:

Threads: convs with one fused chunk, dense layers and NumPy max pools are cut into
tiles (output rows / channels, weight rows) that `workers` threads pull as they
free up, the BLAS held at one thread meanwhile (see _tiled_conv). Tiling only
decides which output elements a GEMM call computes, never how one element's
sum is formed, so the argument above holds unchanged.
"""
from __future__ import annotations

import itertools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..ir.windows import pad_nchw, patches
from .. import ops
from ..quant import fixedpoint as fx
from ..quant.params import QLayer
from . import ort_conv, reference

F32_EXACT = 1 << 24
F64_EXACT = 1 << 53
#: below this average chunk width float32 GEMMs lose to one float64 GEMM
MIN_F32_CHUNK = 96
#: max pools on onnxruntime's kernel (False: the NumPy taps of _tap_max, the fallback)
ORT_POOL = True


def plan_chunks(wabs: np.ndarray, xmax: int, limit: int) -> list[tuple[int, int]] | None:
    """Greedy split of [0, K) so every row's sum of |w|*xmax over a chunk is <= limit (None: impossible)."""
    m, k = wabs.shape
    cs = np.zeros((m, k + 1), dtype=np.int64)
    np.cumsum(wabs * xmax, axis=1, out=cs[:, 1:])
    chunks, start = [], 0
    while start < k:
        d = (cs[:, start + 1 :] - cs[:, start : start + 1]).max(axis=0)
        step = int(np.searchsorted(d, limit, side="right"))
        if step == 0:
            return None
        chunks.append((start, start + step))
        start += step
    return chunks


class GemmPlan:
    """How one conv/dense layer's dot products run exactly: dtype, K chunks, where the bias goes.

    When one chunk suffices and the whole sum (bias and rounding constant
    included) stays exact, the plan is "fused": the weights are pre-scaled by
    2^-s and the bias becomes (bias + 2^(s-1)) * 2^-s, so the GEMM yields
    z = (acc + 2^(s-1)) * 2^-s exactly (a power-of-two scale keeps every partial
    sum exact) and the output is just floor(z) clipped.
    """

    def __init__(self, wmat: np.ndarray, bias: np.ndarray, xmax: int, shift: int | None = None):
        wabs = np.abs(wmat)
        k = wmat.shape[1]
        chunks = plan_chunks(wabs, xmax, F32_EXACT) if k else [(0, 0)]
        if chunks is not None and (len(chunks) == 1 or k / len(chunks) >= MIN_F32_CHUNK):
            self.dtype = np.float32
        else:
            chunks = plan_chunks(wabs, xmax, F64_EXACT)
            if chunks is None:
                raise OverflowError("a single product exceeds 2^53")
            self.dtype = np.float64
        self.chunks = chunks
        limit = F32_EXACT if self.dtype == np.float32 else F64_EXACT
        rows = wabs.sum(axis=1) * xmax
        bound = rows + np.abs(bias)
        self.bound = int(bound.max()) if bound.size else 0
        # -100 <= shift keeps the scaled values normal floats (no subnormal rounding);
        # shift <= 53 keeps the rounding constant 2^(shift-1) inside the exact range
        self.fused = shift is not None and -100 <= shift <= 53 and len(chunks) == 1
        if self.fused:
            half = (1 << (shift - 1)) if shift > 0 else 0
            fused_bound = rows + np.abs(bias + half)
            self.fused = (int(fused_bound.max()) if fused_bound.size else 0) <= limit
        if self.fused:
            scale = np.ldexp(1.0, -shift)
            self.w = (wmat * scale).astype(self.dtype)
            self.bias = ((bias + half) * scale).astype(self.dtype)
            self.acc_dtype = self.dtype
            self.shift = shift
            return
        self.w = wmat.astype(self.dtype)
        # Bias folded into the single chunk's result only when the sum stays exact.
        self.bias_inline = len(chunks) == 1 and self.bound <= limit
        self.acc_dtype = self.dtype if self.bias_inline else np.float64
        self.bias = bias.astype(self.acc_dtype)


def _plans(q: QLayer) -> list[GemmPlan]:
    plans = q.cache.get("plans")
    if plans is None:
        m = q.weight.shape[0]
        g = getattr(q.layer, "groups", 1)
        mg = m // g
        xmax = 1 << (q.in_fmts[0].bits - 1)
        wm = q.weight.reshape(m, -1)
        # leaky needs the accumulator itself (its negative branch rounds acc * alpha)
        shift = None if q.act == "leaky" else q.shift
        plans = [GemmPlan(wm[i * mg : (i + 1) * mg], q.bias[i * mg : (i + 1) * mg], xmax, shift) for i in range(g)]
        if len({p.fused for p in plans}) > 1:  # one output convention per layer
            plans = [GemmPlan(wm[i * mg : (i + 1) * mg], q.bias[i * mg : (i + 1) * mg], xmax) for i in range(g)]
        q.cache["plans"] = plans
    return plans


def _gemm(plan: GemmPlan, b_cols, out: np.ndarray | None = None) -> np.ndarray:
    """plan.w (M, K) @ B (K, L) + bias exactly; b_cols(k0, k1) gives rows k0:k1 of B."""
    if len(plan.chunks) == 1:
        k0, k1 = plan.chunks[0]
        if out is not None and out.dtype == plan.dtype:
            np.matmul(plan.w[:, k0:k1], b_cols(k0, k1), out=out)
        else:
            res = plan.w[:, k0:k1] @ b_cols(k0, k1)
            if out is None:
                out = res.astype(plan.acc_dtype, copy=False)
            else:
                out[...] = res
    else:
        acc = None
        for k0, k1 in plan.chunks:
            part = plan.w[:, k0:k1] @ b_cols(k0, k1)
            if acc is None:
                acc = part.astype(np.float64)
            else:
                acc += part
        if out is None:
            out = acc
        else:
            out[...] = acc
    out += plan.bias[:, None]
    return out


_scratch: dict[int, np.ndarray] = {}  # per thread (threading.get_ident())


def _buffer(shape, dtype) -> np.ndarray:
    """A reused scratch array of the calling thread (im2col): no page faults for a fresh
    allocation per layer."""
    size = math.prod(shape) * np.dtype(dtype).itemsize
    key = threading.get_ident()
    buf = _scratch.get(key)
    if buf is None or buf.size < size:
        if buf is None and len(_scratch) >= 64:  # drop the buffers of threads that have ended
            alive = {t.ident for t in threading.enumerate()}
            for k in [k for k in _scratch if k not in alive]:
                _scratch.pop(k, None)
        buf = np.empty(size, dtype=np.uint8)
        _scratch[key] = buf
    return buf[:size].view(dtype).reshape(shape)


def release_scratch() -> None:
    """Free the im2col buffers of every thread (they are kept between calls to avoid page faults)."""
    _scratch.clear()


# -- Tiled conv on our own workers -------------------------------------------------------------
#
# A multithreaded BLAS splits each GEMM statically between its threads and syncs them by
# spinning, so one busy core (another process) stalls the whole GEMM. Instead, the conv below
# cuts the output into tiles (rows of the output image, and output-channel ranges when the
# image is small) and runs them on `workers` threads that pull tiles as they free up, each
# with a single-threaded BLAS: im2col of the tile, GEMM, bias, stats, floor and clip while the
# tile is in cache. `workers` is the thread count the BLAS was set to (threadpoolctl), so the
# simulator uses as many threads as it was given. Exactness is unaffected: every output element
# is still one GEMM dot product over the plan's single K chunk.

from threadpoolctl import ThreadpoolController

_blas_libs: list | None = None
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def _forget_pool() -> None:
    # a forked child inherits the pool object but none of its threads: a submit would wait forever
    global _pool, _pool_size, _pool_lock
    _pool, _pool_size, _pool_lock = None, 0, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)
#: bytes of one tile's im2col block (fits a slice of L3 next to the other workers')
TILE_BYTES = 4 << 20
#: fewest GEMM columns per tile (narrower GEMMs lose efficiency)
MIN_TILE_COLS = 128
#: tiles per worker, for balancing when a core is shared
TILES_PER_WORKER = 4
#: fewest multiply-adds per tile (below, per-tile overhead and the GIL outweigh the balance)
MIN_TILE_MACS = 1 << 22
#: fewest output channels (weight rows) per tile when the channels are split
MIN_TILE_CHANNELS = 64
#: fewest elements (dense weights, pool outputs) worth splitting between workers
MIN_PARALLEL_SIZE = 1 << 16
#: fewest dense weights worth splitting between workers; below, one thread's GEMV beats the
#: hand-off (MobileNetV2's 1280 x 1000 classifier: 0.38 ms instead of 0.62 ms on 2 threads)
MIN_TILED_DENSE = 1 << 22
#: fewest multiply-adds (a max pool: 64 per input element, memory-bound) for which a layer's
#: onnxruntime session gets more than one thread (about 0.03 ms of one core: its workers spin
#: during the run, so a second thread pays off on all but the smallest layers)
MIN_ORT_THREADED_WORK = 1 << 18


def _blas() -> list:
    global _blas_libs
    if _blas_libs is None:
        # empty when numpy's BLAS cannot be controlled: then it threads itself
        _blas_libs = list(ThreadpoolController().select(user_api="blas").lib_controllers)
    return _blas_libs


def _ort_threads(work: int) -> int:
    """Threads for a layer's onnxruntime session: the BLAS's count for `work` (multiply-adds)
    of at least MIN_ORT_THREADED_WORK, else 1 (a second thread's hand-off costs more than it
    saves on the smallest layers)."""
    return max(1, _blas_threads()) if work >= MIN_ORT_THREADED_WORK else 1


def _blas_threads() -> int:
    """How many threads the BLAS is set to use (1 when it cannot be controlled)."""
    return max((lib.num_threads for lib in _blas()), default=1)


@contextmanager
def _single_threaded_blas():
    """Yield the BLAS thread count, with the BLAS held at one thread meanwhile (0: no control)."""
    libs = _blas()
    counts = [lib.num_threads for lib in libs]
    if not counts or max(counts) <= 1:
        yield 1 if counts else 0
        return
    for lib in libs:
        lib.set_num_threads(1)
    try:
        yield max(counts)
    finally:
        for lib, c in zip(libs, counts):
            lib.set_num_threads(c)


def _run_tiles(job, n_tiles: int, workers: int) -> list:
    """job(t) for t in range(n_tiles) on `workers` threads (the caller is one), dynamic order."""
    global _pool, _pool_size
    workers = min(workers, n_tiles)
    if workers <= 1:
        return [job(t) for t in range(n_tiles)]
    with _pool_lock:
        if _pool is None or _pool_size < workers - 1:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=workers - 1, thread_name_prefix="cnn2gate-sim")
            _pool_size = workers - 1
        pool = _pool
    counter = itertools.count()  # next() is atomic under the GIL
    results = [None] * n_tiles

    def drain():
        for t in iter(counter.__next__, None):
            if t >= n_tiles:
                return
            results[t] = job(t)

    futures = [pool.submit(drain) for _ in range(workers - 1)]
    drain()
    for f in futures:
        f.result()
    return results


def _tiled_conv(q: QLayer, x: np.ndarray, plan: GemmPlan, workers: int):
    """Fused single-chunk conv (groups == 1) tile by tile on `workers` threads."""
    layer = q.layer
    n = x.shape[0]
    m, c, kh, kw = q.weight.shape
    _, oh, ow = layer.out_shape
    sh, sw = layer.stride
    dh, dw = layer.dilation
    k = c * kh * kw
    big = plan.w.dtype.itemsize
    top, left, bottom, right = layer.pads
    if any(layer.pads):  # (np.pad is slow for this)
        xp = np.zeros(x.shape[:2] + (x.shape[2] + top + bottom, x.shape[3] + left + right), dtype=plan.dtype)
        xp[:, :, top : top + x.shape[2], left : left + x.shape[3]] = x
    else:
        xp = x.astype(plan.dtype, copy=False)
    one_by_one = (kh, kw) == (1, 1) and (sh, sw) == (1, 1) and xp.shape[3] == ow
    tiles = max(1, min(TILES_PER_WORKER * workers, n * m * k * oh * ow // MIN_TILE_MACS))
    cols_per_tile = min(max(TILE_BYTES // (k * big), MIN_TILE_COLS), -(-n * oh * ow // tiles))
    rows = max(1, min(oh, -(-max(cols_per_tile, MIN_TILE_COLS) // ow)))
    n_rb = -(-oh // rows)
    n_mb = 1
    if n * n_rb < tiles:  # small image: split the output channels too
        n_mb = max(1, min(-(-tiles // (n * n_rb)), m // MIN_TILE_CHANNELS))
    mrows = -(-m // n_mb)
    n_mb = -(-m // mrows)
    z = np.empty((n, m, oh * ow), dtype=plan.dtype)
    _, sc, sy, sx = xp.strides

    # the windows of every output position, (c, ky, kx, y, x) per image: a view, sliced per tile
    windows = [as_strided(xp[i], shape=(c, kh, kw, oh, ow), strides=(sc, dh * sy, dw * sx, sh * sy, sw * sx),
                          writeable=False) for i in range(n)]

    def im2col(i, r0, r1, out):  # rows r0:r1 of the output
        out[...] = windows[i][:, :, :, r0:r1]

    shared = None
    if n_mb > 1 and not one_by_one:  # all channel tiles of a row block share one im2col
        shared = np.empty((n, n_rb, c, kh, kw, rows, ow), dtype=plan.dtype)

        def fill(t):
            i, rb = divmod(t, n_rb)
            r0, r1 = rb * rows, min(oh, rb * rows + rows)
            im2col(i, r0, r1, shared[i, rb, :, :, :, : r1 - r0])

        _run_tiles(fill, n * n_rb, workers)

    def job(t):
        i, rest = divmod(t, n_rb * n_mb)
        rb, mb = divmod(rest, n_mb)
        r0, r1 = rb * rows, min(oh, rb * rows + rows)
        m0, m1 = mb * mrows, min(m, mb * mrows + mrows)
        ncol = (r1 - r0) * ow
        if one_by_one:
            cols = xp[i, :, r0:r1].reshape(c, ncol)
        elif shared is not None:
            cols = shared[i, rb, :, :, :, : r1 - r0].reshape(k, ncol)  # a view: rows are contiguous
        else:
            buf = _buffer((c, kh, kw, r1 - r0, ow), plan.dtype)
            im2col(i, r0, r1, buf)
            cols = buf.reshape(k, ncol)
        zt = z[i, m0:m1, r0 * ow : r1 * ow]
        np.matmul(plan.w[m0:m1], cols, out=zt)
        zt += plan.bias[m0:m1, None]
        return _fused_round(q, zt)

    parts = _run_tiles(job, n * n_rb * n_mb, workers)
    info = _fused_info(q, min(p[0] for p in parts), max(p[1] for p in parts),
                       sum(p[2] for p in parts), sum(p[3] for p in parts))
    return z.reshape(n, m, oh, ow).astype(np.float32, copy=False), info


def on_ort(q: QLayer, plans: list[GemmPlan]) -> bool:
    """Whether conv layer q runs on onnxruntime's kernel (sim/ort_conv.py; sim/chain.py)."""
    found = q.cache.get("on_ort")
    if found is None:  # decided once: a channel-wise layer has one plan per channel
        # fused (z) or bias-inline (acc) float32 sums: both within the bound
        _, oh, ow = q.layer.out_shape
        found = q.cache["on_ort"] = bool(q.weight.shape[0] and oh * ow and all(
            len(p.chunks) == 1 and p.acc_dtype == np.float32 for p in plans))
    return found


def conv(q: QLayer, x: np.ndarray):
    layer = q.layer
    n = x.shape[0]
    m, cg, kh, kw = q.weight.shape
    _, oh, ow = layer.out_shape
    plans = _plans(q)
    mg = m // layer.groups
    if on_ort(q, plans):
        work = x.shape[0] * layer.macs()
        return _finish(q, ort_conv.conv(q, x, plans, _ort_threads(work)), plans)
    if layer.groups == 1 and plans[0].fused and m and oh * ow:
        with _single_threaded_blas() as workers:
            if workers > 1:
                return _tiled_conv(q, x, plans[0], workers)
    one_by_one = (kh, kw) == (1, 1) and layer.stride == (1, 1) and not any(layer.pads)
    acc = np.empty((n, m, oh * ow), dtype=np.result_type(*[p.acc_dtype for p in plans]))
    for i in range(n):
        for gi, plan in enumerate(plans):
            xg = x[i : i + 1, gi * cg : (gi + 1) * cg]
            if one_by_one:
                cols = xg.reshape(cg, oh * ow)
                if cols.dtype != plan.dtype:
                    cols = cols.astype(plan.dtype)
            else:
                v = patches(xg, (kh, kw), layer.stride, layer.pads, layer.dilation)[0]  # (C, OH, OW, kh, kw)
                cols = _buffer((cg, kh, kw, oh, ow), plan.dtype)
                cols[...] = v.transpose(0, 3, 4, 1, 2)
                cols = cols.reshape(cg * kh * kw, oh * ow)
            _gemm(plan, lambda k0, k1, c=cols: c[k0:k1], out=acc[i, gi * mg : (gi + 1) * mg])
    return _finish(q, acc.reshape((n, m, oh, ow)), plans)


def dense(q: QLayer, x: np.ndarray):
    plan = _plans(q)[0]
    flat = x.reshape(x.shape[0], -1)
    if flat.dtype != plan.dtype:
        flat = flat.astype(plan.dtype)
    m = plan.w.shape[0]
    # The BLAS stays at one thread either way: its own idle threads spin after a call and would
    # slow the onnxruntime sessions of the next layers.
    with _single_threaded_blas() as workers:
        if workers > 1 and m >= 2 * MIN_TILE_CHANNELS and plan.w.size >= MIN_TILED_DENSE:
            # row blocks of the weights on the workers (a weight-streaming GEMV: bandwidth bound)
            acc = np.empty((m, flat.shape[0]), dtype=plan.acc_dtype)
            step = -(-m // (TILES_PER_WORKER * workers))

            def job(t):
                rows = _RowSlice(plan, t * step, min(m, t * step + step))
                _gemm(rows, lambda k0, k1: flat[:, k0:k1].T, out=acc[rows.m0 : rows.m1])

            _run_tiles(job, -(-m // step), workers)
        else:
            acc = _gemm(plan, lambda k0, k1: flat[:, k0:k1].T)  # (M, N)
    return _finish(q, acc.T, [plan])


class _RowSlice:
    """Rows m0:m1 of a GemmPlan, for _gemm (each output row is computed exactly as in the plan)."""

    def __init__(self, plan: GemmPlan, m0: int, m1: int):
        self.m0, self.m1 = m0, m1
        self.w, self.bias = plan.w[m0:m1], plan.bias[m0:m1]
        self.chunks, self.dtype, self.acc_dtype = plan.chunks, plan.dtype, plan.acc_dtype


def _finish(q: QLayer, acc: np.ndarray, plans: list[GemmPlan]):
    """Stats on the exact accumulators, then the requant step in floating point."""
    if plans[0].fused:
        return _finish_fused(q, acc)
    info = acc_info(q, acc)
    bound = q.cache.get("plan_bound")
    if bound is None:
        bound = q.cache["plan_bound"] = max(p.bound for p in plans)
    return requant_float(q, acc, bound), info


def _finish_fused(q: QLayer, z: np.ndarray):
    """z = (acc + 2^(s-1)) 2^-s (s > 0) or acc 2^-s (s <= 0), exact: floor and clip give the output."""
    info = _fused_info(q, *_fused_round(q, z))
    return z.astype(np.float32, copy=False), info


def _fused_round(q: QLayer, z: np.ndarray) -> tuple[float, float, int, int]:
    """Floor and clip z in place; returns (min z, max z, #saturating low, #saturating high) before."""
    fmt = q.out
    if not z.size:
        return np.inf, -np.inf, 0, 0
    z_min, z_max, sat_low, sat_high = fused_stats(q, z)
    if q.shift > 0:
        np.floor(z, out=z)
    lo = 0 if q.act in ("relu", "relu6") else fmt.lo
    hi = q.six_q if q.act == "relu6" else fmt.hi
    # lo, hi are integers: floor(z) < lo iff z < lo, floor(z) > hi iff z >= hi + 1
    if z_min < lo or z_max >= hi + 1:
        np.clip(z, lo, hi, out=z)  # (two-sided: NumPy's maximum/minimum with a scalar are slower)
    return z_min, z_max, sat_low, sat_high


def fused_stats(q: QLayer, z: np.ndarray) -> tuple[float, float, int, int]:
    """(min z, max z, #saturating low, #saturating high) of a fused z."""
    fmt = q.out
    if not z.size:
        return np.inf, -np.inf, 0, 0
    z_min, z_max = float(z.min()), float(z.max())
    sat_low = int(np.count_nonzero(z < fmt.lo)) if z_min < fmt.lo else 0
    sat_high = int(np.count_nonzero(z >= fmt.hi + 1)) if z_max >= fmt.hi + 1 else 0
    return z_min, z_max, sat_low, sat_high


def _fused_info(q: QLayer, z_min: float, z_max: float, sat_low: int, sat_high: int) -> dict:
    s = q.shift
    half = (1 << (s - 1)) if s > 0 else 0

    def to_acc(v):  # exact: v has at most 24 (53) significant bits
        if not np.isfinite(v):  # no outputs
            return 0
        return int(np.ldexp(v, s)) - half if s > 0 else int(np.ldexp(v, s))

    return {"acc_min": to_acc(z_min), "acc_max": to_acc(z_max), "sat_low": sat_low, "sat_high": sat_high}


def _sat_counts(q: QLayer, a: np.ndarray) -> tuple[int, int]:
    if q.act != "leaky":
        t_lo, t_hi = fx.in_range_bounds(q.shift, q.out)
        return int(np.count_nonzero(a < t_lo)), int(np.count_nonzero(a > t_hi))
    return fx.saturation_counts(a.astype(np.int64), q.shift, q.out, q.act, q.alpha_q)


def acc_info(q: QLayer, acc: np.ndarray) -> dict:
    """Accumulator statistics of exact integer-valued float accumulators (as reference.acc_info);
    saturations are counted only when the extremes say some output clamps."""
    lo = float(acc.min()) if acc.size else 0.0
    hi = float(acc.max()) if acc.size else 0.0
    info = {"acc_min": int(lo), "acc_max": int(hi), "sat_low": 0, "sat_high": 0}
    t_lo, t_hi = fx.in_range_bounds(q.shift, q.out)
    if q.act == "leaky" or lo < t_lo or hi > t_hi:
        info["sat_low"], info["sat_high"] = _sat_counts(q, acc)
    return info


def requant_float(q: QLayer, acc: np.ndarray, bound: int) -> np.ndarray:
    """fx.requant on an exact integer-valued float array; returns float32 (in place where possible).

    acc * 2^-s only moves the exponent, and (acc + 2^(s-1)) * 2^-s is exact while
    |acc| + 2^(s-1) fits the mantissa, so floor() rounds exactly as rshift_round.
    Outside that range (and for leaky, whose negative branch multiplies by
    alpha_q) the integer implementation runs instead.
    """
    s = q.shift
    if q.act == "leaky" or bound >= F64_EXACT // 2:
        return fx.requant(acc.astype(np.int64), s, q.out, q.act, q.alpha_q).astype(np.float32)
    if s > 0 and acc.dtype == np.float32 and bound + (1 << (s - 1)) > F32_EXACT:
        acc = acc.astype(np.float64)
    # relu/relu6 narrow the final clip: clip(clip(y, lo, hi), 0, six) = clip(y, 0, min(hi, six))
    lo = 0 if q.act in ("relu", "relu6") else q.out.lo
    hi = min(q.out.hi, q.six_q) if q.act == "relu6" else q.out.hi
    return _round_clip(acc, s, q.out, lo, hi).astype(np.float32, copy=False)


def _round_clip(a: np.ndarray, s: int, fmt, lo: int, hi: int) -> np.ndarray:
    """Round-half-up shift by s, clipped to [lo, hi] (within the format's range)."""
    if s > 0:
        a *= a.dtype.type(np.ldexp(1.0, -s))
        a += a.dtype.type(0.5)
        np.floor(a, out=a)
    elif s < 0:
        # exact pre-clamp and shift cap, as in fx.requant (2^k stays a finite float)
        a = np.clip(a, fmt.lo, fmt.hi)
        a *= a.dtype.type(np.ldexp(1.0, min(-s, fmt.bits + 1)))
    np.clip(a, lo, hi, out=a)
    return a


def max_pool(q: QLayer, x: np.ndarray):
    """Window maxima on onnxruntime's pooling kernel, else as the elementwise maximum over the
    kh*kw window taps (padding never wins: -inf); then the statistics and the activation."""
    layer = q.layer
    _, oh, ow = layer.out_shape
    y = None
    top, left, bottom, right = layer.pads
    kh, kw = layer.kernel
    ort_ok = max(top, bottom) < kh and max(left, right) < kw  # onnxruntime refuses larger pads
    if ORT_POOL and ort_ok and x.size and oh * ow and q.cache.get("ort_pool_ok", True):
        y = ort_conv.max_pool(q, x, _ort_threads(x.size * 64))
        if y.shape != (x.shape[0],) + tuple(layer.out_shape):  # not the layer's geometry: NumPy
            q.cache["ort_pool_ok"], y = False, None
    if y is None:
        y = _tap_max(q, x)
    info = {"acc_min": int(y.min()) if y.size else 0, "acc_max": int(y.max()) if y.size else 0,
            "sat_low": 0, "sat_high": 0}
    if q.act == "relu":
        np.clip(y, 0, np.inf, out=y)  # (faster than np.maximum with a scalar)
    elif q.act == "relu6":
        np.clip(y, 0, q.six_q, out=y)
    return y, info


def _tap_max(q: QLayer, x: np.ndarray) -> np.ndarray:
    layer = q.layer
    kh, kw = layer.kernel
    sh, sw = layer.stride
    _, oh, ow = layer.out_shape
    xp = pad_nchw(x, layer.pads, -np.inf) if any(layer.pads) else x
    n, c = x.shape[:2]
    y = np.empty((n, c, oh, ow), dtype=np.float32)

    def job(t):  # channels c0:c1
        c0, c1 = t * step, min(c, t * step + step)
        yt = y[:, c0:c1]
        for ky in range(kh):
            for kx in range(kw):
                tap = xp[:, c0:c1, ky : ky + (oh - 1) * sh + 1 : sh, kx : kx + (ow - 1) * sw + 1 : sw]
                if ky == kx == 0:
                    yt[...] = tap
                else:
                    np.maximum(yt, tap, out=yt)

    workers = _blas_threads() if y.size >= MIN_PARALLEL_SIZE else 1
    step = -(-c // (TILES_PER_WORKER * workers)) if workers > 1 else c
    _run_tiles(job, -(-c // step) if c else 0, workers)
    return y


def add(q: QLayer, *xs: np.ndarray):
    """Aligned sum in float32 when the worst-case total fits 2^24, else float64 (total checked
    below 2^52): each term x * 2^k is an integer with at most 16 significant bits and every
    partial sum is bounded by the total, so every addition is exact."""
    bound = sum((1 << (f.bits - 1)) << k for f, k in zip(q.in_fmts, q.in_shifts))
    if bound >= F64_EXACT // 2 or q.act == "leaky":
        y, acc = reference.run_kernel(q, *(x.astype(np.int64) for x in xs))
        return y.astype(np.float32), reference.acc_info(q, acc)
    dt = np.float32 if bound <= F32_EXACT else np.float64
    acc = np.multiply(xs[0], dt(np.ldexp(1.0, q.in_shifts[0])), dtype=dt)
    for x, k in zip(xs[1:], q.in_shifts[1:]):
        acc += x * dt(np.ldexp(1.0, k)) if k else x
    info = acc_info(q, acc)  # before requant_float, which may work in place
    return requant_float(q, acc, bound), info


def run_layer(q: QLayer, *xs: np.ndarray):
    """(y as float32 integers, accumulator info) for one layer: its operator's fast path,
    else the int64 reference (memory-bound kinds are fast enough there)."""
    res = ops.op_for(q.layer).fast(q, *xs)
    if res is not None:
        return res
    y, acc = reference.run_kernel(q, *(np.asarray(x).astype(np.int64) for x in xs))
    return y.astype(np.float32), reference.acc_info(q, acc)


def f32(x: np.ndarray) -> np.ndarray:
    """Activations as float32 arrays of exact integers (the fast path's representation)."""
    return x if x.dtype == np.float32 else x.astype(np.float32)
