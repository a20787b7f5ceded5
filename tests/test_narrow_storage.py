"""Activation buffers kept at 8 bits in a 16-bit design (cnn2gate/hw/storage.py).

A design with one 16-bit layer has data_t `short`; a buffer whose tensors are all at most
8 bits stays `char` in external memory where every kernel that touches it converts: the
conv chain's mem_read / mem_write on their whole-vector paths, and the pool, lrn, eltwise,
act, mul, resize, shuffle, zero_insert and dw_conv kernels (a flag per pointer). The plan,
the cost model and the generated project agree on which.
"""
from __future__ import annotations

import numpy as np

import re

import pytest

from cnn2gate.codegen.interface import kernel_args
from cnn2gate.codegen.plan import make_plan
from cnn2gate.codegen.project import render_context
from cnn2gate.codegen.render import render_all
from cnn2gate.emulate import emulate_project
from cnn2gate.hw.arch import GENERATED
from cnn2gate.hw.config import HwConfig
from cnn2gate.hw.estimate import estimate
from cnn2gate.hw.latency import cost_context
from cnn2gate.hw.resources import lsus
from cnn2gate.hw.storage import narrow_io, out_bits_of
from cnn2gate.ir import GRAPH_INPUT
from cnn2gate.ops.lowering import lower
from cnn2gate.pipeline import compile_project
from cnn2gate.quant import Formats, quantize, quantize_params, validate
from cnn2gate.zoo import Builder
from sim_checks import EMU_CONFIGS, emulator_test
from test_kernel_interface import device_signatures, every_kernel_graph, host_chains, mismatches

CFG = {"vec_size": 4, "lane_num": 4, "conv_gp_size_x": 3}


def mixed_graph():
    """conv -> conv and conv -> 1x1 conv into one concat read by a conv (all 8-bit), then a
    pool and two dense layers, the first at 16 bits (so data_t is short)."""
    b = Builder("chars", (5, 9, 9), seed=4)
    x = b.conv(GRAPH_INPUT, 8, 3, act="relu")
    y = b.conv(x, 8, 3, act="relu")
    z = b.conv(x, 4, 1, act="relu")
    u = b.conv(b.concat(y, z), 12, 3, stride=2, act="relu")
    d = b.dense(b.pool(u, "max", 2), 10, act="relu")
    b.dense(d, 4)
    return b.build()


def res_graph():
    """ResNet-like: max pool, a residual add of a 16-bit and an 8-bit map (values of both
    signs), a standalone leaky activation, LRN, average and global pools, a 16-bit dense."""
    b = Builder("res", (4, 10, 10), seed=7)
    x = b.conv(GRAPH_INPUT, 8, 3, act="relu")
    p = b.pool(x, "max", 2)
    z = b.conv(b.conv(p, 8, 3, act="none"), 8, 3, act="none")  # conv3: 16-bit
    r = b.act(b.add(z, p, act="none"), act="leaky", alpha=0.2)
    q = b.pool(b.lrn(r, size=3), "avg", 3, stride=1, pad=1)
    b.dense(b.pool(q, "global_avg"), 6)
    return b.build()


RES_WIDE = ("conv3", "dense9")


def mb_graph():
    """MobileNet-like: depthwise, a squeeze-excitation gate (global pool, 1x1 convs, the
    16-bit one feeding a hard-sigmoid table) times the map, a residual add, nearest and
    bilinear upsampling, a channel shuffle and a transposed conv (zero insertion)."""
    b = Builder("mbse", (3, 6, 6), seed=8)
    x = b.conv(GRAPH_INPUT, 8, 3, act="relu6")
    d = b.conv(x, 8, 3, groups=8, act="relu6")
    e = b.conv(b.pool(d, "global_avg"), 4, 1, pad=0, act="relu")
    h = b.act(b.conv(e, 8, 1, pad=0, act="none"), fn="hardsigmoid")  # conv4: 16-bit
    o = b.add(b.conv(b.mul(d, h), 8, 1, pad=0, act="none"), x)
    u = b.add(b.resize(o, 2), b.resize(o, 2, mode="linear", coord="half_pixel"))
    t = b.conv_transpose(b.shuffle(u, 2), 4, k=2, stride=2, act="none")
    b.dense(b.pool(t, "global_avg"), 5)
    return b.build()


MB_WIDE = ("conv4", "dense16")


def formats(g, wide=("dense6",)):
    """8-bit formats with the layers in `wide` at 16 bits (weights and output)."""
    f8, f16 = quantize(g), quantize(g, bits=16)
    layers = {n: (f16 if n in wide else f8).layers[n] for n in f8.layers}
    fm = Formats(f8.input, layers, dict(f8.stats))
    validate(fm, g, "mixed widths")
    return fm


def narrow_buffers(plan):
    return sorted(b.name for b in plan.buffers if b.narrow)


def test_every_8_bit_buffer_off_the_input_is_char():
    g = mixed_graph()
    plan = make_plan(quantize_params(g, formats(g)), HwConfig(**CFG))
    assert plan.data_bits == 16
    # dense6's output (16-bit) stays short; the 8-bit input (written by the host), conv4's output
    # read by the pool, the pool's read by dense6, and the graph output (read back) are char
    assert narrow_buffers(plan) == ["L000_conv0", "L003_concat3", "L004_conv4", "L005_pool5", "L007_dense7", "input"]
    flags = {lp.stem: (lp.args["rd_narrow"], lp.args["wr_narrow"]) for lp in plan.layers}
    assert flags["L000_conv0"] == (1, 1) and flags["L001_conv1"] == (1, 1) and flags["L002_conv2"] == (1, 1)
    assert flags["L004_conv4"] == (1, 1) and flags["L005_pool5"] == (1, 1)
    assert flags["L006_dense6"] == (1, 0) and flags["L007_dense7"] == (0, 1)


def test_flags_per_input_of_multi_input_kernels():
    """rd_narrow holds one bit per input: the add of conv3 (16-bit, short) and the pool (char)."""
    g = res_graph()
    plan = make_plan(quantize_params(g, formats(g, RES_WIDE)), HwConfig(**CFG))
    flags = {lp.stem: (lp.args["rd_narrow"], lp.args["wr_narrow"]) for lp in plan.layers}
    assert flags["L004_add4"] == (0b10, 1)
    assert flags["L003_conv3"] == (1, 0) and flags["L009_dense9"] == (1, 0)
    assert narrow_buffers(plan) == sorted(b.name for b in plan.buffers if b.name not in ("L003_conv3", "L009_dense9"))
    g = mb_graph()
    plan = make_plan(quantize_params(g, formats(g, MB_WIDE)), HwConfig(**CFG))
    flags = {lp.stem: (lp.args["rd_narrow"], lp.args["wr_narrow"]) for lp in plan.layers}
    assert flags["L005_act5"] == (0, 1) and flags["L006_mul6"] == (0b11, 1) and flags["L008_add8"] == (0b11, 1)
    assert flags["L001_conv1"] == (1, 1)  # dw_conv


def test_a_wide_tensor_in_a_buffer_keeps_it_short():
    """The concat's inputs (tied to its format) at 16 bits: that buffer stays short, conv0's does not."""
    g = mixed_graph()
    plan = make_plan(quantize_params(g, formats(g, wide=("conv1", "conv2", "concat3", "dense6"))), HwConfig(**CFG))
    assert narrow_buffers(plan) == ["L000_conv0", "L004_conv4", "L005_pool5", "L007_dense7", "input"]


def test_a_16_bit_input_stays_short():
    g = mixed_graph()
    fm = formats(g)
    fm16 = Formats(quantize(g, bits=16).input, fm.layers, dict(fm.stats))
    plan = make_plan(quantize_params(g, fm16), HwConfig(**CFG))
    assert not plan.buffers[0].narrow and plan.layers[0].args["rd_narrow"] == 0
    assert narrow_buffers(plan) == ["L000_conv0", "L003_concat3", "L004_conv4", "L005_pool5", "L007_dense7"]


def test_an_element_wise_conv_read_keeps_its_input_short():
    """A conv reading a channel view off a vector boundary uses mem_read's element-wise path,
    which has no char form: the concat buffer it reads stays short, its other readers follow."""
    b = Builder("offview", (4, 6, 6), seed=2)
    x = b.conv(GRAPH_INPUT, 3, 3, act="relu")
    y = b.conv(GRAPH_INPUT, 5, 3, act="relu")
    c = b.concat(x, y)
    s = b.conv(b.split(c, 3, 5), 4, 3, act="relu")  # channels 3.. of c: off the V = 4 boundary
    p = b.pool(c, "max", 2)
    b.dense(b.add(b.pool(s, "max", 2), b.split(p, 0, 4)), 3)
    g = b.build()
    last = g.layers[-1].name
    plan = make_plan(quantize_params(g, formats(g, wide=(last,))), HwConfig(**CFG))
    bufs = {b.name: b.narrow for b in plan.buffers}
    concat = next(name for name in bufs if "concat" in name)
    assert not bufs[concat] and plan.narrow_act
    pool_p = next(lp for lp in plan.layers if lp.kernel_layer.name == p)
    assert pool_p.args["rd_narrow"] == 0 and pool_p.args["wr_narrow"] == 1


def test_uniform_designs_have_no_narrow_code(tmp_path):
    g = mixed_graph()
    for fm in (quantize(g), quantize(g, bits=16)):
        assert not make_plan(quantize_params(g, fm), HwConfig(**CFG)).narrow_act
    out = compile_project(g, quantize(g, bits=16), "a10", CFG, tmp_path / "p")
    assert "narrow" not in (out / "device" / "cnn2gate.cl").read_text()
    assert "narrow" not in (out / "host" / "main.cpp").read_text()


def test_kernels_follow_the_narrow_table(tmp_path):
    g = mixed_graph()
    out = compile_project(g, formats(g), "a10", CFG, tmp_path / "p")
    files = {f: (out / f).read_text() for f in ("device/cnn2gate.cl", "host/main.cpp")}
    table = kernel_args(packed_weights=True, narrow_act=True)
    assert table["mem_read"][-1].name == "in_narrow" and table["mem_write"][-1].name == "out_narrow"
    sigs, chains = device_signatures(files["device/cnn2gate.cl"]), host_chains(files["host/main.cpp"])
    for kernel in ("mem_read", "conv_core", "mem_write", "pool"):
        assert sigs[kernel] == [(a.name, a.cl_type) for a in table[kernel]], kernel
        assert chains[kernel] == [(a.kind, a.host) for a in table[kernel]], kernel
    assert sigs["mem_read"] != [(a.name, a.cl_type) for a in kernel_args(packed_weights=True)["mem_read"]]


def test_every_kernel_takes_the_char_flags():
    """A design using all kernels with a 16-bit dense layer: every kernel but conv_core declares
    and is passed its flags; every feature map off the conv chain is char, so each kernel
    accesses them through char pointers (one site each)."""
    g = every_kernel_graph()
    last = g.layers[-1].name
    plan = make_plan(quantize_params(g, formats(g, wide=(last,))), HwConfig(vec_size=4, lane_num=3, conv_gp_size_x=2))
    assert plan.narrow_act
    files = {k: v.decode() for k, v in render_all(render_context(plan, "a10")).items()}
    table = kernel_args(packed_weights=plan.packed_weights, acc_bits=plan.acc_bits, narrow_act=True)
    assert mismatches(files, table) == []
    plain = kernel_args(packed_weights=plan.packed_weights, acc_bits=plan.acc_bits)
    changed = {k for k in table if table[k] != plain[k]}
    assert changed == set(table) - {"conv_core"}
    for k in changed - {"mem_read", "mem_write"}:
        assert [a.name for a in table[k][-2:]] == ["in_narrow", "out_narrow"], k
    assert plan.char_modes == {k: "char" for k in changed - {"mem_read", "mem_write"}}
    cl = files["device/cnn2gate.cl"]
    # outside the conv chain no feature map is indexed as data_t any more
    body = cl[cl.index("void dw_conv("):]
    assert not re.search(r"\b(in\d?|out)\[act_index", body) and "load_act(" not in body
    # dw_conv, pool, lrn, eltwise, act, mul, resize (nearest: no bilinear layer), zero_insert, shuffle
    assert body.count("((__global char *)out)[") == 9 and not plan.depths.bilinear


def test_a_kernel_seeing_both_widths_carries_both_sites():
    """The residual add reads a 16-bit (short) and an 8-bit (char) map: only the eltwise kernel
    takes the flag-selected pair of accesses, and only its memory ports double in the model."""
    g = res_graph()
    fm = formats(g, RES_WIDE)
    plan = make_plan(quantize_params(g, fm), HwConfig(**CFG))
    assert plan.char_modes == {"pool": "char", "eltwise": "both", "act": "char", "lrn": "char"}
    cl = render_all(render_context(plan, "a10"))["device/cnn2gate.cl"].decode()
    elt = cl[cl.index("void eltwise("):]
    elt = elt[:elt.index("\n}\n")]
    assert "load_act(in0, act_index(off0 + c, y, x, h, w), (in_narrow >> 0) & 1)" in elt and "store_act(out," in elt
    pool = cl[cl.index("void pool("):]
    assert "load_act" not in pool[:pool.index("\n}\n")]
    est, short = estimate(g, "a10", CFG, formats=fm), estimate(g, "a10", CFG, formats=quantize(g, bits=16))
    v = CFG["vec_size"]
    assert est.resources.buffers.char_both == ("eltwise",)
    assert lsus("eltwise", GENERATED, v, 4, est.resources.buffers) == (0, 2 * lsus("eltwise", GENERATED, v, 4)[1])
    assert lsus("pool", GENERATED, v, 4, est.resources.buffers) == lsus("pool", GENERATED, v, 4)
    assert est.resources.kernels["eltwise"]["alm"] > short.resources.kernels["eltwise"]["alm"]
    assert est.resources.kernels["pool"]["alm"] == short.resources.kernels["pool"]["alm"]


def test_cost_model_prices_the_char_buffers():
    """conv0, conv1 and the pool read and write char: their traffic is that of the all-8-bit design;
    the footprint shrinks by one byte per element of every char buffer."""
    g = mixed_graph()
    mixed, uniform = estimate(g, "a10", CFG, formats=formats(g)), estimate(g, "a10", CFG, formats=quantize(g))
    short = estimate(g, "a10", CFG, formats=quantize(g, bits=16))
    by = {e: {layer.name: layer.bytes for layer in est.layers} for e, est in
          (("mixed", mixed), ("uniform", uniform), ("short", short))}
    assert by["mixed"]["conv1"] == by["uniform"]["conv1"] < by["short"]["conv1"]
    assert by["mixed"]["conv0"] == by["uniform"]["conv0"] < by["short"]["conv0"]  # the input: char
    assert by["mixed"]["pool5"] == by["uniform"]["pool5"] < by["short"]["pool5"]
    # the input's (5 channels in 8), conv0's, the concat's, conv4's, the pool's and the output's buffers (V = 4)
    char_elems = 8 * 9 * 9 + 8 * 9 * 9 + 12 * 9 * 9 + 12 * 5 * 5 + 12 * 2 * 2 + 4
    assert short.memory.feature_bytes - mixed.memory.feature_bytes == char_elems
    # a second, char-typed access at mem_read's and mem_write's whole-vector sites; the pool
    # sees char maps only, so its accesses are char instead of data_t (no more ports)
    assert mixed.resources.kernels["mem_read"]["alm"] > short.resources.kernels["mem_read"]["alm"]
    assert mixed.resources.kernels["pool"] == short.resources.kernels["pool"]


def _elements(k, v: int) -> tuple[list[int], int]:
    """(elements read of each input, elements written) by layer k's kernel, counted from the
    loops of its template (templates/device): every unrolled lane of a V-group reads, tails
    included, where the template predicates; writes cover the tensor once."""
    cv = -(-k.cg // v)
    kind = k.kind
    if kind == "pool" or kind == "dwconv":  # V lanes of every tap of every output pixel
        return [cv * v * k.oh * k.ow * k.kh * k.kw], k.out_elems
    if kind == "resize" and k.extra["mode"] == "linear":
        return [4 * k.out_elems], k.out_elems  # four taps per output element
    if kind == "mul":
        return [k.in_elems, k.cg if k.extra["per_channel"] else k.in_elems], k.out_elems
    return [k.in_elems] * k.n_inputs, k.out_elems  # add, act, lrn, nearest resize, shuffle, zero_insert


@pytest.mark.parametrize("make, wide", [(res_graph, RES_WIDE), (mb_graph, MB_WIDE)], ids=["res", "mbse"])
def test_modelled_bytes_are_what_the_project_moves(make, wide):
    """Per layer off the conv chain: the modelled external-memory bytes are the elements its
    kernel reads of each input and writes, each at the width of the buffer it lives in as the
    generated host allocates it (kBuffers' narrow flag) and as the kernel is told (rd_narrow
    bit i, wr_narrow), plus its weights and tables."""
    g = make()
    fm = formats(g, wide)
    cfg = HwConfig(**CFG)
    plan = make_plan(quantize_params(g, fm), cfg)
    h = render_all(render_context(plan, "a10"))["host/layers.h"].decode()
    narrow = [int(n) for n in re.findall(r'\{"[^"]*", \d+, \d+, \d+, (\d)\}', h)]
    assert narrow == [int(b.narrow) for b in plan.buffers]
    est = estimate(g, "a10", cfg, formats=fm)
    lowered = lower(g)
    ctx = cost_context(lowered, cfg, est.widths, 1.0, 200.0, GENERATED,
                       narrow_io(g, lowered, out_bits_of(fm), est.widths.data_bytes, cfg.vec_size, cfg.lane_num))
    size = {0: 2, 1: 1}
    seen = set()
    for lp, e in zip(plan.layers, est.layers):
        k = lp.kernel_layer
        stored_in = [size[narrow[v.buf]] for v in lp.inputs]
        stored_out = size[narrow[lp.output.buf]]
        assert f"L.rd_narrow = {lp.args['rd_narrow']}; L.wr_narrow = {lp.args['wr_narrow']};" in h
        if not k.op.char_activations:
            continue
        told = [size[(lp.args["rd_narrow"] >> i) & 1] for i in range(len(lp.inputs))]
        assert told == stored_in and size[lp.args["wr_narrow"]] == stored_out, lp.stem
        assert [ctx.in_bytes(k, i) for i in range(len(lp.inputs))] == stored_in, lp.stem
        reads, writes = _elements(k, cfg.vec_size)
        fixed = e.bytes - sum(r * b for r, b in zip(reads, stored_in)) - writes * stored_out
        # what is left is what the kernel reads besides feature maps: the act kernel's table
        # (copied on chip once), dw_conv's weights and biases, the bilinear taps (test_resize.py);
        # the pool's multipliers and the LRN factors (small tables re-read per output) are not in
        # the traffic model: an approximation this storage does not change
        other = 4 * lp.arrays["lut"].size if k.kind == "act" and "lut" in lp.arrays else 0
        if k.kind == "dwconv":
            other = ctx.weight_bytes(k) + -(-k.cg // cfg.vec_size) * cfg.vec_size * 4
        if k.kind == "resize" and k.extra["mode"] == "linear":
            other = fixed
            assert fixed > 0
        assert fixed == other, (lp.stem, e.bytes, reads, writes, stored_in, stored_out)
        seen.add(k.kind)
        assert 1 in stored_in + [stored_out], lp.stem  # every such layer here touches a char buffer
    assert seen >= {"pool", "add", "act"} and (seen >= {"dwconv", "mul", "resize", "shuffle", "zero_insert"}
                                               or make is res_graph)
    assert "lrn" in seen or make is mb_graph


@emulator_test
@EMU_CONFIGS
def test_char_buffers_bit_exact_in_the_emulator(tmp_path, cfg):
    """fc_batch 4 over 5 images (a partial last group): slots of char buffers, the concat view
    and every layer's dump read back from char storage."""
    g = mixed_graph()
    out = compile_project(g, formats(g), "a10", dict(cfg, fc_batch=4), tmp_path / "p")
    h = (out / "host" / "layers.h").read_text()
    assert "typedef short data_t;" in (out / "device" / "cnn2gate.cl").read_text()
    assert "L.rd_narrow = 1; L.wr_narrow = 1;" in h
    x = np.random.default_rng(3).uniform(-1, 1, (5,) + g.input_shape)
    res = emulate_project(out, x, timeout=240, dump_dir=tmp_path / "dump")
    assert res.passed, res.summary()
    assert res.images == 5
    assert len(res.layer_mismatches) == len(g.layers) and not any(res.layer_mismatches.values())


def _emulate_mixed(tmp_path, make, wide, cfg, images=3, patch=None):
    g = make()
    out = compile_project(g, formats(g, wide), "a10", cfg, tmp_path / "p")
    cl = out / "device" / "cnn2gate.cl"
    assert "typedef short data_t;" in cl.read_text()
    if patch is not None:
        src = cl.read_text()
        cl.write_text(patch(src))
        assert cl.read_text() != src
    x = np.random.default_rng(5).uniform(-1, 1, (images,) + g.input_shape)
    return g, out, emulate_project(out, x, timeout=240, dump_dir=tmp_path / "dump")


@emulator_test
@EMU_CONFIGS
@pytest.mark.parametrize("make, wide", [(res_graph, RES_WIDE), (mb_graph, MB_WIDE)], ids=["res", "mbse"])
def test_char_buffers_around_every_kernel_bit_exact(tmp_path, cfg, make, wide):
    """16-bit designs whose pool, eltwise, act, LRN, mul, dw_conv, resize (nearest and
    bilinear), shuffle and zero_insert kernels read and write char buffers (next to short
    ones: the add of a 16-bit and an 8-bit map, the table after a 16-bit conv): every
    layer's output equals the simulator's."""
    g, out, res = _emulate_mixed(tmp_path, make, wide, cfg)
    plan_h = (out / "host" / "layers.h").read_text()
    assert plan_h.count("L.wr_narrow = 1;") == len(g.layers) - len(wide)  # all but the 16-bit layers
    assert res.passed, res.summary()
    assert len(res.layer_mismatches) == len(g.layers) and not any(res.layer_mismatches.values())


def _unsigned_char_load(src: str) -> str:
    """A char load without its sign extension (char-mode kernels)."""
    return src.replace("(data_t)((__global const char *)in)[", "(data_t)((__global const uchar *)in)[")


def _flag_ignored(src: str) -> str:
    """load_act reading data_t whatever the flag says (both-mode kernels)."""
    return src.replace("return narrow ? (data_t)((__global const char *)p)[i] : p[i];", "return p[i];")


@emulator_test
@pytest.mark.parametrize("patch, first_bad", [(_unsigned_char_load, "L005_act5"), (_flag_ignored, "L004_add4")],
                         ids=["unsigned-load", "flag-ignored"])
def test_a_broken_char_conversion_is_caught(tmp_path, patch, first_bad):
    """The same check fails when a conversion is broken by hand: the act kernel (char mode)
    reading the residual add's negative values as unsigned, or the add (both mode) reading
    its char input as data_t; the dumps name the first layer that reads it wrong."""
    g, _, res = _emulate_mixed(tmp_path, res_graph, RES_WIDE, {"vec_size": 4, "lane_num": 4, "conv_gp_size_x": 3},
                               images=1, patch=patch)
    assert not res.passed
    assert res.first_bad_layer == first_bad
