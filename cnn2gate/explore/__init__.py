"""Design-space exploration: search hardware knobs (and optionally per-layer precision).

    from cnn2gate.explore import ExploreOptions, explore
    result = explore(graph, "a10", ExploreOptions(agent="ppo", budget=1000, seed=0))
    result.best.config, result.best.total_ms, result.summary()

The space is declared in `space.py`, costed through the cached `Evaluator`
(`evaluator.py`, cost = `cnn2gate.hw.estimate`, fidelity = `fidelity.SensitivityModel`),
searched by one of `agents.AGENTS`; the chosen design is checked with the simulator
(`verify.py`, `accuracy.py`). `cnn2gate.pipeline.write_explore_outputs` writes the -o DIR
files. See docs/explore.md.
"""
from __future__ import annotations

import time

import numpy as np

from ..errors import ConfigError
from . import agents as _agents
from . import uniform as _uniform
from .accuracy import calibrate_sqnr_bound
from .costing import HwCost
from .evaluator import BudgetExhausted, Evaluation, Evaluator
from .options import (DEFAULT_AGENT, DEFAULT_BUDGET, DEFAULT_MIN_SQNR, ENUMERATE_MAX_POINTS, FIXED_KNOBS,
                      ExploreOptions, check_accuracy_request)
from .parallel import CostPool
from .result import ExploreResult, FidelityBound, SearchRun, SimulatorChecks, Timings
from .space import DesignSpace, build_space, start_at_uniform_width
from .verify import VERIFY_CANDIDATES, choose

AGENTS = tuple(_agents.AGENTS)


def explore(graph, board, options: ExploreOptions | None = None, *, progress=None, cost=None,
            space: DesignSpace | None = None, sensitivity=None, executor=None,
            build_progress=None) -> ExploreResult:
    """Search the design space of `graph` on `board` as `options` asks; returns an ExploreResult.

    progress: callback(evaluator, evaluation); build_progress: callback(done, total) while
    the sensitivity model is built (SensitivityModel.build). cost / space / sensitivity: replace the
    hardware model, the declared space or the fidelity model (tests and benchmarks).
    """
    from ..hw import load_board

    opts = ExploreOptions() if options is None else options
    if opts.cluster and executor is None:
        from ..executor import RayExecutor  # only with a cluster: nothing about Ray is loaded otherwise

        with RayExecutor(opts.cluster) as ex:
            return explore(graph, board, opts, progress=progress, cost=cost, space=space, sensitivity=sensitivity,
                           executor=ex, build_progress=build_progress)
    labels = opts.validate()
    t0 = time.perf_counter()
    board_obj = load_board(board) if cost is None or space is None else board
    board_name = getattr(board_obj, "name", str(board))
    min_sqnr = opts.min_sqnr
    if opts.precision and min_sqnr is None:
        min_sqnr = DEFAULT_MIN_SQNR
    if space is None:
        from ..hw import config as hwconfig

        legal = hwconfig.legal_values(graph, board_obj)
        legal.update({k: v for k, v in FIXED_KNOBS.items() if k in legal})
        space = build_space(graph, board_obj, precision=opts.precision, bits=opts.bits, legal=legal,
                            initial_config=hwconfig.HwConfig.defaults(board_obj).to_dict())
    if cost is None:
        cost = HwCost(graph, board_obj)
    sens_s = 0.0
    if space.has_precision and sensitivity is None:
        from .fidelity import SensitivityModel

        sensitivity = SensitivityModel.build(graph, opts.calib, opts.bits, workers=int(opts.workers),
                                             executor=executor, progress=build_progress)
        sens_s = sensitivity.seconds
    calibration = None
    if opts.max_accuracy_loss is not None:
        if not hasattr(sensitivity, "simulated_output"):
            raise ConfigError("--max-accuracy-loss needs the simulator-backed sensitivity model, "
                              "not a plain fidelity function")
        t_cal = time.perf_counter()
        calibration = calibrate_sqnr_bound(sensitivity, space, labels, opts.max_accuracy_loss, executor)
        min_sqnr = calibration["min_sqnr_db"]
        sens_s += time.perf_counter() - t_cal
    if space.has_precision:
        space = start_at_uniform_width(space, sensitivity, min_sqnr)
    board_default = space.initial
    ustart = None
    if space.has_precision and opts.uniform_start and min_sqnr is not None:
        ustart = _uniform_start(space, cost, sensitivity, min_sqnr, _weight_counts(graph),
                                executor.workers if executor is not None else int(opts.workers), executor)
        if ustart.point is not None:
            space = _uniform.starting_at(space, ustart.point)
    # a small hardware-only space is cheaper to cost whole than to search: the exact optimum
    enumerated = not space.has_precision and 0 < space.size <= int(opts.enumerate_up_to)
    agent, budget = ("exhaustive", space.size) if enumerated else (opts.agent, int(opts.budget))
    ev = Evaluator(space, cost, fidelity=sensitivity if space.has_precision else None,
                   min_sqnr=min_sqnr if space.has_precision else None, budget=budget, agent=agent,
                   on_evaluation=progress, features=_features(graph, board_obj),
                   weight_counts=_weight_counts(graph) if space.has_precision else None)
    # with a cluster, batches of points are costed as its tasks (no fork pool here: a fork after
    # Ray has started its threads can hang)
    batched = _agents.batches(agent)
    cost_workers = (executor.workers if executor is not None else int(opts.workers)) if batched else 1
    if ustart is not None and ustart.point is not None:
        # the incumbent: costed first, as evaluation 1 of the budget, whatever the agent does next
        ev.agent = _uniform.AGENT
        ev.evaluate(space.initial)
        ev.agent = agent
    _search(ev, agent, opts.seed, cost, cost_workers, executor if batched else None)
    initial = ev.cache.get(board_default)
    if initial is None:  # costed outside the budget, for the summary only
        initial = Evaluator(space, cost, fidelity=ev.fidelity, min_sqnr=ev.min_sqnr,
                            agent=agent, weight_counts=ev.weight_counts).evaluate(board_default)
    run = SearchRun(graph.name, board_name, agent, int(opts.seed), budget, workers=cost_workers)
    bound = FidelityBound(min_sqnr, None if opts.max_accuracy_loss is None else float(opts.max_accuracy_loss),
                          calibration)
    result = ExploreResult(run, space, ev, None, initial, bound=bound, timings=Timings(sensitivity_s=sens_s),
                           enumerated=enumerated, uniform_start=ustart)
    if enumerated:
        result.notes.append(f"the hardware space ({space.size:,} points) was enumerated: the best design is the "
                            f"exact optimum (--agent runs a search instead)")
    if calibration is not None and calibration.get("note"):
        result.notes.append(calibration["note"])
    choose(result, sensitivity, labels, executor)
    result.timings.wall_s = time.perf_counter() - t0
    return result


def _search(ev: Evaluator, agent: str, seed: int, cost, workers: int, executor=None) -> None:
    """Run the agent until it stops or the budget is spent, on a cost pool when workers > 1
    (on the executor's cluster when one is given)."""
    search = _agents.get(agent)  # imported before the pool forks
    if executor is not None:
        ev.pool = CostPool(cost, ev.fidelity, workers, executor)
    elif workers > 1:
        ev.pool = CostPool(cost, ev.fidelity, workers)
    try:
        search(ev, seed)
    except BudgetExhausted:
        pass
    finally:
        if ev.pool is not None:
            ev.pool.close()
            ev.pool = None


def _uniform_start(space, cost, fidelity, min_sqnr, weight_counts, workers: int, executor=None):
    """The best uniform-width design: every hardware config costed at each minimal width pair
    (uniform.py), the batches on a cost pool as the exhaustive agent's are."""
    def run(ev):
        _search(ev, "exhaustive", 0, cost, workers, executor)

    return _uniform.find(space, cost, fidelity, min_sqnr, weight_counts=weight_counts, run=run,
                         max_points=ENUMERATE_MAX_POINTS)


def _weight_counts(graph) -> dict:
    """Weights of each layer with a precision knob: the weights of the weight-memory objective."""
    from .space import has_precision_knob

    out = {}
    for layer in graph.layers:
        if has_precision_knob(layer):
            w = getattr(layer, "weight", None)
            out[layer.name] = int(w.size) if w is not None else int(layer.params())
    return out


def _features(graph, board):
    from .features import board_features, model_features

    try:
        return np.concatenate([model_features(graph), board_features(board)])
    except (AttributeError, TypeError):  # a stand-in board without the catalogue's fields
        return model_features(graph)


__all__ = ["explore", "ExploreOptions", "ExploreResult", "SearchRun", "FidelityBound", "SimulatorChecks", "Timings",
           "AGENTS", "DEFAULT_AGENT", "DEFAULT_BUDGET", "DEFAULT_MIN_SQNR", "ENUMERATE_MAX_POINTS", "FIXED_KNOBS",
           "VERIFY_CANDIDATES",
           "DesignSpace", "Evaluator", "Evaluation", "build_space", "calibrate_sqnr_bound", "check_accuracy_request"]
