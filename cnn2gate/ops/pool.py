"""Max, average and global average pooling on the pool kernel (V channels in parallel).

Max pooling keeps its input's format (tied); average pooling multiplies the window
sum by a per-position reciprocal (docs/fixed-point.md). PipeCNN runs max pooling in
the convolution's output stream, so there it costs no pass of its own.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..hw import cycles
from ..hw import resources as R
from ..ir.layers import Layer, Shape, conv_out_size
from ..ir.windows import patches, valid_counts
from ..quant import fixedpoint as fx
from . import kernel_args as K
from .base import KernelLayer, Op, Unsupported, ceil_div, char_sites, int32
from .conv import GEOMETRY_FIELDS, geometry_args

#: ALMs per pooling lane at 8 bits (comparators, muxes; assumption)
ALM_POOL_PER_LANE = 25.0
MODES = ("max", "avg", "global_avg")
_I64_MIN = np.iinfo(np.int64).min


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
        if self.mode not in MODES:
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


class PoolOp(Op):
    name = "pool"
    layer_type = Pool
    onnx_types = ("MaxPool", "AveragePool", "GlobalAveragePool")
    patterns = {"GlobalAveragePool": "ReduceMean over H and W",
                "AveragePool": "a zero Pad no Conv takes over (1x1, stride 1, counting its padding)"}
    limits = f"modes {', '.join(MODES)}; 2-D, no dilation, no Indices output; ceil_mode, count_include_pad"
    emulator_tests = ("tests/test_emulate.py::test_all_layer_kinds_bit_exact",
                      "tests/test_graph_shapes.py::test_zero_pad_before_max_pool_bit_exact")
    fusing_types = ("MaxPool", "AveragePool", "GlobalAveragePool")
    kernels = ("pool",)
    host_kind = "KIND_POOL"
    char_activations = True
    host_fields = (*GEOMETRY_FIELDS, "is_max")

    def from_onnx(self, lw, n) -> None:
        x, shape = lw.input_of(n)
        if len(shape) != 3:
            raise Unsupported(f"input must be a feature map (C,H,W), got {shape}")
        if n.op == "GlobalAveragePool":
            layer = Pool(**lw.common(n, "gap"), inputs=[x], in_shapes=[shape], out_shape=(), mode="global_avg")
            lw.add(n, layer, squeezed=bool(n.attrs.get("squeezed")))
            return
        if any(o and (lw.g.consumers(o) or lw.g.is_output(o)) for o in n.outputs[1:]):
            raise Unsupported("the Indices output of MaxPool is not supported")
        k = [int(v) for v in n.attrs.get("kernel_shape", [])]
        if len(k) != 2:
            raise Unsupported("only 2-D pooling is supported")
        if any(int(d) != 1 for d in n.attrs.get("dilations", [1, 1])):
            raise Unsupported("dilated pooling is not supported")
        if "auto_pad" in n.attrs and n.attrs["auto_pad"] != "NOTSET":
            raise Unsupported(f"auto_pad={n.attrs['auto_pad']} with unknown input size")
        s = [int(v) for v in n.attrs.get("strides", [1, 1])]
        pads = [int(v) for v in n.attrs.get("pads", [0, 0, 0, 0])]
        mode = "max" if n.op == "MaxPool" else "avg"
        include_pad = bool(int(n.attrs.get("count_include_pad", 0))) and mode == "avg"
        if int(n.attrs.get("ceil_mode", 0)):
            onnx_shape = lw.g.shape(n.outputs[0])
            for axis in (0, 1):
                size, pb, pe = shape[1 + axis], pads[axis], pads[axis + 2]
                out = math.ceil((size + pb + pe - k[axis]) / s[axis]) + 1
                if onnx_shape is not None:
                    out = onnx_shape[2 + axis]
                extra = (out - 1) * s[axis] + k[axis] - (size + pb + pe)
                if extra <= 0:
                    continue
                if (out - 1) * s[axis] >= size + pb:
                    raise Unsupported("ceil_mode makes a window that lies entirely in padding")
                if include_pad:
                    raise Unsupported("ceil_mode with count_include_pad=1 divides the last windows by a partial "
                                      "size, which the IR cannot represent")
                pads[axis + 2] += extra  # ceil_mode = extra end padding that no window counts
        layer = Pool(**lw.common(n, f"{mode}pool"), inputs=[x], in_shapes=[shape], out_shape=(), mode=mode,
                     kernel=(k[0], k[1]), stride=(s[0], s[1]), pads=tuple(pads), count_include_pad=include_pad)
        lw.add(n, layer)

    def describe(self, layer) -> str:
        if layer.mode == "global_avg":
            return "global avg"
        return f"{layer.mode} {layer.kernel[0]}x{layer.kernel[1]}/{layer.stride[0]}"

    def pools_in_stream(self, layer) -> bool:
        return layer.mode == "max"

    def float_ref(self, layer, x):
        if layer.mode == "global_avg":
            return x.mean(axis=(2, 3), keepdims=True)
        if layer.mode == "max":
            return patches(x, layer.kernel, layer.stride, layer.pads, pad_value=-np.inf).max(axis=(-1, -2))
        sums = patches(x, layer.kernel, layer.stride, layer.pads).sum(axis=(-1, -2))
        if layer.count_include_pad:
            return sums / (layer.kernel[0] * layer.kernel[1])
        return sums / valid_counts(x.shape[2:], layer.kernel, layer.stride, layer.pads)

    def int_ref(self, q, x):
        layer = q.layer
        if layer.mode == "max":
            acc = patches(x, layer.kernel, layer.stride, layer.pads, pad_value=_I64_MIN).max(axis=(-1, -2))
            return fx.requant(acc, q.shift, q.out, q.act, q.alpha_q), acc
        if layer.mode == "global_avg":
            sums = x.sum(axis=(2, 3), keepdims=True)
        else:
            sums = patches(x, layer.kernel, layer.stride, layer.pads).sum(axis=(-1, -2))
        acc = sums * q.multiplier[None, None]
        return fx.requant(acc, q.shift, q.out, q.act, q.alpha_q), acc

    def fast(self, q, x):
        if q.layer.mode != "max" or q.act == "leaky":
            return None
        from ..sim import fast

        return fast.max_pool(q, fast.f32(x))

    def tied_inputs(self, layer) -> tuple[int, ...]:
        return (0,) if layer.mode == "max" else ()

    def tie_violation(self, layer, ins, out) -> str | None:
        if layer.mode == "max" and ins[0] != out:
            return f"a max pool keeps its input format {ins[0]}, got {out}"
        return None

    def quant_params(self, q, ins, wfmt) -> None:
        layer = q.layer
        if layer.mode == "max":
            q.shift = ins[0].frac - q.out.frac  # 0: validated formats keep the input format
            return
        if layer.mode == "global_avg":
            n = np.full((1, 1), layer.in_shape[1] * layer.in_shape[2], dtype=np.int64)
        elif layer.count_include_pad:
            n = np.full(layer.out_shape[1:], layer.kernel[0] * layer.kernel[1], dtype=np.int64)
        else:
            n = valid_counts(layer.in_shape[1:], layer.kernel, layer.stride, layer.pads).astype(np.int64)
        q.divisor = n
        q.multiplier = fx.avg_multiplier(n)
        q.shift = fx.avg_shift(ins[0], q.out)

    # -- hardware ----------------------------------------------------------------------
    def lower(self, layer: Pool, graph) -> KernelLayer:
        c = layer.in_shape[0]
        kh, kw = layer.window()
        if layer.mode == "global_avg":
            geo = {}
        else:
            geo = dict(sy=layer.stride[0], sx=layer.stride[1], pad_t=layer.pads[0], pad_l=layer.pads[1])
        return KernelLayer(op=self, kind="pool", cg=c, mg=c, kh=kh, kw=kw, extra={"mode": layer.mode},
                           **geo, **self.common(layer, graph))

    def host_args(self, k, q, hw) -> dict:
        return dict(geometry_args(k), is_max=int(k.extra["mode"] == "max"))

    def device_arrays(self, q, k, hw) -> dict:
        if k.extra["mode"] == "max":
            return {}
        return {"lut": int32(np.broadcast_to(q.multiplier, (k.oh, k.ow)))}

    def buffer_needs(self, k, hw, arch) -> dict:
        return {"pool_line": k.iw}

    def cost(self, k, ctx):
        ops = k.out_elems * k.kh * k.kw
        if ctx.arch.pool_in_stream and k.extra["mode"] == "max":
            return cycles.free(k, ops)
        v = ctx.config.vec_size
        compute = ceil_div(k.cg, v) * k.oh * k.ow * k.kh * k.kw
        nbytes = compute * v * ctx.in_bytes(k) + k.out_elems * ctx.out_bytes(k)
        return cycles.streamed(k, ctx, compute, nbytes, ops)

    def kernel_resources(self, layers, ctx) -> dict:
        arch, bits, rb = ctx.arch, ctx.bits, ctx.rb
        p_lanes = ctx.lanes if arch.pool_in_stream else ctx.v
        line_ram = 2 * R.ram_blocks_for(p_lanes * bits, ctx.buffers.pool_line, rb) if arch.pool_in_stream else 0
        avg = any(k.extra["mode"] != "max" for k in layers) and not arch.pool_in_stream
        return {"pool": ctx.block(self, "pool", ALM_POOL_PER_LANE * ctx.scale * p_lanes, line_ram,
                                  ctx.v if avg else 0)}

    def kernel_args(self, kernel, consts) -> list:
        return [
            K.IN0, K.Arg("mult", K.INTS, "rt.tables[index]"), K.OUT_ARG, K.IN_OFF, K.OUT_OFF, K.CHANNELS,
            *K.fields("in_h", "in_w", "out_h", "out_w", "k_h", "k_w", "stride_y", "stride_x", "pad_t", "pad_l",
                      "is_max"),
            *K.REQUANT, *K.narrow_flags(consts),
        ]

    def ports(self, kernel, arch, v=1, lanes=1, buffers=None):
        # in the stream (PipeCNN) pooling has no memory port of its own
        return (1, 2 * v * char_sites(buffers, kernel)) if arch.scalar_ports else (0, 0)


OP = PoolOp()
