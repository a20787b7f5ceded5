"""Operators that only move values (replicate, insert zeros, permute channels).

No arithmetic happens, so the result is exact: the output keeps its input's format
(tied) and the shared output step only applies the layer's activation, if any.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..hw import cycles
from ..quant import fixedpoint as fx
from .base import Op, ceil_div, char_sites


class MovingOp(Op):
    #: how a tie violation names the operator ("a nearest resize", ...)
    keeps_name: ClassVar[str] = ""
    #: ALMs per lane of its kernel at 8 bits (address counters, output step; assumption)
    alm_per_lane: ClassVar[float] = 0.0
    char_activations = True

    def move(self, layer, x: np.ndarray) -> np.ndarray:
        """The values of `x` at their output positions (any dtype)."""
        raise NotImplementedError

    def float_ref(self, layer, x):
        return self.move(layer, x)

    def int_ref(self, q, x):
        acc = self.move(q.layer, x)
        return fx.requant(acc, q.shift, q.out, q.act, q.alpha_q), acc

    def tied_inputs(self, layer) -> tuple[int, ...]:
        return (0,)

    def tie_violation(self, layer, ins, out) -> str | None:
        return None if ins[0] == out else f"{self.keeps_name} keeps its input format {ins[0]}, got {out}"

    def quant_params(self, q, ins, wfmt) -> None:
        q.shift = ins[0].frac - q.out.frac

    # -- hardware: one kernel that writes one output vector of V channels a cycle ---------
    def cost(self, k, ctx):
        # the input read once, the output written once
        compute = ceil_div(k.cg, ctx.config.vec_size) * k.oh * k.ow
        nbytes = k.in_elems * ctx.in_bytes(k) + k.out_elems * ctx.out_bytes(k)
        return cycles.streamed(k, ctx, compute, nbytes, k.out_elems)

    def kernel_resources(self, layers, ctx) -> dict:
        kernel = self.kernels[0]
        return {kernel: ctx.block(self, kernel, self.alm_per_lane * ctx.scale * ctx.v, 0)}

    def ports(self, kernel, arch, v=1, lanes=1, buffers=None):
        # reads V elements and writes V
        return (0, 2 * v * char_sites(buffers, kernel)) if arch.scalar_ports else (0, 0)
