"""Simulation on a Ray cluster: two local nodes on 127.0.0.1, results bit-identical to a local run.

One cluster for the whole module (Ray start-up is seconds). Every process it starts
binds to loopback only: RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 is set before Ray is
imported and is inherited by the nodes.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.pop("RAY_ADDRESS", None)

ray = pytest.importorskip("ray")

from cnn2gate import executor as executor_mod  # noqa: E402
from cnn2gate.cli import main  # noqa: E402
from cnn2gate.executor import RayExecutor, descendant_pids  # noqa: E402
from cnn2gate.frontend import load_model  # noqa: E402
from cnn2gate.quant import quantize, quantize_params  # noqa: E402
from cnn2gate.sim.batches import shared_object, simulate_batches  # noqa: E402
from onnx_builders import GraphBuilder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits" / "digits_cnn.onnx"
DIGITS_X = ROOT / "examples" / "digits" / "test_x.npy"


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    # Quick node-death detection, so the fault test does not wait the default ~15 s.
    fast_health = {"health_check_period_ms": 500, "health_check_failure_threshold": 2}
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                      "_system_config": fast_health})
    worker = c.add_node(num_cpus=1)
    c.wait_for_nodes()
    try:
        yield c, worker
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory):
    """A few ms of simulation per image, so chunks are still running when a node is killed."""
    b = GraphBuilder("cluster conv", seed=7)
    x = b.node("Relu", [b.conv("data", 3, 16, 3, "c1", pad=1)])
    x = b.node("Relu", [b.conv(x, 16, 16, 3, "c2", pad=1)])
    x = b.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = b.node("Relu", [b.conv(x, 16, 16, 3, "c3", pad=1)])
    x = b.node("Flatten", [x])
    x = b.node("Gemm", [x, b.weight("fc.w", (10, 16 * 8 * 8)), b.weight("fc.b", (10,), 0.1)], transB=1)
    path = tmp_path_factory.mktemp("cluster") / "conv.onnx"
    path.write_bytes(b.build([1, 3, 16, 16], x).SerializeToString())
    xs = np.random.default_rng(3).standard_normal((48, 3, 16, 16)).astype(np.float32)
    np.save(path.with_suffix(".npy"), xs)
    return path, path.with_suffix(".npy")


def _simulate(tmp_path, model, inputs, name, *extra):
    out = tmp_path / f"{name}.npy"
    res = CliRunner().invoke(main, ["simulate", str(model), "--input", str(inputs), "-o", str(out), "--json",
                                    "--batch-size", "8", *extra])
    return res, out


def test_no_ray_without_cluster(tmp_path):
    # A fresh interpreter: this module itself imports Ray.
    code = textwrap.dedent(f"""
        import os, sys
        os.environ["RAY_ADDRESS"] = "127.0.0.1:1"  # must be ignored without --cluster
        from click.testing import CliRunner
        import cnn2gate.cli
        res = CliRunner().invoke(cnn2gate.cli.main, ["simulate", {str(DIGITS)!r}, "--input", {str(DIGITS_X)!r},
                                                     "-o", {str(tmp_path / "y.npy")!r}, "-q", "--batch-size", "64"])
        assert res.exit_code == 0, res.output
        assert "ray" not in sys.modules, "Ray was imported without --cluster"
        print("ok")
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stdout + run.stderr


def test_unreachable_cluster_is_exit_2_naming_the_address(tmp_path):
    res, out = _simulate(tmp_path, DIGITS, DIGITS_X, "y", "--cluster", "127.0.0.1:1")
    assert res.exit_code == 2, res.output
    assert "127.0.0.1:1" in res.output and "error:" in res.output
    assert not out.exists()


def test_cluster_auto_needs_ray_address(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    res, _ = _simulate(tmp_path, DIGITS, DIGITS_X, "y", "--cluster", "auto")
    assert res.exit_code == 2 and "RAY_ADDRESS" in res.output


@pytest.mark.parametrize("extra", [(), ("--ints",)])
def test_distributed_simulate_is_bit_identical(cluster, conv_model, tmp_path, extra):
    c, _ = cluster
    model, inputs = conv_model
    local, local_out = _simulate(tmp_path, model, inputs, "local", *extra)
    dist, dist_out = _simulate(tmp_path, model, inputs, "dist", "--cluster", c.address, *extra)
    assert local.exit_code == 0 and dist.exit_code == 0, local.output + dist.output
    a, b = np.load(local_out), np.load(dist_out)
    assert a.dtype == b.dtype and a.shape == b.shape == (48, 10)
    assert a.tobytes() == b.tobytes()
    doc_l, doc_d = json.loads(local.stdout), json.loads(dist.stdout)
    assert doc_l["warnings"] == doc_d["warnings"] and doc_l["inputs"] == doc_d["inputs"] == 48


def test_cluster_auto_reads_ray_address(cluster, tmp_path, monkeypatch):
    c, _ = cluster
    monkeypatch.setenv("RAY_ADDRESS", c.address)
    local, local_out = _simulate(tmp_path, DIGITS, DIGITS_X, "local")
    dist, dist_out = _simulate(tmp_path, DIGITS, DIGITS_X, "dist", "--cluster", "auto")
    assert dist.exit_code == 0, dist.output
    assert np.load(local_out).tobytes() == np.load(dist_out).tobytes()


def _setup(model, inputs):
    g = load_model(str(model))
    x = np.load(inputs).astype(np.float64)
    qg = quantize_params(g, quantize(g, x))
    return g, qg, x


def test_chunks_run_on_both_nodes_and_statistics_match(cluster, conv_model):
    c, worker = cluster
    g, qg, x = _setup(*conv_model)
    local = simulate_batches(g, qg, x, batch_size=2)
    with RayExecutor(c.address, shared_object(g, qg)) as ex:
        dist = simulate_batches(g, qg, x, batch_size=2, executor=ex)
    assert dist.outputs.tobytes() == local.outputs.tobytes()
    assert dist.stats == local.stats and dist.warnings == local.warnings
    assert len(dist.node_ids) == 24
    assert set(dist.node_ids) == {c.head_node.node_id, worker.node_id}


def test_a_node_with_other_versions_is_refused(cluster, tmp_path, monkeypatch):
    c, _ = cluster
    real = executor_mod.versions
    monkeypatch.setattr(executor_mod, "versions", lambda: {**real(), "cnn2gate": "0.0.0-other"})
    res, out = _simulate(tmp_path, DIGITS, DIGITS_X, "y", "--cluster", c.address)
    assert res.exit_code == 2, res.output
    assert re.search(r"runs cnn2gate \S+ \(driver: 0\.0\.0-other\)", res.output), res.output
    assert not out.exists()


def test_a_node_with_other_cnn2gate_code_is_refused(cluster, tmp_path, monkeypatch):
    # the same version number, edited files: the nodes would compute something else
    c, _ = cluster
    monkeypatch.setattr(executor_mod, "_CODE_DIGEST", "driver-edit")
    res, out = _simulate(tmp_path, DIGITS, DIGITS_X, "y", "--cluster", c.address)
    assert res.exit_code == 2, res.output
    assert re.search(r"runs cnn2gate code [0-9a-f]{12} \(driver: driver-edit\)", res.output), res.output
    assert not out.exists()


DIGITS_CALIB = ROOT / "examples" / "digits" / "calib_x.npy"


def test_distributed_quantize_writes_the_same_formats_file(cluster, tmp_path, monkeypatch):
    import importlib

    calibrate = importlib.import_module("cnn2gate.quant.calibrate")  # the package exports a function of that name

    c, worker = cluster
    g = load_model(str(DIGITS))
    monkeypatch.setattr(calibrate, "BATCH_MACS", 8 * g.total_macs())  # 8 batches of 8 inputs: 8 tasks
    files = {}
    for name, extra in (("local", ()), ("dist", ("--cluster", c.address))):
        files[name] = tmp_path / f"{name}.json"
        res = CliRunner().invoke(main, ["quantize", str(DIGITS), "--calib", str(DIGITS_CALIB), "-q",
                                        "-o", str(files[name]), *extra])
        assert res.exit_code == 0, res.output
    assert files["local"].read_bytes() == files["dist"].read_bytes()
    # the batches really ran on both nodes
    x = np.load(DIGITS_CALIB).astype(np.float64)
    with RayExecutor(c.address, g) as ex:
        done = []  # the progress bar's count: every batch, from both nodes
        assert quantize(g, x, executor=ex, progress=done.append).to_dict() == quantize(g, x).to_dict()
        assert len(ex.node_ids) == 8 and set(ex.node_ids) == {c.head_node.node_id, worker.node_id}
        assert sum(done) == 8


def test_quantize_on_an_unreachable_cluster_is_exit_2(tmp_path):
    out = tmp_path / "f.json"
    res = CliRunner().invoke(main, ["quantize", str(DIGITS), "--calib", str(DIGITS_CALIB), "-o", str(out),
                                    "--cluster", "127.0.0.1:1"])
    assert res.exit_code == 2 and "127.0.0.1:1" in res.output and not out.exists(), res.output


def test_distributed_explore_gives_the_same_history_and_design(cluster, tmp_path):
    c, _ = cluster
    x = tmp_path / "x.npy"
    y = tmp_path / "y.npy"
    np.save(x, np.load(DIGITS_X)[:120])
    np.save(y, np.load(ROOT / "examples" / "digits" / "test_y.npy")[:120])
    outs = {}
    # --workers 1: this process holds the cluster's Ray threads, and a fork pool must not start here
    for name, extra in (("local", ("--workers", "1")), ("dist", ("--cluster", c.address))):
        outs[name] = tmp_path / name
        res = CliRunner().invoke(main, ["explore", str(DIGITS), "--board", "de1soc", "--precision", "--agent", "greedy",
                                        "--budget", "40", "--seed", "3", "--max-accuracy-loss", "1", "--calib", str(x),
                                        "--labels", str(y), "-q", "-o", str(outs[name]), *extra])
        assert res.exit_code == 0, res.output
    for f in ("history.csv", "best_config.json"):
        assert (outs["local"] / f).read_bytes() == (outs["dist"] / f).read_bytes(), f
    local, dist = (json.loads((outs[n] / "summary.json").read_text()) for n in ("local", "dist"))
    assert local["verification"] == dist["verification"]


def test_shard_folder_on_the_cluster_is_bit_identical(cluster, conv_model, tmp_path):
    c, _ = cluster
    model, inputs = conv_model
    folder = tmp_path / "shards"
    folder.mkdir()
    for name, part in zip("abc", np.split(np.load(inputs), (11, 30))):  # boundaries inside chunks of 8
        np.save(folder / f"{name}.npy", part)
    runs = {}
    for name, extra in (("local", ()), ("dist", ("--cluster", c.address))):
        res = CliRunner().invoke(main, ["simulate", str(model), "--input", str(folder), "-o", str(tmp_path / name),
                                        "--json", "--batch-size", "8", *extra])
        assert res.exit_code == 0, res.output
        runs[name] = json.loads(res.stdout)
    whole, _ = _simulate(tmp_path, model, inputs, "whole")
    assert runs["local"]["warnings"] == runs["dist"]["warnings"] == json.loads(whole.stdout)["warnings"]
    got = {n: np.concatenate([np.load(tmp_path / n / f"{s}.npy") for s in "abc"]) for n in ("local", "dist")}
    assert got["dist"].tobytes() == got["local"].tobytes() == np.load(tmp_path / "whole.npy").tobytes()


def test_batched_agent_costs_on_the_cluster_with_the_local_history(cluster, monkeypatch):
    from cnn2gate.explore import ExploreOptions, explore, parallel

    # this small model's batches cost a few ms, under what is worth a cluster round trip: send every one
    monkeypatch.setattr(parallel, "RAY_POOL_FACTOR", 0)
    c, worker = cluster
    g = load_model(str(DIGITS))
    x = np.load(DIGITS_X)[:64]
    opts = dict(agent="random", budget=200, seed=5, precision=True, calib=x, min_sqnr=15.0)
    local = explore(g, "de1soc", ExploreOptions(workers=1, **opts))
    seen = []  # the progress bar's calls: one per design point, wherever it was costed
    with RayExecutor(c.address) as ex:
        dist = explore(g, "de1soc", ExploreOptions(**opts), executor=ex, progress=lambda ev, e: seen.append(e.index))
    assert seen == list(range(200))
    assert local.evaluator.pooled == 0
    assert dist.evaluator.pooled > 0  # batches of points were costed as Ray tasks
    fields = ("index", "point", "total_ms", "fits", "resources", "fidelity", "feasible", "score")
    rows = [[tuple(getattr(e, f) for f in fields) for e in r.evaluator.history] for r in (local, dist)]
    diff = [(i, [(f, a, b) for f, a, b in zip(fields, ra, rb) if a != b]) for i, (ra, rb) in enumerate(zip(*rows))
            if ra != rb]
    assert not diff and len(rows[0]) == 200, diff[:3]
    assert local.best is not None and local.best.point == dist.best.point  # the chosen design


def test_explore_cluster_needs_precision(tmp_path):
    res = CliRunner().invoke(main, ["explore", str(DIGITS), "--cluster", "127.0.0.1:1", "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "--precision" in res.output, res.output


def test_ctrl_c_leaves_no_tasks_behind(cluster, conv_model, tmp_path):
    import signal
    import time

    c, _ = cluster
    model, _ = conv_model
    xs = tmp_path / "many.npy"
    np.save(xs, np.random.default_rng(5).standard_normal((3000, 3, 16, 16)).astype(np.float32))
    out = tmp_path / "y.npy"
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.Popen([sys.executable, "-c", "from cnn2gate.cli import main; main()", "simulate", str(model),
                             "--input", str(xs), "--batch-size", "1", "-o", str(out), "--cluster", c.address],
                            stderr=subprocess.PIPE, text=True, env=env)
    seen = ""
    while "simulating" not in seen:  # the progress bar starts once the tasks are submitted
        line = proc.stderr.readline()
        assert line, f"simulate ended early: {seen}"
        seen += line
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=30)[1]
    assert proc.returncode == 1 and "Aborted" in rest, (proc.returncode, rest)
    assert not out.exists()
    ray.init(address=c.address, include_dashboard=False, log_to_driver=False)
    try:
        deadline = time.monotonic() + 15
        while ray.available_resources().get("CPU", 0) < ray.cluster_resources().get("CPU", 0):
            assert time.monotonic() < deadline, "tasks of the interrupted run are still holding CPUs"
            time.sleep(0.2)
    finally:
        ray.shutdown()


def test_ray_stays_on_loopback(cluster):
    c, _ = cluster
    ray.init(address=c.address, include_dashboard=False, log_to_driver=False)
    try:
        ray.get([ray.remote(num_cpus=1)(lambda: 1).remote() for _ in range(4)])
        pids = descendant_pids()
        ss = subprocess.run(["ss", "-tuanpH"], capture_output=True, text=True, check=True).stdout
    finally:
        ray.shutdown()
    loopback = re.compile(r"^(127\.\d+\.\d+\.\d+|\[::1\]|\[::ffff:127\.\d+\.\d+\.\d+\]|\*|0\.0\.0\.0|\[::\]):(\d+|\*)$")
    ours = []
    for line in ss.splitlines():
        found = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if found & pids:
            cols = line.split()
            local, peer = cols[4], cols[5]
            ours.append((local, peer))
            assert re.match(r"^(127\.\d+\.\d+\.\d+|\[::1\]|\[::ffff:127\.\d+\.\d+\.\d+\]):\d+$", local), line
            assert loopback.match(peer), line
    assert len(ours) >= 5, ss  # the check saw Ray's sockets


def test_killing_a_worker_node_costs_a_retry_not_the_run(cluster, conv_model):
    """Last in the module: it removes the second node."""
    c, worker = cluster
    g, qg, x = _setup(*conv_model)
    local = simulate_batches(g, qg, x, batch_size=1)
    done, killed_at = [], []

    def progress(n):
        done.append(n)
        if len(done) == 1:  # chunks are queued or running on both nodes now
            c.remove_node(worker, allow_graceful=False)  # SIGKILL: raylet, store and workers
            killed_at.append(sum(done))

    with RayExecutor(c.address, shared_object(g, qg)) as ex:
        dist = simulate_batches(g, qg, x, batch_size=1, executor=ex, progress=progress)
    assert sum(done) == 48 and len(dist.node_ids) == 48  # every chunk once, none counted twice
    assert dist.outputs.tobytes() == local.outputs.tobytes()
    assert dist.stats == local.stats
    assert killed_at and killed_at[0] < 48  # the node died mid-run
