"""estimate(): contract, architecture cycle counts, monotonicity, fits, speed."""
import dataclasses
import json
import math
import time

import numpy as np
import pytest

from cnn2gate.errors import ConfigError, FormatsError
from cnn2gate.hw import HwConfig, estimate, list_boards, lower
from cnn2gate.hw import latency as L
from cnn2gate.hw.arch import GENERATED, PIPECNN
from cnn2gate.zoo import NETS, alexnet, vgg16
from cnn2gate.hw.resources import ram_blocks_for
from cnn2gate.ir.layers import Graph
from cnn2gate.ops import Conv, Dense

GRAPHS = {name: build() for name, build in NETS.items()}


@pytest.mark.parametrize("board", sorted(list_boards()))
@pytest.mark.parametrize("net", sorted(NETS))
def test_every_net_on_every_board(net, board):
    g = GRAPHS[net]
    e = estimate(g, board)
    assert [layer.name for layer in e.layers] == [layer.name for layer in g.layers]
    assert 0 < e.total_ms < 1e5 and math.isfinite(e.gops) and e.gops > 0
    assert e.total_ms == pytest.approx(sum(layer.ms for layer in e.layers))
    assert e.gops == pytest.approx(2 * g.total_macs() / (e.total_ms * 1e6))
    for layer in e.layers:
        assert layer.bound in ("compute", "memory", "none") and layer.cycles >= 0
        if layer.kind in ("conv", "dense"):
            assert layer.bytes > 0 and layer.ops == 2 * g.layer(layer.name).macs()
    doc = json.loads(json.dumps(e.to_dict()))
    assert {"board", "config", "layers", "total_ms", "gops", "resources", "fits"} <= set(doc)
    assert doc["board"] == board and isinstance(doc["fits"], bool)
    assert {"name", "cycles", "ms", "bound"} <= set(doc["layers"][0])
    for key in ("dsp", "alm", "ram_blocks"):
        r = doc["resources"][key]
        assert r["used"] > 0 and r["available"] > 0
        assert r["pct"] == pytest.approx(100 * r["used"] / r["available"], abs=0.2)


def _single_conv(c_in=8, c_out=16, size=10, k=3, pad=1, groups=1) -> Graph:
    w = np.broadcast_to(np.float32(0), (c_out, c_in // groups, k, k))
    out = size + 2 * pad - k + 1
    conv = Conv(name="c", inputs=["input"], in_shapes=[(c_in, size, size)], out_shape=(c_out, out, out), weight=w,
                bias=np.zeros(c_out, np.float32), pads=(pad,) * 4, groups=groups)
    return Graph("one", (c_in, size, size), [conv], "c")


def test_conv_cycles_follow_the_architecture_formula():
    # docs/architecture.md: mem_read = G*MB*(K + F + sum over windows of max(next fill F, stream n_x*K))
    # V=4, L=8, GP=4 on 8->16 channels, 10x10, 3x3: CV=2, MB=2, WW=6, 3 x-groups of 4, 4, 2
    # columns, K = 18, F = kh*WW*CV = 36; the last window has nothing to fill (its stream is 36)
    fill, streams = 36, [4 * 18, 4 * 18, 2 * 18]
    steps = 10 * sum(max(fill, s) for s in streams)
    kernel_cycles = 2 * (18 + fill + steps)
    loads = 2 * 2  # the weight load and window 0's fill per block are exposed; later fills overlap the stream
    e = estimate(_single_conv(), "a10", HwConfig(4, 8, 4))
    expected = kernel_cycles + loads * L.LOAD_LATENCY_CYCLES + L.LAUNCH_US * e.fmax_mhz
    assert e.layers[0].cycles == pytest.approx(expected)
    assert e.layers[0].ms == pytest.approx(expected / (e.fmax_mhz * 1e3))


def test_pingpong_window_hides_window_loads():
    g = _single_conv(c_in=64, c_out=64, size=28)
    single_arch = dataclasses.replace(GENERATED, window_buffers=1, fill_in_stream=False)
    single = estimate(g, "a10", HwConfig(16, 16, 7), arch=single_arch).layers[0].cycles
    merged = estimate(g, "a10", HwConfig(16, 16, 7)).layers[0].cycles
    double = estimate(g, "a10", HwConfig(16, 16, 7), arch=PIPECNN).layers[0].cycles
    assert merged < single and double < single


def test_dense_is_a_conv_over_the_whole_map():
    w = np.broadcast_to(np.float32(0), (10, 32 * 4 * 4))
    dense = Dense(name="fc", inputs=["input"], in_shapes=[(32, 4, 4)], out_shape=(10,), weight=w,
                  bias=np.zeros(10, np.float32))
    g = Graph("fc", (32, 4, 4), [dense], "fc")
    e = estimate(g, "a10", HwConfig(8, 4, 7))
    # CV=4, MB=3, kernel 4x4 with one output pixel: weight load 64 vectors, window 64, stream 64
    blocks, vecs = 3, 4 * 4 * 4
    expected = blocks * (3 * vecs + 2 * L.LOAD_LATENCY_CYCLES) + L.LAUNCH_US * e.fmax_mhz
    assert e.layers[0].cycles == pytest.approx(expected)
    assert lower(g).layers[0].kh == 4
    # fc_batch 4: per block one weight load, window 0's fill, then the 4 images' windows in one
    # sequence, each step max(next fill 64, stream 64) = 64 cycles; launched once per batch
    b4 = estimate(g, "a10", HwConfig(8, 4, 7, fc_batch=4))
    per_call = blocks * (vecs + vecs + 4 * vecs + 2 * L.LOAD_LATENCY_CYCLES) + L.LAUNCH_US * b4.fmax_mhz
    assert b4.layers[0].cycles == pytest.approx(per_call / 4)


def test_more_lanes_more_dsps_fewer_compute_cycles():
    g = GRAPHS["vgg16"]
    prev = None
    for lanes in (4, 8, 16, 32, 64, 128):
        e = estimate(g, "s10", HwConfig(16, lanes, 7))
        dsp = e.resources.used["dsp"]
        compute = sum(c.compute_cycles for c in L.layer_costs(lower(g), e.config, e.widths,
                                                              e.board.mem_bandwidth_gbs, e.fmax_mhz, GENERATED))
        if prev:
            assert dsp > prev[0] and compute < prev[1] and e.total_ms < prev[2]
            assert e.resources.used["alm"] > prev[3]
        prev = (dsp, compute, e.total_ms, e.resources.used["alm"])


def test_more_vec_more_dsps_and_faster_on_deep_layers():
    g = GRAPHS["vgg16"]
    a = estimate(g, "a10", HwConfig(4, 32, 7))
    b = estimate(g, "a10", HwConfig(16, 32, 7))
    assert b.resources.used["dsp"] > a.resources.used["dsp"] and b.total_ms < a.total_ms


def test_dsp_packing_per_family():
    g = GRAPHS["alexnet"]
    a10 = estimate(g, "a10", HwConfig(8, 64, 7)).resources.kernels["conv_core"]["dsp"]
    cv = estimate(g, "de1soc", HwConfig(8, 8, 7)).resources.kernels["conv_core"]["dsp"]
    assert a10 == 8 * 64 // 2 and cv == 64


def test_fits_and_does_not_fit():
    g = GRAPHS["alexnet"]
    small = estimate(g, "de1soc", HwConfig(4, 4, 7))
    assert small.fits
    huge = estimate(g, "de1soc", HwConfig(64, 128, 7))
    assert not huge.fits and "dsp" in huge.resources.over() and huge.to_dict()["fits"] is False
    roomy = estimate(g, "a10", HwConfig(16, 32, 7))
    assert roomy.fits
    pct = max(roomy.resources.pct().values()) / 100
    assert not estimate(g, "a10", HwConfig(16, 32, 7), margin=1 - pct + 0.01).fits
    with pytest.raises(ValueError):
        estimate(g, "a10", margin=1.5)


def test_ram_block_modes():
    assert ram_blocks_for(40, 512, 20480) == 1
    assert ram_blocks_for(41, 512, 20480) == 2
    assert ram_blocks_for(1, 16384, 20480) == 1
    assert ram_blocks_for(64, 1152, 10240) == 10  # 256x40 mode: 2 wide x 5 deep
    assert ram_blocks_for(0, 100, 20480) == 0


def test_wider_data_costs_bytes_and_logic():
    g = GRAPHS["alexnet"]
    fmt16 = {"input": {"bits": 8}, "layers": {"fc6": {"w_bits": 16, "a_bits": 8}}}
    e8 = estimate(g, "de1soc", HwConfig(8, 8, 7))
    e16 = estimate(g, "de1soc", HwConfig(8, 8, 7), fmt16)
    assert e16.widths.mult_bits == 16 and e8.widths.mult_bits == 8
    fc8 = {layer.name: layer for layer in e8.layers}["fc6"]
    fc16 = {layer.name: layer for layer in e16.layers}["fc6"]
    assert fc16.bytes > 1.9 * fc8.bytes and fc16.ms > fc8.ms
    assert e16.resources.used["alm"] > e8.resources.used["alm"]
    with pytest.raises(FormatsError):
        estimate(g, "a10", None, {"input": {"bits": 8}, "layers": {"fc6": {"w_bits": 24, "a_bits": 8}}})


def test_formats_object_interface():
    class Q:
        def __init__(self, bits):
            self.bits = bits

    class LF:
        def __init__(self, w, a):
            self.weight, self.out = (Q(w) if w else None), Q(a)

    class F:
        input = Q(8)
        layers = {"conv1": LF(8, 12), "pool1": LF(None, 12)}

    assert estimate(GRAPHS["alexnet"], "a10", None, F()).widths.mult_bits == 16


def test_fc_batch_amortises_weights_per_image():
    g = GRAPHS["vgg16"]
    one = {layer.name: layer for layer in estimate(g, "a10", HwConfig(16, 32, 7, fc_batch=1)).layers}
    many = {layer.name: layer for layer in estimate(g, "a10", HwConfig(16, 32, 7, fc_batch=16)).layers}
    assert many["fc6"].ms < one["fc6"].ms / 3 and many["fc6"].bytes < one["fc6"].bytes / 8
    assert many["conv3_1"].ms == pytest.approx(one["conv3_1"].ms)
    assert one["fc6"].bound == "memory"


def test_fmax_override_scales_time():
    g = GRAPHS["alexnet"]
    a = estimate(g, "a10", HwConfig(16, 32, 7, fmax_mhz=100.0))
    b = estimate(g, "a10", HwConfig(16, 32, 7, fmax_mhz=200.0))
    assert a.fmax_mhz == 100 and b.total_ms < a.total_ms


def test_config_accepts_dict_and_errors_are_config_errors():
    g = GRAPHS["alexnet"]
    assert estimate(g, "a10", {"lane_num": 16}).config.lane_num == 16
    with pytest.raises(ConfigError, match="unknown board"):
        estimate(g, "nope")
    with pytest.raises(ConfigError, match="unknown key"):
        estimate(g, "a10", {"simd": 4})


def test_deterministic_and_fast():
    g = vgg16()
    configs = [HwConfig(v, n, gp) for v in (4, 8, 16) for n in (8, 32, 64) for gp in (1, 7)]
    first = [estimate(g, "a10", c).to_dict() for c in configs]
    t0 = time.perf_counter()
    again = [estimate(g, "a10", c).to_dict() for c in configs]
    per_call = (time.perf_counter() - t0) / len(configs)
    assert again == first
    assert per_call < 3e-3  # target < 1 ms; slack for slow CI machines


def test_alexnet_shapes_are_caffe():
    g = alexnet()
    assert g.layer("conv1").out_shape == (96, 55, 55) and g.layer("fc6").in_shape == (256, 6, 6)
    assert g.total_macs() == pytest.approx(724e6, rel=0.01)
    assert vgg16().total_macs() == pytest.approx(15.47e9, rel=0.01)
    assert NETS["resnet18"]().total_macs() == pytest.approx(1.81e9, rel=0.01)
    assert NETS["mobilenet_v2"]().total_macs() == pytest.approx(301e6, rel=0.01)


def test_bare_per_layer_bits_mapping():
    g = GRAPHS["alexnet"]
    assert estimate(g, "a10", None, {"conv1": {"w_bits": 8, "a_bits": 8}}).widths.mult_bits == 8
    assert estimate(g, "a10", None, {"conv1": {"w_bits": 6, "a_bits": 10}}).widths.mult_bits == 16
    with pytest.raises(FormatsError, match="no per-layer formats"):
        estimate(g, "a10", None, {"layers": {}})


@pytest.mark.parametrize("board", sorted(list_boards()))
def test_board_defaults_fit_the_classic_nets(board):
    for net in ("alexnet", "vgg16", "resnet18"):
        e = estimate(GRAPHS[net], board)
        assert e.fits, (net, e.resources.pct())


def test_generated_ports_grow_with_lanes_and_vec():
    g = GRAPHS["resnet18"]
    small = estimate(g, "a10", HwConfig(8, 16, 7)).resources.kernels
    wide = estimate(g, "a10", HwConfig(16, 64, 7)).resources.kernels
    assert wide["mem_write"]["alm"] > small["mem_write"]["alm"]  # one narrow store port per lane
    assert wide["eltwise"]["alm"] > small["eltwise"]["alm"]  # 5 x V element ports
    assert "lrn" not in small and "dw_conv" not in small and "channels" in small


def test_pipecnn_memwrite_stores_one_lane_per_cycle():
    # VGG conv1_1 on VEC 16 x LANE 80: 9 MAC steps per pixel but 80 cycles to store its lanes
    g = GRAPHS["vgg16"]
    costs = L.layer_costs(lower(g), HwConfig(16, 80, 7), estimate(g, "a10").widths, 19.2, 218.0, PIPECNN)
    conv11 = costs[0]
    assert conv11.compute_cycles == 224 * 224 * 9
    assert conv11.cycles > 224 * 224 * 80
    # conv1_2 feeds a max pool that runs in the stream: only the pooled pixels are stored
    assert lower(g).layers[1].written_pixels == 112 * 112
