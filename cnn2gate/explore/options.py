"""What an `explore` run is asked to do (`ExploreOptions`) and the checks on it."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from . import agents as _agents
from .space import PRECISION_BITS

DEFAULT_AGENT = "ppo"
DEFAULT_BUDGET = 1000
#: SQNR bound (dB) used when precision is explored without --min-sqnr
DEFAULT_MIN_SQNR = 30.0
#: knobs the explorer holds at given values (none now: the generated host batches the
#: dense layers, so fc_batch is searched like the other knobs)
FIXED_KNOBS: dict[str, list] = {}
#: without --agent or --budget, `cnn2gate explore` enumerates hardware-only spaces up to this
#: many points: costing a point takes 0.08-0.22 ms (digits, AlexNet, VGG-16 on a10), PPO at
#: the default budget 3-6 s, so 20,000 points cost at most about what PPO's run does
ENUMERATE_MAX_POINTS = 20_000


@dataclass(frozen=True, eq=False)  # eq=False: calib and labels are arrays
class ExploreOptions:
    """The search's settings; every field has the default of `cnn2gate explore`.

    budget: distinct design points the agent may cost. precision: also choose per-layer
    weight/activation widths from `bits`, under `min_sqnr` dB (default 30) of modelled
    output SQNR; calib: calibration inputs (N, C, H, W) for the quantiser and the
    sensitivity model (a synthetic set when None).
    max_accuracy_loss: bound (percentage points) on top-1 accuracy lost by the quantized
    design against the float model on the inputs `calib` with class `labels` (N,); needs
    precision, excludes min_sqnr. The search uses an SQNR bound calibrated from it
    (`accuracy.calibrate_sqnr_bound`); the chosen design's accuracy is measured with the simulator.
    workers: processes that cost design points (and build the sensitivity model); agents
    that propose points in batches (ppo, bo, random, exhaustive) cost them in parallel.
    The result does not depend on it.
    enumerate_up_to: cost every point instead of running the agent when the space is
    hardware-only and has at most this many points (the result is then the exact optimum);
    0, the default here, never does. The CLI sets it unless --agent is given.
    """

    agent: str = DEFAULT_AGENT
    budget: int = DEFAULT_BUDGET
    seed: int = 0
    workers: int = 1
    precision: bool = False
    bits: tuple = PRECISION_BITS
    min_sqnr: float | None = None
    max_accuracy_loss: float | None = None
    calib: np.ndarray | None = None
    labels: np.ndarray | None = None
    enumerate_up_to: int = 0
    #: precision searches: cost the hardware space at the minimal uniform width pairs that meet
    #: the bound and start the agent from the best of them (explore/uniform.py); the CLI's default
    #: is on, the API's off, so agents can be compared on their own
    uniform_start: bool = False
    #: Ray cluster address (`auto`: RAY_ADDRESS): the sensitivity build and the simulator checks run
    #: there as tasks; the result does not depend on it (docs/cluster.md)
    cluster: str | None = None

    def validate(self) -> np.ndarray | None:
        """Raise ConfigError for a bad request; returns the labels as a 1-D int array (or None)."""
        if self.agent not in _agents.AGENTS:
            raise ConfigError(f"unknown agent {self.agent!r}; choose one of {', '.join(_agents.AGENTS)}")
        if not isinstance(self.budget, (int, np.integer)) or self.budget < 1:
            raise ConfigError(f"budget must be a positive integer, got {self.budget!r}")
        if not isinstance(self.workers, (int, np.integer)) or self.workers < 1:
            raise ConfigError(f"workers must be a positive integer, got {self.workers!r}")
        labels = check_accuracy_request(precision=self.precision, min_sqnr=self.min_sqnr,
                                        max_accuracy_loss=self.max_accuracy_loss, calib=self.calib,
                                        labels=self.labels)
        if self.min_sqnr is not None and not self.precision:
            raise ConfigError("--min-sqnr bounds the precision search: add --precision")
        return labels


def check_accuracy_request(*, precision, min_sqnr, max_accuracy_loss, calib, labels):
    """Validate a --max-accuracy-loss request; returns the labels as a 1-D int array (or None)."""
    if max_accuracy_loss is None:
        if labels is not None:
            raise ConfigError("--labels is only used by --max-accuracy-loss: add --max-accuracy-loss PCT")
        return None
    if min_sqnr is not None:
        raise ConfigError("--min-sqnr and --max-accuracy-loss are two fidelity bounds: give only one")
    if not precision:
        raise ConfigError("--max-accuracy-loss bounds the precision search: add --precision")
    if not (isinstance(max_accuracy_loss, (int, float, np.integer, np.floating))
            and 0.0 <= float(max_accuracy_loss) <= 100.0):
        raise ConfigError(f"--max-accuracy-loss must be a percentage in [0, 100], got {max_accuracy_loss!r}")
    if calib is None or labels is None:
        raise ConfigError("--max-accuracy-loss needs labelled validation inputs: --calib X.npy and --labels Y.npy")
    y = np.asarray(labels)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer)
                           or (np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)))):
        raise ConfigError(f"--labels: expected one integer class label per input (shape (N,)), "
                          f"got {y.dtype} of shape {y.shape}")
    n = 1 if np.ndim(calib) == 3 else len(calib)
    if len(y) != n:
        raise ConfigError(f"--labels has {len(y)} labels but --calib has {n} inputs: they must match one to one")
    return y.astype(np.int64)
