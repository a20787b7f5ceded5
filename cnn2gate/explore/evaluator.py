"""One evaluation = one distinct design point costed. Every agent is charged through here.

The `Evaluator` caches results by design point, counts distinct evaluations (the
budget every agent is compared at), keeps the history in evaluation order and the
best feasible design found so far. A request for a point already costed is free.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from .space import DesignSpace, Point

#: Score added to an infeasible design (log-latency units, far above any latency gap).
INFEASIBLE_PENALTY = 10.0
#: Score per unit of overshoot (resource use above 100 %, as a fraction, plus the SQNR
#: deficit in units of 10 dB): large enough that moving towards feasibility pays even when
#: it makes the design slower (halving the lanes doubles latency: +0.69).
OVERSHOOT_WEIGHT = 10.0
#: Serial cost (seconds) a batch must be estimated to take before it is sent to the pool
#: (a pool on a Ray cluster asks more: its round trip is longer; parallel.CostPool.min_seconds).
POOL_MIN_SECONDS = 0.005
#: Secondary objective of precision searches, in log-latency units per 8 bits of average weight
#: width (weighted by each layer's weight count): halving the weights from 8 to 4 bits is worth
#: 2.5 % of latency. Packed weights make narrow layers faster only where they are weight-bound, so
#: on a launch- or compute-bound model latency alone leaves the weight widths almost free.
WEIGHT_MEMORY_WEIGHT = 0.05


@dataclass(frozen=True)
class Cost:
    """What the hardware model says about one configuration."""

    total_ms: float
    fits: bool
    resources: dict  # resource name -> percent of the board's available amount used


CostFn = Callable[[dict, Optional[dict]], Cost]
FidelityFn = Callable[[dict], float]


@dataclass(frozen=True)
class Evaluation:
    index: int  # 0-based order among distinct evaluations
    agent: str
    point: Point
    config: dict
    bits: dict | None
    total_ms: float
    fits: bool
    resources: dict
    fidelity: float | None  # modelled SQNR in dB (None without precision knobs)
    feasible: bool
    score: float  # lower is better: ln(total_ms) (+ weight memory term), plus a penalty when infeasible
    seconds: float  # wall time spent costing this point
    weight_bits: float | None = None  # average weight width (precision only, with weight counts)

    @property
    def objective(self) -> float:
        """ln(total_ms), plus WEIGHT_MEMORY_WEIGHT per 8 bits of average weight width when known."""
        return objective(self.total_ms, self.weight_bits)

    def key(self):
        """Total order used to pick the best design: feasible, lowest objective (latency, and weight
        memory for precision points), fastest, fewest DSPs, then point."""
        return (not self.feasible, self.objective, self.total_ms, self.resources.get("dsp", 0.0), self.point)


def objective(total_ms: float, weight_bits: float | None) -> float:
    score = math.log(max(total_ms, 1e-9))
    return score if weight_bits is None else score + WEIGHT_MEMORY_WEIGHT * weight_bits / 8.0


class BudgetExhausted(Exception):
    """Raised when an agent asks for a new point after the budget of distinct evaluations is spent."""


@dataclass
class Evaluator:
    space: DesignSpace
    cost: CostFn
    fidelity: FidelityFn | None = None
    min_sqnr: float | None = None
    budget: int | None = None
    agent: str = ""
    on_evaluation: Callable[["Evaluator", Evaluation], None] | None = None
    features: object = None  # model + board feature vector for learning agents (numpy array)
    pool: object = None  # a parallel.CostPool used by evaluate_many, or None to cost in this process
    pooled: int = 0  # points costed on a pool
    weight_counts: dict | None = None  # layer -> number of weights: enables the weight-memory objective

    cache: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    best: Evaluation | None = None
    best_at: int | None = None  # number of evaluations when the best was found
    lowest: Evaluation | None = None  # lowest score so far (= best when anything is feasible)
    requests: int = 0  # all calls, cache hits included
    cost_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.budget is not None and self.budget < 1:
            raise ValueError(f"budget must be at least 1, got {self.budget}")
        if self.space.has_precision and self.fidelity is None:
            raise ValueError("a space with precision knobs needs a fidelity model")

    @property
    def n_evals(self) -> int:
        return len(self.history)

    @property
    def remaining(self) -> int | None:
        return None if self.budget is None else self.budget - self.n_evals

    @property
    def exhausted(self) -> bool:
        """True when no new point may be costed (budget spent or every point of the space seen)."""
        return (self.budget is not None and self.n_evals >= self.budget) or self.n_evals >= self.space.size

    def seen(self, point: Point) -> bool:
        return tuple(point) in self.cache

    def evaluate(self, point: Point) -> Evaluation:
        point = tuple(int(i) for i in point)
        self.requests += 1
        hit = self.cache.get(point)
        if hit is not None:
            return hit
        if self.budget is not None and self.n_evals >= self.budget:
            raise BudgetExhausted(f"budget of {self.budget} evaluations spent")
        self.space.check(point)
        t0 = time.perf_counter()
        config = self.space.config(point)
        bits = self.space.precision(point)
        cost = self.cost(config, bits)
        fid = self.fidelity(bits) if bits is not None else None
        return self._record(point, config, bits, cost, fid, time.perf_counter() - t0)

    def evaluate_many(self, points) -> list[Evaluation | None]:
        """Cost several points at once: the new ones on the pool when one is attached.

        Results come back in the order asked, and are recorded in that order, so the
        history is the same as from one `evaluate` per point. A new point beyond the
        budget gets None (no exception: the caller sees which points were costed).
        """
        points = [tuple(int(i) for i in p) for p in points]
        self.requests += len(points)
        fresh: list[Point] = []
        for p in points:
            if p not in self.cache and p not in fresh:
                self.space.check(p)
                fresh.append(p)
        if self.budget is not None:
            fresh = fresh[:max(self.budget - self.n_evals, 0)]
        if fresh:
            t0 = time.perf_counter()
            jobs = [(self.space.config(p), self.space.precision(p)) for p in fresh]
            if self._worth_pooling(len(jobs)):
                results = self.pool.map(jobs)
                self.pooled += len(jobs)
            else:
                results = [(self.cost(c, b), self.fidelity(b) if b is not None else None) for c, b in jobs]
            dt = (time.perf_counter() - t0) / len(jobs)  # wall time per point of the batch
            for p, (config, bits), (cost, fid) in zip(fresh, jobs, results):
                self._record(p, config, bits, cost, fid, dt)
        return [self.cache.get(p) for p in points]

    def _worth_pooling(self, n: int) -> bool:
        """Whether costing n points on the pool beats costing them here.

        Sending a batch to the workers and back costs about a millisecond, more than
        costing a few points of a typical model (0.2-0.7 ms each): only batches whose
        serial cost, estimated from the points costed so far, exceeds `POOL_MIN_SECONDS`
        go to the pool. Where the points are costed never changes the results.
        """
        if self.pool is None or n < 2 or self.n_evals < 8:
            return False
        return n * self.cost_seconds / self.n_evals >= getattr(self.pool, "min_seconds", POOL_MIN_SECONDS)

    def _record(self, point: Point, config: dict, bits, cost: Cost, fid, dt: float) -> Evaluation:
        self.cost_seconds += dt
        fid_ok = fid is None or self.min_sqnr is None or fid >= self.min_sqnr
        feasible = bool(cost.fits) and fid_ok
        wbits = self.average_weight_bits(bits)
        ev = Evaluation(
            index=self.n_evals, agent=self.agent, point=point, config=config, bits=bits,
            total_ms=float(cost.total_ms), fits=bool(cost.fits), resources=dict(cost.resources),
            fidelity=fid, feasible=feasible, score=self._score(cost, fid, feasible, wbits), seconds=dt,
            weight_bits=wbits,
        )
        self.cache[point] = ev
        self.history.append(ev)
        if self.best is None or ev.key() < self.best.key():
            self.best = ev
            self.best_at = self.n_evals
        if self.lowest is None or (ev.score, ev.point) < (self.lowest.score, self.lowest.point):
            self.lowest = ev
        if self.on_evaluation is not None:
            self.on_evaluation(self, ev)
        return ev

    def average_weight_bits(self, bits: dict | None) -> float | None:
        """Weight width averaged over all weights of the layers with a width (None without counts)."""
        if bits is None or not self.weight_counts:
            return None
        pairs = [(n, bits[layer]["w_bits"]) for layer, n in self.weight_counts.items() if layer in bits]
        total = sum(n for n, _ in pairs)
        return sum(n * b for n, b in pairs) / total if total else None

    def _score(self, cost: Cost, fid: float | None, feasible: bool, weight_bits: float | None = None) -> float:
        score = objective(cost.total_ms, weight_bits)
        if feasible:
            return score
        over = max([0.0] + [max(0.0, pct / 100.0 - 1.0) for pct in cost.resources.values()])
        if fid is not None and self.min_sqnr is not None:
            over += max(0.0, (self.min_sqnr - fid) / 10.0)
        return score + INFEASIBLE_PENALTY + OVERSHOOT_WEIGHT * min(over, 10.0)

    def best_feasible(self) -> Evaluation | None:
        return self.best if self.best is not None and self.best.feasible else None
