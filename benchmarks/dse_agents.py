"""Design-space exploration agents side by side (measured, not unit-tested).

    python benchmarks/dse_agents.py [--quick] [--part hw|joint|anchors|parallel|all] [--seeds N]
                                    [--models a,b] [--boards a,b] [--budgets 200,1000]

Models: full-size shape-only AlexNet, VGG-16, ResNet-18, MobileNetV2 (cnn2gate.hw.nets);
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
3. Modelled latency of the explored design for AlexNet and VGG-16 on a10, next to
   CNN2Gate's published 18 / 205 ms and PipeCNN's 5 / 110 ms.
4. (parallel) Costing a whole hardware space serially vs with a fork process pool.
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

from cnn2gate.explore import explore  # noqa: E402
from cnn2gate.explore.evaluator import BudgetExhausted  # noqa: E402
from cnn2gate.hw.nets import NETS  # noqa: E402

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
#: Optuna's TPE costs grow with the number of trials (~0.1 s a trial on average over 1,000
#: trials with 20 parameters here), so BO is run up to this budget only; larger budgets show "-".
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


def hw_only(models, boards, seeds, agents) -> tuple[list, dict, list]:
    rows, ok = [], {}
    for m in models:
        g = NETS[m]()
        for b in boards:
            t = time.perf_counter()
            ex = explore(g, b, agent="exhaustive", budget=10**7)
            t_ex = time.perf_counter() - t
            opt = ex.best.total_ms
            size = ex.space.size
            row = [m, b, size, f"{opt:.2f}", f"{t_ex:.1f}"]
            for a in agents:
                counts = []
                for s in seeds:
                    hit = []

                    def stop(ev, e, hit=hit):
                        if e.feasible and e.total_ms <= opt * (1 + 1e-9):
                            hit.append(ev.n_evals)
                            raise _Found()

                    explore(g, b, agent=a, budget=size, seed=s, progress=stop)
                    counts.append(hit[0] if hit else size + 1)
                med = statistics.median(counts)
                row.append(f"{med:.0f}")
                if a == "ppo":
                    ok[(m, b)] = med <= 0.1 * size
                    row.append(f"{100 * med / size:.1f}%")
            rows.append(row)
            print("  " + " ".join(map(str, row)), file=sys.stderr, flush=True)
    headers = ["model", "board", "space", "opt ms", "exh s"] + sum(([a, "ppo %"] if a == "ppo" else [a] for a in agents), [])
    return rows, ok, headers


def _fidelity_graph(model: str):
    """A reduced-input, random-weight copy of the model with the full model's layer names."""
    from examples import models as zoo

    from cnn2gate.frontend import load_model

    size = {"alexnet": 67, "vgg16": 32, "resnet18": 32, "mobilenet_v2": 32}[model]
    name = {"mobilenet_v2": "mobilenetv2"}.get(model, model)
    return load_model(zoo.export(name, input_size=size))


def joint(models, boards, seeds, budgets, agents) -> tuple[list, list]:
    from cnn2gate.explore.fidelity import SensitivityModel
    from cnn2gate.explore.space import PRECISION_BITS, build_space
    from cnn2gate.hw import config as hwconfig

    rows, cases = [], []
    for m in models:
        g = NETS[m]()
        t = time.perf_counter()
        small = _fidelity_graph(m)
        calib = np.random.default_rng(0).standard_normal((CALIB_SAMPLES,) + tuple(small.input_shape))
        sens = SensitivityModel.build(small, calib, PRECISION_BITS)
        names = [layer.name for layer in g.layers if layer.kind in ("conv", "dense")]
        small_names = [layer.name for layer in small.layers if layer.kind in ("conv", "dense")]
        if len(names) != len(small_names):
            raise SystemExit(f"{m}: {len(names)} weight layers in the shape graph, {len(small_names)} in the fidelity graph")
        rename = dict(zip(names, small_names))

        def fid(bits, sens=sens, rename=rename):
            return sens.sqnr({rename[k]: v for k, v in bits.items()})

        print(f"  {m}: sensitivity model {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
        for b in boards:
            legal = hwconfig.legal_values(g, b)
            legal["fc_batch"] = [1]
            space = build_space(g, b, precision=True, legal=legal,
                                initial_config=hwconfig.HwConfig.defaults(b).to_dict())
            best = {budget: {} for budget in budgets}
            for a in agents:
                runs = {budget: [] for budget in budgets}
                for s in seeds:
                    if a in BUDGET_AWARE:
                        for budget in budgets:
                            r = explore(g, b, agent=a, budget=budget, seed=s, precision=True, space=space,
                                        sensitivity=fid)
                            runs[budget].append(_best_within(r.history, budget))
                    else:
                        top = max(budgets) if a != "bo" else min(max(budgets), BO_MAX_BUDGET)
                        r = explore(g, b, agent=a, budget=top, seed=s, precision=True, space=space,
                                    sensitivity=fid)
                        for budget in budgets:
                            runs[budget].append(_best_within(r.history, budget) if budget <= top else None)
                for budget in budgets:
                    if None not in runs[budget]:
                        best[budget][a] = statistics.median(runs[budget])
            for budget in budgets:
                row = [m, b, f"{space.size:.1e}", budget] + [f"{best[budget][a]:.2f}" if a in best[budget] else "-"
                                                             for a in agents]
                for rival in RIVALS:
                    if rival in best[budget] and "ppo" in best[budget]:
                        win = best[budget]["ppo"] <= best[budget][rival] * (1 + 1e-9)
                        cases.append(win)
                        gap = 100 * (best[budget]["ppo"] / best[budget][rival] - 1)
                        row.append("win" if win else f"+{gap:.1f}%")
                    else:
                        row.append("-")
                rows.append(row)
                print("  " + " ".join(map(str, row)), file=sys.stderr, flush=True)
    return rows, cases


def anchors(seed: int = 0) -> list:
    rows = []
    for m in ("alexnet", "vgg16"):
        g = NETS[m]()
        r = explore(g, "a10", agent="ppo", seed=seed)
        ex = explore(g, "a10", agent="exhaustive", budget=10**7)
        rows.append([m, f"{r.best.total_ms:.1f}", f"{ex.best.total_ms:.1f}", f"{r.initial.total_ms:.1f}",
                     PUBLISHED[m]["cnn2gate"], PUBLISHED[m]["pipecnn"], str(r.best.config)])
    return rows


_POOL_COST = None


def _pool_eval(chunk):
    return [(_POOL_COST(cfg).total_ms) for cfg in chunk]


def parallel(model: str = "vgg16", board: str = "a10") -> list:
    """Cost the whole hardware space serially and with fork process pools; wall seconds each."""
    import multiprocessing as mp
    import os

    from cnn2gate.explore.costing import HwCost
    from cnn2gate.explore.space import build_space

    global _POOL_COST
    g = NETS[model]()
    space = build_space(g, board)
    configs = [space.config(p) for p in space.enumerate()]
    _POOL_COST = HwCost(g, board)
    t = time.perf_counter()
    serial = [_POOL_COST(c).total_ms for c in configs]
    rows = [["serial", 1, len(configs), f"{time.perf_counter() - t:.2f}", "1.00"]]
    base = time.perf_counter() - t
    for workers in sorted({2, os.cpu_count() or 1}):
        ctx = mp.get_context("fork")
        chunks = [configs[i:i + 64] for i in range(0, len(configs), 64)]
        t = time.perf_counter()
        with ctx.Pool(workers) as pool:
            got = sum(pool.map(_pool_eval, chunks), [])
        dt = time.perf_counter() - t
        if got != serial:
            raise SystemExit("parallel costing disagrees with serial costing")
        rows.append(["fork pool", workers, len(configs), f"{dt:.2f}", f"{base / dt:.2f}"])
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer seeds, models and budgets")
    ap.add_argument("--part", default="all", choices=("hw", "joint", "anchors", "parallel", "all"))
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--models", default=None, help="comma-separated subset of " + ",".join(MODELS))
    ap.add_argument("--boards", default=None, help="comma-separated subset of " + ",".join(BOARDS))
    ap.add_argument("--budgets", default=None, help="comma-separated joint-space budgets (default 200,1000,5000)")
    args = ap.parse_args(argv)
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
    print(f"# DSE agents benchmark ({mode}: {n_seeds} seeds, part {args.part})")
    headline = None
    if args.part in ("hw", "all"):
        t = time.perf_counter()
        rows, ok, headers = hw_only(models, boards, seeds, AGENTS)
        print("\n## Hardware-only space: evaluations to the exhaustive optimum (median over seeds)\n")
        print(_table(rows, headers))
        print(f"\nPPO within 10 % of the space: {sum(ok.values())}/{len(ok)} model x board  "
              f"({time.perf_counter() - t:.0f} s)")
    if args.part in ("joint", "all"):
        t = time.perf_counter()
        rows, cases = joint(joint_models, joint_boards, seeds, budgets, AGENTS)
        headers = ["model", "board", "space", "budget"] + list(AGENTS) + [f"ppo vs {r}" for r in RIVALS]
        print("\n## Joint hardware + precision space (min SQNR 30 dB): median best latency (ms)\n")
        print(_table(rows, headers))
        headline = round(100 * sum(cases) / max(len(cases), 1))
        print(f"\nPPO <= rival in {sum(cases)}/{len(cases)} cases ({time.perf_counter() - t:.0f} s)")
    if args.part in ("anchors", "all"):
        rows = anchors()
        print("\n## Explored design on a10 vs published (batch 1, 8-bit)\n")
        print(_table(rows, ["model", "ppo ms", "optimum ms", "board default ms", "CNN2Gate ms", "PipeCNN ms",
                            "config"]))
    if args.part in ("parallel", "all"):
        rows = parallel()
        print("\n## Costing the VGG-16 / a10 hardware space: serial vs process pool (pool start-up included)\n")
        print(_table(rows, ["mode", "workers", "points", "wall s", "speed-up"]))
    if headline is not None:
        print(f"ppo wins vs sa/bo/random %: {headline}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
