"""Turn the results of the other parts into facts documents (docs/report.md).

The producers only convert; the commands decide when to record them.
"""
from __future__ import annotations

from ..ir.summary import summarize


def model_fact(graph) -> dict:
    return summarize(graph)


def formats_fact(formats) -> dict:
    return formats.to_dict()


def sim_fact(rows: list[dict]) -> list[dict]:
    """Rows of `cnn2gate.sim.report` -> the sim fact (SQNR, saturations, accumulator bits)."""
    out = []
    for row in rows:
        entry = {"name": row["name"], "sqnr_db": row["sqnr_db"], "saturations": row["sat_low"] + row["sat_high"],
                 "format": row["format"]}
        if "acc_bits" in row:
            entry.update(acc_bits=row["acc_bits"], acc_bits_worst=row["bound_bits"],
                         weight_format=row["weight_format"])
        out.append(entry)
    return out


def estimate_fact(est) -> dict:
    """An `hw.Estimate` with the roofline figures at the top level, as the report reads them."""
    return {**est.to_dict(), "peak_gops": est.peak_gops, "mem_bandwidth_gbs": est.bandwidth_gbs}


def emulation_fact(result, *, accuracy: float | None = None, seconds: float | None = None,
                   runtime: str = "Intel(R) FPGA Emulation Platform for OpenCL(TM)") -> dict:
    doc = {
        "verdict": "PASS" if result.passed else "FAIL",
        "elements": result.elements,
        "mismatches": result.mismatches,
        "first_mismatches": [{**({"output": m.output} if result.per_output else {}), "image": m.image,
                              "index": list(m.index), "got": m.got, "expected": m.expected}
                             for m in result.first],
        "images": result.images,
        "runtime": runtime,
    }
    if result.per_output:  # a model with several outputs: each compared on its own
        doc["outputs"] = [dict(o) for o in result.per_output]
    if accuracy is not None:
        doc["accuracy"] = accuracy
    if seconds is not None:
        doc["seconds"] = seconds
    return doc
