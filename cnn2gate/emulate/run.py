"""Build the generated host, run it on the emulator under a timeout, compare with the simulator."""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import write_file_atomic
from ..errors import Cnn2GateError, FormatsError, VerificationError
from ..hw.widths import widths_from_formats
from ..report.facts import fact_path
from .runtime import cache_dir, compiler, opencl_env

CXXFLAGS = ["-std=c++17", "-O2", "-Wall", "-Wextra"]
DEFAULT_TIMEOUT = 600.0
#: channel depth of emulation builds: deep enough that producers rarely block, which
#: cuts the emulator's thread hand-offs (results do not depend on it)
EMULATION_CHANNEL_DEPTH = 8192
#: cap on one emulated weight channel's buffer (depth x L x V elements)
_MAX_CHANNEL_BYTES = 64 << 20


def _capped_depth(project: Path, depth: int) -> int:
    """Lower the depth for very wide weight vectors so the emulator's buffers stay modest."""
    vec, lane, elem = recorded_design(project)
    return max(64, min(int(depth), _MAX_CHANNEL_BYTES // (vec * lane * elem)))


def recorded_design(project: Path) -> tuple[int, int, int]:
    """(vec_size, lane_num, bytes per data element) as `compile` recorded them: the config
    in facts/estimate.json and the formats in model/model.json."""
    path = fact_path(project, "estimate")
    est = _read_json(path)
    config = est.get("config") if isinstance(est, dict) else None
    if not isinstance(config, dict):
        raise Cnn2GateError(f"{path}: no hardware \"config\" recorded (recompile the project)")
    for key in ("vec_size", "lane_num"):
        v = config.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise Cnn2GateError(f"{path}: config {key}={v!r} is not a positive integer (recompile the project)")
    model = project / "model" / "model.json"
    doc = _read_json(model)
    formats = doc.get("formats") if isinstance(doc, dict) else None
    if not isinstance(formats, dict):
        raise Cnn2GateError(f"{model}: no \"formats\" recorded (recompile the project)")
    try:
        elem = widths_from_formats(formats).data_bytes
    except FormatsError as err:
        raise Cnn2GateError(f"{model}: {err} (recompile the project)") from None
    return config["vec_size"], config["lane_num"], elem


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise Cnn2GateError(f"{path} missing (recompile the project with this version of cnn2gate)") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise Cnn2GateError(f"{path}: cannot read it as JSON: {err}") from None


MAX_REPORTED = 10


class EmulationTimeout(VerificationError):
    """The emulated design did not finish in time (usually a channel deadlock)."""


@dataclass
class Mismatch:
    image: int
    index: tuple[int, ...]  # (c, h, w)
    got: int
    expected: int
    output: int = 0  # which graph output, in the model's order


@dataclass
class EmulationResult:
    project: Path
    images: int
    elements: int
    mismatches: int
    first: list[Mismatch]
    layer_ms: dict[str, float]  # per image, from event profiling
    wall_ms_per_image: float
    outputs: np.ndarray  # (N, C, H, W) int64; emulate_project gives the ONNX-declared shape
    first_bad_layer: str | None = None
    layer_mismatches: dict[str, int] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""  # the host's messages, e.g. the device build log when it has warnings
    all_outputs: list[np.ndarray] = field(default_factory=list)  # every graph output; [0] is `outputs`
    #: per graph output {"output", "elements", "mismatches"}; only for a model with several outputs
    per_output: list[dict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.mismatches == 0

    def summary(self) -> str:
        if self.passed:
            each = f" in {len(self.per_output)} outputs" if self.per_output else ""
            return f"PASS: {self.elements} of {self.elements} output elements bit-exact{each} ({self.images} image(s))"
        lines = [f"FAIL: {self.mismatches} of {self.elements} output elements differ ({self.images} image(s))"]
        for o in self.per_output:
            lines.append(f"  output {o['output']}: {o['mismatches']} of {o['elements']} elements differ")
        for m in self.first:
            where = f"output {m.output} " if self.per_output else ""
            lines.append(f"  {where}image {m.image} (c,h,w)={m.index}: got {m.got}, expected {m.expected}")
        if self.first_bad_layer:
            lines.append(f"  first layer that differs: {self.first_bad_layer} "
                         f"({self.layer_mismatches[self.first_bad_layer]} elements)")
        return "\n".join(lines)


def build_host(project: Path, timeout: float = 300.0) -> Path:
    """Compile host/main.cpp (warnings are errors); cached by the sources' hash."""
    sources = [project / "host" / "main.cpp", project / "host" / "layers.h"]
    digest = hashlib.sha256()
    for s in sources:
        digest.update(s.read_bytes())
    cxx = compiler()
    digest.update(" ".join([cxx] + CXXFLAGS).encode())
    exe = cache_dir() / "host" / digest.hexdigest()[:24] / "host"
    if exe.exists():
        return exe
    exe.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=exe.parent) as work:
        built = Path(work) / "host"
        cmd = [cxx, *CXXFLAGS, "-Werror", str(sources[0]), "-o", str(built), "-lOpenCL"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Cnn2GateError(f"compiling the host timed out after {timeout:.0f} s") from None
        if proc.returncode != 0:
            raise Cnn2GateError(f"compiling {sources[0]} failed:\n{proc.stderr.strip()}")
        # concurrent builds of the same host each publish a complete executable
        write_file_atomic(exe, built.read_bytes(), "emulation host", mode=0o777)
    return exe


def run_host(exe: Path, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run in its own process group; on timeout kill the whole group (deadlocked channels never return)."""
    proc = subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=opencl_env(), start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        raise EmulationTimeout(
            f"the emulated design did not finish within the {timeout:g} s timeout and was killed "
            "(a channel deadlock hangs for ever; raise --timeout for large models)"
        ) from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _parse_times(stdout: str) -> tuple[dict[str, float], float]:
    times = {}
    for m in re.finditer(r"^\d+\s+(\S+)\s+\S+\s+([0-9.]+)$", stdout, re.M):
        times[m.group(1)] = float(m.group(2))
    wall = re.search(r"^wall_ms_per_image: ([0-9.]+)$", stdout, re.M)
    return times, float(wall.group(1)) if wall else 0.0


def emulate_ints(project, x_int: np.ndarray, expected: np.ndarray, *, timeout: float = DEFAULT_TIMEOUT,
                 expected_layers: dict[str, np.ndarray] | None = None, dump_dir=None,
                 channel_depth: int | None = EMULATION_CHANNEL_DEPTH) -> EmulationResult:
    """Run integer inputs (N, C, H, W) through the emulated design and compare with `expected`
    (one array, or a list with one array per graph output for a model with several).

    expected_layers (stem -> (N, C, H, W)) with dump_dir: also dump every layer and
    report the first one that differs. channel_depth: None keeps the generated depth.
    """
    project = Path(project).resolve()
    exe = build_host(project)
    x_int = np.asarray(x_int)
    several = isinstance(expected, (list, tuple))
    expecteds = [np.asarray(e, dtype=np.int64) for e in (expected if several else [expected])]
    several = len(expecteds) > 1
    n = x_int.shape[0]
    with tempfile.TemporaryDirectory(prefix="cnn2gate-emu-") as tmp:
        tmp = Path(tmp)
        (tmp / "input.bin").write_bytes(np.ascontiguousarray(x_int.astype("<i2")).tobytes())
        args = ["--source", str(project / "device" / "cnn2gate.cl"), "--weights", str(project / "weights"),
                "--input", str(tmp / "input.bin")]
        out_files = [tmp / f"output_{i}.bin" for i in range(len(expecteds))] if several else [tmp / "output.bin"]
        for f in out_files:
            args += ["--output", str(f)]
        if channel_depth:
            args += ["--channel-depth", str(_capped_depth(project, channel_depth))]
        if dump_dir is not None:
            Path(dump_dir).mkdir(parents=True, exist_ok=True)
            args += ["--dump", str(Path(dump_dir).resolve())]
        proc = run_host(exe, args, timeout)
        if proc.returncode != 0:
            raise Cnn2GateError(f"the host program failed (exit {proc.returncode}):\n{proc.stderr.strip()}")
        gots = [np.frombuffer(f.read_bytes(), dtype="<i2").astype(np.int64).reshape(e.shape)
                for f, e in zip(out_files, expecteds)]
    times, wall = _parse_times(proc.stdout)
    first, per_output = [], []
    for k, (got, want) in enumerate(zip(gots, expecteds)):
        diff = got != want
        first += [Mismatch(int(i[0]), tuple(int(v) for v in i[1:]), int(got[tuple(i)]), int(want[tuple(i)]), k)
                  for i in np.argwhere(diff)[:MAX_REPORTED - len(first)]]
        per_output.append({"output": k, "elements": int(want.size), "mismatches": int(diff.sum())})
    res = EmulationResult(project, n, sum(o["elements"] for o in per_output), sum(o["mismatches"] for o in per_output),
                          first, times, wall, gots[0], stdout=proc.stdout, stderr=proc.stderr, all_outputs=gots,
                          per_output=per_output if several else [])
    if dump_dir is not None and expected_layers:
        for stem, want in expected_layers.items():
            path = Path(dump_dir) / f"{stem}.bin"
            have = np.frombuffer(path.read_bytes(), dtype="<i2").astype(np.int64).reshape(want.shape)
            res.layer_mismatches[stem] = int((have != want).sum())
            if res.layer_mismatches[stem] and res.first_bad_layer is None:
                res.first_bad_layer = stem
    return res
