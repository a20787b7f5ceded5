"""Train a small CNN with squeeze-excitation, SiLU and hard-swish on the 8x8 digits; export to ONNX.

Same data, split and schedule as train.py (fixed seeds, single thread), so the test and
calibration files that train.py writes serve this model too; only the model file is written:
    digits_se.onnx  float model, input "input" (1, 1, 8, 8) in [0, 1], output "output" = 10 logits;
                    opset 13. The legacy exporter writes SiLU as x * Sigmoid(x), hard-swish as
                    x * HardSigmoid(x) and the SE gate as GlobalAveragePool -> Conv 1x1 -> Relu ->
                    Conv 1x1 -> HardSigmoid -> Mul.

Run: python examples/digits/train_se.py
"""
from __future__ import annotations

import time

import torch
from torch import nn

from train import OUT_DIR, accuracy, export_onnx, load_split, train

ONNX_NAME = "digits_se.onnx"


class SqueezeExcite(nn.Module):
    """MobileNetV3-style gate: global pool, 1x1 reduce, ReLU, 1x1 expand, hard-sigmoid, scale."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, reduced, 1), nn.ReLU(),
            nn.Conv2d(reduced, channels, 1), nn.Hardsigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class DigitsSE(nn.Module):
    """conv-BN-SiLU, conv-hardswish, SE, maxpool, conv-SiLU, maxpool, dense: 8x8 -> 10 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.SiLU(),
            nn.Conv2d(8, 16, 3, padding=1), nn.Hardswish(),
            SqueezeExcite(16, 4), nn.MaxPool2d(2),                           # 16 x 4 x 4
            nn.Conv2d(16, 32, 3, padding=1), nn.SiLU(), nn.MaxPool2d(2),    # 32 x 2 x 2
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def main() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    x_train, x_test, y_train, y_test = load_split()

    start = time.perf_counter()
    model = train(x_train, y_train, DigitsSE)
    train_s = time.perf_counter() - start

    acc = accuracy(model, x_test, y_test)
    export_onnx(model, OUT_DIR / ONNX_NAME)
    params = sum(p.numel() for p in model.parameters())
    print(f"train: {len(x_train)} images, {params} params, {train_s:.2f} s")
    print(f"test accuracy: {acc * 100:.2f} % on {len(x_test)} images")


if __name__ == "__main__":
    main()
