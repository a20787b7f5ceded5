"""Weight memory of the generated project at mixed per-layer widths, against uniform 8 bits.

Quantises the bundled digits CNN with its calibration split, gives each weighted layer
its own weight width (activations stay 8-bit), builds the project plan `compile` writes
and prints per layer: the width, the bytes of its weight file (packed 32-bit words,
docs/generated-project.md), the cost model's weight bytes for the same layer and the
bytes at uniform 8 bits; then the simulator's top-1 accuracy on the test split at both.
Last line: `weight bytes vs uniform 8-bit: X`.

    python benchmarks/weight_memory.py [--widths 6,4,3,2] [--config 4,4,3]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cnn2gate.codegen import make_plan
from cnn2gate.codegen.project import array_files
from cnn2gate.frontend import load_model
from cnn2gate.hw import HwConfig, estimate, lower
from cnn2gate.hw.arch import GENERATED
from cnn2gate.hw.latency import cost_context
from cnn2gate.quant import quantize, quantize_params, with_weight_bits
from cnn2gate.sim import simulate

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"


def weight_files(graph, formats, cfg):
    """{layer: (bytes of its weight file, modelled weight bytes)} and whether weights are packed."""
    plan = make_plan(quantize_params(graph, formats), cfg)
    files = array_files(plan)
    est = estimate(graph, "a10", cfg, formats)
    ctx = cost_context(lower(graph), cfg, est.widths, 1.0, 200.0, GENERATED)
    out = {}
    for lp in plan.layers:
        if "w" in lp.arrays:
            k = lp.kernel_layer
            out[k.name] = (len(files[f"weights/{lp.stem}.w.bin"]), ctx.weight_bytes(k))
    return out, plan.packed_weights, est.total_ms


def accuracy(graph, formats, x, y) -> float:
    out = simulate(graph, formats, x, keep="output").ints[graph.output]
    return float((out.reshape(len(x), -1).argmax(axis=1) == y).mean() * 100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default="6,4,3,2", help="weight bits of the weighted layers, in order")
    ap.add_argument("--config", default="4,4,3", help="vec_size,lane_num,conv_gp_size_x")
    args = ap.parse_args()
    cfg = HwConfig(*(int(v) for v in args.config.split(",")))
    graph = load_model(DIGITS / "digits_cnn.onnx")
    calib = np.load(DIGITS / "calib_x.npy")
    x, y = np.load(DIGITS / "test_x.npy"), np.load(DIGITS / "test_y.npy")
    base = quantize(graph, calib)
    weighted = [layer.name for layer in graph.layers if layer.has_weights]
    widths = [int(v) for v in args.widths.split(",")]
    if len(widths) != len(weighted):
        ap.error(f"--widths needs {len(weighted)} values, one per weighted layer")
    mixed = with_weight_bits(graph, base, dict(zip(weighted, widths)), calib)
    u8, u8_packed, u8_ms = weight_files(graph, base, cfg)
    mx, mx_packed, mx_ms = weight_files(graph, mixed, cfg)
    assert not u8_packed and mx_packed

    print(f"digits CNN, config v{cfg.vec_size}l{cfg.lane_num}g{cfg.conv_gp_size_x}, activations 8-bit")
    print(f"{'layer':34s} {'w_bits':>6s} {'file B':>8s} {'model B':>8s} {'8-bit B':>8s}")
    for name, b in zip(weighted, widths):
        print(f"{name:34s} {b:6d} {mx[name][0]:8d} {mx[name][1]:8d} {u8[name][0]:8d}")
    total, total8 = sum(v[0] for v in mx.values()), sum(v[0] for v in u8.values())
    print(f"{'total':34s} {'':6s} {total:8d} {sum(v[1] for v in mx.values()):8d} {total8:8d}")
    print(f"modelled latency on a10 (ms): mixed {mx_ms:.5f}, uniform 8-bit {u8_ms:.5f}")
    print(f"simulated top-1 on the test split (%): mixed {accuracy(graph, mixed, x, y):.2f}, "
          f"uniform 8-bit {accuracy(graph, base, x, y):.2f}")
    print(f"weight bytes vs uniform 8-bit: {total / total8:.3f}")


if __name__ == "__main__":
    main()
