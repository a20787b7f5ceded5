"""Turn a folder's facts into report.html (self-contained) and report.json."""
from __future__ import annotations

import os
from pathlib import Path

import jinja2

from .. import __version__
from ..paths import templates_dir
from . import plots
from .derive import derive
from .facts import atomic_write, dumps, read_facts
from .formatting import FILTERS, GLOBALS

HTML_NAME = "report.html"
JSON_NAME = "report.json"

#: section id -> (title, fact it needs); model sections are always there
SECTIONS = [
    ("overview", "Model", "model"),
    ("layers", "Layers", "model"),
    ("resources", "Resources", "estimate"),
    ("performance", "Performance", "estimate"),
    ("explore", "Design space exploration", "explore"),
    ("emulation", "Emulation", "emulation"),
]


def build_report(folder: str | os.PathLike) -> tuple[Path, Path]:
    """Read `folder`/facts, write `folder`/report.html and `folder`/report.json; return both paths.

    The folder's own name is not part of the output, so a report built in a temporary
    folder and moved into place is identical to one built in place."""
    root = Path(folder)
    facts = read_facts(root)
    derived = derive(facts)
    sections = [(sid, heading) for sid, heading, need in SECTIONS if need in facts]
    html = render_html(facts, derived, sections)
    doc = {"cnn2gate_version": __version__, "sections": [sid for sid, _ in sections],
           "facts": facts, "derived": derived}
    html_path, json_path = root / HTML_NAME, root / JSON_NAME
    atomic_write(json_path, dumps(doc))
    atomic_write(html_path, html)
    return html_path, json_path


def figures(facts: dict, derived: dict) -> dict[str, str]:
    """The plots the facts allow, as data URIs keyed by name."""
    return {name: plots.data_uri(png) for name, png in figure_pngs(facts, derived).items()}


def figure_pngs(facts: dict, derived: dict) -> dict[str, bytes]:
    """The plots the facts allow, as PNG bytes keyed by name."""
    out = {}
    layers = derived["layers"]
    if "estimate" in facts:
        est = facts["estimate"]
        out["roofline"] = plots.roofline(layers, est["peak_gops"], est["mem_bandwidth_gbs"])
        out["layer_times"] = plots.layer_times(layers)
    if "explore" in facts:
        exp, dex = facts["explore"], derived["explore"]
        if exp["history"]:
            out["convergence"] = plots.convergence(exp["history"], dex["best_so_far_ms"])
        if dex["pareto_dsp"] or dex["pareto_alm"]:
            fronts = {"dsp": dex["pareto_dsp"], "alm": dex["pareto_alm"]}
            limits = ({res: facts["estimate"]["resources"][res]["available"] for res in fronts}
                      if "estimate" in facts else None)
            out["pareto"] = plots.pareto(exp["history"], fronts, dex["best_found_at"], limits)
    return out


def _environment() -> jinja2.Environment:
    folder = templates_dir() / "report"
    if not folder.is_dir():
        raise RuntimeError(f"cnn2gate installation is broken: report templates not found at {folder}")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters.update(FILTERS)
    env.globals.update(GLOBALS)
    return env


def render_html(facts: dict, derived: dict, sections: list[tuple[str, str]]) -> str:
    template = _environment().get_template("report.html.j2")
    return template.render(facts=facts, derived=derived, sections=sections,
                           images=figures(facts, derived), colours=plots.COLOURS, version=__version__)
