"""Shape-only IR graphs of classic CNNs, for cost models, benchmarks and tests.

Weights are zero-stride numpy views (`np.broadcast_to`), so even VGG-16's 138 M
parameters take no memory: the graphs carry shapes, not values, and must not be run.
"""
from __future__ import annotations

import numpy as np

from ..ir.layers import GRAPH_INPUT, LRN, Add, Conv, Dense, Graph, Pool, conv_out_size

_ZERO = np.float32(0.0)


def _w(*shape: int) -> np.ndarray:
    return np.broadcast_to(_ZERO, shape)


class _Builder:
    def __init__(self, name: str, input_shape: tuple[int, int, int]):
        self.name = name
        self.input_shape = input_shape
        self.layers = []
        self.shapes = {GRAPH_INPUT: input_shape}
        self.last = GRAPH_INPUT

    def _add(self, layer):
        self.layers.append(layer)
        self.shapes[layer.name] = tuple(layer.out_shape)
        self.last = layer.name
        return layer.name

    def conv(self, name, out_ch, k, stride=1, pad=0, groups=1, act="relu", src=None):
        src = src or self.last
        c, h, w = self.shapes[src]
        oh, ow = conv_out_size(h, k, stride, pad, pad), conv_out_size(w, k, stride, pad, pad)
        return self._add(Conv(name=name, inputs=[src], in_shapes=[(c, h, w)], out_shape=(out_ch, oh, ow), act=act,
                              weight=_w(out_ch, c // groups, k, k), bias=_w(out_ch), stride=(stride, stride),
                              pads=(pad, pad, pad, pad), groups=groups))

    def pool(self, name, k, stride, pad=0, mode="max", src=None):
        src = src or self.last
        c, h, w = self.shapes[src]
        if mode == "global_avg":
            return self._add(Pool(name=name, inputs=[src], in_shapes=[(c, h, w)], out_shape=(c, 1, 1), mode=mode))
        oh, ow = conv_out_size(h, k, stride, pad, pad), conv_out_size(w, k, stride, pad, pad)
        return self._add(Pool(name=name, inputs=[src], in_shapes=[(c, h, w)], out_shape=(c, oh, ow), mode=mode,
                              kernel=(k, k), stride=(stride, stride), pads=(pad, pad, pad, pad)))

    def lrn(self, name, size=5):
        shape = self.shapes[self.last]
        return self._add(LRN(name=name, inputs=[self.last], in_shapes=[shape], out_shape=shape, size=size))

    def add(self, name, a, b, act="relu"):
        shape = self.shapes[a]
        return self._add(Add(name=name, inputs=[a, b], in_shapes=[shape, self.shapes[b]], out_shape=shape, act=act))

    def dense(self, name, out, act="relu"):
        shape = self.shapes[self.last]
        k = int(np.prod(shape))
        return self._add(Dense(name=name, inputs=[self.last], in_shapes=[shape], out_shape=(out,), act=act,
                               weight=_w(out, k), bias=_w(out)))

    def graph(self) -> Graph:
        g = Graph(self.name, self.input_shape, self.layers, self.last, softmax=True)
        g.validate()
        return g


def alexnet() -> Graph:
    """Caffe AlexNet (227x227, grouped conv2/4/5), PipeCNN's layer order: conv, pool, LRN."""
    b = _Builder("alexnet", (3, 227, 227))
    b.conv("conv1", 96, 11, stride=4)
    b.pool("pool1", 3, 2)
    b.lrn("norm1")
    b.conv("conv2", 256, 5, pad=2, groups=2)
    b.pool("pool2", 3, 2)
    b.lrn("norm2")
    b.conv("conv3", 384, 3, pad=1)
    b.conv("conv4", 384, 3, pad=1, groups=2)
    b.conv("conv5", 256, 3, pad=1, groups=2)
    b.pool("pool5", 3, 2)
    b.dense("fc6", 4096)
    b.dense("fc7", 4096)
    b.dense("fc8", 1000, act="none")
    return b.graph()


def vgg16() -> Graph:
    b = _Builder("vgg16", (3, 224, 224))
    for stage, (ch, n) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)], start=1):
        for i in range(1, n + 1):
            b.conv(f"conv{stage}_{i}", ch, 3, pad=1)
        b.pool(f"pool{stage}", 2, 2)
    b.dense("fc6", 4096)
    b.dense("fc7", 4096)
    b.dense("fc8", 1000, act="none")
    return b.graph()


def resnet18() -> Graph:
    b = _Builder("resnet18", (3, 224, 224))
    b.conv("conv1", 64, 7, stride=2, pad=3)
    x = b.pool("pool1", 3, 2, pad=1)
    cin = 64
    for stage, ch in enumerate([64, 128, 256, 512], start=1):
        for blk in range(2):
            stride = 2 if stage > 1 and blk == 0 else 1
            p = f"l{stage}b{blk}"
            b.conv(f"{p}_c1", ch, 3, stride=stride, pad=1, src=x)
            y = b.conv(f"{p}_c2", ch, 3, pad=1, act="none")
            short = b.conv(f"{p}_down", ch, 1, stride=stride, act="none", src=x) if stride != 1 or cin != ch else x
            x = b.add(f"{p}_add", y, short)
            cin = ch
    b.pool("gap", 1, 1, mode="global_avg")
    b.dense("fc", 1000, act="none")
    return b.graph()


def mobilenet_v2() -> Graph:
    b = _Builder("mobilenet_v2", (3, 224, 224))
    x = b.conv("conv_stem", 32, 3, stride=2, pad=1, act="relu6")
    cin = 32
    for i, (t, c, n, s) in enumerate([(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                                      (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]):
        for j in range(n):
            stride = s if j == 0 else 1
            p = f"b{i}_{j}"
            hidden = cin * t
            if t != 1:
                b.conv(f"{p}_expand", hidden, 1, act="relu6", src=x)
            b.conv(f"{p}_dw", hidden, 3, stride=stride, pad=1, groups=hidden, act="relu6")
            y = b.conv(f"{p}_project", c, 1, act="none")
            x = b.add(f"{p}_add", y, x, act="none") if stride == 1 and cin == c else y
            cin = c
    b.conv("conv_head", 1280, 1, act="relu6", src=x)
    b.pool("gap", 1, 1, mode="global_avg")
    b.dense("fc", 1000, act="none")
    return b.graph()


NETS = {"alexnet": alexnet, "vgg16": vgg16, "resnet18": resnet18, "mobilenet_v2": mobilenet_v2}
