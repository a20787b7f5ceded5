"""Can VGG-16 reach <= 30 ms per image at >= 30 dB on a10 (modelled)? A bound, then the searches.

    python benchmarks/vgg16_joint_bound.py [--seeds 3] [--budget 5000] [--agents sa,greedy,ppo]
                                           [--bounds 30,25] [--workers 2]

Latency: the cost model (`cnn2gate.hw.estimate`) on the full-size shape-only VGG-16 and the
whole a10 hardware space (fc_batch free, 10,640 points). SQNR: the sensitivity model of
the reduced, random-weight VGG-16 of `benchmarks/dse_agents.py` (32 px, 2 random inputs,
the nine widths), its layers paired with the full graph's in order.

The bound rests on two properties, both checked here numerically:
* the sensitivity model is additive over tensors (one output: SQNR = signal / (input
  noise + the sum of every tensor's noise power at its width)), so the best SQNR of a set
  of designs that lets each tensor take any width in a range is reached by giving each
  tensor its least noisy width in that range, exactly; when every tensor's noise falls
  as its width grows (checked over the whole table), that is the widest width of the range;
* the cost model never makes a design faster or smaller by widening a tensor (spot-checked
  on random pairs of designs), so the fastest design of a region is one of its narrowest.

Regions: packed (every conv/dense weight <= 5 bits and every tensor <= 8 bits: DSP
packing), 8-bit data (every tensor <= 8 bits), 16-bit data (some tensor > 8 bits). Any
design with some tensor wider than 8 bits is at least as slow as one with a single tensor
at 10 bits and every other at the narrowest width (2 bits), so the exact optimum at
16-bit data is the best of those 2 x 16 designs, each with its hardware enumerated
(branch and bound: a config is costed only where the all-2-bit design, which no design is
narrower than, fits and is faster than the best found so far).

Then the joint search (agents x seeds x bounds, with and without the uniform-width start,
5,000 evaluations each, workers=1). The cost function is memoised across runs (every run
costs many of the same points; the results are unchanged). Last line:
`best_feasible_ms_30db: X`.
"""
from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cnn2gate.explore import ExploreOptions, explore  # noqa: E402
from cnn2gate.explore.costing import HwCost  # noqa: E402
from cnn2gate.explore.parallel import CostPool  # noqa: E402
from cnn2gate.explore.space import PRECISION_BITS, build_space, precision_layers  # noqa: E402
from cnn2gate.hw import config as hwconfig  # noqa: E402
from cnn2gate.hw import load_board  # noqa: E402
from cnn2gate.zoo import NETS  # noqa: E402

BOARD = "a10"
TARGET_MS, TARGET_DB = 30.0, 30.0
PACKED_W = (2, 3, 4, 5)  # weights DSP packing takes with 8-bit data (docs/cost-models.md)


class MemoCost:
    """HwCost with a cache keyed by (config, widths): the searches cost many of the same points."""

    def __init__(self, cost):
        self.cost, self.cache = cost, {}

    def __call__(self, config, bits=None):
        key = (tuple(config.items()), None if bits is None else
               tuple((n, b["w_bits"], b["a_bits"]) for n, b in bits.items()))
        hit = self.cache.get(key)
        if hit is None:
            hit = self.cache[key] = self.cost(config, bits)
        return hit


def enumerate_hw(configs, bits, cost, pool=None, keep=None):
    """(best Cost, its config) over the hardware configs at `bits`, or (None, None) if nothing fits;
    on the CostPool `pool` when given. keep: a dict that receives config index -> Cost."""
    jobs = [(c, bits) for c in configs]
    results = pool.map(jobs) if pool is not None else [(cost(c, b), None) for c, b in jobs]
    best = None
    for i, ((config, _), (cost, _)) in enumerate(zip(jobs, results)):
        if keep is not None:
            keep[i] = cost
        if cost.fits and (best is None or (cost.total_ms, cost.resources["dsp"]) <
                          (best[0].total_ms, best[0].resources["dsp"])):
            best = (cost, config)
    return best or (None, None)


def sensitivity(g):
    from dse_agents import CALIB_SAMPLES, _fidelity_graph, _RenamedFidelity

    from cnn2gate.explore.fidelity import SensitivityModel

    small = _fidelity_graph("vgg16")
    calib = np.random.default_rng(0).standard_normal((CALIB_SAMPLES,) + tuple(small.input_shape))
    sens = SensitivityModel.build(small, calib, PRECISION_BITS, workers=1)
    names = precision_layers(g)
    small_names = precision_layers(small)
    assert len(names) == len(small_names), "weight layers of the two graphs differ"
    return sens, _RenamedFidelity(sens, dict(zip(names, small_names))), dict(zip(names, small_names))


def best_sqnr(sens, rename, w_range, a_range):
    """Highest modelled SQNR over designs whose weights lie in w_range and activations in a_range
    (per tensor the least noisy width: exact for the additive one-output model), and the design."""
    noise = float(np.atleast_1d(sens.input_noise)[0])
    design = {}
    for name, small in rename.items():
        pick = {}
        for role, rng in (("w_bits", w_range), ("a_bits", a_range)):
            b = min(rng, key=lambda b: (float(np.atleast_1d(sens.noise[small, role, b])[0]), -b))
            pick[role] = b
            noise += float(np.atleast_1d(sens.noise[small, role, b])[0])
        design[name] = pick
    return 10 * math.log10(float(np.atleast_1d(sens.signal_power)[0]) / noise), design


def noise_monotone(sens):
    """(tensors whose noise power never rises with the width, all tensors)."""
    tensors = {(n, r) for n, r, _ in sens.noise}
    ok = 0
    for n, r in tensors:
        seq = [float(np.atleast_1d(sens.noise[n, r, b])[0]) for b in sens.bits]
        ok += all(x >= y for x, y in zip(seq, seq[1:]))
    return ok, len(tensors)


def cost_monotone(cost, space, layers, n, seed=0):
    """Random (config, narrow, wide) triples: how often widening tensors made the design faster or
    made a design fit that did not: (violations, pairs)."""
    rng = random.Random(seed)
    points = list(space.enumerate())
    bad = 0
    for _ in range(n):
        config = space.config(rng.choice(points))
        narrow = {name: {"w_bits": rng.choice(PRECISION_BITS), "a_bits": rng.choice(PRECISION_BITS)}
                  for name in layers}
        wide = {name: {r: rng.choice([b for b in PRECISION_BITS if b >= v]) for r, v in roles.items()}
                for name, roles in narrow.items()}
        a, b = cost(config, narrow), cost(config, wide)
        bad += (a.total_ms > b.total_ms * (1 + 1e-9)) or (b.fits and not a.fits)
    return bad, n


def uniform(layers, w, a):
    return {name: {"w_bits": w, "a_bits": a} for name in layers}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=int, default=5000)
    ap.add_argument("--agents", default="sa,greedy,ppo")
    ap.add_argument("--bounds", default="30,25", help="SQNR bounds (dB) of the searches")
    ap.add_argument("--workers", type=int, default=2, help="processes for the enumerations of the bound")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: the 16-bit optimum over the first 2 layers only (then not exact)")
    args = ap.parse_args(argv)
    t_all = time.perf_counter()
    g = NETS["vgg16"]()
    board = load_board(BOARD)
    layers = precision_layers(g)
    hw_space = build_space(g, board)
    points = list(hw_space.enumerate())
    configs = [hw_space.config(p) for p in points]
    cost = MemoCost(HwCost(g, board))
    print(f"# VGG-16 on {BOARD} (modelled): is <= {TARGET_MS:g} ms at >= {TARGET_DB:g} dB reachable?")
    print(f"hardware space: {len(points):,} configs; widths {PRECISION_BITS}; {len(layers)} conv/dense layers")

    t = time.perf_counter()
    sens, fid, rename = sensitivity(g)
    print(f"sensitivity model (reduced VGG-16, 32 px, 2 random inputs): {time.perf_counter() - t:.1f} s")
    ok, n = noise_monotone(sens)
    print(f"noise power non-increasing in the width: {ok}/{n} tensors")
    bad, pairs = cost_monotone(cost, hw_space, layers, 300)
    print(f"cost model: widening tensors made a design faster or fit where it did not in {bad}/{pairs} random pairs")

    print("\n## Exact hardware optima (every config enumerated)\n")
    rows = []
    t = time.perf_counter()
    pool = CostPool(cost.cost, None, args.workers) if args.workers > 1 else None
    try:
        def row(label, bits, keep=None):
            c, config = enumerate_hw(configs, bits, cost, pool, keep)
            db = fid(bits)
            rows.append((label, c, config, db))
            ms = "no fit" if c is None else f"{c.total_ms:.2f}"
            print(f"{label:<46} {ms:>8} ms  {db:6.2f} dB  {config}", flush=True)
            return c, config

        row("8-bit data, unpacked: uniform w8/a8", uniform(layers, 8, 8))
        narrowest = {}
        row("packed region, narrowest: w2/a2", uniform(layers, 2, 2), narrowest)
        row("packed region: uniform w5/a8", uniform(layers, 5, 8))
        c16, cfg16 = row("16-bit data: uniform w8/a10", uniform(layers, 8, 10))
        row("16-bit data: uniform w16/a16", uniform(layers, 16, 16))
        # Branch and bound over the 2 x 16 designs with one tensor at 10 bits: each is at least as
        # wide as w2/a2 everywhere, so (cost model monotone in the widths) a config can only beat the
        # best so far where w2/a2 fits and is already faster than it; w8/a10 gives the first bound.
        lowest16 = (c16, cfg16, "uniform w8/a10")
        costed = 0
        for name in layers[:2] if args.quick else layers:
            for role in ("a_bits", "w_bits"):
                bits = uniform(layers, 2, 2)
                bits[name] = dict(bits[name], **{role: 10})
                todo = [configs[i] for i, c in narrowest.items() if c.fits and c.total_ms < lowest16[0].total_ms]
                costed += len(todo)
                c, config = enumerate_hw(todo, bits, cost, pool) if todo else (None, None)
                if c is not None and c.total_ms < lowest16[0].total_ms:
                    lowest16 = (c, config, f"{name} {role[0]}10")
        label = "16-bit data, QUICK: 2 layers only" if args.quick else "16-bit data, optimum (one tensor at 10 bits)"
        print(f"{label:<46} {lowest16[0].total_ms:8.2f} ms  "
              f"({lowest16[2]}, the rest w2/a2)  {lowest16[1]}")
    finally:
        if pool is not None:
            pool.close()
    t_enum = time.perf_counter() - t
    print(f"(5 enumerations of {len(configs):,} configs, then {costed:,} configs for the "
          f"{2 * (2 if args.quick else len(layers))} one-tensor-at-10-bits designs; {t_enum:.0f} s)")

    print("\n## Best modelled SQNR by region (per tensor its least noisy width)\n")
    packed_db, _ = best_sqnr(sens, rename, PACKED_W, [b for b in PRECISION_BITS if b <= 8])
    eight_db, _ = best_sqnr(sens, rename, [b for b in PRECISION_BITS if b <= 8], [b for b in PRECISION_BITS if b <= 8])
    print(f"packed (w <= 5, a <= 8): {packed_db:.2f} dB (uniform w5/a8: {fid(uniform(layers, 5, 8)):.2f} dB)")
    print(f"8-bit data (w, a <= 8):  {eight_db:.2f} dB (uniform w8/a8: {fid(uniform(layers, 8, 8)):.2f} dB)")
    ms16 = lowest16[0].total_ms
    for db in (TARGET_DB,):
        if eight_db < db:
            print(f"=> at >= {db:g} dB every design has a tensor wider than 8 bits, so 16-bit data: "
                  f">= {ms16:.2f} ms {'>' if ms16 > TARGET_MS else '<='} {TARGET_MS:g} ms")

    print(f"\n## Joint search: {args.budget:,} evaluations, seeds 0-{args.seeds - 1}, workers 1\n")
    legal = hwconfig.legal_values(g, board)
    space = build_space(g, board, precision=True, legal=legal,
                        initial_config=hwconfig.HwConfig.defaults(board).to_dict())
    best_at: dict = {}
    print(f"{'bound':>5}  {'agent':<6} {'start':<8} {'best feasible ms per seed':<28} {'median':>7}  search s")
    for bound in [float(b) for b in args.bounds.split(",")]:
        for agent in args.agents.split(","):
            for us in (False, True):
                bests, secs, start = [], [], None
                for seed in range(args.seeds):
                    t = time.perf_counter()
                    r = explore(g, board, ExploreOptions(agent=agent, budget=args.budget, seed=seed, precision=True,
                                                         min_sqnr=bound, uniform_start=us),
                                cost=cost, space=space, sensitivity=fid)
                    secs.append(time.perf_counter() - t)
                    bests.append(r.best.total_ms if r.best is not None else math.inf)
                    start = r.uniform_start
                best_at[bound] = min(best_at.get(bound, math.inf), *bests)
                print(f"{bound:5g}  {agent:<6} {'uniform' if us else 'default':<8} "
                      f"{' / '.join(f'{b:.2f}' for b in bests):<28} {statistics.median(bests):7.2f}  "
                      f"{statistics.median(secs):.1f}", flush=True)
                if us and agent == args.agents.split(",")[0]:
                    pairs = [(p["w_bits"], p["a_bits"], p["best_ms"]) for p in start.pairs]
                    print(f"       {start.describe()}; pairs {pairs}, {start.evaluations:,} configs outside the budget")
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s")
    print(f"best_feasible_ms_30db: {best_at.get(TARGET_DB, math.inf):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
