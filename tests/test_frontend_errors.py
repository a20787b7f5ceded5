"""Bad input: every problem is one ModelError naming the file (or node), never a raw exception."""
from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cnn2gate.errors import ModelError
from cnn2gate.frontend import SUPPORTED_OPS, convert, load_model
import onnx_builders as B


def _save(model, path) -> str:
    path.write_bytes(model.SerializeToString())
    return str(path)


def _small(b=None):
    """conv → relu → flatten → gemm, the smallest complete model."""
    b = b or B.GraphBuilder("small")
    x = b.node("Relu", [b.conv("data", 3, 4, 3, "conv")], name="relu")
    x = b.node("Flatten", [x], name="flatten")
    return b, b.node("Gemm", [x, b.weight("fc.w", (5, 4 * 6 * 6)), b.weight("fc.b", (5,))], name="fc", transB=1)


def small_model():
    b, out = _small()
    return b.build([1, 3, 8, 8], out)


# -- files that are not (whole) models ----------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="no such file") as e:
        load_model(tmp_path / "nope.onnx")
    assert "nope.onnx" in str(e.value)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.onnx"
    p.write_bytes(b"")
    with pytest.raises(ModelError, match="empty") as e:
        load_model(p)
    assert "empty.onnx" in str(e.value)


def test_truncated_file(tmp_path):
    data = small_model().SerializeToString()
    p = tmp_path / "cut.onnx"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError) as e:
        load_model(p)
    assert "cut.onnx" in str(e.value) and e.value.__class__ is ModelError


def test_text_file(tmp_path):
    p = tmp_path / "notes.onnx"
    p.write_text("this is not an onnx model, just some text that happens to be long enough\n" * 3)
    with pytest.raises(ModelError, match="notes.onnx"):
        load_model(p)


def test_directory_is_rejected(tmp_path):
    with pytest.raises(ModelError, match="directory"):
        load_model(tmp_path)


# -- unsupported content ------------------------------------------------------------

def test_all_unsupported_nodes_listed_in_one_error():
    b = B.GraphBuilder("unsupported")
    x = b.conv("data", 3, 4, 3, "conv")
    x = b.node("Sin", [x], name="weird_sin")
    x = b.node("Cos", [x], name="weird_cos")  # (HardSigmoid is supported now)
    model = b.build([1, 3, 8, 8], x)
    with pytest.raises(ModelError) as e:
        convert(model, source="two_bad.onnx")
    msg = str(e.value)
    assert msg.startswith("two_bad.onnx: 2 unsupported nodes")
    assert "'weird_sin' (Sin)" in msg and "'weird_cos' (Cos)" in msg
    assert "supported ONNX ops: " + ", ".join(SUPPORTED_OPS) in msg


def test_unfusable_activation_and_misplaced_softmax():
    b = B.GraphBuilder("unfusable")
    c = b.conv("data", 3, 4, 3, "conv")
    r = b.node("Relu", [c], name="relu")  # conv's output is also read by the Add below
    s = b.node("Softmax", [r], name="early_softmax", axis=1)
    x = b.node("Add", [s, c], name="add")
    model = b.build([1, 3, 8, 8], x)
    with pytest.raises(ModelError) as e:
        convert(model)
    msg = str(e.value)
    assert "(Relu)" not in msg  # an activation its producer cannot take becomes a layer of its own
    assert "'early_softmax' (Softmax): Softmax is only supported as the last node" in msg


def test_non_channel_concat_rejected():
    b = B.GraphBuilder("concat_w")
    c = b.conv("data", 3, 4, 3, "conv")
    model = b.build([1, 3, 8, 8], b.node("Concat", [c, c], name="cat_w", axis=3))
    with pytest.raises(ModelError, match="'cat_w' \\(Concat\\): only channel concatenation"):
        convert(model)


# -- shapes -----------------------------------------------------------------------

def dynamic_model():
    return B.with_symbolic_dims(small_model(), {0: "N", 2: "H", 3: "W"})


def test_dynamic_shape_needs_input_shape(tmp_path):
    path = _save(dynamic_model(), tmp_path / "dyn.onnx")
    with pytest.raises(ModelError, match="--input-shape C,H,W") as e:
        load_model(path)
    assert "dyn.onnx" in str(e.value) and "?x3x?x?" in str(e.value)


def test_dynamic_shape_with_input_shape(tmp_path):
    model = dynamic_model()
    path = _save(model, tmp_path / "dyn.onnx")
    g = load_model(path, input_shape=(3, 8, 8))
    assert g.input_shape == (3, 8, 8)
    assert B.parity(g, path) < 1e-4


def test_input_shape_conflict(tmp_path):
    path = _save(dynamic_model(), tmp_path / "dyn.onnx")
    with pytest.raises(ModelError, match="conflicts"):
        load_model(path, input_shape=(4, 8, 8))


def test_wrong_input_shape_fails_cleanly(tmp_path):
    # 6x6 input: the dense layer's weights no longer fit the flattened size
    path = _save(dynamic_model(), tmp_path / "dyn.onnx")
    with pytest.raises(ModelError, match="dyn.onnx"):
        load_model(path, input_shape=(3, 6, 6))


def test_zero_sized_input(tmp_path):
    model = small_model()
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 0
    with pytest.raises(ModelError, match="zero"):
        convert(model)


def test_multiple_inputs_and_outputs():
    model = small_model()
    extra = helper.make_tensor_value_info("second", TensorProto.FLOAT, [1, 3, 8, 8])
    two_in = onnx.ModelProto()
    two_in.CopyFrom(model)
    two_in.graph.input.append(extra)
    with pytest.raises(ModelError, match="exactly one graph input.*'data', 'second'"):
        convert(two_in)
    two_out = onnx.ModelProto()
    two_out.CopyFrom(model)
    two_out.graph.output.append(helper.make_tensor_value_info("relu_out", TensorProto.FLOAT, [1, 4, 6, 6]))
    with pytest.raises(ModelError, match="exactly one graph output"):
        convert(two_out)


# -- weights ----------------------------------------------------------------------

def test_nan_weights_named():
    model = small_model()
    for t in model.graph.initializer:
        if t.name == "conv.w":
            w = numpy_helper.to_array(t).copy()
            w[0, 0, 0, 0] = np.nan
            w[1, 0, 0, 0] = np.inf
            t.CopyFrom(numpy_helper.from_array(w, name="conv.w"))
    with pytest.raises(ModelError, match="initializer 'conv.w' \\(read by 'conv'\\) holds 2 NaN/Inf values"):
        convert(model, source="nan.onnx")


# -- external data ----------------------------------------------------------------

def _external_model(folder, location: str):
    """small_model with its first weight stored externally at `location` (relative to folder)."""
    model = small_model()
    t = model.graph.initializer[0]
    raw = numpy_helper.to_array(t).tobytes()
    t.ClearField("float_data")
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(len(raw)))):
        entry = t.external_data.add()
        entry.key, entry.value = k, v
    return model, raw


def test_external_data_inside_folder_loads(tmp_path):
    model, raw = _external_model(tmp_path, "weights.bin")
    (tmp_path / "weights.bin").write_bytes(raw)
    path = _save(model, tmp_path / "ext.onnx")
    g = load_model(path)
    assert g.layers[0].kind == "conv"
    assert B.parity(g, small_model()) < 1e-4


@pytest.mark.parametrize("location", ["../secret.bin", "sub/../../secret.bin", "/etc/passwd"])
def test_external_data_escaping_folder_refused(tmp_path, location):
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\0" * 4096)
    model, _ = _external_model(folder, location)
    path = _save(model, folder / "ext.onnx")
    with pytest.raises(ModelError, match="refused|outside") as e:
        load_model(path)
    assert "ext.onnx" in str(e.value) and "conv.w" in str(e.value)


def test_external_data_symlink_escaping_folder_refused(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\0" * 4096)
    os.symlink(tmp_path / "secret.bin", folder / "weights.bin")
    model, _ = _external_model(folder, "weights.bin")
    path = _save(model, folder / "ext.onnx")
    with pytest.raises(ModelError, match="outside the model's folder"):
        load_model(path)


def test_external_data_missing_file(tmp_path):
    model, _ = _external_model(tmp_path, "gone.bin")
    path = _save(model, tmp_path / "ext.onnx")
    with pytest.raises(ModelError, match="not found"):
        load_model(path)


def test_convert_does_not_modify_the_callers_model():
    model = small_model()
    before = model.SerializeToString()
    convert(model)
    assert model.SerializeToString() == before


def test_unexpected_library_errors_become_model_errors(tmp_path, monkeypatch):
    """Whatever onnx or numpy throw deep inside is reported as the model's fault, with the file name."""
    path = _save(small_model(), tmp_path / "fine.onnx")

    def broken(*args, **kwargs):
        raise KeyError("something deep inside onnx")

    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", broken)
    with pytest.raises(ModelError, match="fine.onnx: cannot convert the model \\(KeyError") as e:
        load_model(path)
    assert isinstance(e.value.__cause__, KeyError)
