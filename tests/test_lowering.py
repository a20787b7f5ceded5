"""One lowering: the plan `compile` renders and the design `estimate` prices are the same.

For every example model at two hardware configs, the code generator's plan and the
cost model must use the same kernel layers (the very objects), the same buffer depths,
the same kernel set and the same data_t, and the rendered source must declare what
both of them assume.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from cnn2gate.codegen import make_plan
from cnn2gate.codegen.project import array_files, render_context
from cnn2gate.codegen.render import render_all
from cnn2gate.frontend import load_model
from cnn2gate.hw import HwConfig, estimate, lower
from cnn2gate.hw.arch import GENERATED
from cnn2gate.hw.latency import cost_context
from cnn2gate.hw.resources import lsus
from cnn2gate.hw.storage import narrow_io, out_bits_of
from cnn2gate.ops.conv import input_fold, vector_io, write_chunk
from cnn2gate.ops.lowering import buffer_sizes
from cnn2gate.quant import quantize, quantize_params, with_weight_bits
from examples import models

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [HwConfig(4, 4, 3), HwConfig(8, 16, 5)]
MODELS = ["digits", *sorted(models.SMALL)]


def _onnx(name: str) -> Path:
    if name == "digits":
        return ROOT / "examples" / "digits" / "digits_cnn.onnx"
    return Path(models.export(name, **models.SMALL[name]))


@pytest.fixture(scope="module", params=MODELS)
def quantized(request):
    graph = load_model(_onnx(request.param))
    formats = quantize(graph)
    return graph, formats, quantize_params(graph, formats)


def _define(source: str, name: str) -> int:
    return int(re.search(rf"#define {name} (\d+)", source).group(1))


@pytest.mark.parametrize("cfg", CONFIGS, ids=["v4l4g3", "v8l16g5"])
def test_plan_and_estimate_share_the_lowering(quantized, cfg):
    graph, formats, qg = quantized
    plan = make_plan(qg, cfg)
    est = estimate(graph, "a10", cfg, formats)
    lowered = lower(graph)

    # the same kernel layers, in the same order, for both
    assert [lp.kernel_layer for lp in plan.layers] == list(lowered.layers)
    assert all(a is b for a, b in zip((lp.kernel_layer for lp in plan.layers), lowered.layers))
    assert [(e.name, e.kind) for e in est.layers] == [(k.name, k.kind) for k in lowered.layers]

    # buffers: the estimate sizes exactly what the plan declares
    assert plan.depths == est.resources.buffers == buffer_sizes(lowered, cfg, GENERATED)
    # kernels: the estimate prices exactly the kernels the plan instantiates
    priced = [k for k in est.resources.kernels if k != "channels"]
    assert priced == plan.kernels
    # data_t: one rule
    assert plan.data_bits == 8 * est.widths.data_bytes

    # per-layer loop bounds the host passes are the lowering's
    for lp in plan.layers:
        k, a = lp.kernel_layer, lp.args
        if "mem_read" in k.op.kernels:
            f = a["fold"]  # kernel columns per vector of a narrow input layer (ConvOp.input_fold)
            assert f == input_fold(k, cfg.vec_size) and (f == 1 or k.reads_graph_input)
            assert (a["k_h"], a["k_w"], a["stride_x"], a["dil_x"]) == (k.kh, math.ceil(k.kw / f), k.sx, f * k.dx)
            assert a["cv"] == math.ceil(f * k.cg / cfg.vec_size) and a["mb_num"] == math.ceil(k.mg / cfg.lane_num)
            assert (a["cg"], a["mg"], a["groups"], a["out_w"]) == (k.cg, k.mg, k.groups, k.ow)
            # mem_read's window for this layer, as the kernel computes it, fits the declared buffer
            win_w = (min(cfg.conv_gp_size_x, a["out_w"]) - 1) * a["stride_x"] + (a["k_w"] - 1) * a["dil_x"] + 1
            assert a["cv"] * a["k_h"] * win_w <= plan.depths.window_depth

    # the rendered source declares what both assume
    files = render_all(render_context(plan, "a10"))
    cl = files["device/cnn2gate.cl"].decode()
    assert _define(cl, "WIN_BUF_SIZE") == max(1, est.resources.buffers.window_depth)
    assert _define(cl, "WEIGHT_BUF_SIZE") == max(1, est.resources.buffers.weight_depth)
    assert (_define(cl, "VEC_SIZE"), _define(cl, "LANE_NUM"), _define(cl, "CONV_GP_SIZE_X")) == \
        (cfg.vec_size, cfg.lane_num, cfg.conv_gp_size_x)
    data_t = re.search(r"typedef (\w+) data_t;", cl).group(1)
    assert {"char": 1, "short": 2}[data_t] == est.widths.data_bytes
    defined = re.findall(r"__kernel[^{]*?void (\w+)\(", cl)
    assert defined == plan.kernels

    # whole-vector or element-wise feature-map access: one decision per layer (vector_io),
    # the host's flags, the fallback code and the priced ports follow it
    chain = [lp for lp in plan.layers if "mem_read" in lp.kernel_layer.op.kernels]
    for lp in chain:
        rd, wr = vector_io(lp.kernel_layer, cfg.vec_size, cfg.lane_num)
        assert (lp.args["rd_vec"], lp.args["wr_vec"]) == (int(rd), int(wr))
    assert plan.depths.scalar_read == int(any(not lp.args["rd_vec"] for lp in chain))
    assert plan.depths.scalar_write == int(any(not lp.args["wr_vec"] for lp in chain))
    assert ("if (!in_vec)" in cl) == bool(plan.depths.scalar_read)
    assert ("if (!out_vec)" in cl) == bool(plan.depths.scalar_write)
    if chain:
        v, lanes = cfg.vec_size, cfg.lane_num
        folds = plan.depths.fold_max if plan.depths.fold_max > 1 else 0  # one tap load each
        assert lsus("mem_read", GENERATED, v, lanes, plan.depths) == (2 + folds, v * plan.depths.scalar_read)
        assert lsus("mem_write", GENERATED, v, lanes, plan.depths) == \
            (lanes // write_chunk(v, lanes), lanes * plan.depths.scalar_write)


@pytest.mark.parametrize("fc_batch", [4, 16])
def test_batched_dense_layers_are_priced_as_generated(quantized, fc_batch):
    """Dense layers run fc_batch images per call: the host's batch field, the declared window
    buffer and each dense layer's modelled DDR traffic (weight files read once per batch)."""
    graph, formats, qg = quantized
    cfg = HwConfig(4, 4, 3, fc_batch=fc_batch)
    plan = make_plan(qg, cfg)
    est = estimate(graph, "a10", cfg, formats)
    assert plan.depths == est.resources.buffers == buffer_sizes(lower(graph), cfg, GENERATED)
    # the generated mem_read keeps one window: batching adds no window depth
    assert plan.depths.window_depth == buffer_sizes(lower(graph), HwConfig(4, 4, 3), GENERATED).window_depth
    ctx = render_context(plan, "a10")
    h = render_all(ctx)["host/layers.h"].decode()
    assert f"constexpr int kFcBatch = {fc_batch};" in h
    b = est.widths.data_bytes
    for lp, e, L in zip(plan.layers, est.layers, ctx["layers"]):
        k = lp.kernel_layer
        assert lp.args["batch"] == (fc_batch if k.op.batched else 1)
        assert f'L.name = "{lp.stem}";' in h and f"L.batch = {lp.args['batch']};" in h
        if k.kind != "dense":
            continue
        cv = math.ceil(k.cg / cfg.vec_size)
        blocks = k.groups * math.ceil(k.mg / cfg.lane_num)
        window = k.kh * k.window_width(cfg.conv_gp_size_x) * cv * cfg.vec_size * b
        want = (L["weight_bytes"] + L["bias_bytes"]) / fc_batch + blocks * window + k.out_elems * b
        assert e.bytes == round(want)



@pytest.mark.parametrize("mixed", [False, True], ids=["uniform", "mixed"])
def test_modelled_weight_bytes_are_the_weight_files(quantized, mixed):
    """Each layer's modelled weight bytes (the DDR traffic of its weight pass) are the size of
    the weight file compile writes: data_t per weight at one width, packed words at mixed widths."""
    graph, formats, qg = quantized
    cfg = CONFIGS[0]
    if mixed:
        names = [layer.name for layer in graph.layers if layer.has_weights]
        formats = with_weight_bits(graph, formats, {n: (2, 4, 6, 8, 3, 5)[i % 6] for i, n in enumerate(names)})
        qg = quantize_params(graph, formats)
    plan = make_plan(qg, cfg)
    assert plan.packed_weights == mixed
    est = estimate(graph, "a10", cfg, formats)
    ctx = cost_context(lower(graph), cfg, est.widths, 1.0, 200.0, GENERATED)
    assert ctx.packed == plan.packed_weights
    files = array_files(plan)
    h = render_all(render_context(plan, "a10"))["host/layers.h"].decode()
    for lp in plan.layers:
        k = lp.kernel_layer
        size = len(files.get(f"weights/{lp.stem}.w.bin", b""))
        assert ctx.weight_bytes(k) == size, lp.stem
        assert f"L.weight_bytes = {size};" in h
        if mixed and "w" in lp.arrays:
            assert lp.args["w_bits"] == formats.layers[k.name].weight.bits
    assert any(lp.arrays.get("w") is not None for lp in plan.layers)


def test_char_buffers_are_priced_as_generated(quantized):
    """With its last layer at 16 bits (data_t short), every activation buffer the plan stores
    as char (the host's BufferCfg narrow flag) is the one the cost model prices at one byte,
    on every side of every layer (hw/storage.py: one decision for both)."""
    graph, formats, _ = quantized
    cfg = CONFIGS[1]
    wide = quantize(graph, bits=16).layers[graph.layers[-1].name]
    layers = {**formats.layers, graph.layers[-1].name: wide}
    mixed = type(formats)(formats.input, layers, dict(formats.stats))
    plan = make_plan(quantize_params(graph, mixed), cfg)
    est = estimate(graph, "a10", cfg, mixed)
    assert plan.data_bits == 16 and plan.narrow_act
    h = render_all(render_context(plan, "a10"))["host/layers.h"].decode()
    narrow = [int(n) for n in re.findall(r'\{"[^"]*", \d+, \d+, \d+, (\d)\}', h)]
    assert narrow == [int(b.narrow) for b in plan.buffers] and narrow[0] == 1  # the 8-bit input too
    ctx = cost_context(lower(graph), cfg, est.widths, 1.0, 200.0, GENERATED,
                       narrow_io(graph, lower(graph), out_bits_of(mixed), 2, cfg.vec_size, cfg.lane_num))
    for lp in plan.layers:
        k = lp.kernel_layer
        if not k.op.kernels:
            continue  # done by addressing
        for i, view in enumerate(lp.inputs):
            assert ctx.in_bytes(k, i) == (1 if narrow[view.buf] else 2) == (2 - ((lp.args["rd_narrow"] >> i) & 1))
        assert ctx.out_bytes(k) == (1 if narrow[lp.output.buf] else 2) == 2 - lp.args["wr_narrow"]
    assert narrow[plan.layers[-1].output.buf] == 0
