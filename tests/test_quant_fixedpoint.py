"""docs/fixed-point.md, operator by operator, against hand-computed values and Python-int oracles."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnn2gate.ir.layers import GRAPH_INPUT
from cnn2gate.ops import lrn as lrn_op
from cnn2gate.quant import fixedpoint as fx
from cnn2gate.quant.formats import QFormat
from cnn2gate.zoo import Builder


def oracle_rshift_round(v: int, s: int) -> int:
    """Straight from the doc: (v + 2^(s-1)) >> s, Python ints (unbounded)."""
    if s > 0:
        return (v + (1 << (s - 1))) >> s
    return v << -s


@pytest.mark.parametrize("v,s,want", [
    (5, 1, 3), (-5, 1, -2), (3, 1, 2), (-3, 1, -1),  # exact ties go up (towards +inf)
    (6, 2, 2), (-6, 2, -1), (2, 2, 1), (-2, 2, 0), (1, 1, 1), (-1, 1, 0),
    (7, 2, 2), (-7, 2, -2), (0, 5, 0), (5, 0, 5), (-3, -2, -12), (3, -4, 48),
])
def test_rshift_round_known_values(v, s, want):
    assert fx.rshift_round(v, s) == want
    assert fx.rshift_round(np.array([v]), s)[0] == want


@given(st.integers(-(1 << 63), (1 << 63) - 1), st.integers(-70, 80))
def test_rshift_round_matches_doc_formula(v, s):
    fits = v == 0 or s >= 0 or (s > -64 and -(1 << (63 + s)) <= v < (1 << (63 + s)))
    if not fits:  # the exact result leaves int64
        with pytest.raises(OverflowError):
            fx.rshift_round(np.array([v]), s)
        return
    want = oracle_rshift_round(v, s)
    assert fx.rshift_round(v, s) == want
    assert int(fx.rshift_round(np.array([v], dtype=np.int64), s)[0]) == want


def test_rshift_round_left_shift_limits():
    assert int(fx.rshift_round(np.array([(1 << 61)]), -1)[0]) == 1 << 62
    assert int(fx.rshift_round(np.array([-(1 << 62)]), -1)[0]) == -(1 << 63)
    assert int(fx.rshift_round(np.array([-1]), -63)[0]) == -(1 << 63)
    for v, s in [((1 << 62), -1), (-(1 << 62) - 1, -1), (1, -63), (-1, -64)]:
        with pytest.raises(OverflowError):
            fx.rshift_round(np.array([v]), s)
    assert int(fx.rshift_round(np.array([0]), -80)[0]) == 0


def test_rshift_round_extreme_int64():
    v = np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max, -1, 0], dtype=np.int64)
    for s in (1, 2, 63, 64, 100):
        got = fx.rshift_round(v, s)
        assert [int(g) for g in got] == [oracle_rshift_round(int(a), s) for a in v]


def test_sat_both_ends():
    assert fx.sat(200, 8) == 127 and fx.sat(-200, 8) == -128
    assert fx.sat(127, 8) == 127 and fx.sat(-128, 8) == -128
    np.testing.assert_array_equal(fx.sat(np.array([-3, -2, 1, 2]), 2), [-2, -2, 1, 1])
    assert fx.sat(1 << 40, 16) == 32767


@given(st.integers(-(1 << 40), 1 << 40), st.integers(-130, 70), st.integers(2, 16), st.integers(-8, 20),
       st.sampled_from(["none", "relu", "relu6", "leaky"]), st.floats(0.0, 1.0))
def test_requant_matches_oracle(acc, s, bits, frac, act, alpha):
    fmt = QFormat(bits, frac)
    aq = fx.leaky_alpha_q(alpha)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def satp(v):
        return min(max(v, lo), hi)

    if act == "leaky" and acc < 0:
        want = satp(oracle_rshift_round(acc * aq, s + 16))
    else:
        want = satp(oracle_rshift_round(acc, s))
    if act == "relu":
        want = max(want, 0)
    if act == "relu6":
        six = satp(math.floor(6 * 2.0**frac + 0.5))
        want = min(max(want, 0), six)
    assert int(fx.requant(np.array([acc]), s, fmt, act, aq)[0]) == want
    # the saturation counters agree with the unsaturated oracle
    raw = oracle_rshift_round(acc * aq, s + 16) if (act == "leaky" and acc < 0) else oracle_rshift_round(acc, s)
    n_lo, n_hi = fx.saturation_counts(np.array([acc]), s, fmt, act, aq)
    assert (n_lo, n_hi) == (int(raw < lo), int(raw > hi))


def test_negative_shift_saturates_instead_of_overflowing():
    fmt = QFormat(8, 0)
    y = fx.requant(np.array([1 << 40, -(1 << 40), 3, -3]), -30, fmt)
    np.testing.assert_array_equal(y, [127, -128, 127, -128])
    y = fx.requant(np.array([1 << 40, -(1 << 40), 1, -1, 0]), -120, QFormat(16, 64))
    np.testing.assert_array_equal(y, [32767, -32768, 32767, -32768, 0])
    np.testing.assert_array_equal(fx.requant(np.array([1, -1, 0]), -6, fmt), [64, -64, 0])


def test_relu6_limit_and_saturation():
    assert fx.relu6_limit(QFormat(8, 4)) == 96
    assert fx.relu6_limit(QFormat(8, 5)) == 127  # 192 saturates
    assert fx.relu6_limit(QFormat(8, -2)) == 2  # 6/4 = 1.5 -> round half up
    y = fx.requant(np.array([-50, 40, 100, 2000]), 0, QFormat(8, 4), "relu6")
    np.testing.assert_array_equal(y, [0, 40, 96, 96])


def test_leaky_single_rounding():
    aq = fx.leaky_alpha_q(0.1)
    assert aq == 6554
    # acc=-100 at s=2: -100*6554/2^18 = -2.50015... -> round half up of -2.5002 -> -3
    assert int(fx.requant(np.array([-100]), 2, QFormat(8, 0), "leaky", aq)[0]) == -3
    assert int(fx.requant(np.array([100]), 2, QFormat(8, 0), "leaky", aq)[0]) == 25


def test_quantize_tensor_and_dequantize():
    fmt = QFormat(8, 2)
    q = fx.quantize_tensor([0.125, -0.125, 0.375, 100.0, -100.0, -32.0], fmt)
    np.testing.assert_array_equal(q, [1, 0, 2, 127, -128, -128])  # ties up, saturation both ends
    np.testing.assert_allclose(fx.dequantize(q, fmt), [0.25, 0.0, 0.5, 31.75, -32.0, -32.0])
    b, n = fx.quantize_bias([1e12, -1e12, 1.5], 0, bits=32)
    assert list(b) == [2**31 - 1, -(2**31), 2] and n == 2
    # by default at the widest accumulator: 1e12 fits, 1e19 and -1e19 saturate at 64 bits
    b, n = fx.quantize_bias([1e12, 1e19, -1e19, -2.0**63], 0)
    assert list(b) == [10**12, 2**63 - 1, -(2**63), -(2**63)] and n == 2


def test_accumulator_width_follows_the_worst_case():
    w = np.array([[3, -4], [1, 1]])
    assert fx.acc_bound(w, [5, -100], 8) == max(7 * 128 + 5, 2 * 128 + 100)
    assert fx.acc_width(2**31 - 1) == 32 and fx.acc_width(2**31) == 64
    assert fx.acc_width(2**63 - 1) == 64 and fx.acc_width(2**63) is None
    # exact beyond int64: a saturated bias plus any product
    assert fx.acc_bound(w, [2**63 - 1, 0], 8) == 2**63 - 1 + 7 * 128
    assert fx.fits_acc(-(2**63), 2**63 - 1, 64) and not fx.fits_acc(-(2**31) - 1, 0, 32)


def test_avg_multiplier():
    assert fx.avg_multiplier(1) == 65536
    assert fx.avg_multiplier(3) == 21845  # 21845.33
    assert fx.avg_multiplier(6) == 10923  # 10922.67
    assert fx.avg_multiplier(7 * 7) == 1337  # 1337.47
    np.testing.assert_array_equal(fx.avg_multiplier(np.array([4, 6, 9])), [16384, 10923, 7282])
    with pytest.raises(ValueError):
        fx.avg_multiplier(0)


def oracle_lrn_index(ss: int) -> int:
    if ss < 32:
        return ss
    e = ss.bit_length() - 1
    return 32 * (e - 4) + ((ss >> (e - 5)) & 31)


@given(st.integers(0, (1 << 48) - 1))
def test_lrn_index_matches_doc(ss):
    assert lrn_op.lrn_index(ss) == oracle_lrn_index(ss)
    assert 0 <= lrn_op.lrn_index(ss) < lrn_op.LRN_TABLE_SIZE


def test_lrn_index_segment_edges():
    cases = {0: 0, 31: 31, 32: 32, 63: 63, 64: 64, 65: 64, 66: 65, 127: 95, 128: 96, (1 << 48) - 1: 1407}
    for ss, idx in cases.items():
        assert lrn_op.lrn_index(ss) == idx, ss
    with pytest.raises(OverflowError):
        lrn_op.lrn_index(np.array([1 << 48]))


def test_lrn_centres_inside_their_segment():
    c = lrn_op.lrn_centres()
    for idx in (0, 31, 32, 63, 64, 100, 1407):
        assert lrn_op.lrn_index(int(math.floor(c[idx]))) == idx
        assert lrn_op.lrn_index(int(math.ceil(c[idx]))) == idx
    assert c[64] == 64.5 and c[32] == 32.0


def test_lrn_table_values():
    b = Builder("t", (8, 2, 2))
    name = b.lrn(GRAPH_INPUT, size=5, alpha=1e-4, beta=0.75, bias=2.0)
    layer = b.build().layer(name)
    lut = lrn_op.lrn_table(layer, QFormat(8, 0))
    assert lut.shape == (1408,) and lut.dtype == np.int64
    assert lut[0] == math.floor(65536 * 2.0**-0.75 + 0.5)
    c = lrn_op.lrn_centres()[500]
    assert lut[500] == math.floor(65536 * (2.0 + 1e-4 / 5 * c) ** -0.75 + 0.5)
    assert np.all(np.diff(lut) <= 0)  # monotone: bigger sums, smaller factors
    zero_k = lrn_op.lrn_table(type(layer)(name="z", inputs=layer.inputs, in_shapes=layer.in_shapes,
                                      out_shape=layer.out_shape, size=5, bias=0.0), QFormat(8, 0))
    assert zero_k[0] == 2**31 - 1  # 0^-beta is capped, not inf
