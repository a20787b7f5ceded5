"""Design-space exploration: space, evaluator, environment, agents, API and CLI."""
from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from gymnasium.utils.env_checker import check_env

from cnn2gate.cli import main
from cnn2gate.errors import ConfigError
from cnn2gate.explore import AGENTS, ExploreOptions, explore
from cnn2gate.explore.agents.annealing import cooling_for
from cnn2gate.explore.env import DesignEnv
from cnn2gate.explore.evaluator import BudgetExhausted, Evaluator
from cnn2gate.explore.space import PRECISION_BITS, build_space
from test_explore_fixtures import LEGAL, synthetic_cost, synthetic_space, tiny_graph

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits" / "digits_cnn.onnx"
BUDGET = {"ppo": 80, "sa": 80, "bo": 40, "greedy": 80, "random": 80, "exhaustive": 360}


def synthetic_fidelity(bits: dict) -> float:
    """SQNR that drops 6 dB per bit removed, noise powers adding up over tensors."""
    noise = sum(4.0 ** -b for roles in bits.values() for b in roles.values())
    return float(10 * np.log10(1.0 / noise))


def run(agent, seed=0, budget=None, precision=False, **kw):
    space = synthetic_space(precision=precision)
    options = ExploreOptions(agent=agent, budget=budget or BUDGET[agent], seed=seed, precision=precision,
                             min_sqnr=35.0 if precision else None, **kw)
    return explore(tiny_graph(), None, options, cost=synthetic_cost, space=space,
                   sensitivity=synthetic_fidelity if precision else None)


def true_optimum():
    best = None
    for values in itertools.product(*LEGAL.values()):
        cfg = dict(zip(LEGAL, values))
        c = synthetic_cost(cfg)
        if c.fits and (best is None or c.total_ms < best[1]):
            best = (cfg, c.total_ms)
    return best


# ---- space and evaluator ------------------------------------------------------------
def test_space_uses_the_hardware_models_legal_values():
    from cnn2gate.hw import config as hwconfig

    g = tiny_graph()
    space = build_space(g, "de1soc")
    legal = hwconfig.legal_values(g, "de1soc")
    assert {k.name: list(k.values) for k in space.knobs} == legal
    defaults = hwconfig.HwConfig.defaults("de1soc").to_dict()
    assert all(defaults[k] in legal[k] for k in legal)  # so the start must be exactly the board default
    assert space.config(space.initial) == {k: defaults[k] for k in legal}
    with pytest.raises(ConfigError, match="lane_num=3"):
        space.point_of({"vec_size": 1, "lane_num": 3, "conv_gp_size_x": 1, "fc_batch": 1})


def test_moves_never_leave_the_legal_lists():
    space = synthetic_space(precision=True)
    rng = np.random.default_rng(0)
    p = space.initial
    for _ in range(500):
        p = space.move(p, rng.integers(-3, 4, size=len(p)))
        space.check(p)
        cfg = space.config(p)
        assert all(cfg[k] in LEGAL[k] for k in LEGAL)
        assert all(b in PRECISION_BITS for roles in space.precision(p).values() for b in roles.values())


def test_evaluator_charges_each_distinct_point_once_and_stops_at_the_budget():
    space = synthetic_space()
    ev = Evaluator(space, synthetic_cost, budget=3)
    a = ev.evaluate(space.initial)
    assert ev.evaluate(space.initial) is a and ev.n_evals == 1 and ev.requests == 2
    ev.evaluate(space.neighbours(space.initial)[0])
    ev.evaluate(space.neighbours(space.initial)[1])
    with pytest.raises(BudgetExhausted):
        ev.evaluate(space.neighbours(space.initial)[2])
    assert ev.n_evals == 3 and ev.exhausted
    infeasible = ev.evaluate(space.initial)  # cached: still free after the budget
    assert infeasible is a


def test_infeasible_designs_score_worse_than_any_feasible_one():
    space = synthetic_space()
    ev = Evaluator(space, synthetic_cost)
    evs = [ev.evaluate(p) for p in space.enumerate()]
    worst_ok = max(e.score for e in evs if e.feasible)
    best_bad = min(e.score for e in evs if not e.feasible)
    assert any(not e.feasible for e in evs) and worst_ok < best_bad


# ---- environment ----------------------------------------------------------------------
@pytest.mark.parametrize("precision", [False, True])
def test_env_passes_gymnasium_checker(precision):
    space = synthetic_space(precision=precision)
    ev = Evaluator(space, synthetic_cost, fidelity=synthetic_fidelity if precision else None,
                   min_sqnr=35.0 if precision else None)
    env = DesignEnv(ev, np.ones(4, np.float32))
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=1)
    assert env.observation_space.contains(obs)
    assert env.action_space.n == 3 * len(space.knobs)


def test_env_rewards_an_improving_move():
    space = synthetic_space()
    ev = Evaluator(space, synthetic_cost)
    env = DesignEnv(ev, restart_prob=0.0)
    env.reset(seed=0)
    lane = [k.name for k in space.knobs].index("lane_num")
    _, reward, *_ = env.step(3 * lane + 1)  # lane_num 4 -> 8 is faster and still fits
    assert reward > 0
    _, reward, *_ = env.step(3 * lane)  # and back again is slower
    assert reward < 0


# ---- agents ---------------------------------------------------------------------------
@pytest.mark.parametrize("agent", AGENTS)
def test_every_agent_returns_a_legal_feasible_design(agent):
    r = run(agent)
    assert r.best is not None and r.best.feasible and r.best.fits
    r.space.check(r.best.point)
    assert all(r.best.config[k] in LEGAL[k] for k in LEGAL)
    assert r.n_evals <= BUDGET[agent]
    assert r.best.total_ms < r.initial.total_ms  # every agent improves on the board default


def test_exhaustive_finds_the_true_optimum():
    cfg, ms = true_optimum()
    r = run("exhaustive")
    assert r.best.config == cfg and r.best.total_ms == pytest.approx(ms)
    assert r.n_evals == synthetic_space().size


def test_exhaustive_refuses_a_budget_below_the_space():
    with pytest.raises(ConfigError, match="budget of at least 360"):
        run("exhaustive", budget=100)


@pytest.mark.parametrize("agent", ["ppo", "sa", "bo", "greedy", "random"])
def test_same_seed_same_result(agent):
    a, b = run(agent, seed=3), run(agent, seed=3)
    assert a.best.point == b.best.point
    assert [e.point for e in a.history] == [e.point for e in b.history]
    c = run(agent, seed=4)
    assert [e.point for e in c.history] != [e.point for e in a.history]


@pytest.mark.parametrize("agent", ["ppo", "sa", "greedy"])
def test_agents_on_the_joint_space_respect_the_fidelity_bound(agent):
    r = run(agent, precision=True, budget=150)
    assert r.best.feasible and r.best.fidelity >= 35.0
    assert all(b in PRECISION_BITS for roles in r.best.bits.values() for b in roles.values())


def test_precision_widths_include_the_packed_narrow_widths():
    # issue 13 widened the default set from (4, 6, 8, 10, 12, 16) to every packed weight width
    assert PRECISION_BITS == (2, 3, 4, 5, 6, 8, 10, 12, 16)
    space = synthetic_space(precision=True)
    assert all(k.values == PRECISION_BITS for k in space.knobs if k.role != "hw")


def test_weight_memory_breaks_latency_ties_toward_narrower_weights():
    space = synthetic_space(precision=True)
    layers = list(space.precision(space.initial))
    flat = lambda config, bits: synthetic_cost(config)  # latency blind to the widths
    ev = Evaluator(space, flat, fidelity=synthetic_fidelity, min_sqnr=0.0,
                   weight_counts={name: 10 * (i + 1) for i, name in enumerate(layers)})
    cfg = space.config(space.initial)
    wide = ev.evaluate(space.point_of(cfg, {name: (8, 8) for name in layers}))
    narrow = ev.evaluate(space.point_of(cfg, {name: (4, 8) for name in layers}))
    assert wide.total_ms == narrow.total_ms and (wide.weight_bits, narrow.weight_bits) == (8.0, 4.0)
    assert narrow.score < wide.score and ev.best is narrow
    # without weight counts (hardware-only or a plain API use) the order is by latency alone
    plain = Evaluator(space, flat, fidelity=synthetic_fidelity, min_sqnr=0.0)
    assert plain.evaluate(wide.point).score == plain.evaluate(narrow.point).score
    assert plain.evaluate(wide.point).weight_bits is None


def test_sa_schedule_matches_fpgaconvnet_at_its_own_length():
    assert cooling_for(3780) == pytest.approx(0.97, abs=0.002)
    assert cooling_for(200) < 0.8


# ---- real hardware model, precision and simulator ---------------------------------------
def test_real_cost_model_and_precision_verified_by_the_simulator():
    g = tiny_graph()
    r = explore(g, "de1soc", ExploreOptions(agent="sa", budget=120, seed=0, precision=True, min_sqnr=25.0))
    assert r.best is not None and r.best.feasible
    assert r.checks.verification["passed"] and r.checks.verification["sim_sqnr_db"] >= 25.0
    fc = r.checks.fidelity_check
    assert fc["points"] and fc["mean_abs_error_db"] < 3.0
    r.formats.to_dict()  # a complete formats document for the chosen widths


def test_explore_rejects_bad_requests():
    with pytest.raises(ConfigError, match="unknown agent 'nope'"):
        explore(tiny_graph(), "de1soc", ExploreOptions(agent="nope"))
    with pytest.raises(ConfigError, match="--precision"):
        explore(tiny_graph(), "de1soc", ExploreOptions(min_sqnr=20.0))


# ---- CLI --------------------------------------------------------------------------------
def test_cli_writes_every_output_file(tmp_path):
    out = tmp_path / "dse"
    res = CliRunner().invoke(main, ["explore", str(DIGITS), "--board", "de1soc", "--agent", "sa", "--budget", "40",
                                    "-o", str(out)])
    assert res.exit_code == 0, res.output
    for name in ("best_config.json", "history.csv", "summary.json", "convergence.png", "pareto.png", "report.html",
                 "report.json", "facts/model.json", "facts/estimate.json", "facts/explore.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert "best found" in res.stdout
    config = json.loads((out / "best_config.json").read_text())
    from cnn2gate.hw import load_config

    load_config(out / "best_config.json", "de1soc")  # usable by compile/estimate --config
    rows = list(csv.DictReader(open(out / "history.csv")))
    summary = json.loads((out / "summary.json").read_text())
    assert len(rows) == summary["evaluations"] <= 40
    assert list(rows[0])[:6] == ["index", "agent", "config", "total_ms", "fits", "fidelity"]
    assert summary["best"]["config"] == config
    est = CliRunner().invoke(main, ["estimate", str(DIGITS), "--board", "de1soc", "--config",
                                    str(out / "best_config.json"), "--json"])
    assert est.exit_code == 0 and json.loads(est.stdout)["total_ms"] == pytest.approx(summary["best"]["total_ms"], rel=1e-4)

    again = CliRunner().invoke(main, ["explore", str(DIGITS), "--board", "de1soc", "--budget", "5", "-o", str(out)])
    assert again.exit_code == 2 and "--force" in again.output
    forced = CliRunner().invoke(main, ["explore", str(DIGITS), "--board", "de1soc", "--agent", "random", "--budget", "5",
                                       "-o", str(out), "--force"])
    assert forced.exit_code == 0, forced.output
    assert json.loads((out / "summary.json").read_text())["agent"] == "random"


def test_cli_unknown_agent_exits_2_naming_the_option(tmp_path):
    res = CliRunner().invoke(main, ["explore", str(DIGITS), "--agent", "nope", "-o", str(tmp_path / "x")])
    assert res.exit_code == 2
    assert "--agent" in res.output and "nope" in res.output
    assert not (tmp_path / "x").exists()


def test_cli_precision_writes_a_usable_formats_file(tmp_path):
    out = tmp_path / "dse"
    res = CliRunner().invoke(main, ["explore", str(DIGITS), "--board", "de1soc", "--agent", "greedy", "--budget", "30",
                                    "--precision", "--min-sqnr", "25", "--quiet", "-o", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verification"]["passed"] and summary["verification"]["sim_sqnr_db"] >= 25
    assert summary["fidelity_check"]["mean_abs_error_db"] is not None
    est = CliRunner().invoke(main, ["estimate", str(DIGITS), "--board", "de1soc", "--config", str(out / "best_config.json"),
                                    "--formats", str(out / "best_formats.json"), "--json"])
    assert est.exit_code == 0, est.output
    assert json.loads(est.stdout)["total_ms"] == pytest.approx(summary["best"]["total_ms"], rel=1e-4)


def test_cli_rejects_sqnr_bound_without_precision(tmp_path):
    res = CliRunner().invoke(main, ["explore", str(DIGITS), "--min-sqnr", "30", "-o", str(tmp_path / "x")])
    assert res.exit_code == 2 and "--precision" in res.output


# ---- accuracy bound ---------------------------------------------------------------------
TEST_X = ROOT / "examples" / "digits" / "test_x.npy"
TEST_Y = ROOT / "examples" / "digits" / "test_y.npy"
N_VAL = 120


def test_accuracy_bound_is_verified_by_the_simulator():
    from cnn2gate.frontend import load_model

    x, y = np.load(TEST_X)[:N_VAL], np.load(TEST_Y)[:N_VAL]
    r = explore(load_model(str(DIGITS)), "de1soc", ExploreOptions(agent="greedy", budget=40, seed=0, precision=True,
                                                                  calib=x, labels=y, max_accuracy_loss=1.0))
    assert r.best is not None and r.best.feasible
    v = r.checks.verification
    assert v["passed"] and v["samples"] == N_VAL
    assert v["float_accuracy"] - v["fixed_accuracy"] == pytest.approx(v["accuracy_loss_pct"], abs=1e-2)
    assert v["accuracy_loss_pct"] <= 1.0
    cal = r.bound.accuracy_calibration
    assert r.bound.min_sqnr == cal["min_sqnr_db"] and cal["uniform"] and cal["float_accuracy"] == v["float_accuracy"]
    doc = r.summary()
    assert doc["max_accuracy_loss_pct"] == 1.0 and doc["verification"]["fixed_accuracy"] == v["fixed_accuracy"]
    # an independent check of the chosen design with the simulator
    from cnn2gate.ir import reference
    from cnn2gate.sim import simulate

    g = load_model(str(DIGITS))
    fixed = simulate(g, r.formats, x, keep="output").floats[g.output].reshape(N_VAL, -1).argmax(1)
    flt = reference.execute(g, x)[g.output].reshape(N_VAL, -1).argmax(1)
    assert 100 * (np.mean(flt == y) - np.mean(fixed == y)) <= 1.0 + 1e-9


def test_accuracy_bound_rejects_bad_requests():
    x, y = np.load(TEST_X)[:10], np.load(TEST_Y)[:10]
    with pytest.raises(ConfigError, match="--precision"):
        explore(tiny_graph(), "de1soc", ExploreOptions(max_accuracy_loss=1.0, calib=x, labels=y))
    with pytest.raises(ConfigError, match="--labels"):
        explore(tiny_graph(), "de1soc", ExploreOptions(precision=True, max_accuracy_loss=1.0, calib=x))
    with pytest.raises(ConfigError, match="--labels has 9 labels"):
        explore(tiny_graph(), "de1soc", ExploreOptions(precision=True, max_accuracy_loss=1.0, calib=x, labels=y[:9]))
    with pytest.raises(ConfigError, match="--min-sqnr and --max-accuracy-loss"):
        explore(tiny_graph(), "de1soc", ExploreOptions(precision=True, min_sqnr=30.0, max_accuracy_loss=1.0, calib=x,
                                                       labels=y))


@pytest.mark.parametrize("args, needle", [
    (["--max-accuracy-loss", "1"], "--precision"),
    (["--precision", "--max-accuracy-loss", "1"], "--calib"),
    (["--precision", "--max-accuracy-loss", "1", "--calib", "X"], "--labels"),
    (["--precision", "--max-accuracy-loss", "1", "--calib", "X", "--labels", "Y9"], "--labels has 9 labels"),
    (["--precision", "--max-accuracy-loss", "1", "--min-sqnr", "30", "--calib", "X", "--labels", "Y"],
     "--max-accuracy-loss"),
    (["--precision", "--labels", "Y"], "--max-accuracy-loss"),
])
def test_cli_accuracy_bound_errors_exit_2_naming_the_option(tmp_path, args, needle):
    np.save(tmp_path / "x.npy", np.load(TEST_X)[:10])
    np.save(tmp_path / "y.npy", np.load(TEST_Y)[:10])
    np.save(tmp_path / "y9.npy", np.load(TEST_Y)[:9])
    paths = {"X": str(tmp_path / "x.npy"), "Y": str(tmp_path / "y.npy"), "Y9": str(tmp_path / "y9.npy")}
    args = [paths.get(a, a) for a in args]
    res = CliRunner().invoke(main, ["explore", str(DIGITS), "--board", "de1soc", "--budget", "5", *args,
                                    "-o", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    assert needle in res.output
    assert not (tmp_path / "out").exists()


def test_cli_accuracy_bound_reports_float_and_fixed_accuracy(tmp_path):
    np.save(tmp_path / "x.npy", np.load(TEST_X)[:N_VAL])
    np.save(tmp_path / "y.npy", np.load(TEST_Y)[:N_VAL])
    out = tmp_path / "dse"
    res = CliRunner().invoke(main, ["explore", str(DIGITS), "--board", "de1soc", "--agent", "greedy", "--budget", "30",
                                    "--precision", "--max-accuracy-loss", "1", "--calib", str(tmp_path / "x.npy"),
                                    "--labels", str(tmp_path / "y.npy"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "top-1 accuracy" in res.output and "vs float" in res.output
    v = json.loads((out / "summary.json").read_text())["verification"]
    assert v["passed"] and v["accuracy_loss_pct"] <= 1.0 and (out / "best_formats.json").exists()
