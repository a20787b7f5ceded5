"""Fully connected layer, run on the convolution chain.

A dense layer over a (C, H, W) map is a conv whose (H, W) kernel covers the whole map
(one output pixel); over a vector (N,) it is a 1x1 conv over N channels. The cost
model amortises one weight pass over `fc_batch` images and reports figures per image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..ir.layers import Layer, Shape
from ..quant import fixedpoint as fx
from .base import KernelLayer, Op, Unsupported, chw
from .conv import ConvOp, chain_weights, placement_extra, stored_pixels


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


class DenseOp(ConvOp):
    name = "dense"
    layer_type = Dense
    onnx_types = ("Gemm",)
    patterns = {"Gemm": "MatMul of a (1, K) input by a constant (K, M) matrix, a following constant Add as its bias"}
    limits = "constant weights and bias; a map input is flattened C-major (Flatten, Reshape to (1, K))"
    emulator_tests = ("tests/test_emulate.py::test_all_layer_kinds_bit_exact",
                      "tests/test_emulate.py::test_batched_dense_layers_bit_exact")
    fusing_types = ()  # only a Gemm that is a dense layer can: the front end checks that itself
    batched = True

    matches = Op.matches

    def from_onnx(self, lw, n) -> None:
        if not lw.is_dense(n):
            raise Unsupported("only A·Bᵀ with a constant B (weights) and constant C (bias) is supported")
        x, shape = lw.input_of(n)
        w, b = lw.const(n, 1), lw.const(n, 2)
        if math.prod(shape) != w.shape[1]:
            raise Unsupported(f"weights take {w.shape[1]} inputs but the input has {math.prod(shape)}")
        layer = Dense(**lw.common(n, "dense"), inputs=[x], in_shapes=[shape], out_shape=(),
                      weight=w.astype(np.float32), bias=b.astype(np.float32))
        lw.add(n, layer)

    def describe(self, layer) -> str:
        return ""

    def float_ref(self, layer, x):
        flat = x.reshape(x.shape[0], -1).astype(np.float64, copy=False)
        return flat @ layer.weight.T.astype(np.float64, copy=False) + layer.bias.astype(np.float64, copy=False)

    def int_ref(self, q, x):
        flat = x.reshape(x.shape[0], -1)
        acc = np.einsum("nk,mk->nm", flat, q.weight) + q.bias[None, :]
        return fx.requant(acc, q.shift, q.out, q.act, q.alpha_q), acc

    def fast(self, q, x):
        from ..sim import fast

        return fast.dense(q, fast.f32(x))

    def run_nodes(self, b, q, x):
        return None  # a matrix-vector product: nothing to gain from a shared session

    def lower(self, layer: Dense, graph) -> KernelLayer:
        c, h, w = chw(layer.in_shape)
        return KernelLayer(op=self, kind="dense", cg=c, mg=layer.out_channels, kh=h, kw=w,
                           extra=placement_extra(layer, graph),
                           **self.common(layer, graph, written_pixels=stored_pixels(layer, graph)))

    def device_arrays(self, q, k, hw) -> dict:
        weight = q.weight.reshape((q.weight.shape[0], k.cg, k.kh, k.kw))
        w, b = chain_weights(weight, q.bias, 1, hw.vec_size, hw.lane_num)
        return {"w": w, "b": b}


OP = DenseOp()
