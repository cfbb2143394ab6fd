"""Floating-point formats and the bit-exact golden model of the FP units in ``hw/fp/``.

Every function works on bit patterns (Python ints, or uint16/uint32 arrays for the ``*_vec``
variants) and mirrors the hardware step by step; ``tests/test_fp_golden.py`` checks it against
an exact ``fractions.Fraction`` reference written independently.

Arithmetic rules (the project's; docs/fp.md):

* Rounding is round-to-nearest, ties to even (RNE), everywhere. Overflow rounds to +-Inf.
* Subnormals are full IEEE 754 on inputs and outputs (no flush to zero).
* Any NaN operand gives the canonical quiet NaN (sign 0, exponent all ones, mantissa MSB only);
  ``Inf - Inf`` and ``0 * Inf`` give it too. Inf otherwise propagates with its sign.
* An exact zero result is +0, except when every addend is -0 (then -0); a product's zero
  carries the XOR of the signs, as in IEEE 754.
* A value is ``sig * 2**e_lsb`` with an integer significand ``sig`` (hidden bit included) and
  the exponent ``e_lsb`` of its least significant bit.

The **fused dot product** (:func:`fp_dot`) keeps the ``g`` products exact, aligns every term
(products and the accumulator) to the largest *top* ``T = max(e_lsb_i + width_i)`` in a frame
of ``window`` bits below ``T`` (default :func:`dot_window`, 32 for FP32), jams the bits
shifted out of the frame into the frame's LSB (sticky, one OR per term), adds the terms as
integers in one adder, then normalizes and rounds once (RNE) into the accumulator format.
Two-operand addition (:func:`fp_add`) is the same circuit with one term less and is correctly
rounded (guard, round and sticky bits).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

__all__ = ["FPFormat", "FP16", "BF16", "FP32", "FORMATS", "fp_format", "INT_W_RANGE",
           "decode", "round_pack", "fused_sum", "dot_window", "DOT_EXTRA_BITS", "fp_mul",
           "fp_add", "fp_int_mul", "fp_dot",
           "fp_dot_int", "fp_mac_tile", "fp_mac_stream", "unpack_fp_results",
           "default_window", "fp_mul_vec", "fp_add_vec", "fp_int_mul_vec", "to_float",
           "from_float", "special_values"]

#: signed integer widths of the FP x INT multiplier (a ``w_bits`` <= 4 weight code decodes to
#: ``w_bits + 1`` signed bits: a 4-bit uint reaches 15)
INT_W_RANGE = (1, 5)


@dataclass(frozen=True)
class FPFormat:
    """An IEEE 754-style binary format: 1 sign bit, ``exp_bits`` exponent, ``man_bits`` fraction."""
    name: str
    exp_bits: int
    man_bits: int

    def __post_init__(self):
        if not 2 <= self.exp_bits <= 11:
            raise ValueError(f"exp_bits must be in 2..11, not {self.exp_bits}")
        if not 1 <= self.man_bits <= 52:
            raise ValueError(f"man_bits must be in 1..52, not {self.man_bits}")

    @property
    def width(self):
        return 1 + self.exp_bits + self.man_bits

    @property
    def sig_bits(self):
        """Significand bits with the hidden bit."""
        return self.man_bits + 1

    @property
    def bias(self):
        return (1 << (self.exp_bits - 1)) - 1

    @property
    def emin(self):
        """Unbiased exponent of the smallest normal number (also of every subnormal)."""
        return 1 - self.bias

    @property
    def emax(self):
        return self.bias

    @property
    def exp_all_ones(self):
        return (1 << self.exp_bits) - 1

    @property
    def inf(self):
        """Bit pattern of +Inf (OR ``sign_bit`` for -Inf)."""
        return self.exp_all_ones << self.man_bits

    @property
    def qnan(self):
        """The canonical quiet NaN every NaN result is."""
        return self.inf | (1 << (self.man_bits - 1))

    @property
    def sign_bit(self):
        return 1 << (self.width - 1)

    @property
    def max_finite(self):
        return self.inf - 1

    @property
    def min_normal(self):
        return 1 << self.man_bits


FP16 = FPFormat("fp16", 5, 10)
BF16 = FPFormat("bf16", 8, 7)
FP32 = FPFormat("fp32", 8, 23)
FORMATS = {f.name: f for f in (FP16, BF16, FP32)}


def fp_format(value):
    """``FPFormat`` from itself or its name (``fp16``, ``bf16``, ``fp32``)."""
    if isinstance(value, FPFormat):
        return value
    if isinstance(value, str) and value.lower() in FORMATS:
        return FORMATS[value.lower()]
    raise ValueError(f"FP format must be one of {', '.join(FORMATS)}, not {value!r}")


def _check_bits(bits, fmt, name="operand"):
    if not isinstance(bits, (int, np.integer)) or not 0 <= bits < (1 << fmt.width):
        raise ValueError(f"{name} must be a {fmt.width}-bit pattern of {fmt.name}, not {bits!r}")
    return int(bits)


def decode(bits, fmt):
    """``(kind, sign, sig, e_lsb)``; kind is ``zero``, ``finite``, ``inf`` or ``nan``.

    Finite values are ``(-1)**sign * sig * 2**e_lsb``; a subnormal has no hidden bit and the
    exponent of the smallest normal number.
    """
    bits = _check_bits(bits, fmt)
    sign = bits >> (fmt.width - 1)
    e = (bits >> fmt.man_bits) & fmt.exp_all_ones
    man = bits & ((1 << fmt.man_bits) - 1)
    if e == fmt.exp_all_ones:
        return ("nan" if man else "inf"), sign, 0, 0
    if e == 0 and man == 0:
        return "zero", sign, 0, 0
    sig = man | ((1 << fmt.man_bits) if e else 0)
    return "finite", sign, sig, max(e, 1) - fmt.bias - fmt.man_bits


def round_pack(sign, mag, e_lsb, fmt):
    """Bits of ``(-1)**sign * mag * 2**e_lsb`` rounded RNE into ``fmt`` (``mag >= 0`` int).

    Mirrors ``hw.fp.common.round_pack``: normalize so the MSB is the hidden bit, or stop at the
    smallest normal exponent (subnormal); keep ``sig_bits``, round on the next bit with the OR
    of the rest as sticky; the exponent field is ``(biased exponent - 1) + carry``, so a carry
    out of the significand moves to the next binade and a subnormal rounds up into the normals.
    """
    if mag == 0:
        return sign << (fmt.width - 1)
    e_msb = e_lsb + mag.bit_length() - 1
    e_eff = max(e_msb, fmt.emin)
    shift = (e_eff - fmt.man_bits) - e_lsb          # right shift that leaves sig_bits or fewer
    if shift > 0:
        q, rest = mag >> shift, mag & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        q += rest > half or (rest == half and q & 1)
    else:
        q = mag << -shift
    body = ((e_eff + fmt.bias - 1) << fmt.man_bits) + q
    if body >= fmt.inf:
        body = fmt.inf
    return (sign << (fmt.width - 1)) | body


def default_window(fmt_acc):
    """Alignment frame of the two-operand adder: significand + guard, round and sticky bits
    (enough for a correctly rounded sum of two terms)."""
    return fmt_acc.sig_bits + 3


#: extra frame bits of the fused dot product beyond the accumulator's significand; measured
#: (docs/fp.md): with 3 (the adder's frame) 3 % (g = 4) to 13 % (g = 16) of Gaussian FP16 dot
#: products differ from one exact rounding, with 8 none of 1000 did
DOT_EXTRA_BITS = 8


def dot_window(fmt_acc):
    """Alignment frame of the fused dot product (and FMA): ``sig_bits + DOT_EXTRA_BITS``."""
    return fmt_acc.sig_bits + DOT_EXTRA_BITS


def fused_sum(terms, fmt_out, window):
    """Sum of ``terms`` = ``(kind, sign, sig, e_lsb, width)`` as the fused adder does it.

    ``width`` is the significand field of the term (its top is ``e_lsb + width``); every term is
    shifted right by ``T - top`` within a frame of ``window`` bits below ``T = max top`` of
    the non-zero finite terms, the shifted-out bits OR into the frame's LSB; the signed integer
    sum is rounded once.
    """
    kinds = [t[0] for t in terms]
    pos_inf = any(k == "inf" and t[1] == 0 for k, t in zip(kinds, terms))
    neg_inf = any(k == "inf" and t[1] == 1 for k, t in zip(kinds, terms))
    if "nan" in kinds or (pos_inf and neg_inf):
        return fmt_out.qnan
    if pos_inf or neg_inf:
        return fmt_out.inf | (fmt_out.sign_bit if neg_inf else 0)
    live = [t for t in terms if t[0] == "finite"]
    if not live:
        return fmt_out.sign_bit if all(t[1] for t in terms) else 0
    top = max(e + w for _, _, _, e, w in live)
    total = 0
    for _, sign, sig, e_lsb, width in live:
        if width > window:
            raise ValueError(f"window must be >= every term width {width}, not {window}")
        framed = sig << (window - width)             # the term's field at the frame's top
        shift = top - (e_lsb + width)
        if shift >= window + 1:                      # everything goes to sticky
            aligned = 1
        else:
            aligned = framed >> shift
            aligned |= int(framed & ((1 << shift) - 1) != 0)
        total += -aligned if sign else aligned
    if total == 0:
        return 0
    return round_pack(int(total < 0), abs(total), top - window, fmt_out)


def _product_term(a, b, fmt_in, fmt_b=None):
    fmt_b = fmt_b or fmt_in
    ka, sa, ma, ea = decode(a, fmt_in)
    kb, sb, mb, eb = decode(b, fmt_b)
    sign = sa ^ sb
    width = fmt_in.sig_bits + fmt_b.sig_bits
    if "nan" in (ka, kb) or {ka, kb} == {"zero", "inf"}:
        return ("nan", 0, 0, 0, width)
    if "inf" in (ka, kb):
        return ("inf", sign, 0, 0, width)
    if "zero" in (ka, kb):
        return ("zero", sign, 0, 0, width)
    return ("finite", sign, ma * mb, ea + eb, width)


def _term(bits, fmt):
    kind, sign, sig, e_lsb = decode(bits, fmt)
    return (kind, sign, sig, e_lsb, fmt.sig_bits)


def fp_mul(a, b, fmt_in=FP16, fmt_out=FP32, fmt_b=None):
    """``a * b`` with the exact product rounded once into ``fmt_out`` (exact for fp16 -> fp32);
    ``b`` is of ``fmt_b`` (default ``fmt_in``)."""
    fmt_in, fmt_out = fp_format(fmt_in), fp_format(fmt_out)
    fmt_b = fp_format(fmt_b) if fmt_b is not None else fmt_in
    return _pack_term(_product_term(a, b, fmt_in, fmt_b), fmt_out)


def _pack_term(term, fmt_out):
    """One exact product term (``_product_term`` / ``_int_term``) rounded once into
    ``fmt_out``: NaN and Inf as the format's canonical ones, else RNE."""
    kind, sign, sig, e_lsb, _ = term
    if kind == "nan":
        return fmt_out.qnan
    if kind == "inf":
        return fmt_out.inf | (sign << (fmt_out.width - 1))
    return round_pack(sign, sig, e_lsb, fmt_out)


def fp_add(a, b, fmt=FP32):
    """``a + b`` (correctly rounded; the fused adder with two terms)."""
    fmt = fp_format(fmt)
    return fused_sum([_term(a, fmt), _term(b, fmt)], fmt, default_window(fmt))


def _int_term(a, v, w, fmt_in):
    if not INT_W_RANGE[0] <= w <= INT_W_RANGE[1]:
        raise ValueError(f"w must be in {INT_W_RANGE[0]}..{INT_W_RANGE[1]}, not {w}")
    if not -(1 << (w - 1)) <= v < (1 << (w - 1)):
        raise ValueError(f"v must be a signed {w}-bit integer, not {v}")
    kind, sign, sig, e_lsb = decode(a, fmt_in)
    sign ^= int(v < 0)
    width = fmt_in.sig_bits + w
    if kind == "nan" or (kind == "inf" and v == 0):
        return ("nan", 0, 0, 0, width)
    if kind == "inf":
        return ("inf", sign, 0, 0, width)
    if kind == "zero" or v == 0:
        return ("zero", sign, 0, 0, width)
    return ("finite", sign, sig * abs(v), e_lsb, width)


def fp_int_mul(a, v, w, fmt_in=FP16, fmt_out=FP32):
    """``a * v`` for a signed ``w``-bit integer ``v`` (the integer 0 counts as +0), exact."""
    fmt_in, fmt_out = fp_format(fmt_in), fp_format(fmt_out)
    return _pack_term(_int_term(a, v, w, fmt_in), fmt_out)


def fp_dot(a, b, acc, fmt_in=FP16, fmt_acc=FP32, window=None):
    """Fused ``acc + sum_i a[i] * b[i]``: exact products, one alignment, one rounding."""
    fmt_in, fmt_acc = fp_format(fmt_in), fp_format(fmt_acc)
    if len(a) != len(b):
        raise ValueError(f"a and b must have the same length, not {len(a)} and {len(b)}")
    window = dot_window(fmt_acc) if window is None else window
    terms = [_product_term(x, y, fmt_in) for x, y in zip(a, b)] + [_term(acc, fmt_acc)]
    return fused_sum(terms, fmt_acc, window)


def fp_dot_int(a, v, w, acc, fmt_in=FP16, fmt_acc=FP32, window=None):
    """Fused ``acc + sum_i a[i] * v[i]`` for signed ``w``-bit integers ``v`` (exact products)."""
    fmt_in, fmt_acc = fp_format(fmt_in), fp_format(fmt_acc)
    if len(a) != len(v):
        raise ValueError(f"a and v must have the same length, not {len(a)} and {len(v)}")
    window = dot_window(fmt_acc) if window is None else window
    terms = [_int_term(x, int(y), w, fmt_in) for x, y in zip(a, v)] + [_term(acc, fmt_acc)]
    return fused_sum(terms, fmt_acc, window)


def fp_mac_tile(acts, values, scales, kind, value_bits, act=FP16, g=4):
    """FP32 result bits of one FP MAC operation (``hw/fp_mac_array.py``), ``m x n``.

    ``acts``: ``m x K`` activation patterns of ``act``; ``values``: ``K x n`` signed weight
    values (``value_bits`` bits); ``scales``: ``n`` per-output-channel scales in ``act``.
    K is zero-padded (activation +0) to whole groups of ``g``; per group and PE,
    ``acc = fused(acc + sum of g products)`` from ``acc = +0``.

    * ``dequant``: ``wq = fp_int_mul(scale[c], value, act -> act)`` (RNE), then
      ``fp_dot(acts, wq, acc)``;
    * ``direct``: ``fp_dot_int(acts, values, acc)``, then ``fp_mul(acc, scale[c])`` (FP32 x
      ``act`` rounded once into FP32) at the output.
    """
    act = fp_format(act)
    acts = np.asarray(acts, dtype=np.int64)
    values = np.asarray(values, dtype=np.int64)
    m, k = acts.shape
    pad = -k % g
    acts = np.pad(acts, ((0, 0), (0, pad)))
    values = np.pad(values, ((0, pad), (0, 0)))
    n = values.shape[1]
    out = np.zeros((m, n), dtype=np.uint64)
    for c in range(n):
        col = [int(x) for x in values[:, c]]
        if kind == "dequant":
            col = [fp_int_mul(int(scales[c]), x, value_bits, act, act) for x in col]
        for r in range(m):
            acc = 0
            for j in range(0, len(col), g):
                a = [int(x) for x in acts[r, j:j + g]]
                if kind == "dequant":
                    acc = fp_dot(a, col[j:j + g], acc, act)
                else:
                    acc = fp_dot_int(a, col[j:j + g], value_bits, acc, act)
            out[r, c] = acc if kind == "dequant" else fp_mul(acc, int(scales[c]), FP32, FP32,
                                                             act)
    return out


# -- vectorized single operations (NumPy's IEEE float32 arithmetic) --------------------------
# A single IEEE operation is correctly rounded, so NumPy's float32 multiply/add gives the same
# bits as the integer model above except for NaN payloads (made canonical here). The tests check
# that equality on random and special inputs; the cocotb tests use these for 10^6 vectors.

def to_float(bits, fmt):
    """float32 array of bit patterns of ``fmt`` (exact: fp16/bf16 embed in fp32)."""
    bits = np.asarray(bits)
    if fmt == FP16:
        return bits.astype(np.uint16).view(np.float16).astype(np.float32)
    if fmt == BF16:
        return (bits.astype(np.uint32) << 16).view(np.float32)
    if fmt == FP32:
        return bits.astype(np.uint32).view(np.float32)
    raise ValueError(f"fmt must be fp16, bf16 or fp32, not {fmt!r}")


def from_float(x):
    """uint32 bit patterns of a float32 array, every NaN made the canonical quiet NaN."""
    x = np.asarray(x, dtype=np.float32)
    out = x.view(np.uint32).copy()
    out[np.isnan(x)] = FP32.qnan
    return out


def fp_mul_vec(a, b, fmt_in=FP16):
    with np.errstate(all="ignore"):
        return from_float(to_float(a, fmt_in) * to_float(b, fmt_in))


def fp_add_vec(a, b):
    with np.errstate(all="ignore"):
        return from_float(to_float(a, FP32) + to_float(b, FP32))


def fp_int_mul_vec(a, v, fmt_in=FP16):
    with np.errstate(all="ignore"):
        return from_float(to_float(a, fmt_in) * np.asarray(v).astype(np.float32))


def special_values(fmt):
    """Bit patterns of every special class: +-0, subnormals, min/max normal, +-Inf, NaNs, 1."""
    man_mask = (1 << fmt.man_bits) - 1
    one = fmt.bias << fmt.man_bits
    base = [0, 1, 2, man_mask >> 1, man_mask, fmt.min_normal, fmt.min_normal + 1,
            one, one + 1, one - 1, one + (1 << (fmt.man_bits - 1)), fmt.max_finite,
            fmt.max_finite - 1, fmt.inf, fmt.qnan, fmt.inf | 1, fmt.inf | man_mask,
            (fmt.bias + 1) << fmt.man_bits]
    return sorted({x | s for x in base for s in (0, fmt.sign_bit)})


def exact_value(bits, fmt):
    """Fraction value of a finite pattern (helper for tests and docs)."""
    kind, sign, sig, e_lsb = decode(bits, fmt)
    if kind in ("inf", "nan"):
        raise ValueError(f"{kind} has no exact value")
    return (-1) ** sign * Fraction(sig) * Fraction(2) ** e_lsb


def fp_mac_stream(cfg, acts, weights, scales, fmt, w_bits, kind, act=FP16):
    """One FP MAC-array operation: ``(cmd, scale beat, act beats, weight beats, expected)``.

    ``acts``: ``m x K`` patterns of ``act``; ``weights``: ``K x n`` integer weight values of
    ``fmt`` at ``w_bits``; ``scales``: ``n`` patterns of ``act``; expected: ``m x n`` FP32 bits.
    """
    from gen.golden import pack_cmd, pack_weight_codes
    act = fp_format(act)
    acts = np.asarray(acts, dtype=np.int64)
    m, k = acts.shape
    groups = -(-k // cfg.g)
    padded = np.pad(acts, ((0, 0), (0, groups * cfg.g - k))).reshape(m, groups, cfg.g)
    act_beats = [sum(int(x) << (i * act.width) for i, x in enumerate(padded[:, j, :].ravel()))
                 for j in range(groups)]
    scale_beat = sum(int(s) << (c * act.width) for c, s in enumerate(scales))
    # the hardware pads K with activation +0 and weight code 0, which decodes to the format's
    # lowest value (int/ternary -2**(w-1), binary -1, uint 0): with an Inf/NaN scale the padded
    # products are NaN, as in the hardware, so the golden pads the same way
    from gen.config import WeightFormat
    pad_value = {WeightFormat.UINT: 0, WeightFormat.BINARY: -1}.get(
        WeightFormat.parse(fmt), -(1 << (w_bits - 1)))
    padded_w = np.pad(np.asarray(weights, dtype=np.int64), ((0, groups * cfg.g - k), (0, 0)),
                      constant_values=pad_value)
    expected = fp_mac_tile(padded.reshape(m, -1), padded_w, scales, kind, cfg.direct_width,
                           act, cfg.g)
    return (pack_cmd(cfg, fmt, w_bits, groups), scale_beat, act_beats,
            pack_weight_codes(cfg, np.asarray(weights), fmt, w_bits), expected)


def unpack_fp_results(n, beats):
    """``o_result`` beats of an FP MAC array (``n`` FP32 per row) to an ``m x n`` array."""
    return np.array([[(int(b) >> (32 * c)) & 0xFFFFFFFF for c in range(n)] for b in beats],
                    dtype=np.uint64)
