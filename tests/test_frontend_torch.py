"""PyTorch exports (legacy TorchScript and dynamo exporters) → IR, checked against onnxruntime."""
from __future__ import annotations

import warnings

import onnx
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from cnn2gate.frontend import load_model  # noqa: E402
from onnx_builders import parity  # noqa: E402

TOL = 1e-4


def export_legacy(model: nn.Module, shape, path, **kw) -> str:
    torch.manual_seed(0)
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter announces its deprecation
        torch.onnx.export(model, (torch.randn(1, *shape),), str(path), dynamo=False, opset_version=13, **kw)
    return str(path)


def ops(path) -> set[str]:
    return {n.op_type for n in onnx.load(path).graph.node}


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def test_legacy_lenet_layers_and_parity(tmp_path):
    path = export_legacy(LeNet5(), (1, 28, 28), tmp_path / "lenet.onnx")
    assert {"Conv", "Gemm", "Relu", "MaxPool", "Flatten"} <= ops(path)
    g = load_model(path)
    assert [layer.kind for layer in g] == ["conv", "pool", "conv", "pool", "dense", "dense", "dense"]
    assert [layer.act for layer in g] == ["relu", "none", "relu", "none", "relu", "relu", "none"]
    assert g.input_shape == (1, 28, 28)
    assert g.output == g.layers[-1].name and not g.softmax
    # IR names are safe identifiers; the ONNX names survive in layer.source
    for layer in g:
        assert layer.name.isidentifier() and len(layer.name) <= 40
    assert g.layers[0].name == "conv1_Conv" and "/conv1/Conv" in g.layers[0].source
    assert "/Relu" in g.layers[0].source
    assert g.total_macs() == 6 * 25 * 28 * 28 + 16 * 6 * 25 * 10 * 10 + 400 * 120 + 120 * 84 + 84 * 10
    assert parity(g, path) < TOL


class Pools(nn.Module):
    """Pooling corner cases: ceil_mode, padded average with and without the padding counted."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.max_ceil = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.avg_pad = nn.AvgPool2d(3, 1, padding=1, count_include_pad=True)
        self.avg_nopad = nn.AvgPool2d(3, 2, padding=1, count_include_pad=False)
        self.avg_ceil = nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)
        self.fc = nn.Linear(4 * 1 * 1, 3)

    def forward(self, x):
        x = nn.functional.leaky_relu(self.conv(x), 0.1)  # 9x9
        x = self.max_ceil(x)  # 5x5: the last window hangs over the edge
        x = self.avg_pad(x)  # 5x5
        x = self.avg_nopad(x)  # 3x3
        x = self.avg_ceil(x)  # 2x2
        x = nn.functional.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))


def test_legacy_pooling_semantics(tmp_path):
    path = export_legacy(Pools(), (3, 11, 11), tmp_path / "pools.onnx")
    g = load_model(path)
    pools = [layer for layer in g if layer.kind == "pool"]
    assert [p.mode for p in pools] == ["max", "avg", "avg", "avg", "global_avg"]
    assert pools[0].pads == (0, 0, 1, 1)  # ceil_mode became extra end padding
    assert pools[1].count_include_pad and not pools[2].count_include_pad
    assert g.layers[0].act == "leaky" and g.layers[0].alpha == pytest.approx(0.1)
    assert parity(g, path) < TOL


def test_avg_pool_ceil_with_counted_padding_is_rejected(tmp_path):
    from cnn2gate.errors import ModelError

    # 8x8 feature map, 3x3/2 window, pad 1: ceil_mode adds a fifth, partly padded window
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=True))
    path = export_legacy(m, (1, 10, 10), tmp_path / "avg_ceil.onnx")
    with pytest.raises(ModelError, match="count_include_pad"):
        load_model(path)


class ResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + x)


class TinyResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.block = ResBlock(8)
        self.fc = nn.Linear(8, 10)
        for bn in [m for m in self.modules() if isinstance(m, nn.BatchNorm2d)]:
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
            bn.weight.data.uniform_(0.5, 1.5)

    def forward(self, x):
        x = self.block(self.stem(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def test_legacy_resnet_with_unfolded_batchnorm(tmp_path):
    # With constant folding off the exporter keeps BatchNormalization nodes: the front end folds them.
    path = export_legacy(TinyResNet(), (3, 16, 16), tmp_path / "resnet.onnx", do_constant_folding=False,
                         training=torch.onnx.TrainingMode.EVAL)
    assert "BatchNormalization" in ops(path)
    g = load_model(path)
    assert [layer.kind for layer in g] == ["conv", "conv", "conv", "add", "pool", "dense"]
    add = g.layers[3]
    assert add.act == "relu" and len(add.inputs) == 2
    assert parity(g, path) < TOL


class MobileBlock(nn.Module):
    """MobileNetV2 inverted residual with ReLU6 (exported as Clip(0, 6))."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU6())
        self.expand = nn.Sequential(nn.Conv2d(8, 32, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(32, 32, 3, 1, 1, groups=32, bias=False), nn.BatchNorm2d(32), nn.ReLU6())
        self.project = nn.Sequential(nn.Conv2d(32, 8, 1, bias=False), nn.BatchNorm2d(8))
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.project(self.dw(self.expand(x)))
        return torch.softmax(self.fc(x.mean((2, 3))), dim=1)


def test_legacy_mobilenet_block_depthwise_relu6(tmp_path):
    path = export_legacy(MobileBlock(), (3, 16, 16), tmp_path / "mobile.onnx")
    assert "Clip" in ops(path)
    g = load_model(path)
    convs = [layer for layer in g if layer.kind == "conv"]
    assert [c.act for c in convs] == ["relu6", "relu6", "relu6", "none"]
    assert convs[2].depthwise and convs[2].groups == 32
    assert g.softmax and g.layers[-1].kind == "dense"
    assert parity(g, path) < TOL


class GroupedAlexNet(nn.Module):
    """AlexNet-style two-group convolutions, overlapping max pooling and dropout."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 5, 2, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(16, 24, 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2))
        self.classifier = nn.Sequential(nn.Dropout(), nn.Linear(24 * 3 * 3, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def test_legacy_grouped_conv(tmp_path):
    path = export_legacy(GroupedAlexNet(), (3, 32, 32), tmp_path / "alex.onnx")
    g = load_model(path)
    grouped = [layer for layer in g if layer.kind == "conv" and layer.groups == 2]
    assert len(grouped) == 1 and not grouped[0].depthwise
    assert parity(g, path) < TOL


def test_dynamo_export(tmp_path):
    pytest.importorskip("onnxscript")
    model = TinyResNet().eval()
    path = str(tmp_path / "dynamo.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, 16, 16),), path, dynamo=True, external_data=False, verbose=False)
    g = load_model(path)
    assert g.meta["source_opset"] >= 18
    assert [layer.kind for layer in g] == ["conv", "conv", "conv", "add", "pool", "dense"]
    assert parity(g, path) < TOL


EDGE_TABLE_ACTS = {  # (fn, count) per SMALL model: MobileNetV3 SE gates are hard-sigmoid, EfficientNet's sigmoid
    "mobilenetv3_small": {"hardswish": 19, "hardsigmoid": 9},
    "mobilenetv3_large": {"hardswish": 21, "hardsigmoid": 8},
    "efficientnet_b0": {"silu": 49, "sigmoid": 16},
}


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
@pytest.mark.parametrize("name", sorted(EDGE_TABLE_ACTS))
def test_edge_models_parse_with_both_exporters(name, exporter):
    # legacy (opset 13) writes hard-swish as x * HardSigmoid(x), dynamo as HardSwish; SiLU is x * Sigmoid(x) in both
    if exporter == "dynamo":
        pytest.importorskip("onnxscript")
    import sys
    from collections import Counter
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from examples import models

    path = str(models.export(name, exporter=exporter, **models.SMALL[name]))
    if name.startswith("mobilenetv3"):
        assert ("HardSwish" in ops(path)) == (exporter == "dynamo")
    g = load_model(path)
    acts = Counter(layer.fn for layer in g if layer.kind == "act")
    assert acts == EDGE_TABLE_ACTS[name]
    gates = [layer for layer in g if layer.kind == "mul"]
    assert len(gates) == sum(acts[fn] for fn in ("hardsigmoid", "sigmoid"))  # one SE gate per block with SE
    assert parity(g, path) < TOL
