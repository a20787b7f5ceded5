"""`cnn2gate inspect MODEL [--json]` through click's CliRunner."""
from __future__ import annotations

import json

from click.testing import CliRunner

from cnn2gate.cli import main
import onnx_builders as B


def _write(tmp_path, model, name="net.onnx") -> str:
    p = tmp_path / name
    p.write_bytes(model.SerializeToString())
    return str(p)


def test_inspect_json(tmp_path):
    path = _write(tmp_path, B.resnet_block())
    result = CliRunner().invoke(main, ["inspect", path, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["model"] == "resnet_block"
    assert {"name", "kind", "in_shape", "out_shape", "params", "macs"} <= set(doc["layers"][0])
    assert [layer["kind"] for layer in doc["layers"]][-2:] == ["pool", "dense"]
    assert doc["layers"][0]["in_shape"] == [3, 16, 16] and doc["layers"][0]["out_shape"] == [8, 16, 16]
    assert doc["total_params"] == sum(layer["params"] for layer in doc["layers"]) > 0
    assert doc["total_macs"] == sum(layer["macs"] for layer in doc["layers"])
    assert doc["layers"][0]["macs"] == 8 * 3 * 9 * 16 * 16


def test_inspect_table(tmp_path):
    path = _write(tmp_path, B.caffe2_alexnet_like(opset=8))
    result = CliRunner().invoke(main, ["inspect", path])
    assert result.exit_code == 0, result.output
    assert "norm1" in result.stdout and "lrn" in result.stdout
    assert "(+ softmax on the host)" in result.stdout


def test_inspect_bad_file_exits_2(tmp_path):
    p = tmp_path / "broken.onnx"
    p.write_text("definitely not a protobuf model file, but long enough to parse")
    result = CliRunner().invoke(main, ["inspect", str(p)])
    assert result.exit_code == 2
    assert "broken.onnx" in result.stderr and result.stderr.startswith("error: ")
    assert result.stdout == ""


def test_inspect_dynamic_model_with_input_shape(tmp_path):
    path = _write(tmp_path, B.with_symbolic_dims(B.resnet_block(), {0: "N", 2: "H", 3: "W"}), "dyn.onnx")
    result = CliRunner().invoke(main, ["inspect", path, "--json"])
    assert result.exit_code == 2 and "--input-shape" in result.stderr
    result = CliRunner().invoke(main, ["inspect", path, "--json", "--input-shape", "3,32,32"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["layers"][0]["in_shape"] == [3, 32, 32]
