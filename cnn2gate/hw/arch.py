"""Which accelerator the cost models describe.

`GENERATED` is what `cnn2gate compile` emits (docs/architecture.md, templates/device):
single window and weight buffers (loads stall the stream), depth-64 channels, separate
pool/LRN/eltwise/depthwise kernels over external memory, only the kernels the model
needs, and feature maps read and written one data_t element per unrolled lane
(`in[act_index(...)]`), which the compiler turns into one narrow LSU per element.

`PIPECNN` is PipeCNN as published (FPT 2017 and its 2018 sources): a ping-pong window
buffer (window loads overlap the stream), depth-0 channels, max pooling in the conv
stream with LANE_NUM-wide line buffers, an NDRange memWrite whose work-group of
LANE_NUM work-items stores one lane per cycle, and every kernel compiled whatever the
model.
It exists so the same equations can be checked against PipeCNN's measured designs
(benchmarks/model_validation.py); estimates for users always use GENERATED.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Arch:
    name: str
    window_buffers: int  # 1: window loads stall the stream; 2: ping-pong, loads overlap
    channel_depth: int  # depth of data/weight/output channels (0: registers only)
    pool_in_stream: bool  # max pooling fused into the conv output stream (no own pass)
    depthwise_kernel: bool  # depthwise conv (multiplier 1) on its own V-lane kernel
    all_kernels: bool  # every kernel is compiled whether or not the model uses it
    write_lane_serial: bool = False  # memWrite stores one lane per cycle (NDRange, local size LANE_NUM)
    scalar_ports: bool = False  # tensors accessed element by element in unrolled loops (one LSU each)
    pool_line_depth: int = 0  # fixed pooling line-buffer depth (0: sized from the model)


GENERATED = Arch("generated", window_buffers=1, channel_depth=64, pool_in_stream=False,
                 depthwise_kernel=True, all_kernels=False, scalar_ports=True)
PIPECNN = Arch("pipecnn", window_buffers=2, channel_depth=0, pool_in_stream=True,
               depthwise_kernel=False, all_kernels=True, write_lane_serial=True, pool_line_depth=224)
