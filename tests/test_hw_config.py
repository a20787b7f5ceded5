"""Hardware config: loading, defaults, errors, legal values."""
import json

import numpy as np
import pytest

from cnn2gate.errors import ConfigError
from cnn2gate.hw import HwConfig, check_config, default_config, legal_values, load_board, load_config
from cnn2gate.zoo import NETS, alexnet, resnet18
from cnn2gate.ir.layers import Graph
from cnn2gate.ops import Add, Conv


def test_missing_keys_take_board_defaults():
    c = load_config({"lane_num": 12}, "a10")
    d = load_board("a10").defaults
    assert (c.vec_size, c.lane_num, c.conv_gp_size_x, c.fc_batch, c.fmax_mhz) == (d["vec_size"], 12, d["conv_gp_size_x"], 1, None)
    assert load_config(None, "de1soc") == HwConfig.defaults("de1soc") == default_config(None, "de1soc")


def test_json_file_round_trip(tmp_path):
    c = HwConfig(8, 24, 5, fc_batch=4, fmax_mhz=200.0)
    path = tmp_path / "hw.json"
    path.write_text(c.to_json())
    assert load_config(str(path), "a10") == c
    assert json.loads(c.to_json()) == {"vec_size": 8, "lane_num": 24, "conv_gp_size_x": 5, "fc_batch": 4, "fmax_mhz": 200.0}
    assert "fmax_mhz" not in HwConfig(8, 8, 7).to_dict()


def test_unknown_key_is_an_error(tmp_path):
    path = tmp_path / "hw.json"
    path.write_text(json.dumps({"vec_size": 8, "lanes": 4}))
    with pytest.raises(ConfigError, match=r"hw.json: unknown key\(s\) lanes; known keys: vec_size"):
        load_config(str(path), "a10")


@pytest.mark.parametrize("changes, match", [
    ({"vec_size": 3}, "vec_size=3 must be a power of two"),
    ({"vec_size": 128}, "vec_size=128 is outside 1..64"),
    ({"lane_num": 0}, "lane_num=0 is outside 1..128"),
    ({"lane_num": 129}, "lane_num=129"),
    ({"conv_gp_size_x": 17}, "conv_gp_size_x=17"),
    ({"fc_batch": 32}, "fc_batch=32"),
    ({"lane_num": 8.0}, "lane_num must be an integer"),
    ({"vec_size": True}, "vec_size must be an integer"),
    ({"fmax_mhz": 0}, "fmax_mhz must be a number"),
])
def test_bad_values_name_the_option(changes, match):
    with pytest.raises(ConfigError, match=match):
        load_config(changes, "a10")


def test_missing_or_invalid_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(str(tmp_path / "none.json"), "a10")
    bad = tmp_path / "bad.json"
    bad.write_text("{vec_size: 8}")
    with pytest.raises(ConfigError, match="invalid JSON"):
        load_config(str(bad), "a10")
    arr = tmp_path / "arr.json"
    arr.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        load_config(str(arr), "a10")


@pytest.mark.parametrize("net", sorted(NETS))
def test_legal_values_pass_the_checks(net):
    g = NETS[net]()
    for board in ("de1soc", "a10", "s10"):
        legal = legal_values(g, board)
        assert set(legal) == {"vec_size", "lane_num", "conv_gp_size_x", "fc_batch"}
        for values in legal.values():
            assert values == sorted(set(values)) and values
        for v in legal["vec_size"]:
            for n in (legal["lane_num"][0], legal["lane_num"][-1]):
                check_config(g, HwConfig(v, n, legal["conv_gp_size_x"][-1], legal["fc_batch"][-1]))


def test_legal_values_follow_model_and_board():
    legal = legal_values(alexnet(), "a10")
    assert legal["vec_size"] == [1, 2, 4, 8, 16, 32, 64]  # widest group has 384 channels
    assert legal["lane_num"][-1] == 128 and 24 in legal["lane_num"] and 12 not in legal["lane_num"]
    assert legal["conv_gp_size_x"] == list(range(1, 17))
    small = legal_values(alexnet(), "de1soc")
    assert max(small["lane_num"]) <= load_board("de1soc").dsp_blocks
    assert legal_values(resnet18(), "a10")["fc_batch"] == [1, 2, 4, 8, 16]


def test_legal_values_small_model_caps_waste():
    w = np.broadcast_to(np.float32(0), (6, 3, 3, 3))
    conv = Conv(name="c", inputs=["input"], in_shapes=[(3, 10, 10)], out_shape=(6, 8, 8), weight=w,
                bias=np.zeros(6, np.float32))
    legal = legal_values(Graph("tiny", (3, 10, 10), [conv], "c"), "a10")
    assert legal["vec_size"] == [1, 2, 4] and legal["lane_num"] == [1, 2, 4, 8]
    assert legal["conv_gp_size_x"] == list(range(1, 9)) and legal["fc_batch"] == [1]


def test_check_config_rejects_wide_adds():
    shape = (4, 2, 2)
    w = np.broadcast_to(np.float32(0), (4, 4, 1, 1))
    layers = [Conv(name=f"c{i}", inputs=["input"], in_shapes=[shape], out_shape=shape, weight=w,
                   bias=np.zeros(4, np.float32)) for i in range(5)]
    layers.append(Add(name="sum5", inputs=[f"c{i}" for i in range(5)], in_shapes=[shape] * 5, out_shape=shape))
    g = Graph("wide", shape, layers, "sum5")
    with pytest.raises(ConfigError, match="layer sum5: an add of 5 inputs"):
        check_config(g, HwConfig(4, 4, 2))
