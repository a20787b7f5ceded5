"""Joint hardware + precision search on the digits CNN under a 1-point accuracy bound, checked in the emulator.

Runs `explore --precision --max-accuracy-loss 1` (the labelled test split is the validation set, as in
docs/explore.md), writes best_config.json / best_formats.json, compiles the chosen design and runs it in
Intel's FPGA emulator on the whole test split (`cnn2gate emulate --labels`): the emulated top-1 accuracy
is the figure checked against the float model. Prints the chosen widths per layer, the weight bytes of the
generated project against uniform 8 bits, and the modelled latency against uniform 8 bits (at the chosen
hardware config and at the best hardware config for 8 bits). Ends with `name: value` lines.

    python benchmarks/joint_digits.py [--agent sa] [--budget 1000] [--seed 0] [--board a10] [--no-emulate]
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cnn2gate.codegen import make_plan
from cnn2gate.codegen.project import array_files
from cnn2gate.explore import ExploreOptions, explore
from cnn2gate.explore.accuracy import top1_accuracy
from cnn2gate.explore.costing import HwCost
from cnn2gate.explore.space import build_space, precision_layers
from cnn2gate.frontend import load_model
from cnn2gate.hw import HwConfig
from cnn2gate.ir import reference
from cnn2gate.pipeline import write_explore_outputs
from cnn2gate.quant import quantize, quantize_params

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"
CLI = [str(Path(sys.executable).with_name("cnn2gate"))]  # the console script of this environment


def weight_file_bytes(graph, formats, cfg: dict) -> dict:
    """{layer: bytes of its weight file in the generated project}."""
    plan = make_plan(quantize_params(graph, formats), HwConfig(**cfg))
    files = array_files(plan)
    return {lp.kernel_layer.name: len(files[f"weights/{lp.stem}.w.bin"]) for lp in plan.layers if "w" in lp.arrays}


def best_uniform_ms(graph, board, bits: int) -> tuple[float, dict]:
    """Lowest modelled latency over the whole hardware space with every layer at `bits`."""
    cost = HwCost(graph, board)
    space = build_space(graph, board)
    uniform = {name: {"w_bits": bits, "a_bits": bits} for name in precision_layers(graph)}
    best = (math.inf, None)
    for p in space.enumerate():
        c = cost(space.config(p), uniform)
        if c.fits and c.total_ms < best[0]:
            best = (c.total_ms, space.config(p))
    return best


def emulate(out: Path, x_path: Path, y_path: Path, timeout: float) -> dict:
    proj = out / "project"
    subprocess.run(CLI + ["compile", str(DIGITS / "digits_cnn.onnx"), "--board", args.board, "--formats",
                          str(out / "best_formats.json"), "--config", str(out / "best_config.json"),
                          "-o", str(proj), "--force", "-q"], check=True, timeout=timeout)
    run = subprocess.run(CLI + ["emulate", str(proj), "--input", str(x_path), "--labels", str(y_path),
                                "--timeout", str(timeout), "--json"],
                         check=True, timeout=timeout + 60, capture_output=True, text=True)
    return json.loads(run.stdout)


def main() -> None:
    graph = load_model(DIGITS / "digits_cnn.onnx")
    x_path, y_path = DIGITS / "test_x.npy", DIGITS / "test_y.npy"
    x, y = np.load(x_path), np.load(y_path)
    t0 = time.perf_counter()
    result = explore(graph, args.board, ExploreOptions(agent=args.agent, budget=args.budget, seed=args.seed,
                                                       precision=True, max_accuracy_loss=args.max_loss,
                                                       calib=x, labels=y, workers=1))
    search_s = time.perf_counter() - t0
    best = result.best
    if best is None:
        print("no design met the bound:", "; ".join(result.notes))
        print("target met: no")
        sys.exit(1)
    out = Path(args.out or tempfile.mkdtemp(prefix="joint_digits_"))
    write_explore_outputs(result, out, graph=graph, board=args.board, force=True)
    cfg = dict(best.config)
    bits = best.bits
    ver = result.checks.verification

    fixed = weight_file_bytes(graph, result.formats, cfg)
    base8 = quantize(graph, x, bits=8)
    u8 = weight_file_bytes(graph, base8, cfg)
    cost = HwCost(graph, args.board)
    uniform8 = {name: {"w_bits": 8, "a_bits": 8} for name in bits}
    u8_same_ms = cost(cfg, uniform8).total_ms
    u8_best_ms, u8_best_cfg = best_uniform_ms(graph, args.board, 8)

    counts = {layer.name: int(layer.weight.size) for layer in graph.layers if layer.name in bits}
    print(f"digits CNN on {args.board}: agent {args.agent}, budget {args.budget}, seed {args.seed}, "
          f"accuracy bound {args.max_loss} point(s) on {len(y)} test images; search {search_s:.1f} s")
    print(f"SQNR bound derived: {result.bound.min_sqnr:.2f} dB; chosen config {cfg}")
    print(f"{'layer':32s} {'weights':>7s} {'w_bits':>6s} {'a_bits':>6s} {'file B':>7s} {'8-bit B':>7s}")
    for name, b in bits.items():
        print(f"{name:32s} {counts[name]:7d} {b['w_bits']:6d} {b['a_bits']:6d} {fixed[name]:7d} {u8[name]:7d}")
    print(f"{'total':32s} {sum(counts.values()):7d} {'':6s} {'':6s} {sum(fixed.values()):7d} {sum(u8.values()):7d}")
    print(f"modelled latency (ms): chosen {best.total_ms:.6f}, uniform 8-bit at the same config {u8_same_ms:.6f}, "
          f"best uniform 8-bit design {u8_best_ms:.6f} ({u8_best_cfg})")
    float_acc = top1_accuracy(reference.execute(graph, x)[graph.output], y)
    print(f"simulated: SQNR {ver['sim_sqnr_db']} dB, top-1 {ver['fixed_accuracy']} % (float {float_acc:.3f} %)")
    emu_acc = None
    if not args.no_emulate:
        t1 = time.perf_counter()
        emu = emulate(out, x_path, y_path, args.timeout)
        emu_acc = 100.0 * float(emu["accuracy"])
        print(f"emulated ({time.perf_counter() - t1:.1f} s): {emu['images']} images, {emu['mismatches']} of "
              f"{emu['elements']} output elements differ from the simulator ({emu['verdict']}), top-1 {emu_acc:.3f} %")
    loss = float_acc - (emu_acc if emu_acc is not None else ver["fixed_accuracy"])
    avg = best.weight_bits if best.weight_bits is not None else (
        sum(counts[n] * b["w_bits"] for n, b in bits.items()) / sum(counts.values()))
    met = avg <= 4.0 and loss <= args.max_loss and best.total_ms < u8_best_ms
    print(f"wrote {out}/")
    print("chosen widths (w/a): " + ", ".join(f"{b['w_bits']}/{b['a_bits']}" for b in bits.values()))
    print(f"average weight bits: {avg:.3f}")
    print(f"weight bytes vs uniform 8-bit: {sum(fixed.values()) / sum(u8.values()):.3f}")
    print(f"float top-1 %: {float_acc:.3f}")
    print(f"emulated top-1 %: {'not run' if emu_acc is None else f'{emu_acc:.3f}'}")
    print(f"accuracy loss points: {loss:.3f}" + ("" if emu_acc is not None else " (simulated)"))
    print(f"modelled ms: {best.total_ms:.6f}")
    print(f"modelled ms uniform 8-bit best: {u8_best_ms:.6f}")
    print(f"target met: {'yes' if met else 'no'}" + ("" if emu_acc is not None else " (simulated accuracy)"))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", default="sa")
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--board", default="a10")
    ap.add_argument("--max-loss", type=float, default=1.0, help="accuracy bound, percentage points")
    ap.add_argument("--out", default=None, help="explore output folder (default: a temporary one)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds for compile and for the emulated run")
    ap.add_argument("--no-emulate", action="store_true", help="skip compile + emulation (simulated accuracy only)")
    args = ap.parse_args()
    main()
