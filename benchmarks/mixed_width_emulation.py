"""Mixed per-layer widths, bit-exact in the Intel FPGA emulator against the simulator.

Compiles and emulates the digits CNN (its trained weights and test images), LeNet-5 and
width-reduced ResNet-18 and MobileNetV2 (examples/models.py at their CI sizes, seeded
random weights and inputs) with every multiply-accumulate layer at its own weight width
(2-8 and 16 bits) and activation width (4-8 and 16 bits), and with fc_batch 1, 4 and 16
on the models that have dense layers. Every output element of every image is compared
with the bit-accurate simulator (and every layer's dump, to name the first bad layer).

Activation widths follow the explorer's rule (cnn2gate/explore/fidelity.py formats_for):
a layer without a precision knob (pool, add, concat) takes the widest of its inputs, and
tensors that must share a format take the widest width of their group; each tensor's
format is the quantiser's choice at that width, each weight format the quantiser's
choice at that weight width (`with_weight_bits`).

Columns: the widths as `bits x count`, the accumulator bits, the storage type (`pkN`:
conv_core packs two lanes per multiplier at N-bit weights), fc_batch, images, output
elements compared, output elements that differ, layers whose dump matched every element,
seconds, and in a short design how many of its activation buffers are stored as char.

Needs the emulation runtime (`make setup`); every run is bounded by --timeout (a channel
deadlock would hang the emulator). Takes a few minutes. Last line:
`bit-exact designs: N/M` (designs whose every element matched, of those run).

    python benchmarks/mixed_width_emulation.py [--only lenet5] [--timeout 300]
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cnn2gate.emulate import EmulationTimeout, emulate_project, emulator_available  # noqa: E402
from cnn2gate.errors import Cnn2GateError  # noqa: E402
from cnn2gate.frontend import load_model  # noqa: E402
from cnn2gate.ir import GRAPH_INPUT  # noqa: E402
from cnn2gate.ops import op_for  # noqa: E402
from cnn2gate.pipeline import compile_project  # noqa: E402
from cnn2gate.quant import Formats, LayerFormat, quantize, quantize_params, validate, with_weight_bits  # noqa: E402
from cnn2gate.quant.calibrate import tied_tensors  # noqa: E402

DIGITS = ROOT / "examples" / "digits"
W_BITS = (2, 3, 4, 5, 6, 7, 8, 16)
A_BITS = (4, 5, 6, 7, 8, 16)
INPUT_BITS = 8
V4L4 = {"vec_size": 4, "lane_num": 4, "conv_gp_size_x": 3}
V8L3 = {"vec_size": 8, "lane_num": 3, "conv_gp_size_x": 5}  # pads every channel count


def knob_layers(graph) -> list[str]:
    return [layer.name for layer in graph.layers if op_for(layer).precision_knob]


def mixed_formats(graph, calib, w_bits: dict[str, int], a_bits: dict[str, int]) -> Formats:
    """Formats with these per-layer weight and activation widths (see the module doc)."""
    width = {GRAPH_INPUT: INPUT_BITS}
    for layer in graph.layers:
        width[layer.name] = a_bits.get(layer.name) or max(width[s] for s in layer.inputs)
    groups = tied_tensors(graph)
    widest: dict[str, int] = {}
    for name, b in width.items():
        widest[groups.find(name)] = max(widest.get(groups.find(name), 0), b)
    width = {name: widest[groups.find(name)] for name in width}
    runs = {b: quantize(graph, calib, bits=b) for b in sorted(set(width.values()))}
    layers = {}
    for layer in graph.layers:
        lf = runs[width[layer.name]].layers[layer.name]
        layers[layer.name] = LayerFormat(lf.out, lf.weight, dict(lf.stats))
    base = Formats(runs[INPUT_BITS].input, layers, {"input_max_abs": runs[INPUT_BITS].stats["input_max_abs"]})
    validate(base, graph, "mixed widths")
    return with_weight_bits(graph, base, w_bits, calib)


def cycle(names: list[str], values: tuple[int, ...], shift: int = 0) -> dict[str, int]:
    return {n: values[(i + shift) % len(values)] for i, n in enumerate(names)}


def designs():
    """(model, design, graph loader, calib/inputs loader, widths rule, config, fc_batch list)."""
    def digits():
        g = load_model(DIGITS / "digits_cnn.onnx")
        return g, np.load(DIGITS / "calib_x.npy"), np.load(DIGITS / "test_x.npy")

    def example(name):
        def load():
            from examples import models
            g = load_model(models.export(name, **models.SMALL[name]))
            x = np.random.default_rng(11).uniform(-1, 1, (17,) + g.input_shape)
            return g, None, x
        return load

    def explicit(w, a):
        return lambda names: (dict(zip(names, w)), dict(zip(names, a)))

    def cycled(w_shift, a_shift):
        return lambda names: (cycle(names, W_BITS, w_shift), cycle(names, A_BITS, a_shift))

    def cycled_narrow(w_shift, a_shift):  # weights 2-5 bits: conv_core packs two lanes per multiplier
        return lambda names: (cycle(names, W_BITS[:4], w_shift), cycle(names, A_BITS[:-1], a_shift))

    return [
        # every layer at a different weight and a different activation width, all <= 8: char storage
        ("digits", "all-distinct <=8", digits, explicit((2, 3, 4, 5), (4, 5, 6, 7)), V4L4, (1, 4, 16)),
        # 16-bit weights and activations among narrow ones: short storage
        ("digits", "with 16-bit", digits, explicit((16, 6, 8, 7), (8, 16, 5, 6)), V8L3, (1, 4, 16)),
        # LeNet-5: five layers, five weight and five activation widths, one of each at 16
        ("lenet5", "all-distinct", example("lenet5"), explicit((2, 16, 5, 8, 3), (16, 4, 7, 5, 6)), V8L3, (1, 4, 16)),
        # every width in turn along the network, 16 bits included (short storage)
        ("resnet18", "cycled", example("resnet18"), cycled(0, 0), V4L4, (1, 4, 16)),
        ("mobilenetv2", "cycled", example("mobilenetv2"), cycled(3, 2), V8L3, (1, 4, 16)),
        # weights 2-5 and activations 4-8 bits: char storage, DSP packing on
        ("resnet18", "cycled w<=5", example("resnet18"), cycled_narrow(1, 0), V8L3, (1,)),
        ("mobilenetv2", "cycled w<=5", example("mobilenetv2"), cycled_narrow(0, 3), V4L4, (1,)),
    ]


def images_for(fc_batch: int) -> int:
    """One group and a partial one where batching is on (17 at fc_batch 16, 5 at 4)."""
    return 2 if fc_batch == 1 else fc_batch + 1


def spread(values) -> str:
    c = Counter(values)
    return ",".join(f"{b}" + (f"x{c[b]}" if c[b] > 1 else "") for b in sorted(c))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=None, help="comma-separated model names to run")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per emulator run")
    ap.add_argument("--keep", default=None, help="keep the projects and dumps under this directory")
    args = ap.parse_args()
    ok, why = emulator_available()
    if not ok:
        print(f"emulation runtime unavailable: {why}", file=sys.stderr)
        return 2
    only = set(args.only.split(",")) if args.only else None
    unknown = (only or set()) - {d[0] for d in designs()}
    if unknown:
        ap.error(f"--only: unknown model(s) {', '.join(sorted(unknown))}; "
                 f"choose from {', '.join(sorted({d[0] for d in designs()}))}")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mixed_width_"))
    rows, loaded = [], {}
    print(f"{'model':12s} {'design':17s} {'w_bits (layers)':34s} {'a_bits (tensors)':28s} {'acc':>3s} {'data_t':9s} "
          f"{'fc_b':>4s} {'img':>3s} {'elements':>8s} {'mismatch':>8s} {'layers':>7s} {'first bad layer':16s} {'s':>6s} {'char bufs':>9s}")
    for model, design, load, rule, cfg, batches in designs():
        if only and model not in only:
            continue
        if model not in loaded:
            loaded[model] = load()
        g, calib, inputs = loaded[model]
        names = knob_layers(g)
        w_bits, a_bits = rule(names)
        fm = mixed_formats(g, calib, w_bits, a_bits)
        qg = quantize_params(g, fm)
        acts = [fm.layers[layer.name].out.bits for layer in g.layers]
        has_dense = any(op_for(layer).batched for layer in g.layers)  # fc_batch acts on these
        for fc_batch in batches if has_dense else (1,):
            n = images_for(fc_batch)
            tag = f"{model}_{design.replace(' ', '_').replace('<=', 'le')}_b{fc_batch}"
            t0 = time.perf_counter()
            out = compile_project(g, qg, "a10", dict(cfg, fc_batch=fc_batch), work / tag, force=True)
            cl = (out / "device" / "cnn2gate.cl").read_text()
            data_t = "char" if "typedef char data_t;" in cl else "short"
            packed = re.search(r"#define PACK_W_BITS (\d+)", cl)
            # a short design's activation buffers stored as char (hw/storage.py), of all
            flags = re.findall(r'\{"[^"]*", \d+, \d+, \d+, (\d)\}', (out / "host" / "layers.h").read_text())
            chars = f"{flags.count('1')}/{len(flags)}" if flags else "-"
            hw = f"{data_t}{' pk' + packed.group(1) if packed else ''}"
            try:
                res = emulate_project(out, inputs[:n], timeout=args.timeout, dump_dir=work / f"{tag}_dump")
                exact = sum(v == 0 for v in res.layer_mismatches.values())
                layers = f"{exact}/{len(g.layers)}"
                # every output element and every layer's dump, image by image
                verdict = (res.elements, res.mismatches, layers, res.first_bad_layer or "-",
                           res.passed and exact == len(g.layers))
            except EmulationTimeout:
                verdict = (0, -1, "-", "timeout", False)
            except Cnn2GateError as err:  # the host or kernels did not build: say so, go on
                print(f"  {tag}: {str(err).splitlines()[-1][:200]}", file=sys.stderr)
                verdict = (0, -1, "-", "build failed", False)
            secs = time.perf_counter() - t0
            rows.append(verdict[4])
            print(f"{model:12s} {design:17s} {spread(w_bits.values()):34s} {spread(acts):28s} {qg.acc_bits:3d} {hw:9s} "
                  f"{fc_batch:4d} {n:3d} {verdict[0]:8d} {verdict[1]:8d} {verdict[2]:>7s} {verdict[3]:16s} {secs:6.1f} {chars:>9s}",
                  flush=True)
    if args.keep:
        print(f"projects under {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(f"bit-exact designs: {sum(rows)}/{len(rows)}")
    return 0 if all(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
