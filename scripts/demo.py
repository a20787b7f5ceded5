"""`make demo`: the main job on the bundled digits CNN, through the real CLI.

inspect -> float check against onnxruntime -> quantize (8-bit, calibrated) ->
simulate (float vs fixed accuracy) -> explore (a10) -> compile with the explored
configuration -> emulate the generated kernels on the test split.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits"
MODEL = DIGITS / "digits_cnn.onnx"
OUT = ROOT / "out" / "demo"
CLI = [str(Path(sys.executable).with_name("cnn2gate"))]


def step(title: str, *args: str) -> subprocess.CompletedProcess:
    print(f"\n=== {title}\n$ cnn2gate {' '.join(args)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(CLI + list(args), text=True)
    if proc.returncode != 0:
        sys.exit(f"demo: `cnn2gate {' '.join(args)}` failed with exit code {proc.returncode}")
    print(f"({time.perf_counter() - t0:.1f} s)", flush=True)
    return proc


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.reshape(len(labels), -1).argmax(axis=1) == labels).mean() * 100)


def main() -> None:
    test_x, test_y = np.load(DIGITS / "test_x.npy"), np.load(DIGITS / "test_y.npy")
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)

    step("inspect the bundled model", "inspect", str(MODEL))

    print("\n=== float check: cnn2gate's float executor vs onnxruntime on the test split", flush=True)
    sess = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    ref = np.concatenate([sess.run(None, {name: x[None].astype(np.float32)})[0] for x in test_x])
    step("float executor", "simulate", str(MODEL), "--input", str(DIGITS / "test_x.npy"), "--float",
         "-o", str(OUT / "float.npy"))
    ours = np.load(OUT / "float.npy").reshape(ref.shape)
    rel = float(np.abs(ours - ref).max() / np.abs(ref).max())
    print(f"max |ours - onnxruntime| / max |onnxruntime| = {rel:.2e}  (accuracy {accuracy(ref, test_y):.2f} %)")
    if rel > 1e-4:
        sys.exit("demo: float executor disagrees with onnxruntime")

    step("quantize (8-bit, calibrated)", "quantize", str(MODEL), "--calib", str(DIGITS / "calib_x.npy"),
         "--bits", "8", "-o", str(OUT / "formats.json"))
    step("bit-accurate simulation of the test split", "simulate", str(MODEL), "--input", str(DIGITS / "test_x.npy"),
         "--formats", str(OUT / "formats.json"), "-o", str(OUT / "fixed.npy"))
    fixed = np.load(OUT / "fixed.npy")
    float_acc, fixed_acc = accuracy(ref, test_y), accuracy(fixed, test_y)
    print(f"accuracy: float {float_acc:.2f} %, 8-bit fixed point {fixed_acc:.2f} % "
          f"(loss {float_acc - fixed_acc:+.2f} points)")

    step("explore the hardware design space for a10 (8-bit datapath)", "explore", str(MODEL), "--board", "a10",
         "-o", str(OUT / "explore"))
    best = json.loads((OUT / "explore" / "best_config.json").read_text())
    print(f"best configuration: {best}")

    step("estimate the explored design", "estimate", str(MODEL), "--board", "a10",
         "--config", str(OUT / "explore" / "best_config.json"), "--formats", str(OUT / "formats.json"))
    step("compile for a10 with the explored configuration", "compile", str(MODEL), "--board", "a10",
         "--formats", str(OUT / "formats.json"), "--config", str(OUT / "explore" / "best_config.json"),
         "-o", str(OUT / "project"))
    step("emulate the generated kernels on the test split (Intel FPGA emulator)", "emulate", str(OUT / "project"),
         "--input", str(DIGITS / "test_x.npy"), "--labels", str(DIGITS / "test_y.npy"))
    print(f"\ndemo finished: project in {OUT / 'project'}, report in {OUT / 'project' / 'report.html'}")


if __name__ == "__main__":
    main()
