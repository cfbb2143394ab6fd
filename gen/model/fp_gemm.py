"""Vectorized FP-activation LUT GEMMs (docs/fp-lut.md), bit-exact with ``gen.fp_lut``.

``gen.fp_lut`` is the golden model: it follows the hardware step by step with the exact FP
units of ``gen.fp``, in Python. That is far too slow for model-sized layers (a 326 x 1536 x 384
projection is 48 M scale-stage steps at ``scale_block`` 1), so this module computes the same
bits with NumPy, and ``tests/test_fp_layer.py`` checks it against ``gen.fp_lut`` bit for bit.

How each rounding is kept exact with hardware floats (``p`` = 24, FP32's precision):

* tables: ``T[idx] = (((±a_0) + ±a_1) + ±a_2) + ...`` in ``np.float32``: every addition is one
  IEEE RNE rounding into FP32, as ``gen.fp.fp_add`` (FP16/BF16 values are exact in FP32);
* table scale ``s = RNE_fp32(amax / Qmax)``: the quotient in float64, then to FP32. Double
  rounding of a quotient of p-bit numbers is innocuous when the first precision is at least
  ``2p + 2`` = 50 <= 53 (Figueroa, "When is double rounding innocuous?", SIGNUM 1995);
* ``q = RNE_int(T / s)``: the float64 quotient is within ``2**-37`` of the exact one (``|q| <
  2**15``), and an exact quotient that is not a half-integer is at least ``2**-25`` away from
  one (``T`` and ``s`` have 24-bit significands, ``|T| >= s/2``), so ``np.rint`` rounds it as
  the exact quotient would;
* the integer array (``r2`` per scale block) is exact integer arithmetic: a float64 matmul of
  the quantized tables with a one-hot weight matrix ``W_eff[j, e, c] = sum_p 2**p [idx_p(j, c)
  == e]`` (every partial sum an integer below ``2**53``);
* the FP stage ``acc + r2 * ts * ws / 2``: the product is exact in x87 extended precision
  (64-bit significand: ``|r2| < 2**28``, 24 + 11 significand bits), the sum is rounded **to
  odd** at 64 bits (TwoSum gives the exact error; an inexact sum with an even last bit moves one
  ulp towards the error), and round-to-odd at ``>= p + 2`` bits followed by RNE to ``p`` bits
  is the correctly rounded sum (Boldo and Melquiond, IEEE TC 57(4), 2008);
* ``fp`` tables: per cycle ``acc + entry * 2**plane`` (two FP32-representable terms) in float64,
  then to FP32 (innocuous double rounding of a sum, as above); the final ``(acc + corr) / 2``
  with the 28-bit ``corr`` through the same round-to-odd sum.
"""
from __future__ import annotations

import numpy as np

from gen.config import LutConfig, WeightFormat
from gen.fp import FP16
from gen.golden import weight_codes

__all__ = ["act_values", "to_act_bits", "full_tables", "quantize_tables_fast", "q_r2",
           "q_mpgemm_fast", "fp_mpgemm_fast", "round_sum_fp32", "FP32_QNAN"]

#: the canonical FP32 NaN (docs/fp.md)
FP32_QNAN = 0x7FC00000
_LD = np.longdouble
if np.finfo(_LD).nmant != 63 or np.dtype(_LD).itemsize != 16:   # pragma: no cover
    raise ImportError("gen.model.fp_gemm needs an x87 extended long double (64-bit significand)")


def act_values(bits, act_format):
    """FP16/BF16 bit patterns (uint16) -> their values as float32 (exact)."""
    bits = np.asarray(bits, dtype=np.uint16)
    if act_format == "fp16":
        return bits.view(np.float16).astype(np.float32)
    if act_format == "bf16":
        return (bits.astype(np.uint32) << 16).view(np.float32)
    raise ValueError(f"act_format must be fp16 or bf16, not {act_format!r}")


def to_act_bits(x, act_format):
    """Float values -> FP16/BF16 bit patterns, rounded to nearest even (NaN canonical)."""
    x = np.asarray(x)
    if act_format == "fp16":
        with np.errstate(over="ignore"):            # beyond FP16's range: +-Inf, as RNE says
            b = x.astype(np.float64).astype(np.float16).view(np.uint16)
        # NumPy keeps a NaN's sign and payload; the docstring promises the canonical one
        return np.where(np.isnan(x.astype(np.float64)), np.uint16(FP16.qnan), b)
    if act_format == "bf16":
        with np.errstate(invalid="ignore"):         # a signalling NaN: canonical below
            f = np.asarray(x, dtype=np.float32)
        b = f.view(np.uint32).astype(np.uint64)
        r = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)
        return np.where(np.isnan(f), np.uint16(0x7FC0), r)
    raise ValueError(f"act_format must be fp16 or bf16, not {act_format!r}")


def full_tables(acts, cfg: LutConfig, pad):
    """``M x G x 2**g`` float32 tables of the activation patterns ``acts`` (M x K), K padded
    with +0 to a multiple of ``pad`` activations; entry ``idx`` adds ``+a_i`` where bit ``i`` of
    ``idx`` is 1 and ``-a_i`` where it is 0, left to right, each sum rounded into FP32."""
    a = act_values(acts, cfg.act_format)
    rows, k = a.shape
    a = np.pad(a, ((0, 0), (0, -(-k // pad) * pad - k)))
    a = a.reshape(rows, -1, cfg.g)
    idx = np.arange(1 << cfg.g)
    def term(i):
        return np.where((idx >> i) & 1, a[:, :, i, None], -a[:, :, i, None])
    t = term(0)
    for i in range(1, cfg.g):
        t = t + term(i)
    return t.astype(np.float32)


def quantize_tables_fast(tables, cfg: LutConfig):
    """``(q, s)``: ``q`` int64 like ``tables`` (M x G x E, G a multiple of ``scale_block``),
    ``s`` float32 M x blocks; a block with a non-finite entry gets ``s`` = NaN and ``q`` = 0."""
    rows, groups, ent = tables.shape
    b = cfg.scale_block
    blk = tables.reshape(rows, groups // b, b * ent)
    finite = np.isfinite(blk).all(axis=2)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        amax = np.where(finite, np.abs(blk).max(axis=2), 0).astype(np.float32)
        s = _round_scales((amax.astype(np.float64) / cfg.table_max).astype(np.float32),
                          cfg.scale_sig_bits)
        q = np.rint(blk.astype(np.float64) / s[..., None].astype(np.float64))
    q = np.where((s > 0)[..., None] & finite[..., None], q, 0)
    q = np.clip(q, -cfg.table_max, cfg.table_max).astype(np.int64)
    s = np.where(finite, s, np.float32(np.nan))
    return q.reshape(rows, groups, ent), s


def _round_scales(s, p):
    """FP32 scales rounded (RNE) to ``p`` significant bits: ``gen.fp_lut.round_scale`` on
    every finite pattern (the scales here are finite and >= 0)."""
    k = 24 - p
    if k == 0:
        return s
    bits = s.view(np.uint32).astype(np.int64)
    keep, low, half = bits >> k, bits & ((1 << k) - 1), 1 << (k - 1)
    up = (low > half) | ((low == half) & (keep & 1 == 1))
    return ((keep + up) << k).astype(np.uint32).view(np.float32)


def _plane_indices(w, fmt, w_bits, cfg, k_pad):
    """``idx[p, j, c]``: the g-bit table index of plane ``p`` (bit ``p`` of the weight code),
    group ``j``, column ``c``; K zero-padded (the padded activations are 0)."""
    codes = weight_codes(w, fmt, w_bits)
    codes = np.pad(codes, ((0, k_pad - codes.shape[0]), (0, 0)))
    bits = (codes[None] >> np.arange(w_bits)[:, None, None]) & 1           # w x K x N
    bits = bits.reshape(w_bits, k_pad // cfg.g, cfg.g, -1)
    return np.einsum("pjin,i->pjn", bits, 1 << np.arange(cfg.g))


def _corr_factor(fmt, w_bits):
    """``r2 = acc + f * S`` (int, ternary: f = -1; uint: 2**w - 1); binary: None (2 * acc)."""
    fmt = WeightFormat.parse(fmt)
    if fmt is WeightFormat.BINARY:
        return None
    return (1 << w_bits) - 1 if fmt is WeightFormat.UINT else -1


def q_r2(q, idx, fmt, w_bits, cfg):
    """Twice the integer array's result of each scale block, one block at a time: yields
    ``M x N`` float64 arrays (exact integers) from the quantized tables ``q`` (M x G x E) and
    the plane indices ``idx``."""
    rows, groups, ent = q.shape
    b = cfg.scale_block
    n = idx.shape[2]
    weff = np.zeros((groups, ent, n))
    jj, cc = np.arange(groups)[:, None], np.arange(n)[None, :]
    for p in range(w_bits):
        np.add.at(weff, (jj, idx[p], cc), float(1 << p))
    f = _corr_factor(fmt, w_bits)
    qf = q.astype(np.float64)
    for k in range(groups // b):
        sl = slice(k * b, (k + 1) * b)
        acc = qf[:, sl].reshape(rows, -1) @ weff[sl].reshape(-1, n)
        if f is None:
            yield 2 * acc
        else:
            yield acc - f * qf[:, sl, 0].sum(axis=1)[:, None]     # S = -sum q[0]


def round_sum_fp32(a, b):
    """``RNE_fp32(a + b)`` of exact long-double (or float64) arrays, rounded once: TwoSum,
    round to odd at 64 bits, then RNE to FP32."""
    a = np.asarray(a, dtype=_LD)
    b = np.asarray(b, dtype=_LD)
    s = a + b
    bb = s - a
    err = (a - (s - bb)) + (b - bb)
    # the 64-bit significand is the low 8 bytes of the 16-byte x87 value (little endian)
    even = (s.reshape(-1).view(np.uint64)[::2] & np.uint64(1)) == 0
    fix = ((err != 0) & np.isfinite(s)).reshape(-1) & even
    if fix.any():
        s = s.reshape(-1).copy()
        e = err.reshape(-1)[fix]
        s[fix] = np.nextafter(s[fix], np.where(e > 0, _LD(np.inf), _LD(-np.inf)))
        s = s.reshape(err.shape)
    with np.errstate(over="ignore"):
        return s.astype(np.float32)


def _bits(x32):
    """FP32 values -> bit patterns, every NaN canonical."""
    x32 = np.asarray(x32, dtype=np.float32)
    return np.where(np.isnan(x32), np.uint32(FP32_QNAN), x32.view(np.uint32))


def _check(acts, w, cfg, table_format):
    if cfg.table_format != table_format:
        raise ValueError(f"table_format must be {table_format!r} here, not {cfg.table_format!r}")
    acts = np.asarray(acts, dtype=np.uint16)
    w = np.asarray(w, dtype=np.int64)
    if acts.shape[1] != w.shape[0]:
        raise ValueError(f"acts are {acts.shape} and w is {w.shape}: their K differ")
    if acts.shape[1] > cfg.k_max:
        raise ValueError(f"K must be at most k_max = {cfg.k_max}, not {acts.shape[1]}")
    return acts, w


def q_mpgemm_fast(acts, w, fmt, w_bits, cfg: LutConfig, wscales):
    """``q`` tables: the FP32 bit patterns (M x N) ``gen.fp_lut.lut_q_mpgemm`` returns.
    ``wscales``: N x blocks activation-format patterns (per output channel and scale block)."""
    acts, w = _check(acts, w, cfg, "q")
    cfg.check_op(fmt, w_bits)
    pad = cfg.scale_block * cfg.g
    tables = full_tables(acts, cfg, pad)
    q, ts = quantize_tables_fast(tables, cfg)
    idx = _plane_indices(w, fmt, w_bits, cfg, tables.shape[1] * cfg.g)
    ws = act_values(np.asarray(wscales, dtype=np.uint16), cfg.act_format)       # N x blocks
    if ws.shape != (w.shape[1], ts.shape[1]):
        raise ValueError(f"wscales must be {w.shape[1]} x {ts.shape[1]} (N x blocks), "
                         f"not {ws.shape}")
    acc = np.zeros((acts.shape[0], w.shape[1]), dtype=np.float32)
    ts, ws = ts.astype(_LD), ws.astype(_LD) / 2                 # / 2: exact
    with np.errstate(invalid="ignore", over="ignore"):
        for k, r2 in enumerate(q_r2(q, idx, fmt, w_bits, cfg)):
            acc = round_sum_fp32(acc, r2.astype(_LD) * ts[:, k, None] * ws[None, :, k])
    return _bits(acc)


def fp_mpgemm_fast(acts, w, fmt, w_bits, cfg: LutConfig, wscales):
    """``fp`` tables: the FP32 bit patterns (M x N) ``gen.fp_lut.lut_fp_mpgemm`` returns.
    ``wscales``: N activation-format patterns (one per output channel and operation)."""
    acts, w = _check(acts, w, cfg, "fp")
    cfg.check_op(fmt, w_bits)
    if cfg.tables_per_pe != 1:
        raise ValueError(f"tables_per_pe must be 1 here, not {cfg.tables_per_pe}")
    tables = full_tables(acts, cfg, cfg.g)
    ent = act_values(to_act_bits(tables, cfg.act_format), cfg.act_format).astype(np.float64)
    idx = _plane_indices(w, fmt, w_bits, cfg, tables.shape[1] * cfg.g)
    rows, n = tables.shape[0], w.shape[1]
    acc = np.zeros((rows, n), dtype=np.float32)
    s = np.zeros(rows, dtype=np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        for j in range(tables.shape[1]):
            for p in range(w_bits - 1, -1, -1):                   # planes MSB first
                e = np.take(ent[:, j], idx[p, j], axis=1)
                acc = (acc.astype(np.float64) + e * float(1 << p)).astype(np.float32)
            s = (s.astype(np.float64) - ent[:, j, 0]).astype(np.float32)
        f = _corr_factor(fmt, w_bits)
        if f is None:
            res = acc
        else:
            corr = f * s.astype(np.float64)[:, None]              # <= 28 bits: exact
            res = round_sum_fp32(acc.astype(_LD) / 2, np.broadcast_to(corr, acc.shape) / 2)
        ws = act_values(np.asarray(wscales, dtype=np.uint16), cfg.act_format).astype(np.float64)
        if ws.shape != (n,):
            raise ValueError(f"wscales must be {n} patterns (N), not {ws.shape}")
        out = (res.astype(np.float64) * ws[None, :]).astype(np.float32)
    return _bits(out)
