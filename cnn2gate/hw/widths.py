"""Data widths of the synthesised datapath, taken from a formats object.

The generated kernels have one datapath type `data_t` for all tensors
(docs/architecture.md): `char` when the input, every weight and every activation
format is at most 8 bits, else `short`. Multipliers are data_t x data_t and every
tensor in external memory takes sizeof(data_t) bytes per element, except weights
when they are packed (docs/generated-project.md): then every layer's weights are
`bits`-bit fields of little-endian 32-bit words, 32 // bits fields per word; and
except the activation buffers a short design keeps as char (hw/storage.py).

Narrow-weight mode: conv_core's weights have their own type `weight_t`
(`weight_type_bits`). It is data_t, except in a short design whose every conv_core
layer (conv, dense, grouped conv) has weights of at most 8 bits: then weight_t is
`char`, so mem_read's weight buffer and the weight channel are half as wide and the
multipliers are short x char. Such a design always packs its weights in DDR (an 8-bit
field is narrower than a short), so the DDR format does not change.

The multiply-accumulate kernels' accumulator is 32 bits where every layer's worst case fits
int32, else 64 (docs/fixed-point.md). From a quantized graph that is exact
(QuantizedGraph.acc_bits); from bit widths alone it is estimated with every weight and
input at full scale (`resolve_accumulator`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

from ..errors import FormatsError

DEFAULT_BITS = 8
#: packed weights: the unit the kernels read and unpack
WORD_BITS = 32
#: weight_t in the narrow-weight mode (char)
NARROW_WEIGHT_BITS = 8


def fields_per_word(bits: int) -> int:
    """Weights of `bits` bits per packed word: 16 at 2 bits, 10 at 3, 6 at 5, 5 at 6, 4 at 8."""
    return WORD_BITS // bits


def packed_words(count: int, bits: int) -> int:
    """Words holding `count` weights packed at `bits` bits (the last word zero-filled)."""
    return -(-count // fields_per_word(bits))


@dataclass(frozen=True)
class DataWidths:
    w_bits: int = DEFAULT_BITS
    a_bits: int = DEFAULT_BITS
    layer_w_bits: tuple[tuple[str, int], ...] = ()  # (layer, weight bits) where the formats give them
    acc_bits: int | None = None  # 32 or 64; None: not known yet (resolve_accumulator)

    def __post_init__(self) -> None:
        if max(self.w_bits, self.a_bits) > 16:
            raise FormatsError(f"formats: {max(self.w_bits, self.a_bits)}-bit data is wider than the 16-bit datapath")

    @property
    def data_bytes(self) -> int:
        """sizeof(data_t)."""
        return 1 if max(self.w_bits, self.a_bits) <= 8 else 2

    @property
    def mult_bits(self) -> int:
        """Operand width of the data_t x data_t multipliers."""
        return 8 * self.data_bytes

    def weight_bits(self, layer: str) -> int:
        """The weight width of one layer (the widest weight format when not given)."""
        return dict(self.layer_w_bits).get(layer, self.w_bits)

    def packs_weights(self, layers) -> bool:
        """Whether the design stores these layers' weights packed: only when packing saves
        words for one of them, so projects at one width keep data_t weights."""
        per_data_t = WORD_BITS // self.mult_bits
        return any(fields_per_word(self.weight_bits(name)) > per_data_t for name in layers)

    def weight_type_bits(self, chain) -> int:
        """Bits of `weight_t`, the type conv_core's weights are buffered, streamed and
        multiplied in, for the conv_core layers named in `chain`: 8 (char) when data_t is
        short and each of them has weights of at most 8 bits (the narrow-weight mode),
        else data_t's width. The one rule the plan, the templates and the cost model use."""
        names = list(chain)
        if self.mult_bits > NARROW_WEIGHT_BITS and names and \
                all(self.weight_bits(n) <= NARROW_WEIGHT_BITS for n in names):
            return NARROW_WEIGHT_BITS
        return self.mult_bits

    def weight_file_bytes(self, layer: str, blocks: int, per_block: int, packed: bool) -> int:
        """Bytes of a weight file of `blocks` blocks of `per_block` weights; packed, each
        block starts on a word (the kernels address blocks by their word count)."""
        if packed:
            return blocks * packed_words(per_block, self.weight_bits(layer)) * WORD_BITS // 8
        return blocks * per_block * self.data_bytes


def chain_layers(lowered) -> list[str]:
    """Names of the kernel layers of a lowering that run on conv_core (their operator says so)."""
    return [k.name for k in lowered.layers if "conv_core" in k.op.kernels]


def weight_type_bits(widths: DataWidths, lowered) -> int:
    """`widths.weight_type_bits` over the conv_core layers of `lowered`."""
    return widths.weight_type_bits(chain_layers(lowered))


#: narrow and wide accumulator (the same numbers as cnn2gate.quant.fixedpoint, which the
#: hardware model does not import)
NARROW_ACC_BITS, WIDE_ACC_BITS = 32, 64


def resolve_accumulator(widths: DataWidths, kernel_layers) -> DataWidths:
    """`widths` with its accumulator decided: kept when known, else 64 bits if any
    multiply-accumulate layer could pass int32 with every weight and input at full scale
    (|acc| <= K 2^(w-1) 2^(a-1) plus a bias as large again), else 32."""
    if widths.acc_bits is not None:
        return widths
    need = 0
    for k in kernel_layers:
        if not k.op.precision_knob or not k.out_elems:  # a multiply-accumulate layer
            continue
        per_out = max(1, k.macs // k.out_elems)  # products per output element
        need = max(need, (widths.weight_bits(k.name) - 1) + (widths.a_bits - 1) + (per_out - 1).bit_length() + 1)
    return replace(widths, acc_bits=NARROW_ACC_BITS if need <= NARROW_ACC_BITS - 1 else WIDE_ACC_BITS)


def _bits(entry: Any, attr: str, flat: str) -> int | None:
    """`entry.<attr>.bits` (formats object) or `entry[flat]` (formats JSON dict)."""
    if isinstance(entry, Mapping):
        value = entry.get(flat)
    else:
        sub = getattr(entry, attr, None)
        value = getattr(sub, "bits", None) if sub is not None else None
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 32:
        raise FormatsError(f"formats: {flat}={value!r} is not a bit width in 1..32")
    return value


def widths_from_formats(formats: Any | None) -> DataWidths:
    """Datapath widths from a formats object (`.input.bits`, `.layers[n].weight.bits`,
    `.layers[n].out.bits`), a formats JSON dict, or a bare {layer: {"w_bits", "a_bits"}}
    mapping, or a quantized graph (`.formats` and its exact `.acc_bits`); None means 8-bit
    everywhere."""
    if formats is None:
        return DataWidths()
    if isinstance(formats, DataWidths):
        return formats
    if hasattr(formats, "acc_bits") and hasattr(formats, "formats"):  # a QuantizedGraph
        return replace(widths_from_formats(formats.formats), acc_bits=formats.acc_bits)
    if isinstance(formats, Mapping) and "layers" not in formats and "input" not in formats:
        layers, in_bits = formats, None  # the explorer's {layer: {"w_bits", "a_bits"}}
    elif isinstance(formats, Mapping):
        layers = formats.get("layers")
        inp = formats.get("input", {})
        in_bits = inp.get("bits") if isinstance(inp, Mapping) else None
    else:
        layers = getattr(formats, "layers", None)
        inp = getattr(formats, "input", None)
        in_bits = getattr(inp, "bits", None)
    if not isinstance(layers, Mapping) or not layers:
        raise FormatsError("formats: no per-layer formats found")
    per_layer = tuple(sorted((str(n), b) for n, e in layers.items() if (b := _bits(e, "weight", "w_bits")) is not None))
    w = [b for _, b in per_layer]
    a = [b for e in layers.values() if (b := _bits(e, "out", "a_bits")) is not None]
    if in_bits is not None:
        a.append(int(in_bits))
    return DataWidths(max(w, default=DEFAULT_BITS), max(a, default=DEFAULT_BITS), per_layer)
