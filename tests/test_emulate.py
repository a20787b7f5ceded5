"""Emulator mode: generated projects run bit-exact on the Intel FPGA Emulation Platform.

Every test here needs the emulation runtime (`make setup`) and is skipped, with the
reason, only when it is missing. Runs are bounded by timeouts (deadlocks hang).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cnn2gate.cli import main
from cnn2gate.emulate import (EmulationTimeout, RuntimeMissing, build_host, emulate_project, emulator_available,
                              opencl_env)
from cnn2gate.emulate import runtime
from cnn2gate.frontend import load_model
from cnn2gate.ir import GRAPH_INPUT
from cnn2gate.pipeline import compile_project
from cnn2gate.quant import quantize, with_weight_bits
from cnn2gate.zoo import Builder

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits"
_OK, _WHY = emulator_available()
needs_emulator = pytest.mark.skipif(not _OK, reason=f"Intel FPGA emulation runtime unavailable: {_WHY}")
pytestmark = pytest.mark.emulator

#: two configs per model: one where every channel count is padded (3 lanes, 8-wide vectors)
CONFIGS = {
    "v4l4": {"vec_size": 4, "lane_num": 4, "conv_gp_size_x": 3},
    "v8l3": {"vec_size": 8, "lane_num": 3, "conv_gp_size_x": 5},
}
TIMEOUT = 240


def all_kinds_graph():
    """Every layer kind and addressing mode: LRN, avg/max/global pools with padding, grouped,
    depthwise (relu6), leaky, 3-input add, nested concat, dilation, dense."""
    b = Builder("mix", (3, 9, 9), seed=2)
    x = b.conv(GRAPH_INPUT, 6, 3, act="relu")
    x = b.lrn(x, size=3)
    p = b.pool(x, "avg", 3, stride=1, pad=1)
    m = b.pool(x, "max", 3, stride=2, pad=1)
    y = b.conv(p, 10, 3, groups=2, stride=2, act="leaky")
    d = b.conv(y, 10, 3, groups=10, act="relu6")
    z = b.conv(m, 10, 1, act="none")
    a = b.add(d, z, y, act="relu")
    c = b.concat(a, z)
    c2 = b.conv(c, 7, 3, dilation=2, pad=2, act="relu")
    c3 = b.concat(c2, c)
    gp = b.pool(c3, "global_avg")
    b.dense(gp, 5)
    return b.build()


def activations_graph():
    """Standalone activations (kept out of all_kinds_graph: their tied formats would move its
    calibration): writing into and reading from concat views at an offset, one after
    another, and on a vector whose dense producer has other readers."""
    b = Builder("acts", (5, 7, 6), seed=3)
    s0 = b.conv(GRAPH_INPUT, 5, 3, act="none")
    x = b.conv(b.add(b.act(s0, act="leaky", alpha=0.2), s0), 6, 3, act="none")
    y = b.conv(x, 5, 1, act="none")
    c = b.concat(y, b.act(x, act="relu6"))
    r = b.act(b.act(y, act="leaky", alpha=0.3), act="relu")  # reads y inside c's buffer at offset 0
    s = b.act(c, act="relu")
    t = b.conv(b.concat(r, s), 6, 3, act="none")
    v = b.dense(b.pool(t, "max", 2), 9, act="none")
    w = b.add(b.dense(b.act(v, act="relu"), 9, act="none"), v)
    b.dense(w, 4)
    return b.build()


@needs_emulator
@pytest.mark.parametrize("cfg", sorted(CONFIGS))
def test_standalone_activations_bit_exact(tmp_path, cfg):
    g = activations_graph()
    assert sum(layer.kind == "act" for layer in g) == 6
    out = compile_project(g, quantize(g), "a10", CONFIGS[cfg], tmp_path / "p")
    x = np.random.default_rng(4).uniform(-1, 1, (3,) + g.input_shape)
    res = emulate_project(out, x, timeout=TIMEOUT, dump_dir=tmp_path / "dump")
    assert res.passed, res.summary()
    assert res.images == 3 and res.elements == 12
    assert len(res.layer_mismatches) == len(g.layers) and not any(res.layer_mismatches.values())


@needs_emulator
@pytest.mark.parametrize("first", ["max", "act"])
def test_first_layer_off_the_conv_chain_sees_each_image(tmp_path, first):
    # the input is written on one kernel's queue and read by another's: each image must
    # reach the first layer (it used to see the previous image's input now and then)
    b = Builder(f"first_{first}", (4, 8, 8), seed=3)
    x = b.act(GRAPH_INPUT, act="relu") if first == "act" else b.pool(GRAPH_INPUT, "max", 2)
    b.conv(x, 6, 3)
    g = b.build()
    out = compile_project(g, quantize(g), "a10", CONFIGS["v4l4"], tmp_path / "p")
    images = np.random.default_rng(0).uniform(-1, 1, (6, 4, 8, 8))
    for _ in range(2):
        res = emulate_project(out, images, timeout=TIMEOUT)
        assert res.passed, res.summary()


@needs_emulator
@pytest.mark.parametrize("cfg", sorted(CONFIGS))
def test_all_layer_kinds_bit_exact(tmp_path, cfg):
    g = all_kinds_graph()
    out = compile_project(g, quantize(g), "a10", CONFIGS[cfg], tmp_path / "p")
    x = np.random.default_rng(3).uniform(-1, 1, (3,) + g.input_shape)
    # the hardware channel depth, as generated (other tests use deep emulation channels)
    res = emulate_project(out, x, timeout=TIMEOUT, dump_dir=tmp_path / "dump", channel_depth=None)
    assert res.passed, res.summary()
    assert res.images == 3 and res.elements == 15
    assert len(res.layer_mismatches) == len(g.layers) and not any(res.layer_mismatches.values())
    assert "warning" not in res.stderr.lower(), res.stderr


@needs_emulator
@pytest.mark.skipif(not (DIGITS / "digits_cnn.onnx").exists(), reason="examples/digits not generated")
@pytest.mark.parametrize("cfg", sorted(CONFIGS))
def test_digits_cnn_bit_exact_and_accurate(tmp_path, cfg):
    g = load_model(DIGITS / "digits_cnn.onnx")
    fm = quantize(g, np.load(DIGITS / "calib_x.npy"))
    out = compile_project(g, fm, "a10", CONFIGS[cfg], tmp_path / "p")
    assert emulate_project(out, timeout=TIMEOUT).passed
    # the whole held-out split (360 images) through the emulated kernels, one host process
    x, y = np.load(DIGITS / "test_x.npy"), np.load(DIGITS / "test_y.npy")
    res = emulate_project(out, x, timeout=TIMEOUT)
    assert res.passed, res.summary()
    assert res.elements == len(x) * 10
    assert np.mean(res.outputs.reshape(len(x), 10).argmax(axis=1) == y) >= 0.95


def batched_dense_graph():
    """Dense layers on a conv/pool map, on a vector and on the graph input's buffer."""
    b = Builder("fcb", (3, 6, 6), seed=5)
    x = b.conv(GRAPH_INPUT, 5, 3, act="relu")
    p = b.pool(x, "max", 2)
    d = b.dense(p, 11, act="relu")
    d = b.dense(d, 7, act="leaky")
    b.dense(d, 4)
    return b.build()


@needs_emulator
@pytest.mark.parametrize("fc_batch,images", [(1, 3), (4, 5), (16, 17)])
def test_batched_dense_layers_bit_exact(tmp_path, fc_batch, images):
    """fc_batch images per weight pass, a last partial group included, image by image
    against the simulator (every layer's dump too)."""
    g = batched_dense_graph()
    cfg = {"vec_size": 4, "lane_num": 3, "conv_gp_size_x": 2, "fc_batch": fc_batch}
    out = compile_project(g, quantize(g), "a10", cfg, tmp_path / "p")
    x = np.random.default_rng(7).uniform(-1, 1, (images,) + g.input_shape)
    res = emulate_project(out, x, timeout=TIMEOUT, dump_dir=tmp_path / "dump")
    assert res.passed, res.summary()
    assert res.images == images and res.elements == images * 4
    assert len(res.layer_mismatches) == len(g.layers) and not any(res.layer_mismatches.values())


MODELS = ["lenet5", "alexnet", "vgg16", "resnet18", "mobilenetv2"]


@pytest.fixture(scope="module")
def reference_models(example_model):
    return example_model


@needs_emulator
@pytest.mark.parametrize("cfg", sorted(CONFIGS))
@pytest.mark.parametrize("name", MODELS)
def test_model_matrix_bit_exact(tmp_path, reference_models, name, cfg):
    g, fm = reference_models(name)
    out = compile_project(g, fm, "a10", CONFIGS[cfg], tmp_path / "p")
    res = emulate_project(out, timeout=TIMEOUT)
    assert res.passed, res.summary()
    assert res.elements == int(np.prod(g.output_shape))
    assert "build log" not in res.stderr, res.stderr  # printed only with warnings or errors


@needs_emulator
def test_hostile_names_still_build_and_run(tmp_path):
    from test_codegen import hostile_graph

    g = hostile_graph()
    out = compile_project(g, quantize(g), "a10", CONFIGS["v8l3"], tmp_path / "p")
    res = emulate_project(out, timeout=TIMEOUT)
    assert res.passed, res.summary()


@needs_emulator
def test_host_compiles_without_warnings(tmp_path):
    g = all_kinds_graph()
    out = compile_project(g, quantize(g), "a10", CONFIGS["v4l4"], tmp_path / "p")
    exe = build_host(out)  # -Wall -Wextra -Werror
    assert exe.exists()


@needs_emulator
def test_mismatch_and_first_bad_layer_are_reported(tmp_path):
    g = all_kinds_graph()
    out = compile_project(g, quantize(g), "a10", CONFIGS["v4l4"], tmp_path / "p")
    # a corrupted weight in the third conv (conv4) shows up first in that layer
    wfile = out / "weights" / "L004_conv4.w.bin"
    original = wfile.read_bytes()
    data = bytearray(original)
    nz = next(i for i, v in enumerate(data) if v)
    data[nz] = (data[nz] + 64) % 256
    wfile.write_bytes(bytes(data))
    res = emulate_project(out, timeout=TIMEOUT, dump_dir=tmp_path / "dump")
    assert res.first_bad_layer == "L004_conv4"
    assert all(res.layer_mismatches[f"L00{i}_{n}"] == 0 for i, n in enumerate(["conv0", "lrn1", "pool2", "pool3"]))
    assert not res.passed
    # the CLI turns a difference into exit status 1 and a FAIL line
    wfile.write_bytes(original)
    golden = out / "golden" / "output.npy"
    want = np.load(golden)
    want.flat[0] += 1
    np.save(golden, want)
    r = CliRunner().invoke(main, ["emulate", str(out), "--timeout", str(TIMEOUT)])
    assert r.exit_code == 1 and "FAIL" in r.output


@needs_emulator
def test_deadlock_is_killed_by_the_timeout(tmp_path):
    g = all_kinds_graph()
    out = compile_project(g, quantize(g), "a10", CONFIGS["v4l4"], tmp_path / "p")
    cl = out / "device" / "cnn2gate.cl"
    src = cl.read_text()
    # conv_core waits for one data vector more than mem_read ever sends
    hung = src.replace("for (int k = 0; k < k_len; k++) {\n                vec_t d = read_channel_intel",
                       "for (int k = 0; k <= k_len; k++) {\n                vec_t d = read_channel_intel")
    assert hung != src
    cl.write_text(hung)
    with pytest.raises(EmulationTimeout, match="5 s timeout"):
        emulate_project(out, timeout=5)


@needs_emulator
@pytest.mark.skipif(not (DIGITS / "digits_cnn.onnx").exists(), reason="examples/digits not generated")
def test_cli_compile_then_emulate_with_labels(tmp_path):
    out = tmp_path / "proj"
    r = CliRunner().invoke(main, ["compile", str(DIGITS / "digits_cnn.onnx"), "--calib", str(DIGITS / "calib_x.npy"),
                                  "--config", str(_write(tmp_path / "hw.json", '{"vec_size": 2, "lane_num": 6}')),
                                  "-o", str(out)])
    assert r.exit_code == 0, r.output
    x = tmp_path / "x.npy"
    y = tmp_path / "y.npy"
    np.save(x, np.load(DIGITS / "test_x.npy")[:16])
    np.save(y, np.load(DIGITS / "test_y.npy")[:16])
    r = CliRunner().invoke(main, ["emulate", str(out), "--input", str(x), "--labels", str(y)])
    assert r.exit_code == 0, r.output
    assert "PASS: 160 of 160" in r.output and "top-1 accuracy (emulated)" in r.output


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_missing_runtime_names_make_setup(monkeypatch, tmp_path):
    monkeypatch.delenv("OCL_ICD_VENDORS", raising=False)
    monkeypatch.setattr(runtime.sys, "prefix", str(tmp_path))
    with pytest.raises(RuntimeMissing, match="make setup"):
        opencl_env()
    ok, why = emulator_available()
    assert not ok and "make setup" in why


def test_runtime_found_next_to_the_venv(monkeypatch, tmp_path):
    lib = tmp_path / "lib" / runtime.EMU_LIB
    lib.parent.mkdir()
    lib.write_bytes(b"")
    monkeypatch.delenv("OCL_ICD_VENDORS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(runtime.sys, "prefix", str(tmp_path))
    env = opencl_env()
    icd = Path(env["OCL_ICD_VENDORS"]) / "intel_fpga_emu.icd"
    assert icd.read_text().strip() == str(lib)


@needs_emulator
def test_wide_formats_use_short_storage(tmp_path):
    g = all_kinds_graph()
    fm = quantize(g, bits=12, weight_bits=10)
    out = compile_project(g, fm, "a10", CONFIGS["v8l3"], tmp_path / "p")
    assert "typedef short data_t;" in (out / "device" / "cnn2gate.cl").read_text()
    x = np.random.default_rng(4).uniform(-1, 1, (2,) + g.input_shape)
    res = emulate_project(out, x, timeout=TIMEOUT, dump_dir=tmp_path / "dump")
    assert res.passed, res.summary()
    assert not any(res.layer_mismatches.values())


@needs_emulator
@pytest.mark.parametrize("cfg,widths", [("v4l4", (2, 4, 6, 8, 3, 5)), ("v8l3", (5, 3, 2, 6, 4, 8)),
                                        ("v8l3", (12, 2, 16, 5, 3, 6))], ids=["v4l4", "v8l3", "v8l3-short"])
def test_packed_weights_at_mixed_widths(tmp_path, cfg, widths):
    """Every weighted layer (conv, grouped, depthwise, dilated, dense) at its own width: the
    weight files hold packed words and the kernels unpack them bit-exactly."""
    g = all_kinds_graph()
    weighted = [layer.name for layer in g.layers if layer.has_weights]
    bits = dict(zip(weighted, widths))
    assert len(bits) == len(widths)
    fm = with_weight_bits(g, quantize(g), bits)
    out = compile_project(g, fm, "a10", CONFIGS[cfg], tmp_path / "p")
    assert "int unpack_weight(" in (out / "device" / "cnn2gate.cl").read_text()
    h = (out / "host" / "layers.h").read_text()
    assert all(f"L.w_bits = {b};" in h for b in widths)
    x = np.random.default_rng(6).uniform(-1, 1, (3,) + g.input_shape)
    res = emulate_project(out, x, timeout=TIMEOUT, dump_dir=tmp_path / "dump")
    assert res.passed, res.summary()
    assert not any(res.layer_mismatches.values()), res.layer_mismatches


def edge_graph():
    """Rarer shapes: depthwise with channel multiplier 2 (grouped path), asymmetric padding,
    avg pool counting padding, fused activations on pool/add, 1x1 stride 2, dense on a vector,
    a dead branch."""
    b = Builder("edges", (5, 7, 6), seed=9)
    x = b.conv(GRAPH_INPUT, 10, 3, groups=5, pad=(1, 0, 2, 1), act="relu")
    p = b.pool(x, "avg", 3, stride=2, pad=1, count_include_pad=True, act="relu")
    b.pool(x, "max", 2, stride=2, act="relu")  # a branch nothing consumes still runs and is dumped
    s = b.conv(x, 10, 1, stride=2, pad=0, act="none")
    a = b.add(p, s, act="leaky")
    d = b.dense(a, 9, act="relu")
    b.dense(d, 4, act="leaky")
    return b.build()


@needs_emulator
@pytest.mark.parametrize("cfg", sorted(CONFIGS))
def test_edge_cases_bit_exact(tmp_path, cfg):
    g = edge_graph()
    out = compile_project(g, quantize(g), "a10", CONFIGS[cfg], tmp_path / "p")
    x = np.random.default_rng(5).uniform(-1, 1, (4,) + g.input_shape)
    res = emulate_project(out, x, timeout=TIMEOUT, dump_dir=tmp_path / "dump")
    assert res.passed, res.summary()
    assert not any(res.layer_mismatches.values()), res.layer_mismatches


@needs_emulator
@pytest.mark.skipif(not (DIGITS / "digits_cnn.onnx").exists(), reason="examples/digits not generated")
def test_mixed_width_benchmark_on_digits(tmp_path):
    """benchmarks/mixed_width_emulation.py on the digits CNN: every layer at its own weight
    and activation width (char storage with DSP packing, and short with 16-bit layers),
    fc_batch 1, 4 and 16, every element and every layer's dump as the simulator."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "mixed_width_emulation.py"), "--only", "digits",
                           "--timeout", str(TIMEOUT), "--keep", str(tmp_path / "p")],
                          capture_output=True, text=True, timeout=6 * TIMEOUT, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == "bit-exact designs: 6/6"
    rows = [line.split() for line in lines if line.startswith("digits ")]
    assert len(rows) == 6 and all("6/6" in r for r in rows)
    assert sum("pk5" in r for r in rows) == 3 and sum("short" in r for r in rows) == 3
    assert sorted(int(r[r.index("pk5" if "pk5" in r else "short") + 1]) for r in rows) == [1, 1, 4, 4, 16, 16]
