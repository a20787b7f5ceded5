"""Rules: a match function and a transform, applied node by node until nothing matches."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..wgraph import Node, WGraph

#: A rewrite that keeps matching after this many applications is a bug (it loops).
_LIMIT = 100_000


@dataclass(frozen=True)
class Rule:
    name: str
    match: Callable[[WGraph, Node], bool]
    apply: Callable[[WGraph, Node], None]


def run_rule(g: WGraph, rule: Rule) -> int:
    count = 0
    changed = True
    while changed:
        changed = False
        for node in list(g.nodes):
            if any(n is node for n in g.nodes) and rule.match(g, node):
                rule.apply(g, node)
                count += 1
                changed = True
                if count > _LIMIT:
                    raise AssertionError(f"rule {rule.name} does not converge")
    return count


def run_rules(g: WGraph, rules: list[Rule]) -> dict[str, int]:
    """Apply rules in order; returns how often each fired (recorded in graph meta for debugging)."""
    return {rule.name: run_rule(g, rule) for rule in rules}


# -- small helpers shared by the rule modules ----------------------------

def const_of(g: WGraph, node: Node, index: int) -> np.ndarray | None:
    """The constant at input `index`, or None if absent/non-constant."""
    if index >= len(node.inputs) or not node.inputs[index]:
        return None
    return g.consts.get(node.inputs[index])


def activations(g: WGraph, node: Node) -> list[str]:
    """Non-constant, non-empty inputs of a node."""
    return [t for t in node.inputs if t and t not in g.consts]


def merge_sources(into: Node, other: Node) -> None:
    into.sources = into.sources + [s for s in other.sources if s not in into.sources]
