"""Runs of layers in one onnxruntime session (sim/chain.py) agree bit for bit with the int64
reference: outputs and every statistic, on MobileNetV2- and ResNet-like blocks, odd shapes,
8- and 16-bit formats, shifts that make rounding ties and saturation common, and layers
where float32 would not be exact (these must stay out of every run)."""

import numpy as np
import pytest

from cnn2gate.ir.layers import GRAPH_INPUT
from cnn2gate.quant import quantize
from cnn2gate.quant.formats import Formats, LayerFormat, QFormat
from cnn2gate.quant.params import quantize_params
from cnn2gate.sim import chain, fast, simulate
from cnn2gate.zoo import Builder


def inverted_residuals(shape=(3, 15, 13), seed=0):
    """A stem and three MobileNetV2 blocks (expand 1x1, depthwise 3x3, linear project, add)."""
    b = Builder("mbv2ish", shape, seed)
    x = b.conv(GRAPH_INPUT, 8, 3, stride=2, pad=1, act="relu6", name="stem")
    cin = 8
    for i, (c, stride, dil) in enumerate([(8, 1, 1), (12, 2, 1), (12, 1, 2)]):
        y = b.conv(x, cin * 3, 1, pad=0, act="relu6", name=f"b{i}_expand")
        y = b.conv(y, cin * 3, 3, stride=stride, pad=dil, dilation=dil, groups=cin * 3, act="relu6", name=f"b{i}_dw")
        y = b.conv(y, c, 1, pad=0, act="none", name=f"b{i}_project")
        x = b.add(y, x, name=f"b{i}_add") if stride == 1 and c == cin else y
        cin = c
    b.pool(x, "global_avg", 1, 1, name="gap")
    return b.build()


def basic_blocks(shape=(4, 9, 11), seed=1):
    """ResNet-like: conv-relu, conv, add with a 1x1 strided shortcut and relu; a grouped conv."""
    b = Builder("resish", shape, seed)
    x = b.conv(GRAPH_INPUT, 6, 3, act="relu", name="stem")
    y = b.conv(x, 6, 3, act="relu", name="c1")
    y = b.conv(y, 6, 3, act="none", name="c2")
    x = b.add(y, x, act="relu", name="add1")
    y = b.conv(x, 8, 3, stride=2, pad=(1, 1, 2, 1), act="relu", name="c3")
    s = b.conv(x, 8, 1, stride=2, pad=(0, 0, 1, 0), act="none", name="short")
    y = b.conv(y, 8, (3, 2), pad=(1, 0, 1, 1), groups=2, act="none", name="c4")
    b.add(y, s, act="relu6", name="add2")
    return b.build()


def jittered(graph, formats, seed, shifts=None):
    """The formats with every output moved a little either way, or with each weighted layer's
    shift drawn from `shifts` (small shifts make rounding ties common), so that saturation is
    common too (calibration statistics dropped: these formats clip on purpose)."""
    rng = np.random.default_rng(seed)
    out = Formats(formats.input, dict(formats.layers))
    for layer in graph.layers:
        lf = out.layers[layer.name]
        if layer.has_weights and shifts is not None:
            frac = out.in_formats(graph, layer)[0].frac + lf.weight.frac - int(rng.choice(list(shifts)))
        else:
            frac = lf.out.frac + int(rng.integers(-2, 3))
        out.layers[layer.name] = LayerFormat(QFormat(lf.out.bits, frac), lf.weight)
    return out


def compare(graph, formats, x):
    """Simulate on the fast path (runs of layers on) and on the reference; both must agree on every
    value and every statistic. Returns the runs that were used and the statistics."""
    qg = quantize_params(graph, formats)
    ref = simulate(graph, formats, x, path="reference")
    got = simulate(graph, qg, x, path="fast")
    for name in ref.values:
        np.testing.assert_array_equal(got.ints[name], ref.ints[name], err_msg=name)
        assert got.stats[name] == ref.stats[name], name
    return chain.runs(graph, qg), got.stats


def batch(graph, n, seed, scale=2.0):
    return np.random.default_rng(seed).standard_normal((n, *graph.input_shape)).astype(np.float32) * scale


def joined(runs) -> set[str]:
    return {layer.name for r in runs.values() for layer in r.layers}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("bits, weight_bits", [(8, 8), (16, 4)])
def test_inverted_residuals_match_reference(bits, weight_bits, seed):
    graph = inverted_residuals(seed=seed)
    formats = quantize(graph, batch(graph, 2, 10 + seed), bits=bits, weight_bits=weight_bits, method="maxabs")
    formats = jittered(graph, formats, seed)
    runs, stats = compare(graph, formats, batch(graph, 2, seed, scale=3.0))
    names = joined(runs)
    assert any(stats[name]["sat_high"] for name in names)
    assert runs and "b0_add" in names and "b0_dw" in names
    assert "gap" not in names  # a pool ends the run


@pytest.mark.parametrize("seed", [0, 1])
def test_basic_blocks_match_reference(seed):
    graph = basic_blocks(seed=seed)
    formats = jittered(graph, quantize(graph, batch(graph, 2, 20 + seed), bits=8, method="maxabs"), seed)
    runs, stats = compare(graph, formats, batch(graph, 3, seed))
    assert {"c1", "c2", "add1", "short", "c4", "add2"} <= joined(runs)


@pytest.mark.parametrize("shifts", [[1, 2], [-4, -1, 0]])
def test_small_negative_and_zero_shifts(shifts):
    """Shifts of 1 and 2 (a rounding tie every 2nd or 4th sum), left shifts (output frac above
    the accumulator's) and s = 0, with saturation at both ends."""
    graph = inverted_residuals(seed=3)
    formats = jittered(graph, quantize(graph, batch(graph, 2, 5), bits=8, method="maxabs"), 3, shifts=shifts)
    runs, stats = compare(graph, formats, batch(graph, 2, 6))
    qg = quantize_params(graph, formats)
    assert {qg[name].shift for name in joined(runs)} == set(shifts)
    sat = [stats[name] for name in joined(runs)]
    assert any(st["sat_low"] for st in sat) and any(st["sat_high"] for st in sat)


def test_layers_float32_cannot_sum_exactly_stay_out():
    """16-bit activations with 8-bit weights: a 3x3 conv over 6 channels has a worst case of
    54 * 2^15 * 2^7 > 2^24, so it runs on float64 outside any run, and the results still match."""
    graph = basic_blocks(seed=4)
    formats = quantize(graph, batch(graph, 2, 7), bits=16, weight_bits=8, method="maxabs")
    qg = quantize_params(graph, formats)
    q = qg["c1"]
    assert q.acc_bound > fast.F32_EXACT and not fast.on_ort(q, fast._plans(q))
    runs, stats = compare(graph, formats, batch(graph, 2, 8))
    assert "c1" not in joined(runs) and "c2" not in joined(runs)


def test_add_beyond_float32_stays_out():
    """An add whose aligned sum can pass 2^24 (16-bit inputs, one shifted far left) is not joined."""
    b = Builder("wideadd", (2, 5, 5), 0)
    x = b.conv(GRAPH_INPUT, 2, 1, pad=0, act="none", name="a")
    y = b.conv(GRAPH_INPUT, 2, 1, pad=0, act="none", name="b")
    b.add(x, y, name="s")
    graph = b.build()
    w = QFormat(4, 2)
    formats = Formats(QFormat(8, 4), {"a": LayerFormat(QFormat(16, 2), w), "b": LayerFormat(QFormat(16, 12), w),
                                      "s": LayerFormat(QFormat(16, 8))})
    qg = quantize_params(graph, formats)
    assert sum((1 << (f.bits - 1)) << k for f, k in zip(qg["s"].in_fmts, qg["s"].in_shifts)) > fast.F32_EXACT
    runs, stats = compare(graph, formats, batch(graph, 2, 9))
    assert joined(runs) == {"a", "b"}


def test_leaky_ends_a_run():
    b = Builder("leaky", (3, 8, 8), 0)
    x = b.conv(GRAPH_INPUT, 4, 3, act="relu", name="c0")
    x = b.conv(x, 4, 3, act="relu", name="c1")
    x = b.conv(x, 4, 3, act="leaky", alpha=0.1, name="c2")
    x = b.conv(x, 4, 3, act="relu", name="c3")
    b.conv(x, 4, 3, act="none", name="c4")
    graph = b.build()
    formats = quantize(graph, batch(graph, 2, 1), bits=8, method="maxabs")
    runs, stats = compare(graph, formats, batch(graph, 2, 2))
    assert [[layer.name for layer in r.layers] for r in runs.values()] == [["c0", "c1"], ["c3", "c4"]]


def test_same_as_layer_by_layer_and_keep_output(monkeypatch):
    """Runs on or off, keep="all" or "output": the same output and statistics."""
    graph = inverted_residuals(shape=(3, 17, 17), seed=5)
    formats = jittered(graph, quantize(graph, batch(graph, 2, 3), bits=8, method="maxabs"), 5)
    x = batch(graph, 2, 4)
    on = simulate(graph, formats, x, keep="output")
    monkeypatch.setattr(chain, "ENABLED", False)
    off = simulate(graph, formats, x)
    np.testing.assert_array_equal(on.output_int, off.output_int)
    assert on.stats == off.stats
    assert set(on.values) == {graph.output}


def test_batch_in_parts(monkeypatch):
    """A batch larger than a run's byte budget runs in parts with the same outputs and statistics."""
    graph = inverted_residuals(seed=6)
    formats = jittered(graph, quantize(graph, batch(graph, 2, 3), bits=8, method="maxabs"), 6)
    x = batch(graph, 5, 4)
    whole = simulate(graph, formats, x)
    qg = quantize_params(graph, formats)
    first = chain.runs(graph, qg)[0]
    monkeypatch.setattr(chain, "MAX_RUN_BYTES", 2 * first.bytes_per_item)  # parts of 2, 2 and 1
    parts = simulate(graph, qg, x)
    for name in whole.values:
        np.testing.assert_array_equal(parts.values[name], whole.values[name], err_msg=name)
    assert parts.stats == whole.stats
    ref = simulate(graph, formats, x, path="reference")
    assert parts.stats == ref.stats


@pytest.mark.parametrize("name", ["mobilenetv2", "resnet18", "efficientnet_b0"])
def test_exported_models_match_reference(example_model, name):
    """The exported networks at CI size (torch export, BatchNormalization folded): runs agree with
    the int64 reference on every layer; MobileNetV2 and ResNet-18 really form runs."""
    graph, formats = example_model(name)
    runs, stats = compare(graph, formats, batch(graph, 2, 7))
    if name != "efficientnet_b0":
        assert len(joined(runs)) >= 10


def _collect_in_worker(_):
    import gc

    return gc.collect() >= 0


@pytest.mark.timeout(120)
def test_a_fork_pool_after_threaded_sessions_does_not_hang(monkeypatch):
    """Sessions with thread pools that became cyclic garbage in this process must not be
    collected in a forked worker, whose onnxruntime threads do not exist: it would wait on
    them forever (cnn2gate/executor.py collects before the fork and freezes what it keeps)."""
    import gc

    from cnn2gate.executor import LocalExecutor

    monkeypatch.setattr(fast, "MIN_ORT_THREADED_WORK", 0)
    monkeypatch.setattr(fast, "_blas_threads", lambda: 2)
    g = inverted_residuals()
    qg = quantize_params(g, quantize(g, bits=8, method="maxabs"))
    gc.disable()  # keep the garbage until the fork
    try:
        simulate(g, qg, np.random.default_rng(0).standard_normal((2, *g.input_shape)), path="fast")
        assert chain.runs(g, qg), "the model must run in one session"
        cycle = {"qg": qg}
        cycle["self"] = cycle
        del qg, cycle
        ex = LocalExecutor(2)
        try:
            assert ex.map(_collect_in_worker, [0, 1]) == [True, True]
        finally:
            ex.close()
    finally:
        gc.enable()
