"""The rewrite pipeline, in order. Each module holds one group of small match/transform rules.

Stage 1 works on plain ONNX (so shapes can be inferred again afterwards);
stage 2 may introduce internal nodes and fused activations.
"""
from __future__ import annotations

from ..wgraph import WGraph
from . import activations, affine, canonical, cleanup, constants, layout, windows
from .base import Rule, run_rules

#: (group name, rules); a group is repeated until none of its rules fires.
STAGE1: list[tuple[str, list[Rule]]] = [
    ("constants", constants.RULES + cleanup.RULES),
]

STAGE2: list[tuple[str, list[Rule]]] = [
    ("cleanup", cleanup.RULES),
    ("canonical", canonical.RULES),
    ("layout", layout.RULES),
    ("pooling", canonical.POOL_RULES),
    ("windows", windows.RULES),
    ("affine", affine.RULES),
    ("activations", activations.RULES),
]


def run_stage(g: WGraph, stage: list[tuple[str, list[Rule]]]) -> None:
    fired = g.meta.setdefault("passes", {})
    for group, rules in stage:
        while True:
            counts = run_rules(g, rules)
            for name, c in counts.items():
                if c:
                    fired[name] = fired.get(name, 0) + c
            g.prune()
            if not any(counts.values()):
                break
