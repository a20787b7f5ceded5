"""DenseNet-121, the two U-Nets and the tiny-YOLOv3 detector from examples/models.py, CI-sized:
both exporters against onnxruntime on every output, 8-bit simulation and the a10 estimate, and
one emulator run each (bit-exact on every output element)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root holds examples/

from examples import models  # noqa: E402
from cnn2gate.emulate import emulate_project  # noqa: E402
from cnn2gate.frontend import load_model  # noqa: E402
from cnn2gate.hw import estimate  # noqa: E402
from cnn2gate.ir.reference import execute  # noqa: E402
from cnn2gate.pipeline import compile_project  # noqa: E402
from cnn2gate.sim import simulate, sqnr_db  # noqa: E402
from sim_checks import emulator_test  # noqa: E402

NAMES = ("densenet121", "unet", "unet_upsample", "tiny_yolov3")
TOL = 1e-4
CONFIG = {"vec_size": 4, "lane_num": 4, "conv_gp_size_x": 3}
# 8-bit SQNR (dB) of each graph output against the float executor, synthetic calibration, random weights.
# Measured: densenet121 27.3; unet 33.4; unet_upsample 41.5; tiny_yolov3 21.8 (stride 32) and 25.3 (stride 16).
SQNR_FLOOR = {"densenet121": 20.0, "unet": 25.0, "unet_upsample": 25.0, "tiny_yolov3": 15.0}


def relative_errors(path, g, x: np.ndarray) -> list[float]:
    """max |IR - ORT| / max |ORT| per graph output, in the shape the model declares."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})
    got = execute(g, x)
    assert len(want) == len(g.outputs)
    errs = []
    for name, w in zip(g.outputs, want):
        y = g.user_output(name, got[name])
        assert y.shape == w.shape, name
        errs.append(float(np.abs(y - w).max() / np.abs(w).max()))
    return errs


@pytest.mark.parametrize("exporter", models.EXPORTERS)
@pytest.mark.parametrize("name", NAMES)
def test_parses_and_matches_onnxruntime(name, exporter):
    if exporter == "dynamo":
        pytest.importorskip("onnxscript")
    path = models.export(name, exporter=exporter, **models.SMALL[name])
    g = load_model(path)
    x = np.random.default_rng(0).standard_normal((1,) + g.input_shape).astype(np.float32)
    assert max(relative_errors(path, g, x)) <= TOL
    kinds = [layer.kind for layer in g]
    s = models.SMALL[name]["input_size"]
    if name == "tiny_yolov3":
        # two raw heads (no box decoding); the zero Pad before the stride-1 pool is a 1x1 avg pool
        assert [g.layer(o).out_shape for o in g.outputs] == [(255, s // 32, s // 32), (255, s // 16, s // 16)]
        (pad,) = [layer for layer in g if layer.kind == "pool" and layer.mode == "avg"]
        assert pad.kernel == (1, 1) and pad.pads == (0, 0, 1, 1) and pad.count_include_pad
        assert kinds.count("resize") == kinds.count("concat") == 1
    elif name.startswith("unet"):
        assert g.output_shape == (1, s, s) and g.layer(g.output).fn == "sigmoid"
        assert kinds.count("zero_insert" if name == "unet" else "resize") == 4 and kinds.count("concat") == 4
    else:  # every layer output of a block joins several concats, each extending the one before: they
        # nest (ir/copies.py), so no tensor needs a copy
        assert not any(layer.name.endswith("_copy") for layer in g) and "act" not in kinds
        n, trans = sum(models._DENSENET121_BLOCKS), len(models._DENSENET121_BLOCKS) - 1
        # two convs per dense layer, one per transition, the stem; each pre-activation BatchNormalization
        # reads a concat, so it cannot fold and is a per-channel scale (1x1 depthwise conv)
        assert kinds.count("conv") == 2 * n + trans + 1 + (n + trans + 1)


@pytest.mark.parametrize("name,bad", [("densenet121", 16), ("unet", 40), ("unet_upsample", 8), ("tiny_yolov3", 48)])
def test_builders_refuse_input_sizes_their_pools_cannot_divide(name, bad):
    with pytest.raises(ValueError, match="input_size"):
        models.MODELS[name](width=0.125, input_size=bad)


@pytest.mark.parametrize("name", NAMES)
def test_8bit_simulation_and_a10_estimate(example_model, name):
    g, fm = example_model(name)
    x = np.random.default_rng(1).uniform(-1, 1, (2,) + g.input_shape)
    res, ref = simulate(g, fm, x), execute(g, x)
    for out in g.outputs:
        assert sqnr_db(ref[out], res.floats[out]) > SQNR_FLOOR[name], out
    est = estimate(g, "a10", None, fm)
    assert est.fits and est.total_ms > 0


@emulator_test
@pytest.mark.parametrize("name", NAMES)
def test_bit_exact_in_emulator(tmp_path, example_model, name):
    g, fm = example_model(name)
    out = compile_project(g, fm, "a10", CONFIG, tmp_path / "p")
    res = emulate_project(out, timeout=300)
    assert res.passed, res.summary()
    assert res.elements == sum(int(np.prod(g.layer(o).out_shape)) for o in g.outputs)


def test_coverage_benchmark_prints_a_row_and_its_headline(capsys, monkeypatch, tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import model_coverage
    finally:
        sys.path.pop(0)
    monkeypatch.setattr(model_coverage, "CACHE_DIR", tmp_path)
    assert model_coverage.main(["--models", "tiny_yolov3", "--exporters", "legacy", "--width", "0.125",
                                "--size", "64", "--images", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    (row,) = [line for line in lines if line.startswith("| tiny_yolov3 ")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:3] == ["tiny_yolov3", "legacy", "3x64x64"] and cells[3].startswith("22 (")
    assert float(cells[4]) <= TOL and len(cells[5].split(",")) == 2  # one SQNR per head
    assert lines[-1] == "rows within 1e-4 of onnxruntime: 1/1"
