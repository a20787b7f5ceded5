"""`simulate --input DIR`: a folder of .npy shards, read shard by shard, same results as the whole array."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from cnn2gate.batch import InternalBatch, as_batch
from cnn2gate.cli import main
from cnn2gate.executor import LocalExecutor, SerialExecutor
from cnn2gate.frontend import load_model
from cnn2gate.quant import quantize, quantize_params
from cnn2gate.shards import ShardSet
from cnn2gate.sim.batches import simulate_batches

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits" / "digits_cnn.onnx"
DIGITS_X = ROOT / "examples" / "digits" / "test_x.npy"
SPLITS = (100, 137)  # shards of 100, 37 and 223 inputs: boundaries inside chunks of 16


@pytest.fixture
def shards(tmp_path):
    x = np.load(DIGITS_X)
    folder = tmp_path / "shards"
    folder.mkdir()
    for name, part in zip(("a", "b", "c"), np.split(x, SPLITS)):
        np.save(folder / f"{name}.npy", part)
    return x, folder


def _cli(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    return res


@pytest.mark.parametrize("extra", [(), ("--ints",)])
def test_shard_folder_gives_the_concatenated_result_bit_for_bit(tmp_path, shards, extra):
    x, folder = shards
    whole = _cli("simulate", DIGITS, "--input", DIGITS_X, "-o", tmp_path / "all.npy", "--batch-size", 16, "--json",
                 *extra)
    parts = _cli("simulate", DIGITS, "--input", folder, "-o", tmp_path / "out", "--batch-size", 16, "--json", *extra)
    assert whole.exit_code == 0 and parts.exit_code == 0, whole.output + parts.output
    doc = json.loads(parts.stdout)
    assert doc["inputs"] == len(x)
    assert [s["output"] for s in doc["shards"]] == [[str(tmp_path / "out" / f"{n}.npy")] for n in "abc"]
    ys = [np.load(tmp_path / "out" / f"{n}.npy") for n in "abc"]
    assert [len(y) for y in ys] == [100, 37, 223]
    want = np.load(tmp_path / "all.npy")
    got = np.concatenate(ys)
    assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
    assert doc["warnings"] == json.loads(whole.stdout)["warnings"]


def test_shard_statistics_match_the_whole_array(shards):
    x, folder = shards
    g = load_model(str(DIGITS))
    qg = quantize_params(g, quantize(g, x[:64].astype(np.float64)))
    whole = simulate_batches(g, qg, x.astype(np.float64), batch_size=16)
    s = ShardSet(g, folder)
    assert len(s) == len(x) and s.lengths == [100, 37, 223]
    got = []
    part = simulate_batches(g, qg, s, batch_size=16, on_outputs=lambda outs: got.append(outs[0]))
    assert part.stats == whole.stats and part.warnings == whole.warnings
    assert np.concatenate(got).tobytes() == whole.outputs.tobytes()


def test_slices_cross_shard_boundaries_and_keep_the_layout_tag(tmp_path):
    # a channels-last model: each slice is converted once and tagged as already converted
    model = SimpleNamespace(input_shape=(2, 3, 3), input_layout="NHWC", declared_input_shape=(3, 3, 2))
    x = np.random.default_rng(0).standard_normal((7, 3, 3, 2)).astype(np.float32)
    (tmp_path / "s").mkdir()
    np.save(tmp_path / "s" / "0.npy", x[:3])
    np.save(tmp_path / "s" / "1.npy", x[3:])
    s = ShardSet(model, tmp_path / "s")
    got = s[2:6]
    assert isinstance(got, InternalBatch) and got.shape == (4, 2, 3, 3)
    assert np.array_equal(got, as_batch(model, x)[2:6])
    assert s.shape == (7, 3, 3, 2)


def _error(tmp_path, folder):
    res = _cli("simulate", DIGITS, "--input", folder, "-o", tmp_path / "out")
    assert res.exit_code == 2, res.output
    assert not (tmp_path / "out").exists()
    return res.output


def test_an_empty_folder_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "holds no .npy shards" in _error(tmp_path, tmp_path / "empty")


def test_a_file_that_is_not_npy_is_named(tmp_path, shards):
    _, folder = shards
    (folder / "notes.txt").write_text("x")
    assert f"{folder / 'notes.txt'}: not a .npy file" in _error(tmp_path, folder)


def test_a_shard_with_another_sample_shape_is_named(tmp_path, shards):
    _, folder = shards
    np.save(folder / "d.npy", np.zeros((4, 1, 8, 9), np.float32))
    out = _error(tmp_path, folder)
    assert f"{folder / 'd.npy'}: samples have shape (1, 8, 9)" in out and "a.npy" in out


def test_a_shard_that_does_not_suit_the_model_is_named(tmp_path):
    (tmp_path / "s").mkdir()
    np.save(tmp_path / "s" / "a.npy", np.zeros((4, 3, 8, 8), np.float32))
    out = _error(tmp_path, tmp_path / "s")
    assert f"{tmp_path / 's' / 'a.npy'}: samples have shape (3, 8, 8)" in out


def test_a_pickled_or_broken_shard_is_named(tmp_path, shards):
    _, folder = shards
    (folder / "b.npy").write_bytes(b"not an array")
    assert f"{folder / 'b.npy'}: cannot read input shard" in _error(tmp_path, folder)


def test_a_nan_in_a_later_shard_is_named(tmp_path, shards):
    x, folder = shards
    bad = np.load(folder / "c.npy")
    bad[5, 0, 0, 0] = np.nan
    np.save(folder / "c.npy", bad)
    res = _cli("simulate", DIGITS, "--input", folder, "-o", tmp_path / "out", "-q")
    assert res.exit_code == 2 and f"{folder / 'c.npy'}: contains NaN" in res.output, res.output


def test_output_must_be_a_folder(tmp_path, shards):
    _, folder = shards
    res = _cli("simulate", DIGITS, "--input", folder, "-o", tmp_path / "y.npy")
    assert res.exit_code == 2 and "must name a folder" in res.output, res.output


@pytest.mark.parametrize("make", [lambda: SerialExecutor(None), lambda: LocalExecutor(2)])
def test_imap_reads_tasks_only_a_window_ahead(make):
    read = []

    def tasks():
        for i in range(50):
            read.append(i)
            yield i

    with make() as ex:
        got = []
        for r in ex.imap(abs, tasks(), window=4):
            got.append(r)
            assert len(read) - len(got) <= 4  # tasks held (submitted, not yet taken)
    assert got == list(range(50))


def test_quantize_calib_folder_writes_the_concatenated_formats_file(tmp_path, shards, monkeypatch):
    import importlib

    calibrate = importlib.import_module("cnn2gate.quant.calibrate")
    g = load_model(str(DIGITS))
    monkeypatch.setattr(calibrate, "BATCH_MACS", 48 * g.total_macs())  # batches of 48 cross the shard boundaries
    _, folder = shards
    files = {}
    for name, calib in (("whole", DIGITS_X), ("shards", folder)):
        files[name] = tmp_path / f"{name}.json"
        res = _cli("quantize", DIGITS, "--calib", calib, "-q", "-o", files[name])
        assert res.exit_code == 0, res.output
    assert files["whole"].read_bytes() == files["shards"].read_bytes()
    (folder / "extra.csv").write_text("1,2")
    res = _cli("quantize", DIGITS, "--calib", folder, "-q", "-o", tmp_path / "bad.json")
    assert res.exit_code == 2 and f"{folder / 'extra.csv'}: not a .npy file" in res.output, res.output


def test_several_outputs_give_a_folder_per_shard(tmp_path):
    from test_multi_output import SHAPE, export

    path = export(tmp_path, "legacy")
    x = np.random.default_rng(2).uniform(-1, 1, (5,) + SHAPE).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "s").mkdir()
    np.save(tmp_path / "s" / "p0.npy", x[:2])
    np.save(tmp_path / "s" / "p1.npy", x[2:])
    whole = _cli("simulate", path, "--input", tmp_path / "x.npy", "-o", tmp_path / "whole", "-q", "--batch-size", 3)
    parts = _cli("simulate", path, "--input", tmp_path / "s", "-o", tmp_path / "out", "--json", "--batch-size", 3)
    assert whole.exit_code == 0 and parts.exit_code == 0, whole.output + parts.output
    doc = json.loads(parts.stdout)
    assert [s["output"] for s in doc["shards"]] == [[str(tmp_path / "out" / p / f"output_{i}.npy") for i in range(2)]
                                                    for p in ("p0", "p1")]
    for i in range(2):
        got = np.concatenate([np.load(tmp_path / "out" / p / f"output_{i}.npy") for p in ("p0", "p1")])
        assert got.tobytes() == np.load(tmp_path / "whole" / f"output_{i}.npy").tobytes()
