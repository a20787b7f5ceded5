"""The one check of a model input: a batch (N, C, H, W), or a single sample given a batch axis.

Data from the user comes in the layout the ONNX model declares (NHWC for a Keras export);
the IR is channels-first, so such a batch is transposed here, once, and returned tagged as
`InternalBatch` so that a later check passes it through unchanged.
"""
from __future__ import annotations

import numpy as np

from .errors import Cnn2GateError

#: Declared layout -> the axes of a (N, ...) batch in the IR's (N, C, H, W) order.
_TO_NCHW = {"NHWC": (0, 3, 1, 2)}


class InternalBatch(np.ndarray):
    """A checked batch in the IR's channels-first layout (never converted again)."""


def as_batch(model, x, what: str = "input", *, error: type[Exception] = Cnn2GateError,
             strict: bool = True) -> np.ndarray:
    """x as a float64 batch for `model` (a graph, anything with `.input_shape`, or the shape).

    A graph with a channels-last `input_layout` takes samples as declared ((H, W, C)) or
    already channels-first ((C, H, W)); an ambiguous shape (C = H = W) is read as declared.
    what: names the data in messages (a file path for command-line inputs).
    error: the exception class raised (library entry points raise ValueError).
    strict: also refuse an empty batch and NaN or infinite values (data from the user;
    internal callers pass values through unchanged).
    """
    shape = tuple(getattr(model, "input_shape", model))
    layout = getattr(model, "input_layout", "NCHW")
    declared = tuple(getattr(model, "declared_input_shape", shape))
    converted = isinstance(x, InternalBatch)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == len(shape):
        x = x[None]
    sample = tuple(x.shape[1:])
    if layout in _TO_NCHW and not converted and sample == declared:
        x = np.ascontiguousarray(x.transpose(_TO_NCHW[layout]))
    elif sample != shape:
        as_declared = f" ({layout}, as the ONNX model declares it)" if layout != "NCHW" else ""
        raise error(f"{what}: samples have shape {sample}, the model expects {declared}{as_declared} (batch first)")
    if strict and not len(x):
        raise error(f"{what}: holds no samples")
    if strict and not np.all(np.isfinite(x)):
        raise error(f"{what}: contains NaN or infinite values")
    return x.view(InternalBatch) if layout in _TO_NCHW else x


def internal_batch(x: np.ndarray) -> np.ndarray:
    """Tag a batch made inside cnn2gate (already channels-first) so `as_batch` keeps it as is."""
    return np.asarray(x).view(InternalBatch)
