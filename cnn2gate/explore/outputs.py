"""The files of `explore -o DIR`, written atomically (a temporary folder renamed into place).

best_config.json  the chosen hardware config (input to `compile --config`, `estimate --config`)
best_formats.json the chosen per-layer formats (precision search only; `--formats` input)
history.csv       one row per evaluation: index, agent, config, total_ms, fits, fidelity
summary.json      ExploreResult.summary()
convergence.png   best feasible latency vs evaluations
pareto.png        latency vs DSP and vs ALM use, Pareto fronts marked
facts/            model, chosen design's estimate, search history (docs/report.md)
report.html       the report built from facts/ (self-contained), with report.json
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from ..atomic import write_dir_atomic

FILES = ("best_config.json", "history.csv", "summary.json", "convergence.png", "pareto.png", "report.html",
         "report.json")


def write_outputs(result, out_dir, *, graph, board, force: bool = False) -> Path:
    """Write every output of `explore` for `result` (searched on `graph` and `board`) into out_dir."""
    def fill(tmp: Path) -> None:
        _write_all(result, tmp)
        _write_report(result, graph, board, tmp)

    # a failed swap restores the previous folder and leaves nothing behind
    return write_dir_atomic(out_dir, fill, force=force, what="explore output")


def _write_all(result, d: Path) -> None:
    (d / "best_config.json").write_text(json.dumps(result.best_config(), indent=2, sort_keys=True) + "\n")
    if result.formats is not None:
        result.formats.to_json(d / "best_formats.json")
    write_history(result, d / "history.csv")
    (d / "summary.json").write_text(json.dumps(result.summary(), indent=2, default=_json) + "\n")


def _write_report(result, graph, board, d: Path) -> None:
    """Facts for the shared report: the model, the chosen design's estimate, the search."""
    from ..hw import estimate
    from ..report import build_report, write_fact
    from ..report.producers import estimate_fact, formats_fact, model_fact

    write_fact(d, "model", model_fact(graph))
    if result.formats is not None:
        write_fact(d, "formats", formats_fact(result.formats))
    est = None
    if result.best is not None:
        est = estimate(graph, board, result.best_config(), result.formats)
        write_fact(d, "estimate", estimate_fact(est))
    write_fact(d, "explore", explore_fact(result, est))
    build_report(d)
    # the search plots as files too, drawn by the report's plotting code
    from ..report.build import figure_pngs
    from ..report.derive import derive
    from ..report.facts import read_facts

    facts = read_facts(d)
    pngs = figure_pngs(facts, derive(facts))
    for name in ("convergence", "pareto"):
        (d / f"{name}.png").write_bytes(pngs[name])


def explore_fact(result, est) -> dict:
    """The search as the report reads it; resource use in counts of the board's blocks."""
    available = {res: est.resources.to_dict()[res]["available"] for res in ("dsp", "alm")} if est else {}
    history = []
    for e in result.history:
        entry = {"index": e.index, "agent": e.agent, "config": dict(e.config),
                 "total_ms": e.total_ms if math.isfinite(e.total_ms) else None, "fits": bool(e.fits),
                 "feasible": bool(e.feasible), "fidelity": e.fidelity}
        for res, avail in available.items():
            entry[res] = e.resources.get(res, 0.0) * avail / 100.0
        history.append(entry)
    best = None if result.best is None else {**result.best.config, "total_ms": result.best.total_ms,
                                             "index": result.best.index}
    return {"agent": result.agent, "budget": result.budget, "seed": result.seed,
            "best": best if best is not None else {"total_ms": None}, "history": history,
            "evaluations": result.n_evals, "space_size": result.space.size}


def _json(o):
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"cannot serialise {type(o).__name__}")


def write_history(result, path: Path) -> None:
    space = result.space
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "agent", "config", "total_ms", "fits", "fidelity", "feasible", "dsp_pct", "alm_pct",
                    "ram_blocks_pct"])
        for e in result.history:
            w.writerow([e.index, e.agent, json.dumps(space.describe(e.point), sort_keys=True, separators=(",", ":")),
                        f"{e.total_ms:.6f}", int(e.fits), "" if e.fidelity is None else f"{e.fidelity:.3f}",
                        int(e.feasible), f"{e.resources.get('dsp', 0):.2f}", f"{e.resources.get('alm', 0):.2f}",
                        f"{e.resources.get('ram_blocks', 0):.2f}"])
