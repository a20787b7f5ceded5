"""A standalone activation (ReLU, ReLU6, LeakyReLU) on the act kernel, V channels in parallel.

The front end fuses an activation into the layer that produces its input; when that
layer has other readers (or there is none: the graph input) the activation becomes a
layer of its own: identity followed by the shared output step, `v = x`, shift
`in_frac - out_frac` (0 with the quantiser's formats, which tie output to input as for
a max pool; another output format is a rescale in the same single rounding).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..hw import cycles
from ..ir.layers import Layer, Shape
from ..quant import fixedpoint as fx
from . import kernel_args as K
from .base import KernelLayer, Op, Unsupported, ceil_div, chw

#: ALMs per activation lane at 8 bits (rounding shift, saturation, slope multiply; assumption)
ALM_ACT_PER_LANE = 25.0


@dataclass(eq=False, kw_only=True)
class Activation(Layer):
    """Identity plus its `act`: an activation that could not be fused into its producer."""

    kind: ClassVar[str] = "act"

    def infer_shape(self) -> Shape:
        return tuple(self.in_shape)


class ActivationOp(Op):
    name = "activation"
    layer_type = Activation
    onnx_types = ("Relu", "LeakyRelu", "Clip")
    kernels = ("act",)
    host_kind = "KIND_ACT"

    def from_onnx(self, lw, n) -> None:
        # only the nodes the fusion pass left: their producer has other readers, already
        # has an activation, or is the graph input
        from ..frontend.passes.activations import activation_of

        found = activation_of(lw.g, n)
        if found is None:
            if n.op == "Clip":
                raise Unsupported("only Clip(0, 6) (ReLU6) and Clip(0, +inf) (ReLU) are supported, with constant bounds")
            raise Unsupported("op not supported")
        x, shape = lw.input_of(n)
        fields = dict(lw.common(n, "act"), act=found[0], alpha=found[1])
        lw.add(n, Activation(**fields, inputs=[x], in_shapes=[shape], out_shape=()))

    def describe(self, layer) -> str:
        return layer.act if layer.act != "leaky" else f"leaky {layer.alpha:g}"

    def float_ref(self, layer, x):
        return x  # the executor applies layer.act

    def int_ref(self, q, x):
        return fx.requant(x, q.shift, q.out, q.act, q.alpha_q), x

    def tied_inputs(self, layer) -> tuple[int, ...]:
        return (0,)

    def quant_params(self, q, ins, wfmt) -> None:
        q.shift = ins[0].frac - q.out.frac

    # -- hardware ----------------------------------------------------------------------
    def lower(self, layer: Activation, graph) -> KernelLayer:
        c = chw(layer.in_shape)[0]
        return KernelLayer(op=self, kind="act", cg=c, mg=c, **self.common(layer, graph))

    def cost(self, k, ctx):
        compute = ceil_div(k.cg, ctx.config.vec_size) * k.ih * k.iw
        nbytes = (k.in_elems + k.out_elems) * ctx.widths.data_bytes
        return cycles.streamed(k, ctx, compute, nbytes, k.out_elems)

    def kernel_resources(self, layers, ctx) -> dict:
        return {"act": ctx.block(self, "act", ALM_ACT_PER_LANE * ctx.scale * ctx.v)}

    def kernel_args(self, kernel, consts) -> list:
        return [K.IN0, K.OUT_ARG, K.IN_OFF, K.OUT_OFF, K.CHANNELS, K.num("h", "L.out_h"), K.num("w", "L.out_w"),
                *K.REQUANT]

    def ports(self, kernel, arch, v=1, lanes=1, buffers=None):
        # reads V elements and writes V
        return (0, 2 * v) if arch.scalar_ports else (0, 0)


OP = ActivationOp()
