"""The reference networks from examples/models.py (CI-sized variants) parse and match onnxruntime."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root holds examples/

from examples import models  # noqa: E402
from cnn2gate.frontend import load_model  # noqa: E402
from onnx_builders import parity  # noqa: E402

TORCH_MODELS = [name for name, info in models.MODELS.items() if info.framework == "torch"]

EXPECTED_KINDS = {
    "lenet5": {"conv", "pool", "dense"},
    "alexnet": {"conv", "pool", "lrn", "dense"},
    "vgg16": {"conv", "pool", "dense"},
    "resnet18": {"conv", "add", "pool", "dense"},
    "mobilenetv2": {"conv", "add", "pool", "dense"},
    "mobilenetv3_small": {"conv", "add", "pool", "dense", "act", "mul"},
    "mobilenetv3_large": {"conv", "add", "pool", "dense", "act", "mul"},
    "efficientnet_b0": {"conv", "add", "pool", "dense", "act", "mul"},
    "shufflenet_v2": {"conv", "split", "shuffle", "concat", "act", "pool", "dense"},
    "densenet121": {"conv", "pool", "concat", "dense"},  # its joins nest: no act copies (ir/copies.py)
    "unet": {"conv", "pool", "zero_insert", "concat", "act"},
    "unet_upsample": {"conv", "pool", "resize", "concat", "act"},
    "tiny_yolov3": {"conv", "pool", "resize", "concat"},
}


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_example_small_legacy(name):
    path = models.export(name, exporter="legacy", **models.SMALL[name])
    g = load_model(path)
    assert {layer.kind for layer in g} == EXPECTED_KINDS[name]
    assert parity(g, str(path)) < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("exporter,keep_bn", [("legacy", True), ("dynamo", False), ("dynamo", True)])
@pytest.mark.parametrize("name", TORCH_MODELS)
def test_example_small_other_exports(name, exporter, keep_bn):
    path = models.export(name, exporter=exporter, keep_bn=keep_bn, **models.SMALL[name])
    g = load_model(path)
    assert parity(g, str(path)) < 1e-4
