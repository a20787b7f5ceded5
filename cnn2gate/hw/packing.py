"""DSP packing: two narrow-weight products per hardware multiplier (docs/cost-models.md).

conv_core's lanes share each input value `a`, so lanes l and l+1 can use one multiplier:
`a · (w1 + w2·2^k) = a·w1 + a·w2·2^k`. Summing `group` such packed products before
splitting keeps the two dot products apart as long as the low one fits in k bits
(signed), and the packed weight `w1 + w2·2^k` (w_bits + k bits) fits the multiplier's
narrower port. The split is exact, so packing never changes a result:

    u  = P + 2^(k-1) - 1           (the low sum lies in [-(2^(k-1) - 1), 2^(k-1)])
    lo = (u mod 2^k) - 2^(k-1) + 1 (the low sum, exactly)
    hi = u >> k                    (the high sum, arithmetic shift)

The rule is the same on every board: 18 bits is the narrower port of the 18x18 (Cyclone V,
Stratix V) and 18x19 (Arria 10, Stratix 10, Agilex) multipliers, so one generated project
is valid for every family; the families differ only in how many such multipliers a DSP
block gives (board `pair_products_per_dsp`).
"""
from __future__ import annotations

from dataclasses import dataclass

#: the narrower multiplier port common to every family's 18-bit mode (bits, signed)
PORT_BITS = 18
#: packed sums stay in a 32-bit int: |P| <= 2^(2k-1) + 2^(k-1) needs k <= 15
MAX_SHIFT = 15


@dataclass(frozen=True)
class DspPacking:
    """One design's packing: weights sign-extended from `w_bits`, the second lane's weight
    shifted by `shift`, `group` packed products summed before each split."""

    w_bits: int
    a_bits: int
    shift: int
    group: int

    @property
    def packed_bits(self) -> int:
        """Width of the packed weight operand `w1 + w2·2^k` (signed)."""
        return self.w_bits + self.shift

    def to_dict(self) -> dict:
        return {"w_bits": self.w_bits, "a_bits": self.a_bits, "shift": self.shift, "group": self.group,
                "packed_bits": self.packed_bits}


def shift_for(a_bits: int, w_bits: int, group: int) -> int:
    """Smallest k holding a sum of `group` products of signed a_bits x w_bits values.

    Each product lies in (-2^(a+w-2), 2^(a+w-2)], so the sum in (-g·2^(a+w-2), g·2^(a+w-2)];
    with g a power of two that is 2^k values for k = a + w - 1 + log2(g).
    """
    return a_bits + w_bits - 1 + (group.bit_length() - 1)


def plan_packing(a_bits: int, w_bits: int, vec_size: int, lane_num: int, data_bits: int) -> DspPacking | None:
    """The packing of a design, or None when its formats do not allow one.

    Packs only on an 8-bit datapath (data_t char) with at least two lanes; `w_bits` is the
    widest weight of any layer on conv_core, `a_bits` the widest activation (data_t's
    values). The group is the largest power of two dividing vec_size whose packed weight
    still fits PORT_BITS: fewer splits (one per group and lane pair) for narrower weights.
    """
    if data_bits != 8 or lane_num < 2 or a_bits < 1 or w_bits < 1:
        return None
    best = None
    group = 1
    while vec_size % group == 0:
        k = shift_for(a_bits, w_bits, group)
        if w_bits + k > PORT_BITS or k > MAX_SHIFT:
            break
        best = DspPacking(w_bits, a_bits, k, group)
        group *= 2
    return best


def chain_packing(lowered, widths, vec_size: int, lane_num: int) -> DspPacking | None:
    """Packing for the layers that run on conv_core (conv, dense, grouped conv) of a lowering.

    The design packs only when every such layer's weights are narrow enough: conv_core is
    one kernel for all of them, and a per-layer switch would cost both datapaths.
    """
    chain = [k.name for k in lowered.layers if "conv_core" in k.op.kernels]
    if not chain:
        return None
    w_bits = max(widths.weight_bits(name) for name in chain)
    return plan_packing(widths.a_bits, w_bits, vec_size, lane_num, widths.mult_bits)
