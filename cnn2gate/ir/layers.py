"""The layer IR: one small dataclass per layer kind.

Shapes never include the batch dimension: feature maps are (C, H, W), vectors (N,).
Every layer knows its shape rule, parameter count and MAC count; the float
reference lives in `cnn2gate/ir/reference.py`, the integer one in `cnn2gate/sim/`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

Shape = tuple[int, ...]

ACTIVATIONS = ("none", "relu", "relu6", "leaky")
POOL_MODES = ("max", "avg", "global_avg")

#: Name of the graph input as a producer in `Layer.inputs`.
GRAPH_INPUT = "input"


def conv_out_size(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int, dilation: int = 1) -> int:
    span = dilation * (kernel - 1) + 1
    return (size + pad_begin + pad_end - span) // stride + 1


@dataclass(eq=False, kw_only=True)
class Layer:
    name: str
    inputs: list[str]
    in_shapes: list[Shape]
    out_shape: Shape
    act: str = "none"
    alpha: float = 0.0  # LeakyReLU slope
    source: str = ""  # ONNX node name(s) this layer came from; never emitted into code

    kind: ClassVar[str] = ""
    has_weights: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.act not in ACTIVATIONS:
            raise ValueError(f"layer {self.name}: unknown activation {self.act!r}")

    @property
    def in_shape(self) -> Shape:
        return self.in_shapes[0]

    def params(self) -> int:
        return 0

    def macs(self) -> int:
        return 0

    def infer_shape(self) -> Shape:
        raise NotImplementedError


@dataclass(eq=False, kw_only=True)
class Conv(Layer):
    weight: np.ndarray  # (M, C/groups, kh, kw)
    bias: np.ndarray  # (M,)
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, bottom, right
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    kind: ClassVar[str] = "conv"
    has_weights: ClassVar[bool] = True

    @property
    def kernel(self) -> tuple[int, int]:
        return int(self.weight.shape[2]), int(self.weight.shape[3])

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    @property
    def depthwise(self) -> bool:
        return self.groups > 1 and self.groups == self.in_shape[0] and self.weight.shape[1] == 1

    def infer_shape(self) -> Shape:
        c, h, w = self.in_shape
        kh, kw = self.kernel
        oh = conv_out_size(h, kh, self.stride[0], self.pads[0], self.pads[2], self.dilation[0])
        ow = conv_out_size(w, kw, self.stride[1], self.pads[1], self.pads[3], self.dilation[1])
        return (self.out_channels, oh, ow)

    def params(self) -> int:
        return int(self.weight.size + self.bias.size)

    def macs(self) -> int:
        m, cg, kh, kw = self.weight.shape
        _, oh, ow = self.out_shape
        return int(m * cg * kh * kw * oh * ow)


@dataclass(eq=False, kw_only=True)
class Dense(Layer):
    """Fully connected layer; a (C, H, W) input is flattened in C-major (NCHW) order."""

    weight: np.ndarray  # (M, K)
    bias: np.ndarray  # (M,)

    kind: ClassVar[str] = "dense"
    has_weights: ClassVar[bool] = True

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    def infer_shape(self) -> Shape:
        return (self.out_channels,)

    def params(self) -> int:
        return int(self.weight.size + self.bias.size)

    def macs(self) -> int:
        return int(self.weight.size)


@dataclass(eq=False, kw_only=True)
class Pool(Layer):
    mode: str  # max | avg | global_avg
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    count_include_pad: bool = False  # avg only: divide by the full window, padding included

    kind: ClassVar[str] = "pool"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in POOL_MODES:
            raise ValueError(f"layer {self.name}: unknown pool mode {self.mode!r}")

    def infer_shape(self) -> Shape:
        c, h, w = self.in_shape
        if self.mode == "global_avg":
            return (c, 1, 1)
        kh, kw = self.kernel
        return (
            c,
            conv_out_size(h, kh, self.stride[0], self.pads[0], self.pads[2]),
            conv_out_size(w, kw, self.stride[1], self.pads[1], self.pads[3]),
        )

    def window(self) -> tuple[int, int]:
        return (self.in_shape[1], self.in_shape[2]) if self.mode == "global_avg" else self.kernel


@dataclass(eq=False, kw_only=True)
class LRN(Layer):
    """Local response normalisation across channels (ONNX LRN semantics)."""

    size: int
    lrn_alpha: float = 1e-4
    beta: float = 0.75
    bias: float = 1.0

    kind: ClassVar[str] = "lrn"

    def infer_shape(self) -> Shape:
        return self.in_shape


@dataclass(eq=False, kw_only=True)
class Add(Layer):
    """Element-wise sum of two or more inputs of equal shape (residual connections)."""

    kind: ClassVar[str] = "add"

    def infer_shape(self) -> Shape:
        first = self.in_shapes[0]
        for s in self.in_shapes[1:]:
            if tuple(s) != tuple(first):
                raise ValueError(f"layer {self.name}: add inputs have different shapes {self.in_shapes}")
        return first


@dataclass(eq=False, kw_only=True)
class Concat(Layer):
    """Channel concatenation of feature maps (inception/dense blocks)."""

    kind: ClassVar[str] = "concat"

    def infer_shape(self) -> Shape:
        _, h, w = self.in_shapes[0]
        for s in self.in_shapes[1:]:
            if tuple(s[1:]) != (h, w):
                raise ValueError(f"layer {self.name}: concat inputs differ in spatial size {self.in_shapes}")
        return (sum(s[0] for s in self.in_shapes), h, w)


LAYER_KINDS: dict[str, type[Layer]] = {cls.kind: cls for cls in (Conv, Dense, Pool, LRN, Add, Concat)}


@dataclass(eq=False)
class Graph:
    """A DAG of layers in topological order with one input and one output."""

    name: str
    input_shape: Shape  # (C, H, W)
    layers: list[Layer]
    output: str
    softmax: bool = False  # a final Softmax, run on the host in float
    input_source: str = ""  # the ONNX input's name
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._by_name = {layer.name: layer for layer in self.layers}
        if len(self._by_name) != len(self.layers):
            raise ValueError("graph has duplicate layer names")

    def layer(self, name: str) -> Layer:
        return self._by_name[name]

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def __iter__(self):
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def output_shape(self) -> Shape:
        return self.layer(self.output).out_shape

    def consumers(self, name: str) -> list[Layer]:
        return [layer for layer in self.layers if name in layer.inputs]

    def shape_of(self, name: str) -> Shape:
        return self.input_shape if name == GRAPH_INPUT else self.layer(name).out_shape

    def total_params(self) -> int:
        return sum(layer.params() for layer in self.layers)

    def total_macs(self) -> int:
        return sum(layer.macs() for layer in self.layers)

    def validate(self) -> None:
        """Check topological order, shape consistency and a single reachable output."""
        seen = {GRAPH_INPUT}
        for layer in self.layers:
            for src in layer.inputs:
                if src not in seen:
                    raise ValueError(f"layer {layer.name}: input {src!r} is not produced before it")
            expected = [tuple(self.shape_of(s)) for s in layer.inputs]
            if [tuple(s) for s in layer.in_shapes] != expected:
                raise ValueError(f"layer {layer.name}: in_shapes {layer.in_shapes} != producers' {expected}")
            if tuple(layer.infer_shape()) != tuple(layer.out_shape):
                raise ValueError(f"layer {layer.name}: out_shape {layer.out_shape} != inferred {layer.infer_shape()}")
            seen.add(layer.name)
        if self.output not in self._by_name:
            raise ValueError(f"graph output {self.output!r} is not a layer")
