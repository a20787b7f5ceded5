"""Host memory for the data cnn2gate makes itself (synthetic calibration, explore's sensitivity
model, golden data).

A model with a huge input (say 1x3x60000x60000) parses fine, but generating 16 synthetic
images for it and running the float executor over them would die half-way in a numpy
MemoryError. `check_*` compare a lower bound of what the run allocates with the memory
the machine has free and refuse up front, naming the input shape and what to pass instead.
The bounds count the arrays that are certainly alive at once (the generated inputs, every
tensor of one float batch, every tensor of the integer golden run), not temporaries.
"""
from __future__ import annotations

import os

from .errors import Cnn2GateError
from .ir.layers import Graph
from .ops.base import prod

GIB = 1 << 30


def available_bytes() -> int | None:
    """Memory the machine can give without swapping (MemAvailable, else the physical total)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def tensor_elems(graph: Graph) -> int:
    """Elements of one image's input and every layer output (the executors keep them all)."""
    return prod(graph.input_shape) + sum(prod(layer.out_shape) for layer in graph.layers)


def calibration_bytes(graph: Graph, samples: int, synthetic: bool) -> int:
    """Synthetic images (float64 drawn, float32 kept) and one float batch's tensors (float32)."""
    from .quant.calibrate import BATCH_MACS

    batch = int(max(1, min(samples, BATCH_MACS // max(graph.total_macs(), 1))))
    made = samples * prod(graph.input_shape) * 12 if synthetic else 0
    return made + batch * tensor_elems(graph) * 4


def sensitivity_bytes(graph: Graph, samples: int, synthetic: bool) -> int:
    """explore's sensitivity model: the synthetic images (as for calibration) and the float
    reference of the whole set at once (every tensor of every sample, float32 at least), which
    it keeps while it re-runs the network for each tensor's noise."""
    made = samples * prod(graph.input_shape) * 12 if synthetic else 0
    return made + samples * tensor_elems(graph) * 4


def golden_bytes(graph: Graph) -> int:
    """One image through the integer simulator (int64 tensors) and the float reference (float32)."""
    return tensor_elems(graph) * (8 + 4) + prod(graph.input_shape) * 8


def _refuse(source: str, graph: Graph, what: str, need: int, have: int, instead: str) -> None:
    shape = tuple(graph.input_shape)
    raise Cnn2GateError(f"{source}: input shape {shape}: {what} needs at least {need / GIB:.1f} GiB of host memory, "
                        f"{have / GIB:.1f} GiB available; {instead}")


_SMALLER = ("the model cannot be run at this input size on this machine: export it with a smaller input (or, when "
            "its input dimensions are symbolic, give a smaller --input-shape C,H,W)")


def _shortfall(graph: Graph, samples: int | None, available: int | None, size):
    """(needed, available, synthetic, samples, bytes for one sample) when `size(graph, n,
    synthetic)` does not fit the memory available; None when it fits or nothing is known.
    samples None: the synthetic set."""
    from .quant.calibrate import synthetic_count

    have = available_bytes() if available is None else available
    if have is None:
        return None
    synthetic = samples is None
    n = synthetic_count(graph) if synthetic else samples
    need = size(graph, n, synthetic)
    if need <= have:
        return None
    return need, have, synthetic, n, size(graph, 1, False)


def check_calibration(source: str, graph: Graph, samples: int | None, *, formats_option: bool = False,
                      available: int | None = None) -> None:
    """Refuse a calibration run that cannot fit; samples None: the synthetic set."""
    short = _shortfall(graph, samples, available, calibration_bytes)
    if short is None:
        return
    need, have, synthetic, n, one = short
    if one > have:
        instead = _SMALLER
    elif synthetic:
        instead = (f"pass --calib with a few samples of your own (one sample needs about {one / GIB:.1f} GiB)"
                   + (", or --formats from an earlier `quantize`" if formats_option else ""))
    else:
        instead = f"pass fewer calibration samples (one needs about {one / GIB:.1f} GiB)"
    what = f"calibrating on the synthetic set ({n} samples)" if synthetic else f"calibrating on {n} samples"
    _refuse(source, graph, what, need, have, instead)


def check_sensitivity(source: str, graph: Graph, samples: int | None, *, available: int | None = None) -> None:
    """Refuse explore's precision search when its sensitivity model cannot fit; samples None: the
    synthetic set."""
    short = _shortfall(graph, samples, available, sensitivity_bytes)
    if short is None:
        return
    need, have, synthetic, n, one = short
    if one > have:
        instead = _SMALLER
    else:
        instead = (f"pass --calib with fewer samples (one needs about {one / GIB:.1f} GiB), or search the hardware "
                   "alone (without --precision)")
    what = (f"the precision search's sensitivity model on the synthetic set ({n} samples)" if synthetic
            else f"the precision search's sensitivity model on {n} samples")
    _refuse(source, graph, what, need, have, instead)


def check_golden(source: str, graph: Graph, *, available: int | None = None) -> None:
    """Refuse `compile`'s golden run (one image, simulator and float reference) when it cannot fit."""
    have = available_bytes() if available is None else available
    if have is None:
        return
    need = golden_bytes(graph)
    if need > have:
        _refuse(source, graph, "computing the golden data (one image)", need, have, _SMALLER)
