"""Fixtures shared by several test files."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def example_model():
    """get(name) -> (graph, 8-bit formats) of an examples/models.py model at its CI size (cached)."""
    from cnn2gate.frontend import load_model
    from cnn2gate.quant import quantize

    sys.path.insert(0, str(ROOT))
    try:
        from examples import models
    finally:
        sys.path.remove(str(ROOT))
    cache = {}

    def get(name):
        if name not in cache:
            g = load_model(models.export(name, **models.SMALL[name]))
            cache[name] = (g, quantize(g))
        return cache[name]

    return get
