"""The facts contract (write_fact / read_facts), and a complete synthetic facts folder
that the other report tests build from."""
from __future__ import annotations

import json
import math
import os
import random

import numpy as np
import pytest

from cnn2gate.report import FACTS, ReportError, fact_path, read_facts, write_fact

LAYERS = [
    # name, kind, detail, act, in_shape, out_shape, params, macs
    ("conv1", "conv", "3x3/1", "relu", [3, 32, 32], [16, 32, 32], 448, 442368),
    ("pool1", "pool", "max 2x2/2", "none", [16, 32, 32], [16, 16, 16], 0, 0),
    ("conv2", "conv", "3x3/1", "relu", [16, 16, 16], [32, 16, 16], 4640, 1179648),
    ("conv2_dw", "conv", "3x3/1 dw", "relu6", [32, 16, 16], [32, 16, 16], 320, 73728),
    ("conv3", "conv", "1x1/1", "none", [32, 16, 16], [32, 16, 16], 1056, 262144),
    ("res", "add", "", "relu", [[32, 16, 16], [32, 16, 16]], [32, 16, 16], 0, 0),
    ("gap", "pool", "global avg", "none", [32, 16, 16], [32, 1, 1], 0, 0),
    ("fc", "dense", "", "none", [32], [10], 330, 320),
]


def sample_facts(seed: int = 7) -> dict:
    """A complete, self-consistent set of facts for an eight-layer network on a made-up board."""
    model = {
        "model": "tinynet", "input_shape": [3, 32, 32], "output": "fc", "softmax_on_host": True,
        "layers": [{"name": n, "kind": k, "detail": d, "inputs": [], "act": a, "in_shape": i, "out_shape": o,
                    "params": p, "macs": m} for n, k, d, a, i, o, p, m in LAYERS],
        "total_params": sum(row[6] for row in LAYERS), "total_macs": sum(row[7] for row in LAYERS),
    }
    formats = {"input": {"bits": 8, "frac": 7},
               "layers": {n: {"w_bits": 8, "w_frac": 7 - i % 3, "a_bits": 8, "a_frac": 4 - i % 2, "max_abs": 3.5}
                          for i, (n, *_rest) in enumerate(LAYERS)}}
    sim = [{"name": n, "sqnr_db": None if k == "pool" and d.startswith("max") else 42.0 - 3.1 * i,
            "saturations": (3 if n == "conv2" else 0), "acc_bits": 14 + i, "acc_bits_worst": 18 + i}
           for i, (n, k, d, *_rest) in enumerate(LAYERS)]
    peak, bandwidth = 1500.0, 17.0
    est_layers = []
    for i, (n, k, _d, _a, _i, out, _p, macs) in enumerate(LAYERS):
        ops = 2 * macs if macs else int(np.prod(out))
        nbytes = 4096 + 2 * int(np.prod(out)) + (macs // 50)
        intensity = ops / nbytes
        gops = min(peak * (0.35 + 0.05 * i), bandwidth * intensity)
        ms = ops / (gops * 1e6)
        est_layers.append({"name": n, "kind": k, "cycles": int(ms * 2.5e5), "ms": ms,
                           "bound": "memory" if bandwidth * intensity < peak * (0.35 + 0.05 * i) else "compute",
                           "ops": ops, "bytes": nbytes, "intensity": intensity})
    total_ms = sum(e["ms"] for e in est_layers)
    estimate = {
        "board": "a10", "config": {"vec_size": 16, "lane_num": 8, "conv_gp_size_x": 7, "fmax_mhz": 250},
        "layers": est_layers, "total_ms": total_ms, "gops": 2 * model["total_macs"] / (total_ms * 1e6),
        "resources": {"dsp": {"used": 1342, "available": 1518, "pct": 88.4},
                      "alm": {"used": 201000, "available": 427200, "pct": 47.05},
                      "ram_blocks": {"used": 1400, "available": 2713, "pct": 51.6}},
        "fits": True, "peak_gops": peak, "mem_bandwidth_gbs": bandwidth,
    }
    rng = random.Random(seed)
    history = []
    for index in range(60):
        vec, lanes = rng.choice([4, 8, 16]), rng.choice([2, 4, 8, 16, 32])
        dsp = vec * lanes * 5 + 40
        ms = 2.0 * 4096 / (vec * lanes) ** 0.9 * (1 + 0.15 * rng.random())
        history.append({"index": index, "agent": "ppo" if index % 3 else "random",
                        "config": {"vec_size": vec, "lane_num": lanes, "conv_gp_size_x": 7},
                        "total_ms": ms, "fits": dsp <= 1518, "fidelity": "model",
                        "dsp": dsp, "alm": 90000 + 700 * vec * lanes + rng.randrange(5000)})
    fitting = [h for h in history if h["fits"]]
    best = min(fitting, key=lambda h: h["total_ms"])
    explore = {"agent": "ppo", "budget": 60, "seed": seed,
               "best": {**best["config"], "total_ms": best["total_ms"]}, "history": history,
               "pareto": _front(fitting)}
    emulation = {"verdict": "PASS", "elements": 10 * 16, "mismatches": 0, "first_mismatches": [],
                 "images": 16, "accuracy": 0.9375, "seconds": 12.5, "runtime": "Intel(R) FPGA Emulation Platform"}
    return {"model": model, "formats": formats, "sim": sim, "estimate": estimate, "explore": explore,
            "emulation": emulation}


def _front(designs: list[dict]) -> list[dict]:
    """Designs not beaten on both latency and DSP use (computed here independently of the report code)."""
    return [d for d in designs
            if not any(o["total_ms"] <= d["total_ms"] and o["dsp"] <= d["dsp"]
                       and (o["total_ms"], o["dsp"]) != (d["total_ms"], d["dsp"]) for o in designs)]


def write_sample(folder, only=None, seed: int = 7) -> dict:
    """Write the sample facts (or just those named in `only`) into folder/facts; return them."""
    facts = sample_facts(seed)
    for name, doc in facts.items():
        if only is None or name in only:
            write_fact(folder, name, doc)
    return facts


def test_write_fact_is_deterministic_sorted_and_atomic(tmp_path):
    doc = {"verdict": "PASS", "mismatches": np.int64(0), "elements": 30, "seconds": math.inf,
           "first_mismatches": [{"z": np.int64(3), "y": np.float32(0.5), "arr": np.arange(3)}]}
    path = write_fact(tmp_path, "emulation", doc)
    assert path == tmp_path / "facts" / "emulation.json"
    text = path.read_text()
    assert text == json.dumps({"elements": 30, "first_mismatches": [{"arr": [0, 1, 2], "y": 0.5, "z": 3}],
                               "mismatches": 0, "seconds": None, "verdict": "PASS"},
                              indent=2, sort_keys=True) + "\n"
    write_fact(tmp_path, "emulation.json", doc)
    assert path.read_text() == text
    assert sorted(os.listdir(tmp_path / "facts")) == ["emulation.json"], "a temporary file was left behind"


def test_write_fact_rejects_unknown_names_and_values(tmp_path):
    with pytest.raises(ReportError, match="unknown fact 'latency'"):
        write_fact(tmp_path, "latency", {})
    with pytest.raises(ReportError, match="object is not JSON-serialisable"):
        write_fact(tmp_path, "model", {"x": object()})
    with pytest.raises(ReportError, match="missing keys 'model', 'input_shape'"):
        write_fact(tmp_path, "model", {"x": 1})
    assert not (tmp_path / "facts" / "model.json").exists()


def test_sample_round_trips_through_read_facts(tmp_path):
    facts = write_sample(tmp_path)
    assert set(facts) == set(FACTS)
    back = read_facts(tmp_path)
    assert back["estimate"]["layers"][0]["name"] == "conv1"
    assert back["sim"][1]["sqnr_db"] is None
    assert json.loads(json.dumps(facts["model"])) == back["model"]


@pytest.mark.parametrize("name, mutate, message", [
    ("estimate", lambda d: d.pop("peak_gops"), "missing key 'peak_gops'"),
    ("estimate", lambda d: d["layers"][2].update(bound="io"), "entry 2: bound 'io'"),
    ("estimate", lambda d: d["layers"][0].update(ms="fast"), "'ms' must be a number"),
    ("estimate", lambda d: d["resources"].pop("alm"), "missing key 'alm'"),
    ("model", lambda d: d["layers"][1].pop("out_shape"), "entry 1: missing key 'out_shape'"),
    ("formats", lambda d: d["layers"]["conv1"].pop("a_frac"), "layer 'conv1': missing key 'a_frac'"),
    ("emulation", lambda d: d.update(verdict="OK"), "verdict 'OK'"),
    ("explore", lambda d: d["history"][5].pop("index"), "entry 5: missing key 'index'"),
    ("explore", lambda d: d["history"][6].update(fits="yes"), "entry 6: 'fits' must be true or false"),
    ("formats", lambda d: d["layers"]["fc"].update(w_bits=7.5), "layer 'fc': 'w_bits' must be an integer"),
])
def test_facts_breaking_the_contract_are_refused_naming_file_and_key(tmp_path, name, mutate, message):
    facts = write_sample(tmp_path)
    good = fact_path(tmp_path, name).read_text()
    mutate(facts[name])
    with pytest.raises(ReportError) as err:  # the writer finds out first ...
        write_fact(tmp_path, name, facts[name])
    assert message in str(err.value) and str(fact_path(tmp_path, name)) in str(err.value)
    assert fact_path(tmp_path, name).read_text() == good, "a refused fact must not replace the old one"

    fact_path(tmp_path, name).write_text(json.dumps(facts[name]))  # ... and a reader of a hand-made file too
    with pytest.raises(ReportError) as err:
        read_facts(tmp_path)
    assert message in str(err.value) and str(fact_path(tmp_path, name)) in str(err.value)


def test_read_facts_rejects_broken_json(tmp_path):
    write_sample(tmp_path, only={"model"})
    fact_path(tmp_path, "sim").write_text("[{\"name\": ")
    with pytest.raises(ReportError, match=r"sim\.json is not valid JSON"):
        read_facts(tmp_path)
