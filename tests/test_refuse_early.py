"""Refusing early and all at once, sizes that cannot work, and the two SQNR figures.

- What `compile` would refuse because of the model's structure is refused when the model is
  loaded, by every command that reads a model, with a message that starts with the file name.
- The graph-output check is reported together with the node checks, not instead of them.
- Slices and Gathers of image data are reported as what they are.
- A model whose synthetic calibration cannot fit in host memory, or whose buffers cannot fit
  the board's external memory, gets an error naming the input shape; `estimate` never says FITS
  for it and `compile` refuses it with the same message (so does `pipeline.compile_project`, the
  command checking once); explore's precision search refuses a sensitivity model that cannot fit.
- `quantize` labels its per-tensor SQNR as each format's own, `simulate --report` its SQNR as
  cumulative.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

import onnx_builders as B
from cnn2gate import hostmem
from cnn2gate.cli import main
from cnn2gate.errors import Cnn2GateError, ConfigError
from cnn2gate.frontend import load_model
from cnn2gate.hw import estimate, load_board
from cnn2gate.hw.boards import list_boards
from cnn2gate.emulate import emulate_project
from cnn2gate.frontend import convert
from cnn2gate.pipeline import compile_project
from cnn2gate.quant import quantize
from sim_checks import emulator_test

ROOT = Path(__file__).resolve().parents[1]
HW = {"vec_size": 4, "lane_num": 4, "conv_gp_size_x": 2}


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def refused(r, *names: str) -> str:
    """Exit 2 with one `error:` message naming every one of `names`; returns the message."""
    assert r.exit_code == 2, f"exit {r.exit_code}\nstdout: {r.stdout}\nstderr: {r.stderr}\n{r.exception!r}"
    assert isinstance(r.exception, SystemExit), f"uncaught {r.exception!r}"
    assert "Traceback" not in r.stderr
    err = r.stderr[r.stderr.index("error:"):]
    for name in names:
        assert name in err, f"{name!r} not in: {err}"
    return err


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def _sum5(path: Path) -> Path:
    b = B.GraphBuilder("sum5")
    branches = [b.conv("data", 3, 4, 3, f"c{i}", pad=1) for i in range(5)]
    return save(b.build([1, 3, 8, 8], b.node("Sum", branches, name="sum5")), path)


def _slice_only(path: Path) -> Path:
    """A channel range of the input and nothing else: no layer runs on the device."""
    b = B.GraphBuilder("sliceonly")
    ins = ["data", b.tensor("s", np.array([1], np.int64)), b.tensor("e", np.array([3], np.int64)),
           b.tensor("a", np.array([1], np.int64))]
    return save(b.build([1, 3, 8, 8], b.node("Slice", ins, name="sl")), path)


STRUCTURAL = {  # model builder, words the message must hold
    "sum5": (_sum5, ("'sum5'", "an add of 5 inputs", "at most 4")),
    "sliceonly": (_slice_only, ("no layer runs on the device", "split")),
}


@pytest.mark.parametrize("name", sorted(STRUCTURAL))
def test_structural_refusals_come_at_load_from_every_command(tmp_path, name):
    build, words = STRUCTURAL[name]
    model = build(tmp_path / f"{name}.onnx")
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((2, 3, 8, 8), np.float32))
    hw = tmp_path / "hw.json"
    hw.write_text(json.dumps(HW))
    runs = {
        "inspect": ("inspect", model),
        "quantize": ("quantize", model, "-o", tmp_path / "f.json"),
        "simulate": ("simulate", model, "--input", x, "-o", tmp_path / "y.npy"),
        "estimate": ("estimate", model),
        "compile": ("compile", model, "--config", hw, "-o", tmp_path / "proj"),
        "explore": ("explore", model, "--agent", "random", "--budget", 3, "--quiet", "-o", tmp_path / "ex"),
    }
    messages = {cmd: refused(cli(*args), *words) for cmd, args in runs.items()}
    for cmd, err in messages.items():
        assert err.startswith(f"error: {model}:"), (cmd, err)  # the file first, as every front-end error
    assert len(set(messages.values())) == 1, messages  # one message, whichever command loads the model
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([model.name, "x.npy", "hw.json"])


def test_architecture_limit_listed_with_the_other_unsupported_nodes(tmp_path):
    b = B.GraphBuilder("sum5sin")
    branches = [b.conv("data", 3, 4, 3, f"c{i}", pad=1) for i in range(5)]
    y = b.node("Sin", [b.node("Sum", branches, name="sum5")], name="odd_sin")
    model = save(b.build([1, 3, 8, 8], y), tmp_path / "m.onnx")
    err = refused(cli("inspect", model), "2 unsupported nodes", "'sum5'", "5 inputs", "'odd_sin' (Sin)")
    assert err.startswith(f"error: {model}:")


def _concat_relu() -> onnx.ModelProto:
    b = B.GraphBuilder("catrelu")
    x = b.conv("data", 3, 4, 3, "c0", pad=1)
    y = b.conv("data", 3, 4, 3, "c1", pad=1)
    return b.build([1, 3, 8, 8], b.node("Relu", [b.node("Concat", [x, y], name="cat", axis=1)], name="r"))


def test_relu_after_concat_is_its_own_layer_and_compiles(tmp_path):
    # a concat is done by addressing and cannot apply an activation: the Relu used to be fused
    # into it, which passed every command but compile; now it is a standalone act layer
    model = _concat_relu()
    graph = load_model(save(model, tmp_path / "catrelu.onnx"))
    cat = graph.layer("cat")
    assert cat.act == "none"
    after = [layer for layer in graph.layers if layer.inputs == ["cat"]]
    assert [(layer.kind, layer.act) for layer in after] == [("act", "relu")]
    assert B.parity(graph, model) < 1e-5  # float executor vs onnxruntime
    hw = tmp_path / "hw.json"
    hw.write_text(json.dumps(HW))
    r = cli("compile", tmp_path / "catrelu.onnx", "--config", hw, "-o", tmp_path / "proj", "--quiet")
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "proj" / "device" / "cnn2gate.cl").is_file()


@emulator_test
def test_relu_after_concat_bit_exact_in_emulator(tmp_path):
    g = convert(_concat_relu())
    out = compile_project(g, quantize(g), "a10", HW, tmp_path / "p")
    x = np.random.default_rng(3).uniform(-1, 1, (2,) + g.input_shape)
    res = emulate_project(out, x, timeout=240, dump_dir=tmp_path / "dump")
    assert res.passed, res.summary()
    assert len(res.layer_mismatches) == len(g.layers) and not any(res.layer_mismatches.values())


def _two_heads_one_read_and_an_unsupported_node() -> onnx.ModelProto:
    b = B.GraphBuilder("twohead")
    x = b.conv("data", 3, 4, 3, "c0", pad=1)
    a = b.conv(x, 4, 4, 1, "ha")
    s = b.node("Sin", [b.conv(a, 4, 4, 1, "hb")], name="odd_sin")  # head a is also read by hb
    g = helper.make_graph(b.nodes, "twohead", [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info(a, TensorProto.FLOAT, None),
                           helper.make_tensor_value_info(s, TensorProto.FLOAT, None)], initializer=b.inits)
    return onnx.shape_inference.infer_shapes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))


def test_graph_output_check_does_not_hide_node_checks(tmp_path):
    model = save(_two_heads_one_read_and_an_unsupported_node(), tmp_path / "twohead.onnx")
    err = refused(cli("inspect", model), "1 unsupported node", "'odd_sin' (Sin): op not supported",
                  "1 graph problem", "graph output 'ha_out' is also read by 'hb'")
    assert err.startswith(f"error: {model}: ")


def test_graph_output_problem_alone_keeps_its_one_line_message(tmp_path):
    m = _two_heads_one_read_and_an_unsupported_node()
    for n in m.graph.node:  # Sin -> Relu: the only problem left is the output read by another node
        if n.op_type == "Sin":
            n.op_type = "Relu"
    model = save(m, tmp_path / "twohead_ok_nodes.onnx")
    err = refused(cli("inspect", model))
    assert err == (f"error: {model}: graph output 'ha_out' is also read by 'hb'; with several graph outputs each must "
                   "be a final result (or give exactly one graph output)\n")


def _slice_model(tmp_path, name, op, build_inputs, flat=False) -> Path:
    b = B.GraphBuilder(name)
    x = b.conv("data", 3, 8, 3, "c0", pad=1)
    if flat:
        x = b.node("Flatten", [x], name="flat")
    y = b.node(op, build_inputs(b, x), name="sl", **({"axis": 1} if op == "Gather" else {}))
    return save(b.build([1, 3, 8, 8], y), tmp_path / f"{name}.onnx")


def _bounds(starts, ends, axes, steps=None):
    def make(b, x):
        ins = [x, b.tensor("st", np.array(starts, np.int64)), b.tensor("en", np.array(ends, np.int64)),
               b.tensor("ax", np.array(axes, np.int64))]
        return ins + ([b.tensor("sp", np.array(steps, np.int64))] if steps else [])
    return make


SLICES = {  # name: (op, inputs, flatten first, words the message must hold)
    "gather_channels": ("Gather", lambda b, x: [x, b.tensor("i", np.array([0, 2], np.int64))], False,
                        ("'sl' (Gather): Gather of a feature map of shape (1, 8, 8, 8) is not supported",)),
    "slice_rows": ("Slice", _bounds([0], [4], [2]), False,
                   ("'sl' (Slice): a Slice of a feature map along H (axis 2, 0:4:1) is not supported",)),
    "slice_channels_step2": ("Slice", _bounds([0], [8], [1], [2]), False,
                             ("along channels (axis 1, 0:8:2)", "only a channel Slice with step 1")),
    "slice_vector": ("Slice", _bounds([0], [100], [1]), True,
                     ("'sl' (Slice): a Slice of a tensor of shape (1, 512)",)),
}


@pytest.mark.parametrize("name", sorted(SLICES))
def test_slices_of_image_data_are_reported_as_slices(tmp_path, name):
    op, inputs, flat, words = SLICES[name]
    err = refused(cli("inspect", _slice_model(tmp_path, name, op, inputs, flat)), *words)
    assert "shape computation" not in err


def test_a_supported_channel_slice_still_loads(tmp_path):
    model = _slice_model(tmp_path, "slice_ok", "Slice", _bounds([2], [6], [1]))
    graph = load_model(model)
    assert [(layer.kind, layer.out_shape) for layer in graph.layers] == [("conv", (8, 8, 8)), ("split", (4, 8, 8))]


# ---- sizes that cannot work -------------------------------------------------------------------

HUGE = (1, 3, 60000, 60000)


@pytest.fixture(scope="module")
def huge(tmp_path_factory):
    """A valid model whose input alone is 10.8 G values (43 GB as float32)."""
    b = B.GraphBuilder("huge")
    y = b.conv("data", 3, 4, 3, "c0", stride=2)
    return save(b.build(list(HUGE), y), tmp_path_factory.mktemp("huge") / "huge.onnx")


def test_quantize_refuses_a_calibration_that_cannot_fit(tmp_path, huge):
    err = refused(cli("quantize", huge, "-o", tmp_path / "f.json"), f"{huge}:", "input shape (3, 60000, 60000)",
                  "synthetic set", "GiB of host memory", "smaller input", "--input-shape")
    assert "MemoryError" not in err
    assert not (tmp_path / "f.json").exists()


def test_estimate_never_says_fits_when_the_board_memory_is_too_small(huge):
    r = cli("estimate", huge)
    err = refused(r, f"{huge}:", "input shape (3, 60000, 60000)", "external memory", "board a10's 2 GiB")
    assert "FITS (" not in r.stdout and "DOES NOT FIT" in r.stdout and "external memory" in r.stdout
    doc = json.loads(cli("estimate", huge, "--json", "--allow-misfit").stdout)
    assert doc["fits"] is False and doc["memory"]["fits"] is False
    # 3 channels padded to vec_size 16 over 60000², 4 channels (padded to 16) over 29999², one byte each
    assert doc["memory"]["feature_bytes"] == 16 * 60000 * 60000 + 16 * 29999 * 29999
    assert doc["memory"]["capacity_bytes"] == 2 << 30
    assert err.endswith("(or pass --allow-misfit to only report)\n")


def test_compile_refuses_with_the_estimate_message(tmp_path, huge):
    est = refused(cli("estimate", huge))
    err = refused(cli("compile", huge, "-o", tmp_path / "proj"))
    assert est.startswith(err.rstrip("\n"))  # the same refusal (estimate adds how to only report)
    assert not (tmp_path / "proj").exists()


def test_compile_refuses_a_calibration_that_cannot_fit_before_making_it(tmp_path, huge):
    # on a (made-up) board with room for its buffers, the host-memory check is what stops it
    board = tmp_path / "roomy.toml"
    board.write_text(_board_text(name='"roomy"', mem_capacity_gib="4096"))
    err = refused(cli("compile", huge, "--board", board, "-o", tmp_path / "proj"), f"{huge}:",
                  "input shape (3, 60000, 60000)", "synthetic set", "host memory", "smaller input")
    assert "MemoryError" not in err
    assert not (tmp_path / "proj").exists()


def test_feature_map_footprint_counts_padded_channels_and_batch_slots(tmp_path):
    # one conv on 3x8x8 at vec_size 4: input and output both 4 padded channels of 64 pixels, 8-bit
    b = B.GraphBuilder("one")
    graph = load_model_from(b.build([1, 3, 8, 8], b.conv("data", 3, 4, 3, "c0", pad=1)))
    one = estimate(graph, "a10", dict(HW, fc_batch=1)).memory
    two = estimate(graph, "a10", dict(HW, fc_batch=2)).memory
    assert one.feature_bytes == 4 * 64 + 4 * 64
    assert two.feature_bytes == 2 * one.feature_bytes  # fc_batch slots of every buffer
    assert one.weight_bytes == two.weight_bytes > 0 and one.fits


def test_host_memory_checks_compare_with_what_is_available():
    b = B.GraphBuilder("small")
    graph = load_model_from(b.build([1, 3, 32, 32], b.conv("data", 3, 8, 3, "c0", pad=1)))
    one = hostmem.calibration_bytes(graph, 1, False)
    synthetic = hostmem.calibration_bytes(graph, 16, True)
    assert one == (3 * 32 * 32 + 8 * 32 * 32) * 4
    hostmem.check_calibration("m.onnx", graph, None, available=synthetic)  # just enough: no error
    with pytest.raises(Cnn2GateError, match=r"m.onnx: input shape \(3, 32, 32\): calibrating on the synthetic set "
                       r"\(16 samples\) needs .* pass --calib with a few samples of your own"):
        hostmem.check_calibration("m.onnx", graph, None, available=synthetic - 1)
    with pytest.raises(Cnn2GateError, match="export it with a smaller input"):
        hostmem.check_calibration("m.onnx", graph, None, available=one - 1)
    hostmem.check_golden("m.onnx", graph, available=hostmem.golden_bytes(graph))
    with pytest.raises(Cnn2GateError, match=r"golden data \(one image\)"):
        hostmem.check_golden("m.onnx", graph, available=hostmem.golden_bytes(graph) - 1)


def load_model_from(model: onnx.ModelProto):
    return convert(model)


def test_every_bundled_board_gives_its_memory_with_a_source():
    for name in list_boards():
        board = load_board(name)
        assert board.mem_capacity_gib > 0, name
        assert board.sources["mem_capacity_gib"].strip(), name
        assert board.to_dict()["mem_capacity_gib"] == board.mem_capacity_gib


def _board_text(**changes) -> str:
    head, sep, tail = (ROOT / "boards" / "a10.toml").read_text().partition("\n[")
    lines = []
    for line in head.splitlines():
        key = line.split(" = ")[0]
        if key in changes:
            if changes[key] is not None:
                lines.append(f"{key} = {changes[key]}")
            continue
        lines.append(line)
    return "\n".join(lines) + sep + tail


def test_board_memory_key_is_checked(tmp_path):
    p = tmp_path / "nosrc.toml"
    p.write_text(_board_text(name='"nosrc"').replace("\nmem_capacity_gib = \"", "\nx_unused = \""))
    with pytest.raises(ConfigError, match="sources.mem_capacity_gib"):
        load_board(str(p))
    p = tmp_path / "zero.toml"
    p.write_text(_board_text(name='"zero"', mem_capacity_gib="0"))
    with pytest.raises(ConfigError, match="mem_capacity_gib"):
        load_board(str(p))
    p = tmp_path / "unknown.toml"  # a board file without the key: the memory is not checked
    p.write_text(_board_text(name='"unknown"', mem_capacity_gib=None).replace("\nmem_capacity_gib = \"", "\n# \""))
    board = load_board(str(p))
    assert board.mem_capacity_gib == 0
    b = B.GraphBuilder("one")
    graph = load_model_from(b.build([1, 3, 8, 8], b.conv("data", 3, 4, 3, "c0", pad=1)))
    est = estimate(graph, board)
    assert est.memory.fits and est.memory.capacity_bytes == 0


def _small_conv(path: Path, size: int) -> Path:
    b = B.GraphBuilder("small")
    return save(b.build([1, 3, size, size], b.conv("data", 3, 8, 3, "c0", pad=1)), path)


def test_compile_project_api_refuses_with_the_compile_message(tmp_path):
    # 3 channels (padded to 4) and 8 over 128², one byte each: 192 KiB of buffers, over a
    # (made-up) board of 0.0001 GiB (about 105 KiB); the graph quantises in no time
    model = _small_conv(tmp_path / "small.onnx", 128)
    board = tmp_path / "tiny.toml"
    board.write_text(_board_text(name='"tiny"', mem_capacity_gib="0.0001"))
    config = tmp_path / "hw.json"
    config.write_text(json.dumps(HW))
    err = refused(cli("compile", model, "--board", board, "--config", config, "-o", tmp_path / "cli"),
                  f"{model}:", "input shape (3, 128, 128)", "external memory", "board tiny's")
    graph = load_model(str(model))
    formats = quantize(graph)
    with pytest.raises(ConfigError) as api:
        compile_project(graph, formats, load_board(str(board)), HW, tmp_path / "api", source=str(model))
    assert f"error: {api.value}\n" == err  # the same type and message as the command
    with pytest.raises(ConfigError, match=r"^small: input shape \(3, 128, 128\): the design needs"):
        compile_project(graph, formats, load_board(str(board)), HW, tmp_path / "api")  # named by the graph
    assert not (tmp_path / "api").exists() and not (tmp_path / "cli").exists()


def test_compile_checks_the_board_memory_once(tmp_path, monkeypatch):
    import cnn2gate.pipeline as pipeline

    calls = []
    checked = pipeline.memory_refusal

    def counting(*args):
        calls.append(args[1])
        return checked(*args)

    monkeypatch.setattr(pipeline, "memory_refusal", counting)
    model = _small_conv(tmp_path / "small.onnx", 8)
    r = cli("compile", model, "-o", tmp_path / "cli", "-q")
    assert r.exit_code == 0, r.stderr
    assert calls == [str(model)]  # before calibrating, not again in compile_project
    graph = load_model(str(model))
    compile_project(graph, quantize(graph), "a10", HW, tmp_path / "api")
    assert calls == [str(model), "small"]  # the API checks by itself


def test_explore_refuses_a_sensitivity_model_that_cannot_fit(tmp_path, huge):
    r = cli("explore", huge, "--precision", "-o", tmp_path / "ex")
    err = refused(r, "model huge: input shape (3, 60000, 60000)", "sensitivity model on the synthetic set",
                  "host memory", "smaller input")
    assert "MemoryError" not in err
    assert not (tmp_path / "ex").exists()


def test_sensitivity_check_compares_with_what_is_available(monkeypatch):
    from cnn2gate.explore import ExploreOptions, explore
    from cnn2gate.quant.calibrate import synthetic_count

    b = B.GraphBuilder("small")
    graph = load_model_from(b.build([1, 3, 16, 16], b.conv("data", 3, 8, 3, "c0", pad=1)))
    n = synthetic_count(graph)
    need = hostmem.sensitivity_bytes(graph, n, True)
    assert need == n * 3 * 16 * 16 * 12 + n * (3 + 8) * 16 * 16 * 4  # made, then every tensor of every sample
    hostmem.check_sensitivity("m", graph, None, available=need)  # just enough: no error
    with pytest.raises(Cnn2GateError, match=r"m: input shape \(3, 16, 16\): the precision search's sensitivity "
                       r"model on the synthetic set \(16 samples\) needs .* pass --calib with fewer samples"):
        hostmem.check_sensitivity("m", graph, None, available=need - 1)
    with pytest.raises(Cnn2GateError, match=r"on 100 samples needs"):  # given samples: no synthetic images
        hostmem.check_sensitivity("m", graph, 100, available=hostmem.sensitivity_bytes(graph, 100, False) - 1)
    # explore's API refuses before it builds anything
    monkeypatch.setattr(hostmem, "available_bytes", lambda: need - 1)
    with pytest.raises(Cnn2GateError, match="model small: input shape"):
        explore(graph, "de1soc", ExploreOptions(agent="sa", budget=4, seed=0, precision=True, min_sqnr=20.0))


# ---- SQNR wording ------------------------------------------------------------------------------


def test_quantize_and_simulate_label_their_sqnr(tmp_path):
    b = B.GraphBuilder("two")
    x = b.node("Relu", [b.conv("data", 3, 4, 3, "c0", pad=1)], name="r0")
    model = save(b.build([1, 3, 8, 8], b.conv(x, 4, 4, 3, "c1", pad=1)), tmp_path / "two.onnx")
    xs = tmp_path / "x.npy"
    np.save(xs, np.random.default_rng(0).uniform(-1, 1, (4, 3, 8, 8)).astype(np.float32))
    q = cli("quantize", model, "--calib", xs, "-o", tmp_path / "f.json")
    assert q.exit_code == 0, q.stderr
    assert "own SQNR dB" in q.stdout and "cumulative" in q.stdout  # says where the other figure is
    s = cli("simulate", model, "--input", xs, "--formats", tmp_path / "f.json", "--report", "-o", tmp_path / "y.npy")
    assert s.exit_code == 0, s.stderr
    assert "cumulative SQNR dB" in s.stdout and "own SQNR" in s.stdout
    header = [line for line in s.stdout.splitlines() if line.startswith("layer")][0]
    assert "own SQNR" not in header
