"""The summary table `explore` prints on stdout."""
from __future__ import annotations

from ..ir.summary import format_table


def render_summary(result) -> str:
    doc = result.summary()
    best, init, run, bound = result.best, result.initial, result.run, result.bound
    lines = [f"explore {run.model} on {run.board}: agent {run.agent}, seed {run.seed}, "
             f"{result.n_evals} evaluations ({doc['cache_hits']} repeat requests answered from the cache) "
             f"of a {result.space.size:,}-point space in {result.timings.wall_s:.1f} s", ""]
    rows = []
    for label, e in (("board default", init), ("best found", best)):
        if e is None:
            rows.append([label, "-", "-", "-", "-", "-", "-"])
            continue
        cfg = " ".join(f"{k}={v}" for k, v in e.config.items())
        fid = "" if e.fidelity is None else f"{e.fidelity:.1f}"
        rows.append([label, cfg, f"{e.total_ms:.3f}", f"{e.resources.get('dsp', 0):.1f}",
                     f"{e.resources.get('alm', 0):.1f}", f"{e.resources.get('ram_blocks', 0):.1f}",
                     ("yes" if e.feasible else "no") + (f" ({fid} dB)" if fid else "")])
    lines.append(format_table(rows, ["design", "config", "ms", "DSP %", "ALM %", "RAM %", "feasible"]))
    us = result.uniform_start
    if us is not None:
        lines.append("")
        how = (f" (the exact hardware optimum over {len(us.pairs)} uniform width pair(s): {us.evaluations:,} "
               f"configurations costed outside the budget in {us.seconds:.1f} s; the search started there)"
               if us.best is not None else "")
        lines.append(us.describe() + how)
    if best is None:
        lines.append("\nno feasible design found")
        return "\n".join(lines)
    lines.append("")
    if doc["speedup_vs_initial"]:
        lines.append(f"speed-up over the board default: {doc['speedup_vs_initial']:.2f}x; "
                     f"best found at evaluation {doc['best_found_at_evaluation']}")
    if best.bits is not None:
        widths = ", ".join(f"{layer} w{b['w_bits']}/a{b['a_bits']}" for layer, b in best.bits.items())
        lines.append(f"precision: {widths}")
        v = result.checks.verification or {}
        if v.get("passed") and bound.max_accuracy_loss is not None:
            lines.append(f"simulator: top-1 accuracy {v['fixed_accuracy']:.2f} % vs float {v['float_accuracy']:.2f} % "
                         f"on {v['samples']} labelled inputs (loss {v['accuracy_loss_pct']:.2f} points, bound "
                         f"{bound.max_accuracy_loss}); search bound {bound.min_sqnr} dB modelled SQNR, "
                         f"simulated {v['sim_sqnr_db']:.1f} dB")
        elif v.get("passed"):
            each = v.get("sim_sqnr_db_per_output")
            lowest = f", the lowest of {', '.join(f'{x:.1f}' for x in each)} dB at the outputs" if each else ""
            lines.append(f"simulator: {v['sim_sqnr_db']:.1f} dB output SQNR{lowest} (bound {bound.min_sqnr} dB, "
                         f"model said {best.fidelity:.1f} dB)")
        fc = result.checks.fidelity_check or {}
        if fc.get("mean_abs_error_db") is not None:
            lines.append(f"sensitivity model vs simulator on {len(fc['points'])} points: mean |error| "
                         f"{fc['mean_abs_error_db']} dB, max {fc['max_abs_error_db']} dB")
    for note in doc["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)
