"""The example networks (examples/models.py) and the committed digits model."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples import models  # noqa: E402

DIGITS = ROOT / "examples" / "digits"


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _ops(path: Path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


@pytest.mark.parametrize("name", sorted(models.SMALL))
def test_small_variant_exports_and_runs(name):
    params = models.SMALL[name]
    info = models.MODELS[name]
    path = models.export(name, **params)
    assert path.is_file() and path.suffix == ".onnx"
    sess = _session(path)
    assert [i.name for i in sess.get_inputs()] == ["input"]
    assert [o.name for o in sess.get_outputs()] == list(info.outputs) and info.outputs[0] == "output"
    x = np.random.default_rng(0).random(info.input_shape(params["input_size"]), dtype=np.float32)
    ys = sess.run(None, {"input": x})
    if info.task == "classify":
        assert ys[0].shape == (1, info.num_classes)
    elif info.task == "segment":  # one map per class at the input's size
        assert ys[0].shape == (1, info.num_classes, params["input_size"], params["input_size"])
    for y in ys:
        assert np.isfinite(y).all() and y.std() > 1e-3
    if info.framework == "torch":
        with torch.no_grad():
            ref = info(**params)(torch.from_numpy(x))
        for y, r in zip(ys, ref if isinstance(ref, tuple) else (ref,)):
            np.testing.assert_allclose(y, r.numpy(), rtol=1e-4, atol=1e-4)


def test_export_is_cached_and_leaves_no_temp_files(tmp_path):
    first = models.export("lenet5", cache_dir=tmp_path)
    stamp = first.stat().st_mtime_ns
    again = models.export("lenet5", cache_dir=tmp_path)
    assert again == first and again.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name]
    other = models.export("lenet5", width=0.5, input_size=28, cache_dir=tmp_path)
    assert other != first


def test_alexnet_lrn_is_one_onnx_node_with_both_exporters(tmp_path):
    params = models.SMALL["alexnet"]
    x = np.random.default_rng(1).random(models.MODELS["alexnet"].input_shape(params["input_size"]), dtype=np.float32)
    with torch.no_grad():
        ref = models.alexnet(**params)(torch.from_numpy(x)).numpy()
    for exporter in models.EXPORTERS:
        path = models.export("alexnet", exporter=exporter, cache_dir=tmp_path, **params)
        graph = onnx.load(str(path)).graph
        lrn = [n for n in graph.node if n.op_type == "LRN"]
        assert len(lrn) == 2
        assert {"Pow", "AveragePool", "If"}.isdisjoint(n.op_type for n in graph.node)
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in lrn[0].attribute}
        assert attrs["size"] == 5 and attrs["alpha"] == pytest.approx(1e-4) and attrs["beta"] == pytest.approx(0.75)
        (y,) = _session(path).run(None, {"input": x})
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("exporter", models.EXPORTERS)
def test_keep_bn_keeps_batchnorm_nodes(exporter):
    params = models.SMALL["resnet18"]
    folded = models.export("resnet18", **params)  # legacy, BN folded by the exporter
    kept = models.export("resnet18", exporter=exporter, keep_bn=True, **params)
    assert "BatchNormalization" not in _ops(folded)
    assert "BatchNormalization" in _ops(kept)
    assert _ops(kept) <= {"Conv", "BatchNormalization", "Relu", "MaxPool", "Add", "GlobalAveragePool", "ReduceMean",
                          "Flatten", "Reshape", "Gemm"}
    x = np.random.default_rng(2).random((1, 3, 32, 32), dtype=np.float32)
    np.testing.assert_allclose(_session(kept).run(None, {"input": x})[0], _session(folded).run(None, {"input": x})[0],
                               rtol=1e-4, atol=1e-4)


def test_batchnorm_statistics_are_randomized():
    bns = [m for m in models.resnet18(width=0.25, input_size=32).modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns
    for bn in bns:
        assert bn.running_mean.abs().max() > 0 and not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
        assert not torch.allclose(bn.weight, torch.ones_like(bn.weight))


# Published parameter counts at full size (torch modules only, nothing exported).
FULL_SIZE_PARAMS = {
    "lenet5": (61_706, 0.0),
    "alexnet": (60.97e6, 0.01),
    "vgg16": (138.36e6, 0.001),
    "resnet18": (11.69e6, 0.001),
    "mobilenetv2": (3.50e6, 0.002),
    "mobilenetv3_small": (2.54e6, 0.002),
    "mobilenetv3_large": (5.48e6, 0.001),
    "efficientnet_b0": (5.29e6, 0.001),
    "densenet121": (7_978_856, 0.0),  # torchvision's densenet121 count
    "tiny_yolov3": (8.85e6, 0.001),  # darknet yolov3-tiny.cfg, 80 classes
}


@pytest.mark.parametrize("name", sorted(FULL_SIZE_PARAMS))
def test_full_size_parameter_count(name):
    expected, rel = FULL_SIZE_PARAMS[name]
    with torch.device("meta"):  # shapes only, no memory, no random init
        count = models.count_params(models.MODELS[name]())
    assert count == pytest.approx(expected, rel=rel, abs=0 if rel else 0.5)


def test_builders_are_deterministic_and_reject_tiny_inputs():
    a, b = models.lenet5(seed=3), models.lenet5(seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    for name in ("lenet5", "alexnet", "vgg16", "resnet18", "mobilenetv2"):
        with pytest.raises(ValueError):
            models.MODELS[name](input_size=8)


def test_edge_builders_reject_tiny_inputs_and_skip_redundant_expansions():
    for name in ("mobilenetv3_small", "mobilenetv3_large", "efficientnet_b0"):
        with pytest.raises(ValueError):
            models.MODELS[name](input_size=16)
    # a block whose expansion equals its input has no 1x1 expand conv (MobileNetV3-Large's first block, MBConv1)
    for name in ("mobilenetv3_large", "efficientnet_b0"):
        net = models.MODELS[name](width=0.25, input_size=32)
        first = next(m for m in net.modules() if isinstance(m, models.MBConv))
        assert first.body[0].groups == first.body[0].in_channels > 1


def test_command_line_prints_path(tmp_path, capsys):
    assert models.main(["lenet5", "--width", "0.5", "--cache-dir", str(tmp_path)]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path.is_file() and path.parent == tmp_path
    assert models.main(["vgg16", "--small", "--cache-dir", str(tmp_path)]) == 0
    assert Path(capsys.readouterr().out.strip()).name == models.cache_name("vgg16", **models.SMALL["vgg16"])


def test_digits_files():
    x = np.load(DIGITS / "test_x.npy")
    y = np.load(DIGITS / "test_y.npy")
    calib = np.load(DIGITS / "calib_x.npy")
    assert x.dtype == np.float32 and x.ndim == 4 and x.shape[1:] == (1, 8, 8)
    assert y.dtype == np.int64 and y.shape == (x.shape[0],)
    assert calib.dtype == np.float32 and calib.shape[1:] == (1, 8, 8) and 16 <= calib.shape[0] <= 256
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert set(np.unique(y)) == set(range(10))


def test_digits_onnx_accuracy():
    sess = _session(DIGITS / "digits_cnn.onnx")
    x = np.load(DIGITS / "test_x.npy")
    y = np.load(DIGITS / "test_y.npy")
    preds = np.array([sess.run(None, {"input": xi[None]})[0].argmax() for xi in x])
    assert (preds == y).mean() >= 0.97
