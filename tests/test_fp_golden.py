"""The FP golden model (gen.fp) against an exact reference written independently.

The reference decodes bit patterns to ``fractions.Fraction`` values, computes the exact result
and rounds it with ``round(Fraction)`` (ties to even) -- no integer significands, no shifts.
"""
import math
import random
from fractions import Fraction

import numpy as np
import pytest

from gen import fp
from gen.fp import BF16, FP16, FP32

SEED = 13


# -- the exact reference ------------------------------------------------------------------------

def ref_value(bits, fmt):
    """None for NaN, +-inf as floats, else the exact Fraction; plus the sign bit."""
    sign = (bits >> (fmt.width - 1)) & 1
    e = (bits >> fmt.man_bits) & ((1 << fmt.exp_bits) - 1)
    f = bits & ((1 << fmt.man_bits) - 1)
    if e == (1 << fmt.exp_bits) - 1:
        return (None if f else (-math.inf if sign else math.inf)), sign
    bias = 2 ** (fmt.exp_bits - 1) - 1
    if e == 0:
        v = Fraction(f, 2 ** fmt.man_bits) * Fraction(2) ** (1 - bias)
    else:
        v = (1 + Fraction(f, 2 ** fmt.man_bits)) * Fraction(2) ** (e - bias)
    return (-v if sign else v), sign


def ref_round(v, fmt, zero_sign=0):
    """Bits of the Fraction ``v`` rounded to nearest, ties to even; overflow -> Inf."""
    if v == 0:
        return zero_sign << (fmt.width - 1)
    sign = int(v < 0)
    x = abs(v)
    e = x.numerator.bit_length() - x.denominator.bit_length()
    while Fraction(2) ** e > x:
        e -= 1
    while Fraction(2) ** (e + 1) <= x:
        e += 1
    bias = 2 ** (fmt.exp_bits - 1) - 1
    e = max(e, 1 - bias)
    quantum = Fraction(2) ** (e - fmt.man_bits)
    r = round(x / quantum)                       # Fraction.__round__: ties to even
    if r == 2 ** (fmt.man_bits + 1):
        r //= 2
        e += 1
    if e > bias:
        body = ((1 << fmt.exp_bits) - 1) << fmt.man_bits
    elif r < 2 ** fmt.man_bits:
        body = r                                 # subnormal (or zero is excluded above)
    else:
        body = ((e + bias) << fmt.man_bits) | (r - 2 ** fmt.man_bits)
    return (sign << (fmt.width - 1)) | body


def ref_sum(values, signs, fmt):
    """IEEE sum of already-special-checked addends (Fraction/inf/None) with the zero rule."""
    if any(v is None for v in values):
        return fmt.qnan
    infs = {v for v in values if isinstance(v, float)}
    if infs == {math.inf, -math.inf}:
        return fmt.qnan
    if infs:
        return fmt.inf | (fmt.sign_bit if infs == {-math.inf} else 0)
    total = sum(values, Fraction(0))
    all_neg_zero = all(v == 0 and s for v, s in zip(values, signs))
    return ref_round(total, fmt, zero_sign=int(all_neg_zero))


def ref_product(a, b, fmt):
    """(value, sign) of the exact product: None for NaN, +-inf, or a Fraction."""
    (va, sa), (vb, sb) = ref_value(a, fmt), ref_value(b, fmt)
    s = sa ^ sb
    if va is None or vb is None:
        return None, 0
    if isinstance(va, float) or isinstance(vb, float):
        if va == 0 or vb == 0:
            return None, 0
        return (-math.inf if s else math.inf), s
    return va * vb, s


def ref_mul(a, b, fmt_in, fmt_out):
    v, s = ref_product(a, b, fmt_in)
    if v is None:
        return fmt_out.qnan
    if isinstance(v, float):
        return fmt_out.inf | (s << (fmt_out.width - 1))
    return ref_round(v, fmt_out, zero_sign=s)


# -- inputs ------------------------------------------------------------------------------------

def random_bits(rng, fmt, n, finite=False):
    out = []
    while len(out) < n:
        x = rng.getrandbits(fmt.width)
        if finite and (x >> fmt.man_bits) & fmt.exp_all_ones == fmt.exp_all_ones:
            continue
        out.append(x)
    return out


def near_bits(rng, fmt, n, spread):
    """Pairs of patterns whose exponents differ by at most ``spread`` (cancellation, alignment)."""
    pairs = []
    for _ in range(n):
        a = rng.getrandbits(fmt.width - 1) | (rng.getrandbits(1) << (fmt.width - 1))
        e = (a >> fmt.man_bits) & fmt.exp_all_ones
        e2 = min(max(e + rng.randint(-spread, spread), 0), fmt.exp_all_ones - 1)
        if e == fmt.exp_all_ones:
            a &= ~(fmt.exp_all_ones << fmt.man_bits)
        b = (rng.getrandbits(1) << (fmt.width - 1)) | (e2 << fmt.man_bits) | \
            rng.getrandbits(fmt.man_bits)
        pairs.append((a, b))
    return pairs


# -- the reference itself ------------------------------------------------------------------------

def test_reference_rounds_like_numpy():
    """The Fraction reference agrees with NumPy's float64 -> float32/float16 casts (both RNE)."""
    rng = np.random.default_rng(SEED)
    xs = np.concatenate([rng.standard_normal(2000) * 10.0 ** rng.integers(-45, 39, 2000),
                         rng.standard_normal(500) * 1e-40, [2.0 ** -150, 3 * 2.0 ** -150]])
    with np.errstate(all="ignore"):
        for x in xs:
            want = int(np.float32(x).view(np.uint32))
            assert ref_round(Fraction(float(x)), FP32) == want, x
            want16 = int(np.float16(x).view(np.uint16))
            assert ref_round(Fraction(float(x)), FP16) == want16, x


# -- formats -----------------------------------------------------------------------------------

def test_formats():
    assert (FP16.width, FP16.bias, FP16.emin, FP16.sig_bits) == (16, 15, -14, 11)
    assert (BF16.width, BF16.bias) == (16, 127)
    assert (FP32.width, FP32.bias, FP32.emin) == (32, 127, -126)
    assert FP32.qnan == int(np.array(np.nan, np.float32).view(np.uint32)) & 0x7FFFFFFF
    assert fp.fp_format("BF16") is BF16
    with pytest.raises(ValueError, match="FP format must be one of fp16, bf16, fp32, not 'fp8'"):
        fp.fp_format("fp8")
    with pytest.raises(ValueError, match="exp_bits must be in 2..11, not 1"):
        fp.FPFormat("x", 1, 3)
    with pytest.raises(ValueError, match="operand must be a 16-bit pattern of fp16"):
        fp.decode(1 << 16, FP16)


def test_round_pack_matches_reference():
    rng = random.Random(SEED)
    for fmt in (FP16, BF16, FP32):
        for _ in range(3000):
            mag = rng.getrandbits(rng.randint(1, 60))
            e = rng.randint(-fmt.bias - 70, fmt.bias + 5)
            s = rng.getrandbits(1)
            want = ref_round((-1) ** s * Fraction(mag) * Fraction(2) ** e, fmt, zero_sign=s)
            assert fp.round_pack(s, mag, e, fmt) == want, (fmt.name, s, mag, e)


def test_round_pack_halfway_cases():
    # 1 + half an ulp -> 1 (even); 1 + ulp + half an ulp -> 1 + 2 ulp; halfway subnormal
    for fmt in (FP16, FP32):
        m = fmt.man_bits
        one = fmt.bias << m
        assert fp.round_pack(0, (1 << (m + 1)) + 1, -m - 1, fmt) == one
        assert fp.round_pack(0, (1 << (m + 1)) + 3, -m - 1, fmt) == one + 2
        tiny = fmt.emin - m                      # exponent of the smallest subnormal
        assert fp.round_pack(0, 1, tiny - 1, fmt) == 0            # half of it -> 0 (even)
        assert fp.round_pack(0, 3, tiny - 1, fmt) == 2            # 1.5 -> 2
        assert fp.round_pack(1, 1, fmt.emax + 1, fmt) == fmt.inf | fmt.sign_bit


# -- single operations ---------------------------------------------------------------------------

@pytest.mark.parametrize("fmt_in", [FP16, BF16], ids=["fp16", "bf16"])
def test_mul_matches_reference(fmt_in):
    rng = random.Random(SEED)
    specials = fp.special_values(fmt_in)
    pairs = [(a, b) for a in specials for b in specials]
    pairs += list(zip(random_bits(rng, fmt_in, 4000), random_bits(rng, fmt_in, 4000)))
    got = [fp.fp_mul(a, b, fmt_in, FP32) for a, b in pairs]
    assert got == [ref_mul(a, b, fmt_in, FP32) for a, b in pairs]
    a, b = np.array(pairs, dtype=np.uint32).T
    assert fp.fp_mul_vec(a, b, fmt_in).tolist() == got


def test_fp16_products_are_exact_and_bf16_underflows_round():
    rng = random.Random(SEED)
    for a, b in zip(random_bits(rng, FP16, 2000, True), random_bits(rng, FP16, 2000, True)):
        va, vb = fp.exact_value(a, FP16), fp.exact_value(b, FP16)
        assert fp.exact_value(fp.fp_mul(a, b), FP32) == va * vb
    # bf16 min normal squared is below fp32's smallest subnormal: rounds to (signed) zero
    assert fp.fp_mul(BF16.min_normal, BF16.min_normal | BF16.sign_bit, BF16) == FP32.sign_bit
    # bf16 max squared overflows to Inf
    assert fp.fp_mul(BF16.max_finite, BF16.max_finite, BF16) == FP32.inf


def test_add_matches_reference_and_numpy():
    rng = random.Random(SEED)
    specials = fp.special_values(FP32)
    pairs = [(a, b) for a in specials for b in specials]
    pairs += list(zip(random_bits(rng, FP32, 3000), random_bits(rng, FP32, 3000)))
    pairs += near_bits(rng, FP32, 6000, 30)
    pairs += [(a, a ^ FP32.sign_bit) for a in random_bits(rng, FP32, 300, True)]  # exact cancel
    got = [fp.fp_add(a, b) for a, b in pairs]
    want = [ref_sum([ref_value(a, FP32)[0], ref_value(b, FP32)[0]],
                    [a >> 31, b >> 31], FP32) for a, b in pairs]
    assert got == want
    a, b = np.array(pairs, dtype=np.uint32).T
    assert fp.fp_add_vec(a, b).tolist() == got


def test_add_rounding_corners():
    one = FP32.bias << 23
    half_ulp = (FP32.bias - 24) << 23
    assert fp.fp_add(one, half_ulp) == one                          # tie -> even
    assert fp.fp_add(one + 1, half_ulp) == one + 2                  # tie -> even (up)
    assert fp.fp_add(one, half_ulp + 1) == one + 1                  # above half (sticky)
    assert fp.fp_add(FP32.max_finite, FP32.max_finite) == FP32.inf  # overflow
    assert fp.fp_add(1, FP32.sign_bit | 1) == 0                     # subnormal cancel -> +0
    assert fp.fp_add(FP32.sign_bit, FP32.sign_bit) == FP32.sign_bit  # -0 + -0
    assert fp.fp_add(FP32.inf, FP32.inf | FP32.sign_bit) == FP32.qnan


@pytest.mark.parametrize("w", [1, 2, 3, 4, 5])
def test_int_mul_matches_reference(w):
    rng = random.Random(SEED + w)
    values = range(-(1 << (w - 1)), 1 << (w - 1))
    acts = fp.special_values(FP16) + random_bits(rng, FP16, 600)
    for a in acts:
        for v in values:
            va, sa = ref_value(a, FP16)
            if va is None or (isinstance(va, float) and v == 0):
                want = FP32.qnan
            elif isinstance(va, float):
                want = FP32.inf | ((sa ^ int(v < 0)) << 31)
            else:
                want = ref_round(va * v, FP32, zero_sign=sa ^ int(v < 0))
            assert fp.fp_int_mul(a, v, w) == want, (a, v)
    a = np.repeat(np.array(acts), len(values))
    v = np.tile(np.array(list(values)), len(acts))
    assert fp.fp_int_mul_vec(a, v).tolist() == [fp.fp_int_mul(x, int(y), w) for x, y in zip(a, v)]
    with pytest.raises(ValueError, match="w must be in 1..5, not 6"):
        fp.fp_int_mul(0, 0, 6)
    with pytest.raises(ValueError, match=f"v must be a signed {w}-bit integer"):
        fp.fp_int_mul(0, 1 << (w - 1), w)


# -- the fused dot product -------------------------------------------------------------------------

def ref_dot(a, b, acc, fmt_in):
    prods = [ref_product(x, y, fmt_in) for x, y in zip(a, b)]
    va, sa = ref_value(acc, FP32)
    return ref_sum([p[0] for p in prods] + [va], [p[1] for p in prods] + [sa], FP32)


DOT_KINDS = ("raw bits", "gaussian", "specials", "cancelling pairs")


def dot_cases(rng, fmt_in, n, g, kinds=range(4)):
    """Random dot products: raw patterns, realistic activations, specials, exact cancellation."""
    cases = []
    np_rng = np.random.default_rng(rng.getrandbits(32))
    for _ in range(n):
        kind = rng.choice(list(kinds))
        if kind == 0:
            a, b = random_bits(rng, fmt_in, g), random_bits(rng, fmt_in, g)
            acc = rng.getrandbits(32)
        elif kind == 1:
            x = np_rng.standard_normal(2 * g).astype(np.float32)
            bits = fp.from_float(x) >> 16 if fmt_in == BF16 else \
                x.astype(np.float16).view(np.uint16)
            a, b = [int(t) for t in bits[:g]], [int(t) for t in bits[g:]]
            acc = int(fp.from_float(np.float32(np_rng.standard_normal() * 4))[()])
        elif kind == 2:
            sp = fp.special_values(fmt_in)
            a = [rng.choice(sp) for _ in range(g)]
            b = [rng.choice(sp) for _ in range(g)]
            acc = rng.choice(fp.special_values(FP32))
        else:                                   # pairs of products that cancel exactly
            a = random_bits(rng, fmt_in, g, True)
            b = random_bits(rng, fmt_in, g, True)
            for i in range(0, g - 1, 2):
                a[i + 1], b[i + 1] = a[i] ^ fmt_in.sign_bit, b[i]
            acc = rng.choice([0, FP32.sign_bit, rng.getrandbits(32)])
        cases.append((a, b, acc))
    return cases


@pytest.mark.parametrize("fmt_in", [FP16, BF16], ids=["fp16", "bf16"])
def test_dot_with_wide_window_is_exactly_rounded(fmt_in):
    """With a frame wide enough that no bit is shifted out, the fused sum rounds only once."""
    rng = random.Random(SEED)
    for a, b, acc in dot_cases(rng, fmt_in, 1500, 4):
        assert fp.fp_dot(a, b, acc, fmt_in, window=700) == ref_dot(a, b, acc, fmt_in), (a, b, acc)


def _bits_lost(a, b, acc, fmt_in, window):
    terms = [fp._product_term(x, y, fmt_in) for x, y in zip(a, b)] + [fp._term(acc, FP32)]
    live = [t for t in terms if t[0] == "finite"]
    if not live or len(live) < len(terms) and any(t[0] in ("inf", "nan") for t in terms):
        return False
    top = max(t[3] + t[4] for t in live)
    return any(t[2] % (1 << max(0, top - window - t[3])) for t in live if top - window > t[3])


@pytest.mark.parametrize("fmt_in", [FP16, BF16], ids=["fp16", "bf16"])
def test_dot_default_window_deviates_only_when_bits_are_shifted_out(fmt_in):
    """With the default 32-bit frame, the result equals one exact rounding unless some term
    lost bits to the sticky. The deviation rate per input class is measured and printed
    (``pytest -s``); on Gaussian data it must stay rare."""
    rng = random.Random(SEED + 1)
    window = fp.dot_window(FP32)
    assert window == 32
    rates = {}
    for kind, label in enumerate(DOT_KINDS):
        cases = dot_cases(rng, fmt_in, 1000, 4, kinds=[kind])
        deviations = 0
        for a, b, acc in cases:
            got, want = fp.fp_dot(a, b, acc, fmt_in), ref_dot(a, b, acc, fmt_in)
            if got != want:
                assert _bits_lost(a, b, acc, fmt_in, window), (a, b, acc)
                deviations += 1
        rates[label] = deviations / len(cases)
        print(f"{fmt_in.name} g=4 {label}: {deviations} of {len(cases)} differ from one "
              "exact rounding")
    assert rates["gaussian"] < 0.05


def test_dot_single_product_is_fused_multiply_add():
    """g = 1 is an FMA: correctly rounded when both factors are normal (the product's MSB is
    then one of the top two bits of its field); a subnormal factor leaves leading zeros in the
    field, so fewer bits fit the frame and the result may deviate, but only by lost bits."""
    rng = random.Random(SEED + 2)
    deviations = 0
    for _ in range(4000):
        a, b, c = rng.getrandbits(16), rng.getrandbits(16), rng.getrandbits(32)
        got = fp.fp_dot([a], [b], c)
        # fp16 x fp16 is exact in fp32, so mul then add is one exact rounding of a*b + c
        want = fp.fp_add(fp.fp_mul(a, b), c)
        assert want == ref_dot([a], [b], c, FP16)
        subnormal = any(x & 0x7C00 == 0 and x & 0x3FF for x in (a, b))
        if got != want:
            assert subnormal and _bits_lost([a], [b], c, FP16, fp.dot_window(FP32)), (a, b, c)
            deviations += 1
    print(f"fp16 FMA: {deviations} of 4000 random patterns differ from one exact rounding")


def test_dot_rejects_bad_arguments():
    with pytest.raises(ValueError, match="a and b must have the same length, not 2 and 1"):
        fp.fp_dot([0, 0], [0], 0)
    with pytest.raises(ValueError, match="window must be >= every term width 22, not 20"):
        fp.fp_dot([0x3C00], [0x3C00], 0x3F800000, window=20)
