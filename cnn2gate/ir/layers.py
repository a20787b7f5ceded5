"""The layer IR: the `Layer` base and the `Graph` DAG.

Shapes never include the batch dimension: feature maps are (C, H, W), vectors (N,).
Each layer kind is a small dataclass defined by its operator module in cnn2gate/ops/,
with its shape rule, parameter count and MAC count beside everything else about it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

Shape = tuple[int, ...]

ACTIVATIONS = ("none", "relu", "relu6", "leaky")

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


@dataclass(eq=False)
class Graph:
    """A DAG of layers in topological order with one input and one or more outputs."""

    name: str
    input_shape: Shape  # (C, H, W)
    layers: list[Layer]
    output: str
    softmax: bool = False  # a final Softmax, run on the host in float
    input_source: str = ""  # the ONNX input's name
    meta: dict = field(default_factory=dict)
    #: How the ONNX model declares its input: "NHWC" when the front end absorbed the transpose
    #: into the channels-first IR; user data is accepted in this layout (cnn2gate.batch).
    input_layout: str = "NCHW"
    #: The ONNX output's shape without batch, when it differs from the IR's only by size-1
    #: axes (a squeezed global pool gives (1000,) where the IR has (1000, 1, 1)).
    declared_output: Shape | None = None
    #: Every graph output in the ONNX model's order; outputs[0] is `output`. Empty means [output].
    outputs: list[str] = field(default_factory=list)
    #: Declared shapes (batch dropped) of outputs after the first that differ from the IR's.
    declared_outputs: dict[str, Shape] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.outputs:
            self.outputs = [self.output]
        elif self.outputs[0] != self.output:
            raise ValueError(f"graph outputs {self.outputs} do not start with output {self.output!r}")
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

    @property
    def declared_input_shape(self) -> Shape:
        """One input sample as the ONNX model declares it (the IR itself is channels-first)."""
        if self.input_layout == "NHWC":
            c, h, w = self.input_shape
            return (h, w, c)
        return tuple(self.input_shape)

    def user_outputs(self, y: np.ndarray) -> np.ndarray:
        """A batch of outputs (N, *output_shape) in the shape the ONNX model declares."""
        if self.declared_output is None:
            return y
        return y.reshape((y.shape[0],) + tuple(self.declared_output))

    def user_output(self, name: str, y: np.ndarray) -> np.ndarray:
        """A batch of output `name` in the shape the ONNX model declares."""
        if name == self.output:
            return self.user_outputs(y)
        shape = self.declared_outputs.get(name)
        return y if shape is None else y.reshape((y.shape[0],) + tuple(shape))

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
        for out in self.outputs:
            if out not in self._by_name:
                raise ValueError(f"graph output {out!r} is not a layer")
        if len(set(self.outputs)) != len(self.outputs) or self.outputs[0] != self.output:
            raise ValueError(f"graph outputs {self.outputs} repeat a layer or do not start with {self.output!r}")
        if self.softmax and len(self.outputs) > 1:
            raise ValueError("a final softmax needs a single graph output")
