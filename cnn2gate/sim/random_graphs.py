"""Hand-built IR graphs with random weights: for tests and benchmarks without ONNX files."""
from __future__ import annotations

import math

import numpy as np

from ..ir.layers import GRAPH_INPUT, LRN, Add, Concat, Conv, Dense, Graph, Pool


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


class Builder:
    """Append layers one by one; shapes are inferred, weights drawn He-style from rng."""

    def __init__(self, name: str, input_shape, seed: int = 0):
        self.name = name
        self.input_shape = tuple(input_shape)
        self.rng = np.random.default_rng(seed)
        self.layers = []
        self._shapes = {GRAPH_INPUT: self.input_shape}

    def _add(self, cls, name, inputs, **kw):
        name = name or f"{cls.kind}{len(self.layers)}"
        layer = cls(name=name, inputs=list(inputs), in_shapes=[self._shapes[s] for s in inputs], out_shape=(), **kw)
        layer.out_shape = tuple(layer.infer_shape())
        self.layers.append(layer)
        self._shapes[name] = layer.out_shape
        return name

    def shape(self, name: str):
        return self._shapes[name]

    def conv(self, src, m, k=3, stride=1, pad=None, dilation=1, groups=1, act="relu", alpha=0.1,
             name=None, weight=None, bias=None):
        c = self._shapes[src][0]
        kh, kw = _pair(k)
        if pad is None:
            pad = (kh // 2, kw // 2, kh // 2, kw // 2)
        elif isinstance(pad, int):
            pad = (pad,) * 4
        fan_in = c // groups * kh * kw
        if weight is None:
            weight = (self.rng.standard_normal((m, c // groups, kh, kw)) * math.sqrt(2.0 / fan_in)).astype(np.float32)
        if bias is None:
            bias = (self.rng.standard_normal(m) * 0.05).astype(np.float32)
        return self._add(Conv, name, [src], weight=weight, bias=bias, stride=_pair(stride), pads=tuple(pad),
                         dilation=_pair(dilation), groups=groups, act=act, alpha=alpha)

    def dense(self, src, m, act="none", alpha=0.1, name=None):
        k = int(np.prod(self._shapes[src]))
        weight = (self.rng.standard_normal((m, k)) * math.sqrt(2.0 / k)).astype(np.float32)
        bias = (self.rng.standard_normal(m) * 0.05).astype(np.float32)
        return self._add(Dense, name, [src], weight=weight, bias=bias, act=act, alpha=alpha)

    def pool(self, src, mode="max", k=2, stride=None, pad=0, count_include_pad=False, act="none", name=None):
        if isinstance(pad, int):
            pad = (pad,) * 4
        stride = k if stride is None else stride
        return self._add(Pool, name, [src], mode=mode, kernel=_pair(k), stride=_pair(stride), pads=tuple(pad),
                         count_include_pad=count_include_pad, act=act)

    def lrn(self, src, size=5, alpha=1e-4, beta=0.75, bias=1.0, name=None):
        return self._add(LRN, name, [src], size=size, lrn_alpha=alpha, beta=beta, bias=bias)

    def add(self, *srcs, act="none", name=None):
        return self._add(Add, name, list(srcs), act=act)

    def concat(self, *srcs, name=None):
        return self._add(Concat, name, list(srcs))

    def build(self, output=None, softmax=False) -> Graph:
        g = Graph(self.name, self.input_shape, self.layers, output or self.layers[-1].name, softmax=softmax)
        g.validate()
        return g


def vgg16(input_size: int = 224, num_classes: int = 1000, seed: int = 0) -> Graph:
    b = Builder("vgg16", (3, input_size, input_size), seed)
    x = GRAPH_INPUT
    for i, (m, reps) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]):
        for j in range(reps):
            x = b.conv(x, m, 3, name=f"conv{i + 1}_{j + 1}")
        x = b.pool(x, "max", 2, name=f"pool{i + 1}")
    x = b.dense(x, 4096, act="relu", name="fc6")
    x = b.dense(x, 4096, act="relu", name="fc7")
    b.dense(x, num_classes, name="fc8")
    return b.build(softmax=True)


def resnet18(input_size: int = 224, num_classes: int = 1000, seed: int = 0) -> Graph:
    b = Builder("resnet18", (3, input_size, input_size), seed)
    x = b.conv(GRAPH_INPUT, 64, 7, stride=2, pad=3, name="conv1")
    x = b.pool(x, "max", 3, stride=2, pad=1, name="pool1")
    for stage, m in enumerate([64, 128, 256, 512]):
        for blk in range(2):
            stride = 2 if stage > 0 and blk == 0 else 1
            pre = f"l{stage + 1}.{blk}"
            y = b.conv(x, m, 3, stride=stride, pad=1, name=f"{pre}.conv1")
            y = b.conv(y, m, 3, pad=1, act="none", name=f"{pre}.conv2")
            short = x
            if stride != 1 or b.shape(x)[0] != m:
                short = b.conv(x, m, 1, stride=stride, pad=0, act="none", name=f"{pre}.down")
            x = b.add(y, short, act="relu", name=f"{pre}.add")
    x = b.pool(x, "global_avg", name="gap")
    b.dense(x, num_classes, name="fc")
    return b.build(softmax=True)
