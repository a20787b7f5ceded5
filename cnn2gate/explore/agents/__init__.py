"""Search agents, one module each. Every module exposes `search(evaluator, seed)`.

An agent proposes design points (index tuples) and costs them through the shared
`Evaluator`; it stops when its own procedure ends or when the evaluator raises
`BudgetExhausted`. Modules are imported on demand so that, for example, torch is only
loaded for the PPO agent.
"""
from __future__ import annotations

import importlib

#: agent name -> module under cnn2gate.explore.agents
AGENTS = {
    "ppo": "ppo",
    "sa": "annealing",
    "bo": "bayes",
    "greedy": "greedy",
    "random": "random_search",
    "exhaustive": "exhaustive",
}


#: agents that hand the evaluator batches of points (evaluate_many), so a cost pool pays
BATCHED = ("bo", "random", "exhaustive")


def batches(name: str) -> bool:
    """Whether agent `name` proposes points in batches that can be costed in parallel."""
    return name in BATCHED


def get(name: str):
    """The `search` function of the agent called `name` (ValueError lists the known names)."""
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; choose one of {', '.join(AGENTS)}")
    return importlib.import_module(f"{__name__}.{AGENTS[name]}").search
