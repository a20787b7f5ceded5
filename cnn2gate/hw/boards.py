"""Board catalogue: one TOML file per board under boards/ (shipped as cnn2gate.boards).

`load_board("a10")` reads the bundled file; `load_board("path/to/my.toml")` reads any
file with the same keys. Every figure carries a citation under `[sources]`; a source
text starting with "estimate" marks a figure that is not taken from a datasheet.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from ..errors import ConfigError
from ..paths import boards_dir

DEFAULT_BOARD = "a10"

#: the widths (bits) that `mults_per_dsp` tables must give, smallest first
WIDTH_CLASSES = (8, 16, 27)

_REQUIRED = {
    "name": str, "device": str, "family": str, "alms": int, "registers": int, "dsp_blocks": int,
    "mults_per_dsp": dict, "ram_blocks": int, "ram_block_bits": int, "bsp_overhead": dict,
    "mem_bandwidth_gbs": (int, float), "fmax_mhz": (int, float), "bsp": str, "sources": dict, "defaults": dict,
}
_OPTIONAL = {"dot_mults_per_dsp": dict, "pair_products_per_dsp": int, "mem_capacity_gib": (int, float)}
_OVERHEAD_KEYS = ("alms", "ram_blocks", "dsp_blocks")
_DEFAULT_KEYS = ("vec_size", "lane_num", "conv_gp_size_x")
#: figures that must carry a citation under [sources]
_CITED = ("alms", "registers", "dsp_blocks", "mults_per_dsp", "ram_blocks", "bsp_overhead",
          "mem_bandwidth_gbs", "fmax_mhz")


@dataclass(frozen=True, eq=False)
class Board:
    """One board; loaded once per file and compared and hashed by identity."""

    name: str
    device: str
    family: str
    alms: int
    registers: int
    dsp_blocks: int
    mults_per_dsp: Mapping[int, int]  # native block capability per operand width
    dot_mults_per_dsp: Mapping[int, int]  # what the OpenCL compiler realises for a MAC tree
    ram_blocks: int
    ram_block_bits: int
    bsp_overhead: Mapping[str, int]
    mem_bandwidth_gbs: float
    fmax_mhz: float
    bsp: str
    sources: Mapping[str, str]
    defaults: Mapping[str, int]
    # products per DSP block when two narrow-weight products share each multiplier
    # (hw/packing.py); 0 in a file without the key: packing gains nothing
    pair_products_per_dsp: int = 0
    # external memory the kernels' buffers can use, GiB; 0 in a file without the key: not checked
    mem_capacity_gib: float = 0.0
    path: str = field(default="", compare=False)

    @property
    def estimated(self) -> tuple[str, ...]:
        """Keys whose figure is an estimate rather than a datasheet or measured value."""
        return tuple(k for k, v in self.sources.items() if v.lower().startswith("estimate"))

    def dot_packing(self, bits: int) -> int:
        """Multipliers of `bits` x `bits` per DSP block in a compiled multiply-add tree."""
        return _per_width(self.dot_mults_per_dsp, bits, self.name)

    def pair_packing(self) -> int:
        """Products per DSP block of a packed multiply-add tree (two per 18-bit multiplier)."""
        return self.pair_products_per_dsp or self.dot_packing(8)

    def native_packing(self, bits: int) -> int:
        return _per_width(self.mults_per_dsp, bits, self.name)

    @property
    def ram_kind(self) -> str:
        return "M10K" if self.ram_block_bits == 10240 else "M20K" if self.ram_block_bits == 20480 else "RAM"

    def to_dict(self) -> dict:
        return {
            "name": self.name, "device": self.device, "family": self.family, "alms": self.alms,
            "registers": self.registers, "dsp_blocks": self.dsp_blocks,
            "mults_per_dsp": {str(k): v for k, v in self.mults_per_dsp.items()},
            "dot_mults_per_dsp": {str(k): v for k, v in self.dot_mults_per_dsp.items()},
            "pair_products_per_dsp": self.pair_packing(),
            "ram_blocks": self.ram_blocks, "ram_block_bits": self.ram_block_bits,
            "bsp_overhead": dict(self.bsp_overhead), "mem_bandwidth_gbs": self.mem_bandwidth_gbs,
            "fmax_mhz": self.fmax_mhz, "bsp": self.bsp, "defaults": dict(self.defaults),
            "mem_capacity_gib": self.mem_capacity_gib or None,
            "sources": dict(self.sources), "estimated": list(self.estimated),
        }


def _per_width(table: Mapping[int, int], bits: int, board: str) -> int:
    for width in sorted(table):
        if bits <= width:
            return table[width]
    raise ConfigError(f"board {board}: no DSP mode for {bits}-bit operands (widest is {max(table)})")


def list_boards() -> list[str]:
    """Names of the bundled boards, sorted."""
    return sorted(p.stem for p in boards_dir().glob("*.toml"))


_CACHE: dict[str, Board] = {}  # resolved path -> board
_BY_NAME: dict[str, Board] = {}  # bundled board name -> board


def load_board(name_or_path: str | Path | Board = DEFAULT_BOARD) -> Board:
    """A bundled board by name, or any board TOML file by path."""
    if isinstance(name_or_path, Board):
        return name_or_path
    text = str(name_or_path)
    if text in _BY_NAME:
        return _BY_NAME[text]
    is_path = text.endswith(".toml") or "/" in text or "\\" in text
    if is_path:
        path = Path(text)
        if not path.is_file():
            raise ConfigError(f"board file {path} does not exist")
    else:
        path = boards_dir() / f"{text}.toml"
        if not path.is_file():
            raise ConfigError(f"unknown board {text!r}; available boards: {', '.join(list_boards())}")
    key = str(path.resolve())
    if key not in _CACHE:
        _CACHE[key] = _parse(path)
    if not is_path:
        _BY_NAME[text] = _CACHE[key]
    return _CACHE[key]


def _parse(path: Path) -> Board:
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"board file {path}: invalid TOML: {err}") from None

    def bad(key: str, why: str) -> ConfigError:
        return ConfigError(f"board file {path}: key {key!r}: {why}")

    unknown = sorted(set(data) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise bad(unknown[0], "unknown key")
    for key, types in _REQUIRED.items():
        if key not in data:
            raise bad(key, "missing")
    for key, types in {**_REQUIRED, **_OPTIONAL}.items():
        if key in data and (not isinstance(data[key], types) or isinstance(data[key], bool)):
            raise bad(key, f"wrong type {type(data[key]).__name__}")
    for key in ("alms", "registers", "dsp_blocks", "ram_blocks", "ram_block_bits"):
        if data[key] <= 0:
            raise bad(key, f"must be positive, got {data[key]}")
    for key in ("mem_bandwidth_gbs", "fmax_mhz"):
        if not data[key] > 0:
            raise bad(key, f"must be positive, got {data[key]}")

    tables = {k: _width_table(data[k], k, bad) for k in ("mults_per_dsp", "dot_mults_per_dsp") if k in data}
    tables.setdefault("dot_mults_per_dsp", tables["mults_per_dsp"])

    overhead = data["bsp_overhead"]
    if set(overhead) != set(_OVERHEAD_KEYS):
        raise bad("bsp_overhead", f"needs exactly the keys {', '.join(_OVERHEAD_KEYS)}")
    limits = {"alms": data["alms"], "ram_blocks": data["ram_blocks"], "dsp_blocks": data["dsp_blocks"]}
    for k, v in overhead.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v >= limits[k]:
            raise bad(f"bsp_overhead.{k}", f"must be an integer in [0, {limits[k]}), got {v!r}")

    defaults = data["defaults"]
    if set(defaults) - set(_DEFAULT_KEYS) or set(_DEFAULT_KEYS) - set(defaults):
        raise bad("defaults", f"needs exactly the keys {', '.join(_DEFAULT_KEYS)}")
    for k, v in defaults.items():
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise bad(f"defaults.{k}", f"must be a positive integer, got {v!r}")

    sources = data["sources"]
    for k in _CITED:
        if not isinstance(sources.get(k), str) or not sources[k].strip():
            raise bad(f"sources.{k}", "every figure needs a citation (start it with 'estimate' if it is one)")
    if "pair_products_per_dsp" in data:
        pair, cite = data["pair_products_per_dsp"], sources.get("pair_products_per_dsp")
        if pair < 1:
            raise bad("pair_products_per_dsp", f"must be positive, got {pair}")
        if not isinstance(cite, str) or not cite.strip():
            raise bad("sources.pair_products_per_dsp",
                      "every figure needs a citation (start it with 'estimate' if it is one)")
    if "mem_capacity_gib" in data:
        if not data["mem_capacity_gib"] > 0:
            raise bad("mem_capacity_gib", f"must be positive, got {data['mem_capacity_gib']}")
        if not isinstance(sources.get("mem_capacity_gib"), str) or not sources["mem_capacity_gib"].strip():
            raise bad("sources.mem_capacity_gib", "every figure needs a citation (start it with 'estimate' if it is one)")
    stray = sorted(set(sources) - set(data) - {"dot_mults_per_dsp"})
    if stray:
        raise bad(f"sources.{stray[0]}", "cites a key the board file does not have")

    return Board(
        name=data["name"], device=data["device"], family=data["family"], alms=data["alms"],
        registers=data["registers"], dsp_blocks=data["dsp_blocks"],
        mults_per_dsp=tables["mults_per_dsp"], dot_mults_per_dsp=tables["dot_mults_per_dsp"],
        ram_blocks=data["ram_blocks"], ram_block_bits=data["ram_block_bits"],
        bsp_overhead=MappingProxyType(dict(overhead)), mem_bandwidth_gbs=float(data["mem_bandwidth_gbs"]),
        fmax_mhz=float(data["fmax_mhz"]), bsp=data["bsp"], sources=MappingProxyType(dict(sources)),
        defaults=MappingProxyType(dict(defaults)), pair_products_per_dsp=data.get("pair_products_per_dsp", 0),
        mem_capacity_gib=float(data.get("mem_capacity_gib", 0.0)),
        path=str(path),
    )


def _width_table(raw: dict, key: str, bad) -> Mapping[int, int]:
    try:
        table = {int(k): v for k, v in raw.items()}
    except ValueError:
        raise bad(key, f"keys must be operand widths in bits, got {sorted(raw)}") from None
    if sorted(table) != list(WIDTH_CLASSES):
        raise bad(key, f"needs the widths {', '.join(map(str, WIDTH_CLASSES))}, got {sorted(table)}")
    for width, n in table.items():
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise bad(f"{key}.{width}", f"must be a positive integer, got {n!r}")
    return MappingProxyType(table)
