"""Element-wise sum of feature maps of equal shape (residual connections), on the eltwise kernel.

Each input is shifted left onto the finest input fraction (exact), the sum rounded
once to the output format. One kernel call takes at most ADD_MAX_INPUTS inputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..hw import cycles
from ..hw.arch import ADD_MAX_INPUTS
from ..ir.layers import Layer, Shape
from ..quant import fixedpoint as fx
from . import kernel_args as K
from .base import KernelLayer, Op, Unsupported, ceil_div, char_sites

#: ALMs per element-wise lane at 8 bits (adders, muxes; assumption)
ALM_ELTWISE_PER_LANE = 30.0


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


class AddOp(Op):
    name = "add"
    layer_type = Add
    onnx_types = ("Add", "Sub", "Div")  # Mul of two feature maps: ops/mul.py
    patterns = {"Add": "Sum of two or more maps"}
    limits = (f"two or more maps of one shape (no broadcasting), at most {ADD_MAX_INPUTS} per layer; Sub/Div only "
              "by a constant (folded)")
    emulator_tests = ("tests/test_emulate.py::test_all_layer_kinds_bit_exact",)
    fusing_types = ("Add",)
    kernels = ("eltwise",)
    host_kind = "KIND_ADD"
    char_activations = True

    def from_onnx(self, lw, n) -> None:
        # Add/Sub/Mul/Div with a per-channel constant were folded by the affine pass already.
        if any(t in lw.g.consts for t in n.inputs):
            raise Unsupported("the constant operand is not per-channel (or its producer cannot absorb it)")
        if n.op != "Add":
            raise Unsupported(f"{n.op} of two feature maps is not supported (only Add and Mul)")
        srcs, shapes = lw.inputs_of(n)
        if any(tuple(s) != tuple(shapes[0]) for s in shapes):
            raise Unsupported(f"inputs differ in shape {shapes} (broadcasting is not supported)")
        layer = Add(**lw.common(n, "add"), inputs=srcs, in_shapes=shapes, out_shape=())
        lw.add(n, layer)

    def float_ref(self, layer, *xs):
        return np.sum(xs, axis=0)

    def int_ref(self, q, *xs):
        acc = np.zeros_like(xs[0])
        for x, k in zip(xs, q.in_shifts):
            acc = acc + fx.rshift_round(x, -k)
        return fx.requant(acc, q.shift, q.out, q.act, q.alpha_q), acc

    def fast(self, q, *xs):
        from ..sim import fast

        return fast.add(q, *(fast.f32(x) for x in xs))

    def run_nodes(self, b, q, *xs):
        from ..sim import chain

        return chain.add_nodes(b, q, *xs)

    def quant_params(self, q, ins, wfmt) -> None:
        q.in_shifts, q.shift = fx.add_shifts(ins, q.out)

    # -- hardware ----------------------------------------------------------------------
    def check(self, layer) -> str | None:
        if len(layer.inputs) > ADD_MAX_INPUTS:
            return (f"layer {layer.name}: an add of {len(layer.inputs)} inputs; at most {ADD_MAX_INPUTS} are "
                    "supported by the eltwise kernel")
        return None

    def lower(self, layer: Add, graph) -> KernelLayer:
        c = layer.in_shape[0]
        return KernelLayer(op=self, kind="add", cg=c, mg=c, **self.common(layer, graph))

    def host_args(self, k, q, hw) -> dict:
        return {"lsh": list(q.in_shifts) + [0] * (ADD_MAX_INPUTS - len(q.in_shifts))}

    def cost(self, k, ctx):
        compute = ceil_div(k.cg, ctx.config.vec_size) * k.ih * k.iw
        nbytes = k.in_elems * sum(ctx.in_bytes(k, i) for i in range(k.n_inputs)) + k.out_elems * ctx.out_bytes(k)
        return cycles.streamed(k, ctx, compute, nbytes, (k.n_inputs - 1) * k.out_elems)

    def kernel_resources(self, layers, ctx) -> dict:
        return {"eltwise": ctx.block(self, "eltwise", ALM_ELTWISE_PER_LANE * ctx.scale * ctx.v)}

    def kernel_args(self, kernel, consts) -> list:
        # unused slots repeat input 0 (never read: n_inputs guards them)
        slots = range(consts["add_max_inputs"])
        used = [f"{i} < L.n_in ? {i} : 0" for i in slots]
        return [
            *[K.Arg(f"in{i}", K.IN, f"in({used[i]})") for i in slots], K.OUT_ARG, K.num("n_inputs", "L.n_in"),
            *[K.num(f"off{i}", f"L.in[{used[i]}].c_off") for i in slots],
            *[K.num(f"lsh{i}", f"L.lsh[{i}]") for i in slots],
            K.OUT_OFF, K.CHANNELS, K.num("h", "L.out_h"), K.num("w", "L.out_w"), *K.REQUANT, *K.narrow_flags(consts),
        ]

    def ports(self, kernel, arch, v=1, lanes=1, buffers=None):
        # reads ADD_MAX_INPUTS x V elements and writes V
        return (0, (ADD_MAX_INPUTS + 1) * v * char_sites(buffers, kernel)) if arch.scalar_ports else (0, 0)


OP = AddOp()
