"""Formats file: JSON round trip, validation against the graph, PipeCNN table import."""
import json

import numpy as np
import pytest

from cnn2gate.errors import FormatsError
from cnn2gate.ir.layers import GRAPH_INPUT
from cnn2gate.quant import Formats, QFormat, in_formats, load_formats, quantize
from cnn2gate.zoo import Builder


def small_graph():
    b = Builder("g", (3, 8, 8), 0)
    a = b.conv(GRAPH_INPUT, 4, 3, name="c1")
    p = b.pool(a, "max", 2, name="p1")
    x = b.conv(p, 4, 1, pad=0, name="c2")
    y = b.conv(p, 4, 1, pad=0, name="c3")
    cat = b.concat(x, y, name="cat")
    b.dense(cat, 5, name="fc")
    return b.build(softmax=True)


def doc(graph):
    return quantize(graph, np.random.default_rng(0).standard_normal((4, 3, 8, 8)), method="maxabs").to_dict()


def test_qformat_validation():
    assert QFormat(8, -3).max_value == 127 * 8
    for bits in (1, 17):
        with pytest.raises(ValueError):
            QFormat(bits, 0)
    with pytest.raises(ValueError):
        QFormat(8, 65)
    with pytest.raises(ValueError):
        QFormat(8.0, 1)
    assert str(QFormat(8, 7)) == "Q(8,7)"


def test_round_trip_through_json(tmp_path):
    g = small_graph()
    fm = Formats.from_dict(doc(g), g)
    path = tmp_path / "f.json"
    fm.to_json(path)
    d = json.loads(path.read_text())
    assert set(d["layers"]["c1"]) >= {"w_bits", "w_frac", "a_bits", "a_frac", "max_abs", "sqnr_db"}
    assert "w_bits" not in d["layers"]["p1"]
    assert d["input"] == {"bits": 8, "frac": fm.input.frac}
    back = load_formats(path, g)
    assert back.input == fm.input
    assert {n: (lf.out, lf.weight) for n, lf in back.layers.items()} == {n: (lf.out, lf.weight) for n, lf in fm.layers.items()}
    assert in_formats(back, g, "cat") == [back.out("c2"), back.out("c3")]
    assert back.in_formats(g, g.layer("c1")) == [back.input]
    assert not list(tmp_path.glob(".f.json*"))  # no temporary left behind


@pytest.mark.parametrize("edit,match", [
    (lambda d: d["layers"].update(ghost={"a_bits": 8, "a_frac": 0}), "unknown layer.*ghost"),
    (lambda d: d["layers"].pop("c2"), "layer c2: missing"),
    (lambda d: d["layers"]["c1"].update(a_bits=17), "layer c1.*bits"),
    (lambda d: d["layers"]["c1"].update(w_bits=1), "layer c1.*bits"),
    (lambda d: d["input"].update(bits=20), "input.*bits"),
    (lambda d: d["layers"]["p1"].update(w_bits=8, w_frac=7), "layer p1.*no weights"),
    (lambda d: d["layers"]["c1"].pop("w_frac"), "layer c1.*w_bits and w_frac"),
    (lambda d: d["layers"]["c2"].update(a_frac=d["layers"]["c2"]["a_frac"] + 1), "layer cat: concat inputs"),
    (lambda d: d["layers"]["p1"].update(a_frac=d["layers"]["p1"]["a_frac"] - 1), "layer p1: a max pool keeps"),
    (lambda d: d["layers"]["c1"].update(w_frac=-20), "layer c1: weights: frac -20 cannot represent"),
    (lambda d: d["layers"]["c1"].update(w_frac=40), "layer c1: weights: frac 40 cannot represent"),
    (lambda d: d["layers"]["fc"].update(a_frac=-30), "layer fc: output: frac -30 cannot represent"),
    (lambda d: d.pop("layers"), "missing key 'layers'"),
    (lambda d: d["layers"]["c1"].update(a_frac="x"), "layer c1"),
])
def test_validation_errors_name_the_file_and_layer(tmp_path, edit, match):
    g = small_graph()
    d = doc(g)
    edit(d)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    with pytest.raises(FormatsError, match=match) as err:
        load_formats(path, g)
    assert str(path) in str(err.value)


def test_unreadable_files(tmp_path):
    g = small_graph()
    with pytest.raises(FormatsError, match="no such formats file"):
        load_formats(tmp_path / "none.json", g)
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(FormatsError, match="cannot read"):
        load_formats(tmp_path / "x.json", g)


def chain():
    b = Builder("alex-ish", (3, 16, 16), 0)
    a = b.conv(GRAPH_INPUT, 4, 3, name="conv1")
    p = b.pool(a, "max", 2, name="pool1")
    n = b.lrn(p, 5, name="norm1")
    c = b.conv(n, 4, 3, name="conv2")
    b.dense(c, 3, name="fc")
    return b.build()


def test_pipecnn_table_import():
    g = chain()
    fm = Formats.from_dict({"pipecnn": [[8, 0, -4], [8, 0, -2], [10, -2, 0]]}, g)
    assert fm.input == QFormat(8, 0)
    assert fm.layers["conv1"].weight == QFormat(8, 8) and fm.out("conv1") == QFormat(8, -4)
    assert fm.out("pool1") == QFormat(8, -4)  # max pool keeps its format
    assert fm.out("norm1") == QFormat(8, 0)  # LRN rescales to the next layer's frac_din
    assert fm.out("fc") == QFormat(8, 0) and fm.layers["fc"].weight == QFormat(8, 10)
    assert fm.stats["imported_from"] == "pipecnn"


def test_pipecnn_table_errors():
    g = chain()
    with pytest.raises(FormatsError, match="one .* row per conv/dense layer \\(3\\)"):
        Formats.from_dict({"pipecnn": [[8, 0, -4]]}, g)
    with pytest.raises(FormatsError, match="layer fc: pipecnn frac_din 1 but its input conv2 is Q\\(8,-2\\)"):
        Formats.from_dict({"pipecnn": [[8, 0, -4], [8, 0, -2], [10, 1, 0]]}, g)
    with pytest.raises(FormatsError, match="layer conv2: pipecnn row"):
        Formats.from_dict({"pipecnn": [[8, 0, -4], [8, 0], [10, -2, 0]]}, g)
