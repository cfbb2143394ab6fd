"""gen.fp_vec (the vectorized fused dot product of the 10^6-operation cocotb runs) against
the scalar golden model gen.fp, bit for bit."""
import numpy as np
import pytest

from gen import fp
from gen.fp import BF16, FP16, FP32
from gen.fp_vec import fp_dot_vec, round_pack_vec
from tb.test_fp_units import random_vectors, special_vectors, unpack_dot

SEED = 13


def _scalar(a, b, acc, fmt_in, window=None):
    return np.array([fp.fp_dot([int(x) for x in ra], [int(y) for y in rb], int(c), fmt_in,
                               window=window) for ra, rb, c in zip(a, b, acc)], dtype=np.uint64)


@pytest.mark.parametrize("fmt", [FP16, BF16, FP32], ids=lambda f: f.name)
def test_round_pack_vec_matches_scalar(fmt):
    """Magnitudes of every bit length up to 52 at exponents from deep underflow to overflow,
    plus halfway cases (a 1 followed by zeros below the kept bits)."""
    rng = np.random.default_rng(SEED)
    n = 5_000
    length = rng.integers(1, 53, n)
    mag = rng.integers(0, 1 << 62, n) >> (62 - length)
    tie = rng.random(n) < 0.3
    mag[tie] = (mag[tie] >> 8 << 8) | 128
    mag[:50] = 0
    e_lsb = rng.integers(fmt.emin - fmt.man_bits - 60, fmt.emax + 10, n)
    sign = rng.integers(0, 2, n)
    want = [fp.round_pack(int(s), int(m), int(e), fmt) for s, m, e in zip(sign, mag, e_lsb)]
    assert round_pack_vec(sign, mag, e_lsb, fmt).tolist() == want


#: the two dot-product units of the cocotb runs at 10^4 in the default suite; other group
#: sizes and frames (``make sim``) exercise the int64 frame limits and g = 1
SLOW = pytest.mark.slow


@pytest.mark.parametrize("fmt_in,g,window,n", [
    pytest.param(FP16, 4, None, 10_000, id="fp16-g4"),
    pytest.param(BF16, 2, None, 10_000, id="bf16-g2"),
    pytest.param(FP16, 1, None, 2_000, id="fp16-g1", marks=SLOW),
    pytest.param(BF16, 16, None, 2_000, id="bf16-g16", marks=SLOW),
    pytest.param(FP16, 4, 40, 2_000, id="fp16-g4-w40", marks=SLOW),
    pytest.param(BF16, 2, 24, 2_000, id="bf16-g2-w24", marks=SLOW)])
def test_fp_dot_vec_matches_fp_dot(fmt_in, g, window, n):
    """Random operands of the cocotb runs (specials, nearly cancelling products) and every
    special class of the unit's special test."""
    params = {"g": g, "fmt_in": fmt_in.name}
    for vec in (random_vectors("dot", params, SEED, n), special_vectors("dot", params)):
        a, b, acc = unpack_dot(vec, fmt_in, g)
        got = fp_dot_vec(a, b, acc, fmt_in, window=window)
        want = _scalar(a, b, acc, fmt_in, window)
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, (f"{bad.size} of {len(want)} differ; first: {a[bad[0]]} "
                               f"{b[bad[0]]} {acc[bad[0]]} -> {got[bad[0]]:#x}, "
                               f"fp_dot {want[bad[0]]:#x}")


def test_fp_dot_vec_cancellation_and_zero_signs():
    """Exact cancellation gives +0, all -0 terms give -0, Inf - Inf and 0 * Inf give NaN."""
    one, neg_zero = 0x3C00, 0x8000
    a = np.array([[one, one], [neg_zero, one], [0x7C00, 0xFC00], [0, one]])
    b = np.array([[one, one], [one, neg_zero], [one, one], [0x7C00, one]])
    acc = np.array([0xC0000000, FP32.sign_bit, 0, 0])
    got = fp_dot_vec(a, b, acc, FP16)
    assert got.tolist() == _scalar(a, b, acc, FP16).tolist()
    assert got.tolist() == [0, FP32.sign_bit, FP32.qnan, FP32.qnan]


def test_fp_dot_vec_rejects_bad_arguments():
    a = np.zeros((3, 4), dtype=np.int64)
    with pytest.raises(ValueError, match="n x g"):
        fp_dot_vec(a, a[:, :2], np.zeros(3))
    with pytest.raises(ValueError, match="window must be >= every term width 24, not 20"):
        fp_dot_vec(a, a, np.zeros(3), FP16, window=20)
    with pytest.raises(ValueError, match="window must be <= 59"):
        fp_dot_vec(a, a, np.zeros(3), FP16, window=60)
