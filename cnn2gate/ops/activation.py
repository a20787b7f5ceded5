"""A standalone activation on the act kernel, V channels in parallel.

ReLU, ReLU6, LeakyReLU: the front end fuses them into the layer that produces their
input; when that layer has other readers (or there is none: the graph input) the
activation becomes a layer of its own: identity followed by the shared output step,
`v = x`, shift `in_frac - out_frac` (0 with the quantiser's formats, which tie output to
input as for a max pool; another output format is a rescale in the same single rounding).

Sigmoid, Tanh, HardSigmoid, HardSwish and SiLU (`fn`) are never fused: the producer writes
the pre-activation in its own format and this layer looks the result up in a per-layer
table of ACT_LUT_SIZE output integers indexed by the input at ACT_LUT_BITS bits
(docs/fixed-point.md). The op also owns the ONNX gate patterns x * Sigmoid(x) (SiLU) and
x * HardSigmoid(x) (HardSwish).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import math

import numpy as np

from ..hw import cycles
from ..hw import resources as R
from ..ir.layers import Layer, Shape
from ..quant import fixedpoint as fx
from . import kernel_args as K
from .base import KernelLayer, Op, Unsupported, ceil_div, char_sites, chw, int32

#: ALMs per activation lane at 8 bits (rounding shift, saturation, slope multiply; assumption)
ALM_ACT_PER_LANE = 25.0


#: table functions (never fused; `act` stays "none")
TABLE_FNS = ("sigmoid", "tanh", "hardsigmoid", "hardswish", "silu")
#: the table index: the input rounded to ACT_LUT_BITS bits (exact for inputs that narrow)
ACT_LUT_BITS = 12
ACT_LUT_SIZE = 1 << ACT_LUT_BITS
#: the kernel argument `act` of a table layer (beyond the fused codes of codegen/plan.py)
ACT_TABLE_CODE = 8
#: ONNX defaults (alpha, beta) of HardSigmoid and HardSwish
HARD_DEFAULTS = {"hardsigmoid": (0.2, 0.5), "hardswish": (1.0 / 6.0, 0.5)}
_ONNX_FNS = {"Sigmoid": "sigmoid", "Tanh": "tanh", "HardSigmoid": "hardsigmoid", "HardSwish": "hardswish"}
_INTERNAL_FNS = {"Silu": "silu", "XHardSigmoid": "hardswish"}


@dataclass(eq=False, kw_only=True)
class Activation(Layer):
    """Identity plus its `act`, or the table function `fn`: an activation of its own layer."""

    fn: str = "none"
    fn_alpha: float = 0.0  # HardSigmoid / HardSwish: clip(fn_alpha * x + fn_beta, 0, 1)
    fn_beta: float = 0.0

    kind: ClassVar[str] = "act"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fn != "none" and (self.fn not in TABLE_FNS or self.act != "none"):
            raise ValueError(f"layer {self.name}: table function {self.fn!r} with act {self.act!r}")

    def infer_shape(self) -> Shape:
        return tuple(self.in_shape)


def table_float(fn: str, x, alpha: float = 0.0, beta: float = 0.0):
    """The float function of a table activation (float64)."""
    x = np.asarray(x, dtype=np.float64)
    if fn in ("sigmoid", "silu"):
        sig = 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow for large |x|
        return sig if fn == "sigmoid" else x * sig
    if fn == "tanh":
        return np.tanh(x)
    if fn in ("hardsigmoid", "hardswish"):
        hs = np.clip(alpha * x + beta, 0.0, 1.0)
        return hs if fn == "hardsigmoid" else x * hs
    raise ValueError(f"unknown table function {fn!r}")


def table_shift(in_fmt) -> int:
    """Right shift from the input integer to the table index (negative: exact left shift)."""
    return in_fmt.bits - ACT_LUT_BITS


def table_index(x, in_fmt):
    """idx = sat(rshift_round(x, in_bits - ACT_LUT_BITS), ACT_LUT_BITS) + ACT_LUT_SIZE / 2."""
    s = table_shift(in_fmt)
    return fx.sat(fx.rshift_round(np.asarray(x, dtype=np.int64), s), ACT_LUT_BITS) + ACT_LUT_SIZE // 2


def act_table(layer: Activation, in_fmt, out_fmt) -> tuple[np.ndarray, np.ndarray]:
    """(table, raw): raw[i] = floor(f(c_i) * 2^out_frac + 0.5) at the input c_i each index
    stands for, clamped to int32; table = sat(raw, out_bits)."""
    i = np.arange(ACT_LUT_SIZE, dtype=np.int64) - ACT_LUT_SIZE // 2
    c = np.ldexp(i.astype(np.float64), table_shift(in_fmt) - in_fmt.frac)
    y = table_float(layer.fn, c, layer.fn_alpha, layer.fn_beta)
    raw = np.clip(np.floor(np.ldexp(y, out_fmt.frac) + 0.5), -(1 << 31), (1 << 31) - 1).astype(np.int64)
    return fx.sat(raw, out_fmt.bits), raw


# -- ONNX gate patterns: x * Sigmoid(x) -> SiLU, x * HardSigmoid(x) -> HardSwish ------------
def gate_of(g, n):
    """(x, gate node) when n is Mul(x, G(x)) with G a Sigmoid/HardSigmoid read only by n."""
    if n.op != "Mul" or n.domain or len(n.inputs) != 2 or any(t in g.consts for t in n.inputs):
        return None
    for gi in (0, 1):
        p = g.producer(n.inputs[gi])
        x = n.inputs[1 - gi]
        if (p is not None and not p.domain and p.op in ("Sigmoid", "HardSigmoid") and p.act == "none"
                and p.inputs and p.inputs[0] == x and g.sole_consumer(p.outputs[0]) is n):
            return x, p
    return None


def fuse_gate(g, n) -> None:
    """Replace Mul(x, G(x)) and G by one internal node (Silu, XHardSigmoid with G's alpha/beta)."""
    from ..frontend.wgraph import INTERNAL, Node

    x, p = gate_of(g, n)
    if p.op == "Sigmoid":
        op, attrs = "Silu", {}
    else:
        a, b = HARD_DEFAULTS["hardsigmoid"]
        op, attrs = "XHardSigmoid", {"alpha": float(p.attrs.get("alpha", a)), "beta": float(p.attrs.get("beta", b))}
    node = Node(op=op, name=n.name or p.name, inputs=[x], outputs=list(n.outputs), attrs=attrs, domain=INTERNAL,
                sources=[s for s in p.sources + n.sources if s] or [nm for nm in (p.name, n.name) if nm])
    g.insert_after(n, node)
    g.remove(n)
    g.remove(p)


class ActivationOp(Op):
    name = "activation"
    layer_type = Activation
    onnx_types = ("Relu", "LeakyRelu", "Clip", *_ONNX_FNS)
    internal_types = tuple(_INTERNAL_FNS)
    patterns = {"Silu": "Mul(x, Sigmoid(x))", "XHardSigmoid": "Mul(x, HardSigmoid(x)) (hard-swish)"}
    limits = (f"relu, relu6 (Clip 0..6), leaky: fused into the producer or standalone; "
              f"{', '.join(TABLE_FNS)}: standalone, a {ACT_LUT_SIZE}-entry table")
    emulator_tests = ("tests/test_emulate.py::test_standalone_activations_bit_exact",
                      "tests/test_activation_tables.py::test_table_activations_bit_exact_in_emulator")
    kernels = ("act",)
    host_kind = "KIND_ACT"
    char_activations = True

    def from_onnx(self, lw, n) -> None:
        fn = _ONNX_FNS.get(n.op) if not n.domain else _INTERNAL_FNS.get(n.op)
        if fn is not None:
            x, shape = lw.input_of(n)
            alpha, beta = HARD_DEFAULTS.get(fn, (0.0, 0.0))
            alpha, beta = float(n.attrs.get("alpha", alpha)), float(n.attrs.get("beta", beta))
            if not (math.isfinite(alpha) and math.isfinite(beta)):
                raise Unsupported(f"alpha {alpha} and beta {beta} must be finite")
            lw.add(n, Activation(**lw.common(n, "act"), inputs=[x], in_shapes=[shape], out_shape=(), fn=fn,
                                 fn_alpha=alpha if fn in HARD_DEFAULTS else 0.0, fn_beta=beta if fn in HARD_DEFAULTS else 0.0))
            return
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
        if layer.fn in HARD_DEFAULTS:
            return f"{layer.fn} {layer.fn_alpha:g}·x+{layer.fn_beta:g}"
        if layer.fn != "none":
            return layer.fn
        return layer.act if layer.act != "leaky" else f"leaky {layer.alpha:g}"

    def float_ref(self, layer, x):
        if layer.fn != "none":
            return table_float(layer.fn, x, layer.fn_alpha, layer.fn_beta)
        return x  # the executor applies layer.act

    def int_ref(self, q, x):
        if q.layer.fn != "none":
            # the statistics see the unsaturated table value (shift 0: already in the output format)
            idx = table_index(x, q.in_fmts[0])
            return q.lut[idx], act_table(q.layer, q.in_fmts[0], q.out)[1][idx]
        return fx.requant(x, q.shift, q.out, q.act, q.alpha_q), x

    def fast(self, q, x):
        if q.layer.fn == "none":
            return None
        # float64 index arithmetic (exact: |x| < 2^15), a second derivation of table_index
        s = table_shift(q.in_fmts[0])
        t = np.floor(np.ldexp(np.asarray(x, dtype=np.float64) + (math.ldexp(1.0, s - 1) if s > 0 else 0.0), -s))
        idx = np.clip(t, -(ACT_LUT_SIZE // 2), ACT_LUT_SIZE // 2 - 1).astype(np.int64) + ACT_LUT_SIZE // 2
        from ..sim.reference import acc_info

        return q.lut[idx].astype(np.float32), acc_info(q, act_table(q.layer, q.in_fmts[0], q.out)[1][idx])

    def tied_inputs(self, layer) -> tuple[int, ...]:
        return (0,) if layer.fn == "none" else ()

    def quant_params(self, q, ins, wfmt) -> None:
        if q.layer.fn != "none":
            q.lut = act_table(q.layer, ins[0], q.out)[0]
            q.shift = 0
            return
        q.shift = ins[0].frac - q.out.frac

    # -- hardware ----------------------------------------------------------------------
    def lower(self, layer: Activation, graph) -> KernelLayer:
        c = chw(layer.in_shape)[0]
        return KernelLayer(op=self, kind="act", cg=c, mg=c, extra={"fn": layer.fn}, **self.common(layer, graph))

    def host_args(self, k, q, hw) -> dict:
        if k.extra.get("fn", "none") == "none":
            return {}
        return {"act": ACT_TABLE_CODE, "shift": table_shift(q.in_fmts[0])}

    def device_arrays(self, q, k, hw) -> dict:
        return {"lut": int32(q.lut)} if q.layer.fn != "none" else {}

    def cost(self, k, ctx):
        compute = ceil_div(k.cg, ctx.config.vec_size) * k.ih * k.iw
        nbytes = k.in_elems * ctx.in_bytes(k) + k.out_elems * ctx.out_bytes(k)
        if k.extra.get("fn", "none") != "none":  # the table load, one entry a cycle
            compute += ACT_LUT_SIZE
            nbytes += 4 * ACT_LUT_SIZE
        return cycles.streamed(k, ctx, compute, nbytes, k.out_elems)

    def kernel_resources(self, layers, ctx) -> dict:
        # a table layer: one copy of the table per lane (V reads a cycle)
        tables = any(k.extra.get("fn", "none") != "none" for k in layers)
        lut = R.ram_blocks_for(ctx.widths.a_bits, ACT_LUT_SIZE, ctx.rb) * ctx.v if tables else 0
        return {"act": ctx.block(self, "act", ALM_ACT_PER_LANE * ctx.scale * ctx.v, lut)}

    def template_constants(self) -> dict[str, int]:
        return {"act_table": ACT_TABLE_CODE, "act_lut_bits": ACT_LUT_BITS, "act_lut_half": ACT_LUT_SIZE // 2}

    def kernel_args(self, kernel, consts) -> list:
        return [K.IN0, K.Arg("lut", K.INTS, "rt.tables[index]"), K.OUT_ARG, K.IN_OFF, K.OUT_OFF, K.CHANNELS,
                K.num("h", "L.out_h"), K.num("w", "L.out_w"), *K.REQUANT, *K.narrow_flags(consts)]

    def ports(self, kernel, arch, v=1, lanes=1, buffers=None):
        # reads V elements and writes V
        return (0, 2 * v * char_sites(buffers, kernel)) if arch.scalar_ports else (0, 0)


OP = ActivationOp()
