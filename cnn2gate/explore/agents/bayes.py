"""Bayesian optimisation with Optuna's TPE sampler (one integer parameter per knob index).

The first trial is the space's initial design. TPE often proposes a point already
costed; such a trial is moved to a random unseen neighbour of the proposal (so nearly
every trial is a new evaluation and the sampler's cost stays proportional to the budget),
or answered from the cache when every neighbour has been seen. The loop stops when the
evaluation budget is spent or after 3 trials per budgeted evaluation.
"""
from __future__ import annotations

import warnings

import numpy as np
import optuna

N_STARTUP = 10
TRIALS_PER_EVAL = 3


def search(ev, seed: int = 0) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    rng = np.random.default_rng(seed)
    space = ev.space
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=N_STARTUP, multivariate=True)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    names = [f"k{j}" for j in range(len(space.knobs))]
    study.enqueue_trial(dict(zip(names, space.initial)))
    max_trials = TRIALS_PER_EVAL * (ev.budget or space.size) + 100
    for _ in range(max_trials):
        if ev.exhausted:
            return
        proposal = study.ask()
        point = tuple(proposal.suggest_int(name, 0, n - 1) for name, n in zip(names, space.dims))
        if ev.seen(point):
            fresh = [p for p in space.neighbours(point) if not ev.seen(p)]
            if fresh:
                point = fresh[int(rng.integers(len(fresh)))]
                study.tell(proposal, state=optuna.trial.TrialState.PRUNED)
                study.add_trial(optuna.trial.create_trial(
                    params=dict(zip(names, point)), distributions=proposal.distributions,
                    value=ev.evaluate(point).score))
                continue
        study.tell(proposal, ev.evaluate(point).score)
