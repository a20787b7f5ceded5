"""cnn2gate.report: the facts other commands record, and the HTML/JSON report built from them.

    write_fact(folder, "estimate", doc)   # a command records what it learned (facts/estimate.json)
    build_report(folder)                   # -> (folder/report.html, folder/report.json)

The facts contract is documented in docs/report.md and encoded in `facts.FACTS`.
Importing this package is cheap: matplotlib and Jinja2 load only when a report is built.
"""
from __future__ import annotations

import os
from pathlib import Path

from .facts import FACTS, FACTS_DIR, ReportError, fact_path, read_facts, write_fact


def build_report(folder: str | os.PathLike) -> tuple[Path, Path]:
    """Read `folder`/facts and write `folder`/report.html and `folder`/report.json; return both paths.

    Raises ReportError (exit code 2) when the folder or its facts/model.json is missing, or a
    fact breaks the contract of docs/report.md.
    """
    from .build import build_report as build

    return build(folder)


__all__ = ["build_report", "write_fact", "read_facts", "fact_path", "FACTS", "FACTS_DIR", "ReportError"]
