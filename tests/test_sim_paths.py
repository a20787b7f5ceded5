"""The two simulator paths agree bit for bit, and the reference follows the doc (Python-int oracle)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnn2gate.errors import AccumulatorOverflow
from cnn2gate.ir.layers import GRAPH_INPUT
from cnn2gate.ops.lrn import channel_window as lrn_window
from cnn2gate.quant import fixedpoint as fx
from cnn2gate.quant import quantize
from cnn2gate.quant.formats import Formats, LayerFormat, QFormat
from cnn2gate.quant.params import quantize_params
from cnn2gate.sim import fast, simulate
from cnn2gate.zoo import Builder

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---- Python-int oracle, written from docs/fixed-point.md -------------------------------------
def o_round(v, s):
    return (v + (1 << (s - 1))) >> s if s > 0 else v << -s


def o_out(acc, s, fmt, act, alpha_q, six_q):
    lo, hi = fmt.lo, fmt.hi
    if act == "leaky" and acc < 0:
        return min(max(o_round(acc * alpha_q, s + 16), lo), hi)
    y = min(max(o_round(acc, s), lo), hi)
    if act == "relu":
        y = max(y, 0)
    if act == "relu6":
        y = min(max(y, 0), six_q)
    return y


def oracle(q, *xs):
    """One layer, element by element with Python ints."""
    layer, kind = q.layer, q.kind
    xs = [x.astype(object) for x in xs]
    x = xs[0]
    out = np.zeros((x.shape[0],) + tuple(layer.out_shape), dtype=object)
    o = lambda acc, s: o_out(int(acc), s, q.out, layer.act, q.alpha_q, q.six_q)  # noqa: E731
    if kind == "conv":
        m, cg, kh, kw = q.weight.shape
        mg = m // layer.groups
        _, h, w = layer.in_shape
        for idx in np.ndindex(out.shape):
            n, co, oy, ox = idx
            g = co // mg
            acc = int(q.bias[co])
            for c in range(cg):
                for ky in range(kh):
                    for kx in range(kw):
                        iy = oy * layer.stride[0] - layer.pads[0] + ky * layer.dilation[0]
                        ix = ox * layer.stride[1] - layer.pads[1] + kx * layer.dilation[1]
                        if 0 <= iy < h and 0 <= ix < w:
                            acc += int(q.weight[co, c, ky, kx]) * int(x[n, g * cg + c, iy, ix])
            out[idx] = o(acc, q.shift)
    elif kind == "dense":
        flat = x.reshape(x.shape[0], -1)
        for n, co in np.ndindex(out.shape):
            out[n, co] = o(int(q.bias[co]) + sum(int(a) * int(b) for a, b in zip(q.weight[co], flat[n])), q.shift)
    elif kind == "pool":
        _, h, w = layer.in_shape
        kh, kw = layer.window()
        stride = (1, 1) if layer.mode == "global_avg" else layer.stride
        pads = (0, 0, 0, 0) if layer.mode == "global_avg" else layer.pads
        for idx in np.ndindex(out.shape):
            n, c, oy, ox = idx
            vals = [int(x[n, c, oy * stride[0] - pads[0] + ky, ox * stride[1] - pads[1] + kx])
                    for ky in range(kh) for kx in range(kw)
                    if 0 <= oy * stride[0] - pads[0] + ky < h and 0 <= ox * stride[1] - pads[1] + kx < w]
            if layer.mode == "max":
                out[idx] = o(max(vals), 0)
            else:
                cnt = kh * kw if layer.count_include_pad and layer.mode == "avg" else len(vals)
                mult = ((1 << 16) + cnt // 2) // cnt
                out[idx] = o(sum(vals) * mult, 16 + q.in_fmts[0].frac - q.out.frac)
    elif kind == "lrn":
        lo, hi = lrn_window(layer.in_shape[0], layer.size)
        for idx in np.ndindex(out.shape):
            n, c, yy, xx = idx
            ss = sum(int(x[n, j, yy, xx]) ** 2 for j in range(lo[c], hi[c]))
            if ss < 32:
                i = ss
            else:
                e = ss.bit_length() - 1
                i = 32 * (e - 4) + ((ss >> (e - 5)) & 31)
            out[idx] = o(int(x[idx]) * int(q.lut[i]), 16 + q.in_fmts[0].frac - q.out.frac)
    elif kind == "add":
        fr = [f.frac for f in q.in_fmts]
        big = max(fr)
        for idx in np.ndindex(out.shape):
            out[idx] = o(sum(int(a[idx]) << (big - f) for a, f in zip(xs, fr)), big - q.out.frac)
    elif kind == "act":
        for idx in np.ndindex(out.shape):
            out[idx] = o(x[idx], q.in_fmts[0].frac - q.out.frac)
    elif kind == "concat":
        cat = np.concatenate(xs, axis=1)
        for idx in np.ndindex(out.shape):
            out[idx] = o(cat[idx], 0)
    return out.astype(np.int64)


# ---- random single-layer problems ----------------------------------------------------------------
ACTS = st.sampled_from(["none", "relu", "relu6", "leaky"])


@st.composite
def qformat(draw, lo_bits=2, hi_bits=16):
    bits = draw(st.integers(lo_bits, hi_bits))
    return QFormat(bits, draw(st.integers(-6, bits + 6)))


def int_array(draw, shape, fmt, extreme):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if extreme == "max":
        return np.full(shape, fmt.hi, dtype=np.int64)
    if extreme == "min":
        return np.full(shape, fmt.lo, dtype=np.int64)
    if extreme == "zero":
        return np.zeros(shape, dtype=np.int64)
    if extreme == "ends":
        return rng.choice([fmt.lo, fmt.hi], size=shape).astype(np.int64)
    return rng.integers(fmt.lo, fmt.hi + 1, size=shape, dtype=np.int64)


@st.composite
def problem(draw, kind):
    """(graph, formats, float input that quantises exactly, name of the layer under test)."""
    in_fmt = draw(qformat())
    extreme = draw(st.sampled_from(["random", "random", "max", "min", "ends", "zero"]))
    c = draw(st.integers(1, 5))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    n = draw(st.integers(1, 2))
    b = Builder("p", (c, h, w), draw(st.integers(0, 1000)))
    act = draw(ACTS)
    layers = {}
    srcs = [GRAPH_INPUT]
    if kind in ("add", "concat"):
        # two or three 1x1 producers with their own formats
        k = draw(st.integers(2, 3))
        srcs = [b.conv(GRAPH_INPUT, c, 1, pad=0, act=draw(ACTS), name=f"src{i}") for i in range(k)]
        for s in srcs:
            layers[s] = draw(qformat())
    if kind in ("conv", "depthwise"):
        groups = c if kind == "depthwise" else draw(st.sampled_from([d for d in range(1, c + 1) if c % d == 0]))
        mult = draw(st.integers(1, 3))
        kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        if h + pads[0] + pads[2] < dil[0] * (kh - 1) + 1 or w + pads[1] + pads[3] < dil[1] * (kw - 1) + 1:
            kh = kw = 1
            dil = (1, 1)
        name = b.conv(GRAPH_INPUT, groups * mult, (kh, kw), stride=stride, pad=pads, dilation=dil,
                      groups=groups, act=act, alpha=draw(st.floats(0, 1)))
    elif kind == "dense":
        name = b.dense(GRAPH_INPUT, draw(st.integers(1, 8)), act=act, alpha=draw(st.floats(0, 1)))
    elif kind.startswith("pool"):
        mode = kind.split("-")[1]
        k = draw(st.integers(1, 3))
        pad = draw(st.integers(0, k - 1))
        k = min(k, h + 2 * pad, w + 2 * pad)
        name = b.pool(GRAPH_INPUT, mode, k, stride=draw(st.integers(1, 3)), pad=pad,
                      count_include_pad=draw(st.booleans()), act=act)
    elif kind == "lrn":
        name = b.lrn(GRAPH_INPUT, draw(st.integers(1, 7)), alpha=draw(st.floats(1e-5, 1.0)),
                     beta=draw(st.floats(0.1, 1.0)), bias=draw(st.floats(0.5, 3.0)))
    elif kind == "add":
        name = b.add(*srcs, act=act)
    elif kind == "act":
        name = b.act(GRAPH_INPUT, act=act, alpha=draw(st.floats(0, 1)))
    else:
        shared = draw(qformat())
        for s in srcs:
            layers[s] = shared
        name = b.concat(*srcs)
    graph = b.build(output=name)
    out_fmt = draw(qformat())
    if kind == "pool-max" or kind == "act" and draw(st.booleans()):
        out_fmt = in_fmt  # an activation's quantised formats are tied; another format rescales
    if kind == "concat":
        out_fmt = layers[srcs[0]]
    lf = {}
    for layer in graph.layers:
        fmt = layers.get(layer.name, out_fmt)
        wfmt = None
        if layer.has_weights:
            wfmt = draw(qformat())
            if layer.name == name and draw(st.booleans()):
                # small shifts make rounding ties and saturation common
                s = draw(st.integers(-4, 5))
                fmt = QFormat(fmt.bits, max(-64, min(64, in_fmt.frac + wfmt.frac - s)))
            wq = int_array(draw, layer.weight.shape, wfmt, draw(st.sampled_from(["random", "random", "ends", "max"])))
            layer.weight = np.ldexp(wq.astype(np.float64), -wfmt.frac)
            acc_frac = (in_fmt.frac + wfmt.frac)
            bb = draw(st.integers(0, 20))
            bq = np.random.default_rng(draw(st.integers(0, 999))).integers(-(1 << bb), (1 << bb) + 1, size=layer.bias.shape)
            layer.bias = np.ldexp(bq.astype(np.float64), -acc_frac)
        lf[layer.name] = LayerFormat(fmt, wfmt)
    formats = Formats(in_fmt, lf)
    xq = int_array(draw, (n,) + graph.input_shape, in_fmt, extreme)
    return graph, formats, np.ldexp(xq.astype(np.float64), -in_fmt.frac), name


def check_paths(graph, formats, x, name, force_chunks=False):
    qg = quantize_params(graph, formats)
    try:
        ref = simulate(graph, qg, x, path="reference")
    except AccumulatorOverflow:
        with pytest.raises(AccumulatorOverflow):
            simulate(graph, quantize_params(graph, formats), x, path="fast")
        return None
    old = fast.MIN_F32_CHUNK
    fast.MIN_F32_CHUNK = 1 if force_chunks else old
    try:
        got = simulate(graph, quantize_params(graph, formats), x, path="fast")
    finally:
        fast.MIN_F32_CHUNK = old
    for layer in graph.layers:
        np.testing.assert_array_equal(got.ints[layer.name], ref.ints[layer.name], err_msg=layer.name)
        assert got.stats[layer.name] == ref.stats[layer.name], layer.name
    q = qg[name]
    ins = [ref.input_int if s == GRAPH_INPUT else ref.ints[s] for s in q.layer.inputs]
    return ref, q, ins


KINDS = ["conv", "depthwise", "dense", "pool-max", "pool-avg", "pool-global_avg", "lrn", "add", "act", "concat"]


@pytest.mark.parametrize("kind", KINDS)
def test_fast_equals_reference_equals_oracle(kind):
    @SETTINGS
    @given(problem(kind), st.booleans())
    def run(p, force_chunks):
        graph, formats, x, name = p
        out = check_paths(graph, formats, x, name, force_chunks)
        if out is None:
            return
        ref, q, ins = out
        np.testing.assert_array_equal(ref.ints[name], oracle(q, *ins))

    run()


@SETTINGS
@given(st.integers(2, 16), st.integers(2, 16), st.integers(1, 3000), st.integers(1, 9), st.integers(1, 5),
       st.sampled_from(["random", "ends", "max", "min"]), st.integers(0, 2**32 - 1), st.booleans(),
       st.one_of(st.none(), st.integers(-6, 24)))
def test_gemm_plan_is_exact(wbits, xbits, k, m, n, extreme, seed, force_chunks, shift):
    """The exactness argument of sim/fast.py, tested on the GEMM alone (no rounding to hide errors)."""
    rng = np.random.default_rng(seed)
    wf, xf = QFormat(wbits, 0), QFormat(xbits, 0)
    if extreme == "random":
        w = rng.integers(wf.lo, wf.hi + 1, size=(m, k))
        x = rng.integers(xf.lo, xf.hi + 1, size=(k, n))
    else:  # same-sign extremes: the case where an unplanned float32 GEMM rounds
        pick = {"ends": lambda f, shape: rng.choice([f.lo, f.hi], size=shape),
                "max": lambda f, shape: np.full(shape, f.hi), "min": lambda f, shape: np.full(shape, f.lo)}[extreme]
        w, x = pick(wf, (m, k)), pick(xf, (k, n))
    bias = rng.integers(-(1 << 31), 1 << 31, size=m) >> int(rng.integers(0, 32))
    old = fast.MIN_F32_CHUNK
    fast.MIN_F32_CHUNK = 1 if force_chunks else old
    try:
        plan = fast.GemmPlan(w.astype(np.int64), bias, 1 << (xbits - 1), shift)
    finally:
        fast.MIN_F32_CHUNK = old
    xs = x.astype(plan.dtype)
    got = fast._gemm(plan, lambda k0, k1: xs[k0:k1])
    want = w.astype(object) @ x.astype(object) + bias.astype(object)[:, None]
    if plan.fused:  # got = (acc + 2^(s-1)) * 2^-s, exactly
        half = 1 << (shift - 1) if shift > 0 else 0
        got = np.vectorize(lambda v: int(np.ldexp(float(v), shift)), otypes=[object])(got) - half
    assert np.array_equal(got.astype(np.float64).astype(np.int64).astype(object), want)


@pytest.mark.parametrize("out_frac", [64, -64])
def test_extreme_shifts_agree(out_frac):
    """s = in_frac + w_frac - out_frac far beyond the float exponent range of 2^s tricks."""
    b = Builder("t", (2, 3, 3), 0)
    name = b.conv(GRAPH_INPUT, 3, 3, act="relu")
    g = b.build()
    layer = g.layer(name)
    in_fmt, w_fmt = QFormat(8, -64 if out_frac > 0 else 64), QFormat(8, -64 if out_frac > 0 else 64)
    layer.weight = np.ldexp(np.random.default_rng(0).integers(-128, 128, layer.weight.shape).astype(np.float64), -w_fmt.frac)
    layer.bias = np.zeros(3)
    fm = Formats(in_fmt, {name: LayerFormat(QFormat(8, out_frac), w_fmt)})
    x = np.ldexp(np.random.default_rng(1).integers(-128, 128, (2, 2, 3, 3)).astype(np.float64), -in_fmt.frac)
    x[0] = 0
    ref = simulate(g, fm, x, path="reference")
    got = simulate(g, fm, x, path="fast")
    np.testing.assert_array_equal(got.output_int, ref.output_int)
    assert quantize_params(g, fm)[name].shift == (-192 if out_frac > 0 else 192)


def test_input_is_quantised_with_the_host_rule():
    b = Builder("t", (1, 1, 4))
    b.pool(GRAPH_INPUT, "max", 1)
    g = b.build()
    fm = Formats(QFormat(4, 1), {g.layers[0].name: LayerFormat(QFormat(4, 1))})
    res = simulate(g, fm, np.array([0.25, -0.25, 10.0, -10.0]).reshape(1, 1, 1, 4))
    np.testing.assert_array_equal(res.input_int.ravel(), [1, 0, 7, -8])
    np.testing.assert_array_equal(res.output_int.ravel(), [1, 0, 7, -8])


def test_plan_chunks_respects_the_bound():
    rng = np.random.default_rng(0)
    w = rng.integers(0, 128, size=(7, 500))
    chunks = fast.plan_chunks(w, 128, 1 << 20)
    assert chunks[0][0] == 0 and chunks[-1][1] == 500
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:]))
    for k0, k1 in chunks:
        assert (w[:, k0:k1].sum(axis=1) * 128).max() <= 1 << 20
        if k1 < 500:  # greedy: one more column would break the bound
            assert (w[:, k0:k1 + 1].sum(axis=1) * 128).max() > 1 << 20
    assert fast.plan_chunks(np.array([[1 << 20]]), 2, 1 << 20) is None


def test_float32_would_be_wrong_where_the_plan_refuses_it():
    """Same-sign large operands: a plain float32 GEMM rounds; the planned fast path does not."""
    b = Builder("t", (4096, 1, 1))
    name = b.dense(GRAPH_INPUT, 4)
    g = b.build()
    layer = g.layer(name)
    wfmt, in_fmt = QFormat(8, 0), QFormat(8, 0)
    layer.weight = np.full((4, 4096), 127.0) - np.arange(4)[:, None]
    layer.bias = np.zeros(4)
    fm = Formats(in_fmt, {name: LayerFormat(QFormat(16, -8), wfmt)})
    x = np.random.default_rng(1).integers(100, 128, size=(3, 4096, 1, 1)).astype(np.float64) + 1
    x[x > 127] = 127
    plain32 = (x.reshape(3, -1).astype(np.float32) @ layer.weight.T.astype(np.float32)).astype(np.int64)
    exact = x.reshape(3, -1).astype(np.int64) @ layer.weight.T.astype(np.int64)
    res = simulate(g, fm, x, path="fast")
    ref = simulate(g, fm, x, path="reference")
    np.testing.assert_array_equal(res.output_int, ref.output_int)
    want = np.clip(((exact >> 7) + 1) >> 1, -32768, 32767)
    np.testing.assert_array_equal(res.output_int, want)
    assert res.stats[name]["acc_bits"] == fx.magnitude_bits(int(exact.max()))
    if np.array_equal(plain32, exact):
        pytest.skip("this BLAS happened to keep float32 exact here")


def test_a_wide_worst_case_takes_the_64_bit_accumulator():
    b = Builder("t", (64, 1, 1))
    name = b.dense(GRAPH_INPUT, 2)
    g = b.build()
    layer = g.layer(name)
    layer.weight = np.full((2, 64), 32767.0)
    layer.bias = np.zeros(2)
    fm = Formats(QFormat(16, 0), {name: LayerFormat(QFormat(16, 0), QFormat(16, 0))})
    big = np.full((1, 64, 1, 1), 30000.0)
    for path in ("fast", "reference"):
        res = simulate(g, fm, np.ones((1, 64, 1, 1)), path=path)
        assert res.stats[name]["bound_bits"] == 36 and res.stats[name]["acc_bits"] == 21
        assert not res.warnings and res.acc_bits == 64
        res = simulate(g, fm, big, path=path)  # 36 bits: inside the 64-bit accumulator
        assert res.stats[name]["acc_bits"] == 36 and res.output_int.max() == 32767


def test_actual_overflow_beyond_64_bits_raises_and_worst_case_warns():
    b = Builder("t", (4, 1, 1))
    name = b.dense(GRAPH_INPUT, 2, act="none")
    g = b.build()
    layer = g.layer(name)
    layer.weight = np.full((2, 4), 1000.0)
    layer.bias = np.array([2.0**63, -5.0])  # saturates to 2^63 - 1
    fm = Formats(QFormat(16, 0), {name: LayerFormat(QFormat(16, 0), QFormat(16, 0))})
    below = np.full((1, 4, 1, 1), -3.0)
    above = np.full((1, 4, 1, 1), 3.0)
    for path in ("fast", "reference"):
        res = simulate(g, fm, below, path=path)
        assert res.stats[name]["bound_bits"] == 64 and any("worst-case" in w for w in res.warnings)
        assert list(res.output_int[0].ravel()) == [32767, -5 - 4 * 3000]
        with pytest.raises(AccumulatorOverflow, match=name):
            simulate(g, fm, above, path=path)
        # unchecked, the sum wraps modulo 2^64 as the hardware's would
        wrapped = simulate(g, fm, above, path=path, check_overflow=False)
        assert wrapped.output_int[0, 0] == -32768


def test_leaky_slope_on_a_wide_accumulator_must_fit_64_bits():
    b = Builder("t", (4, 1, 1))
    name = b.dense(GRAPH_INPUT, 1, act="leaky")
    g = b.build()
    layer = g.layer(name)
    layer.alpha = 0.5
    layer.weight = np.full((1, 4), 1.0)
    layer.bias = np.array([-(2.0**50)])
    fm = Formats(QFormat(16, 0), {name: LayerFormat(QFormat(16, 0), QFormat(16, 0))})
    x = np.zeros((1, 4, 1, 1))
    for path in ("fast", "reference"):
        with pytest.raises(AccumulatorOverflow, match="leaky"):
            simulate(g, fm, x, path=path)


def test_avg_pool_divisor_at_borders():
    b = Builder("t", (1, 3, 3))
    name = b.pool(GRAPH_INPUT, "avg", 3, stride=1, pad=1, count_include_pad=False)
    name2 = b.pool(GRAPH_INPUT, "avg", 3, stride=1, pad=1, count_include_pad=True, name="incl")
    g = b.build(output=name2)
    fm = Formats(QFormat(8, 0), {name: LayerFormat(QFormat(8, 0)), name2: LayerFormat(QFormat(8, 0))})
    x = np.full((1, 1, 3, 3), 10.0)
    for path in ("fast", "reference"):
        res = simulate(g, fm, x, path=path)
        np.testing.assert_array_equal(res.ints[name][0, 0], np.full((3, 3), 10))  # valid count only
        # corners 40/9 = 4.44 -> 4, edges 60/9 = 6.67 -> 7, centre 10
        np.testing.assert_array_equal(res.ints[name2][0, 0], [[4, 7, 4], [7, 10, 7], [4, 7, 4]])
    qg = quantize_params(g, fm)
    np.testing.assert_array_equal(qg[name].divisor, [[4, 6, 4], [6, 9, 6], [4, 6, 4]])


def test_keep_output_drops_intermediates_but_not_results():
    b = Builder("t", (2, 5, 5), 3)
    x = b.conv(GRAPH_INPUT, 4, 3)
    b.pool(x, "max", 2)
    g = b.build()
    fm = quantize(g, bits=8, method="maxabs")
    data = np.random.default_rng(2).standard_normal((2, 2, 5, 5))
    full = simulate(g, fm, data)
    lean = simulate(g, fm, data, keep="output")
    assert list(lean.ints) == [g.output]
    np.testing.assert_array_equal(lean.output_int, full.output_int)
    np.testing.assert_allclose(full.output_float, full.output_int * 2.0 ** -fm.out(g.output).frac)


@pytest.fixture
def tiny_tiles(monkeypatch):
    """The worker-tiled paths of sim/fast.py with 3 workers and the smallest tiles: one output row
    (or a few channels) per tile, split channels, shared im2col; the BLAS itself is left alone."""
    from contextlib import contextmanager

    @contextmanager
    def three_workers():
        yield 3

    monkeypatch.setattr(fast, "_single_threaded_blas", three_workers)
    monkeypatch.setattr(fast, "_blas_threads", lambda: 3)
    monkeypatch.setattr(fast, "TILE_BYTES", 1)
    monkeypatch.setattr(fast, "MIN_TILE_COLS", 1)
    monkeypatch.setattr(fast, "MIN_TILE_CHANNELS", 1)
    monkeypatch.setattr(fast, "MIN_PARALLEL_SIZE", 1)
    monkeypatch.setattr(fast, "ORT_POOL", False)  # the NumPy max pool's channel tiles


@pytest.mark.parametrize("kind", ["conv", "dense", "pool-max"])
def test_tiled_paths_equal_reference(kind, tiny_tiles):
    @SETTINGS
    @given(problem(kind), st.booleans())
    def run(p, force_chunks):
        graph, formats, x, name = p
        check_paths(graph, formats, x, name, force_chunks)

    run()


@pytest.mark.parametrize("tiles_per_worker", [1, 4])
def test_tiled_conv_layer_shapes(tiles_per_worker, monkeypatch):
    """Wider convs than the hypothesis problems (row blocks with several rows, channel blocks,
    1x1, stride 2), tiled on 2 workers, agree with the reference bit for bit, stats included."""
    monkeypatch.setattr(fast, "TILES_PER_WORKER", tiles_per_worker)
    monkeypatch.setattr(fast, "MIN_TILE_CHANNELS", 8)
    rng = np.random.default_rng(5)
    for kernel, stride, pad, hw, m in [(3, 1, 1, 20, 40), (1, 1, 0, 9, 33), (3, 2, 1, 15, 24), (5, 1, 2, 6, 70)]:
        b = Builder("t", (6, hw, hw), int(rng.integers(1000)))
        name = b.conv(GRAPH_INPUT, m, kernel, stride=stride, pad=pad, act="relu")
        g = b.build()
        fm = quantize(g, bits=8, method="maxabs")
        qg = quantize_params(g, fm)
        assert fast._plans(qg[name])[0].fused
        x = rng.standard_normal((2, 6, hw, hw))
        ref = simulate(g, fm, x, path="reference")
        xin = ref.input_int.astype(np.float32)
        for workers in (1, 2, 3):
            y, info = fast._tiled_conv(qg[name], xin, fast._plans(qg[name])[0], workers)
            np.testing.assert_array_equal(y.astype(np.int64), ref.ints[name])
            assert fast.reference.acc_info(qg[name], fast.reference.run_kernel(qg[name], ref.input_int)[1]) == info


def test_onnxruntime_conv_path_equals_reference():
    """Fused float32 convs run on onnxruntime's kernels: bit-exact against the int64 reference
    for strides, dilations, asymmetric padding, groups and 8/12-bit formats, stats included."""
    rng = np.random.default_rng(11)
    cases = [  # c, hw, m, kernel, stride, pad, dilation, groups, bits
        (6, 20, 40, 3, 1, 1, 1, 1, 8), (8, 9, 33, 1, 1, 0, 1, 1, 8), (6, 15, 24, 3, 2, (0, 1, 2, 0), 1, 1, 8),
        (4, 12, 16, (3, 5), 1, 2, 2, 1, 8), (8, 11, 12, 3, 1, 1, 1, 4, 8), (6, 10, 18, 3, 2, 1, 1, 2, 12),
    ]
    used = 0
    for c, hw, m, kernel, stride, pad, dil, groups, bits in cases:
        b = Builder("t", (c, hw, hw), int(rng.integers(1000)))
        name = b.conv(GRAPH_INPUT, m, kernel, stride=stride, pad=pad, dilation=dil, groups=groups, act="relu")
        g = b.build()
        fm = quantize(g, bits=bits, method="maxabs")
        qg = quantize_params(g, fm)
        x = rng.standard_normal((2, c, hw, hw))
        ref = simulate(g, qg, x, path="reference")
        got = simulate(g, qg, x, path="fast")
        np.testing.assert_array_equal(got.ints[name], ref.ints[name])
        assert got.stats[name] == ref.stats[name]
        used += "ort_conv" in qg[name].cache
    assert used >= 4  # the onnxruntime path really ran


@pytest.mark.parametrize("threaded", [False, True])
def test_onnxruntime_depthwise_and_unfused_convs_equal_reference(threaded, monkeypatch):
    """Channel-wise convs (3x3/5x5/7x7, strides, dilation, depth multiplier 2, channel counts on and
    off onnxruntime's 8/16-channel blocks) and leaky convs (accumulator itself, bias inline) on
    onnxruntime's kernels, with one thread and with two: bit-exact against the int64
    reference, stats included."""
    if threaded:  # every session gets the BLAS's threads (two), whatever the layer's size
        monkeypatch.setattr(fast, "MIN_ORT_THREADED_WORK", 0)
        monkeypatch.setattr(fast, "_blas_threads", lambda: 2)
    rng = np.random.default_rng(12)
    cases = [  # c, hw, mult, kernel, stride, dilation, act, bits
        (32, 14, 1, 3, 1, 1, "relu6", 8), (30, 13, 1, 3, 2, 1, "relu", 8), (20, 9, 2, 3, 1, 1, "none", 8),
        (48, 12, 1, 5, 2, 1, "relu6", 8), (17, 10, 1, 7, 1, 1, "relu", 10), (24, 11, 1, 3, 1, 2, "relu", 8),
        (16, 8, 1, 3, 1, 1, "leaky", 8), (6, 9, 1, 5, 1, 1, "leaky", 8),
    ]
    used = 0
    for c, hw, mult, kernel, stride, dil, act, bits in cases:
        b = Builder("t", (c, hw, hw), int(rng.integers(1000)))
        name = b.conv(GRAPH_INPUT, c * mult, kernel, stride=stride, dilation=dil,
                      pad=kernel // 2 * dil, groups=c, act=act, alpha=0.1)
        g = b.build()
        fm = quantize(g, bits=bits, method="maxabs")
        qg = quantize_params(g, fm)
        x = rng.standard_normal((2, c, hw, hw)) * 3  # saturates some outputs
        ref = simulate(g, qg, x, path="reference")
        got = simulate(g, qg, x, path="fast")
        np.testing.assert_array_equal(got.ints[name], ref.ints[name], err_msg=str((c, kernel, act)))
        assert got.stats[name] == ref.stats[name]
        # sessions by (process, threads)
        used += [t for _, t in qg[name].cache.get("ort_conv", {})] == [2 if threaded else 1]
    assert used == len(cases)  # every case really ran on onnxruntime, with that many threads


def test_onnxruntime_max_pool_equals_reference():
    """Max pools on onnxruntime's kernel (3x3/2 with padding, ceil-mode end padding, stride
    above the kernel, relu/relu6) equal the int64 reference and the NumPy taps, stats included."""
    rng = np.random.default_rng(13)
    cases = [(64, 15, 3, 2, (1, 1, 1, 1), "none"), (20, 9, 2, 2, (0, 0, 1, 1), "relu"),
             (7, 10, 3, 2, (0, 0, 1, 1), "relu6"), (5, 11, 2, 3, 0, "none"), (9, 8, (1, 3), (1, 2), (0, 1, 0, 1), "relu")]
    for c, hw, k, stride, pad, act in cases:
        b = Builder("t", (c, hw, hw), int(rng.integers(1000)))
        src = b.conv(GRAPH_INPUT, c, 1, pad=0, act="none")
        name = b.pool(src, "max", k, stride=stride, pad=pad, act=act)
        g = b.build()
        fm = quantize(g, bits=8, method="maxabs")
        x = rng.standard_normal((2, c, hw, hw))
        ref = simulate(g, fm, x, path="reference")
        qg = quantize_params(g, fm)
        got = simulate(g, qg, x, path="fast")
        assert "ort_pool" in qg[name].cache and qg[name].cache.get("ort_pool_ok", True)
        np.testing.assert_array_equal(got.ints[name], ref.ints[name], err_msg=str((c, k, pad)))
        assert got.stats[name] == ref.stats[name]
        np.testing.assert_array_equal(fast._tap_max(qg[name], got.values[src]),
                                      fast.ort_conv.max_pool(qg[name], got.values[src], 1))
    # a pad as large as the window: onnxruntime refuses it, the NumPy taps take over
    b = Builder("t", (3, 7, 7), 1)
    name = b.pool(GRAPH_INPUT, "max", 2, stride=2, pad=(0, 0, 2, 1))
    g = b.build()
    fm = quantize(g, bits=8, method="maxabs")
    qg = quantize_params(g, fm)
    x = rng.standard_normal((1, 3, 7, 7))
    np.testing.assert_array_equal(simulate(g, qg, x).ints[name], simulate(g, fm, x, path="reference").ints[name])
    assert "ort_pool" not in qg[name].cache
