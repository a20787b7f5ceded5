"""ExploreResult: what a search found, and its summary.json document."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import ConfigError
from .evaluator import Evaluation, Evaluator
from .options import FIXED_KNOBS
from .space import DesignSpace


@dataclass(frozen=True)
class SearchRun:
    """Which search ran: the model and board names and the agent's settings."""

    model: str
    board: str
    agent: str
    seed: int
    budget: int
    workers: int = 1  # processes that costed design points


@dataclass
class FidelityBound:
    """The fidelity bound the precision search ran under (all None without precision)."""

    min_sqnr: float | None = None
    max_accuracy_loss: float | None = None  # accuracy bound (percentage points), when asked for
    accuracy_calibration: dict | None = None  # how min_sqnr was derived from it


@dataclass
class SimulatorChecks:
    """The bit-accurate simulator against the search's models (precision only)."""

    verification: dict | None = None  # the chosen design
    fidelity_check: dict | None = None  # sensitivity model vs simulator on a few points


@dataclass
class Timings:
    wall_s: float = 0.0
    sensitivity_s: float = 0.0  # building the sensitivity model (and calibrating the bound)


@dataclass
class ExploreResult:
    run: SearchRun
    space: DesignSpace
    evaluator: Evaluator
    best: Evaluation | None  # the chosen design (feasible and, with precision, verified)
    initial: Evaluation | None  # the board's default design, for comparison
    formats: object = None  # quant.Formats of the chosen design (precision only)
    bound: FidelityBound = field(default_factory=FidelityBound)
    checks: SimulatorChecks = field(default_factory=SimulatorChecks)
    timings: Timings = field(default_factory=Timings)
    notes: list = field(default_factory=list)
    enumerated: bool = False  # every point of the space was costed: best is the exact optimum
    uniform_start: object = None  # uniform.UniformStart when the search started from one

    @property
    def history(self) -> list[Evaluation]:
        return self.evaluator.history

    @property
    def n_evals(self) -> int:
        return self.evaluator.n_evals

    def best_config(self) -> dict:
        if self.best is None:
            raise ConfigError(f"no feasible design found for {self.run.model} on {self.run.board} "
                              f"in {self.n_evals} evaluations")
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
        ev, run, bound = self.evaluator, self.run, self.bound
        best = self.best
        doc = {
            "model": run.model, "board": run.board, "agent": run.agent, "seed": run.seed,
            "budget": run.budget, "enumerated": self.enumerated, "evaluations": ev.n_evals, "requests": ev.requests,
            "cache_hits": ev.requests - ev.n_evals,
            "space": {"size": self.space.size, "knobs": {k.name: list(k.values) for k in self.space.knobs},
                      "precision": self.space.has_precision, "fixed": FIXED_KNOBS},
            "min_sqnr_db": bound.min_sqnr,
            "max_accuracy_loss_pct": bound.max_accuracy_loss,
            "accuracy_calibration": bound.accuracy_calibration,
            "best": None if best is None else _evaluation_doc(best, self.space),
            "best_found_at_evaluation": None if best is None else best.index + 1,
            "initial": None if self.initial is None else _evaluation_doc(self.initial, self.space),
            "uniform_start": None if self.uniform_start is None else self.uniform_start.to_dict(),
            "speedup_vs_initial": (round(self.initial.total_ms / best.total_ms, 3)
                                   if best is not None and self.initial is not None and self.initial.feasible else None),
            "feasible_fraction": round(sum(e.feasible for e in ev.history) / max(ev.n_evals, 1), 4),
            "wall_s": round(self.timings.wall_s, 3),
            "workers": run.workers,
            "cost_model_ms_per_evaluation": round(1e3 * ev.cost_seconds / max(ev.n_evals, 1), 4),
            "sensitivity_model_s": round(self.timings.sensitivity_s, 3),
            "fidelity_check": self.checks.fidelity_check,
            "verification": self.checks.verification,
            "notes": list(self.notes),
        }
        return doc


def _evaluation_doc(e: Evaluation, space: DesignSpace) -> dict:
    doc = {"config": dict(e.config), "total_ms": round(e.total_ms, 6), "fits": e.fits, "feasible": e.feasible,
           "resources_pct": {k: round(v, 2) for k, v in e.resources.items()}}
    if e.bits is not None:
        doc["bits"] = space.describe(e.point)["bits"]
        doc["fidelity_db"] = round(e.fidelity, 2)
        if e.weight_bits is not None:
            doc["average_weight_bits"] = round(e.weight_bits, 3)
    return doc
