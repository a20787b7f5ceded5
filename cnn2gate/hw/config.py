"""The hardware configuration: the contract between explore, compile and estimate.

JSON with lower-case keys named after the architecture parameters (docs/cost-models.md):

* `vec_size` (VEC_SIZE): input channels per dot product, a power of two in 1..64;
* `lane_num` (LANE_NUM): output channels computed in parallel, 1..128;
* `conv_gp_size_x` (CONV_GP_SIZE_X): output columns sharing one input-window load, 1..16;
* `fc_batch`: images per weight pass of the dense layers, 1..16 (default 1). The
  generated host runs images in groups of fc_batch: other layers image by image, each
  dense layer once per group; latency is reported per image;
* `fmax_mhz`: optional kernel clock override (default: the board's typical clock).

Unknown keys are an error; missing keys take the board's `[defaults]`.

Channel rules: none. The generated design (docs/architecture.md) zero-pads input
channels to a multiple of VEC_SIZE and output channels to a multiple of LANE_NUM in
the weights and the channel-vectorised tensors, so every VEC_SIZE / LANE_NUM is legal
for every model; padding only costs cycles, which the latency model counts.
`check_config` checks what the architecture does limit (element-wise adds take at
most ADD_MAX_INPUTS inputs) and `legal_values` leaves out values that can only waste.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError
from ..ir.layers import Graph
from .. import ops  # read at call time: the operators' modules import hw
from .boards import Board, load_board

VEC_RANGE = (1, 64)
LANE_RANGE = (1, 128)
GP_X_RANGE = (1, 16)
FC_BATCH_RANGE = (1, 16)


@dataclass(frozen=True)
class HwConfig:
    vec_size: int
    lane_num: int
    conv_gp_size_x: int
    fc_batch: int = 1
    fmax_mhz: float | None = None

    def __post_init__(self) -> None:
        _check_ranges(self)

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["fmax_mhz"] is None:
            del d["fmax_mhz"]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def replace(self, **changes) -> "HwConfig":
        return replace(self, **changes)

    @classmethod
    def defaults(cls, board: Board | str) -> "HwConfig":
        """The board's `[defaults]`."""
        return load_config(None, board)


KNOBS = tuple(f.name for f in fields(HwConfig))


def _int_in(value: Any, key: str, lo: int, hi: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"hardware config: {key} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"hardware config: {key}={value} is outside {lo}..{hi}")


def _check_ranges(c: HwConfig) -> None:
    _int_in(c.vec_size, "vec_size", *VEC_RANGE)
    if c.vec_size & (c.vec_size - 1):
        raise ConfigError(f"hardware config: vec_size={c.vec_size} must be a power of two")
    _int_in(c.lane_num, "lane_num", *LANE_RANGE)
    _int_in(c.conv_gp_size_x, "conv_gp_size_x", *GP_X_RANGE)
    _int_in(c.fc_batch, "fc_batch", *FC_BATCH_RANGE)
    if c.fmax_mhz is not None:
        if isinstance(c.fmax_mhz, bool) or not isinstance(c.fmax_mhz, (int, float)) or not 1 <= c.fmax_mhz <= 1000:
            raise ConfigError(f"hardware config: fmax_mhz must be a number in 1..1000 MHz, got {c.fmax_mhz!r}")


def load_config(path_or_dict: str | Path | Mapping | HwConfig | None, board: Board | str) -> HwConfig:
    """A config from a JSON file, a dict or an HwConfig; missing keys take the board defaults."""
    board = load_board(board)
    if isinstance(path_or_dict, HwConfig):
        return path_or_dict
    where = "hardware config"
    if path_or_dict is None:
        data: dict = {}
    elif isinstance(path_or_dict, Mapping):
        data = dict(path_or_dict)
    else:
        where = f"hardware config {path_or_dict}"
        try:
            data = json.loads(Path(path_or_dict).read_text())
        except FileNotFoundError:
            raise ConfigError(f"{where}: file not found") from None
        except json.JSONDecodeError as err:
            raise ConfigError(f"{where}: invalid JSON: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a JSON object")
    unknown = sorted(set(data) - set(KNOBS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(KNOBS)}")
    merged = {**board.defaults, **data}
    try:
        return HwConfig(**merged)
    except ConfigError as err:
        raise ConfigError(str(err).replace("hardware config", where, 1)) from None


def check_config(graph: Graph, config: HwConfig) -> None:
    """Raise ConfigError when `graph` cannot run on the architecture with `config`."""
    if not isinstance(config, HwConfig):
        raise ConfigError(f"hardware config: expected an HwConfig, got {type(config).__name__}")
    problems = ops.lowering.limits(graph)
    if problems:
        raise ConfigError("; ".join(problems))


def _pow2_at_least(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


def legal_values(graph: Graph, board: Board | str) -> dict[str, list]:
    """The values the explorer should try per knob (every one passes `check_config`).

    vec_size: powers of two up to the first one covering the widest input-channel
    group; lane_num: powers of two and multiples of 8 up to the first power of two
    covering the widest output-channel group, and only as many lanes as the board's
    DSPs could hold at vec_size 1; conv_gp_size_x: 1 up to the widest conv output
    (max 16); fc_batch: powers of two up to 16 when the model has dense layers.
    """
    board = load_board(board)
    extents = [e for k in ops.lowering.lower(graph).layers if (e := k.op.parallel_extent(k)) is not None]
    cg = max((e[0] for e in extents), default=1)
    mg = max((e[1] for e in extents), default=1)
    ow = max((e[2] for e in extents), default=1)
    vec_cap = min(VEC_RANGE[1], _pow2_at_least(cg))
    vecs = [v for v in (1, 2, 4, 8, 16, 32, 64) if v <= vec_cap]
    dsp_free = board.dsp_blocks - board.bsp_overhead["dsp_blocks"]
    lane_cap = min(LANE_RANGE[1], _pow2_at_least(mg), dsp_free * board.dot_packing(8))
    lanes = [n for n in range(1, lane_cap + 1) if n & (n - 1) == 0 or n % 8 == 0]
    has_dense = any(k.op.batched for k in ops.lowering.lower(graph).layers)
    return {
        "vec_size": vecs,
        "lane_num": lanes,
        "conv_gp_size_x": list(range(1, min(GP_X_RANGE[1], ow) + 1)),
        "fc_batch": [1, 2, 4, 8, 16] if has_dense else [1],
    }


def default_config(graph: Graph | None, board: Board | str) -> HwConfig:
    """The board's `[defaults]` (fc_batch 1, the board's clock). `graph` is accepted for
    symmetry with `legal_values`; every default is legal for every graph."""
    return load_config(None, load_board(board))
