"""Design-space exploration agents side by side (measured, not unit-tested).

    python benchmarks/dse_agents.py [--quick] [--part hw|joint|anchors|parallel|all] [--seeds N]
                                    [--models a,b] [--boards a,b] [--budgets 200,1000] [--agents a,b]
                                    [--jobs N]

Runs are independent: --jobs N (default: all usable cores) runs N of them at once in
separate processes; each run costs its points in its own process (workers=1).

Models: full-size shape-only AlexNet, VGG-16, ResNet-18, MobileNetV2 (cnn2gate.zoo);
boards de1soc, de10nano, a10, s10.

1. Hardware-only space: exhaustive search gives the optimum; for every agent, the number
   of evaluations until it first costs an optimal design (median over seeds; a run that
   never finds it counts as the space size + 1). Target: PPO within 10 % of the space.
2. Joint hardware + precision space (min SQNR 30 dB): best latency found at budgets of
   200 / 1,000 / 5,000 evaluations per agent; PPO wins a case when its median best is
   <= the other agent's. The precision fidelity model is built on a reduced-input copy of
   each model with random weights (examples/models.py, exported at 32-67 px, 2 random
   inputs), since the shape-only graphs carry no values; conv/dense layers of the two
   graphs are paired in graph order. The hardware cost uses the full-size graph.
3. (fidelity) The sensitivity model's SQNR against the bit-accurate simulator's on random
   mixed-width designs of the reduced models.
4. Modelled latency of the explored design for AlexNet and VGG-16 on a10, next to
   CNN2Gate's published 18 / 205 ms and PipeCNN's 5 / 110 ms.
5. (parallel) Costing a whole hardware space serially vs with the explorer's cost pool,
   and random / BO runs with workers=1 vs all cores (same history, wall time only).
Last line: `ppo wins vs sa/bo/random %: N`.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnn2gate.explore import ExploreOptions, explore  # noqa: E402
from cnn2gate.explore.evaluator import BudgetExhausted  # noqa: E402
from cnn2gate.zoo import NETS  # noqa: E402

MODELS = ("alexnet", "vgg16", "resnet18", "mobilenet_v2")
BOARDS = ("de1soc", "de10nano", "a10", "s10")
AGENTS = ("ppo", "sa", "bo", "greedy", "random")
RIVALS = ("sa", "bo", "random")
CALIB_SAMPLES = 2  # inputs for the sensitivity model of the joint space (cost grows with it)
PUBLISHED = {"alexnet": {"cnn2gate": 18.0, "pipecnn": 5.0}, "vgg16": {"cnn2gate": 205.0, "pipecnn": 110.0}}


#: agents whose proposals depend on the budget (SA scales its cooling to it): run once per
#: budget. The others are run once at the largest budget and read at each smaller budget
#: from the first evaluations of that run (identical to a run with the smaller budget).
BUDGET_AWARE = ("sa",)
#: Optuna's TPE costs grow with the number of trials and knobs (AlexNet, 20 knobs: 22 s for
#: 1,000 trials; MobileNetV2, 109 knobs: 50 s for 300), so by default BO is run up to this
#: budget only (--bo-max-budget); larger budgets show "-".
BO_MAX_BUDGET = 1000


def _best_within(history, budget: int) -> float:
    """Best feasible latency among the first `budget` evaluations (inf when none is feasible)."""
    return min((e.total_ms for e in history[:budget] if e.feasible), default=float("inf"))


class _Found(BudgetExhausted):
    """Stops a run once it has costed an optimal design (the count is all we need)."""


def _table(rows, headers) -> str:
    cols = list(zip(headers, *rows))
    widths = [max(len(str(v)) for v in col) for col in cols]
    line = lambda r: "  ".join(str(v).rjust(w) for v, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(headers), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])


_GRAPHS: dict = {}


def _graph(m: str):
    if m not in _GRAPHS:
        _GRAPHS[m] = NETS[m]()
    return _GRAPHS[m]


def _init_job() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # the jobs already fill the cores


def _run_all(fn, tasks: list, jobs: int, label: str) -> list:
    """fn(*task) for every task, `jobs` at a time in fresh (spawned) processes; results in task order."""
    import multiprocessing as mp

    t = time.perf_counter()
    out = [None] * len(tasks)

    def tick(done):
        if done % max(1, len(tasks) // 20) == 0 or done == len(tasks):
            print(f"  {label}: {done}/{len(tasks)} runs, {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)

    if jobs <= 1:
        for i, task in enumerate(tasks):
            out[i] = fn(*task)
            tick(i + 1)
        return out
    with mp.get_context("spawn").Pool(jobs, initializer=_init_job) as pool:
        for done, (i, res) in enumerate(pool.imap_unordered(_call, [(fn, i, task) for i, task in enumerate(tasks)]), 1):
            out[i] = res
            tick(done)
    return out


def _call(job):
    fn, i, task = job
    return i, fn(*task)


def _optimum(m: str, b: str):
    t = time.perf_counter()
    ex = explore(_graph(m), b, ExploreOptions(agent="exhaustive", budget=10**7))
    return ex.best.total_ms, ex.space.size, time.perf_counter() - t


def _evals_to_optimum(m: str, b: str, agent: str, seed: int, opt: float, size: int) -> int:
    hit = []

    def stop(ev, e):
        if e.feasible and e.total_ms <= opt * (1 + 1e-9):
            hit.append(ev.n_evals)
            raise _Found()

    explore(_graph(m), b, ExploreOptions(agent=agent, budget=size, seed=seed), progress=stop)
    return hit[0] if hit else size + 1


def hw_only(models, boards, seeds, agents, jobs) -> tuple[list, dict, list]:
    pairs = [(m, b) for m in models for b in boards]
    optima = dict(zip(pairs, _run_all(_optimum, pairs, jobs, "exhaustive optima")))
    tasks = [(m, b, a, s, optima[m, b][0], optima[m, b][1]) for m, b in pairs for a in agents for s in seeds]
    counts = dict(zip([t[:4] for t in tasks], _run_all(_evals_to_optimum, tasks, jobs, "hardware-only runs")))
    rows, ok = [], {}
    for m, b in pairs:
        opt, size, t_ex = optima[m, b]
        row = [m, b, size, f"{opt:.2f}", f"{t_ex:.1f}"]
        for a in agents:
            med = statistics.median(counts[m, b, a, s] for s in seeds)
            row.append(f"{med:.0f}")
            if a == "ppo":
                ok[(m, b)] = med <= 0.1 * size
                row.append(f"{100 * med / size:.1f}%")
        rows.append(row)
    headers = ["model", "board", "space", "opt ms", "exh s"] + sum(([a, "ppo %"] if a == "ppo" else [a] for a in agents), [])
    return rows, ok, headers


def _fidelity_graph(model: str):
    """A reduced-input, random-weight copy of the model with the full model's layer names."""
    from examples import models as zoo

    from cnn2gate.frontend import load_model

    size = {"alexnet": 67, "vgg16": 32, "resnet18": 32, "mobilenet_v2": 32}[model]
    name = {"mobilenet_v2": "mobilenetv2"}.get(model, model)
    return load_model(zoo.export(name, input_size=size))


class _RenamedFidelity:
    """The sensitivity model's SQNR, keyed by the full-size graph's layer names (picklable, small)."""

    def __init__(self, sens, rename: dict):
        from cnn2gate.explore.fidelity import SensitivityModel

        # Only the noise table travels to the worker processes, not the graph or the activations.
        self.sens = SensitivityModel(None, None, sens.bits, signal_power=sens.signal_power, noise=dict(sens.noise),
                                     input_noise=sens.input_noise)
        self.rename = rename

    def __call__(self, bits):
        return self.sens.sqnr({self.rename[k]: v for k, v in bits.items()})


_SPACES: dict = {}


def _joint_space(m: str, b: str):
    from cnn2gate.explore.space import build_space
    from cnn2gate.hw import config as hwconfig

    if (m, b) not in _SPACES:
        g = _graph(m)
        legal = hwconfig.legal_values(g, b)
        legal["fc_batch"] = [1]
        _SPACES[m, b] = build_space(g, b, precision=True, legal=legal,
                                    initial_config=hwconfig.HwConfig.defaults(b).to_dict())
    return _SPACES[m, b]


def _joint_run(m: str, b: str, agent: str, seed: int, budgets: tuple, top: int, fid,
               uniform_start: bool = False) -> tuple:
    """Best feasible latency within each budget of one run of `top` evaluations, and its wall time."""
    t = time.perf_counter()
    r = explore(_graph(m), b, ExploreOptions(agent=agent, budget=top, seed=seed, precision=True,
                                             uniform_start=uniform_start),
                space=_joint_space(m, b), sensitivity=fid)
    return tuple(_best_within(r.history, budget) for budget in budgets), time.perf_counter() - t


#: Rough relative run times, so the pool starts the longest runs first.
_WEIGHT = {"bo": 8, "ppo": 4, "sa": 1, "greedy": 1, "random": 1}


def joint(models, boards, seeds, budgets, agents, jobs, bo_max=BO_MAX_BUDGET,
          uniform_start: bool = False) -> tuple[list, list, dict]:
    from cnn2gate.explore.fidelity import SensitivityModel
    from cnn2gate.explore.space import PRECISION_BITS

    fids, sens_s = {}, {}
    for m in models:
        g = _graph(m)
        t = time.perf_counter()
        small = _fidelity_graph(m)
        calib = np.random.default_rng(0).standard_normal((CALIB_SAMPLES,) + tuple(small.input_shape))
        sens = SensitivityModel.build(small, calib, PRECISION_BITS, workers=jobs)
        names = [layer.name for layer in g.layers if layer.kind in ("conv", "dense")]
        small_names = [layer.name for layer in small.layers if layer.kind in ("conv", "dense")]
        if len(names) != len(small_names):
            raise SystemExit(f"{m}: {len(names)} weight layers in the shape graph, {len(small_names)} in the fidelity graph")
        fids[m] = _RenamedFidelity(sens, dict(zip(names, small_names)))
        sens_s[m] = time.perf_counter() - t
        print(f"  {m}: sensitivity model {sens_s[m]:.1f} s", file=sys.stderr, flush=True)
    tasks = []
    for m in models:
        for b in boards:
            for a in agents:
                for s in seeds:
                    if a in BUDGET_AWARE:
                        tasks += [(m, b, a, s, (budget,), budget, fids[m], uniform_start) for budget in budgets]
                    else:
                        top = max(budgets) if a != "bo" else min(max(budgets), bo_max)
                        tasks.append((m, b, a, s, tuple(x for x in budgets if x <= top), top, fids[m],
                                      uniform_start))
    tasks.sort(key=lambda t: -_WEIGHT.get(t[2], 1) * t[5])
    runs: dict = {}
    wall: dict = {}
    for task, (bests, dt) in zip(tasks, _run_all(_joint_run, tasks, jobs, "joint runs")):
        m, b, a, s, bs, top = task[:6]
        for budget, best in zip(bs, bests):
            runs.setdefault((m, b, a, budget), []).append(best)
        wall.setdefault((a, top), []).append(dt)
    rows, cases = [], []
    for m in models:
        for b in boards:
            for budget in budgets:
                best = {a: statistics.median(runs[m, b, a, budget]) for a in agents if (m, b, a, budget) in runs}
                row = [m, b, f"{_joint_space(m, b).size:.1e}", budget] + [f"{best[a]:.2f}" if a in best else "-"
                                                                         for a in agents]
                for rival in RIVALS:
                    if rival in best and "ppo" in best:
                        win = best["ppo"] <= best[rival] * (1 + 1e-9)
                        cases.append(win)
                        gap = 100 * (best["ppo"] / best[rival] - 1)
                        row.append("win" if win else f"+{gap:.1f}%")
                    else:
                        row.append("-")
                rows.append(row)
    times = {"sensitivity_s": sens_s,
             "run_s": {f"{a}@{top}": round(statistics.median(v), 1) for (a, top), v in sorted(wall.items())}}
    return rows, cases, times


def fidelity(models, n_points: int = 8, seed: int = 0) -> list:
    """Sensitivity model vs the bit-accurate simulator on random per-layer widths.

    For each reduced model of the joint space: n_points designs, every conv/dense layer's
    weight and activation width drawn from 6..16 bits (4 bits is left out: most such
    designs miss any useful bound), plus uniform 8 and 6 bits; modelled and simulated
    output SQNR on the same 2 inputs.
    """
    from cnn2gate.explore.fidelity import SensitivityModel
    from cnn2gate.explore.space import PRECISION_BITS

    rng = np.random.default_rng(seed)
    rows = []
    for m in models:
        small = _fidelity_graph(m)
        calib = np.random.default_rng(0).standard_normal((CALIB_SAMPLES,) + tuple(small.input_shape))
        sens = SensitivityModel.build(small, calib, PRECISION_BITS)
        names = [layer.name for layer in small.layers if layer.kind in ("conv", "dense")]
        widths = [b for b in PRECISION_BITS if b >= 6]
        designs = [{n: {"w_bits": u, "a_bits": u} for n in names} for u in (8, 6)]
        designs += [{n: {"w_bits": int(rng.choice(widths)), "a_bits": int(rng.choice(widths))} for n in names}
                    for _ in range(n_points)]
        t = time.perf_counter()
        check = sens.check_against_simulator(designs)
        errs = [r["error_db"] for r in check["points"]]
        rows.append([m, len(names), len(check["points"]),
                     f"{min(r['sim_db'] for r in check['points']):.1f}-{max(r['sim_db'] for r in check['points']):.1f}",
                     check["mean_abs_error_db"], check["max_abs_error_db"], f"{float(np.mean(errs)):+.2f}",
                     f"{time.perf_counter() - t:.1f}"])
        print("  " + " ".join(map(str, rows[-1])), file=sys.stderr, flush=True)
    return rows


def anchors(seed: int = 0) -> list:
    rows = []
    for m in ("alexnet", "vgg16"):
        g = NETS[m]()
        r = explore(g, "a10", ExploreOptions(agent="ppo", seed=seed))
        ex = explore(g, "a10", ExploreOptions(agent="exhaustive", budget=10**7))
        rows.append([m, f"{r.best.total_ms:.1f}", f"{ex.best.total_ms:.1f}", f"{r.initial.total_ms:.1f}",
                     PUBLISHED[m]["cnn2gate"], PUBLISHED[m]["pipecnn"], str(r.best.config)])
    return rows


def parallel(model: str = "vgg16", board: str = "a10", workers: int | None = None) -> list:
    """Wall time with workers=1 vs the cost pool: a whole hardware space, and agents' runs.

    The histories must be identical; only the time may differ.
    """
    from cnn2gate.explore.costing import HwCost
    from cnn2gate.explore.evaluator import Evaluator
    from cnn2gate.explore.parallel import CostPool, usable_cores
    from cnn2gate.explore.space import build_space

    workers = workers or usable_cores()
    g = _graph(model)
    rows = []
    space = build_space(g, board)
    points = list(space.enumerate())
    timings = {}
    for w in (1, workers):
        ev = Evaluator(space, HwCost(g, board))
        ev.evaluate_many(points[:8])  # the evaluator's per-point estimate, before it decides to use the pool
        t = time.perf_counter()
        if w > 1:
            with CostPool(ev.cost, None, w) as pool:
                ev.pool = pool
                ev.evaluate_many(points[8:])
        else:
            ev.evaluate_many(points[8:])
        timings[w] = (time.perf_counter() - t, [e.total_ms for e in ev.history])
    if timings[1][1] != timings[workers][1]:
        raise SystemExit("pooled costing disagrees with serial costing")
    rows.append([f"cost whole space ({len(points)} points)", workers, f"{timings[1][0]:.2f}",
                 f"{timings[workers][0]:.2f}", f"{timings[1][0] / timings[workers][0]:.2f}"])
    for agent, budget in (("random", 2000), ("bo", 300)):
        explore(g, board, ExploreOptions(agent=agent, budget=20, seed=0))  # imports and caches warm, outside the timing
        got = {}
        for w in (1, workers):
            t = time.perf_counter()
            r = explore(g, board, ExploreOptions(agent=agent, budget=budget, seed=0, workers=w))
            got[w] = (time.perf_counter() - t, [e.point for e in r.history])
        if got[1][1] != got[workers][1]:
            raise SystemExit(f"{agent}: the history with {workers} workers differs from workers=1")
        rows.append([f"explore --agent {agent} --budget {budget}", workers, f"{got[1][0]:.2f}",
                     f"{got[workers][0]:.2f}", f"{got[1][0] / got[workers][0]:.2f}"])
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer seeds, models and budgets")
    ap.add_argument("--part", default="all", choices=("hw", "joint", "fidelity", "anchors", "parallel", "all"))
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--models", default=None, help="comma-separated subset of " + ",".join(MODELS))
    ap.add_argument("--boards", default=None, help="comma-separated subset of " + ",".join(BOARDS))
    ap.add_argument("--budgets", default=None, help="comma-separated joint-space budgets (default 200,1000,5000)")
    ap.add_argument("--agents", default=None, help="comma-separated subset of " + ",".join(AGENTS))
    ap.add_argument("--jobs", type=int, default=None, help="runs at once (default: all usable cores)")
    ap.add_argument("--bo-max-budget", type=int, default=BO_MAX_BUDGET,
                    help="largest joint-space budget BO is run at (its cost grows with the trials)")
    ap.add_argument("--uniform-start", action="store_true",
                    help="joint part: every agent starts from the best uniform-width design (explore/uniform.py; "
                         "off by default, so the agents are compared on their own)")
    args = ap.parse_args(argv)
    from cnn2gate.explore.parallel import usable_cores

    jobs = args.jobs or usable_cores()
    agents = tuple(args.agents.split(",")) if args.agents else AGENTS
    n_seeds = args.seeds or (2 if args.quick else 5)
    seeds = list(range(n_seeds))
    models = MODELS
    boards = BOARDS
    budgets = (200, 1000) if args.quick else (200, 1000, 5000)
    joint_models = ("alexnet", "resnet18") if args.quick else MODELS
    joint_boards = ("de1soc", "a10") if args.quick else BOARDS
    if args.models:
        models = joint_models = tuple(args.models.split(","))
    if args.boards:
        boards = joint_boards = tuple(args.boards.split(","))
    if args.budgets:
        budgets = tuple(int(b) for b in args.budgets.split(","))
    mode = "quick" if args.quick else "full"
    print(f"# DSE agents benchmark ({mode}: {n_seeds} seeds, part {args.part}, {jobs} jobs at once)")
    headline = None
    if args.part in ("hw", "all"):
        t = time.perf_counter()
        rows, ok, headers = hw_only(models, boards, seeds, agents, jobs)
        print("\n## Hardware-only space: evaluations to the exhaustive optimum (median over seeds)\n")
        print(_table(rows, headers))
        print(f"\nPPO within 10 % of the space: {sum(ok.values())}/{len(ok)} model x board  "
              f"({time.perf_counter() - t:.0f} s)")
    if args.part in ("joint", "all"):
        t = time.perf_counter()
        rows, cases, times = joint(joint_models, joint_boards, seeds, budgets, agents, jobs, args.bo_max_budget,
                                   args.uniform_start)
        headers = ["model", "board", "space", "budget"] + list(agents) + [f"ppo vs {r}" for r in RIVALS]
        print("\n## Joint hardware + precision space (min SQNR 30 dB): median best latency (ms)\n")
        print(_table(rows, headers))
        headline = round(100 * sum(cases) / max(len(cases), 1))
        print(f"\nPPO <= rival in {sum(cases)}/{len(cases)} cases ({time.perf_counter() - t:.0f} s)")
        print("sensitivity models (s): " + ", ".join(f"{m} {v:.1f}" for m, v in times["sensitivity_s"].items()))
        print("median run time (s), agent@budget: " + ", ".join(f"{k} {v}" for k, v in times["run_s"].items()))
    if args.part in ("fidelity", "all"):
        rows = fidelity(joint_models)
        print("\n## Sensitivity model vs bit-accurate simulator (reduced models, 2 random inputs)\n")
        print(_table(rows, ["model", "weight layers", "designs", "simulated dB", "mean |err| dB", "max |err| dB",
                            "mean err dB", "simulator s"]))
    if args.part in ("anchors", "all"):
        rows = anchors()
        print("\n## Explored design on a10 vs published (batch 1, 8-bit)\n")
        print(_table(rows, ["model", "ppo ms", "optimum ms", "board default ms", "CNN2Gate ms", "PipeCNN ms",
                            "config"]))
    if args.part in ("parallel", "all"):
        rows = parallel(workers=jobs)
        print("\n## VGG-16 / a10: workers=1 vs the cost pool (pool start-up included; same histories)\n")
        print(_table(rows, ["what", "workers", "1 worker s", "pool s", "speed-up"]))
    if headline is not None:
        print(f"ppo wins vs sa/bo/random %: {headline}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
