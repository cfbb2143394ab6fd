"""Vectorized fused dot product: :func:`gen.fp.fp_dot` for many dot products at once.

The scalar golden model works on Python integers, one dot product at a time (about 70 us
each); the 10^6-operation cocotb runs of the dot-product units need the same bits for every
operation. This module computes them with NumPy int64 arrays, step for step as
:func:`gen.fp.fused_sum` and :func:`gen.fp.round_pack` do (decode, exact products, alignment
to the largest top ``T`` in a ``window``-bit frame with one sticky OR per term, one signed
integer sum, one RNE rounding). ``tests/test_fp_golden.py`` checks it bit-exactly against
``gen.fp.fp_dot`` on random and special operands.

int64 suffices because every term is at most ``window`` bits after alignment and the sum of
``g + 1`` of them stays below ``2**(window + bit_length(g + 1))``; :func:`fp_dot_vec` refuses a
``window`` for which that exceeds 62 bits.
"""
from __future__ import annotations

import numpy as np

from .fp import FP16, FP32, dot_window, fp_format

__all__ = ["decode_vec", "round_pack_vec", "fp_dot_vec"]

ZERO, FINITE, INF, NAN = 0, 1, 2, 3


def decode_vec(bits, fmt):
    """``(kind, sign, sig, e_lsb)`` int64 arrays of ``fmt`` patterns (as ``gen.fp.decode``;
    kind is ZERO, FINITE, INF or NAN, ``sig``/``e_lsb`` are 0 unless finite)."""
    bits = np.asarray(bits, dtype=np.int64)
    sign = (bits >> (fmt.width - 1)) & 1
    e = (bits >> fmt.man_bits) & fmt.exp_all_ones
    man = bits & ((1 << fmt.man_bits) - 1)
    kind = np.where(e == fmt.exp_all_ones, np.where(man != 0, NAN, INF),
                    np.where((e == 0) & (man == 0), ZERO, FINITE))
    finite = kind == FINITE
    sig = np.where(finite, man | np.where(e != 0, 1 << fmt.man_bits, 0), 0)
    e_lsb = np.where(finite, np.maximum(e, 1) - fmt.bias - fmt.man_bits, 0)
    return kind, sign, sig, e_lsb


def round_pack_vec(sign, mag, e_lsb, fmt):
    """int64 bit patterns of ``(-1)**sign * mag * 2**e_lsb`` rounded RNE into ``fmt``
    (``gen.fp.round_pack`` element-wise; ``0 <= mag < 2**53``)."""
    sign, mag, e_lsb = (np.asarray(x, dtype=np.int64) for x in (sign, mag, e_lsb))
    if np.any(mag < 0) or np.any(mag >= 1 << 53):
        raise ValueError("mag must be in 0..2**53 - 1")
    # bit length of mag: exact through float64 below 2**53 (frexp: mag = m * 2**e, m in [.5, 1))
    length = np.frexp(mag.astype(np.float64))[1].astype(np.int64)
    e_eff = np.maximum(e_lsb + length - 1, fmt.emin)
    shift = (e_eff - fmt.man_bits) - e_lsb
    # a right shift of 62 already leaves q = 0 and rest < half for every mag < 2**53
    right = np.clip(shift, 1, 62)
    q = mag >> right
    rest = mag & ((np.int64(1) << right) - 1)
    half = np.int64(1) << (right - 1)
    q = q + ((rest > half) | ((rest == half) & (q & 1 == 1)))
    q = np.where(shift > 0, q, mag << np.clip(-shift, 0, 62))
    body = np.minimum(((e_eff + fmt.bias - 1) << fmt.man_bits) + q, fmt.inf)
    return np.where(mag == 0, 0, body) | (sign << (fmt.width - 1))


def fp_dot_vec(a, b, acc, fmt_in=FP16, fmt_acc=FP32, window=None):
    """Fused ``acc + sum_i a[:, i] * b[:, i]`` for every row: ``a``, ``b`` are ``n x g``
    patterns of ``fmt_in``, ``acc`` ``n`` patterns of ``fmt_acc``; returns ``n`` uint64
    patterns of ``fmt_acc``, equal to ``gen.fp.fp_dot`` row by row."""
    fmt_in, fmt_acc = fp_format(fmt_in), fp_format(fmt_acc)
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    acc = np.asarray(acc, dtype=np.int64)
    if a.ndim != 2 or a.shape != b.shape or acc.shape != (a.shape[0],):
        raise ValueError(f"a and b must be n x g and acc n, not {a.shape}, {b.shape} and "
                         f"{acc.shape}")
    n, g = a.shape
    window = dot_window(fmt_acc) if window is None else window
    widths = [2 * fmt_in.sig_bits] * g + [fmt_acc.sig_bits]
    if max(widths) > window:
        raise ValueError(f"window must be >= every term width {max(widths)}, not {window}")
    if window + (g + 1).bit_length() > 62:
        raise ValueError(f"window must be <= {62 - (g + 1).bit_length()} for int64 sums "
                         f"of {g + 1} terms, not {window}")
    ka, sa, ma, ea = decode_vec(a, fmt_in)
    kb, sb, mb, eb = decode_vec(b, fmt_in)
    kp = np.where((ka == NAN) | (kb == NAN) | ((ka == ZERO) & (kb == INF))
                  | ((ka == INF) & (kb == ZERO)), NAN,
                  np.where((ka == INF) | (kb == INF), INF,
                           np.where((ka == ZERO) | (kb == ZERO), ZERO, FINITE)))
    kc, sc, mc, ec = decode_vec(acc, fmt_acc)
    kind = np.concatenate([kp, kc[:, None]], axis=1)
    sign = np.concatenate([sa ^ sb, sc[:, None]], axis=1)
    sig = np.concatenate([ma * mb, mc[:, None]], axis=1)
    width = np.array(widths, dtype=np.int64)
    top_i = np.concatenate([ea + eb, ec[:, None]], axis=1) + width
    live = kind == FINITE

    is_inf = kind == INF
    pos_inf = np.any(is_inf & (sign == 0), axis=1)
    neg_inf = np.any(is_inf & (sign == 1), axis=1)
    nan = np.any(kind == NAN, axis=1) | (pos_inf & neg_inf)

    lowest = np.iinfo(np.int64).min // 2
    top = np.max(np.where(live, top_i, lowest), axis=1)
    framed = sig << (window - width)
    shift = np.where(live, top[:, None] - top_i, 0)
    s = np.minimum(shift, window)
    aligned = (framed >> s) | ((framed & ((np.int64(1) << s) - 1)) != 0)
    aligned = np.where(shift >= window + 1, 1, aligned)
    aligned = np.where(live, aligned, 0)
    total = np.sum(np.where(sign == 1, -aligned, aligned), axis=1)
    any_live = np.any(live, axis=1)
    safe_top = np.where(any_live, top, 0)
    out = round_pack_vec((total < 0).astype(np.int64), np.abs(total), safe_top - window, fmt_acc)
    out = np.where(total == 0, 0, out)
    out = np.where(any_live, out, np.where(np.all(sign == 1, axis=1), fmt_acc.sign_bit, 0))
    out = np.where(pos_inf | neg_inf, fmt_acc.inf | np.where(neg_inf, fmt_acc.sign_bit, 0), out)
    out = np.where(nan, fmt_acc.qnan, out)
    return out.astype(np.uint64)
