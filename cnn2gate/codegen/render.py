"""Jinja2 rendering of templates/ (StrictUndefined: a missing variable is an error)."""
from __future__ import annotations

import jinja2

from ..paths import templates_dir

#: template -> output path in the project
PROJECT_TEMPLATES = {
    "device/cnn2gate.cl.j2": "device/cnn2gate.cl",
    "host/main.cpp.j2": "host/main.cpp",
    "host/layers.h.j2": "host/layers.h",
    "project/Makefile.j2": "Makefile",
    "project/README.md.j2": "README.md",
}


def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render_all(context: dict) -> dict[str, bytes]:
    env = environment()
    out = {}
    for template, path in sorted(PROJECT_TEMPLATES.items()):
        text = env.get_template(template).render(**context)
        # Generated sources are pure ASCII: a non-ASCII character means model text leaked.
        out[path] = text.encode("ascii")
    return out
