"""The convolution chain's memory interface: whole-vector or element-wise access per layer
(ConvOp.vector_io), the folded narrow input layer (ConvOp.folded, fold_weights) and both
bit-exact in the emulator (docs/architecture.md, "Alignment of channel views")."""
from __future__ import annotations

import numpy as np
import pytest

from cnn2gate.hw import HwConfig, estimate, lower
from cnn2gate.ir import GRAPH_INPUT
from cnn2gate.ir.windows import pad_nchw
from cnn2gate.ops.conv import fold_weights, folded, input_fold, vector_io
from cnn2gate.pipeline import compile_project
from cnn2gate.quant import quantize
from cnn2gate.zoo import Builder
from sim_checks import emulator_test


def views_graph():
    """A 3-channel input under a strided, dilated, padded conv (folded on the chain), and
    concat parts at aligned and unaligned offsets, written and read there."""
    b = Builder("views", (3, 11, 12), seed=5)
    a = b.conv(GRAPH_INPUT, 8, 5, stride=2, pad=3, dilation=2, act="relu")
    p = b.conv(a, 5, 3, act="none")
    q = b.conv(a, 6, 1, act="relu")
    c = b.concat(a, p, q)  # a at channel 0, p at 8, q at 13 of 19
    d = b.conv(c, 7, 3, act="relu")
    f = b.conv(q, 4, 3, act="none")  # reads q inside c's buffer at channel 13
    b.dense(b.concat(d, f), 5, act="none")  # d at 0, f at 7 of 11
    return b.build()


def _convs(graph):
    lowered = {k.name: k for k in lower(graph).layers}
    return [lowered[layer.name] for layer in graph.layers if layer.kind == "conv"]


def test_vector_io_follows_the_view_offsets():
    g = views_graph()
    a, p, q, d, f = _convs(g)
    # V 8, L 4 (chunks of 4 lanes)
    assert vector_io(a, 8, 4) == (True, True)  # graph input; a fills channels 0..7
    assert vector_io(p, 8, 4) == (True, False)  # starts at 8, but its last chunk would cover q's 13..15
    assert vector_io(q, 8, 4) == (True, False)  # starts at 13
    assert vector_io(d, 8, 4) == (True, False)  # reads c from 0; 7 channels, f follows at 7
    assert vector_io(f, 8, 4) == (False, False)  # reads at 13, writes at 7
    # chunks of one lane always start on a boundary; V 1 makes every read whole
    assert vector_io(q, 8, 1)[1] and vector_io(f, 8, 1)[1] and vector_io(f, 1, 1)[0]
    # the design carries a fallback exactly when some layer needs it
    assert estimate(g, "a10", HwConfig(8, 4, 3)).resources.buffers.scalar_write == 1
    assert estimate(g, "a10", HwConfig(8, 1, 3)).resources.buffers.scalar_write == 0
    assert estimate(g, "a10", HwConfig(1, 4, 3)).resources.buffers.scalar_read == 0


def test_only_narrow_graph_input_layers_fold():
    first, second = _convs(views_graph())[:2]
    assert input_fold(first, 8) == 2 and input_fold(first, 16) == 5 and input_fold(first, 4) == 1
    assert input_fold(second, 16) == 1  # not on the graph input
    f, fold = folded(first, 16)
    assert (fold, f.cg, f.kw, f.dx, f.kh, f.sx) == (5, 15, 1, 10, 5, 2)


@pytest.mark.parametrize("kw,dx,fold", [(5, 2, 2), (11, 1, 5), (3, 1, 3), (4, 3, 3)])
def test_folded_weights_give_the_same_sums(kw, dx, fold):
    """The folded conv over the folded input (channel j·C + c at column x is channel c at
    x + j·dx) is the original conv exactly, in integers."""
    rng = np.random.default_rng(kw * 10 + dx)
    m, c, kh, h, w, sx = 4, 3, 2, 6, 17, 2
    wt = rng.integers(-128, 128, size=(m, c, kh, kw))
    x = rng.integers(-128, 128, size=(1, c, h, w))
    xp = pad_nchw(x, (0, 1, 0, 2))
    ow = (xp.shape[3] - (kw - 1) * dx - 1) // sx + 1
    want = np.zeros((m, h - kh + 1, ow), dtype=np.int64)
    for ky in range(kh):
        for kx in range(kw):
            tap = xp[0, :, ky:ky + h - kh + 1, kx * dx:kx * dx + (ow - 1) * sx + 1:sx]
            want += np.einsum("chw,mc->mhw", tap, wt[:, :, ky, kx])
    wf = fold_weights(wt, fold)
    kwf = wf.shape[3]
    assert wf.shape == (m, fold * c, kh, -(-kw // fold))
    wide = np.zeros((fold * c, xp.shape[2], xp.shape[3] + fold * dx * kwf), dtype=np.int64)
    for j in range(fold):  # the window entries mem_read builds: column x + j·dx, zero outside
        wide[j * c:(j + 1) * c, :, :xp.shape[3] - j * dx] = xp[0, :, :, j * dx:]
    got = np.zeros_like(want)
    for ky in range(kh):
        for q in range(kwf):
            x0 = q * fold * dx
            tap = wide[:, ky:ky + h - kh + 1, x0:x0 + (ow - 1) * sx + 1:sx]
            got += np.einsum("chw,mc->mhw", tap, wf[:, :, ky, q])
    np.testing.assert_array_equal(got, want)


@emulator_test
@pytest.mark.parametrize("cfg", [{"vec_size": 4, "lane_num": 4, "conv_gp_size_x": 3},
                                 {"vec_size": 8, "lane_num": 3, "conv_gp_size_x": 5},
                                 {"vec_size": 8, "lane_num": 4, "conv_gp_size_x": 2}],
                         ids=["v4l4", "v8l3", "v8l4-folded-chunks"])
def test_aligned_and_unaligned_views_bit_exact(tmp_path, cfg):
    from cnn2gate.emulate import emulate_project

    g = views_graph()
    out = compile_project(g, quantize(g), "a10", cfg, tmp_path / "p")
    x = np.random.default_rng(4).uniform(-1, 1, (2,) + g.input_shape)
    res = emulate_project(out, x, timeout=240, dump_dir=tmp_path / "dump", channel_depth=None)
    assert res.passed, res.summary()
    assert len(res.layer_mismatches) == len(g.layers) and not any(res.layer_mismatches.values())
    assert "warning" not in res.stderr.lower(), res.stderr
