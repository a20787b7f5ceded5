"""The contract between the generated kernels and the generated host.

`constants()` is the one mapping of the numbers the templates print (as `consts.*`);
each value keeps its single owner: architecture in cnn2gate.hw.arch, arithmetic in
cnn2gate.quant.fixedpoint, an operator's own numbers in its module (cnn2gate/ops/).

`KERNEL_ARGS` lists, per kernel, its arguments in order (declared by the operator that
owns the kernel): name, OpenCL type, and the host expression (in run_layer of
host/main.cpp) that sets it. The kernel signatures in
templates/device/*.cl.j2 and the `.mem()/.num()` chains in templates/host/main.cpp.j2
must follow it; tests/test_kernel_interface.py parses a rendered project to check both.
"""
from __future__ import annotations

from .. import ops
from ..hw.arch import ADD_MAX_INPUTS, CHANNEL_DEPTH
from ..ops.kernel_args import Arg
from ..quant.fixedpoint import ACC_BITS, MUL_FRAC


def constants() -> dict[str, int]:
    """Architecture and arithmetic constants, plus those each operator's templates print."""
    out = {"add_max_inputs": ADD_MAX_INPUTS, "channel_depth": CHANNEL_DEPTH, "mul_frac": MUL_FRAC}
    for op in ops.OPS:
        out.update(op.template_constants())
    return out


def kernel_args(add_max_inputs: int = ADD_MAX_INPUTS, packed_weights: bool = False,
                acc_bits: int = ACC_BITS, narrow_act: bool = False) -> dict[str, tuple[Arg, ...]]:
    """Every kernel's arguments in order, as its operator declares them; `packed_weights`:
    a design whose weights are packed at each layer's width (codegen/plan.py); `acc_bits`:
    the design's accumulator width (32 or 64, QuantizedGraph.acc_bits); `narrow_act`: a design
    with activation buffers stored as char while data_t is short (hw/storage.py)."""
    consts = dict(constants(), add_max_inputs=add_max_inputs, packed_weights=packed_weights, acc_bits=acc_bits,
                  narrow_act=narrow_act)
    return {k: tuple(ops.kernel_owner(k).kernel_args(k, consts)) for k in ops.ALL_KERNELS}


KERNEL_ARGS = kernel_args()
#: every kernel the device program can hold, in the order of the host's Task members
KERNELS = tuple(KERNEL_ARGS)
