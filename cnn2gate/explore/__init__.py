"""Design-space exploration: search hardware knobs (and optionally per-layer precision).

    from cnn2gate.explore import explore
    result = explore(graph, "a10", agent="ppo", budget=1000, seed=0)
    result.best.config, result.best.total_ms, result.summary()

The space is declared in `space.py`, costed through the cached `Evaluator`
(`evaluator.py`, cost = `cnn2gate.hw.estimate`, fidelity = `fidelity.SensitivityModel`),
searched by one of `agents.AGENTS`; `outputs.py` writes the -o DIR files. See docs/explore.md.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from . import agents as _agents
from .costing import HwCost
from .evaluator import BudgetExhausted, Evaluation, Evaluator
from .parallel import CostPool
from .space import PRECISION_BITS, DesignSpace, build_space, start_at_uniform_width

DEFAULT_AGENT = "ppo"
DEFAULT_BUDGET = 1000
#: SQNR bound (dB) used when precision is explored without --min-sqnr
DEFAULT_MIN_SQNR = 30.0
#: how many of the best feasible designs the simulator may check before giving up
VERIFY_CANDIDATES = 5
#: fc_batch > 1 only amortises dense weights over several images, which the generated
#: host never does (it runs one image at a time): the explorer keeps it at 1.
FIXED_KNOBS = {"fc_batch": [1]}

AGENTS = tuple(_agents.AGENTS)


@dataclass
class ExploreResult:
    model: str
    board: str
    agent: str
    seed: int
    budget: int
    space: DesignSpace
    evaluator: Evaluator
    best: Evaluation | None  # the chosen design (feasible and, with precision, verified)
    initial: Evaluation | None  # the board's default design, for comparison
    wall_s: float
    min_sqnr: float | None = None
    verification: dict | None = None  # simulator check of the chosen design (precision only)
    fidelity_check: dict | None = None  # sensitivity model vs simulator on a few points
    sensitivity_s: float = 0.0
    formats: object = None  # quant.Formats of the chosen design (precision only)
    notes: list = field(default_factory=list)
    max_accuracy_loss: float | None = None  # accuracy bound (percentage points), when asked for
    accuracy_calibration: dict | None = None  # how the SQNR proxy bound was derived from it
    workers: int = 1  # processes that costed design points

    @property
    def history(self) -> list[Evaluation]:
        return self.evaluator.history

    @property
    def n_evals(self) -> int:
        return self.evaluator.n_evals

    def best_config(self) -> dict:
        if self.best is None:
            raise ConfigError(f"no feasible design found for {self.model} on {self.board} in {self.n_evals} evaluations")
        return dict(self.best.config)

    def convergence(self) -> list[float]:
        """Best feasible latency after each evaluation (inf before the first feasible one)."""
        out, best = [], math.inf
        for ev in self.history:
            if ev.feasible and ev.total_ms < best:
                best = ev.total_ms
            out.append(best)
        return out

    def summary(self) -> dict:
        ev = self.evaluator
        best = self.best
        doc = {
            "model": self.model, "board": self.board, "agent": self.agent, "seed": self.seed,
            "budget": self.budget, "evaluations": ev.n_evals, "requests": ev.requests,
            "cache_hits": ev.requests - ev.n_evals,
            "space": {"size": self.space.size, "knobs": {k.name: list(k.values) for k in self.space.knobs},
                      "precision": self.space.has_precision, "fixed": FIXED_KNOBS},
            "min_sqnr_db": self.min_sqnr,
            "max_accuracy_loss_pct": self.max_accuracy_loss,
            "accuracy_calibration": self.accuracy_calibration,
            "best": None if best is None else _evaluation_doc(best, self.space),
            "best_found_at_evaluation": None if best is None else best.index + 1,
            "initial": None if self.initial is None else _evaluation_doc(self.initial, self.space),
            "speedup_vs_initial": (round(self.initial.total_ms / best.total_ms, 3)
                                   if best is not None and self.initial is not None and self.initial.feasible else None),
            "feasible_fraction": round(sum(e.feasible for e in ev.history) / max(ev.n_evals, 1), 4),
            "wall_s": round(self.wall_s, 3),
            "workers": self.workers,
            "cost_model_ms_per_evaluation": round(1e3 * ev.cost_seconds / max(ev.n_evals, 1), 4),
            "sensitivity_model_s": round(self.sensitivity_s, 3),
            "fidelity_check": self.fidelity_check,
            "verification": self.verification,
            "notes": list(self.notes),
        }
        return doc


def _evaluation_doc(e: Evaluation, space: DesignSpace) -> dict:
    doc = {"config": dict(e.config), "total_ms": round(e.total_ms, 6), "fits": e.fits, "feasible": e.feasible,
           "resources_pct": {k: round(v, 2) for k, v in e.resources.items()}}
    if e.bits is not None:
        doc["bits"] = space.describe(e.point)["bits"]
        doc["fidelity_db"] = round(e.fidelity, 2)
    return doc


def explore(graph, board, *, agent: str = DEFAULT_AGENT, budget: int = DEFAULT_BUDGET, seed: int = 0,
            precision: bool = False, min_sqnr: float | None = None, calib=None,
            bits=PRECISION_BITS, progress=None, cost=None, space: DesignSpace | None = None,
            sensitivity=None, max_accuracy_loss: float | None = None, labels=None,
            workers: int = 1) -> ExploreResult:
    """Search the design space of `graph` on `board` with `agent`; returns an ExploreResult.

    budget: distinct design points the agent may cost. precision: also choose per-layer
    weight/activation widths from `bits`, under `min_sqnr` dB (default 30) of modelled
    output SQNR; calib: calibration inputs (N, C, H, W) for the quantiser and the
    sensitivity model (a synthetic set when None). progress: callback(evaluator, evaluation).
    cost / space / sensitivity: replace the hardware model, the declared space or the
    fidelity model (tests and benchmarks).
    max_accuracy_loss: bound (percentage points) on top-1 accuracy lost by the quantized
    design against the float model on the inputs `calib` with class `labels` (N,); needs
    precision, excludes min_sqnr. The search uses an SQNR bound calibrated from it
    (`calibrate_sqnr_bound`); the chosen design's accuracy is measured with the simulator.
    workers: processes that cost design points (and build the sensitivity model); agents
    that propose points in batches (ppo, bo, random, exhaustive) cost them in parallel.
    The result does not depend on it.
    """
    from ..hw import load_board

    if agent not in _agents.AGENTS:
        raise ConfigError(f"unknown agent {agent!r}; choose one of {', '.join(_agents.AGENTS)}")
    if not isinstance(budget, (int, np.integer)) or budget < 1:
        raise ConfigError(f"budget must be a positive integer, got {budget!r}")
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    labels = check_accuracy_request(precision=precision, min_sqnr=min_sqnr, max_accuracy_loss=max_accuracy_loss,
                                    calib=calib, labels=labels)
    if min_sqnr is not None and not precision:
        raise ConfigError("--min-sqnr bounds the precision search: add --precision")
    t0 = time.perf_counter()
    board_obj = load_board(board) if cost is None or space is None else board
    board_name = getattr(board_obj, "name", str(board))
    if precision and min_sqnr is None:
        min_sqnr = DEFAULT_MIN_SQNR
    if space is None:
        from ..hw import config as hwconfig

        legal = hwconfig.legal_values(graph, board_obj)
        legal.update({k: v for k, v in FIXED_KNOBS.items() if k in legal})
        space = build_space(graph, board_obj, precision=precision, bits=bits, legal=legal,
                            initial_config=hwconfig.HwConfig.defaults(board_obj).to_dict())
    if cost is None:
        cost = HwCost(graph, board_obj)
    sens_s = 0.0
    if space.has_precision and sensitivity is None:
        from .fidelity import SensitivityModel

        sensitivity = SensitivityModel.build(graph, calib, bits, workers=int(workers))
        sens_s = sensitivity.seconds
    calibration = None
    if max_accuracy_loss is not None:
        if not hasattr(sensitivity, "simulated_output"):
            raise ConfigError("--max-accuracy-loss needs the simulator-backed sensitivity model, "
                              "not a plain fidelity function")
        t_cal = time.perf_counter()
        calibration = calibrate_sqnr_bound(sensitivity, space, labels, max_accuracy_loss)
        min_sqnr = calibration["min_sqnr_db"]
        sens_s += time.perf_counter() - t_cal
    if space.has_precision:
        space = start_at_uniform_width(space, sensitivity, min_sqnr)
    features = _features(graph, board_obj)
    ev = Evaluator(space, cost, fidelity=sensitivity if space.has_precision else None,
                   min_sqnr=min_sqnr if space.has_precision else None, budget=int(budget), agent=agent,
                   on_evaluation=progress, features=features)
    search = _agents.get(agent)
    cost_workers = int(workers) if _agents.batches(agent) else 1
    if cost_workers > 1:
        ev.pool = CostPool(cost, ev.fidelity, cost_workers)
    try:
        search(ev, seed)
    except BudgetExhausted:
        pass
    finally:
        if ev.pool is not None:
            ev.pool.close()
            ev.pool = None
    initial = ev.cache.get(space.initial)
    if initial is None:  # costed outside the budget, for the summary only
        initial = Evaluator(space, cost, fidelity=ev.fidelity, min_sqnr=ev.min_sqnr, agent=agent).evaluate(space.initial)
    result = ExploreResult(graph.name, board_name, agent, int(seed), int(budget), space, ev, None, initial,
                           0.0, min_sqnr=min_sqnr, sensitivity_s=sens_s,
                           max_accuracy_loss=None if max_accuracy_loss is None else float(max_accuracy_loss),
                           accuracy_calibration=calibration, workers=cost_workers)
    if calibration is not None and calibration.get("note"):
        result.notes.append(calibration["note"])
    _choose(result, sensitivity, labels)
    result.wall_s = time.perf_counter() - t0
    return result


def _features(graph, board):
    from .features import board_features, model_features

    try:
        return np.concatenate([model_features(graph), board_features(board)])
    except (AttributeError, TypeError):  # a stand-in board without the catalogue's fields
        return model_features(graph)


def check_accuracy_request(*, precision, min_sqnr, max_accuracy_loss, calib, labels):
    """Validate a --max-accuracy-loss request; returns the labels as a 1-D int array (or None)."""
    if max_accuracy_loss is None:
        if labels is not None:
            raise ConfigError("--labels is only used by --max-accuracy-loss: add --max-accuracy-loss PCT")
        return None
    if min_sqnr is not None:
        raise ConfigError("--min-sqnr and --max-accuracy-loss are two fidelity bounds: give only one")
    if not precision:
        raise ConfigError("--max-accuracy-loss bounds the precision search: add --precision")
    if not (isinstance(max_accuracy_loss, (int, float, np.integer, np.floating))
            and 0.0 <= float(max_accuracy_loss) <= 100.0):
        raise ConfigError(f"--max-accuracy-loss must be a percentage in [0, 100], got {max_accuracy_loss!r}")
    if calib is None or labels is None:
        raise ConfigError("--max-accuracy-loss needs labelled validation inputs: --calib X.npy and --labels Y.npy")
    y = np.asarray(labels)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer)
                           or (np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)))):
        raise ConfigError(f"--labels: expected one integer class label per input (shape (N,)), "
                          f"got {y.dtype} of shape {y.shape}")
    n = 1 if np.ndim(calib) == 3 else len(calib)
    if len(y) != n:
        raise ConfigError(f"--labels has {len(y)} labels but --calib has {n} inputs: they must match one to one")
    return y.astype(np.int64)


def _accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy (%) of model outputs (N, classes...) against labels (N,)."""
    pred = np.asarray(outputs).reshape(len(labels), -1).argmax(axis=1)
    return 100.0 * float(np.mean(pred == labels))


def calibrate_sqnr_bound(sensitivity, space: DesignSpace, labels, max_loss: float) -> dict:
    """Derive the search's SQNR bound from an accuracy bound by measuring a few uniform designs.

    Every layer at one width b, widest first: the simulator measures top-1 accuracy and
    the sensitivity model gives the SQNR. The bound is the modelled SQNR of the narrowest
    width reached before the first one losing more than `max_loss` points (so every wider
    uniform design also met the bound). If even the widest fails, DEFAULT_MIN_SQNR is kept.
    """
    from ..errors import AccumulatorOverflow

    float_acc = _accuracy(sensitivity.float_output(), labels)
    layers = list(space.precision(space.initial))
    widths = next(k.values for k in space.knobs if k.role != "hw")
    rows, chosen = [], None
    for b in sorted(widths, reverse=True):
        bits = {layer: {"w_bits": b, "a_bits": b} for layer in layers}
        row = {"bits": int(b), "model_db": round(sensitivity.sqnr(bits), 2)}
        try:
            acc = _accuracy(sensitivity.simulated_output(bits), labels)
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


def _choose(result: ExploreResult, sensitivity, labels=None) -> None:
    """Pick the best feasible design; with precision, the first one the simulator confirms.

    With an accuracy bound, "confirms" means: simulated top-1 accuracy on the labelled
    inputs within `max_accuracy_loss` points of the float model's.
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

    from ..sim import sqnr_db

    by_accuracy = result.max_accuracy_loss is not None
    float_acc = _accuracy(sensitivity.float_output(), labels) if by_accuracy else None
    tried = []
    for cand in feasible[:VERIFY_CANDIDATES]:
        try:
            if by_accuracy:
                out = sensitivity.simulated_output(cand.bits)
                sim = float(sqnr_db(sensitivity.float_output(), out))
            else:
                sim = sensitivity.simulated_sqnr(cand.bits)
        except AccumulatorOverflow as err:
            tried.append({"evaluation": cand.index + 1, "error": str(err)})
            continue
        row = {"evaluation": cand.index + 1, "model_db": round(cand.fidelity, 2), "sim_db": round(sim, 2)}
        if by_accuracy:
            acc = _accuracy(out, labels)
            row.update(fixed_accuracy=round(acc, 3), loss_pct=round(float_acc - acc, 3))
            ok = float_acc - acc <= result.max_accuracy_loss
        else:
            ok = sim >= result.min_sqnr
        tried.append(row)
        if ok:
            result.best = cand
            result.formats = sensitivity.formats_for(cand.bits)
            result.verification = {"passed": True, "sim_sqnr_db": round(sim, 2), "tried": tried}
            if by_accuracy:
                result.verification.update(float_accuracy=round(float_acc, 3), fixed_accuracy=row["fixed_accuracy"],
                                           accuracy_loss_pct=row["loss_pct"], samples=int(len(labels)))
            break
    else:
        result.verification = {"passed": False, "tried": tried}
        bound = (f"an accuracy loss within {result.max_accuracy_loss} points" if by_accuracy
                 else f"{result.min_sqnr} dB")
        result.notes.append(f"none of the {len(tried)} best designs reached {bound} in the simulator")
    pts = [e.bits for e in _spread(result.history, 6)]
    result.fidelity_check = sensitivity.check_against_simulator(pts)


def _spread(history, n):
    """Up to n evaluations spread evenly over the history (first and last included)."""
    if len(history) <= n:
        return list(history)
    idx = np.linspace(0, len(history) - 1, n).round().astype(int)
    return [history[i] for i in sorted(set(idx))]


__all__ = ["explore", "ExploreResult", "AGENTS", "DEFAULT_AGENT", "DEFAULT_BUDGET", "DEFAULT_MIN_SQNR",
           "DesignSpace", "Evaluator", "Evaluation", "build_space", "calibrate_sqnr_bound",
           "check_accuracy_request"]
