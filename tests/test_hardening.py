"""Hardening: every bad input a user can hand the CLI, one test each, through the real CLI.

Each test checks three things: the exit code (2 for bad input or usage, 1 for a
verification failure), that the message on stderr names the file, node or option at
fault, and that nothing is half-written (the output path is absent or unchanged).
The table of inputs and messages is docs/errors.md.

Related tests kept by the owning modules (not repeated here): front-end API errors
(tests/test_frontend_errors.py), hostile names at the IR level and a mid-render
failure of compile_project (tests/test_codegen.py), hostile names and the deadlock
timeout at the API level (tests/test_emulate.py).
"""
from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, numpy_helper

import onnx_builders as B
from cnn2gate.cli import main
from cnn2gate.frontend import SUPPORTED_OPS

ROOT = Path(__file__).resolve().parents[1]
HW = {"vec_size": 4, "lane_num": 4, "conv_gp_size_x": 2}


# ---- helpers ------------------------------------------------------------------------------


def cli(*args):
    """Run `cnn2gate ARGS` in-process; stdout and stderr are kept apart (click >= 8.2)."""
    return CliRunner().invoke(main, [str(a) for a in args])


def fails(r, code: int, *names: str) -> str:
    """Assert a clean failure: exit `code`, no traceback, and stderr naming every one of `names`."""
    assert r.exit_code == code, f"exit {r.exit_code}, wanted {code}\nstdout: {r.stdout}\nstderr: {r.stderr}\n{r.exception!r}"
    assert isinstance(r.exception, SystemExit), f"uncaught {r.exception!r}"
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    lines = r.stderr.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith(("error:", "Usage:"))), None)
    assert start is not None, f"no error: line on stderr: {r.stderr}"
    assert all(line.startswith(("note:", "warning:")) for line in lines[:start]), r.stderr
    err = "".join(lines[start:])
    assert sum(line.startswith("error:") for line in lines) <= 1, f"more than one error line: {r.stderr}"
    for name in names:
        assert name in err, f"{name!r} not in the message: {err}"
    _log(r, code, err)
    return err


def _log(r, code, err):
    """With CNN2GATE_ERRORS_LOG set, append (test, code, message) as a JSON line (docs/errors.md)."""
    path = os.environ.get("CNN2GATE_ERRORS_LOG")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"test": os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0], "code": code,
                                "message": err.strip()}) + "\n")


def ok(r) -> str:
    assert r.exit_code == 0, f"exit {r.exit_code}\nstdout: {r.stdout}\nstderr: {r.stderr}\n{r.exception!r}"
    return r.stdout


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file (and empty folder) under `folder`, hidden ones included, with its bytes."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = p.read_bytes() if p.is_file() else b"<dir>"
    return out


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def small_model(names=None, graph_name="small", x_name="data") -> onnx.ModelProto:
    """conv(3->4, 3x3, pad 1) -> relu -> maxpool 2 -> flatten -> gemm(5): input 1x3x8x8."""
    conv, relu, pool, flat, fc = names or ["conv", "relu", "pool", "flatten", "fc"]
    b = B.GraphBuilder(graph_name)
    x = b.node("Relu", [b.conv(x_name, 3, 4, 3, conv, pad=1)], name=relu)
    x = b.node("MaxPool", [x], name=pool, kernel_shape=[2, 2], strides=[2, 2])
    x = b.node("Flatten", [x], name=flat)
    x = b.node("Gemm", [x, b.weight(f"{fc}.w", (5, 4 * 4 * 4)), b.weight(f"{fc}.b", (5,))], name=fc, transB=1)
    return b.build([1, 3, 8, 8], x, x_name=x_name)


def set_initializer(model: onnx.ModelProto, name: str, fn) -> onnx.ModelProto:
    for t in model.graph.initializer:
        if t.name == name:
            t.CopyFrom(numpy_helper.from_array(fn(numpy_helper.to_array(t).copy()), name=name))
            return model
    raise KeyError(name)


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A small valid model, its calibration set and formats file, and a hardware config."""
    d = tmp_path_factory.mktemp("assets")
    model = save(small_model(), d / "small.onnx")
    calib = d / "calib.npy"
    np.save(calib, np.random.default_rng(0).uniform(-1, 1, size=(8, 3, 8, 8)).astype(np.float32))
    formats = d / "formats.json"
    ok(cli("quantize", model, "--calib", calib, "-o", formats))
    hw = d / "hw.json"
    hw.write_text(json.dumps(HW))
    return {"dir": d, "model": model, "calib": calib, "formats": formats, "hw": hw}


def compile_args(assets, out, *extra):
    return ["compile", assets["model"], "--formats", assets["formats"], "--config", assets["hw"], "-o", out, *extra]


# ---- 1. model files that are not (whole) ONNX models --------------------------------------


def _bad_model_file(tmp_path, kind: str) -> Path:
    p = tmp_path / f"{kind}.onnx"
    valid = small_model().SerializeToString()
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "truncated":
        p.write_bytes(valid[: len(valid) * 2 // 3])
    elif kind == "text":
        p.write_text("name,value\nthis is a CSV file renamed to .onnx,1\n" * 4)
    elif kind == "png":
        p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00" + bytes(64))
    elif kind == "garbage":
        p.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return p


@pytest.mark.parametrize("kind", ["empty", "truncated", "text", "png", "garbage"])
def test_unreadable_model_inspect(tmp_path, kind):
    fails(cli("inspect", _bad_model_file(tmp_path, kind)), 2, f"{kind}.onnx")


@pytest.mark.parametrize("kind", ["truncated", "png"])
def test_unreadable_model_compile_writes_nothing(tmp_path, kind):
    model = _bad_model_file(tmp_path, kind)
    before = snapshot(tmp_path)
    fails(cli("compile", model, "-o", tmp_path / "proj"), 2, f"{kind}.onnx")
    assert snapshot(tmp_path) == before


def test_unreadable_model_quantize_writes_nothing(tmp_path):
    model = _bad_model_file(tmp_path, "text")
    fails(cli("quantize", model, "-o", tmp_path / "f.json"), 2, "text.onnx")
    assert not (tmp_path / "f.json").exists()


def test_node_name_not_utf8(tmp_path):
    # protobuf hands such names back as bytes (found by benchmarks/fuzz_loader.py)
    data = small_model(names=["convX", "relu", "pool", "flatten", "fc"]).SerializeToString()
    assert data.count(b"convX") >= 1
    p = tmp_path / "latin1.onnx"
    p.write_bytes(data.replace(b"convX", b"conv\xe9"))
    fails(cli("inspect", p), 2, "latin1.onnx", "UTF-8")


def test_missing_model_file(tmp_path):
    fails(cli("estimate", tmp_path / "nope.onnx"), 2, "nope.onnx")


def test_model_path_is_a_directory(tmp_path):
    (tmp_path / "dir.onnx").mkdir()
    fails(cli("inspect", tmp_path / "dir.onnx"), 2, "dir.onnx")


# ---- 2. models with content cnn2gate does not support -------------------------------------


def test_two_unsupported_ops_in_one_error(tmp_path):
    b = B.GraphBuilder("unsupported")
    x = b.conv("data", 3, 4, 3, "conv1", pad=1)
    x = b.node("Sin", [x], name="odd_sin")
    x = b.node("Erf", [x], name="odd_erf")
    model = save(b.build([1, 3, 8, 8], x), tmp_path / "twobad.onnx")
    err = fails(cli("inspect", model), 2, "twobad.onnx", "'odd_sin' (Sin)", "'odd_erf' (Erf)")
    assert err.count("error:") == 1  # one error listing both, not one per node
    assert "supported ONNX ops: " + ", ".join(SUPPORTED_OPS) in err


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_nonfinite_weights(tmp_path, assets, bad):
    value = np.nan if bad == "nan" else -np.inf

    def poison(w):
        w.flat[3] = value
        return w

    model = save(set_initializer(small_model(), "fc.w", poison), tmp_path / f"{bad}.onnx")
    fails(cli("inspect", model), 2, f"{bad}.onnx", "'fc.w'", "'fc'", "NaN/Inf")
    fails(cli("compile", model, "-o", tmp_path / "proj"), 2, f"{bad}.onnx", "'fc.w'")
    assert not (tmp_path / "proj").exists()


def test_batchnorm_with_negative_variance(tmp_path):
    # folded into the convolution, it would give NaN weights (found by benchmarks/fuzz_loader.py)
    b = B.GraphBuilder("negvar")
    x = b.bn(b.conv("data", 3, 4, 3, "conv1", pad=1), 4, "bn1")
    model = b.build([1, 3, 8, 8], b.node("Relu", [x], name="relu1"))
    model = set_initializer(model, "bn1.var", lambda v: v - 10.0)
    r = cli("inspect", save(model, tmp_path / "negvar.onnx"))
    fails(r, 2, "negvar.onnx", "'bn1' (BatchNormalization)", "'bn1.var'")
    assert "RuntimeWarning" not in r.stderr


# ---- 3. shapes ----------------------------------------------------------------------------


def test_dynamic_shape_needs_input_shape(tmp_path):
    model = save(B.with_symbolic_dims(small_model(), {0: "N", 2: "H", 3: "W"}), tmp_path / "dyn.onnx")
    fails(cli("inspect", model), 2, "dyn.onnx", "--input-shape")
    doc = json.loads(ok(cli("inspect", model, "--input-shape", "3,8,8", "--json")))
    assert doc["layers"][0]["in_shape"][-2:] == [8, 8]


def test_dynamic_shape_wrong_input_shape(tmp_path):
    model = save(B.with_symbolic_dims(small_model(), {0: "N", 2: "H", 3: "W"}), tmp_path / "dyn.onnx")
    fails(cli("inspect", model, "--input-shape", "4,8,8"), 2, "dyn.onnx")  # channels fixed at 3
    fails(cli("inspect", model, "--input-shape", "3,6,6"), 2, "dyn.onnx")  # dense weights no longer fit


@pytest.mark.parametrize("value", ["3,0,8", "3,-1,8", "three,8,8"])
def test_bad_input_shape_option(tmp_path, value):
    model = save(B.with_symbolic_dims(small_model(), {2: "H", 3: "W"}), tmp_path / "dyn.onnx")
    fails(cli("inspect", model, "--input-shape", value), 2, "--input-shape")


def test_zero_sized_input_dimension(tmp_path):
    m = small_model()
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 0
    fails(cli("inspect", save(m, tmp_path / "zero.onnx")), 2, "zero.onnx", "zero")


def test_kernel_larger_than_input(tmp_path):
    b = B.GraphBuilder("tiny_input")
    x = b.conv("data", 3, 4, 5, "big_kernel")
    model = b.build([1, 3, 2, 2], x, out_shape=[1, 4, 1, 1])
    fails(cli("inspect", save(model, tmp_path / "shrink.onnx")), 2, "shrink.onnx", "'big_kernel' (Conv)", "empty")


# ---- 4. external data outside the model's folder ------------------------------------------


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/hostname"])
def test_external_data_escaping_folder(tmp_path, location):
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\0" * 4096)
    m = small_model()
    t = next(t for t in m.graph.initializer if t.name == "conv.w")
    size = len(numpy_helper.to_array(t).tobytes())
    t.ClearField("raw_data")
    t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(size))):
        e = t.external_data.add()
        e.key, e.value = k, v
    model = save(m, folder / "ext.onnx")
    fails(cli("inspect", model), 2, "ext.onnx", "'conv.w'", location)


# ---- 5. boards, hardware configs and agents -----------------------------------------------


def test_unknown_board(tmp_path, assets):
    fails(cli("estimate", assets["model"], "--board", "nosuchboard"), 2, "nosuchboard")
    fails(cli(*compile_args(assets, tmp_path / "p")[:-2], "--board", "nosuchboard", "-o", tmp_path / "p"), 2,
          "nosuchboard")
    assert not (tmp_path / "p").exists()


def test_explore_unknown_board(tmp_path, assets):
    fails(cli("explore", assets["model"], "--board", "nosuchboard", "-o", tmp_path / "x"), 2, "nosuchboard")
    assert not (tmp_path / "x").exists()


def test_board_file_missing_keys(tmp_path, assets):
    board = tmp_path / "half.toml"
    board.write_text('name = "half"\ndevice = "X"\n')
    fails(cli("estimate", assets["model"], "--board", board), 2, "half.toml")


def test_board_file_not_toml(tmp_path, assets):
    board = tmp_path / "broken.toml"
    board.write_text('name = "broken\n[[[')
    fails(cli("estimate", assets["model"], "--board", board), 2, "broken.toml", "TOML")


def _tiny_board(tmp_path) -> Path:
    """de1soc with almost nothing left over: no design can fit."""
    head, sep, tail = (ROOT / "boards" / "de1soc.toml").read_text().partition("\n[")
    for key, value in (("name", '"tiny"'), ("alms", "2600"), ("dsp_blocks", "2"), ("ram_blocks", "40")):
        head = "\n".join(f"{key} = {value}" if line.startswith(f"{key} = ") else line for line in head.splitlines())
    text = head + sep + tail.replace("vec_size = 4", "vec_size = 1").replace("lane_num = 4", "lane_num = 1")
    p = tmp_path / "tiny.toml"
    p.write_text(text + "\n")
    return p


def test_board_where_nothing_fits_estimate(tmp_path, assets):
    fails(cli("estimate", assets["model"], "--board", _tiny_board(tmp_path)), 2, "does not fit", "tiny")


def test_board_where_nothing_fits_compile_warns(tmp_path, assets):
    # the project is still written (the emulator does not care about the board), with a warning
    r = cli("compile", assets["model"], "--formats", assets["formats"], "--board", _tiny_board(tmp_path),
            "-o", tmp_path / "p")
    ok(r)
    assert "warning:" in r.stderr and "does not fit board tiny" in r.stderr and "explore" in r.stderr
    assert (tmp_path / "p" / "device" / "cnn2gate.cl").exists()
    ok_r = cli(*compile_args(assets, tmp_path / "q"))
    assert "does not fit" not in ok_r.stderr


def test_explore_board_where_nothing_fits(tmp_path, assets):
    board = _tiny_board(tmp_path)
    before = snapshot(tmp_path)
    fails(cli("explore", assets["model"], "--board", board, "--agent", "random", "--budget", 10, "--quiet",
              "-o", tmp_path / "x"), 2, "tiny", "no feasible design")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("config, option", [
    ({"vec_size": 3}, "vec_size"),
    ({"vec_size": 0}, "vec_size"),
    ({"lane_num": 1000}, "lane_num"),
    ({"lane_num": "8"}, "lane_num"),
    ({"conv_gp_size_x": 2.5}, "conv_gp_size_x"),
    ({"lanes": 8}, "lanes"),
])
def test_illegal_hw_config(tmp_path, assets, config, option):
    hw = tmp_path / "bad_hw.json"
    hw.write_text(json.dumps(config))
    fails(cli("estimate", assets["model"], "--config", hw), 2, "bad_hw.json", option)
    fails(cli("compile", assets["model"], "--formats", assets["formats"], "--config", hw, "-o", tmp_path / "p"), 2,
          "bad_hw.json", option)
    assert not (tmp_path / "p").exists()


def test_add_with_too_many_inputs(tmp_path, assets):
    # a structural rule of the architecture (Op.check): adds take at most 4 inputs; refused at load
    # time by every command (tests/test_refuse_early.py)
    b = B.GraphBuilder("sum5")
    branches = [b.conv("data", 3, 4, 3, f"c{i}", pad=1) for i in range(5)]
    model = save(b.build([1, 3, 8, 8], b.node("Sum", branches, name="sum5")), tmp_path / "sum5.onnx")
    fails(cli("inspect", model), 2, "sum5.onnx", "sum5", "5 inputs")
    fails(cli("estimate", model), 2, "sum5", "5 inputs")
    fails(cli("compile", model, "--config", assets["hw"], "-o", tmp_path / "p"), 2, "sum5", "5 inputs")
    fails(cli("explore", model, "--agent", "random", "--budget", 5, "--quiet", "-o", tmp_path / "x"), 2, "sum5",
          "5 inputs")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sum5.onnx"]


def test_hw_config_not_json(tmp_path, assets):
    hw = tmp_path / "hw.json"
    hw.write_text("vec_size: 4\n")
    fails(cli("estimate", assets["model"], "--config", hw), 2, "hw.json", "JSON")


def test_explore_unknown_agent(tmp_path, assets):
    fails(cli("explore", assets["model"], "--agent", "genetic", "-o", tmp_path / "x"), 2, "--agent", "genetic")
    assert not (tmp_path / "x").exists()


# ---- 6. formats files that do not match the model -----------------------------------------


def _formats_variant(assets, tmp_path, change) -> Path:
    doc = json.loads(assets["formats"].read_text())
    change(doc)
    p = tmp_path / "bad_formats.json"
    p.write_text(json.dumps(doc))
    return p


def _rename_layer(doc):
    doc["layers"]["not_a_layer"] = doc["layers"].pop(next(iter(doc["layers"])))


def _drop_layer(doc):
    doc["layers"].pop(sorted(doc["layers"])[-1])


def _bits_too_wide(doc):
    doc["layers"][next(iter(doc["layers"]))]["a_bits"] = 40


def _frac_too_small(doc):
    first = next(iter(doc["layers"]))
    doc["layers"][first]["w_frac"] = -12


def _frac_too_large(doc):
    first = next(iter(doc["layers"]))
    doc["layers"][first]["a_frac"] = 14


@pytest.mark.parametrize("change, fragment", [
    (_rename_layer, "not_a_layer"),
    (_drop_layer, "missing"),
    (_bits_too_wide, "bits"),
    (_frac_too_small, "frac"),
    (_frac_too_large, "frac"),
], ids=["unknown-layer", "missing-layer", "bits-out-of-range", "frac-rounds-to-zero", "frac-clips"])
def test_formats_file_mismatch(tmp_path, assets, change, fragment):
    fm = _formats_variant(assets, tmp_path, change)
    fails(cli("simulate", assets["model"], "--input", assets["calib"], "--formats", fm, "-o", tmp_path / "y.npy"),
          2, "bad_formats.json", fragment)
    assert not (tmp_path / "y.npy").exists()
    fails(cli("compile", assets["model"], "--formats", fm, "-o", tmp_path / "p"), 2, "bad_formats.json", fragment)
    assert not (tmp_path / "p").exists()


def test_formats_file_of_another_model(tmp_path, assets):
    other = save(small_model(names=["c", "r", "p", "f", "d"]), tmp_path / "other.onnx")
    fails(cli("estimate", other, "--formats", assets["formats"]), 2, "formats.json")


def test_formats_file_not_an_object(tmp_path, assets):
    fm = tmp_path / "list.json"
    fm.write_text("[8, 7]")
    fails(cli("estimate", assets["model"], "--formats", fm), 2, "list.json", "JSON object")


def test_formats_file_not_json(tmp_path, assets):
    fm = tmp_path / "formats.json"
    fm.write_text("{'input': ")
    fails(cli("compile", assets["model"], "--formats", fm, "-o", tmp_path / "p"), 2, "formats.json")
    assert not (tmp_path / "p").exists()


# ---- 7. arrays and project folders --------------------------------------------------------


def test_bad_calibration_file(tmp_path, assets):
    x = tmp_path / "calib.npy"
    np.save(x, np.zeros((4, 1, 8, 8), dtype=np.float32))
    fails(cli("quantize", assets["model"], "--calib", x, "-o", tmp_path / "f.json"), 2, "calib.npy", "(3, 8, 8)")
    np.save(x, np.full((4, 3, 8, 8), np.nan, dtype=np.float32))
    fails(cli("quantize", assets["model"], "--calib", x, "-o", tmp_path / "f.json"), 2, "calib.npy", "NaN")
    x.write_text("not numpy")
    err = fails(cli("quantize", assets["model"], "--calib", x, "-o", tmp_path / "f.json"), 2, "calib.npy", "not a .npy")
    assert "allow_pickle" not in err  # no advice to unpickle an untrusted file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib.npy"]


def test_emulate_folder_that_is_not_a_project(tmp_path):
    (tmp_path / "proj").mkdir()
    fails(cli("emulate", tmp_path / "proj", "--timeout", 5), 2, "proj", "not a cnn2gate project")


@pytest.fixture(scope="module")
def project(tmp_path_factory, assets):
    out = tmp_path_factory.mktemp("project") / "proj"
    ok(cli(*compile_args(assets, out)))
    return out


def _copy_project(project, tmp_path) -> Path:
    import shutil

    return Path(shutil.copytree(project, tmp_path / "proj"))


def test_emulate_project_missing_golden_output(tmp_path, project):
    p = _copy_project(project, tmp_path)
    (p / "golden" / "output.npy").unlink()
    fails(cli("emulate", p, "--timeout", 5), 2, "golden/output.npy", "not a cnn2gate project")


def test_emulate_project_with_damaged_model_json(tmp_path, project, assets):
    p = _copy_project(project, tmp_path)
    (p / "model" / "model.json").write_text('{"version": 1}')
    fails(cli("emulate", p, "--input", assets["calib"], "--timeout", 5), 2, "model.json", "damaged")


def test_emulate_labels_without_input(project):
    fails(cli("emulate", project, "--labels", "y.npy"), 2, "--labels", "--input")


@pytest.mark.parametrize("bad", ["shape", "nan"])
def test_emulate_bad_input_array(tmp_path, project, bad):
    x = tmp_path / f"{bad}.npy"
    a = np.zeros((2, 3, 8, 8) if bad == "nan" else (2, 5, 8, 8), dtype=np.float32)
    a.flat[0] = np.nan
    np.save(x, a)
    fails(cli("emulate", project, "--input", x, "--timeout", 5), 2, f"{bad}.npy")


def test_report_on_folder_without_facts(tmp_path):
    fails(cli("report", tmp_path), 2, str(tmp_path), "facts")
    assert list(tmp_path.iterdir()) == []
    fails(cli("report", tmp_path / "nowhere"), 2, "nowhere")


# ---- 8. output locations: existing, not a folder, disk full -------------------------------


def test_compile_existing_output_without_force(tmp_path, assets):
    out = tmp_path / "proj"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    fails(cli(*compile_args(assets, out)), 2, str(out), "--force")
    assert snapshot(tmp_path)["proj/keep.txt"] == b"mine" and len(list(out.iterdir())) == 1


def test_explore_existing_output_without_force(tmp_path, assets):
    out = tmp_path / "x"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    fails(cli("explore", assets["model"], "--agent", "random", "--budget", 5, "-o", out), 2, str(out), "--force")
    assert snapshot(tmp_path) == {"x": b"<dir>", "x/keep.txt": b"mine"}


def test_compile_output_is_a_file_even_with_force(tmp_path, assets):
    (tmp_path / "afile").write_text("x")
    fails(cli(*compile_args(assets, tmp_path / "afile", "--force")), 2, "afile")
    assert snapshot(tmp_path) == {"afile": b"x"}


def test_compile_output_parent_is_a_file(tmp_path, assets):
    (tmp_path / "afile").write_text("x")
    before = snapshot(tmp_path)
    fails(cli(*compile_args(assets, tmp_path / "afile" / "proj")), 2, "afile", "not a folder")
    assert snapshot(tmp_path) == before


def test_quantize_output_parent_is_a_file(tmp_path, assets):
    (tmp_path / "afile").write_text("x")
    before = snapshot(tmp_path)
    fails(cli("quantize", assets["model"], "--calib", assets["calib"], "-o", tmp_path / "afile" / "f.json"), 2,
          "afile", "not a folder")
    assert snapshot(tmp_path) == before


def test_simulate_output_parent_is_a_file(tmp_path, assets):
    (tmp_path / "afile").write_text("x")
    before = snapshot(tmp_path)
    fails(cli("simulate", assets["model"], "--input", assets["calib"], "--float", "-o", tmp_path / "afile" / "y.npy"),
          2, "afile", "not a folder")
    assert snapshot(tmp_path) == before


def _disk_full_on_rename(monkeypatch):
    """The last step of every atomic write (rename into place) fails as on a full disk."""
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    monkeypatch.setattr(os, "rename", full)


def test_compile_disk_full(tmp_path, assets, monkeypatch):
    _disk_full_on_rename(monkeypatch)
    err = fails(cli(*compile_args(assets, tmp_path / "proj")), 2, str(tmp_path / "proj"), "No space left")
    assert ".tmp-" not in err  # the message names the output, not a temporary folder that is gone
    assert list(tmp_path.iterdir()) == []


def test_compile_force_disk_full_keeps_old_project(tmp_path, assets, monkeypatch):
    out = tmp_path / "proj"
    ok(cli(*compile_args(assets, out)))
    before = snapshot(tmp_path)
    _disk_full_on_rename(monkeypatch)
    err = fails(cli(*compile_args(assets, out, "--force")), 2, str(out), "No space left")
    assert ".tmp-" not in err
    assert snapshot(tmp_path) == before


def test_quantize_disk_full_keeps_old_file(tmp_path, assets, monkeypatch):
    out = tmp_path / "f.json"
    out.write_text("{}")
    _disk_full_on_rename(monkeypatch)
    fails(cli("quantize", assets["model"], "--calib", assets["calib"], "-o", out), 2, "f.json", "No space left")
    assert snapshot(tmp_path) == {"f.json": b"{}"}


def test_simulate_disk_full_keeps_old_file(tmp_path, assets, monkeypatch):
    out = tmp_path / "y.npy"
    out.write_bytes(b"old")
    _disk_full_on_rename(monkeypatch)
    fails(cli("simulate", assets["model"], "--input", assets["calib"], "--float", "-o", out), 2, "y.npy",
          "No space left")
    assert snapshot(tmp_path) == {"y.npy": b"old"}


def test_explore_force_disk_full_keeps_old_output(tmp_path, assets, monkeypatch):
    out = tmp_path / "x"
    ok(cli("explore", assets["model"], "--agent", "random", "--budget", 5, "--quiet", "-o", out))
    before = snapshot(tmp_path)
    _disk_full_on_rename(monkeypatch)
    fails(cli("explore", assets["model"], "--agent", "random", "--budget", 5, "--quiet", "--force", "-o", out), 2,
          "No space left")
    assert snapshot(tmp_path) == before


# ---- 9. hostile node and tensor names -----------------------------------------------------


HOSTILE = [
    'say "hi" it\'s',
    "close */ comment /* open",
    "line\nbreak\r\n#define EVIL 1",
    "#include <evil.h>",
    "ünïcödé—層",
]
LONG = "L" * 10_000
#: what must never appear in a generated text file (HOSTILE pieces, the long name's prefix)
FRAGMENTS = ['"hi"', "it's", "*/ comment", "#define EVIL", "#include <evil.h>", "ünïcödé", "層", "L" * 64]


@pytest.fixture(scope="module")
def hostile_model(tmp_path_factory):
    """small_model with every node, tensor, input and graph name hostile."""
    names = HOSTILE[:4] + [LONG]
    m = small_model(names=names, graph_name=HOSTILE[4], x_name="in\"put*/\n#include")
    path = tmp_path_factory.mktemp("hostile") / "hostile.onnx"
    return save(m, path)


def json_file(tmp_path, doc) -> Path:
    p = tmp_path / "doc.json"
    p.write_text(json.dumps(doc))
    return p


def test_hostile_names_compile_never_reach_generated_files(tmp_path, hostile_model):
    out = tmp_path / "proj"
    ok(cli("compile", hostile_model, "--config", json_file(tmp_path, HW), "-o", out))
    files = [p for p in out.rglob("*") if p.is_file() and p.suffix not in (".bin", ".npy")]
    rel = {str(p.relative_to(out)) for p in files}
    assert {"Makefile", "device/cnn2gate.cl", "host/main.cpp"} <= rel, rel
    for p in files:
        code = p.parts[-2] in ("device", "host", "model") or p.name == "Makefile"
        # code and build files are pure ASCII; the report may use typography (×, ✓) but no model text
        text = p.read_bytes().decode("ascii" if code else "utf-8")
        for frag in FRAGMENTS:
            assert frag not in text, (p, frag)
        assert "\r" not in text, p
    # the IR-level version of this test, and the emulator run of such a project, are in
    # tests/test_codegen.py::test_hostile_names_never_reach_generated_text and
    # tests/test_emulate.py::test_hostile_names_still_build_and_run


SAFE_NAME = re.compile(r"[A-Za-z0-9_]{1,40}")


def _no_fragments(text: str) -> None:
    for frag in FRAGMENTS:
        assert frag not in text, frag


def test_hostile_names_inspect_json(hostile_model):
    out = ok(cli("inspect", hostile_model, "--json"))
    doc = json.loads(out)
    names = [layer["name"] for layer in doc["layers"]]
    assert len(names) == 3 and all(SAFE_NAME.fullmatch(n) for n in names), names
    assert SAFE_NAME.fullmatch(doc["model"])
    _no_fragments(out)


def test_hostile_names_quantize_formats_json(tmp_path, hostile_model):
    out = tmp_path / "f.json"
    ok(cli("quantize", hostile_model, "-o", out))
    text = out.read_text(encoding="utf-8")
    doc = json.loads(text)
    inspect_names = [layer["name"] for layer in json.loads(ok(cli("inspect", hostile_model, "--json")))["layers"]]
    assert sorted(doc["layers"]) == sorted(inspect_names)
    _no_fragments(text)
    # and the file is accepted back by the commands that read it
    ok(cli("estimate", hostile_model, "--formats", out, "--json"))
    ok(cli("simulate", hostile_model, "--input", np_file(tmp_path), "--formats", out, "-o", tmp_path / "y.npy"))


def np_file(tmp_path) -> Path:
    p = tmp_path / "x.npy"
    np.save(p, np.random.default_rng(2).uniform(-1, 1, size=(2, 3, 8, 8)))
    return p


def test_hostile_names_estimate_json(hostile_model):
    out = ok(cli("estimate", hostile_model, "--json"))
    doc = json.loads(out)
    assert len(doc["layers"]) == 3 and all(SAFE_NAME.fullmatch(layer["name"]) for layer in doc["layers"])
    _no_fragments(out)


def _emulator():
    from cnn2gate.emulate import emulator_available

    return emulator_available()


@pytest.mark.emulator
def test_hostile_names_cli_project_passes_in_emulator(tmp_path, hostile_model):
    available, why = _emulator()
    if not available:
        pytest.skip(f"Intel FPGA emulation runtime unavailable: {why}")
    out = tmp_path / "proj"
    ok(cli("compile", hostile_model, "--config", json_file(tmp_path, HW), "-o", out))
    assert "PASS" in ok(cli("emulate", out, "--timeout", 240))


# ---- 10. determinism ----------------------------------------------------------------------


def test_two_cli_compiles_are_byte_identical(tmp_path, assets):
    # quantising inside compile (no --formats) too, so the whole path is covered
    a, b = tmp_path / "a", tmp_path / "b"
    ok(cli("compile", assets["model"], "--calib", assets["calib"], "--config", assets["hw"], "-o", a))
    ok(cli("compile", assets["model"], "--calib", assets["calib"], "--config", assets["hw"], "-o", b))
    assert snapshot(a) == snapshot(b)
    # the API-level check is tests/test_codegen.py::test_compile_is_deterministic


def test_explore_same_seed_same_best_design(tmp_path, assets):
    # PPO is the agent whose seeding is the easiest to get wrong (torch, gymnasium, numpy)
    runs = []
    for name in ("a", "b"):
        ok(cli("explore", assets["model"], "--agent", "ppo", "--budget", 24, "--seed", 5, "--quiet", "-o", tmp_path / name))
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        runs.append(((tmp_path / name / "best_config.json").read_bytes(), (tmp_path / name / "history.csv").read_bytes(),
                     summary["best"]))
    assert runs[0] == runs[1]


# ---- 11. every emulator run is bounded by a timeout ---------------------------------------


@pytest.mark.emulator
def test_emulate_deadlock_is_a_clean_timeout(tmp_path, assets):
    available, why = _emulator()
    if not available:
        pytest.skip(f"Intel FPGA emulation runtime unavailable: {why}")
    import time

    out = tmp_path / "proj"
    ok(cli(*compile_args(assets, out)))
    cl = out / "device" / "cnn2gate.cl"
    src = cl.read_text()
    # a channel nobody writes, read at the start of the first kernel: that kernel blocks for ever
    first = re.search(r"__kernel\b[^{]*\{", src)
    assert first, "no kernel found in the generated source"
    hung = (src[: first.start()] + "channel int never_written_ch __attribute__((depth(1)));\n"
            + src[first.start() : first.end()] + "\n    (void)read_channel_intel(never_written_ch);\n"
            + src[first.end() :])
    cl.write_text(hung)
    t0 = time.monotonic()
    r = cli("emulate", out, "--timeout", 5)
    elapsed = time.monotonic() - t0
    assert r.exit_code != 0
    fails(r, r.exit_code, "5 s timeout", "--timeout")
    assert r.exit_code == 1  # a timeout is a failed verification (docs/errors.md)
    assert elapsed < 60, elapsed
    # the hung host program and its emulator threads were killed, not left running
    left = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if str(out).encode() in (p / "cmdline").read_bytes():
                    left.append(p.name)
            except OSError:
                pass
    assert not left, f"processes still running on the project: {left}"
