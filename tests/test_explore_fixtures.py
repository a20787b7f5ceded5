"""Shared pieces of the explore tests: a tiny model, a synthetic cost model and its space.

The synthetic cost model has the shape of the real one (more parallelism is faster and
uses more DSPs and logic; wider data costs DSPs) but is cheap and independent of
cnn2gate.hw, so the agents can be checked exactly against an exhaustive optimum.
"""
from __future__ import annotations

import numpy as np

from cnn2gate.explore.evaluator import Cost
from cnn2gate.explore.space import DesignSpace, build_space
from cnn2gate.ir.layers import Graph
from cnn2gate.ops import Conv, Dense, Pool

LEGAL = {"vec_size": [1, 2, 4, 8, 16], "lane_num": [1, 2, 4, 8, 16, 32], "conv_gp_size_x": [1, 2, 4, 7],
         "fc_batch": [1, 2, 4]}
INITIAL = {"vec_size": 4, "lane_num": 4, "conv_gp_size_x": 1, "fc_batch": 1}


def tiny_graph(seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)

    def w(*shape):
        fan_in = int(np.prod(shape[1:]))
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    c1 = Conv(name="conv1", inputs=["input"], in_shapes=[(1, 12, 12)], out_shape=(8, 12, 12), act="relu",
              weight=w(8, 1, 3, 3), bias=np.zeros(8, np.float32), pads=(1, 1, 1, 1))
    p1 = Pool(name="pool1", inputs=["conv1"], in_shapes=[(8, 12, 12)], out_shape=(8, 6, 6), mode="max",
              kernel=(2, 2), stride=(2, 2))
    c2 = Conv(name="conv2", inputs=["pool1"], in_shapes=[(8, 6, 6)], out_shape=(16, 6, 6), act="relu",
              weight=w(16, 8, 3, 3), bias=np.zeros(16, np.float32), pads=(1, 1, 1, 1))
    p2 = Pool(name="pool2", inputs=["conv2"], in_shapes=[(16, 6, 6)], out_shape=(16, 3, 3), mode="max",
              kernel=(2, 2), stride=(2, 2))
    d1 = Dense(name="fc", inputs=["pool2"], in_shapes=[(16, 3, 3)], out_shape=(10,),
               weight=w(10, 144), bias=np.zeros(10, np.float32))
    g = Graph("tiny", (1, 12, 12), [c1, p1, c2, p2, d1], "fc")
    g.validate()
    return g


def synthetic_cost(config: dict, bits: dict | None = None) -> Cost:
    v, lane, gp, fb = config["vec_size"], config["lane_num"], config["conv_gp_size_x"], config["fc_batch"]
    wmax = max((b["w_bits"] for b in bits.values()), default=8) if bits else 8
    amax = max((b["a_bits"] for b in bits.values()), default=8) if bits else 8
    width = max(wmax, amax)
    per_dsp = 2 if width <= 8 else 1
    dsp = v * lane / per_dsp + 4 * gp
    alm = 400 * v + 250 * lane + 900 * gp + 150 * fb + 20 * width * lane
    ram = 4 * lane + 8 * gp + 6 * fb
    conv_ms = 50.0 / (v * lane) * (1 + 0.6 / gp) + 0.05 * gp
    dense_w = sum(b["w_bits"] for b in bits.values()) / len(bits) if bits else 8
    fc_ms = 4.0 * dense_w / 8 / fb + 0.3 * fb
    res = {"dsp": 100 * dsp / 96, "alm": 100 * alm / 20000, "ram_blocks": 100 * ram / 200}
    return Cost(conv_ms + fc_ms, all(p <= 100 for p in res.values()), res)


def synthetic_space(graph=None, precision: bool = False) -> DesignSpace:
    graph = graph or tiny_graph()
    return build_space(graph, None, precision=precision, legal=LEGAL, initial_config=INITIAL)


def test_synthetic_space_shape():
    space = synthetic_space()
    assert space.size == 5 * 6 * 4 * 3
    assert space.config(space.initial) == INITIAL
    joint = synthetic_space(precision=True)
    assert len(joint.knobs) == 4 + 2 * 3 and joint.has_precision
    assert joint.precision(joint.initial)["conv1"] == {"w_bits": 8, "a_bits": 8}
