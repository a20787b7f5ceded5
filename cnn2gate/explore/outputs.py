"""The files of `explore -o DIR` that the search itself produces, and its report fact.

`cnn2gate.pipeline.write_explore_outputs` writes the folder atomically (a temporary
folder renamed into place): these files, then the facts, the report and the plots.

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

from ..jsonutil import to_jsonable

FILES = ("best_config.json", "history.csv", "summary.json", "convergence.png", "pareto.png", "report.html",
         "report.json")
#: the search plots, drawn from the report's facts by its plotting code
PLOTS = ("convergence", "pareto")


def write_search_files(result, d: Path) -> None:
    """best_config.json, best_formats.json (precision only), history.csv and summary.json into d."""
    (d / "best_config.json").write_text(json.dumps(result.best_config(), indent=2, sort_keys=True) + "\n")
    if result.formats is not None:
        result.formats.to_json(d / "best_formats.json")
    write_history(result, d / "history.csv")
    (d / "summary.json").write_text(json.dumps(result.summary(), indent=2, default=to_jsonable) + "\n")


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
    run = result.run
    return {"agent": run.agent, "budget": run.budget, "seed": run.seed,
            "best": best if best is not None else {"total_ms": None}, "history": history,
            "evaluations": result.n_evals, "space_size": result.space.size}



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
