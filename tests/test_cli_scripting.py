"""--json and --quiet for scripting: JSON on stdout that parses, nothing else when quiet."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cnn2gate.cli import main
from cnn2gate.emulate import emulator_available

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"
MODEL = str(DIGITS / "digits_cnn.onnx")
_OK, _WHY = emulator_available()


def run(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 0, (args, res.output, res.exception)
    return res


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("scripting")
    run("quantize", MODEL, "--calib", DIGITS / "calib_x.npy", "-o", d / "f.json", "-q")
    return d


def test_quantize_json_is_the_formats_document(work):
    doc = json.loads(run("quantize", MODEL, "--calib", DIGITS / "calib_x.npy", "-o", work / "g.json", "--json").stdout)
    assert doc == json.loads((work / "g.json").read_text())


def test_simulate_json_and_quiet(work):
    doc = json.loads(run("simulate", MODEL, "--input", DIGITS / "test_x.npy", "--formats", work / "f.json",
                         "-o", work / "y.npy", "--report", "--json").stdout)
    assert doc["inputs"] == 360 and [r["name"] for r in doc["report"]][:1] and doc["output"].endswith("y.npy")
    quiet = run("simulate", MODEL, "--input", DIGITS / "test_x.npy", "--formats", work / "f.json",
                "-o", work / "y2.npy", "-q")
    assert quiet.stdout == "" and (work / "y2.npy").is_file()


def test_compile_explore_json(work):
    doc = json.loads(run("compile", MODEL, "--formats", work / "f.json", "-o", work / "p", "--json").stdout)
    assert doc["fits"] is True and doc["total_ms"] > 0 and Path(doc["project"]).is_dir()
    assert run("compile", MODEL, "--formats", work / "f.json", "-o", work / "p2", "-q").stdout == ""
    doc = json.loads(run("explore", MODEL, "--budget", 20, "-o", work / "ex", "--json").stdout)
    assert doc["best"]["fits"] and doc["evaluations"] <= 20


@pytest.mark.emulator
@pytest.mark.skipif(not _OK, reason=f"Intel FPGA emulation runtime unavailable: {_WHY}")
def test_emulate_json_is_the_recorded_verdict(work):
    run("compile", MODEL, "--formats", work / "f.json", "-o", work / "pe", "-q")
    doc = json.loads(run("emulate", work / "pe", "--json").stdout)
    assert doc["verdict"] == "PASS" and doc["mismatches"] == 0
    assert doc == json.loads((work / "pe" / "facts" / "emulation.json").read_text())
