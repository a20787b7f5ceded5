"""Figures the report computes from the facts: the per-layer join and the headline numbers.

Everything here is pure (dicts in, dicts out) and ends up under "derived" in report.json,
so scripts can read the same numbers the HTML shows.
"""
from __future__ import annotations

from collections import Counter

from .facts import FORMAT_KEYS, RESOURCES, WEIGHT_FORMAT_KEYS, ReportError


def derive(facts: dict) -> dict:
    """The derived figures for whichever facts are present (see docs/report.md)."""
    model = facts["model"]
    names = [layer["name"] for layer in model["layers"]]
    by_fact = {
        "formats": _index_mapping(facts.get("formats", {}).get("layers", {}), names, "formats"),
        "sim": _index_list(facts.get("sim", []), names, "sim"),
        "estimate": _index_list(facts.get("estimate", {}).get("layers", []), names, "estimate"),
    }
    total_ms = facts["estimate"]["total_ms"] if "estimate" in facts else None
    layers = [_join(layer, by_fact, total_ms) for layer in model["layers"]]
    derived = {"layers": layers, "model": _model_figures(model)}
    if "estimate" in facts:
        derived["performance"] = _performance(facts["estimate"], layers)
    if "sim" in facts:
        derived["accuracy"] = _accuracy(facts["sim"])
    if "explore" in facts:
        derived["explore"] = _explore(facts["explore"])
    if "emulation" in facts:
        derived["emulation"] = _emulation(facts["emulation"])
    return derived


def _index_list(entries: list, names: list[str], fact: str) -> dict:
    repeated = sorted(n for n, c in Counter(e["name"] for e in entries).items() if c > 1)
    if repeated:
        raise ReportError(f"facts/{fact}.json lists layer(s) {', '.join(repeated)} more than once")
    return _index_mapping({e["name"]: e for e in entries}, names, fact)


def _index_mapping(mapping: dict, names: list[str], fact: str) -> dict:
    unknown = sorted(set(mapping) - set(names))
    if unknown:
        raise ReportError(
            f"facts/{fact}.json names layer(s) {', '.join(unknown)} that facts/model.json does not have "
            "(stale facts from another model? re-run the command that wrote it)")
    return mapping


def _join(layer: dict, by_fact: dict, total_ms: float | None) -> dict:
    name = layer["name"]
    row = {key: layer.get(key) for key in ("name", "kind", "detail", "act", "in_shape", "out_shape",
                                           "params", "macs")}
    fmt = by_fact["formats"].get(name)
    row["format"] = None if fmt is None else {k: fmt[k] for k in FORMAT_KEYS + WEIGHT_FORMAT_KEYS if k in fmt}
    sim = by_fact["sim"].get(name)
    row["sim"] = None if sim is None else {k: sim.get(k) for k in ("sqnr_db", "saturations", "acc_bits",
                                                                     "acc_bits_worst")}
    est = by_fact["estimate"].get(name)
    if est is None:
        row["estimate"] = None
    else:
        row["estimate"] = {k: est[k] for k in ("cycles", "ms", "bound", "ops", "bytes", "intensity")}
        ms = est["ms"]
        row["estimate"]["attained_gops"] = est["ops"] / (ms * 1e6) if ms and est["ops"] else None
        row["estimate"]["time_pct"] = 100.0 * ms / total_ms if total_ms else None
    return row


def _model_figures(model: dict) -> dict:
    kinds = Counter(layer["kind"] for layer in model["layers"])
    return {
        "layer_count": len(model["layers"]),
        "kinds": dict(sorted(kinds.items())),
        "total_params": model["total_params"],
        "total_macs": model["total_macs"],
        "gmacs": model["total_macs"] / 1e9,
    }


def _performance(est: dict, layers: list[dict]) -> dict:
    total_ms = est["total_ms"]
    timed = [row for row in layers if row["estimate"] is not None]
    slowest = max(timed, key=lambda r: r["estimate"]["ms"], default=None)
    peak, bandwidth = est["peak_gops"], est["mem_bandwidth_gbs"]
    bounds = Counter(row["estimate"]["bound"] for row in timed)
    return {
        "total_ms": total_ms,
        "images_per_s": 1000.0 / total_ms if total_ms else None,
        "gops": est["gops"],
        "peak_gops": peak,
        "efficiency_pct": 100.0 * est["gops"] / peak if peak else None,
        "ridge_intensity": peak / bandwidth if bandwidth else None,
        "compute_bound_layers": bounds.get("compute", 0),
        "memory_bound_layers": bounds.get("memory", 0),
        "bottleneck": None if slowest is None else {
            "name": slowest["name"], "ms": slowest["estimate"]["ms"],
            "time_pct": slowest["estimate"]["time_pct"]},
        "fits": bool(est["fits"]),
        "worst_resource": max(RESOURCES, key=lambda r: est["resources"][r]["pct"]),
    }


def _accuracy(sim: list[dict]) -> dict:
    scored = [e for e in sim if e.get("sqnr_db") is not None]
    worst = min(scored, key=lambda e: e["sqnr_db"], default=None)
    saturations = sum(int(e.get("saturations") or 0) for e in sim)
    return {
        "worst_sqnr": None if worst is None else {"name": worst["name"], "sqnr_db": worst["sqnr_db"]},
        "mean_sqnr_db": sum(e["sqnr_db"] for e in scored) / len(scored) if scored else None,
        "total_saturations": saturations,
        "layers_saturating": sum(1 for e in sim if (e.get("saturations") or 0) > 0),
        "widest_accumulator": max((e["acc_bits_worst"] for e in sim if e.get("acc_bits_worst") is not None),
                                  default=None),
    }


def _explore(exp: dict) -> dict:
    history = sorted(exp["history"], key=lambda h: h["index"])
    best_so_far, best, best_index = [], None, None
    for h in history:
        if h["fits"] and h["total_ms"] is not None and (best is None or h["total_ms"] < best):
            best, best_index = h["total_ms"], h["index"]
        best_so_far.append(best)
    return {
        "evaluations": len(history),
        "fitting": sum(1 for h in history if h["fits"]),
        "agents": sorted({h["agent"] for h in history}),
        "best_ms": best,
        "best_found_at": best_index,
        "best_so_far_ms": best_so_far,
        "pareto_dsp": pareto_front(history, "dsp"),
        "pareto_alm": pareto_front(history, "alm"),
    }


def pareto_front(history: list[dict], resource: str) -> list[int]:
    """Indices of the fitting designs that no other fitting design beats on both latency and `resource`.

    Ties on both objectives keep the earliest evaluation. Sorted by latency.
    """
    points = [(h["total_ms"], h[resource], h["index"]) for h in history
              if h["fits"] and h["total_ms"] is not None and h.get(resource) is not None]
    front, lowest = [], None
    for ms, res, index in sorted(points):
        if lowest is None or res < lowest:
            front.append(index)
            lowest = res
    return front


#: how the first-mismatch columns are ordered: where first, then the values; other keys after, sorted
MISMATCH_ORDER = ("output", "image", "layer", "index", "position", "expected", "actual", "got", "diff")


def _emulation(emu: dict) -> dict:
    elements = emu["elements"]
    keys = {k for m in emu.get("first_mismatches") or [] if isinstance(m, dict) for k in m}
    return {
        "passed": emu["verdict"] == "PASS",
        "mismatch_pct": 100.0 * emu["mismatches"] / elements if elements else None,
        "mismatch_columns": [k for k in MISMATCH_ORDER if k in keys] + sorted(keys - set(MISMATCH_ORDER)),
    }
