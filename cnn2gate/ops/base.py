"""What every operator module provides, and the lowered form both code generator and cost model use.

An operator module (one file per kind under cnn2gate/ops/) defines its IR layer
dataclass and one `Op` subclass instance that answers every question the rest of
the compiler asks about that kind: the ONNX nodes it is built from, its float and
integer references, how its fixed-point formats are tied and its integer
parameters derived, how it is lowered onto the device kernels (`KernelLayer`), the
host arguments of that kernel, its cycles and the resources of its kernels.
docs/adding-an-op.md walks through adding one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..ir.layers import GRAPH_INPUT, Graph, Layer

if TYPE_CHECKING:  # pragma: no cover
    from ..quant.formats import QFormat
    from ..quant.params import QLayer

INT32 = np.dtype("<i4")


class Unsupported(Exception):
    """An ONNX node an operator cannot represent; the front end collects the reason."""


class ArchLimit(Exception):
    """A layer the generated architecture cannot run (the message names the layer)."""


def ceil_div(n: int, m: int) -> int:
    return -(-n // m)


def ceil_to(n: int, m: int) -> int:
    return ceil_div(n, m) * m


def chw(shape) -> tuple[int, int, int]:
    """Feature maps as (C, H, W); a vector (N,) is (N, 1, 1)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 3:
        return shape
    if len(shape) == 1:
        return (shape[0], 1, 1)
    raise ValueError(f"tensor shape {shape} is neither (C, H, W) nor (N,)")


def char_sites(buffers, kernel: str) -> int:
    """Memory accesses per feature-map element access in `kernel`'s template: 2 where it sees
    both char-stored and data_t feature maps (a data_t and a char access behind one flag,
    hw/storage.py char_kernels), else 1. `buffers`: the design's BufferSizes, or None."""
    return 2 if buffers is not None and kernel in buffers.char_both else 1


def prod(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def int32(x) -> np.ndarray:
    """Flat little-endian int32 copy of an integer array (device bias and table files)."""
    x = np.asarray(x, dtype=np.int64)
    if x.size and (x.min() < -(1 << 31) or x.max() >= 1 << 31):
        raise ValueError("value outside int32")
    return np.ascontiguousarray(x.reshape(-1).astype(INT32))


@dataclass(frozen=True, eq=False)
class KernelLayer:
    """One IR layer lowered onto the device: which kernel runs it and its loop extents.

    Config-independent; the config-dependent bounds come from `loop_bounds`. The same
    object feeds the code generator's plan and the latency/resource models, so the
    estimate prices exactly the design that `compile` writes.
    """

    name: str
    op: "Op"
    kind: str  # cost-model vocabulary, reported by `estimate`: conv | dense | dwconv | pool | lrn | add | concat
    groups: int = 1
    cg: int = 0  # input channels per group (channel-parallel kernels: channels)
    mg: int = 0  # output channels per group
    kh: int = 1
    kw: int = 1
    sy: int = 1
    sx: int = 1
    dy: int = 1
    dx: int = 1
    pad_t: int = 0
    pad_l: int = 0
    ih: int = 1
    iw: int = 1
    oh: int = 1
    ow: int = 1
    in_elems: int = 0  # elements of each input tensor
    n_inputs: int = 1
    out_elems: int = 0
    macs: int = 0
    params: int = 0
    reads_graph_input: bool = False
    written_pixels: int = 0  # output pixels stored per channel, after a max pool that can run in the stream
    extra: dict = field(default_factory=dict)  # op-specific integers (window size, pool mode, ...)

    def window_width(self, gp_size_x: int) -> int:
        """Input columns under one group of CONV_GP_SIZE_X output columns (mem_read's window)."""
        return (min(gp_size_x, self.ow) - 1) * self.sx + (self.kw - 1) * self.dx + 1


class Op:
    """Base of every operator; each method is the one place its question is answered."""

    #: short name used in docs and errors
    name: ClassVar[str] = ""
    #: the IR layer class this operator owns
    layer_type: ClassVar[type[Layer]] = Layer
    #: ONNX node types handled by `from_onnx`
    onnx_types: ClassVar[tuple[str, ...]] = ()
    #: ONNX node types whose layer can take over a following activation (front end's fusion pass)
    fusing_types: ClassVar[tuple[str, ...]] = ()
    #: node types of the front end's own rewritten nodes handled by `from_onnx`
    internal_types: ClassVar[tuple[str, ...]] = ()
    #: device kernels (one template each under templates/device/) this op runs on
    kernels: ClassVar[tuple[str, ...]] = ()
    #: the host's `Kind` enumerator for layers of this op (templates/host/layers.h.j2)
    host_kind: ClassVar[str] = ""
    #: fields of the host's per-layer configuration that `host_args` sets
    host_fields: ClassVar[tuple[str, ...]] = ()
    #: a multiply-accumulate layer whose weight format the explorer and the quantiser choose
    precision_knob: ClassVar[bool] = False
    #: dense layers take `fc_batch` images per weight pass in the cost model
    batched: ClassVar[bool] = False
    #: its kernels read weights packed at the layer's width when the design packs (hw/widths.py)
    packs_weights: ClassVar[bool] = False
    #: its kernels read and write char-stored activation buffers of a short design, one flag
    #: per pointer (hw/storage.py); the conv chain decides per layer (ConvOp.vector_io)
    char_activations: ClassVar[bool] = False
    # -- what the support matrix says (scripts/support_matrix.py -> docs/support-matrix.md) --
    #: ONNX forms the front end rewrites into a node this op builds from: {node type: the ONNX
    #: form}; every `internal_types` entry needs one (tests/test_support_matrix.py)
    patterns: ClassVar[dict[str, str]] = {}
    #: what the op accepts, in a few words (the full rules: docs/frontend.md)
    limits: ClassVar[str] = ""
    #: emulator tests that run this op bit-exact, "tests/<file>.py::<test>"; each must exist,
    #: be marked `emulator` and name the op (tests/test_support_matrix.py)
    emulator_tests: ClassVar[tuple[str, ...]] = ()

    def matches(self, layer: Layer) -> bool:
        return type(layer) is self.layer_type

    # -- front end -----------------------------------------------------------------
    def from_onnx(self, lw, node) -> None:
        """Turn `node` into a layer with `lw.add(node, layer)`; raise Unsupported with a reason."""
        raise Unsupported(f"{self.name} has no ONNX pattern")

    def describe(self, layer) -> str:
        """Short human detail for `inspect` (kernel/stride/groups, mode, ...)."""
        return ""

    def pools_in_stream(self, layer) -> bool:
        """True when PipeCNN would run this layer inside its producer's output stream."""
        return False

    # -- references ------------------------------------------------------------------
    def float_ref(self, layer, *xs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def int_ref(self, q: "QLayer", *xs: np.ndarray):
        """(y, acc): the int64 output and the exact pre-rounding values (docs/fixed-point.md)."""
        raise NotImplementedError

    def fast(self, q: "QLayer", *xs: np.ndarray):
        """The simulator's fast path, (y as float32 integers, accumulator info), or None to
        run `int_ref` (memory-bound kinds: the int64 reference is fast enough)."""
        return None

    def run_nodes(self, b, q: "QLayer", *xs: str):
        """This layer inside a run of layers in one onnxruntime session (sim/chain.py):
        (output, raw sums) value names added to builder `b`, or None when it cannot join."""
        return None

    # -- quantisation ------------------------------------------------------------------
    def tied_inputs(self, layer) -> tuple[int, ...]:
        """Indices of inputs that must share the output's format (no rescaling in hardware)."""
        return ()

    def tie_violation(self, layer, ins: "list[QFormat]", out: "QFormat") -> str | None:
        """Why formats `ins` -> `out` break this op's tie (None: they keep it)."""
        return None

    def quant_params(self, q: "QLayer", ins: "list[QFormat]", wfmt: "QFormat | None") -> None:
        """Fill q's integer parameters (shift, tables, ...) from the formats."""
        raise NotImplementedError

    # -- hardware ----------------------------------------------------------------------
    def check(self, layer) -> str | None:
        """Why the generated architecture cannot run `layer` (None: it can)."""
        return None

    def lower(self, layer, graph: Graph) -> KernelLayer:
        raise NotImplementedError

    def views(self, layer, graph: Graph) -> list[tuple[str, int]] | None:
        """For an op done by addressing: (input, channel offset in this layer's buffer) per
        input, where the producers write directly. None: the op runs a kernel."""
        return None

    def placed(self, layer, graph: Graph) -> tuple[str, int] | None:
        """For an op whose output is a channel range of its input's buffer (no kernel, no
        buffer of its own): (input, channel offset there). None: the layer has its own place."""
        return None

    def host_args(self, k: KernelLayer, q: "QLayer", hw) -> dict[str, int]:
        """The layer's host configuration fields this kernel reads (others stay zero)."""
        return {}

    def device_arrays(self, q: "QLayer", k: KernelLayer, hw) -> dict[str, np.ndarray]:
        """Weights ("w", data_t), biases ("b", int64 values written at the accumulator's width)
        and tables ("lut", int32) in device layout."""
        return {}

    def weight_blocks(self, k: KernelLayer, hw) -> tuple[int, int]:
        """(blocks, weights per block) of the "w" array: packed, each block starts on a word."""
        return 0, 0

    def buffer_needs(self, k: KernelLayer, hw, arch) -> dict[str, int]:
        """Depths this layer asks of the shared on-chip buffers (the maximum over layers is built)."""
        return {}

    def parallel_extent(self, k: KernelLayer) -> tuple[int, int, int] | None:
        """(input channels, output channels, output width) that VEC/LANE/GP parallelise, or None."""
        return None

    def cost(self, k: KernelLayer, ctx) -> Any:
        """LayerCost of one image (hw/cycles.py)."""
        raise NotImplementedError

    def kernel_resources(self, kernel: str, layers: list[KernelLayer], ctx) -> dict:
        """{"dsp", "alm", "ram_blocks"} of `kernel` (one of self.kernels) sized for `layers`."""
        raise NotImplementedError

    def ports(self, kernel: str, arch, v: int = 1, lanes: int = 1, buffers=None) -> tuple[int, int]:
        """(wide, narrow) global-memory ports of `kernel` (hw/resources.py prices them); `buffers`:
        the design's BufferSizes when known."""
        return 0, 0

    def kernel_args(self, kernel: str, consts: dict) -> list:
        """`kernel`'s arguments in order (ops/kernel_args.py): signature and host side both follow it."""
        raise NotImplementedError

    def template_constants(self) -> dict[str, int]:
        """Numbers this op's templates print as `consts.*` (their one owner is this module)."""
        return {}

    # -- shared helpers ------------------------------------------------------------------
    @staticmethod
    def common(layer, graph: Graph, **kw) -> dict:
        """KernelLayer fields every op fills the same way."""
        _, h, w = chw(layer.in_shape)
        _, oh, ow = chw(layer.out_shape)
        base = dict(name=layer.name, reads_graph_input=layer.inputs[0] == GRAPH_INPUT, macs=layer.macs(),
                    params=layer.params(), in_elems=prod(layer.in_shape), out_elems=prod(layer.out_shape),
                    n_inputs=len(layer.inputs), ih=h, iw=w, oh=oh, ow=ow, written_pixels=oh * ow)
        base.update(kw)
        return base
