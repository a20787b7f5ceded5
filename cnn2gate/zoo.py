"""IR graphs built in code, for tests, benchmarks and the cost models (no ONNX file needed).

`Builder` appends layers one by one and infers their shapes. Its weights are either
drawn He-style from a seeded generator, or, with shape_only=True, zero-stride numpy
views (`np.broadcast_to`) that take no memory: such graphs carry shapes, not values,
and must not be run. `NETS` holds the classic CNNs, shape-only unless given a seed.
"""
from __future__ import annotations

import math

import numpy as np

from .ir.layers import GRAPH_INPUT, Graph
from .ops import LRN, Activation, Add, Concat, Conv, Dense, Mul, Pool, Resize, ZeroInsert
from .ops import Shuffle, Split

_ZERO = np.float32(0.0)


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


class Builder:
    """Append layers one by one; shapes are inferred, weights drawn He-style from rng.

    shape_only: every weight and bias is a read-only zero-stride view of 0.0 instead.
    alpha: the LeakyReLU slope of conv and dense layers that do not give one.
    """

    def __init__(self, name: str, input_shape, seed: int = 0, *, shape_only: bool = False, alpha: float = 0.1):
        self.name = name
        self.input_shape = tuple(input_shape)
        self.rng = np.random.default_rng(seed)
        self.shape_only = shape_only
        self.alpha = alpha
        self.layers = []
        self._shapes = {GRAPH_INPUT: self.input_shape}

    def _add(self, cls, name, inputs, **kw):
        name = name or f"{cls.kind}{len(self.layers)}"
        layer = cls(name=name, inputs=list(inputs), in_shapes=[self._shapes[s] for s in inputs], out_shape=(), **kw)
        layer.out_shape = tuple(layer.infer_shape())
        self.layers.append(layer)
        self._shapes[name] = layer.out_shape
        return name

    def _weight(self, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        if self.shape_only:
            return np.broadcast_to(_ZERO, shape)
        return (self.rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(np.float32)

    def _bias(self, m: int) -> np.ndarray:
        if self.shape_only:
            return np.broadcast_to(_ZERO, (m,))
        return (self.rng.standard_normal(m) * 0.05).astype(np.float32)

    def shape(self, name: str):
        return self._shapes[name]

    def conv(self, src, m, k=3, stride=1, pad=None, dilation=1, groups=1, act="relu", alpha=None,
             name=None, weight=None, bias=None):
        c = self._shapes[src][0]
        kh, kw = _pair(k)
        if pad is None:
            pad = (kh // 2, kw // 2, kh // 2, kw // 2)
        elif isinstance(pad, int):
            pad = (pad,) * 4
        if weight is None:
            weight = self._weight((m, c // groups, kh, kw), c // groups * kh * kw)
        if bias is None:
            bias = self._bias(m)
        return self._add(Conv, name, [src], weight=weight, bias=bias, stride=_pair(stride), pads=tuple(pad),
                         dilation=_pair(dilation), groups=groups, act=act,
                         alpha=self.alpha if alpha is None else alpha)

    def dense(self, src, m, act="none", alpha=None, name=None):
        k = int(np.prod(self._shapes[src]))
        weight = self._weight((m, k), k)
        bias = self._bias(m)
        return self._add(Dense, name, [src], weight=weight, bias=bias, act=act,
                         alpha=self.alpha if alpha is None else alpha)

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

    def mul(self, src, other, act="none", name=None):
        """src (a map) times other: a map of its shape, or a per-channel vector (squeeze-excitation gate)."""
        return self._add(Mul, name, [src, other], act=act)

    def resize(self, src, scale=2, act="none", name=None, mode="nearest", coord="asymmetric"):
        """Upsampling by the integer factor `scale` (or (sy, sx)) on H and W: nearest, or
        mode="linear" (bilinear) with the ONNX coordinate rule `coord`."""
        return self._add(Resize, name, [src], scale=_pair(scale), act=act, mode=mode, coord=coord)

    def conv_transpose(self, src, m, k=2, stride=2, pad=0, output_padding=0, act="relu", name=None):
        """A transposed convolution as the front end lowers it: zero insertion, then a stride-1 conv
        (random weights stand for the flipped ones; pad <= k - 1 keeps the conv's padding >= 0)."""
        (kh, kw), (sy, sx), (py, px), (oy, ox) = _pair(k), _pair(stride), _pair(pad), _pair(output_padding)
        z = self._add(ZeroInsert, None if name is None else f"{name}_zeros", [src], stride=(sy, sx))
        pads = (kh - 1 - py, kw - 1 - px, kh - 1 - py + oy, kw - 1 - px + ox)
        return self.conv(z, m, (kh, kw), 1, pads, act=act, name=name)

    def concat(self, *srcs, name=None):
        return self._add(Concat, name, list(srcs))

    def split(self, src, c_off, channels, name=None):
        """Channels [c_off, c_off + channels) of src (one output of a channel Split)."""
        return self._add(Split, name, [src], c_off=c_off, channels=channels)

    def shuffle(self, src, groups=2, name=None):
        """ShuffleNet's channel shuffle: output channel o is input (o % groups) * (C / groups) + o // groups."""
        return self._add(Shuffle, name, [src], groups=groups)

    def act(self, src, act="relu", alpha=None, name=None, fn="none", fn_alpha=0.0, fn_beta=0.0):
        """A standalone activation layer (one its producer could not take over), or the table
        function `fn` (sigmoid, tanh, hardsigmoid, hardswish, silu; `act` is then ignored)."""
        if fn != "none":
            return self._add(Activation, name, [src], fn=fn, fn_alpha=fn_alpha, fn_beta=fn_beta)
        return self._add(Activation, name, [src], act=act, alpha=self.alpha if alpha is None else alpha)

    def build(self, output=None, softmax=False) -> Graph:
        g = Graph(self.name, self.input_shape, self.layers, output or self.layers[-1].name, softmax=softmax)
        g.validate()
        return g


def _classic(name: str, input_shape, seed: int | None) -> Builder:
    """A builder for the classic nets: shape-only without a seed; no LeakyReLU anywhere."""
    return Builder(name, input_shape, 0 if seed is None else seed, shape_only=seed is None, alpha=0.0)


def _fc_head(b: Builder, x: str) -> Graph:
    """AlexNet's and VGG's classifier: fc6, fc7 (4096, ReLU), fc8 (1000 classes)."""
    x = b.dense(x, 4096, act="relu", name="fc6")
    x = b.dense(x, 4096, act="relu", name="fc7")
    b.dense(x, 1000, name="fc8")
    return b.build(softmax=True)


def alexnet(seed: int | None = None) -> Graph:
    """Caffe AlexNet (227x227, grouped conv2/4/5), PipeCNN's layer order: conv, pool, LRN."""
    b = _classic("alexnet", (3, 227, 227), seed)
    x = b.conv(GRAPH_INPUT, 96, 11, stride=4, pad=0, name="conv1")
    x = b.pool(x, "max", 3, 2, name="pool1")
    x = b.lrn(x, name="norm1")
    x = b.conv(x, 256, 5, pad=2, groups=2, name="conv2")
    x = b.pool(x, "max", 3, 2, name="pool2")
    x = b.lrn(x, name="norm2")
    x = b.conv(x, 384, 3, pad=1, name="conv3")
    x = b.conv(x, 384, 3, pad=1, groups=2, name="conv4")
    x = b.conv(x, 256, 3, pad=1, groups=2, name="conv5")
    x = b.pool(x, "max", 3, 2, name="pool5")
    return _fc_head(b, x)


def vgg16(seed: int | None = None) -> Graph:
    b = _classic("vgg16", (3, 224, 224), seed)
    x = GRAPH_INPUT
    for stage, (ch, n) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)], start=1):
        for i in range(1, n + 1):
            x = b.conv(x, ch, 3, pad=1, name=f"conv{stage}_{i}")
        x = b.pool(x, "max", 2, 2, name=f"pool{stage}")
    return _fc_head(b, x)


def resnet18(seed: int | None = None) -> Graph:
    b = _classic("resnet18", (3, 224, 224), seed)
    x = b.conv(GRAPH_INPUT, 64, 7, stride=2, pad=3, name="conv1")
    x = b.pool(x, "max", 3, 2, pad=1, name="pool1")
    cin = 64
    for stage, ch in enumerate([64, 128, 256, 512], start=1):
        for blk in range(2):
            stride = 2 if stage > 1 and blk == 0 else 1
            p = f"l{stage}b{blk}"
            y = b.conv(x, ch, 3, stride=stride, pad=1, name=f"{p}_c1")
            y = b.conv(y, ch, 3, pad=1, act="none", name=f"{p}_c2")
            short = b.conv(x, ch, 1, stride=stride, pad=0, act="none", name=f"{p}_down") \
                if stride != 1 or cin != ch else x
            x = b.add(y, short, act="relu", name=f"{p}_add")
            cin = ch
    x = b.pool(x, "global_avg", 1, 1, name="gap")
    b.dense(x, 1000, name="fc")
    return b.build(softmax=True)


def mobilenet_v2(seed: int | None = None) -> Graph:
    b = _classic("mobilenet_v2", (3, 224, 224), seed)
    x = b.conv(GRAPH_INPUT, 32, 3, stride=2, pad=1, act="relu6", name="conv_stem")
    cin = 32
    for i, (t, c, n, s) in enumerate([(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                                      (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]):
        for j in range(n):
            stride = s if j == 0 else 1
            p = f"b{i}_{j}"
            hidden = cin * t
            y = b.conv(x, hidden, 1, pad=0, act="relu6", name=f"{p}_expand") if t != 1 else x
            y = b.conv(y, hidden, 3, stride=stride, pad=1, groups=hidden, act="relu6", name=f"{p}_dw")
            y = b.conv(y, c, 1, pad=0, act="none", name=f"{p}_project")
            x = b.add(y, x, act="none", name=f"{p}_add") if stride == 1 and cin == c else y
            cin = c
    x = b.conv(x, 1280, 1, pad=0, act="relu6", name="conv_head")
    x = b.pool(x, "global_avg", 1, 1, name="gap")
    b.dense(x, 1000, name="fc")
    return b.build(softmax=True)


NETS = {"alexnet": alexnet, "vgg16": vgg16, "resnet18": resnet18, "mobilenet_v2": mobilenet_v2}
