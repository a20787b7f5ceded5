"""Train a small CNN on scikit-learn's 8x8 digits and export it to ONNX.

Offline and deterministic (fixed seeds, single thread, fixed 80/20 split).
Writes next to this file:
    digits_cnn.onnx  float model, input "input" (1, 1, 8, 8) in [0, 1], output "output" = 10 logits;
                     opset 13, ops Conv/BatchNormalization/Relu/MaxPool/Flatten/Gemm
    test_x.npy       float32 (N, 1, 8, 8), the held-out 20 %
    test_y.npy       int64   (N,)
    calib_x.npy      float32 (64, 1, 8, 8), training images for quantizer calibration

Run: python examples/digits/train.py
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

OUT_DIR = Path(__file__).resolve().parent
SEED = 0
EPOCHS = 20
BATCH = 64
N_CALIB = 64


class DigitsCNN(nn.Module):
    """conv-BN-ReLU, conv-ReLU, maxpool, conv-ReLU, maxpool, dense: 8x8 -> 10 logits.

    The ONNX file keeps the BatchNormalization node (see export_onnx)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # 16 x 4 x 4
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 32 x 2 x 2
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.2, random_state=SEED, stratify=y)


def train(x_train: np.ndarray, y_train: np.ndarray, model_cls: type[nn.Module] = DigitsCNN) -> nn.Module:
    torch.manual_seed(SEED)
    model = model_cls()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    gen = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(EPOCHS):
        order = torch.randperm(len(xt), generator=gen)
        for start in range(0, len(xt), BATCH):
            idx = order[start:start + BATCH]
            opt.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            opt.step()
        sched.step()
    return model.eval()


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        pred = model(torch.from_numpy(x)).argmax(1).numpy()
    return float((pred == y).mean())


def export_onnx(model: nn.Module, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # PRESERVE (with the model in eval mode) keeps BatchNormalization as an inference-mode node
        # instead of letting the exporter fold it into the Conv: the front end does the folding.
        torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), str(path), dynamo=False, opset_version=13,
                          input_names=["input"], output_names=["output"],
                          training=torch.onnx.TrainingMode.PRESERVE)


def main() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    x_train, x_test, y_train, y_test = load_split()

    start = time.perf_counter()
    model = train(x_train, y_train)
    train_s = time.perf_counter() - start

    acc = accuracy(model, x_test, y_test)
    export_onnx(model, OUT_DIR / "digits_cnn.onnx")
    np.save(OUT_DIR / "test_x.npy", x_test)
    np.save(OUT_DIR / "test_y.npy", y_test)
    rng = np.random.default_rng(SEED)
    np.save(OUT_DIR / "calib_x.npy", x_train[np.sort(rng.choice(len(x_train), N_CALIB, replace=False))])
    params = sum(p.numel() for p in model.parameters())
    print(f"train: {len(x_train)} images, {EPOCHS} epochs, {params} params, {train_s:.2f} s")
    print(f"test accuracy: {acc * 100:.2f} % on {len(x_test)} images")


if __name__ == "__main__":
    main()
