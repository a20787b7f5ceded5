"""Models with several graph outputs (a two-head detector): parsed, simulated, compiled and emulated per output."""
from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
nn = torch.nn
from torch_export import export_torch  # noqa: E402  (needs torch)

from cnn2gate.cli import main  # noqa: E402
from cnn2gate.codegen.serialize import load_model as load_project_model  # noqa: E402
from cnn2gate.emulate import emulate_project, emulator_available  # noqa: E402
from cnn2gate.frontend import load_model  # noqa: E402
from cnn2gate.ir.reference import execute  # noqa: E402
from cnn2gate.pipeline import compile_project  # noqa: E402
from cnn2gate.quant import quantize  # noqa: E402
from cnn2gate.sim import simulate  # noqa: E402

TOL = 1e-4
SHAPE = (3, 16, 16)
_OK, _WHY = emulator_available()


class TwoHeads(nn.Module):
    """A shared trunk and two 1x1 conv heads at strides 2 and 4, like tiny-YOLO's (no box decoding)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.LeakyReLU(0.1), nn.MaxPool2d(2))
        self.deep = nn.Sequential(nn.Conv2d(8, 12, 3, padding=1), nn.LeakyReLU(0.1), nn.MaxPool2d(2))
        self.head_fine = nn.Conv2d(8, 6, 1)
        self.head_coarse = nn.Conv2d(12, 6, 1)

    def forward(self, x):
        f = self.stem(x)
        return self.head_coarse(self.deep(f)), self.head_fine(f)


def export(tmp_path, exporter: str) -> str:
    if exporter == "dynamo":
        pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    return export_torch(TwoHeads(), SHAPE, tmp_path / f"two_heads_{exporter}.onnx", dynamo=exporter == "dynamo",
                        output_names=["coarse", "fine"])


def ort_all(path: str, x: np.ndarray) -> list[np.ndarray]:
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    runs = [sess.run(None, {sess.get_inputs()[0].name: x[i:i + 1].astype(np.float32)}) for i in range(len(x))]
    return [np.concatenate(ys) for ys in zip(*runs)]


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_two_heads_parse_and_match_onnxruntime_per_output(tmp_path, exporter):
    path = export(tmp_path, exporter)
    g = load_model(path)
    assert len(g.outputs) == 2 and g.output == g.outputs[0]
    assert [g.layer(o).out_shape for o in g.outputs] == [(6, 4, 4), (6, 8, 8)]
    x = np.random.default_rng(0).standard_normal((2,) + SHAPE).astype(np.float32)
    ref = execute(g, x)
    for want, name in zip(ort_all(path, x), g.outputs):
        got = g.user_output(name, ref[name])
        assert got.shape == want.shape
        assert np.abs(got - want).max() / np.abs(want).max() <= TOL


def test_two_heads_simulate_every_output(tmp_path):
    g = load_model(export(tmp_path, "legacy"))
    x = np.random.default_rng(1).uniform(-1, 1, (3,) + SHAPE)
    fm = quantize(g, x)
    fast, ref = simulate(g, fm, x, keep="output"), simulate(g, fm, x, path="reference")
    assert len(fast.outputs_int) == 2
    for a, b in zip(fast.outputs_int, ref.outputs_int):
        assert np.array_equal(a, b)
    floats = execute(g, x)
    for name, y in zip(g.outputs, fast.outputs_float):
        assert y.shape == floats[name].shape


def test_simulate_cli_writes_one_file_per_output(tmp_path):
    path = export(tmp_path, "legacy")
    x = np.random.default_rng(2).uniform(-1, 1, (2,) + SHAPE).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    runner = CliRunner()
    bad = runner.invoke(main, ["simulate", path, "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")])
    assert bad.exit_code != 0 and "-o must name a directory" in bad.output
    out = tmp_path / "ys"
    for extra in ([], ["--float"]):
        res = runner.invoke(main, ["simulate", path, "--input", str(tmp_path / "x.npy"), "-o", str(out), "--json",
                                   *extra])
        assert res.exit_code == 0, res.output
        doc = json.loads(res.stdout)
        assert [o["file"] for o in doc["outputs"]] == [str(out / "output_0.npy"), str(out / "output_1.npy")]
        want = ort_all(path, x)
        for i in range(2):
            y = np.load(out / f"output_{i}.npy")
            assert y.shape == want[i].shape
            if extra:
                assert np.abs(y - want[i]).max() / np.abs(want[i]).max() <= TOL


def test_compiled_project_has_golden_per_output(tmp_path):
    g = load_model(export(tmp_path, "legacy"))
    out = compile_project(g, quantize(g), "a10", {"vec_size": 4, "lane_num": 4, "conv_gp_size_x": 3}, tmp_path / "p")
    assert not (out / "golden" / "output.npy").exists()
    shapes = [np.load(out / "golden" / f"output_{i}.npy").shape for i in range(2)]
    assert shapes == [(1, 6, 4, 4), (1, 6, 8, 8)]
    graph, _ = load_project_model(out)
    assert len(graph.outputs) == 2
    assert "kOutputLayers[] = {" in (out / "host" / "layers.h").read_text()
    assert json.loads((out / "report.json").read_text()) is not None


@pytest.mark.emulator
@pytest.mark.skipif(not _OK, reason=f"Intel FPGA emulation runtime unavailable: {_WHY}")
@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_two_heads_emulated_bit_exact_on_both_outputs(tmp_path, exporter):
    g = load_model(export(tmp_path, exporter))
    x = np.random.default_rng(3).uniform(-1, 1, (2,) + SHAPE)
    out = compile_project(g, quantize(g, x), "a10", {"vec_size": 4, "lane_num": 4, "conv_gp_size_x": 3},
                          tmp_path / "p")
    res = emulate_project(out, timeout=240)
    assert res.passed and len(res.per_output) == 2, res.summary()
    res = emulate_project(out, x, timeout=240)
    assert res.passed, res.summary()
    assert [o["mismatches"] for o in res.per_output] == [0, 0]
    assert res.elements == 2 * (6 * 4 * 4 + 6 * 8 * 8)
    sim = simulate(g, quantize(g, x), x)
    for got, want in zip(res.all_outputs, sim.outputs_int):
        assert np.array_equal(got, want)
