"""`cnn2gate boards` and `cnn2gate estimate` through click, plus the validation benchmark's headline."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cnn2gate.cli import main

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "examples" / "digits" / "digits_cnn.onnx"


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_boards_table_and_json():
    r = run("boards")
    assert r.exit_code == 0, r.output
    assert re.search(r"de1soc\s+5CSEMA5F31C6\s+Cyclone V\s+87\s+32070\s+397 M10K\s+6\.4\s+122", r.output)
    r = run("boards", "--json")
    doc = json.loads(r.output)
    assert {b["name"] for b in doc} >= {"a10", "s10mx", "agilex"}
    a10 = next(b for b in doc if b["name"] == "a10")
    assert a10["dsp_blocks"] == 1518 and a10["sources"]["alms"]


needs_model = pytest.mark.skipif(not MODEL.exists(), reason="bundled digits model missing")


@needs_model
def test_estimate_table():
    r = run("estimate", str(MODEL), "--board", "de1soc")
    assert r.exit_code == 0, r.output
    assert "total" in r.output and "DSP blocks" in r.output and re.search(r"\nFITS", r.output)


@needs_model
def test_estimate_json_contract(tmp_path):
    cfg = tmp_path / "hw.json"
    cfg.write_text(json.dumps({"vec_size": 4, "lane_num": 8}))
    r = run("estimate", str(MODEL), "--board", "a10", "--config", str(cfg), "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["board"] == "a10" and doc["config"]["vec_size"] == 4 and doc["config"]["lane_num"] == 8
    assert set(doc["resources"]["dsp"]) >= {"used", "available", "pct"} and doc["fits"] is True
    assert all({"name", "cycles", "ms", "bound"} <= set(layer) for layer in doc["layers"])


@needs_model
def test_estimate_errors(tmp_path):
    r = run("estimate", str(MODEL), "--board", "zynq")
    assert r.exit_code == 2 and "unknown board 'zynq'" in r.output
    cfg = tmp_path / "hw.json"
    cfg.write_text(json.dumps({"vec_size": 5}))
    r = run("estimate", str(MODEL), "--config", str(cfg))
    assert r.exit_code == 2 and "vec_size=5 must be a power of two" in r.output
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"vec_size": 64, "lane_num": 128}))
    r = run("estimate", str(MODEL), "--board", "de1soc", "--config", str(big))
    assert r.exit_code == 2 and "DOES NOT FIT" in r.output
    assert re.search(r"vec_size=64, lane_num=128, .*does not fit board de1soc \(dsp \d+%", r.output)
    r = run("estimate", str(MODEL), "--board", "de1soc", "--config", str(big), "--allow-misfit", "--json")
    assert r.exit_code == 0 and json.loads(r.output)["fits"] is False


def test_validation_benchmark_headline_and_fit():
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "model_validation.py"), "--fit"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    name, value = last.split(": ")
    assert name == "mean abs latency error %" and float(value) >= 0
    assert "FPT'17 DE1-SoC AlexNet" in proc.stdout and "Best-case floors" in proc.stdout
    # fitted and held-out points reported apart: no latency point is fitted, so the held-out
    # latency error is the error over all points; every resource fit point matches
    held = re.search(r"latency  fitted: +n/a \(no point\) +held-out: +([\d.]+) % over (\d+)", proc.stdout)
    every = re.search(r"mean abs latency error, all (\d+) points %: ([\d.]+)", proc.stdout)
    assert held and every and held.group(2) == every.group(1) and held.group(1) == every.group(2)
    for key in ("DSP", "ALM", "RAM"):
        fit = re.search(rf"{key} +fitted: +([\d.]+) % over 2 +held-out: +[\d.]+ % over \d", proc.stdout)
        assert fit and float(fit.group(1)) < 1.0, key
    assert re.search(r"CONTROL_DSP\[\"9x9\"\] +\d+ +#37 DE1-SoC", proc.stdout)
    # the constants in cnn2gate/hw/resources.py are the solve of the fit anchors (within rounding)
    solved = re.findall(r"(\w+) = ([\d.]+) (?:Kib )?\(code ([\d.]+)\)", proc.stdout)
    assert {name for name, _, _ in solved} == {"ALM_BASE", "ALM_PER_LANE", "RAM_BITS_PER_LSU", "RAM_BITS_PER_LANE"}
    for name, fit, code in solved:
        assert float(fit) == pytest.approx(float(code), rel=0.02), name
