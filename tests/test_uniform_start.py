"""The uniform-width start of precision searches (explore/uniform.py)."""
from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cnn2gate.cli import main
from cnn2gate.explore import ExploreOptions, explore
from cnn2gate.explore.costing import HwCost
from cnn2gate.explore.evaluator import objective
from cnn2gate.explore.space import PRECISION_BITS
from cnn2gate.explore.uniform import AGENT, minimal_pairs, uniform_bits
from cnn2gate.hw import config as hwconfig
from test_explore import synthetic_fidelity
from test_explore_fixtures import LEGAL, synthetic_cost, synthetic_space, tiny_graph

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits" / "digits_cnn.onnx"
BOUND = 35.0  # synthetic_fidelity: uniform 8 bits gives 40.4 dB, w6/a10 31.3 dB


def real(agent, seed=0, budget=30, uniform_start=True, workers=1, min_sqnr=BOUND):
    """tiny_graph on a10 with the real cost model and the synthetic fidelity model."""
    return explore(tiny_graph(), "a10", ExploreOptions(agent=agent, budget=budget, seed=seed, precision=True,
                                                        min_sqnr=min_sqnr, uniform_start=uniform_start,
                                                        workers=workers),
                   sensitivity=synthetic_fidelity)


def test_minimal_pairs_meet_the_bound_and_cover_every_feasible_pair():
    space = synthetic_space(precision=True)
    for bound in (20.0, 30.0, 35.0, 45.0):
        pairs = minimal_pairs(space, synthetic_fidelity, bound)
        kept = {(w, a) for w, a, _ in pairs}
        assert kept and all(db >= bound for _, _, db in pairs)
        feasible = [(w, a) for w in PRECISION_BITS for a in PRECISION_BITS
                    if synthetic_fidelity(uniform_bits(space, w, a)) >= bound]
        # each feasible pair is at least as wide as a kept one; no kept pair is as wide as another
        assert all(any(w2 <= w and a2 <= a for w2, a2 in kept) for w, a in feasible)
        assert not any(p != q and p[0] <= q[0] and p[1] <= q[1] for p in kept for q in kept)
    assert minimal_pairs(space, synthetic_fidelity, 200.0) == []


def test_start_is_the_exact_hardware_optimum_of_its_width_pair():
    r = explore(tiny_graph(), None, ExploreOptions(agent="greedy", budget=20, precision=True, min_sqnr=BOUND,
                                                   uniform_start=True),
                cost=synthetic_cost, space=synthetic_space(precision=True), sensitivity=synthetic_fidelity)
    us = r.uniform_start
    assert us.evaluations == 5 * 6 * 4 * 3 * len(us.pairs)
    layers = list(us.best.bits)
    best = {}  # brute force over the hardware knobs, pair by pair, with the cost function alone
    for w, a, _ in minimal_pairs(r.space, synthetic_fidelity, BOUND):
        bits = {name: {"w_bits": w, "a_bits": a} for name in layers}
        for values in itertools.product(*LEGAL.values()):
            c = synthetic_cost(dict(zip(LEGAL, values)), bits)
            if c.fits and c.total_ms < best.get("ms", float("inf")):
                best = {"ms": c.total_ms, "pair": (w, a)}
    assert us.best.total_ms == pytest.approx(best["ms"]) and (us.w_bits, us.a_bits) == best["pair"]


def test_agent_alone_is_worse_than_the_uniform_start_and_the_start_is_the_incumbent():
    alone = real("sa", uniform_start=False)
    started = real("sa")
    assert alone.uniform_start is None and alone.history[0].agent == "sa"
    us = started.uniform_start
    assert us.best is not None and us.best.feasible
    # 30 evaluations of SA from the board default do not find what enumerating the hardware finds
    assert alone.best.total_ms > us.best.total_ms * 1.02
    first = started.history[0]
    assert first.agent == AGENT and first.point == us.point == started.space.initial
    assert first.total_ms == us.best.total_ms and first.fidelity == us.best.fidelity
    assert started.best.total_ms <= us.best.total_ms
    assert started.n_evals <= 30 and started.summary()["budget"] == 30
    # the board default is still reported as the initial design
    assert started.initial.config == alone.initial.config


@pytest.mark.parametrize("agent", ["ppo", "sa", "greedy", "random", "bo"])
def test_no_agent_ends_worse_than_the_uniform_start(agent):
    r = real(agent, budget=12 if agent == "bo" else 25)
    assert r.history[0].agent == AGENT
    assert r.best is not None and r.best.key() <= r.history[0].key()
    assert all(e.agent == agent for e in r.history[1:])


def test_agents_start_from_the_uniform_design():
    r = real("greedy", budget=10)
    start = r.history[0].point
    # greedy climbs from its start: its next evaluations are neighbours of the uniform design
    assert r.history[1].point in r.space.neighbours(start)
    bo = real("bo", budget=12)
    assert bo.history[0].point == bo.space.initial and bo.history[1].point != bo.space.initial


def test_same_seed_same_result_with_one_and_two_workers():
    one = real("sa", seed=3, workers=1)
    two = real("sa", seed=3, workers=2)
    assert two.uniform_start.pooled > 0 and one.uniform_start.pooled == 0
    assert [e.point for e in one.history] == [e.point for e in two.history]
    assert one.best.point == two.best.point
    assert one.uniform_start.to_dict() | {"seconds": 0, "pooled": 0} == \
        two.uniform_start.to_dict() | {"seconds": 0, "pooled": 0}


def test_off_by_default_in_the_api_and_a_no_op_without_precision():
    assert ExploreOptions().uniform_start is False
    hw = explore(tiny_graph(), "a10", ExploreOptions(agent="sa", budget=10, uniform_start=True))
    assert hw.uniform_start is None and hw.summary()["uniform_start"] is None


def test_no_pair_meets_the_bound_leaves_the_search_as_it_was():
    r = real("sa", budget=10, min_sqnr=200.0)
    assert r.uniform_start.best is None and r.uniform_start.pairs == []
    assert "no uniform width pair reaches 200 dB" in r.uniform_start.describe()
    assert r.history[0].agent == "sa"


def test_summary_reports_the_start_and_what_it_cost():
    r = real("sa")
    doc = json.loads(json.dumps(r.summary()))["uniform_start"]
    legal = hwconfig.legal_values(tiny_graph(), "a10")
    size = 1
    for values in legal.values():
        size *= len(values)
    assert doc["evaluations"] == size * len(doc["pairs"]) and doc["charged_to_budget"] == 1
    assert (doc["w_bits"], doc["a_bits"]) == (8, 8) and doc["fidelity_db"] >= BOUND
    assert doc["total_ms"] == pytest.approx(HwCost(tiny_graph(), "a10")(doc["config"], uniform_bits(
        r.space, 8, 8)).total_ms, abs=1e-6)


def test_cli_uniform_start_is_on_by_default_and_can_be_turned_off(tmp_path):
    runs = {}
    for flag in ([], ["--no-uniform-start"]):
        out = tmp_path / ("on" if not flag else "off")
        res = CliRunner().invoke(main, ["explore", str(DIGITS), "--board", "de1soc", "--agent", "sa", "--budget", "15",
                                        "--precision", "--min-sqnr", "25", "--workers", "1", "-o", str(out)] + flag)
        assert res.exit_code == 0, res.output
        rows = list(csv.DictReader(open(out / "history.csv")))
        runs[bool(flag)] = (res.stdout, json.loads((out / "summary.json").read_text()), rows)
    stdout, summary, rows = runs[False]
    us = summary["uniform_start"]
    assert f"uniform start: w{us['w_bits']}/a{us['a_bits']}" in stdout
    assert rows[0]["agent"] == AGENT and float(rows[0]["total_ms"]) == pytest.approx(us["total_ms"], rel=1e-5)
    assert len(rows) == summary["evaluations"] <= 15
    # never worse by the search's objective (latency plus the weight-memory term), unless the simulator
    # rejected the start (the sensitivity model is off by a fraction of a dB): then it was tried and failed
    assert summary["verification"]["passed"]
    tried = {t["evaluation"]: t for t in summary["verification"]["tried"]}
    if objective(summary["best"]["total_ms"], summary["best"]["average_weight_bits"]) > \
            objective(us["total_ms"], us["w_bits"]) + 1e-9:
        assert tried[1]["sim_db"] < 25 <= tried[1]["model_db"]
    stdout, summary, rows = runs[True]
    assert summary["uniform_start"] is None and "uniform start" not in stdout and rows[0]["agent"] == "sa"
