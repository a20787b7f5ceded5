"""The stages in order, and what each run leaves for the report.

compile_project        formats -> plan -> golden simulation -> project files -> estimate
                       -> facts -> report, written as one folder
write_explore_outputs  an ExploreResult -> its folder: search files, facts, report, plots
record_emulation       an emulator verdict -> facts/emulation.json, the report rebuilt
record_facts           the step all three share: write these facts, rebuild the report

The stage packages (codegen, sim, hw, explore, emulate, report) do not import this module.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .atomic import write_dir_atomic
from .batch import as_batch, internal_batch
from .codegen import board_ident, make_plan, project_files, write_tree
from .errors import ConfigError, OutputError
from .hw import estimate, load_config
from .hw.estimate import memory_refusal
from .ir.layers import Graph
from .quant.params import QuantizedGraph, quantize_params
from .report import build_report, write_fact
from .report.producers import emulation_fact, estimate_fact, formats_fact, model_fact, sim_fact
from .sim import report as sim_report
from .sim import simulate

GOLDEN_SEED = 0


def record_facts(folder, facts: dict) -> tuple[Path, Path]:
    """Write each fact (name -> document) into folder/facts and rebuild folder's report.

    Returns the paths of report.html and report.json."""
    for name, doc in facts.items():
        write_fact(folder, name, doc)
    return build_report(folder)


# ---- compile ----------------------------------------------------------------------------
def default_input(graph: Graph, n: int = 1) -> np.ndarray:
    """A deterministic input batch when none is given: uniform in [-1, 1)."""
    rng = np.random.default_rng(GOLDEN_SEED)
    return internal_batch(rng.uniform(-1.0, 1.0, size=(n,) + tuple(graph.input_shape)))


def check_memory(graph: Graph, board, config, formats=None, source: str | None = None) -> None:
    """Refuse (ConfigError, the message `estimate` gives) a design whose feature maps and weights
    the board's external memory cannot hold; `source` names the model (default: the graph's name)."""
    refusal = memory_refusal(estimate(graph, board, config, formats), source or graph.name, graph)
    if refusal is not None:
        raise ConfigError(refusal)


def compile_project(graph: Graph, formats, board, config, out_dir, *, force: bool = False,
                    golden_input=None, source: str | None = None, memory_checked: bool = False) -> Path:
    """Write the project for `graph` quantized with `formats` into out_dir; returns its path.

    board: a board name or an object with `.name`. config: an HwConfig or a dict with
    vec_size, lane_num, conv_gp_size_x. golden_input: float, one sample or a batch, in the layout the model declares;
    default a seeded random image. The directory appears complete or not at all;
    an existing one is replaced only with force=True. A design the board's external memory
    cannot hold is refused (`check_memory`, naming `source`) unless the caller has already
    checked it (memory_checked=True: the `compile` command, before calibrating).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not force:
        raise OutputError(f"{out_dir} exists; use --force to replace it")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir} exists and is not a directory")
    qg = formats if isinstance(formats, QuantizedGraph) else quantize_params(graph, formats)
    if not memory_checked:
        check_memory(graph, board, config, qg, source)
    plan = make_plan(qg, load_config(config, board))
    x = default_input(graph) if golden_input is None else as_batch(graph, golden_input, "golden input")
    sim = simulate(graph, qg, x)
    files = project_files(plan, qg, sim, *board_ident(board))
    facts = project_facts(graph, qg, x, board, config)
    write_tree(out_dir, files, force=force, finish=lambda tmp: record_facts(tmp, facts))
    return out_dir


def project_facts(graph: Graph, qg: QuantizedGraph, x: np.ndarray, board, config) -> dict:
    """What the report shows about a compiled project: model, formats, fidelity, cost."""
    est = estimate(graph, board, config, qg)  # the quantized graph: the exact accumulator width
    return {"model": model_fact(graph), "formats": formats_fact(qg.formats),
            "sim": sim_fact(sim_report(graph, qg, x)), "estimate": estimate_fact(est)}


# ---- explore ----------------------------------------------------------------------------
def write_explore_outputs(result, out_dir, *, graph, board, force: bool = False) -> Path:
    """Write every output of `explore` for `result` (searched on `graph` and `board`) into out_dir."""
    from .explore.outputs import write_search_files

    def fill(tmp: Path) -> None:
        write_search_files(result, tmp)
        record_facts(tmp, explore_facts(result, graph, board))
        _write_search_plots(tmp)

    # a failed swap restores the previous folder and leaves nothing behind
    return write_dir_atomic(out_dir, fill, force=force, what="explore output")


def explore_facts(result, graph: Graph, board) -> dict:
    """Facts of a search: the model, the chosen design's formats and estimate, the search."""
    from .explore.outputs import explore_fact

    facts = {"model": model_fact(graph)}
    if result.formats is not None:
        facts["formats"] = formats_fact(result.formats)
    est = None
    if result.best is not None:
        est = estimate(graph, board, result.best_config(), result.formats)
        facts["estimate"] = estimate_fact(est)
    facts["explore"] = explore_fact(result, est)
    return facts


def _write_search_plots(folder: Path) -> None:
    """The search plots as files too, drawn from the facts by the report's plotting code."""
    from .explore.outputs import PLOTS
    from .report.build import figure_pngs
    from .report.derive import derive
    from .report.facts import read_facts

    facts = read_facts(folder)
    pngs = figure_pngs(facts, derive(facts))
    for name in PLOTS:
        (folder / f"{name}.png").write_bytes(pngs[name])


# ---- emulate ----------------------------------------------------------------------------
def record_emulation(project, result, *, accuracy: float | None = None) -> dict:
    """Leave an EmulationResult's verdict in the project's facts and refresh its report; returns the fact."""
    fact = emulation_fact(result, accuracy=accuracy, seconds=result.wall_ms_per_image * result.images / 1e3)
    record_facts(project, {"emulation": fact})
    return fact


__all__ = ["compile_project", "project_facts", "default_input", "write_explore_outputs", "explore_facts",
           "record_emulation", "record_facts", "GOLDEN_SEED"]
