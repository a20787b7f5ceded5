"""The one check of a model input: a batch (N, C, H, W), or a single sample given a batch axis."""
from __future__ import annotations

import numpy as np

from .errors import Cnn2GateError


def as_batch(model, x, what: str = "input", *, error: type[Exception] = Cnn2GateError,
             strict: bool = True) -> np.ndarray:
    """x as a float64 batch for `model` (a graph, anything with `.input_shape`, or the shape).

    what: names the data in messages (a file path for command-line inputs).
    error: the exception class raised (library entry points raise ValueError).
    strict: also refuse an empty batch and NaN or infinite values (data from the user;
    internal callers pass values through unchecked).
    """
    shape = tuple(getattr(model, "input_shape", model))
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == len(shape):
        x = x[None]
    if tuple(x.shape[1:]) != shape:
        raise error(f"{what}: samples have shape {tuple(x.shape[1:])}, the model expects {shape} (batch first)")
    if strict and not len(x):
        raise error(f"{what}: holds no samples")
    if strict and not np.all(np.isfinite(x)):
        raise error(f"{what}: contains NaN or infinite values")
    return x
