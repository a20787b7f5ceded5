"""Graph shapes: a tensor in several addressed buffers (DenseNet), zero padding before a max pool."""
from __future__ import annotations


import numpy as np
import pytest

from cnn2gate.codegen.plan import make_plan
from cnn2gate.emulate import emulate_project, emulator_available
from cnn2gate.frontend import load_model
from cnn2gate.hw.config import HwConfig
from cnn2gate.ir import GRAPH_INPUT
from cnn2gate.ir.copies import add_view_copies
from cnn2gate.pipeline import compile_project
from cnn2gate.quant import quantize
from cnn2gate.quant.params import quantize_params
from cnn2gate.sim import simulate
from cnn2gate.zoo import Builder
from onnx_builders import parity

_OK, _WHY = emulator_available()
_skip = pytest.mark.skipif(not _OK, reason=f"Intel FPGA emulation runtime unavailable: {_WHY}")


def needs_emulator(test):
    return pytest.mark.emulator(_skip(test))


CFG = {"vec_size": 4, "lane_num": 4, "conv_gp_size_x": 3}
TIMEOUT = 240
TOL = 1e-4


def dense_block_graph():
    """Every layer's output joins every later join, the graph input included."""
    b = Builder("dblock", (4, 8, 8), seed=6)
    x0 = b.conv(GRAPH_INPUT, 6, 3, act="relu")
    y1 = b.conv(x0, 3, 3, act="leaky")
    c1 = b.concat(x0, y1)
    y2 = b.conv(c1, 3, 3, act="relu")
    c2 = b.concat(x0, y1, y2)
    y3 = b.conv(c2, 3, 3, act="relu")
    c3 = b.concat(GRAPH_INPUT, x0, y1, y2, y3)
    t = b.pool(b.conv(c3, 5, 1, act="relu"), "avg", 2)
    b.concat(t, t)
    return b.build()


def test_view_copies_make_shared_tensors_compile():
    raw = dense_block_graph()
    g = add_view_copies(raw)
    copies = [layer for layer in g if layer.name not in raw]
    # c2 extends c1 and c3 extends c2, so they nest (ir/copies.py nest_extending_joins) and x0, y1, y2
    # are claimed once; the input (never in a join's buffer) and t (twice in one join) are copied
    c1, c2, c3, _ = [layer for layer in g if layer.kind == "concat"]
    assert c2.inputs == [c1.name, raw.layers[3].name] and c3.inputs[1:] == [c2.name, raw.layers[5].name]
    assert [layer.inputs[0] for layer in copies] == [GRAPH_INPUT, raw.layers[8].name]
    assert all(layer.kind == "act" and layer.act == "none" for layer in copies)
    assert add_view_copies(g) is g
    plan = make_plan(quantize_params(g, quantize(g)), HwConfig(**CFG))
    placed = [(v.buf, v.c_off) for lp in plan.layers for v in [lp.output]]
    by_name = dict(zip([layer.name for layer in g], placed))
    # one tensor, one place: every copy lands somewhere else than its input
    for layer in copies:
        src = layer.inputs[0]
        assert by_name[layer.name] != (0, 0) if src == GRAPH_INPUT else by_name[layer.name] != by_name[src]
    # the copies are identities: the float graph and the integer simulation agree with the graph without them
    x = np.random.default_rng(1).uniform(-1, 1, (2,) + g.input_shape).astype(np.float32)
    from cnn2gate.ir.reference import predict

    assert np.array_equal(predict(g, x), predict(raw, x))
    ours, theirs = simulate(g, quantize(g, x), x), simulate(raw, quantize(raw, x), x)
    assert np.array_equal(ours.values[g.output], theirs.values[raw.output])


def test_a_join_nests_into_one_later_join_only():
    """Two joins extend the same one: the first nests it, the second copies what it shares; a
    join of the same tensors in another order is no extension."""
    b = Builder("fork", (4, 6, 6), seed=2)
    x, y = b.conv(GRAPH_INPUT, 3, 3, act="relu"), b.conv(GRAPH_INPUT, 2, 1, act="relu")
    base = b.concat(x, y)
    z = b.conv(base, 2, 3, act="relu")
    first, second, swapped = b.concat(x, y, z), b.concat(x, y, b.conv(z, 3, 1)), b.concat(y, x)
    b.add(b.conv(first, 4, 1), b.conv(second, 4, 1), b.conv(swapped, 4, 1))
    raw = b.build()
    g = add_view_copies(raw)
    assert g.layer(first).inputs == [base, z]
    assert [s.removeprefix(x).removeprefix(y) for s in g.layer(second).inputs[:2]] == ["_copy", "_copy"]
    assert [s.rstrip("0123456789") for s in g.layer(swapped).inputs] == [f"{y}_copy", f"{x}_copy"]
    make_plan(quantize_params(g, quantize(g)), HwConfig(**CFG))  # every tensor in one place
    x_in = np.random.default_rng(3).uniform(-1, 1, (2,) + g.input_shape).astype(np.float32)
    ours, theirs = simulate(g, quantize(g, x_in), x_in), simulate(raw, quantize(raw, x_in), x_in)
    assert np.array_equal(ours.values[g.output], theirs.values[raw.output])


@needs_emulator
def test_dense_block_bit_exact(tmp_path):
    g = add_view_copies(dense_block_graph())
    out = compile_project(g, quantize(g), "a10", CFG, tmp_path / "p")
    x = np.random.default_rng(5).uniform(-1, 1, (2,) + g.input_shape)
    res = emulate_project(out, x, timeout=TIMEOUT, dump_dir=tmp_path / "dump")
    assert res.passed, res.summary()
    assert not any(res.layer_mismatches.values()), res.layer_mismatches


# -- ONNX models from torch ---------------------------------------------------------------
torch = pytest.importorskip("torch")
nn = torch.nn
from torch_export import export_torch  # noqa: E402  (needs torch)


def export(model, shape, path) -> str:
    return export_torch(model, shape, path)


class DenseLayer(nn.Module):
    def __init__(self, cin, growth):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, 2 * growth, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(2 * growth), nn.Conv2d(2 * growth, growth, 3, padding=1, bias=False)

    def forward(self, feats):
        x = torch.cat(feats, 1)  # as torchvision's DenseNet: every earlier output joins again
        x = self.conv1(torch.relu(self.bn1(x)))
        return self.conv2(torch.relu(self.bn2(x)))


class TinyDenseNet(nn.Module):
    """DenseNet-121's structure at toy size: stem, dense blocks, transitions with avg pool."""

    def __init__(self, growth=4, blocks=(3, 2), stem=8, classes=5):
        super().__init__()
        self.stem = nn.Conv2d(3, stem, 3, padding=1, bias=False)
        self.blocks, self.trans = nn.ModuleList(), nn.ModuleList()
        c = stem
        for i, n in enumerate(blocks):
            self.blocks.append(nn.ModuleList(DenseLayer(c + j * growth, growth) for j in range(n)))
            c += n * growth
            if i < len(blocks) - 1:
                self.trans.append(nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c // 2, 1, bias=False),
                                                nn.AvgPool2d(2, 2)))
                c //= 2
        self.bn = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, classes)
        with torch.no_grad():  # non-trivial batch-norm statistics
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 1.5)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.2, 0.2)

    def forward(self, x):
        x = self.stem(x)
        for i, block in enumerate(self.blocks):
            feats = [x]
            for layer in block:
                feats.append(layer(feats))
            x = torch.cat(feats, 1)
            if i < len(self.trans):
                x = self.trans[i](x)
        x = torch.relu(self.bn(x)).mean((2, 3))
        return self.fc(x)


@pytest.fixture(scope="module")
def densenet(tmp_path_factory):
    torch.manual_seed(3)
    path = export(TinyDenseNet(), (3, 16, 16), tmp_path_factory.mktemp("dn") / "densenet.onnx")
    return path, load_model(path)


def test_densenet_parses_matches_and_simulates(densenet):
    path, g = densenet
    # every join of a block extends the one before: nested, no copies (ir/copies.py)
    assert not any(layer.name.endswith("_copy") for layer in g)
    joins = [layer for layer in g if layer.kind == "concat"]
    assert sum(len(layer.inputs) == 2 and g.layer(layer.inputs[0]).kind == "concat" for layer in joins) >= 3
    assert parity(g, path) < TOL
    x = np.random.default_rng(2).standard_normal((2,) + g.input_shape).astype(np.float32)
    fm = quantize(g, x)
    sim = simulate(g, fm, x)
    assert sim.values[g.output].shape[0] == 2
    make_plan(quantize_params(g, fm), HwConfig(**CFG))


@needs_emulator
def test_densenet_bit_exact(tmp_path, densenet):
    _, g = densenet
    out = compile_project(g, quantize(g), "a10", CFG, tmp_path / "p")
    x = np.random.default_rng(5).standard_normal((2,) + g.input_shape)
    res = emulate_project(out, x, timeout=TIMEOUT, dump_dir=tmp_path / "dump")
    assert res.passed, res.summary()
    assert not any(res.layer_mismatches.values()), res.layer_mismatches


class PadPool(nn.Module):
    """tiny-YOLO's last pool: zero padding on the bottom and right, then a stride-1 max pool."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.head = nn.Conv2d(6, 4, 1)

    def forward(self, x):
        x = nn.functional.leaky_relu(self.conv(x), 0.1)  # negative values: zero padding can win
        x = nn.functional.max_pool2d(nn.functional.pad(x, (0, 1, 0, 1)), 2, stride=1)
        return self.head(x)


@pytest.fixture(scope="module")
def padpool(tmp_path_factory):
    torch.manual_seed(4)
    path = export(PadPool(), (3, 7, 7), tmp_path_factory.mktemp("pp") / "padpool.onnx")
    return path, load_model(path)


def test_zero_pad_before_max_pool(padpool):
    import onnx

    path, g = padpool
    assert "Pad" in {n.op_type for n in onnx.load(path).graph.node}
    pads = [layer for layer in g if layer.kind == "pool" and layer.mode == "avg"]
    assert len(pads) == 1 and pads[0].kernel == (1, 1) and pads[0].pads == (0, 0, 1, 1) and pads[0].count_include_pad
    assert parity(g, path) < TOL
    (mp,) = [layer for layer in g if layer.kind == "pool" and layer.mode == "max"]
    assert mp.pads == (0, 0, 0, 0) and mp.inputs == [pads[0].name]
    # the zero padding matters here: the max pool's own (-inf) padding gives another border
    import dataclasses

    from cnn2gate.ir.layers import Graph
    from cnn2gate.ir.reference import predict

    inf_pool = dataclasses.replace(mp, inputs=pads[0].inputs, in_shapes=pads[0].in_shapes, pads=(0, 0, 1, 1))
    inf = Graph(g.name, g.input_shape, [inf_pool if layer is mp else layer for layer in g if layer is not pads[0]],
                g.output)
    x = np.random.default_rng(0).standard_normal((1,) + g.input_shape).astype(np.float32)
    assert not np.allclose(predict(inf, x), predict(g, x))
    fm = quantize(g, x)
    for p in ("fast", "reference"):
        assert simulate(g, fm, x, path=p).values[g.output].shape == (1, 4, 7, 7)


@needs_emulator
def test_zero_pad_before_max_pool_bit_exact(tmp_path, padpool):
    _, g = padpool
    out = compile_project(g, quantize(g), "a10", CFG, tmp_path / "p")
    x = np.random.default_rng(5).standard_normal((2,) + g.input_shape)
    res = emulate_project(out, x, timeout=TIMEOUT, dump_dir=tmp_path / "dump")
    assert res.passed, res.summary()
    assert not any(res.layer_mismatches.values()), res.layer_mismatches
