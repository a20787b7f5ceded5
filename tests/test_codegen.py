"""Code generation without the emulator: layouts, plan rules, determinism, atomicity, names."""
from __future__ import annotations

from pathlib import Path

import jinja2
import numpy as np
import pytest
from click.testing import CliRunner

from cnn2gate.cli import main
from cnn2gate.codegen import load_model, make_plan
from cnn2gate.codegen import layout, project
from cnn2gate.ops.conv import chain_weights
from cnn2gate.ops.depthwise import channel_weights
from cnn2gate.codegen.names import clean, is_safe, layer_stem
from cnn2gate.hw import HwConfig, load_config
from cnn2gate.codegen.render import environment
from cnn2gate.errors import ConfigError, ModelError, OutputError
from cnn2gate.ir import GRAPH_INPUT
from cnn2gate.ir.copies import add_view_copies
from cnn2gate.pipeline import compile_project
from cnn2gate.quant import quantize, quantize_params
from cnn2gate.sim import simulate
from cnn2gate.zoo import Builder

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits" / "digits_cnn.onnx"
CFG = {"vec_size": 4, "lane_num": 3, "conv_gp_size_x": 2}

HOSTILE = [
    'quote"name\'s',
    "end */ comment /* x",
    "new\nline\r\n#define X 1",
    "#include <stdlib.h>",
    "ünïcödé—名前",
    "$(shell rm -rf /) `id` \\",
    "x" * 10_000,
]


def small_graph(names=None, name="small"):
    names = names or ["c1", "p1", "c2", "d1"]
    b = Builder(name, (3, 8, 8), seed=5)
    x = b.conv(GRAPH_INPUT, 5, 3, name=names[0])
    x = b.pool(x, "max", 2, name=names[1])
    x = b.conv(x, 6, 3, groups=1, act="leaky", name=names[2])
    b.dense(x, 4, name=names[3])
    return b.build()


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# ---- layouts -------------------------------------------------------------------------


def test_conv_weight_layout_matches_index_formula():
    rng = np.random.default_rng(0)
    g, m, cg, kh, kw, vec, lane = 2, 10, 5, 3, 2, 4, 3
    w = rng.integers(-100, 100, size=(g * m, cg, kh, kw))
    b = rng.integers(-1000, 1000, size=g * m)
    dw, db = chain_weights(w, b, g, vec, lane)
    mb, cv = -(-m // lane), -(-cg // vec)
    dw = dw.reshape(g, mb, cv, kh, kw, lane, vec)
    for gi in range(g):
        for mi in range(mb * lane):
            for ci in range(cv * vec):
                want = w[gi * m + mi, ci] if mi < m and ci < cg else np.zeros((kh, kw))
                got = dw[gi, mi // lane, ci // vec, :, :, mi % lane, ci % vec]
                assert np.array_equal(got, want)
    db = db.reshape(g, mb * lane)
    assert np.array_equal(db[:, :m], b.reshape(g, m)) and not db[:, m:].any()


def test_depthwise_layout_and_activation_layout_roundtrip():
    rng = np.random.default_rng(1)
    w = rng.integers(-9, 9, size=(6, 1, 3, 3))
    dw, db = channel_weights(w, np.arange(6), 4)
    dw = dw.reshape(2, 3, 3, 4)
    assert np.array_equal(dw[1, :, :, 1], w[5, 0]) and not dw[1, :, :, 2:].any()
    assert list(db) == [0, 1, 2, 3, 4, 5, 0, 0]
    x = rng.integers(-50, 50, size=(7, 3, 2))
    d = layout.to_device(x, 4)
    assert d.shape == (2, 3, 2, 4) and d[1, 2, 1, 2] == x[6, 2, 1] and not d[1, ..., 3].any()
    assert np.array_equal(layout.from_device(d, 7, 4), x)


# ---- names ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE)
def test_names_are_sanitised(text):
    stem = layer_stem(3, text)
    assert is_safe(stem) and stem.startswith("L003") and len(stem) <= 40
    assert is_safe(clean(text))


# ---- plan rules ----------------------------------------------------------------------


def _qg(graph):
    return quantize_params(graph, quantize(graph))


def test_plan_padding_and_derived_buffers():
    g = small_graph()
    plan = make_plan(_qg(g), HwConfig(**CFG))
    c1 = plan.layers[0].args
    assert (c1["cg"], c1["cv"], c1["mg"], c1["mb_num"]) == (3, 1, 5, 2)
    d1 = plan.layers[3].args  # dense over (6, 4, 4): a 4x4 kernel on a 4x4 map
    assert (d1["k_h"], d1["k_w"], d1["out_h"], d1["cv"]) == (4, 4, 1, 2)
    assert plan.sizes["weight_buf_size"] == 2 * 4 * 4
    assert plan.kernels == ["mem_read", "conv_core", "mem_write", "pool"]
    assert plan.data_bits == 8


def test_concat_is_addressing_with_nested_offsets():
    b = Builder("cat", (4, 6, 6), seed=1)
    a = b.conv(GRAPH_INPUT, 3, 3)
    c = b.conv(GRAPH_INPUT, 5, 1)
    inner = b.concat(a, c)
    d = b.conv(inner, 2, 3)
    b.concat(d, inner)
    plan = make_plan(_qg(b.build()), HwConfig(**CFG))
    views = [lp.output for lp in plan.layers]
    outer = views[4]
    assert views[3] == views[4] == outer and outer.c_off == 0  # d at offset 0 of the outer buffer
    assert views[2].buf == outer.buf and views[2].c_off == 2  # inner after d's 2 channels
    assert (views[0].c_off, views[1].c_off) == (2, 5)
    assert plan.buffers[outer.buf].c == 10


def test_plan_rejects_unsupported_structures():
    b = Builder("twice", (4, 6, 6), seed=1)
    a = b.conv(GRAPH_INPUT, 3, 3)
    b.concat(a, a)
    # a tensor claimed twice: the view-copy pass gives the second claim its own copy
    plan = make_plan(_qg(add_view_copies(b.build())), HwConfig(**CFG))
    assert [lp.ir_kind for lp in plan.layers] == ["conv", "act", "concat"]
    assert (plan.layers[0].output.c_off, plan.layers[1].output.c_off) == (0, 3)
    b = Builder("inp", (4, 6, 6), seed=1)
    a = b.conv(GRAPH_INPUT, 3, 3)
    b.concat(a, GRAPH_INPUT)
    with pytest.raises(ModelError, match="graph input"):
        make_plan(_qg(b.build()), HwConfig(**CFG))
    b = Builder("add5", (4, 6, 6), seed=1)
    xs = [b.conv(GRAPH_INPUT, 4, 1) for _ in range(5)]
    b.add(*xs)
    with pytest.raises(ModelError, match="at most 4"):
        make_plan(_qg(b.build()), HwConfig(**CFG))


@pytest.mark.parametrize("bad", [{"vec_size": 0, "lane_num": 4, "conv_gp_size_x": 1},
                                 {"vec_size": 4, "lane_num": "8", "conv_gp_size_x": 1}])
def test_bad_hw_params(bad):
    with pytest.raises(ConfigError):
        load_config(bad, "a10")


def test_missing_hw_keys_take_the_board_defaults():
    # one config type, one rule: compile, estimate and explore all fill missing keys from the board
    cfg = load_config({"vec_size": 4, "lane_num": 4}, "a10")
    assert cfg.conv_gp_size_x == load_config(None, "a10").conv_gp_size_x


def test_templates_use_strict_undefined():
    env = environment()
    with pytest.raises(jinja2.UndefinedError):
        env.get_template("host/layers.h.j2").render(banner="x")


# ---- project files -------------------------------------------------------------------


def test_project_contents_and_model_copy(tmp_path):
    g = small_graph()
    fm = quantize(g)
    out = compile_project(g, fm, "a10", CFG, tmp_path / "p")
    files = tree(out)
    for f in ["Makefile", "README.md", "device/cnn2gate.cl", "host/main.cpp", "host/layers.h",
              "golden/input.bin", "golden/input.npy", "golden/output.bin", "golden/output.npy",
              "weights/L000_c1.w.bin", "weights/L000_c1.b.bin", "golden/layers/L003_d1.npy", "model/model.json"]:
        assert f in files, f
    mk = files["Makefile"].decode()
    for target in ("emulator:", "report:", "hardware:", "host:", "-march=emulator", "-rtl -report", "-board=$(BOARD)"):
        assert target in mk
    # weights: [G][MB][CV][kh][kw][L][V] int8 -> 1*2*1*3*3*3*4 bytes for c1
    assert len(files["weights/L000_c1.w.bin"]) == 2 * 3 * 3 * 3 * 4
    assert len(files["weights/L000_c1.b.bin"]) == 2 * 3 * 4
    # the stored model re-simulates to the golden output
    g2, fm2 = load_model(out)
    x = np.load(out / "golden" / "input.npy")
    sim = simulate(g2, fm2, x * 2.0 ** -fm.input.frac)
    assert np.array_equal(sim.output_int.reshape(np.load(out / "golden/output.npy").shape), np.load(out / "golden/output.npy"))


def test_compile_is_deterministic(tmp_path):
    g = small_graph()
    fm = quantize(g)
    a = tree(compile_project(g, fm, "a10", CFG, tmp_path / "a"))
    b = tree(compile_project(g, fm, "a10", CFG, tmp_path / "b"))
    assert a == b


def test_no_overwrite_without_force(tmp_path):
    g = small_graph()
    fm = quantize(g)
    out = compile_project(g, fm, "a10", CFG, tmp_path / "p")
    (out / "marker").write_text("old")
    with pytest.raises(OutputError, match="--force"):
        compile_project(g, fm, "a10", CFG, out)
    assert (out / "marker").exists()
    compile_project(g, fm, "a10", CFG, out, force=True)
    assert not (out / "marker").exists() and (out / "device" / "cnn2gate.cl").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def test_failure_mid_render_leaves_nothing(tmp_path, monkeypatch):
    g = small_graph()
    fm = quantize(g)
    calls = {"n": 0}
    real = project._write_file

    def failing(path, data):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(project, "_write_file", failing)
    with pytest.raises(OutputError, match="No space left"):
        compile_project(g, fm, "a10", CFG, tmp_path / "p")
    assert list(tmp_path.iterdir()) == []
    # with --force an existing project survives a failed replacement untouched
    monkeypatch.setattr(project, "_write_file", real)
    out = compile_project(g, fm, "a10", CFG, tmp_path / "p")
    before = tree(out)
    calls["n"] = 0
    monkeypatch.setattr(project, "_write_file", failing)
    with pytest.raises(OutputError):
        compile_project(g, fm, "a10", {**CFG, "lane_num": 5}, out, force=True)
    assert tree(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def hostile_graph():
    g = small_graph(names=HOSTILE[:4], name=HOSTILE[4])
    for layer, text in zip(g.layers, HOSTILE[3:]):
        layer.source = text + " */ source"
    g.meta["note"] = HOSTILE[5]
    return g


def test_hostile_names_never_reach_generated_text(tmp_path):
    g = hostile_graph()
    fm = quantize(g)
    out = compile_project(g, fm, "a10", CFG, tmp_path / "p")
    files = tree(out)
    fragments = ['quote"', "name's", "end */", "#define X 1", "#include <stdlib.h>", "$(shell rm", "`id`",
                 "x" * 40, "*/ source"]
    for path, data in files.items():
        if path.endswith((".bin", ".npy")):
            continue
        if path.startswith("facts/") or path.startswith("report."):
            # data for people, not source: JSON-escaped, and HTML-escaped in the report
            assert "<script" not in data.decode("utf-8")
            continue
        text = data.decode("ascii")  # every generated source file is pure ASCII
        for frag in fragments:
            assert frag not in text, (path, frag)
        assert "\r" not in text
    assert all(is_safe(Path(p).name.split(".")[0]) for p in files)


# ---- CLI -----------------------------------------------------------------------------


@pytest.mark.skipif(not DIGITS.exists(), reason="examples/digits/digits_cnn.onnx not generated")
def test_cli_compile(tmp_path):
    out = tmp_path / "proj"
    args = ["compile", str(DIGITS), "--board", "a10", "--calib", str(ROOT / "examples/digits/calib_x.npy"), "-o", str(out)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert (out / "device" / "cnn2gate.cl").exists()
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and "--force" in r.output
    cfg = tmp_path / "hw.json"
    cfg.write_text('{"vec_size": 2, "lane_num": 5}')
    r = CliRunner().invoke(main, args + ["--force", "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    assert "#define LANE_NUM 5" in (out / "device" / "cnn2gate.cl").read_text()
    cfg.write_text('{"vec_size": 2, "lanes": 5}')
    r = CliRunner().invoke(main, args + ["--force", "--config", str(cfg)])
    assert r.exit_code == 2 and "lanes" in r.output
