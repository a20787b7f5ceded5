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


# ---- explore: the sensitivity model and the simulator check score every output ----------
def sensitive_second_head(outputs=2):
    """A trunk, two nearly equal channels, and two heads: a generic 1x1 conv (first output) and
    the difference of the two channels (second output), a small signal that rounding of the
    shared channels swamps at 8 bits: the second output is the sensitive one."""
    from cnn2gate import zoo
    from cnn2gate.ir.layers import GRAPH_INPUT, Graph

    b = zoo.Builder("two_heads_sensitive", (3, 8, 8), seed=0)
    trunk = b.conv(GRAPH_INPUT, 6, 3, act="relu", name="trunk")
    rng = np.random.default_rng(1)
    w = (rng.standard_normal((1, 6, 1, 1)) * 0.5).astype(np.float32)
    pair = np.concatenate([w, w + 0.01 * rng.standard_normal(w.shape).astype(np.float32)])
    p = b.conv(trunk, 2, 1, act="none", name="pair", weight=pair, bias=np.zeros(2, np.float32))
    first = b.conv(p, 4, 1, act="none", name="robust")
    second = b.conv(p, 1, 1, act="none", name="diff", weight=np.array([-1, 1], np.float32).reshape(1, 2, 1, 1),
                    bias=np.zeros(1, np.float32))
    layers = b.layers if outputs == 2 else [layer for layer in b.layers if layer.name != second]
    g = Graph(b.name, b.input_shape, layers, first, outputs=[first, second][:outputs])
    g.validate()
    return g


SENS_X = np.random.default_rng(2).uniform(-1, 1, (8, 3, 8, 8))


def uniform(graph, bits):
    from cnn2gate.explore.space import precision_layers

    return {name: {"w_bits": bits, "a_bits": bits} for name in precision_layers(graph)}


def test_sensitivity_model_takes_the_worst_output():
    from cnn2gate.explore.fidelity import SensitivityModel
    from cnn2gate.sim import sqnr_db

    g, g1 = sensitive_second_head(), sensitive_second_head(outputs=1)
    both = SensitivityModel.build(g, SENS_X, (8, 12, 16))
    first = SensitivityModel.build(g1, SENS_X, (8, 12, 16))
    assert np.asarray(both.signal_power).shape == (2,)
    for bits in (8, 12, 16):
        per = both.sqnr_per_output(uniform(g, bits))
        # the first output alone is what the model used to score; the second is far worse
        assert per[0] == pytest.approx(first.sqnr(uniform(g1, bits)), abs=1e-9)
        assert per[1] < per[0]
        assert both.sqnr(uniform(g, bits)) == min(per) == per[1]
        # the simulator agrees per output, and its SQNR is the lowest one too
        sim = [sqnr_db(ref, out) for ref, out in zip(both.float_outputs(), both.simulated_outputs(uniform(g, bits)))]
        assert per == pytest.approx(sim, abs=1.0)
        assert both.simulated_sqnr(uniform(g, bits)) == pytest.approx(min(sim), abs=1e-12)
    # 8 bits would pass a 25 dB bound on the first output but not on the second
    eight = both.sqnr_per_output(uniform(g, 8))
    assert eight[0] > 25.0 > eight[1]


def test_explore_verifies_every_output_against_the_bound():
    from cnn2gate.explore import ExploreOptions, explore

    g = sensitive_second_head()
    r = explore(g, "de1soc", ExploreOptions(agent="sa", budget=120, seed=0, precision=True, min_sqnr=25.0,
                                            calib=SENS_X))
    assert r.best is not None and r.checks.verification["passed"]
    from cnn2gate.sim import sqnr_db

    res = simulate(g, r.formats, SENS_X)
    floats = execute(g, SENS_X)
    sim = [sqnr_db(floats[name], y) for name, y in zip(g.outputs, res.outputs_float)]
    assert min(sim) >= 25.0
    # the reported simulated SQNR is the worst output's, not the first output's; each is listed
    v = r.checks.verification
    assert v["sim_sqnr_db"] == round(min(sim), 2) < round(sim[0], 2)
    assert v["sim_sqnr_db_per_output"] == [round(s, 2) for s in sim]
    assert len(v["tried"][-1]["model_db_per_output"]) == 2


def test_parallel_sensitivity_build_is_identical_per_output():
    from cnn2gate.explore.fidelity import SensitivityModel

    g = sensitive_second_head()
    serial = SensitivityModel.build(g, SENS_X, (8, 12))
    forked = SensitivityModel.build(g, SENS_X, (8, 12), workers=2)
    assert list(serial.noise) == list(forked.noise)
    for key, value in serial.noise.items():
        assert value.shape == (2,) and np.array_equal(value, forked.noise[key])
    assert np.array_equal(serial.input_noise, forked.input_noise)
    assert np.array_equal(serial.signal_power, forked.signal_power)
    # a head's own rounding reaches only its own output
    robust, diff = serial.noise[("robust", "a_bits", 8)], serial.noise[("diff", "a_bits", 8)]
    assert robust[0] > 0 and robust[1] == 0 and diff[0] == 0 and diff[1] > 0
