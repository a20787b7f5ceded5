"""Output SQNR against bit width, with the accumulator as wide as the formats need
(docs/fixed-point.md) and with the older int32-only rule (weights give up fractional bits).

A ResNet-50 (bottleneck blocks, batch norm folded by the exporter, seeded random weights
as examples/models.py makes them) at a small input; SQNR of the simulated output against
the float executor, and the simulator's time per run (fast path).

    python benchmarks/accumulator_width.py [--size 64] [--images 4]

Last line: `sqnr 16-bit minus 12-bit dB: X` (must not be negative).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from cnn2gate.frontend import load_model  # noqa: E402
from cnn2gate.ir import reference as float_ref  # noqa: E402
from cnn2gate.quant import quantize, quantize_params  # noqa: E402
from cnn2gate.sim import simulate, sqnr_db  # noqa: E402
from examples.models import _export_torch, _randomize  # noqa: E402


class Bottleneck(nn.Module):
    def __init__(self, cin: int, mid: int, stride: int):
        super().__init__()
        cout = 4 * mid
        self.c1, self.b1 = nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid)
        self.c2, self.b2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(mid)
        self.c3, self.b3 = nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.down is None else self.down(x)
        y = F.relu(self.b1(self.c1(x)))
        y = F.relu(self.b2(self.c2(y)))
        return F.relu(self.b3(self.c3(y)) + identity)


class ResNet50(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], 64
        for stage, (mid, n) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)]):
            for i in range(n):
                blocks.append(Bottleneck(cin, mid, 2 if stage > 0 and i == 0 else 1))
                cin = 4 * mid
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, 1000)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--images", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resnet50.onnx"
        x0 = torch.randn(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
        _export_torch(_randomize(ResNet50(), 0), x0, path, "legacy", False)
        g = load_model(path)
    rng = np.random.default_rng(1)
    calib = rng.standard_normal((8, 3, args.size, args.size))
    x = rng.standard_normal((args.images, 3, args.size, args.size))
    ref = float_ref.execute(g, x)[g.output]
    first = next(layer.name for layer in g.layers if layer.has_weights)
    print(f"ResNet-50 at {args.size}x{args.size}, {args.images} images")
    print("bits | rule | SQNR dB | accumulator | layers with w_frac cut | first conv weights | sim s (fast, best of 3)")
    result = {}
    for bits in (8, 12, 16):
        for rule, acc in (("int32 only", 32), ("as needed", 64)):
            fm = quantize(g, calib, bits=bits, max_acc_bits=acc)
            qg = quantize_params(g, fm)
            simulate(g, qg, x[:1])  # warm the plans
            runs = []
            for _ in range(3):  # best of 3: the machine may be shared
                t = time.perf_counter()
                res = simulate(g, qg, x)
                runs.append(time.perf_counter() - t)
            dt = min(runs)
            db = sqnr_db(ref, res.floats[g.output])
            cut = sum(1 for lf in fm.layers.values() if lf.stats.get("w_frac_reduced_for_accumulator"))
            result[bits, acc] = db
            print(f"{bits} | {rule} | {db:.2f} | {res.acc_bits}-bit | {cut} | {fm.layers[first].weight} | {dt:.2f}",
                  flush=True)
    # what the simulator's exactness costs at 16 bits: layers whose worst case passes 2^52 run
    # on the int64 reference; timed here for the whole network, best of 3
    fallback = sum(1 for q in qg.layers.values() if q.layer.has_weights and q.acc_bound >= 1 << 52)
    times = {}
    for path in ("fast", "reference"):
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            simulate(g, qg, x, path=path)
            runs.append(time.perf_counter() - t)
        times[path] = min(runs)
    print(f"16-bit, as needed: {fallback} layers past 2^52 (int64 fallback); whole network on the fast path "
          f"{times['fast']:.2f} s, all on the int64 path {times['reference']:.2f} s")
    print(f"sqnr 16-bit minus 12-bit dB: {result[16, 64] - result[12, 64]:.2f}")


if __name__ == "__main__":
    main()
