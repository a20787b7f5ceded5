"""The facts contract: small JSON files that commands leave under `<folder>/facts/`.

`compile`, `explore` and `emulate` each record what they learned as one
file per topic; `cnn2gate report` reads whatever is there and renders it. The files,
their required keys and their meaning are documented in docs/report.md; the table
`FACTS` below is the single place in code that names them.

Writers call `write_fact(folder, "estimate", doc)`. Output is deterministic (sorted
keys, two-space indent, trailing newline) and atomic (temporary file + rename), so a
reader never sees half a file and two identical runs leave identical bytes.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..atomic import replace_file
from ..errors import Cnn2GateError
from ..jsonutil import to_jsonable

#: sub-folder of a project or explore folder that holds the facts
FACTS_DIR = "facts"


@dataclass(frozen=True)
class FactSpec:
    """What a fact file must hold. Entries are the per-layer or per-evaluation records found
    under `entries_at` ("" when the file itself is the list). In `numbers` and `entry_numbers`
    a trailing "?" means the number may be null or left out."""

    keys: tuple[str, ...] = ()
    entries_at: str | None = None
    entry_keys: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()
    entry_numbers: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()        # keys holding true/false
    entry_flags: tuple[str, ...] = ()


#: the facts, in report order; docs/report.md describes every key
FACTS: dict[str, FactSpec] = {
    "model": FactSpec(
        keys=("model", "input_shape", "layers", "total_params", "total_macs"),
        entries_at="layers", entry_keys=("name", "kind", "in_shape", "out_shape", "params", "macs"),
        numbers=("total_params", "total_macs"), entry_numbers=("params", "macs")),
    "formats": FactSpec(keys=("input", "layers")),
    "sim": FactSpec(
        entries_at="", entry_keys=("name", "sqnr_db", "saturations"),
        entry_numbers=("sqnr_db?", "saturations")),
    "estimate": FactSpec(
        keys=("board", "config", "layers", "total_ms", "gops", "resources", "fits", "peak_gops",
              "mem_bandwidth_gbs"),
        entries_at="layers", entry_keys=("name", "cycles", "ms", "bound", "ops", "bytes", "intensity"),
        numbers=("total_ms", "gops", "peak_gops", "mem_bandwidth_gbs"),
        entry_numbers=("cycles", "ms", "ops", "bytes", "intensity?"), flags=("fits",)),
    "explore": FactSpec(
        keys=("agent", "budget", "seed", "best", "history"),
        entries_at="history", entry_keys=("index", "agent", "config", "total_ms", "fits"),
        entry_numbers=("index", "total_ms?", "dsp?", "alm?"), entry_flags=("fits",)),
    "emulation": FactSpec(keys=("verdict", "elements", "mismatches"), numbers=("elements", "mismatches")),
}

EMULATION_VERDICTS = ("PASS", "FAIL", "TIMEOUT")
BOUNDS = ("compute", "memory", "none")  # none: a layer with no arithmetic to speak of
RESOURCES = ("dsp", "alm", "ram_blocks")
FORMAT_KEYS = ("a_bits", "a_frac")
WEIGHT_FORMAT_KEYS = ("w_bits", "w_frac")  # only layers with weights have them


class ReportError(Cnn2GateError):
    """A facts folder is missing, unreadable or holds facts that break the contract."""


def fact_path(folder: str | os.PathLike, name: str) -> Path:
    """Where fact `name` ("model", "estimate", ...) lives inside `folder`."""
    return Path(folder) / FACTS_DIR / f"{_check_name(name)}.json"


def _check_name(name: str) -> str:
    stem = name[:-5] if name.endswith(".json") else name
    if stem not in FACTS:
        raise ReportError(f"unknown fact {name!r}: expected one of {', '.join(FACTS)}")
    return stem


def dumps(obj) -> str:
    """The deterministic JSON text used for facts and report.json."""
    doc = to_jsonable(obj, nan_to_null=True)
    return json.dumps(doc, sort_keys=True, indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def write_fact(folder: str | os.PathLike, name: str, obj) -> Path:
    """Record fact `name` for the project or explore `folder`; returns the file written.

    NaN and infinities become null (JSON has neither); numpy values become plain numbers.
    The document is checked against the contract first, so a writer that breaks it fails
    here, naming the key, rather than later in `cnn2gate report`.
    """
    path = fact_path(folder, name)
    try:
        text = dumps(obj)
    except TypeError as err:
        raise ReportError(f"fact {path.name} for {folder}: {err}") from None
    validate(name, json.loads(text), path)
    atomic_write(path, text)
    return path


def atomic_write(path: Path, text: str) -> None:
    """Write through cnn2gate.atomic; a ReportError naming the final path on failure."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, text, sync=True)
    except OSError as err:
        raise ReportError(f"cannot write {path}: {err.strerror or err}") from None


def read_facts(folder: str | os.PathLike) -> dict[str, object]:
    """Every fact present in `folder`, checked against the contract.

    The model summary is required; a missing folder, a missing model.json, a file that
    is not JSON or a fact without a required key is a ReportError naming the file.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ReportError(f"{root}: no such folder (expected a project or explore folder)")
    facts_dir = root / FACTS_DIR
    if not fact_path(root, "model").is_file():
        raise ReportError(
            f"{root}: no {FACTS_DIR}/model.json, so there is nothing to report "
            "(run compile or explore with -o into this folder first)")
    facts = {}
    for name in FACTS:
        path = facts_dir / f"{name}.json"
        if path.is_file():
            facts[name] = _load(path)
            validate(name, facts[name], path)
    return facts


def _load(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ReportError(f"cannot read {path}: {err.strerror or err}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReportError(f"{path} is not valid JSON: {err}") from None


def validate(name: str, doc, where) -> None:
    """Check one fact's shape (required keys, numbers, known enumerations); raise ReportError."""
    name = _check_name(name)
    spec = FACTS[name]
    if spec.entries_at != "":
        _require(doc, spec.keys, where)
    for key in spec.numbers:
        _number(doc, key, where)
    for key in spec.flags:
        _flag(doc, key, where)
    if spec.entries_at is not None:
        entries = doc if spec.entries_at == "" else doc[spec.entries_at]
        if not isinstance(entries, list):
            raise ReportError(f"{where}: expected a list{f' under {spec.entries_at!r}' if spec.entries_at else ''}")
        for i, entry in enumerate(entries):
            _require(entry, spec.entry_keys, f"{where} entry {i}")
            for key in spec.entry_numbers:
                _number(entry, key, f"{where} entry {i}")
            for key in spec.entry_flags:
                _flag(entry, key, f"{where} entry {i}")
    _EXTRA_CHECKS.get(name, lambda doc, where: None)(doc, where)


def _check_formats(doc: dict, where) -> None:
    if not isinstance(doc["layers"], dict):
        raise ReportError(f"{where}: 'layers' must map layer names to formats")
    _require(doc["input"], ("bits", "frac"), f"{where} input")
    for layer, fmt in doc["layers"].items():
        _require(fmt, FORMAT_KEYS, f"{where} layer {layer!r}")
        for key in FORMAT_KEYS + tuple(k for k in WEIGHT_FORMAT_KEYS if k in fmt):
            if isinstance(fmt[key], bool) or not isinstance(fmt[key], int):
                raise ReportError(f"{where} layer {layer!r}: {key!r} must be an integer, got {fmt[key]!r}")


def _check_estimate(doc: dict, where) -> None:
    for i, entry in enumerate(doc["layers"]):
        if entry["bound"] not in BOUNDS:
            raise ReportError(f"{where} entry {i}: bound {entry['bound']!r} is not one of {BOUNDS}")
    for res in RESOURCES:
        _require(doc["resources"], (res,), f"{where} resources")
        for key in ("used", "available", "pct"):
            _number(doc["resources"][res], key, f"{where} resources.{res}")


def _check_explore(doc: dict, where) -> None:
    _require(doc["best"], ("total_ms",), f"{where} best")


def _check_emulation(doc: dict, where) -> None:
    if doc["verdict"] not in EMULATION_VERDICTS:
        raise ReportError(f"{where}: verdict {doc['verdict']!r} is not one of {EMULATION_VERDICTS}")


_EXTRA_CHECKS = {"formats": _check_formats, "estimate": _check_estimate, "explore": _check_explore,
                 "emulation": _check_emulation}


def _number(doc: dict, key: str, where) -> None:
    """`key` holds an int or float; with a trailing "?" it may also be null or absent."""
    if not isinstance(doc, dict):
        raise ReportError(f"{where}: expected a JSON object, got {type(doc).__name__}")
    optional = key.endswith("?")
    key = key.rstrip("?")
    value = doc.get(key)
    if value is None and optional:
        return
    if key not in doc:
        raise ReportError(f"{where}: missing key {key!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ReportError(f"{where}: {key!r} must be a number, got {value!r}")


def _flag(doc: dict, key: str, where) -> None:
    if not isinstance(doc[key], bool):
        raise ReportError(f"{where}: {key!r} must be true or false, got {doc[key]!r}")


def _require(doc, keys, where) -> None:
    if not isinstance(doc, dict):
        raise ReportError(f"{where}: expected a JSON object, got {type(doc).__name__}")
    missing = [k for k in keys if k not in doc]
    if missing:
        raise ReportError(f"{where}: missing key{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")
