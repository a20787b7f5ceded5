"""Which accelerator the cost models describe.

`GENERATED` is what `cnn2gate compile` emits (docs/architecture.md, templates/device):
a ping-pong window buffer filled inside the streaming loop (each step takes the longer
of the next window's fill and the current window's stream), a single weight buffer
(its load stalls the stream), depth-64 channels, one kernel over external memory for
each other operator, only the kernels the model needs. The convolution chain moves
feature maps in whole vectors where channel views are aligned (ConvOp.vector_io) and
element by element otherwise; the other kernels read and write one data_t element per
unrolled lane (`in[act_index(...)]`), which the compiler turns into one narrow LSU each.

`PIPECNN` is PipeCNN as published (FPT 2017 and its 2018 sources): a ping-pong window
buffer (window loads overlap the stream), depth-0 channels, max pooling in the conv
stream with LANE_NUM-wide line buffers, an NDRange memWrite whose work-group of
LANE_NUM work-items stores one lane per cycle, and its fixed kernel set compiled
whatever the model (other operators are priced on the kernels it has).
It exists so the same equations can be checked against PipeCNN's measured designs
(benchmarks/model_validation.py); estimates for users always use GENERATED.
"""
from __future__ import annotations

from dataclasses import dataclass

#: most inputs of one eltwise (add) kernel call: its in/off/lsh argument groups and the host's arrays
ADD_MAX_INPUTS = 4
#: depth of the generated design's data/weight/output channels (emulation may deepen them)
CHANNEL_DEPTH = 64


@dataclass(frozen=True)
class Arch:
    name: str
    window_buffers: int  # 1: window loads stall the stream; 2: ping-pong, loads overlap
    channel_depth: int  # depth of data/weight/output channels (0: registers only)
    pool_in_stream: bool  # max pooling fused into the conv output stream (no own pass)
    fixed_kernels: tuple[str, ...]  # kernels compiled whatever the model (empty: those the model uses)
    write_lane_serial: bool = False  # memWrite stores one lane per cycle (NDRange, local size LANE_NUM)
    scalar_ports: bool = False  # tensors accessed element by element in unrolled loops (one LSU each)
    pool_line_depth: int = 0  # fixed pooling line-buffer depth (0: sized from the model)
    batch_windows: bool = False  # batched dense layers hold fc_batch windows (PipeCNN's FC batching)
    fill_in_stream: bool = False  # window fill and stream share one loop: max(fill, stream) per window
    fold_narrow_input: bool = False  # a conv on a few-channel graph input folds kernel columns into vectors

    def has_kernel(self, kernel: str) -> bool:
        """Whether the architecture has `kernel` at all (an operator without one falls back)."""
        return not self.fixed_kernels or kernel in self.fixed_kernels


#: PipeCNN's kernel set: the convolution chain, its pooling and normalisation kernels
PIPECNN_KERNELS = ("mem_read", "conv_core", "mem_write", "pool", "lrn")

GENERATED = Arch("generated", window_buffers=2, channel_depth=CHANNEL_DEPTH, pool_in_stream=False,
                 fixed_kernels=(), scalar_ports=True, fill_in_stream=True, fold_narrow_input=True)
PIPECNN = Arch("pipecnn", window_buffers=2, channel_depth=0, pool_in_stream=True,
               fixed_kernels=PIPECNN_KERNELS, write_lane_serial=True, pool_line_depth=224,
               batch_windows=True)
