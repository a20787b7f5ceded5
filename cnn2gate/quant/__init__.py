"""Fixed-point quantisation: choosing formats (calibration) and the integer parameters.

docs/fixed-point.md defines the arithmetic, docs/quantization.md the modes and the formats file.
"""
from __future__ import annotations

from dataclasses import replace

from ..ir.layers import Graph
from .calibrate import METHODS, calibrate
from .formats import Formats, LayerFormat, QFormat, from_pipecnn, in_formats, load_formats, validate
from .params import QLayer, QuantizedGraph, quantize_params


def quantize(graph: Graph, calib=None, *, bits: int = 8, method: str = "mse", weight_bits: int | None = None,
             executor=None, progress=None, max_acc_bits: int = 64) -> Formats:
    """Per-layer formats for `graph` from calibration inputs run through the float executor.

    calib: float batch (N, C, H, W); None uses a deterministic synthetic set (recorded in
    formats.stats["calibration"]). method: "maxabs", "percentile" or "mse".
    executor: a `cnn2gate.executor` executor whose shared object is `graph`: the float
    runs over the calibration batches become its tasks (same formats).
    progress: progress(1) as each calibration batch finishes (here or on the executor).
    max_acc_bits: the widest accumulator allowed (docs/fixed-point.md): 64, or 32 to keep
    every worst case inside int32 by giving up weight precision.
    """
    weight_bits = bits if weight_bits is None else weight_bits
    for b in (bits, weight_bits):
        QFormat(b, 0)  # validates the bit width
    formats = calibrate(graph, calib, bits, method, weight_bits, executor, progress, max_acc_bits)
    validate(formats, graph, "quantizer")
    return formats


def with_weight_bits(graph: Graph, formats: Formats, weight_bits: dict[str, int], calib=None, *,
                     method: str = "mse") -> Formats:
    """`formats` with the weight format of each layer named in `weight_bits` replaced by the
    one the quantiser chooses at that width (activations unchanged)."""
    runs = {b: quantize(graph, calib, bits=formats.input.bits, method=method, weight_bits=b)
            for b in sorted(set(weight_bits.values()))}
    layers = dict(formats.layers)
    for name, b in weight_bits.items():
        layers[name] = replace(layers[name], weight=runs[b].layers[name].weight)
    out = Formats(formats.input, layers, dict(formats.stats))
    validate(out, graph, "formats")
    return out


__all__ = ["quantize", "quantize_params", "with_weight_bits", "QuantizedGraph", "QLayer", "Formats", "LayerFormat",
           "QFormat",
           "load_formats", "from_pipecnn", "in_formats", "validate", "METHODS"]
