"""Choosing the design: the best feasible one that the bit-accurate simulator confirms."""
from __future__ import annotations

import numpy as np

from .accuracy import top1_accuracy
from .evaluator import Evaluation

#: how many of the best feasible designs the simulator may check before giving up
VERIFY_CANDIDATES = 5


def choose(result, sensitivity, labels=None, executor=None) -> None:
    """Set result.best (and, with precision, result.formats and result.checks); notes on failure.

    Without precision the best feasible design is taken as is. With precision, the first
    of the VERIFY_CANDIDATES best that the simulator confirms: output SQNR (the lowest over
    the graph outputs) at least the bound or, with an accuracy bound, simulated top-1
    accuracy (of the first output) on the labelled inputs within `max_accuracy_loss` points
    of the float model's. With `executor` the candidates and the
    fidelity-check points are simulated at once, as its tasks (the same choice and checks).
    """
    feasible = sorted((e for e in result.history if e.feasible), key=Evaluation.key)
    if not feasible:
        result.notes.append("no feasible design was found")
        return
    if not result.space.has_precision:
        result.best = feasible[0]
        return
    if not hasattr(sensitivity, "simulated_sqnr"):  # a plain fidelity function (tests, benchmarks)
        result.best = feasible[0]
        result.notes.append("the fidelity function given has no simulator: the design is not verified")
        return
    from ..errors import AccumulatorOverflow

    bound, checks = result.bound, result.checks
    by_accuracy = bound.max_accuracy_loss is not None
    float_acc = top1_accuracy(sensitivity.float_output(), labels) if by_accuracy else None
    pts = [e.bits for e in _spread(result.history, 6)]
    if executor is not None:
        sensitivity.presimulate([c.bits for c in feasible[:VERIFY_CANDIDATES]] + pts, executor)
    tried = []
    for cand in feasible[:VERIFY_CANDIDATES]:
        try:
            outs = sensitivity.simulated_outputs(cand.bits)
        except AccumulatorOverflow as err:
            tried.append({"evaluation": cand.index + 1, "error": str(err)})
            continue
        per_output = sensitivity.sqnr_each(outs)
        sim = min(per_output)  # every output must meet the bound
        row = {"evaluation": cand.index + 1, "model_db": round(cand.fidelity, 2), "sim_db": round(sim, 2)}
        if len(per_output) > 1:
            row["model_db_per_output"] = [round(v, 2) for v in sensitivity.sqnr_per_output(cand.bits)]
            row["sim_db_per_output"] = [round(v, 2) for v in per_output]
        if by_accuracy:
            acc = top1_accuracy(outs[0], labels)  # the first output: the class vector
            row.update(fixed_accuracy=round(acc, 3), loss_pct=round(float_acc - acc, 3))
            ok = float_acc - acc <= bound.max_accuracy_loss
        else:
            ok = sim >= bound.min_sqnr
        tried.append(row)
        if ok:
            result.best = cand
            result.formats = sensitivity.formats_for(cand.bits)
            checks.verification = {"passed": True, "sim_sqnr_db": round(sim, 2), "tried": tried}
            if "sim_db_per_output" in row:
                checks.verification["sim_sqnr_db_per_output"] = row["sim_db_per_output"]
            if by_accuracy:
                checks.verification.update(float_accuracy=round(float_acc, 3), fixed_accuracy=row["fixed_accuracy"],
                                           accuracy_loss_pct=row["loss_pct"], samples=int(len(labels)))
            break
    else:
        checks.verification = {"passed": False, "tried": tried}
        what = (f"an accuracy loss within {bound.max_accuracy_loss} points" if by_accuracy
                else f"{bound.min_sqnr} dB")
        result.notes.append(f"none of the {len(tried)} best designs reached {what} in the simulator")
    checks.fidelity_check = sensitivity.check_against_simulator(pts)


def _spread(history, n):
    """Up to n evaluations spread evenly over the history (first and last included)."""
    if len(history) <= n:
        return list(history)
    idx = np.linspace(0, len(history) - 1, n).round().astype(int)
    return [history[i] for i in sorted(set(idx))]
