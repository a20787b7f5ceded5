"""Bayesian optimisation with Optuna's TPE sampler (one integer parameter per knob index).

Trials are asked in batches of `BATCH` (TPE's constant-liar mode keeps a batch's
proposals apart) and costed together, on the evaluator's pool when it has one. The
batch size is fixed, so the history does not depend on the number of workers. The first
trial is the space's initial design (added as a finished trial when it was costed before
the agent started, as the uniform-width start does). TPE often proposes a point already costed (or one
already in the batch); such a trial is moved to a random unseen neighbour of the proposal
(so nearly every trial is a new evaluation and the sampler's cost stays proportional to
the budget), or answered from the cache when every neighbour has been seen. The loop
stops when the evaluation budget is spent or after 3 trials per budgeted evaluation.

TPE refits its densities on every past trial at each ask, so a trial's cost grows with
the study (here about 0.02 s at 250 trials and 0.1 s at 2,000 on AlexNet's 20 knobs):
5,000 evaluations would take over 8 minutes. The study is therefore kept to a window:
once it holds `WINDOW` trials, a new study (next seed) continues from the `KEEP_BEST`
best trials and the `KEEP_RECENT` latest ones. Budgets up to WINDOW are plain TPE.
"""
from __future__ import annotations

import warnings

import numpy as np
import optuna

N_STARTUP = 10
TRIALS_PER_EVAL = 3
BATCH = 4
WINDOW = 1000
KEEP_BEST = 200
KEEP_RECENT = 300


def _study(seed: int):
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=N_STARTUP, multivariate=True,
                                         constant_liar=True)
    return optuna.create_study(direction="minimize", sampler=sampler)


def _narrowed(study, seed: int):
    """A new study seeded with the best and the latest finished trials of `study`."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    best = sorted(done, key=lambda t: (t.value, t.number))[:KEEP_BEST]
    keep = {t.number: t for t in best + done[-KEEP_RECENT:]}
    fresh = _study(seed)
    fresh.add_trials([keep[n] for n in sorted(keep)])
    return fresh


def search(ev, seed: int = 0) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    rng = np.random.default_rng(seed)
    space = ev.space
    study = _study(seed)
    restarts = 0
    names = [f"k{j}" for j in range(len(space.knobs))]
    start = ev.cache.get(tuple(space.initial))
    if start is None:
        study.enqueue_trial(dict(zip(names, space.initial)))
    else:  # costed before the agent (a uniform-width start): TPE learns from it instead of re-asking it
        dists = {name: optuna.distributions.IntDistribution(0, n - 1) for name, n in zip(names, space.dims)}
        study.add_trial(optuna.trial.create_trial(params=dict(zip(names, space.initial)), distributions=dists,
                                                  value=start.score))
    max_trials = TRIALS_PER_EVAL * (ev.budget or space.size) + 100
    for _ in range(0, max_trials, BATCH):
        if ev.exhausted:
            return
        if len(study.get_trials(deepcopy=False)) >= WINDOW:
            restarts += 1
            study = _narrowed(study, seed + restarts)
        trials, points, moved = [], [], []
        for _ in range(BATCH):
            trial = study.ask()
            point = tuple(trial.suggest_int(name, 0, n - 1) for name, n in zip(names, space.dims))
            move = ev.seen(point) or point in points
            if move:
                fresh = [p for p in space.neighbours(point) if not ev.seen(p) and p not in points]
                move = bool(fresh)
                if move:
                    point = fresh[int(rng.integers(len(fresh)))]
            trials.append(trial)
            points.append(point)
            moved.append(move)
        for trial, point, move, res in zip(trials, points, moved, ev.evaluate_many(points)):
            if res is None:  # past the budget
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            elif move:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                study.add_trial(optuna.trial.create_trial(
                    params=dict(zip(names, point)), distributions=trial.distributions, value=res.score))
            else:
                study.tell(trial, res.score)
