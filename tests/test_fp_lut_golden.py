"""The golden model of FP activations with quantized tables (gen/fp_lut.py, docs/fp-lut.md),
checked step by step against independent exact references (``fractions``) and against a plain
float64 ``A @ W`` within the quantization error bound."""
from fractions import Fraction

import numpy as np
import pytest

from gen.config import LutConfig, WeightFormat
from gen.fp import BF16, FP16, FP32, decode, exact_value, fp_add, special_values, to_float
from gen.fp_lut import (block_results, fp_tables, fraction_to_fp, lut_q_mpgemm, pack_fp_cmd,
                        q_gemm_streams, q_stream, quantize_tables, round_scale,
                        scale_product_term)
from gen.golden import random_weights, weight_codes

FMTS = [FP16, BF16]


def cfg_q(act="fp16", **kw):
    base = dict(act_format=act, table_format="q", m=2, n=4, k_max=512, scale_block=4)
    base.update(kw)
    return LutConfig(**base)


def gaussian(rng, shape, fmt, scale=1.0):
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    if fmt is FP16:
        return x.astype(np.float16).view(np.uint16).astype(np.int64)
    return (x.view(np.uint32) >> 16).astype(np.int64)      # truncation is fine for test data


def fval(bits, fmt=FP32):
    """Exact value of a finite pattern."""
    return exact_value(int(bits), fmt)


# -- 1. tables ------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FMTS, ids=lambda f: f.name)
def test_tables_match_the_fp_add_chain(fmt):
    rng = np.random.default_rng(3)
    specials = special_values(fmt)
    rows = [gaussian(rng, 8, fmt), rng.integers(0, 1 << fmt.width, 8),
            rng.choice(specials, 8), np.array([fmt.max_finite] * 4 + [fmt.sign_bit | 1] * 4)]
    acts = np.stack(rows)
    cfg = cfg_q(fmt.name, m=4, scale_block=4)
    tables = fp_tables(acts, cfg)
    assert tables.shape == (4, 4, 16)                # K 8 padded to one block of 16
    for r in range(4):
        for j in range(2):
            a = [int(x) for x in acts[r, 4 * j:4 * j + 4]]
            for idx in range(16):
                terms = [fp_mul_sign(x, idx >> i & 1, fmt) for i, x in enumerate(a)]
                want = terms[0]
                for t in terms[1:]:
                    want = fp_add(want, t)
                assert int(tables[r, j, idx]) == want, (r, j, idx)
    # padded groups are zero tables
    assert not np.any(tables[:, 2:].view(np.float32))


def fp_mul_sign(bits, positive, fmt):
    """The FP32 pattern of +-a (exact)."""
    kind, sign, sig, e = decode(bits, fmt)
    if kind == "nan":
        return FP32.qnan
    sign ^= 0 if positive else 1
    if kind == "inf":
        return FP32.inf | (sign << 31)
    if kind == "zero":
        return sign << 31
    from gen.fp import round_pack
    return round_pack(sign, sig, e, FP32)


@pytest.mark.parametrize("fmt", FMTS, ids=lambda f: f.name)
def test_tables_are_symmetric(fmt):
    rng = np.random.default_rng(4)
    acts = rng.integers(0, 1 << fmt.width, (3, 64))
    t = fp_tables(acts, cfg_q(fmt.name, m=3, scale_block=4))
    mirrored = t[:, :, ::-1]                          # T[~idx]
    nan = np.isnan(t.view(np.float32))
    assert np.array_equal(nan, np.isnan(mirrored.view(np.float32)))
    assert np.array_equal((t ^ np.uint32(1 << 31))[~nan], mirrored[~nan])


# -- 2. quantization -------------------------------------------------------------------------

def nearest_fp32(value: Fraction):
    """Independent RNE into FP32: compare the two FP32 neighbours of ``value`` (> 0)."""
    lo = np.float32(float(value))                    # within one ulp of value
    cands = sorted({np.nextafter(lo, np.float32(0)), lo, np.nextafter(lo, np.float32(np.inf)),
                    np.nextafter(np.nextafter(lo, np.float32(np.inf)), np.float32(np.inf))})
    best = min(cands, key=lambda c: (abs(Fraction(float(c)) - value),
                                     int(np.float32(c).view(np.uint32)) & 1))
    return int(np.float32(best).view(np.uint32))


def test_fraction_to_fp_is_rne():
    rng = np.random.default_rng(5)
    for _ in range(3000):
        num, den = int(rng.integers(1, 1 << 40)), int(rng.integers(1, 1 << 30))
        v = Fraction(num, den) * Fraction(2) ** int(rng.integers(-140, 100))
        if v > Fraction(float(np.finfo(np.float32).max)):
            continue
        assert fraction_to_fp(v) == nearest_fp32(v), v
    # ties go to even, subnormals and the smallest subnormal's half
    tiny = Fraction(2) ** -149
    assert fraction_to_fp(tiny / 2) == 0
    assert fraction_to_fp(tiny * 3 / 2) == 2
    assert fraction_to_fp(-tiny) == FP32.sign_bit | 1
    assert fraction_to_fp(Fraction(1) + Fraction(2) ** -24) == 0x3F800000
    assert fraction_to_fp(Fraction(1) + Fraction(3, 2) * Fraction(2) ** -23) == 0x3F800002


def nearest_p_bits(bits, p):
    """Independent RNE of a finite FP32 pattern to a multiple of ``2**(e_lsb + 24 - p)`` (its
    top ``p`` significand bits), on fractions; Inf when that leaves FP32's range."""
    kind, sign, _, e_lsb = decode(bits, FP32)
    quantum = Fraction(2) ** (e_lsb + 24 - p)
    x = abs(fval(bits)) / quantum
    fl = x.numerator // x.denominator
    r = fl + (1 if x - fl > Fraction(1, 2) or (x - fl == Fraction(1, 2) and fl % 2) else 0)
    value = r * quantum
    if value >= Fraction(2) ** 128:
        return FP32.inf | sign << 31
    return fraction_to_fp(-value if sign else value) if value else sign << 31


def test_round_scale_matches_fractions():
    rng = np.random.default_rng(66)
    pats = [int(x) for x in rng.integers(0, 0x7F800000, 3000)]
    pats += [0x7F7FFFFF, 0x007FFFFF, 0x00000001, 0x3F801000, 0x3F803000, 0x3F800FFF, 0]
    pats += [x | FP32.sign_bit for x in pats[:50]]
    for p in (8, 11, 23, 24):
        for x in pats:
            assert round_scale(x, p) == nearest_p_bits(x, p), (hex(x), p)
    for x in special_values(FP32):                 # NaN and Inf unchanged
        if (x >> 23) & 0xFF == 0xFF:
            assert round_scale(x, 11) == x


@pytest.mark.parametrize("t,p", [(4, 24), (8, 24), (16, 24), (8, 11), (4, 8)])
@pytest.mark.parametrize("fmt", FMTS, ids=lambda f: f.name)
def test_quantization_matches_fractions(fmt, t, p):
    rng = np.random.default_rng(6 + t)
    cfg = cfg_q(fmt.name, m=3, table_bits=t, scale_block=4, scale_sig_bits=p)
    acts = np.stack([gaussian(rng, 48, fmt), gaussian(rng, 48, fmt, 1e-3),
                     rng.integers(0, 1 << fmt.width, 48)])
    acts[2] &= ~np.int64(fmt.inf)                     # random finite patterns (exponent < max)
    tables = fp_tables(acts, cfg)
    q, scales = quantize_tables(tables, cfg)
    qmax = cfg.table_max
    for r in range(3):
        for k in range(scales.shape[1]):
            block = tables[r, 4 * k:4 * k + 4].ravel()
            vals = [fval(x) for x in block]
            amax = max(abs(v) for v in vals)
            s_bits = int(scales[r, k])
            if amax == 0:
                assert s_bits == 0
                continue
            assert s_bits == nearest_p_bits(nearest_fp32(amax / qmax), p)
            s = fval(s_bits)
            for i, v in enumerate(vals):
                x = v / s
                fl = x.numerator // x.denominator
                rest = x - fl
                want = fl + (1 if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and fl % 2)
                             else 0)
                want = max(-qmax, min(qmax, want))
                assert q[r, 4 * k + i // 16, i % 16] == want


def test_quantization_specials_and_zero():
    cfg = cfg_q("fp16", m=1, scale_block=2)
    acts = np.zeros((3, 16), dtype=np.int64)
    acts[0, 3] = FP16.inf
    acts[1, 9] = FP16.qnan
    q, scales = quantize_tables(fp_tables(acts, cfg), cfg)
    assert scales[0, 0] == FP32.qnan and scales[0, 1] == 0
    assert scales[1, 1] == FP32.qnan and scales[1, 0] == 0
    assert not q.any() and not scales[2].any()
    # BF16 sums can overflow FP32: the block is non-finite too
    cfg = cfg_q("bf16", m=2, scale_block=2)
    big = np.full((2, 8), BF16.max_finite)
    big[1] = 0x3F80                                   # 1.0
    _, scales = quantize_tables(fp_tables(big, cfg), cfg)
    assert scales[0, 0] == FP32.qnan and scales[1, 0] != FP32.qnan


# -- 3. the integer array on q tables -------------------------------------------------------

def plain_r2(q, codes, fmt, w_bits, b):
    """Independent: full tables, indices straight from the codes, no bit-serial order."""
    rows, groups, _ = q.shape
    g = q.shape[2].bit_length() - 1
    k, n = codes.shape
    out = np.zeros((rows, n, groups // b), dtype=np.int64)
    for bit in range(w_bits):
        weight = 1 << bit
        planes = (codes >> bit) & 1
        idx = (planes.reshape(groups, g, n) << np.arange(g)[None, :, None]).sum(axis=1)
        for j in range(groups):
            out[:, :, j // b] += weight * q[:, j, idx[j]]
    s = -q[:, :, 0].reshape(rows, groups // b, b).sum(axis=2)[:, None, :]
    if fmt is WeightFormat.BINARY:
        return 2 * out
    if fmt is WeightFormat.UINT:
        return out + ((1 << w_bits) - 1) * s
    return out - s


@pytest.mark.parametrize("c,acc", [(1, "partial"), (1, "shifted"), (2, "shifted"),
                                   (4, "partial")])
def test_block_results_match_plain_sums(c, acc):
    rng = np.random.default_rng(7)
    cfg = cfg_q("fp16", w_bits=4, m=2, n=5, scale_block=8, tables_per_pe=c, accumulation=acc)
    for fmt, w in cfg.ops():
        q = rng.integers(-cfg.table_max, cfg.table_max + 1, (2, 16, 16))
        q[:, :, 8:] = -q[:, :, 7::-1]                 # symmetric, as quantization gives
        w_vals = random_weights(rng, (64, 5), fmt, w)
        codes = weight_codes(w_vals, fmt, w)
        got = block_results(q, codes, fmt, w, cfg)
        assert np.array_equal(got, plain_r2(q, codes, fmt, w, 8)), (fmt, w)


def test_halving_would_not_be_exact():
    """Quantized entries break the parity that made ``(acc - S) / 2`` exact: r2 is odd for
    some inputs, which is why the 1/2 lives in the FP scale (an exponent decrement)."""
    rng = np.random.default_rng(8)
    cfg = cfg_q("fp16", m=2, scale_block=4)
    acts = gaussian(rng, (2, 64), FP16)
    trace = {}
    lut_q_mpgemm(acts, random_weights(rng, (64, 4), "int", 2), "int", 2, cfg,
                 np.full(4, 0x3C00), trace)
    assert np.any(trace["r2"] & 1)
    term = scale_product_term(3, 0x3F800000, 0x3C00, cfg)       # 3 * 1.0 * 1.0 / 2
    assert exact_value_of(term) == Fraction(3, 2)


def exact_value_of(term):
    _, sign, sig, e, _ = term
    return (-1) ** sign * Fraction(sig) * Fraction(2) ** e


# -- 4. the whole path against exact references -----------------------------------------------

def exact_model(acts, w, fmt, w_bits, cfg, ws):
    """The quantized arithmetic with each block's FP32 rounding done on exact fractions."""
    trace = {}
    got = lut_q_mpgemm(acts, w, fmt, w_bits, cfg, ws, trace)
    codes = weight_codes(np.asarray(w), WeightFormat.parse(fmt), w_bits)
    codes = np.pad(codes, ((0, trace["q"].shape[1] * cfg.g - codes.shape[0]), (0, 0)))
    r2 = plain_r2(trace["q"], codes, WeightFormat.parse(fmt), w_bits, cfg.scale_block)
    rows, n, blocks = r2.shape
    ws = np.repeat(np.asarray(ws)[:, None], blocks, axis=1) if np.ndim(ws) == 1 else ws
    want = np.zeros((rows, n), dtype=np.uint32)
    for r in range(rows):
        for c in range(n):
            acc = Fraction(0)
            for k in range(blocks):
                ts, wsc = int(trace["tscales"][r, k]), int(ws[c, k])
                acc = fval(fraction_to_fp(acc + r2[r, c, k] * fval(ts) * fval(wsc, cfg.act_fp)
                                          / 2))
            want[r, c] = fraction_to_fp(acc) if acc else 0
    return got, want


@pytest.mark.parametrize("fmt", FMTS, ids=lambda f: f.name)
@pytest.mark.parametrize("b,p", [(2, 24), (8, 24), (8, 11)])
def test_bit_exact_against_exact_rounding(fmt, b, p):
    rng = np.random.default_rng(9 + b)
    cfg = cfg_q(fmt.name, w_bits=4, m=2, n=6, scale_block=b, scale_sig_bits=p)
    for wf, wb in cfg.ops():
        k = int(rng.integers(1, 150))
        acts = gaussian(rng, (2, k), fmt, float(rng.choice([1e-3, 1.0, 100.0])))
        w = random_weights(rng, (k, 6), wf, wb)
        blocks = -(-k // (b * cfg.g))
        ws = gaussian(rng, (6, blocks), fmt, 0.05)
        got, want = exact_model(acts, w, wf, wb, cfg, ws)
        assert np.array_equal(got, want), (wf, wb)


@pytest.mark.parametrize("fmt", FMTS, ids=lambda f: f.name)
@pytest.mark.parametrize("t", [4, 8, 12])
def test_error_bound_against_float64(fmt, t):
    """|LUT - A @ (W * ws)| <= sum over blocks of |ws| * s * b * (2**w - 1) / 2 (each q entry
    is within s/2 of its table entry; a block's r2 collects (2**w - 1) such errors per group
    from the lookups and as many from the correction) plus FP32 rounding."""
    rng = np.random.default_rng(10 + t)
    b = 4
    cfg = cfg_q(fmt.name, w_bits=4, m=2, n=8, table_bits=t, scale_block=b)
    for wf, wb in cfg.ops():
        k = 128
        acts = gaussian(rng, (2, k), fmt)
        w = random_weights(rng, (k, 8), wf, wb)
        ws = gaussian(rng, (8, k // (b * cfg.g)), fmt, 0.1)
        trace = {}
        got = lut_q_mpgemm(acts, w, wf, wb, cfg, ws, trace).view(np.float32).astype(np.float64)
        a = to_float(acts, fmt).astype(np.float64)
        wsf = to_float(ws, fmt).astype(np.float64)
        wdeq = w * np.repeat(wsf.T, b * cfg.g, axis=0)
        ref = a @ wdeq
        s = trace["tscales"].view(np.float32).astype(np.float64)          # M x blocks
        bound = (np.abs(wsf)[None, :, :] * s[:, None, :]).sum(axis=2) * b * ((1 << wb) - 1) / 2
        mag = np.abs(a) @ np.abs(wdeq)
        assert np.all(np.abs(got - ref) <= bound + 1e-5 * mag + 1e-30), (wf, wb)
        if t == 12:     # and the error shrinks with t: well inside the bound at 12 bits
            assert np.max(np.abs(got - ref) / (mag + 1e-30)) < 1e-2


def test_specials_poison_their_row():
    rng = np.random.default_rng(11)
    cfg = cfg_q("fp16", m=1, scale_block=2)
    acts = gaussian(rng, (3, 32), FP16)
    acts[0, 5] = FP16.inf
    acts[1, 30] = FP16.qnan | FP16.sign_bit
    out = lut_q_mpgemm(acts, random_weights(rng, (32, 4), "uint", 2), "uint", 2, cfg,
                       np.full(4, 0x3C00))
    assert np.all(out[:2] == FP32.qnan)
    assert not np.any(np.isnan(out[2].view(np.float32)))
    zero = lut_q_mpgemm(np.zeros((2, 8)), np.ones((8, 4), dtype=int), "uint", 2,
                        cfg_q("fp16"), np.full(4, 0x3C00))
    assert not zero.any()                             # +0, not -0


def test_stream_and_errors():
    rng = np.random.default_rng(12)
    cfg = cfg_q("fp16", m=2, n=4, scale_block=2)
    acts = gaussian(rng, (2, 20), FP16)
    w = random_weights(rng, (20, 4), "ternary", 2)
    cmd, tables, weights, scales, expected = q_stream(cfg, acts, w, "ternary", 2,
                                                      np.full(4, 0x3C00))
    blocks = 3                                        # 20 activations, blocks of 8
    assert cmd == pack_fp_cmd(cfg, "ternary", 2, blocks)
    assert cmd & 3 == WeightFormat.TERNARY.value and (cmd >> 2) & 3 == 2
    assert cmd >> (2 + cfg.plane_width) == blocks
    assert len(tables) == blocks * cfg.scale_block and len(weights) == 2 * len(tables)
    assert len(scales) == blocks and all(s >> cfg.scale_width == 0 for s in scales)
    assert np.array_equal(expected, lut_q_mpgemm(acts, w, "ternary", 2, cfg,
                                                 np.full(4, 0x3C00)))
    with pytest.raises(ValueError, match="blocks must be in 1..64, not 65"):
        pack_fp_cmd(cfg, "int", 2, 65)
    with pytest.raises(ValueError, match="cfg.table_format must be 'q'"):
        lut_q_mpgemm(acts, w, "int", 2, LutConfig(), np.full(4, 0x3C00))
    with pytest.raises(ValueError, match="wscales must be N x blocks"):
        lut_q_mpgemm(acts, w, "int", 2, cfg, np.full((4, 2), 0x3C00))


def test_gemm_streams_tile_by_tile():
    """The engine's streams: every tile's beats are the array operation's (q_stream) beats, the
    expected result the unpadded product's."""
    rng = np.random.default_rng(13)
    cfg = cfg_q("bf16", m=2, n=3, scale_block=2)
    acts, w = gaussian(rng, (3, 21), BF16), random_weights(rng, (21, 5), "uint", 2)
    ws = gaussian(rng, (5, 3), BF16, 0.1)
    s = q_gemm_streams(cfg, acts, w, "uint", 2, ws)
    assert s["fields"]["blocks"] == 3
    assert (s["fields"]["m_tiles"], s["fields"]["n_tiles"]) == (2, 2)
    assert s["cmd"] == pack_fp_cmd(cfg, "uint", 2, 3) | (2 | 2 << 16) << cfg.fp_cmd_width
    assert np.array_equal(s["expected"][:3, :5], lut_q_mpgemm(acts, w, "uint", 2, cfg, ws))
    a_pad = np.pad(acts, ((0, 1), (0, 0)))
    w_pad = np.pad(w, ((0, 0), (0, 1)))
    ws_pad = np.pad(ws, ((0, 1), (0, 0)))
    steps = 3 * cfg.scale_block
    for mi in range(2):
        for ni in range(2):
            cmd, tables, weights, scales, expected = q_stream(
                cfg, a_pad[2 * mi:2 * mi + 2], w_pad[:, 3 * ni:3 * ni + 3], "uint", 2,
                ws_pad[3 * ni:3 * ni + 3])
            assert tables == s["tables"][mi * steps:(mi + 1) * steps]
            t = mi * 2 + ni
            assert weights == s["weights"][t * 2 * steps:(t + 1) * 2 * steps]
            for k in range(3):
                assert scales[k] == (s["tscales"][mi * 3 + k]
                                     | s["wscales"][t * 3 + k] << cfg.table_scale_width)
            assert np.array_equal(expected, s["expected"][2 * mi:2 * mi + 2, 3 * ni:3 * ni + 3])
