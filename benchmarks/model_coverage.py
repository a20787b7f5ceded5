"""The edge, dense, segmentation and detection networks of examples/models.py end to end, one
row per model x exporter: parse, float error against onnxruntime, 8-bit SQNR, modelled a10
latency, and (with --emulate) the generated kernels in the FPGA emulator.

    python benchmarks/model_coverage.py [--models a,b] [--exporters legacy,dynamo] [--images N]
                                        [--size S] [--emulate small|full] [--json FILE]

Columns (random seeded weights, full size unless --size or --emulate full says otherwise):
  layers     IR layers after `load_model` (parse seconds in brackets)
  float err  max |IR float executor - onnxruntime| / max |onnxruntime| over every graph output,
             one standard-normal input
  SQNR       8-bit `quantize` (synthetic calibration) + bit-accurate `simulate` against the float
             executor on N uniform(-1, 1) inputs, per graph output, dB
  a10        `estimate` on the a10 board with its default config: modelled ms per image, or what
             does not fit
  emulate    (--emulate small) `compile` + `emulate` of the CI-sized variant (examples.models.SMALL);
             (--emulate full) of the model as measured in the other columns: PASS/FAIL and seconds
Exports are cached in $CNN2GATE_BENCH_CACHE (default /tmp/cnn2gate-bench-cache). A row whose
model is refused says so in its columns; the others still run. Last line:
`rows within 1e-4 of onnxruntime: K/N`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from examples import models  # noqa: E402

from cnn2gate.frontend import load_model  # noqa: E402
from cnn2gate.hw import estimate  # noqa: E402
from cnn2gate.ir.reference import execute  # noqa: E402
from cnn2gate.quant import quantize  # noqa: E402
from cnn2gate.sim import simulate, sqnr_db  # noqa: E402

CACHE_DIR = Path(os.environ.get("CNN2GATE_BENCH_CACHE", "/tmp/cnn2gate-bench-cache"))
MODELS = ("mobilenetv3_small", "mobilenetv3_large", "efficientnet_b0", "shufflenet_v2", "densenet121",
          "unet", "unet_upsample", "tiny_yolov3")
TOL = 1e-4
EMU_CONFIG = {"vec_size": 4, "lane_num": 4, "conv_gp_size_x": 3}


def float_error(path: Path, g, x: np.ndarray) -> float:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})
    got = execute(g, x)
    return max(float(np.abs(g.user_output(o, got[o]) - w).max() / np.abs(w).max()) for o, w in zip(g.outputs, want))


def a10_column(g, fm) -> tuple[str, dict]:
    est = estimate(g, "a10", None, fm)
    over = est.over() if hasattr(est, "over") else est.resources.over(est.margin)
    facts = {"total_ms": est.total_ms, "fits": est.fits, "over": over, "config": est.config.to_dict()}
    if est.fits:
        return f"{est.total_ms:.2f} ms", facts
    return f"{est.total_ms:.2f} ms, does not fit: {', '.join(over)}", facts


def emulate_column(name: str, exporter: str, size: dict) -> tuple[str, dict]:
    from cnn2gate.emulate import emulate_project, emulator_available
    from cnn2gate.pipeline import compile_project

    ok, why = emulator_available()
    if not ok:
        return f"no emulator ({why})", {}
    path = models.export(name, exporter=exporter, cache_dir=CACHE_DIR, **size)
    g = load_model(path)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="coverage-") as tmp:
        out = compile_project(g, quantize(g), "a10", EMU_CONFIG, Path(tmp) / "p")
        res = emulate_project(out, timeout=3600)
    secs = time.perf_counter() - t0
    tag = f"w{size.get('width', 1.0):g} {size.get('input_size') or models.MODELS[name].default_input_size}²"
    verdict = "PASS" if res.passed else "FAIL"
    return (f"{verdict} {res.elements}/{res.elements} ({tag}, {secs:.0f} s)" if res.passed else
            f"{verdict} ({tag}): {res.summary()}"), {"passed": res.passed, "summary": res.summary(),
                                                    "seconds": secs, **size}


def one_row(name: str, exporter: str, size: dict, images: int, emulate: str | None) -> dict:
    row = {"model": name, "exporter": exporter, **size}
    t0 = time.perf_counter()
    try:
        path = models.export(name, exporter=exporter, cache_dir=CACHE_DIR, **size)
        row["export_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        g = load_model(path)
    except Exception as exc:  # a refused model is a result of this table, not a crash
        row["layers"] = f"refused: {str(exc).splitlines()[0]}"
        return row
    row["parse_s"] = time.perf_counter() - t0
    row["layers"] = f"{len(g.layers)} ({row['parse_s']:.2f} s)"
    row["input"] = "x".join(map(str, g.input_shape))
    rng = np.random.default_rng(0)
    row["float_err"] = float_error(path, g, rng.standard_normal((1,) + g.input_shape).astype(np.float32))
    t0 = time.perf_counter()
    fm = quantize(g)
    x = rng.uniform(-1, 1, (images,) + g.input_shape)
    res, ref = simulate(g, fm, x), execute(g, x)
    row["sqnr_db"] = [round(sqnr_db(ref[o], res.floats[o]), 1) for o in g.outputs]
    row["quant_sim_s"] = time.perf_counter() - t0
    row["a10"], row["a10_facts"] = a10_column(g, fm)
    if emulate:
        small = models.SMALL[name] if emulate == "small" else size
        try:
            row["emulate"], row["emulate_facts"] = emulate_column(name, exporter, small)
        except Exception as exc:  # reported in the table like a mismatch
            row["emulate"] = f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return row


def markdown(rows: list[dict], emulate: bool) -> str:
    head = ["model", "exporter", "input", "layers (parse)", "float err", "8-bit SQNR dB", "a10 (default config)"]
    head += ["emulate"] if emulate else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["model"], r["exporter"], r.get("input", "-"), r["layers"],
                 f"{r['float_err']:.1e}" if "float_err" in r else "-",
                 ", ".join(f"{v:g}" for v in r["sqnr_db"]) if "sqnr_db" in r else "-",
                 r.get("a10", "-")]
        cells += [r.get("emulate", "-")] if emulate else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--exporters", default=",".join(models.EXPORTERS))
    ap.add_argument("--images", type=int, default=2, help="inputs for the SQNR column")
    ap.add_argument("--size", type=int, default=None, help="input size for every model (default: each model's own)")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--emulate", choices=("small", "full"), default=None,
                    help="also compile and emulate the CI-sized variant (small) or the measured model (full)")
    ap.add_argument("--json", default=None, help="write the rows as JSON here")
    args = ap.parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    for n in names:
        if n not in models.MODELS:
            ap.error(f"--models: unknown model {n!r}; choose from {', '.join(MODELS)}")
    exporters = [e for e in args.exporters.split(",") if e]
    for e in exporters:
        if e not in models.EXPORTERS:
            ap.error(f"--exporters: unknown exporter {e!r}; choose from {', '.join(models.EXPORTERS)}")
    size = {"width": args.width, "input_size": args.size}
    rows, t_all = [], time.perf_counter()
    for name in names:
        for exporter in exporters:
            t0 = time.perf_counter()
            row = one_row(name, exporter, size, args.images, args.emulate)
            row["row_s"] = time.perf_counter() - t0
            rows.append(row)
            print(f"{name} {exporter}: {row['layers']}, float err {row.get('float_err', float('nan')):.1e}, "
                  f"SQNR {row.get('sqnr_db', '-')} dB, a10 {row.get('a10', '-')}"
                  + (f", emulate {row.get('emulate', '-')}" if args.emulate else "") + f" [{row['row_s']:.0f} s]",
                  file=sys.stderr, flush=True)
    print(markdown(rows, bool(args.emulate)))
    print(f"total {time.perf_counter() - t_all:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    good = sum(1 for r in rows if r.get("float_err", 1.0) <= TOL)
    print(f"rows within 1e-4 of onnxruntime: {good}/{len(rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
