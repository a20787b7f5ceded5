"""Top-1 accuracy against labels, and the SQNR bound derived from an accuracy bound."""
from __future__ import annotations

import numpy as np

from .options import DEFAULT_MIN_SQNR
from .space import DesignSpace


def top1_accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy (%) of model outputs (N, classes...) against labels (N,)."""
    pred = np.asarray(outputs).reshape(len(labels), -1).argmax(axis=1)
    return 100.0 * float(np.mean(pred == labels))


def calibrate_sqnr_bound(sensitivity, space: DesignSpace, labels, max_loss: float, executor=None) -> dict:
    """Derive the search's SQNR bound from an accuracy bound by measuring a few uniform designs.

    Every layer at one width b, widest first: the simulator measures top-1 accuracy (of the
    first graph output, the class vector) and the sensitivity model gives the SQNR (the
    lowest over the graph outputs). The bound is the modelled SQNR of the narrowest
    width reached before the first one losing more than `max_loss` points (so every wider
    uniform design also met the bound). If even the widest fails, DEFAULT_MIN_SQNR is kept.
    With `executor` every width is simulated at once, as its tasks (the same rows).
    """
    from ..errors import AccumulatorOverflow

    float_acc = top1_accuracy(sensitivity.float_output(), labels)
    layers = list(space.precision(space.initial))
    widths = next(k.values for k in space.knobs if k.role != "hw")
    rows, chosen = [], None
    if executor is not None:
        sensitivity.presimulate([{layer: {"w_bits": b, "a_bits": b} for layer in layers} for b in widths], executor)
    for b in sorted(widths, reverse=True):
        bits = {layer: {"w_bits": b, "a_bits": b} for layer in layers}
        row = {"bits": int(b), "model_db": round(sensitivity.sqnr(bits), 2)}
        try:
            acc = top1_accuracy(sensitivity.simulated_output(bits), labels)
        except AccumulatorOverflow as err:
            row["error"] = str(err)
            rows.append(row)
            break
        row.update(fixed_accuracy=round(acc, 3), loss_pct=round(float_acc - acc, 3))
        rows.append(row)
        if float_acc - acc > max_loss:
            break
        chosen = row
    doc = {"float_accuracy": round(float_acc, 3), "uniform": rows, "samples": int(len(labels))}
    if chosen is None:
        doc["min_sqnr_db"] = DEFAULT_MIN_SQNR
        doc["note"] = (f"no uniform width kept the accuracy loss within {max_loss} points; "
                       f"searching under the default {DEFAULT_MIN_SQNR} dB")
    else:
        doc["min_sqnr_db"] = float(chosen["model_db"])
        doc["from_uniform_bits"] = chosen["bits"]
    return doc
