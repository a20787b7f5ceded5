"""Building blocks of the kernel-argument tables each operator declares (`Op.kernel_args`).

An argument is its name in the kernel signature, its OpenCL type, and the C++
expression the host (run_layer in templates/host/main.cpp.j2) passes for it;
cnn2gate/codegen/interface.py assembles the operators' tables and
tests/test_kernel_interface.py checks both rendered sides against them.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Arg:
    name: str  # parameter name in the kernel signature
    cl_type: str  # OpenCL type as declared
    host: str  # C++ expression the host passes

    @property
    def kind(self) -> str:
        """How the host sets it: Task::mem (a cl_mem buffer) or Task::num (an int)."""
        return "mem" if "*" in self.cl_type else "num"


IN = "__global const data_t *restrict"
OUT = "__global data_t *restrict"
INTS = "__global const int *restrict"
#: biases of a design with the 64-bit accumulator (docs/fixed-point.md)
LONGS = "__global const long *restrict"


def fields(*names: str) -> list[Arg]:
    """Integer arguments copied from the LayerCfg field of the same name."""
    return [Arg(n, "int", f"L.{n}") for n in names]


def num(name: str, host: str) -> Arg:
    return Arg(name, "int", host)


#: every kernel that writes a layer's output ends with the shared requantisation step's arguments
REQUANT = fields("shift", "out_bits", "act", "alpha_q", "six_q")
IN0 = Arg("in", IN, "in(0)")
OUT_ARG = Arg("out", OUT, "out")
IN_OFF = num("in_c_off", "L.in[0].c_off")
OUT_OFF = num("out_c_off", "L.out.c_off")
CHANNELS = num("channels", "L.out_c")
#: weights packed at each layer's width (codegen/plan.py): 32-bit words and the layer's width
PACKED = "__global const uint *restrict"


def weights_arg(unpacked_type: str, consts) -> Arg:
    cl = PACKED if consts.get("packed_weights") else f"__global const {unpacked_type} *restrict"
    return Arg("weights", cl, "rt.weights[index]")


def bias_arg(consts) -> Arg:
    """Biases at accumulator scale, as wide as the design's accumulator (consts["acc_bits"])."""
    return Arg("bias", LONGS if consts.get("acc_bits") == 64 else INTS, "rt.biases[index]")


def narrow_flags(consts) -> list[Arg]:
    """A design with char-stored activation buffers (hw/storage.py): bit i of `in_narrow` says
    input i is stored as char, `out_narrow` the output (codegen/plan.py); absent otherwise."""
    return [num("in_narrow", "L.rd_narrow"), num("out_narrow", "L.wr_narrow")] if consts.get("narrow_act") else []


def packed_width(consts) -> list[Arg]:
    return fields("w_bits") if consts.get("packed_weights") else []
