"""One-line live progress bars on stderr: the sensitivity model's build, then the
evaluations (best latency, feasibility)."""
from __future__ import annotations

import sys
import time


class ProgressBar:
    """Call with (evaluator, evaluation) after each evaluation; redraws at most `hz` times a second."""

    def __init__(self, budget: int, stream=None, hz: float = 10.0, width: int = 24):
        self.budget = max(int(budget), 1)
        self.stream = stream or sys.stderr
        self.period = 1.0 / hz
        self.width = width
        self._last = 0.0
        self._feasible = 0
        self._t0 = None  # set at the first evaluation: the rate excludes the sensitivity model's build

    def __call__(self, ev, e) -> None:
        self._feasible += int(e.feasible)
        now = time.perf_counter()
        if self._t0 is None:
            self._t0 = now
        if now - self._last >= self.period or ev.n_evals >= (ev.budget or self.budget):
            self._last = now
            self.draw(ev)

    def draw(self, ev) -> None:
        n = ev.n_evals
        total = ev.budget or self.budget  # the evaluator's: an enumerated space sets its own
        done = min(n / total, 1.0)
        bar = "#" * int(done * self.width) + "." * (self.width - int(done * self.width))
        best = ev.best_feasible()
        best_txt = f"best {best.total_ms:.3f} ms" if best is not None else "best -"
        elapsed = time.perf_counter() - self._t0 if self._t0 is not None else 0.0
        rate = f"{n / elapsed:.0f} evals/s" if elapsed >= 0.1 else "- evals/s"
        self.stream.write(f"\r[{bar}] {n}/{total} evals  {best_txt}  feasible {self._feasible}/{n}  {rate} ")
        self.stream.flush()

    def close(self, ev) -> None:
        self.draw(ev)
        self.stream.write("\n")
        self.stream.flush()


class BuildBar:
    """Call with (done, total) as the sensitivity model's quantiser runs and noise terms
    finish (on any worker or node); ends its line when the build is complete."""

    def __init__(self, stream=None, hz: float = 10.0, width: int = 24):
        self.stream = stream or sys.stderr
        self.period = 1.0 / hz
        self.width = width
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if now - self._last < self.period and done < total:
            return
        self._last = now
        filled = int(min(done / max(total, 1), 1.0) * self.width)
        self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} sensitivity terms ")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()
