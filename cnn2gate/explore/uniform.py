"""The uniform-width start of a precision search (`explore --uniform-start`).

One activation wider than 8 bits makes the whole datapath 16-bit, so the joint space has
a plateau on which single-knob moves barely change latency, and leaving it needs every
activation back at <= 8 bits at once: no agent has that move. Before the agent runs, the
explorer therefore looks at the designs with one weight width and one activation width
for every layer:

1. every (w, a) pair the width knobs offer is scored with the fidelity model (one SQNR
   each, microseconds);
2. of those that meet the bound, only the minimal ones are kept: a pair is dropped when
   another feasible pair is no wider in both roles. The cost model never makes a design
   faster by widening a tensor (more bits mean more words to move, a wider or unpacked
   datapath, a wider accumulator), so a dominated pair cannot beat the pair that
   dominates it. There are at most as many minimal pairs as widths (nine).
3. for each kept pair every hardware configuration is costed (the `exhaustive` agent on
   a copy of the space whose width knobs are held at the pair), which gives that pair's
   exact hardware optimum;
4. the best of these optima (the search's own order, `Evaluation.key`) becomes the
   agent's starting point and is costed first, as evaluation 1 of the search, so the
   result is never worse than it.

The enumeration's evaluations are not charged to the budget (`UniformStart.evaluations`,
reported in summary.json): only the start design, evaluation 1, is.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from .evaluator import Evaluation, Evaluator
from .space import DesignSpace, Knob

#: the agent name of the start design's row in history.csv
AGENT = "uniform-start"


@dataclass
class UniformStart:
    """What the uniform-width start found (`best` is None when no pair gave a feasible design)."""

    pairs: list = field(default_factory=list)  # [{"w_bits", "a_bits", "fidelity_db", "best_ms"}], minimal pairs
    best: Evaluation | None = None  # in the enumerated copy of the space
    point: tuple | None = None  # the same design in the search's space
    evaluations: int = 0  # hardware configurations costed, outside the budget
    pooled: int = 0  # of which on a cost pool (--workers)
    seconds: float = 0.0
    skipped: str | None = None  # why no enumeration ran

    @property
    def w_bits(self) -> int | None:
        return None if self.best is None else _pair(self.best)[0]

    @property
    def a_bits(self) -> int | None:
        return None if self.best is None else _pair(self.best)[1]

    def describe(self) -> str:
        if self.best is None:
            return f"uniform start: none ({self.skipped or 'no uniform design meets the bound and fits'})"
        ms = self.best.total_ms
        return (f"uniform start: w{self.w_bits}/a{self.a_bits} {ms:.2f} ms, " if ms >= 1 else
                f"uniform start: w{self.w_bits}/a{self.a_bits} {ms:.4f} ms, ") + f"{self.best.fidelity:.1f} dB"


    def to_dict(self) -> dict:
        doc = {"w_bits": self.w_bits, "a_bits": self.a_bits, "evaluations": self.evaluations,
               "charged_to_budget": 1 if self.best is not None else 0, "pooled": self.pooled,
               "seconds": round(self.seconds, 3),
               "pairs": self.pairs, "skipped": self.skipped}
        if self.best is not None:
            doc.update(total_ms=round(self.best.total_ms, 6), fidelity_db=round(self.best.fidelity, 2),
                       config=dict(self.best.config))
        return doc


def _pair(e: Evaluation) -> tuple[int, int]:
    roles = next(iter(e.bits.values()))
    return int(roles["w_bits"]), int(roles["a_bits"])


def uniform_bits(space: DesignSpace, w: int, a: int) -> dict:
    return {layer: {"w_bits": w, "a_bits": a} for layer in space.precision(space.initial)}


def minimal_pairs(space: DesignSpace, fidelity, min_sqnr: float) -> list[tuple[int, int, float]]:
    """(w, a, modelled SQNR) of the uniform pairs that meet the bound and that no other such
    pair is at most as wide as in both roles; ordered by w, then a."""
    w_values = next(k.values for k in space.knobs if k.role == "w_bits")
    a_values = next(k.values for k in space.knobs if k.role == "a_bits")
    ok = {}
    for w in w_values:
        for a in a_values:
            db = float(fidelity(uniform_bits(space, w, a)))
            if db >= min_sqnr:
                ok[w, a] = db
    return [(w, a, db) for (w, a), db in sorted(ok.items())
            if not any(w2 <= w and a2 <= a and (w2, a2) != (w, a) for w2, a2 in ok)]


def held_at(space: DesignSpace, w: int, a: int) -> DesignSpace:
    """The space with every width knob held at w (weights) or a (activations)."""
    knobs = tuple(k if k.role == "hw" else Knob(k.name, (w if k.role == "w_bits" else a,), k.role, k.layer)
                  for k in space.knobs)
    initial = tuple(i if k.role == "hw" else 0 for k, i in zip(space.knobs, space.initial))
    return DesignSpace(knobs, initial)


def hardware_size(space: DesignSpace) -> int:
    return math.prod(len(k) for k in space.hw_knobs)


def find(space: DesignSpace, cost, fidelity, min_sqnr: float, *, weight_counts=None, run=None,
         max_points: int | None = None) -> UniformStart:
    """The best uniform-width design of `space` under `min_sqnr` (see the module docstring).

    run(evaluator): costs every point of the evaluator's space (explore's `_search` with the
    exhaustive agent, so a cost pool can take the batches); serial when None. max_points:
    skip the enumeration when the hardware space is larger.
    """
    t0 = time.perf_counter()
    out = UniformStart()
    if max_points is not None and hardware_size(space) > max_points:
        out.skipped = f"the hardware space has {hardware_size(space):,} points, more than {max_points:,}"
        return out
    for w, a, db in minimal_pairs(space, fidelity, min_sqnr):
        ev = Evaluator(held_at(space, w, a), cost, fidelity=fidelity, min_sqnr=min_sqnr, agent=AGENT,
                       weight_counts=weight_counts)
        if run is None:
            ev.evaluate_many(list(ev.space.enumerate()))
        else:
            run(ev)
        out.evaluations += ev.n_evals
        out.pooled += ev.pooled
        best = ev.best_feasible()
        out.pairs.append({"w_bits": w, "a_bits": a, "fidelity_db": round(db, 2),
                          "best_ms": None if best is None else round(best.total_ms, 6)})
        if best is not None and (out.best is None or best.key()[:-1] < out.best.key()[:-1]):
            out.best = best
    if out.best is not None:
        w, a = _pair(out.best)
        out.point = space.point_of(out.best.config, {layer: (w, a) for layer in out.best.bits})
    elif not out.pairs:
        out.skipped = f"no uniform width pair reaches {min_sqnr:g} dB"
    out.seconds = time.perf_counter() - t0
    return out


def starting_at(space: DesignSpace, point) -> DesignSpace:
    return DesignSpace(space.knobs, tuple(point))
