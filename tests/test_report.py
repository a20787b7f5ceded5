"""build_report and `cnn2gate report`: sections, self-containment, determinism, errors."""
from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser

import matplotlib.image as mpimg
import pytest
from click.testing import CliRunner

from cnn2gate.report import ReportError, build_report, fact_path, read_facts, write_fact
from test_report_sample import LAYERS, _front, sample_facts, write_sample


class _Page(HTMLParser):
    """Collects what a self-containment check needs: tag counts, ids, and every URL-valued attribute."""

    def __init__(self, text: str):
        super().__init__()
        self.tags, self.ids, self.urls, self.classes = {}, set(), [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for key, value in attrs:
            if key == "id":
                self.ids.add(value)
            if key == "class":
                self.classes.append((tag, value))
            if key in ("src", "href", "action", "poster", "srcset", "data"):
                self.urls.append((tag, key, value))


def _build(folder, only=None):
    write_sample(folder, only=only)
    html_path, json_path = build_report(folder)
    return html_path.read_text(encoding="utf-8"), json.loads(json_path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def complete(tmp_path_factory):
    """A report built once from the complete sample: (folder, html text, report.json)."""
    folder = tmp_path_factory.mktemp("complete")
    return (folder, *_build(folder))


def test_complete_report_has_every_section_and_is_self_contained(complete):
    _, html, doc = complete
    page = _Page(html)
    assert {"overview", "layers", "resources", "performance", "explore", "emulation"} <= page.ids
    assert doc["sections"] == ["overview", "layers", "resources", "performance", "explore", "emulation"]
    for name, *_rest in LAYERS:
        assert f'<td class="name">{name}</td>' in html
    # nothing is fetched: no scheme-qualified URLs at all, no scripts, no external stylesheets
    assert "http://" not in html and "https://" not in html
    prose = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)
    assert "://" not in prose and "url(" not in prose and "@import" not in prose
    assert "script" not in page.tags and "link" not in page.tags
    images = [value for tag, key, value in page.urls if tag == "img"]
    assert len(images) == 4, "roofline, time per layer, convergence, Pareto"
    for tag, key, value in page.urls:
        assert (tag == "img" and value.startswith("data:image/png;base64,")) or (tag == "a" and value.startswith("#")), value
    for uri in images:
        pixels = mpimg.imread(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])), format="png")
        assert pixels.shape[0] > 200 and pixels.shape[1] > 400 and pixels.std() > 0.05


def test_bound_and_verdicts_are_styled(complete):
    _, html, _ = complete
    classes = _Page(html).classes
    bounds = [c for tag, c in classes if tag == "span" and c.startswith("pill ")]
    assert bounds.count("pill compute") >= 1 and bounds.count("pill memory") >= 1
    assert ("td", "bound") in classes
    assert ("div", "verdict ok") in classes  # fits, and emulation PASS
    assert "fits the board" in html and "✓ PASS" in html


def test_report_json_merges_facts_and_derived_figures(complete):
    folder, _, doc = complete
    facts = read_facts(folder)
    assert doc["facts"] == facts
    est, derived = facts["estimate"], doc["derived"]
    perf = derived["performance"]
    slowest = max(est["layers"], key=lambda e: e["ms"])
    assert perf["bottleneck"]["name"] == slowest["name"]
    assert perf["bottleneck"]["time_pct"] == pytest.approx(100 * slowest["ms"] / est["total_ms"])
    assert perf["ridge_intensity"] == pytest.approx(est["peak_gops"] / est["mem_bandwidth_gbs"])
    assert perf["compute_bound_layers"] + perf["memory_bound_layers"] == len(LAYERS)
    assert perf["worst_resource"] == "dsp"
    row = derived["layers"][2]
    assert row["name"] == "conv2" and row["format"] == {"w_bits": 8, "w_frac": 5, "a_bits": 8, "a_frac": 4}
    assert row["sim"]["saturations"] == 3 and row["estimate"]["bound"] == est["layers"][2]["bound"]
    assert sum(r["estimate"]["time_pct"] for r in derived["layers"]) == pytest.approx(100)
    acc = derived["accuracy"]
    assert acc["worst_sqnr"]["name"] == "fc" and acc["total_saturations"] == 3 and acc["layers_saturating"] == 1

    exp = derived["explore"]
    history = facts["explore"]["history"]
    fitting = [h for h in history if h["fits"]]
    assert exp["evaluations"] == 60 and exp["fitting"] == len(fitting)
    assert exp["best_ms"] == min(h["total_ms"] for h in fitting) == facts["explore"]["best"]["total_ms"]
    curve = exp["best_so_far_ms"]
    assert all(b <= a for a, b in zip(curve, curve[1:])) and curve[-1] == exp["best_ms"]
    expected_front = [h["index"] for h in sorted(_front(fitting), key=lambda h: (h["total_ms"], h["dsp"]))]
    assert exp["pareto_dsp"] == expected_front
    assert derived["emulation"] == {"passed": True, "mismatch_pct": 0.0, "mismatch_columns": []}


def test_two_builds_are_byte_identical_wherever_the_folder_is(tmp_path):
    """One build here, one in a fresh interpreter with another hash seed, in another folder."""
    first, second = tmp_path / "a" / "proj", tmp_path / "b" / "proj"
    write_sample(first)
    write_sample(second)
    build_report(first)
    env = {**os.environ, "PYTHONHASHSEED": "12345", "MPLBACKEND": "Agg"}
    subprocess.run([sys.executable, "-c", "import sys; from cnn2gate.report import build_report; build_report(sys.argv[1])",
                    str(second)], check=True, env=env, timeout=120)
    for name in ("report.html", "report.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


@pytest.mark.parametrize("only, present, absent", [
    ({"model"}, {"overview", "layers"}, {"resources", "performance", "explore", "emulation"}),
    ({"model", "formats", "sim"}, {"overview", "layers"}, {"resources", "performance", "explore", "emulation"}),
    ({"model", "estimate"}, {"resources", "performance"}, {"explore", "emulation"}),
    ({"model", "estimate", "explore"}, {"performance", "explore"}, {"emulation"}),
    ({"model", "emulation"}, {"emulation"}, {"resources", "performance", "explore"}),
])
def test_sections_follow_the_facts_present(tmp_path, only, present, absent):
    html, doc = _build(tmp_path, only=only)
    ids = _Page(html).ids
    assert present <= ids and not (absent & ids)
    assert set(doc["facts"]) == only
    assert ("SQNR dB" in html) == ("sim" in only)
    assert ("Fixed point" in html) == ("formats" in only)
    assert ("Cycles" in html) == ("estimate" in only)
    expected_images = 2 * ("estimate" in only) + 2 * ("explore" in only)
    assert _Page(html).tags.get("img", 0) == expected_images
    for name in ("performance", "accuracy", "explore", "emulation"):
        source = {"performance": "estimate", "accuracy": "sim"}.get(name, name)
        assert (name in doc["derived"]) == (source in only)


def test_failed_emulation_lists_the_first_mismatches(tmp_path):
    facts = write_sample(tmp_path, only={"model"})
    write_fact(tmp_path, "emulation", {
        "verdict": "FAIL", "elements": 1000, "mismatches": 7, "images": 2, "accuracy": None, "seconds": 3.0,
        "runtime": "Intel(R) FPGA Emulation Platform",
        "first_mismatches": [{"index": 12, "expected": 5, "actual": 6}, {"index": 40, "expected": -3, "actual": 127}]})
    html = build_report(tmp_path)[0].read_text()
    assert facts["model"]["model"] in html
    assert ("div", "verdict bad") in _Page(html).classes and "✗ FAIL" in html
    assert "First mismatches" in html and '<td class="num">127</td>' in html and "0.700%" in html
    header = re.search(r"First mismatches.*?<thead><tr>(.*?)</tr>", html, re.S).group(1)
    assert re.findall(r"<th[^>]*>(\w+)</th>", header) == ["index", "expected", "actual"]
    assert "Top-1 accuracy" not in html


def test_explore_without_resource_columns_has_no_pareto_plot(tmp_path):
    facts = write_sample(tmp_path, only={"model"})
    explore = facts["explore"]
    for h in explore["history"]:
        del h["dsp"], h["alm"]
    explore["pareto"] = []
    write_fact(tmp_path, "explore", explore)
    html = build_report(tmp_path)[0].read_text()
    assert _Page(html).tags.get("img") == 1
    assert 'alt="Latency of each evaluated design' in html and "Pareto front of latency" not in html


def test_text_from_the_model_is_escaped(tmp_path):
    facts = sample_facts()
    facts["model"]["model"] = "<script>alert(1)</script>"
    write_fact(tmp_path, "model", facts["model"])
    html = build_report(tmp_path)[0].read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_missing_model_summary_is_an_error_naming_the_folder(tmp_path):
    write_sample(tmp_path, only={"estimate", "sim"})
    with pytest.raises(ReportError, match=rf"{tmp_path}: no facts/model.json"):
        build_report(tmp_path)
    assert not (tmp_path / "report.html").exists()
    with pytest.raises(ReportError, match="no such folder"):
        build_report(tmp_path / "nowhere")


def test_facts_about_another_model_are_rejected(tmp_path):
    facts = write_sample(tmp_path)
    facts["estimate"]["layers"][3]["name"] = "conv9"
    write_fact(tmp_path, "estimate", facts["estimate"])
    with pytest.raises(ReportError, match=r"facts/estimate.json names layer\(s\) conv9"):
        build_report(tmp_path)
    facts["sim"].append(dict(facts["sim"][0]))
    write_fact(tmp_path, "sim", facts["sim"])
    write_fact(tmp_path, "estimate", sample_facts()["estimate"])
    with pytest.raises(ReportError, match=r"facts/sim.json lists layer\(s\) conv1 more than once"):
        build_report(tmp_path)


def test_cli_prints_both_paths_and_exits_2_with_the_folder_named(tmp_path):
    from cnn2gate.cli import main

    write_sample(tmp_path, only={"model", "sim"})
    runner = CliRunner()
    result = runner.invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.split() == [str(tmp_path / "report.html"), str(tmp_path / "report.json")]

    fact_path(tmp_path, "model").unlink()
    result = runner.invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert f"error: {tmp_path}: no facts/model.json" in result.output


def test_cli_open_ok_asks_the_browser_and_tolerates_none(tmp_path, monkeypatch):
    from cnn2gate.cli import main

    write_sample(tmp_path, only={"model"})
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or False)
    result = CliRunner().invoke(main, ["report", str(tmp_path), "--open-ok"])
    assert result.exit_code == 0, result.output
    assert opened == [(tmp_path / "report.html").resolve().as_uri()]
    assert "no web browser available" in result.output
