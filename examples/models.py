"""Reference CNNs with random (seeded) weights, exported to ONNX on demand.

Every builder takes ``width`` (channel multiplier) and ``input_size`` (square
spatial size); the defaults give the published full-size network. Small values
give CI-sized variants with the same layer structure (see ``SMALL``).

    from examples import models
    path = models.export("vgg16", **models.SMALL["vgg16"])     # cached ONNX file
    net = models.MODELS["resnet18"](width=0.25, input_size=32)  # torch module

Command line: ``python examples/models.py NAME [--width W] [--input-size S]
[--exporter legacy|dynamo] [--keep-bn]`` prints the path of the ONNX file.

Notes on the exported graphs:
* Both exporters fold BatchNormalization into the preceding Conv by default;
  ``keep_bn=True`` keeps BatchNormalization nodes in the graph (legacy:
  ``training=PRESERVE``; dynamo: ``optimize=False`` followed by constant
  folding only). BN running statistics and affine parameters are randomized
  either way, so folding is never an identity.
* AlexNet's local response normalization is exported as a single ONNX ``LRN``
  node by both exporters (torch's own LocalResponseNorm would decompose into a
  dozen Pad/AveragePool/Pow ops).
* ``mobilenetv3_small``/``mobilenetv3_large``/``efficientnet_b0``: the legacy exporter
  (opset 13) writes hard-swish as ``x * HardSigmoid(x)``, dynamo as ``HardSwish``; SiLU is
  ``x * Sigmoid(x)`` in both, and each SE gate a ``Mul`` of the map by a (1, C, 1, 1) tensor.
* ``tiny_yolov3`` returns its two raw head maps: ONNX outputs ``output`` (stride 32) and
  ``output_stride16`` (``MODELS[name].outputs``). ``unet``/``unet_upsample`` end in a Sigmoid map.
* ``keras_lenet`` is built with Keras 3 (torch backend) in a subprocess and
  exported by Keras itself: NHWC input ``(batch, S, S, 1)`` with a dynamic batch,
  Transpose/Cast/Shape ops and MatMul+Add in place of Gemm.
"""
from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

EXAMPLES_DIR = Path(__file__).resolve().parent
DEFAULT_CACHE_DIR = EXAMPLES_DIR / "cache"
EXPORTERS = ("legacy", "dynamo")
# Bump when a builder changes so stale cached exports are not reused.
CACHE_VERSION = 2

# ---------------------------------------------------------------------------
# helpers


def scaled(channels: int, width: float, multiple: int = 1) -> int:
    """``channels * width`` rounded to a multiple of ``multiple`` (at least ``multiple``)."""
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    return max(multiple, int(round(channels * width / multiple)) * multiple)


def _out_size(size: int, kernel: int, stride: int = 1, pad: int = 0) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def _randomize(model: nn.Module, seed: int) -> nn.Module:
    """Seeded random weights with a sensible scale, non-zero biases and random BN statistics."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)):
                fan_in = m.weight[0].numel()
                if isinstance(m, nn.ConvTranspose2d):  # weight (Cin, Cout/g, k, k); each output sees Cin*k*k/s^2 taps
                    fan_in = max(1, m.in_channels // m.groups * m.weight[0, 0].numel()
                                 // (m.stride[0] * m.stride[1]))
                m.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=gen)
                if m.bias is not None:
                    m.bias.uniform_(-0.1, 0.1, generator=gen)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(0.0, 0.1, generator=gen)
                m.running_mean.normal_(0.0, 0.2, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
    return model.eval()


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------
# LRN as a custom op, so that both exporters emit one ONNX LRN node

_OP_NS = "cnn2gate_examples"


def _lrn_reference(x: torch.Tensor, size: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    return F.local_response_norm(x, size, alpha, beta, k)


def _define_lrn_op():
    try:
        return getattr(getattr(torch.ops, _OP_NS), "lrn")  # already defined (module imported twice)
    except (AttributeError, RuntimeError):
        pass
    op = torch.library.custom_op(f"{_OP_NS}::lrn", mutates_args=())(_lrn_reference)
    op.register_fake(lambda x, size, alpha, beta, k: torch.empty_like(x))

    def legacy_symbolic(g, x, size, alpha, beta, k):
        from torch.onnx.symbolic_helper import _get_const

        return g.op("LRN", x, size_i=_get_const(size, "i", "size"), alpha_f=_get_const(alpha, "f", "alpha"),
                    beta_f=_get_const(beta, "f", "beta"), bias_f=_get_const(k, "f", "k"))

    torch.onnx.register_custom_op_symbolic(f"{_OP_NS}::lrn", legacy_symbolic, 9)
    return getattr(getattr(torch.ops, _OP_NS), "lrn")


_lrn_op = _define_lrn_op()


def _dynamo_translations() -> dict:
    from onnxscript import opset18 as op

    def lrn(x, size: int, alpha: float, beta: float, k: float):
        return op.LRN(x, size=size, alpha=alpha, beta=beta, bias=k)

    return {_lrn_op.default: lrn}


class LRN(nn.LocalResponseNorm):
    """``nn.LocalResponseNorm`` (same parameters and maths) that exports as ONNX ``LRN``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _lrn_op(x, self.size, self.alpha, self.beta, self.k)


# ---------------------------------------------------------------------------
# builders


def lenet5(width: float = 1.0, input_size: int | None = None, seed: int = 0) -> nn.Module:
    """LeNet-5, modern form (ReLU, max pooling): 1xSxS -> 10; 61,706 params at 32x32."""
    s = input_size or 32
    c1, c2, f1, f2 = (scaled(c, width) for c in (6, 16, 120, 84))
    side = _out_size(_out_size(_out_size(_out_size(s, 5), 2, 2), 5), 2, 2)
    if side < 1:
        raise ValueError(f"lenet5: input_size {s} too small")
    model = nn.Sequential(
        nn.Conv2d(1, c1, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * side * side, f1), nn.ReLU(),
        nn.Linear(f1, f2), nn.ReLU(),
        nn.Linear(f2, 10),
    )
    return _randomize(model, seed)


def alexnet(width: float = 1.0, input_size: int | None = None, seed: int = 0) -> nn.Module:
    """Caffe (BVLC) AlexNet: 3x227x227 -> 1000, grouped conv2/4/5, LRN, 60.97 M params."""
    s = input_size or 227
    c1, c2, c3, c4, c5 = (scaled(c, width, 2) for c in (96, 256, 384, 384, 256))
    fc = scaled(4096, width)
    side = _out_size(s, 11, 4)
    for _ in range(3):
        side = _out_size(side, 3, 2)
    if side < 1:
        raise ValueError(f"alexnet: input_size {s} too small")
    features = nn.Sequential(
        nn.Conv2d(3, c1, 11, stride=4), nn.ReLU(), LRN(5, 1e-4, 0.75, 1.0), nn.MaxPool2d(3, 2),
        nn.Conv2d(c1, c2, 5, padding=2, groups=2), nn.ReLU(), LRN(5, 1e-4, 0.75, 1.0), nn.MaxPool2d(3, 2),
        nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c3, c4, 3, padding=1, groups=2), nn.ReLU(),
        nn.Conv2d(c4, c5, 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2),
    )
    classifier = nn.Sequential(
        nn.Flatten(),
        nn.Linear(c5 * side * side, fc), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(fc, fc), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(fc, 1000),
    )
    return _randomize(nn.Sequential(features, classifier), seed)


_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def vgg16(width: float = 1.0, input_size: int | None = None, seed: int = 0) -> nn.Module:
    """VGG-16 (configuration D, no BN): 3x224x224 -> 1000, 138.36 M params."""
    s = input_size or 224
    layers: list[nn.Module] = []
    cin, side = 3, s
    for v in _VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
            side //= 2
        else:
            cout = scaled(v, width)
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU()]
            cin = cout
    if side < 1:
        raise ValueError(f"vgg16: input_size {s} too small (needs >= 32)")
    fc = scaled(4096, width)
    layers += [
        nn.Flatten(),
        nn.Linear(cin * side * side, fc), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(fc, fc), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(fc, 1000),
    ]
    return _randomize(nn.Sequential(*layers), seed)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + identity)


class ResNet18(nn.Module):
    def __init__(self, width: float, input_size: int):
        super().__init__()
        c0 = scaled(64, width)
        self.stem = nn.Sequential(
            nn.Conv2d(3, c0, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(c0), nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        blocks, cin = [], c0
        for i, c in enumerate((64, 128, 256, 512)):
            cout = scaled(c, width)
            stride = 1 if i == 0 else 2
            blocks += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.layers(self.stem(x)))
        return self.fc(torch.flatten(x, 1))


def resnet18(width: float = 1.0, input_size: int | None = None, seed: int = 0) -> nn.Module:
    """ResNet-18 (BasicBlock, BN, 1x1 downsample convs, global average pool): 3x224x224 -> 1000, 11.69 M params."""
    s = input_size or 224
    if s < 32:
        raise ValueError(f"resnet18: input_size {s} too small (needs >= 32)")
    return _randomize(ResNet18(width, s), seed)


def _conv_bn_relu6(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU6()]


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += _conv_bn_relu6(cin, hidden, 1)
        layers += _conv_bn_relu6(hidden, hidden, 3, stride=stride, groups=hidden)  # depthwise
        layers += [nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]  # linear bottleneck
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


# (expansion t, channels c, repeats n, first stride s)
_MBV2_CFG = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class MobileNetV2(nn.Module):
    def __init__(self, width: float):
        super().__init__()
        cin = scaled(32, width, 8)
        layers = _conv_bn_relu6(3, cin, 3, stride=2)
        for t, c, n, s in _MBV2_CFG:
            cout = scaled(c, width, 8)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        last = scaled(1280, width, 8)
        layers += _conv_bn_relu6(cin, last, 1)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, 1000))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def mobilenetv2(width: float = 1.0, input_size: int | None = None, seed: int = 0) -> nn.Module:
    """MobileNetV2 1.0 (inverted residuals, depthwise 3x3, ReLU6, BN): 3x224x224 -> 1000, 3.50 M params.

    Channel counts are rounded to multiples of 8 as in the reference implementation."""
    s = input_size or 224
    if s < 32:
        raise ValueError(f"mobilenetv2: input_size {s} too small (needs >= 32)")
    return _randomize(MobileNetV2(width), seed)


def _make_divisible(v: float, divisor: int = 8) -> int:
    """Round to a multiple of ``divisor`` without losing more than 10 % (reference MobileNet/EfficientNet rule)."""
    out = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * v else out


def _conv_bn_act(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                 act: type[nn.Module] | None = nn.ReLU) -> list[nn.Module]:
    layers = [nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    return layers + ([act()] if act is not None else [])


class SqueezeExcite(nn.Module):
    """Global average pool -> 1x1 conv -> act -> 1x1 conv -> gate, times the input map."""

    def __init__(self, channels: int, squeeze: int, act: type[nn.Module], gate: type[nn.Module]):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.act = act()
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))


class MBConv(nn.Module):
    """Inverted residual with optional squeeze-excitation (MobileNetV3 bneck, EfficientNet MBConv)."""

    def __init__(self, cin: int, hidden: int, cout: int, kernel: int, stride: int, act: type[nn.Module],
                 se: nn.Module | None):
        super().__init__()
        layers: list[nn.Module] = []
        if hidden != cin:
            layers += _conv_bn_act(cin, hidden, 1, act=act)
        layers += _conv_bn_act(hidden, hidden, kernel, stride=stride, groups=hidden, act=act)  # depthwise
        if se is not None:
            layers.append(se)
        layers += _conv_bn_act(hidden, cout, 1, act=None)  # linear projection
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


# (kernel, expanded, out, SE, activation "RE"/"HS", stride): Howard et al. 2019, Tables 1 and 2
_MBV3_LARGE = ((3, 16, 16, False, "RE", 1), (3, 64, 24, False, "RE", 2), (3, 72, 24, False, "RE", 1),
               (5, 72, 40, True, "RE", 2), (5, 120, 40, True, "RE", 1), (5, 120, 40, True, "RE", 1),
               (3, 240, 80, False, "HS", 2), (3, 200, 80, False, "HS", 1), (3, 184, 80, False, "HS", 1),
               (3, 184, 80, False, "HS", 1), (3, 480, 112, True, "HS", 1), (3, 672, 112, True, "HS", 1),
               (5, 672, 160, True, "HS", 2), (5, 960, 160, True, "HS", 1), (5, 960, 160, True, "HS", 1))
_MBV3_SMALL = ((3, 16, 16, True, "RE", 2), (3, 72, 24, False, "RE", 2), (3, 88, 24, False, "RE", 1),
               (5, 96, 40, True, "HS", 2), (5, 240, 40, True, "HS", 1), (5, 240, 40, True, "HS", 1),
               (5, 120, 48, True, "HS", 1), (5, 144, 48, True, "HS", 1), (5, 288, 96, True, "HS", 2),
               (5, 576, 96, True, "HS", 1), (5, 576, 96, True, "HS", 1))


class MobileNetV3(nn.Module):
    def __init__(self, cfg: tuple, last_conv: int, head: int, width: float):
        super().__init__()
        cin = _make_divisible(16 * width)
        layers = _conv_bn_act(3, cin, 3, stride=2, act=nn.Hardswish)
        for k, exp, out, se, nl, s in cfg:
            hidden, cout = _make_divisible(exp * width), _make_divisible(out * width)
            act = nn.Hardswish if nl == "HS" else nn.ReLU
            gate = SqueezeExcite(hidden, _make_divisible(hidden // 4), nn.ReLU, nn.Hardsigmoid) if se else None
            layers.append(MBConv(cin, hidden, cout, k, s, act, gate))
            cin = cout
        last = _make_divisible(last_conv * width)
        layers += _conv_bn_act(cin, last, 1, act=nn.Hardswish)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        hidden = _make_divisible(head * width)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(last, hidden), nn.Hardswish(), nn.Dropout(0.2),
                                        nn.Linear(hidden, 1000))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


def mobilenetv3_small(width: float = 1.0, input_size: int | None = None, seed: int = 0) -> nn.Module:
    """MobileNetV3-Small (bneck blocks, SE with hard-sigmoid gates, hard-swish): 3x224x224 -> 1000, 2.54 M params.

    SE squeeze is 1/4 of the expanded width; the head is a dense layer as in the reference implementation."""
    s = input_size or 224
    if s < 32:
        raise ValueError(f"mobilenetv3_small: input_size {s} too small (needs >= 32)")
    return _randomize(MobileNetV3(_MBV3_SMALL, 576, 1024, width), seed)


def mobilenetv3_large(width: float = 1.0, input_size: int | None = None, seed: int = 0) -> nn.Module:
    """MobileNetV3-Large: 3x224x224 -> 1000, 5.48 M params (same block types as the small model)."""
    s = input_size or 224
    if s < 32:
        raise ValueError(f"mobilenetv3_large: input_size {s} too small (needs >= 32)")
    return _randomize(MobileNetV3(_MBV3_LARGE, 960, 1280, width), seed)


# (expansion, kernel, channels, repeats, first stride): Tan & Le 2019, Table 1
_EFFNET_B0 = ((1, 3, 16, 1, 1), (6, 3, 24, 2, 2), (6, 5, 40, 2, 2), (6, 3, 80, 3, 2), (6, 5, 112, 3, 1),
              (6, 5, 192, 4, 2), (6, 3, 320, 1, 1))


class EfficientNetB0(nn.Module):
    def __init__(self, width: float):
        super().__init__()
        cin = _make_divisible(32 * width)
        layers = _conv_bn_act(3, cin, 3, stride=2, act=nn.SiLU)
        for t, k, c, n, s in _EFFNET_B0:
            cout = _make_divisible(c * width)
            for i in range(n):
                hidden = _make_divisible(cin * t)
                se = SqueezeExcite(hidden, max(1, cin // 4), nn.SiLU, nn.Sigmoid)  # SE ratio 0.25 of the block input
                layers.append(MBConv(cin, hidden, cout, k, s if i == 0 else 1, nn.SiLU, se))
                cin = cout
        last = 4 * cin  # 1280 at width 1, scaled with the last stage as in the reference
        layers += _conv_bn_act(cin, last, 1, act=nn.SiLU)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(last, 1000))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


def efficientnet_b0(width: float = 1.0, input_size: int | None = None, seed: int = 0) -> nn.Module:
    """EfficientNet-B0 (MBConv with SE, SiLU everywhere, sigmoid gates): 3x224x224 -> 1000, 5.29 M params."""
    s = input_size or 224
    if s < 32:
        raise ValueError(f"efficientnet_b0: input_size {s} too small (needs >= 32)")
    return _randomize(EfficientNetB0(width), seed)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2 unit (Ma et al. 2018, Fig. 3 c/d): stride 1 splits the channels in half and
    transforms one half; stride 2 transforms both copies of the input. Then concat and shuffle."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        half = cout // 2
        self.stride = stride
        if stride == 2:
            self.branch1 = nn.Sequential(*_conv_bn_act(cin, cin, 3, stride, groups=cin, act=None),
                                         *_conv_bn_act(cin, half, 1))
        inner = cin if stride == 2 else half
        self.branch2 = nn.Sequential(*_conv_bn_act(inner, half, 1),
                                     *_conv_bn_act(half, half, 3, stride, groups=half, act=None),
                                     *_conv_bn_act(half, half, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, width: float):
        super().__init__()
        cin = scaled(24, width, 4)
        layers = [*_conv_bn_act(3, cin, 3, 2), nn.MaxPool2d(3, 2, 1)]
        for c, n in ((48, 4), (96, 8), (192, 4)):  # Table 5, x0.5: one stride-2 unit, then 3 / 7 / 3
            cout = scaled(c, width, 4)
            layers += [ShuffleUnit(cin, cout, 2 if i == 0 else 1) for i in range(n)]
            cin = cout
        last = scaled(1024, width, 4)
        layers += _conv_bn_act(cin, last, 1)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(last, 1000))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def shufflenet_v2(width: float = 1.0, input_size: int | None = None, seed: int = 0) -> nn.Module:
    """ShuffleNetV2 x0.5 (channel split, channel shuffle): 3x224x224 -> 1000, 1.37 M params."""
    s = input_size or 224
    if s < 32:
        raise ValueError(f"shufflenet_v2: input_size {s} too small (needs >= 32)")
    return _randomize(ShuffleNetV2(width), seed)


# DenseNet-121: Huang et al. 2017, "Densely Connected Convolutional Networks", Table 1 (growth rate
# k = 32, 4k-channel 1x1 bottlenecks, compression 0.5 in the transitions, blocks of 6/12/24/16).
_DENSENET121_BLOCKS = (6, 12, 24, 16)


class DenseLayer(nn.Module):
    """BN-ReLU-Conv1x1(4k)-BN-ReLU-Conv3x3(k) on the concat of every earlier output of the block."""

    def __init__(self, cin: int, growth: int):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, 4 * growth, 1, bias=False),
                                  nn.BatchNorm2d(4 * growth), nn.ReLU(),
                                  nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False))

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        # one concat per layer, as the reference implementation: each earlier output joins several concats
        return self.body(torch.cat(feats, 1))


class DenseNet(nn.Module):
    def __init__(self, blocks: tuple[int, ...], width: float):
        super().__init__()
        growth = scaled(32, width)
        c = 2 * growth
        self.stem = nn.Sequential(nn.Conv2d(3, c, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                                  nn.MaxPool2d(3, stride=2, padding=1))
        self.blocks, self.transitions = nn.ModuleList(), nn.ModuleList()
        for i, n in enumerate(blocks):
            self.blocks.append(nn.ModuleList(DenseLayer(c + j * growth, growth) for j in range(n)))
            c += n * growth
            if i < len(blocks) - 1:
                self.transitions.append(nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c // 2, 1, bias=False),
                                                      nn.AvgPool2d(2, stride=2)))
                c //= 2
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(c, 1000))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i, block in enumerate(self.blocks):
            feats = [x]
            for layer in block:
                feats.append(layer(feats))
            x = torch.cat(feats, 1)
            if i < len(self.transitions):
                x = self.transitions[i](x)
        return self.head(x)


def densenet121(width: float = 1.0, input_size: int | None = None, seed: int = 0) -> nn.Module:
    """DenseNet-121 (dense blocks 6/12/24/16, growth 32, pre-activation BN): 3x224x224 -> 1000, 7.98 M params.

    ``width`` scales the growth rate (stem and bottlenecks follow it). The pre-activation
    BatchNormalizations cannot fold into a producer (they read a concat) and stay as per-channel scales."""
    s = input_size or 224
    if s < 32:
        raise ValueError(f"densenet121: input_size {s} too small (needs >= 32)")
    return _randomize(DenseNet(_DENSENET121_BLOCKS, width), seed)


# U-Net: Ronneberger et al. 2015, "U-Net: Convolutional Networks for Biomedical Image Segmentation",
# Fig. 1: four 2x2 max-pool steps down, two 3x3 convs per level, channels doubling from the first
# level, a 2x2 stride-2 "up-convolution" halving the channels, concat with the skip, two 3x3 convs,
# a final 1x1 conv. Here: padded convs (output size = input size), BN after each 3x3 conv, 16
# channels at the first level (the paper's 64 x width 0.25) and one output map through a Sigmoid.


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(*_conv_bn_act(cin, cout, 3), *_conv_bn_act(cout, cout, 3))


class UNet(nn.Module):
    def __init__(self, width: float, up: str, depth: int = 4, classes: int = 1):
        super().__init__()
        chans = [scaled(16 * 2 ** i, width) for i in range(depth + 1)]
        self.down = nn.ModuleList([_double_conv(3, chans[0])])
        self.down.extend(_double_conv(chans[i], chans[i + 1]) for i in range(depth))
        self.up, self.dec = nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(depth)):
            if up == "transpose":
                self.up.append(nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2))
            else:  # nearest (or bilinear) x2, then a 1x1 conv halves the channels (the up-conv without its spatial taps)
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode=up),
                                             nn.Conv2d(chans[i + 1], chans[i], 1)))
            self.dec.append(_double_conv(2 * chans[i], chans[i]))
        self.out = nn.Conv2d(chans[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for up, dec in zip(self.up, self.dec):
            x = dec(torch.cat([up(x), skips.pop()], 1))
        return torch.sigmoid(self.out(x))


def _unet(up: str, width: float, input_size: int | None, seed: int) -> nn.Module:
    s = input_size or 128
    if s < 16 or s % 16:
        raise ValueError(f"unet: input_size {s} must be a multiple of 16 (four 2x2 pools)")
    return _randomize(UNet(width, up), seed)


def unet(width: float = 1.0, input_size: int | None = None, seed: int = 0) -> nn.Module:
    """Small U-Net with 2x2 stride-2 transposed convolutions: 3x128x128 -> 1x128x128 (sigmoid), 1.94 M params."""
    return _unet("transpose", width, input_size, seed)


def unet_upsample(width: float = 1.0, input_size: int | None = None, seed: int = 0,
                  mode: str = "nearest") -> nn.Module:
    """The same U-Net with nearest x2 upsampling + 1x1 conv in place of each transposed convolution, 1.81 M params
    (mode="bilinear": bilinear x2, torch's align_corners=False)."""
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"unet_upsample: mode {mode!r} (nearest or bilinear)")
    return _unet(mode, width, input_size, seed)


# YOLOv3-tiny: the layer table of darknet's cfg/yolov3-tiny.cfg (Redmon & Farhadi 2018,
# "YOLOv3: An Incremental Improvement"): 3x3 convs 16..1024 with BN and leaky ReLU 0.1, five 2x2
# stride-2 max pools and a sixth 2x2 stride-1 one (zero-padded right and bottom, as ONNX ports of
# darknet write it), two heads of 3 x (5 + 80) = 255 linear 1x1-conv channels at strides 32 and 16,
# the second after a 1x1 conv, nearest x2 upsampling and a concat with the stride-16 features.
# Box decoding and non-max suppression are not part of the network: the raw head maps are its outputs.
_YOLO_HEAD = 3 * (5 + 80)


def _conv_bn_leaky(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.LeakyReLU(0.1))


class TinyYOLOv3(nn.Module):
    def __init__(self, width: float):
        super().__init__()
        c = [scaled(v, width) for v in (16, 32, 64, 128, 256, 512, 1024)]
        self.trunk16 = nn.Sequential()  # down to stride 16 (cfg layers 0-8)
        cin = 3
        for i in range(5):
            if i:
                self.trunk16.append(nn.MaxPool2d(2, 2))
            self.trunk16.append(_conv_bn_leaky(cin, c[i], 3))
            cin = c[i]
        self.trunk32 = nn.Sequential(nn.MaxPool2d(2, 2), _conv_bn_leaky(c[4], c[5], 3),  # cfg layers 9-13
                                     nn.ZeroPad2d((0, 1, 0, 1)), nn.MaxPool2d(2, 1),
                                     _conv_bn_leaky(c[5], c[6], 3), _conv_bn_leaky(c[6], c[4], 1))
        self.head32 = nn.Sequential(_conv_bn_leaky(c[4], c[5], 3), nn.Conv2d(c[5], _YOLO_HEAD, 1))
        self.lateral = nn.Sequential(_conv_bn_leaky(c[4], c[3], 1), nn.Upsample(scale_factor=2, mode="nearest"))
        self.head16 = nn.Sequential(_conv_bn_leaky(c[3] + c[4], c[4], 3), nn.Conv2d(c[4], _YOLO_HEAD, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f16 = self.trunk16(x)
        f32 = self.trunk32(f16)
        return self.head32(f32), self.head16(torch.cat([self.lateral(f32), f16], 1))


def tiny_yolov3(width: float = 1.0, input_size: int | None = None, seed: int = 0) -> nn.Module:
    """YOLOv3-tiny (two heads, no box decoding): 3x416x416 -> 255x13x13 and 255x26x26, 8.85 M params."""
    s = input_size or 416
    if s < 32 or s % 32:
        raise ValueError(f"tiny_yolov3: input_size {s} must be a multiple of 32 (five stride-2 pools)")
    return _randomize(TinyYOLOv3(width), seed)


# ---------------------------------------------------------------------------
# Keras LeNet (built and exported in a subprocess with KERAS_BACKEND=torch)


def keras_lenet(width: float = 1.0, input_size: int | None = None, seed: int = 0):
    """Keras 3 LeNet (Conv2D/MaxPooling2D/Flatten/Dense, NHWC input 1xSxSx1 -> 10).

    Needs Keras with the torch backend: call it only in a process where
    ``KERAS_BACKEND=torch`` was set before keras was first imported."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    if keras.backend.backend() != "torch":
        raise RuntimeError(f"keras_lenet needs KERAS_BACKEND=torch, keras uses {keras.backend.backend()!r}")
    s = input_size or 32
    c1, c2, f1, f2 = (scaled(c, width) for c in (6, 16, 120, 84))
    if _out_size(_out_size(_out_size(_out_size(s, 5), 2, 2), 5), 2, 2) < 1:
        raise ValueError(f"keras_lenet: input_size {s} too small")
    keras.utils.set_random_seed(seed)
    bias = keras.initializers.RandomUniform(-0.1, 0.1, seed=seed)
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((s, s, 1), name="input"),
        layers.Conv2D(c1, 5, activation="relu", bias_initializer=bias),
        layers.MaxPooling2D(2),
        layers.Conv2D(c2, 5, activation="relu", bias_initializer=bias),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(f1, activation="relu", bias_initializer=bias),
        layers.Dense(f2, activation="relu", bias_initializer=bias),
        layers.Dense(10, bias_initializer=bias),
    ], name="keras_lenet")
    return model


def _export_keras_here(path: str, width: float, input_size: int | None) -> None:
    """Runs inside the Keras subprocess: build, call once, export, name the output "output"."""
    import numpy as np
    import onnx

    model = keras_lenet(width, input_size)
    s = input_size or 32
    model(np.zeros((1, s, s, 1), dtype="float32"))  # keras exports only models that were called
    model.export(path, format="onnx", verbose=False)
    graph_model = onnx.load(path)
    old = graph_model.graph.output[0].name
    for node in graph_model.graph.node:
        node.output[:] = ["output" if o == old else o for o in node.output]
    graph_model.graph.output[0].name = "output"
    onnx.save(graph_model, path)


def _export_keras(path: Path, width: float, input_size: int | None) -> None:
    env = dict(os.environ, KERAS_BACKEND="torch")
    code = (
        f"import sys; sys.path.insert(0, {str(EXAMPLES_DIR)!r}); import models;"
        f"models._export_keras_here({str(path)!r}, {width!r}, {input_size!r})"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or path.stat().st_size == 0:
        raise RuntimeError(f"keras export failed (rc={proc.returncode}):\n{proc.stderr[-4000:]}")


# ---------------------------------------------------------------------------
# registry


@dataclass(frozen=True)
class ModelInfo:
    """A registered network: call it like its builder, ``MODELS[name](width=..., input_size=...)``."""

    build: Callable
    in_channels: int
    default_input_size: int
    num_classes: int
    framework: str = "torch"  # "torch" or "keras"
    layout: str = "NCHW"  # layout of the ONNX input
    task: str = "classify"  # "classify" (num_classes logits), "segment" (num_classes maps) or "detect"
    outputs: tuple[str, ...] = ("output",)  # ONNX output names, in the module's return order

    def __call__(self, width: float = 1.0, input_size: int | None = None, seed: int = 0):
        return self.build(width=width, input_size=input_size, seed=seed)

    def input_shape(self, input_size: int | None = None) -> tuple[int, int, int, int]:
        s = input_size or self.default_input_size
        return (1, s, s, self.in_channels) if self.layout == "NHWC" else (1, self.in_channels, s, s)


MODELS: dict[str, ModelInfo] = {
    "lenet5": ModelInfo(lenet5, 1, 32, 10),
    "alexnet": ModelInfo(alexnet, 3, 227, 1000),
    "vgg16": ModelInfo(vgg16, 3, 224, 1000),
    "resnet18": ModelInfo(resnet18, 3, 224, 1000),
    "mobilenetv2": ModelInfo(mobilenetv2, 3, 224, 1000),
    "mobilenetv3_small": ModelInfo(mobilenetv3_small, 3, 224, 1000),
    "mobilenetv3_large": ModelInfo(mobilenetv3_large, 3, 224, 1000),
    "efficientnet_b0": ModelInfo(efficientnet_b0, 3, 224, 1000),
    "shufflenet_v2": ModelInfo(shufflenet_v2, 3, 224, 1000),
    "densenet121": ModelInfo(densenet121, 3, 224, 1000),
    "unet": ModelInfo(unet, 3, 128, 1, task="segment"),
    "unet_upsample": ModelInfo(unet_upsample, 3, 128, 1, task="segment"),
    # raw head maps at strides 32 and 16 (80 classes, 3 anchors each)
    "tiny_yolov3": ModelInfo(tiny_yolov3, 3, 416, 80, task="detect", outputs=("output", "output_stride16")),
    "keras_lenet": ModelInfo(keras_lenet, 1, 32, 10, framework="keras", layout="NHWC"),
}

# CI-sized variants: same layer structure, tiny channel counts and inputs.
SMALL: dict[str, dict] = {
    "lenet5": dict(width=1.0, input_size=32),
    "alexnet": dict(width=0.125, input_size=99),  # 99 -> 23 -> 11 -> 5 -> 2: every pool window fits exactly
    "vgg16": dict(width=0.125, input_size=32),
    "resnet18": dict(width=0.25, input_size=32),
    "mobilenetv2": dict(width=0.25, input_size=32),
    "mobilenetv3_small": dict(width=0.25, input_size=32),
    "mobilenetv3_large": dict(width=0.25, input_size=32),
    "efficientnet_b0": dict(width=0.25, input_size=32),
    "shufflenet_v2": dict(width=0.25, input_size=32),
    "densenet121": dict(width=0.125, input_size=32),
    "unet": dict(width=0.25, input_size=32),
    "unet_upsample": dict(width=0.25, input_size=32),
    "tiny_yolov3": dict(width=0.125, input_size=64),
    "keras_lenet": dict(width=1.0, input_size=32),
}


# ---------------------------------------------------------------------------
# export


def cache_name(name: str, width: float = 1.0, input_size: int | None = None, exporter: str = "legacy",
               keep_bn: bool = False) -> str:
    info = MODELS[name]
    s = input_size or info.default_input_size
    if info.framework == "keras":
        exporter, keep_bn = "keras", False
    return f"{name}-w{width:g}-s{s}-{exporter}{'-bn' if keep_bn else ''}-v{CACHE_VERSION}.onnx"


def _export_torch(model: nn.Module, x: torch.Tensor, path: Path, exporter: str, keep_bn: bool,
                  outputs: tuple[str, ...] = ("output",)) -> None:
    # The dynamo exporter logs a warning per missing torchvision op; irrelevant here.
    registration_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration_log.level
    registration_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if exporter == "legacy":
                extra = dict(training=torch.onnx.TrainingMode.PRESERVE) if keep_bn else {}
                torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=13,
                                  input_names=["input"], output_names=list(outputs), **extra)
            else:
                torch.onnx.export(model, (x,), str(path), dynamo=True, external_data=False,
                                  input_names=["input"], output_names=list(outputs), optimize=not keep_bn,
                                  custom_translation_table=_dynamo_translations(), verbose=False)
                if keep_bn:
                    _fold_constants(path)
    finally:
        registration_log.setLevel(level)

def _fold_constants(path: Path) -> None:
    """Constant folding only (the full dynamo optimizer would also fold BN into the Conv)."""
    import onnx
    import onnx_ir as ir
    import onnxscript.optimizer

    model = ir.serde.deserialize_model(onnx.load(str(path)))
    onnxscript.optimizer.fold_constants(model)
    onnxscript.optimizer.remove_unused_nodes(model)
    onnx.save(ir.serde.serialize_model(model), str(path))


def export(name: str, *, width: float = 1.0, input_size: int | None = None, exporter: str = "legacy",
           cache_dir: str | Path | None = None, keep_bn: bool = False) -> Path:
    """Export ``MODELS[name]`` to ONNX and return the path: input "input", batch 1, outputs named
    ``MODELS[name].outputs`` ("output" first).

    The file is cached under ``cache_dir`` (default ``examples/cache/``) by its parameters and reused.
    It is written to a temporary file and renamed, so concurrent callers never see a partial file.
    ``keras_lenet`` is always exported by Keras (``exporter`` must stay "legacy"; ``keep_bn`` is moot)."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    info = MODELS[name]
    if info.framework == "keras" and exporter != "legacy":
        raise ValueError("keras_lenet is exported by Keras itself; only exporter='legacy' is accepted")
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / cache_name(name, width, input_size, exporter, keep_bn)
    if path.exists():
        return path
    fd, tmp_name = tempfile.mkstemp(dir=cache, prefix=f".{path.stem}-", suffix=".onnx.tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if info.framework == "keras":
            _export_keras(tmp, width, input_size)
        else:
            model = info(width=width, input_size=input_size)
            x = torch.randn(info.input_shape(input_size), generator=torch.Generator().manual_seed(0))
            _export_torch(model, x, tmp, exporter, keep_bn, info.outputs)
        tmp.chmod(0o644)  # mkstemp creates the file owner-only
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export a reference CNN to ONNX and print its path.")
    parser.add_argument("name", choices=sorted(MODELS))
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--input-size", type=int, default=None)
    parser.add_argument("--exporter", choices=EXPORTERS, default="legacy")
    parser.add_argument("--keep-bn", action="store_true", help="keep BatchNormalization nodes in the graph")
    parser.add_argument("--small", action="store_true", help="use the CI-sized variant from SMALL")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    params = dict(SMALL[args.name]) if args.small else dict(width=args.width, input_size=args.input_size)
    print(export(args.name, exporter=args.exporter, cache_dir=args.cache_dir, keep_bn=args.keep_bn, **params))
    return 0


if __name__ == "__main__":
    sys.exit(main())
