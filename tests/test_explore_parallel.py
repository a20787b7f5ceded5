"""Parallel costing: the pool changes where points are costed, never the results."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from cnn2gate.cli import main
from cnn2gate.errors import ConfigError
from cnn2gate.explore import evaluator as evaluator_mod
from cnn2gate.explore import ExploreOptions, explore
from cnn2gate.explore.evaluator import Evaluator
from cnn2gate.explore.parallel import CostPool, usable_cores
from test_explore import DIGITS, synthetic_fidelity
from test_explore_fixtures import synthetic_cost, synthetic_space, tiny_graph


@pytest.fixture
def always_pool(monkeypatch):
    """Send every batch to the pool, however cheap the points (the synthetic cost is µs)."""
    monkeypatch.setattr(evaluator_mod, "POOL_MIN_SECONDS", 0.0)


def _history(ev):
    return [(e.point, e.total_ms, e.fits, e.fidelity, e.feasible, e.score) for e in ev.history]


def test_evaluate_many_on_the_pool_matches_one_at_a_time(always_pool):
    space = synthetic_space(precision=True)
    points = [space.random_point(np.random.default_rng(s)) for s in range(40)]
    points += points[:5]  # repeats within the batch are costed once
    serial = Evaluator(space, synthetic_cost, fidelity=synthetic_fidelity, min_sqnr=35.0)
    for p in points:
        serial.evaluate(p)
    pooled = Evaluator(space, synthetic_cost, fidelity=synthetic_fidelity, min_sqnr=35.0)
    pooled.evaluate_many(points[:8])  # the evaluator only pools once it has a cost estimate
    with CostPool(synthetic_cost, synthetic_fidelity, 2) as pool:
        pooled.pool = pool
        got = pooled.evaluate_many(points[8:])
    assert _history(pooled) == _history(serial)
    assert [g.point for g in got] == [tuple(p) for p in points[8:]]
    assert pooled.requests == serial.requests == len(points)
    assert pooled.best.point == serial.best.point


def test_evaluate_many_stops_at_the_budget_without_raising():
    space = synthetic_space()
    ev = Evaluator(space, synthetic_cost, budget=3)
    points = list(space.enumerate())[:6]
    got = ev.evaluate_many(points)
    assert [g is not None for g in got] == [True, True, True, False, False, False]
    assert ev.n_evals == 3 and ev.exhausted
    assert ev.evaluate_many(points[:2]) == got[:2]  # cached points are still answered


def test_cheap_batches_stay_in_this_process():
    space = synthetic_space()
    ev = Evaluator(space, synthetic_cost)

    class Refuse:
        def map(self, jobs):
            raise AssertionError("a microsecond cost model should not be sent to the pool")

    ev.pool = Refuse()
    ev.evaluate_many(list(space.enumerate())[:64])
    assert ev.n_evals == 64


@pytest.mark.parametrize("agent,budget", [("bo", 30), ("random", 90), ("exhaustive", 360)])
def test_workers_do_not_change_the_search(always_pool, agent, budget):
    def go(workers):
        options = ExploreOptions(agent=agent, budget=budget, seed=3, precision=agent != "exhaustive",
                                 min_sqnr=None if agent == "exhaustive" else 35.0, workers=workers)
        return explore(tiny_graph(), None, options, cost=synthetic_cost,
                       space=synthetic_space(precision=agent != "exhaustive"),
                       sensitivity=None if agent == "exhaustive" else synthetic_fidelity)

    one, two = go(1), go(2)
    assert [e.point for e in one.history] == [e.point for e in two.history]
    assert one.best.point == two.best.point
    assert one.summary()["workers"] == 1 and two.summary()["workers"] == 2


@pytest.mark.parametrize("agent", ["sa", "greedy", "ppo"])
def test_one_point_at_a_time_agents_get_no_pool(agent):
    r = explore(tiny_graph(), None, ExploreOptions(agent=agent, budget=30, workers=2), cost=synthetic_cost,
                space=synthetic_space())
    assert r.summary()["workers"] == 1


@pytest.mark.parametrize("workers", [0, -1, 1.5])
def test_bad_worker_counts_are_refused(workers):
    with pytest.raises(ConfigError, match="workers"):
        explore(tiny_graph(), None, ExploreOptions(agent="random", budget=5, workers=workers), cost=synthetic_cost,
                space=synthetic_space())


def test_cli_workers_option(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["explore", str(DIGITS), "--board", "de1soc", "--agent", "random", "--budget", "50",
                               "--workers", "2", "-o", str(tmp_path / "x"), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["workers"] == 2
    bad = runner.invoke(main, ["explore", str(DIGITS), "--workers", "0", "-o", str(tmp_path / "y")])
    assert bad.exit_code == 2 and "--workers" in bad.output
    assert not (tmp_path / "y").exists()


def test_usable_cores_is_positive():
    assert usable_cores() >= 1


def test_bo_goes_on_past_its_trial_window(monkeypatch):
    from cnn2gate.explore.agents import bayes

    monkeypatch.setattr(bayes, "WINDOW", 40)
    monkeypatch.setattr(bayes, "KEEP_BEST", 10)
    monkeypatch.setattr(bayes, "KEEP_RECENT", 10)
    studies = []
    real = bayes._narrowed
    monkeypatch.setattr(bayes, "_narrowed", lambda study, seed: studies.append(seed) or real(study, seed))

    def go():
        options = ExploreOptions(agent="bo", budget=150, seed=2, precision=True, min_sqnr=35.0)
        return explore(tiny_graph(), None, options, cost=synthetic_cost, space=synthetic_space(precision=True),
                       sensitivity=synthetic_fidelity)

    one = go()
    assert one.n_evals == 150 and len(studies) >= 2  # it restarted, and still spent the whole budget
    assert one.best is not None and one.best.feasible
    assert [e.point for e in go().history] == [e.point for e in one.history]  # reproducible across restarts
