"""The report as a browser shows it: headless Chromium loads it (no network, no JavaScript in
the report), every image decodes, the stylesheet applies, nothing is logged to the console,
and a screenshot is not blank."""
from __future__ import annotations

import html as htmlmod
import json
import re
import shutil
import subprocess

import matplotlib.image as mpimg
import pytest

from cnn2gate.report import build_report
from test_report_sample import write_sample

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (scripts/install-system-deps.sh installs it)")

#: flags that keep headless Chromium off the network and quiet on a machine without one
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]
TIMEOUT_S = 60

#: a test-only page that loads a report in a frame and writes what it finds into its own DOM
PROBE = """<!DOCTYPE html><html><body><pre id="result">pending</pre>
<iframe id="frame" src="{target}" style="width:1280px;height:2000px"></iframe>
<script>
document.getElementById("frame").addEventListener("load", function () {{
  var out = document.getElementById("result");
  try {{
    var doc = this.contentDocument;
    var imgs = Array.prototype.slice.call(doc.images);
    var box = function (el) {{ var r = el.getBoundingClientRect(); return [Math.round(r.width), Math.round(r.height)]; }};
    out.textContent = JSON.stringify({{
      images: imgs.length,
      broken: imgs.filter(function (i) {{ return !(i.complete && i.naturalWidth > 0); }}).map(function (i) {{ return i.alt; }}),
      image_boxes: imgs.map(box),
      tables: Array.prototype.map.call(doc.querySelectorAll("table"), box),
      layer_rows: doc.querySelectorAll("table.layers tbody tr").length,
      header_background: doc.querySelector("header.top") ? getComputedStyle(doc.querySelector("header.top")).backgroundColor : null,
      resource_fills: Array.prototype.map.call(doc.querySelectorAll(".track .fill"), box)
    }});
  }} catch (e) {{ out.textContent = "ERROR " + e; }}
}});
</script></body></html>
"""


def _chromium(tmp_path, *args):
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    try:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium did not finish within {TIMEOUT_S} s: {' '.join(args)}")


def _console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def _probe(tmp_path, page):
    probe = page.parent / f"probe-{page.stem}.html"
    probe.write_text(PROBE.format(target=page.name))
    run = _chromium(tmp_path, "--allow-file-access-from-files", "--run-all-compositor-stages-before-draw",
                    "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    found = re.search(r'<pre id="result">(.*?)</pre>', run.stdout, re.S)
    assert found, f"the probe page did not render: {run.stdout[:500]}"
    text = htmlmod.unescape(found.group(1))
    assert not text.startswith(("pending", "ERROR")), text
    return json.loads(text), _console_messages(run.stderr)


def test_probe_catches_broken_images_and_script_errors(tmp_path):
    """The checks below can fail: a page with an undecodable image and a throwing script is flagged."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><img alt="broken" src="data:image/png;base64,AAAA">'
                   '<script>throw new Error("boom")</script></body></html>')
    result, console = _probe(tmp_path, bad)
    assert result["broken"] == ["broken"]
    assert any("boom" in line for line in console)


def test_report_renders_in_chromium(tmp_path):
    write_sample(tmp_path)
    html_path, _ = build_report(tmp_path)

    result, console = _probe(tmp_path, html_path)
    assert console == [], console
    assert result["images"] == 4 and result["broken"] == []
    assert all(w > 300 and h > 150 for w, h in result["image_boxes"]), result["image_boxes"]
    assert result["layer_rows"] == 8
    assert len(result["tables"]) >= 4 and all(w > 100 and h > 40 for w, h in result["tables"]), result["tables"]
    assert result["header_background"] == "rgb(15, 23, 42)", "the inline stylesheet was not applied"
    assert len(result["resource_fills"]) == 3 and all(w > 0 for w, _ in result["resource_fills"])

    shot = tmp_path / "report.png"
    run = _chromium(tmp_path, "--window-size=1280,2000", f"--screenshot={shot}", html_path.as_uri())
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    assert _console_messages(run.stderr) == []
    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2000, 1280)
    assert pixels.std() > 0.1, "the screenshot is (nearly) blank"
    assert pixels[:60].mean() < 0.3, "the dark page header is missing from the top of the screenshot"
    assert 0.5 < pixels[400:].mean() < 0.99, "the body should be mostly light with visible content"
