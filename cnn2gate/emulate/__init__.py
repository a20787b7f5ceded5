"""Emulator mode: run a generated project on the Intel FPGA Emulation Platform for OpenCL
and compare every output element with the bit-accurate simulator.
cnn2gate.pipeline.record_emulation records the verdict for the report."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..codegen.serialize import user_output_shapes
from ..errors import Cnn2GateError
from .run import DEFAULT_TIMEOUT, EMULATION_CHANNEL_DEPTH, EmulationResult, EmulationTimeout, Mismatch, build_host, emulate_ints
from .runtime import RuntimeMissing, emulator_available, opencl_env


def _golden(project: Path, name: str) -> np.ndarray:
    path = project / "golden" / f"{name}.npy"
    if not path.exists():
        raise Cnn2GateError(f"{project} is not a cnn2gate project ({path} missing)")
    return np.load(path, allow_pickle=False).astype(np.int64)


def emulate_project(project, x=None, *, timeout: float = DEFAULT_TIMEOUT, dump_dir=None,
                    channel_depth: int | None = EMULATION_CHANNEL_DEPTH) -> EmulationResult:
    """Run the project on the emulator.

    x: None runs the golden input against the golden outputs; a float array (one
    sample or a batch, in the layout the ONNX model declares) is quantised and simulated
    with the project's own model (model/) for the reference; all images run in one host process.
    dump_dir: also dump every layer and find the first layer that differs.
    channel_depth: channel depth of the emulation build (None: the generated hardware depth).
    Returns an EmulationResult; it does not raise on a mismatch (see `.passed`).
    """
    project = Path(project)
    if not (project / "device" / "cnn2gate.cl").exists():
        raise Cnn2GateError(f"{project} is not a cnn2gate project (device/cnn2gate.cl missing)")
    stems = sorted(p.stem for p in (project / "golden" / "layers").glob("*.npy"))
    # several graph outputs: golden/output_<i>.npy, compared one by one
    n_out = len(list((project / "golden").glob("output_*.npy")))
    out_names = [f"output_{i}" for i in range(n_out)] if n_out > 1 else ["output"]
    if x is None:
        x_int = _golden(project, "input")
        expected = [_golden(project, name) for name in out_names]
        layers = {s: _golden(project, f"layers/{s}") for s in stems} if dump_dir is not None else None
    else:
        from ..batch import as_batch
        from ..codegen.serialize import load_model
        from ..sim import simulate

        graph, formats = load_model(project)
        x = as_batch(graph, x)
        sim = simulate(graph, formats, x, keep="all" if dump_dir is not None else "output")
        n = sim.input_int.shape[0]
        x_int = sim.input_int
        expected = [y.reshape((n,) + _golden(project, name).shape[1:]) for y, name in zip(sim.outputs_int, out_names)]
        layers = None
        if dump_dir is not None:
            layers = {s: sim.ints[s].reshape((n,) + _golden(project, f"layers/{s}").shape[1:]) for s in stems}
    if len(expected) == 1:
        expected = expected[0]
    res = emulate_ints(project, x_int, expected, timeout=timeout, expected_layers=layers, dump_dir=dump_dir,
                       channel_depth=channel_depth)
    shapes = user_output_shapes(project)
    for k, (y, declared) in enumerate(zip(res.all_outputs, shapes)):
        if declared is not None and y.size == res.images * int(np.prod(declared)):
            res.all_outputs[k] = y.reshape((res.images,) + declared)  # as the ONNX model declares it
    res.outputs = res.all_outputs[0]
    return res


__all__ = ["emulate_project", "emulate_ints", "build_host", "EmulationResult", "EmulationTimeout", "Mismatch",
           "RuntimeMissing", "emulator_available", "opencl_env", "DEFAULT_TIMEOUT", "EMULATION_CHANNEL_DEPTH"]
