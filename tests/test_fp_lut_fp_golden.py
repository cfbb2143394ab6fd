"""The golden model of ``fp`` tables (gen.fp_lut_fp) against an exact reference.

The reference below is written from docs/fp-lut.md section 5 alone, on ``fractions.Fraction``
values rounded with ``round()`` (tests/test_fp_golden.py's ``ref_*``, themselves checked against
NumPy's casts): every step that the model rounds, it rounds exactly once. Plus a plain float64
``A @ W`` error bound, the symmetric = full-table equality, the padding rule and the stream
packing.
"""
from fractions import Fraction

import numpy as np
import pytest

from gen import fp
from gen import fp_lut_fp as F
from gen.config import LutConfig, WeightFormat
from gen.fp import BF16, FP16, FP32
from gen.golden import random_weights, weight_codes
from tests.test_fp_golden import ref_round, ref_sum, ref_value

SEED = 2026


def cfg_of(act, g=4, symmetric=True, w_bits=4, m=2, n=3):
    return LutConfig(w_bits=w_bits, g=g, m=m, n=n, act_format=act, table_format="fp",
                     symmetric=symmetric)


def act_bits(rng, act, shape, specials=0.0, scale=1.0):
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    with np.errstate(all="ignore"):
        bits = (x.view(np.uint32) >> 16).astype(np.int64) if act == BF16 else \
            x.astype(np.float16).view(np.uint16).astype(np.int64)
    if specials:
        pick = rng.random(shape) < specials
        bits[pick] = rng.choice(np.array(fp.special_values(act)), int(pick.sum()))
    return bits


# -- the exact reference (from the doc, not from the model) ----------------------------------

def rv(bits, fmt):
    return ref_value(int(bits), fmt)


def ref_add(terms, fmt=FP32):
    """Exactly rounded sum of ``[(value, sign)]`` (values Fraction / +-inf / None)."""
    return ref_sum([v for v, _ in terms], [s for _, s in terms], fmt)


def ref_scaled(bits, fmt, k):
    """(value * 2**k, sign) of a pattern."""
    v, s = rv(bits, fmt)
    return (v * Fraction(2) ** k if isinstance(v, Fraction) else v), s


def ref_neg(bits, fmt):
    return int(bits) ^ fmt.sign_bit


def ref_tables(a, act):
    """FP32 ``T[idx]`` of one group, added left to right, each sum rounded exactly once."""
    g = len(a)
    out = []
    for idx in range(1 << g):
        signed = [int(x) if idx >> i & 1 else ref_neg(x, act) for i, x in enumerate(a)]
        t = ref_add([rv(signed[0], act)])                  # exact in FP32
        for x in signed[1:]:
            t = ref_add([rv(t, FP32), rv(x, act)])
        out.append(t)
    return out


def ref_round_bits(bits, fmt_in, fmt_out):
    v, s = rv(bits, fmt_in)
    if v is None:
        return fmt_out.qnan
    if isinstance(v, float):
        return fmt_out.inf | (fmt_out.sign_bit if v < 0 else 0)
    return ref_round(v, fmt_out, zero_sign=s)


def ref_mul(a, fmt_a, b, fmt_b):
    (va, sa), (vb, sb) = rv(a, fmt_a), rv(b, fmt_b)
    if va is None or vb is None or (isinstance(va, float) and vb == 0) or \
            (isinstance(vb, float) and va == 0):
        return FP32.qnan
    if isinstance(va, float) or isinstance(vb, float):
        return FP32.inf | ((sa ^ sb) << 31)
    return ref_round(va * vb, FP32, zero_sign=sa ^ sb)


def ref_correction(acc, s, fmt, w):
    if fmt is WeightFormat.BINARY:
        return acc
    terms = [ref_scaled(acc, FP32, -1), ref_scaled(ref_neg(s, FP32), FP32, -1)]
    if fmt is WeightFormat.UINT:
        terms.append(ref_scaled(s, FP32, w - 1))
    return ref_add(terms)


def ref_mpgemm(acts, wv, fmt, w, cfg, wscales):
    """The whole operation, stage by stage, each rounding exact (docs/fp-lut.md section 5)."""
    act, g = cfg.act_fp, cfg.g
    fmt = WeightFormat.parse(fmt)
    k = acts.shape[1]
    kp = -(-k // g) * g
    acts = np.pad(acts, ((0, 0), (0, kp - k)))
    codes = np.pad(weight_codes(wv, fmt, w), ((0, kp - k), (0, 0)))
    out = np.zeros((acts.shape[0], codes.shape[1]), dtype=np.uint64)
    for r in range(acts.shape[0]):
        ents = [[ref_round_bits(t, FP32, act) for t in ref_tables(acts[r, j:j + g], act)]
                for j in range(0, kp, g)]

        def entry(j, idx, ents=ents):
            if cfg.symmetric and idx >> (g - 1) & 1:      # stored half, sign flipped
                return ref_neg(ents[j][~idx & ((1 << (g - 1)) - 1)], act)
            return ents[j][idx]

        s = 0
        for j in range(len(ents)):
            s = ref_add([rv(s, FP32), rv(ref_neg(entry(j, 0), act), act)])
        for c in range(codes.shape[1]):
            acc = 0
            for j in range(len(ents)):
                for b in range(w - 1, -1, -1):
                    idx = sum(((int(codes[j * g + i, c]) >> b) & 1) << i for i in range(g))
                    acc = ref_add([rv(acc, FP32), ref_scaled(entry(j, idx), act, b)])
            out[r, c] = ref_mul(ref_correction(acc, s, fmt, w), FP32, int(wscales[c]), act)
    return out


def ulps(a, b):
    """Distance in FP32 units in the last place (same-sign finite patterns)."""
    return abs(int(a) - int(b))


# -- tables and entries --------------------------------------------------------------------

@pytest.mark.parametrize("act", [FP16, BF16], ids=["fp16", "bf16"])
def test_tables_and_entries_exact(act):
    """FP32 tables (left to right, RNE each) and their one rounding into the activation format,
    on Gaussian groups, groups of mixed magnitudes (cancellation) and specials."""
    cfg = cfg_of(act.name)
    rng = np.random.default_rng(SEED)
    acts = np.concatenate([act_bits(rng, act, (1, 24)),
                           act_bits(rng, act, (1, 24), scale=1e4),
                           act_bits(rng, act, (1, 24), specials=0.2),
                           act_bits(rng, act, (1, 24), scale=1e-5)], axis=1)
    tables = F.fp32_tables(acts, cfg)
    entries = F.fp_entries(tables, cfg)
    for j in range(tables.shape[1]):
        group = acts[0, j * 4:(j + 1) * 4]
        ref = ref_tables(group, act)
        assert tables[0, j].tolist() == ref, j
        assert entries[0, j].tolist() == [ref_round_bits(t, FP32, act) for t in ref], j


def test_tables_symmetry_up_to_zero_sign():
    """``T[~idx] = -T[idx]`` bit for bit except zeros (x - x = +0 both ways) and NaN (one
    canonical pattern): the mirrored half of a symmetric table is *defined* as the stored
    entry with its sign flipped, which differs from the full table only there."""
    cfg = cfg_of("fp16")
    rng = np.random.default_rng(SEED)
    acts = act_bits(rng, FP16, (1, 400), specials=0.1)
    acts[0, 200:] = rng.choice(np.array([0, 0x8000, 0x3C00, 0xBC00]), 200)  # +-0, +-1
    tables = F.fp32_tables(acts, cfg)
    seen_zero = 0
    for t in tables[0]:
        for idx in range(16):
            a, b = int(t[idx]), int(t[15 - idx])
            if (a & 0x7FFFFFFF) == 0:
                assert (b & 0x7FFFFFFF) == 0
                seen_zero += (a ^ b) != FP32.sign_bit
            elif a == FP32.qnan:
                assert b == FP32.qnan
            else:
                assert b == a ^ FP32.sign_bit
    assert seen_zero > 0            # the exception happens, and the hardware handles it


def test_fp16_entries_overflow():
    """FP16 table entries overflow to Inf once a group's sum passes 65504 (BF16 keeps FP32's
    range): a property of ``fp`` tables in FP16."""
    big = 0x7800                                   # 32768
    acts = np.array([[big, big, big, big]])
    e16 = F.fp_entries(F.fp32_tables(acts, cfg_of("fp16")), cfg_of("fp16"))
    assert int(e16[0, 0, 15]) == FP16.inf and int(e16[0, 0, 0]) == FP16.inf | FP16.sign_bit
    b = np.array([[0x4700, 0x4700, 0x4700, 0x4700]])    # 32768 in BF16
    e_bf = F.fp_entries(F.fp32_tables(b, cfg_of("bf16")), cfg_of("bf16"))
    assert int(e_bf[0, 0, 15]) == 0x4800                   # 131072


# -- one PE step and the correction ----------------------------------------------------------

def _step_cases(rng, act, count):
    """(acc, entry, plane): random, subnormal entries against near-cancelling accumulators,
    exponent-neighbour pairs, specials."""
    out = []
    sp = fp.special_values(act)
    sp32 = fp.special_values(FP32)
    for i in range(count):
        kind = i % 4
        plane = int(rng.integers(4))
        if kind == 0:
            e = int(act_bits(rng, act, 1)[0])
            acc = int(np.float32(rng.standard_normal() * 4).view(np.uint32))
        elif kind == 1:                          # subnormal entry, acc just below its value
            e = int(rng.integers(1, 1 << act.man_bits)) | (int(rng.integers(2)) << (act.width - 1))
            v = float(fp.to_float(np.array([e]), act)[0]) * 2 ** plane
            acc = int(np.float32(-v * (1 - 2.0 ** -int(rng.integers(1, 30)))).view(np.uint32))
            acc ^= int(rng.integers(0, 1 << 8))
        elif kind == 2:
            e = int(act_bits(rng, act, 1)[0])
            v = float(fp.to_float(np.array([e]), act)[0]) * 2 ** plane
            acc = int(np.float32(-v * (1 + rng.standard_normal() * 2.0 ** -10)).view(np.uint32))
        else:
            e = int(rng.choice(sp))
            acc = int(rng.choice(sp32))
        out.append((acc & 0xFFFFFFFF, e, plane))
    return out


def on_grid(acc, act):
    """``acc`` (FP32 bits) rounded to a multiple of ``act``'s smallest subnormal: the values an
    accumulator of entries of ``act`` can take (every entry and every sum is such a multiple)."""
    kind, sign, sig, e_lsb = fp.decode(acc, FP32)
    quantum = act.emin - act.man_bits
    if kind != "finite" or e_lsb >= quantum:
        return acc
    v = Fraction(sig) * Fraction(2) ** (e_lsb - quantum)
    return ref_round((-1) ** sign * round(v) * Fraction(2) ** quantum, FP32, zero_sign=sign)


@pytest.mark.parametrize("act", [FP16, BF16], ids=["fp16", "bf16"])
def test_pe_step_correctly_rounded(act):
    """``acc_add`` = ``acc + E * 2**plane`` rounded exactly once for every accumulator the
    array can reach (on the grid of ``act``'s smallest subnormal), subnormal entries against
    nearly cancelling accumulators included. Off that grid an FP16 subnormal entry at the top
    of the 27-bit frame would push accumulator bits out of it: the grid is what makes the
    two-term sum exact there, and the test sees the difference."""
    rng = np.random.default_rng(SEED)
    off_grid_wrong = 0
    for acc, e, plane in _step_cases(rng, act, 4000):
        want = ref_add([rv(acc, FP32), ref_scaled(e, act, plane)])
        off_grid_wrong += F.acc_add(acc, e, act, plane) != want
        acc = on_grid(acc, act)
        want = ref_add([rv(acc, FP32), ref_scaled(e, act, plane)])
        assert F.acc_add(acc, e, act, plane) == want, (hex(acc), hex(e), plane)
    if act == FP16:
        assert off_grid_wrong > 0
    else:   # BF16 subnormals sit at FP32's own exponent floor: the frame holds every bit
        assert off_grid_wrong == 0


@pytest.mark.parametrize("fmt", ["int", "ternary", "binary", "uint"])
def test_correction_exactly_rounded(fmt):
    """int/ternary/binary: ``(acc - S)/2`` (or ``acc``) rounded exactly once. uint's three
    terms ``acc/2 + S*2**(w-1) - S/2`` share a 32-bit frame: exact whenever no bit leaves it,
    within one ulp otherwise; on these inputs (Gaussian, and acc ~ -(2**w - 1) S as with
    mostly-zero uint weights) it never differed."""
    rng = np.random.default_rng(SEED)
    wf = WeightFormat.parse(fmt)
    for i in range(3000):
        w = {"ternary": 2, "binary": 1}.get(fmt, int(rng.integers(1, 5)))
        s = float(rng.standard_normal() * 10)
        acc = float(rng.standard_normal() * 10) if i % 2 else \
            -((1 << w) - 1) * s * (1 + rng.standard_normal() * 2.0 ** -int(rng.integers(5, 30)))
        a32 = int(np.float32(acc).view(np.uint32))
        s32 = int(np.float32(s).view(np.uint32))
        got = F.correction(a32, s32, wf, w)
        assert got == ref_correction(a32, s32, wf, w), (fmt, w, hex(a32), hex(s32))
    for a32, s32 in [(FP32.qnan, 0), (FP32.inf, FP32.inf), (0, 0), (1, 1), (FP32.inf, 0)]:
        assert F.correction(a32, s32, wf, 2 if fmt != "binary" else 1) == \
            ref_correction(a32, s32, wf, 2 if fmt != "binary" else 1)


# -- whole operations ------------------------------------------------------------------------

OPS = [("int", 1), ("int", 4), ("uint", 2), ("uint", 4), ("binary", 1), ("ternary", 2)]


@pytest.mark.parametrize("act", ["fp16", "bf16"])
@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "full"])
def test_mpgemm_matches_exact_reference(act, symmetric):
    """Every format, both activation formats, symmetric and full tables, K not a multiple of
    g, special activations and scales: bit-exact against the stage-by-stage exact reference."""
    cfg = cfg_of(act, g=4 if symmetric else 3, symmetric=symmetric)
    fa = cfg.act_fp
    rng = np.random.default_rng(SEED + symmetric)
    for i, (fmt, w) in enumerate(OPS):
        k = int(rng.integers(1, 14))
        acts = act_bits(rng, fa, (2, k), specials=0.15 if i == 2 else 0.0,
                        scale=1e-6 if i == 3 else 1.0)
        wv = random_weights(rng, (k, 3), fmt, w)
        ws = act_bits(rng, fa, 3, specials=0.3 if i == 5 else 0.0)
        got = F.lut_fp_mpgemm(acts, wv, fmt, w, cfg, ws)
        assert got.tolist() == ref_mpgemm(acts, wv, fmt, w, cfg, ws).tolist(), (fmt, w)


@pytest.mark.parametrize("act", [FP16, BF16], ids=["fp16", "bf16"])
def test_mpgemm_error_bound_float64(act):
    """Against plain float64 ``(A @ W) * ws``: the error stays within the bound of the
    roundings (entries: ``u_act + g u32`` of the group's ``sum |a|``; every FP32 add: ``u32`` of
    the partial sum; the correction and the scale: ``u32`` each), per result::

        |R - ws (A @ W)| <= |ws| 2**w sum|a| (u_act + g u32 + 2 (G w + 4) u32)
    """
    u32 = 2.0 ** -24
    ua = 2.0 ** -act.sig_bits
    rng = np.random.default_rng(SEED)
    worst = 0.0
    for i, (fmt, w) in enumerate(OPS * 2):
        cfg = cfg_of(act.name, g=4, w_bits=4, n=8)
        k = int(rng.integers(8, 64))
        acts = act_bits(rng, act, (2, k), scale=[1.0, 100.0][i % 2])
        wv = random_weights(rng, (k, 8), fmt, w)
        ws = act_bits(rng, act, 8, scale=0.1)
        got = fp.to_float(F.lut_fp_mpgemm(acts, wv, fmt, w, cfg, ws), FP32).astype(np.float64)
        a64 = fp.to_float(acts, act).astype(np.float64)
        s64 = fp.to_float(ws, act).astype(np.float64)
        want = (a64 @ wv.astype(np.float64)) * s64
        groups = -(-k // 4)
        bound = (np.abs(s64)[None, :] * 2 ** w * np.abs(a64).sum(1)[:, None]
                 * (ua + 4 * u32 + 2 * (groups * w + 4) * u32))
        err = np.abs(got - want)
        assert np.all(err <= bound), (fmt, w, float((err / bound).max()))
        worst = max(worst, float((err / bound).max()))
    assert worst > 1e-3             # the bound is not vacuous: errors come close to it


def test_symmetric_equals_full_tables():
    """Zero signs are the only difference between the mirrored half and the full table; they
    never reach a result (the accumulators start from +0)."""
    rng = np.random.default_rng(SEED)
    for act in ("fp16", "bf16"):
        sym, full = cfg_of(act), cfg_of(act, symmetric=False)
        for fmt, w in OPS:
            acts = act_bits(rng, sym.act_fp, (2, 12), specials=0.1)
            acts[:, :4] = rng.choice(np.array([0, 0x8000]), (2, 4))
            wv = random_weights(rng, (12, 3), fmt, w)
            ws = act_bits(rng, sym.act_fp, 3)
            assert F.lut_fp_mpgemm(acts, wv, fmt, w, sym, ws).tolist() == \
                F.lut_fp_mpgemm(acts, wv, fmt, w, full, ws).tolist()


def test_padded_weight_codes_do_not_matter():
    """K padded with +0 activations: the padded positions' weight codes change nothing."""
    cfg = cfg_of("fp16")
    rng = np.random.default_rng(SEED)
    for fmt, w in OPS:
        acts = act_bits(rng, FP16, (2, 10), specials=0.1)
        wv = random_weights(rng, (10, 3), fmt, w)
        ws = act_bits(rng, FP16, 3)
        padded_a = np.pad(acts, ((0, 0), (0, 2)))
        padded_w = np.concatenate([wv, random_weights(rng, (2, 3), fmt, w)])
        assert F.lut_fp_mpgemm(acts, wv, fmt, w, cfg, ws).tolist() == \
            F.lut_fp_mpgemm(padded_a, padded_w, fmt, w, cfg, ws).tolist()


def test_stream_packing():
    """``fp_stream``: the command, the tables (entry ``e`` of row ``r`` at ``[(r E + e) 16]``),
    the planes MSB first, one scale beat, and the expected results."""
    from gen.golden import pack_cmd, unpack_cmd
    cfg = LutConfig(w_bits=2, g=4, m=2, n=4, act_format="bf16", table_format="fp")
    rng = np.random.default_rng(SEED)
    acts = act_bits(rng, BF16, (2, 7))
    wv = random_weights(rng, (7, 4), "int", 2)
    ws = act_bits(rng, BF16, 4)
    cmd, tables, weights, scales, expected = F.fp_stream(cfg, acts, wv, "int", 2, ws)
    assert unpack_cmd(cfg, cmd)[1:] == (2, 2) and cmd == pack_cmd(cfg, "int", 2, 2)
    assert len(tables) == 2 and len(weights) == 4 and len(scales) == 1
    ents = F.fp_entries(F.fp32_tables(acts, cfg), cfg)
    for j, beat in enumerate(tables):
        for r in range(2):
            for e in range(8):
                assert (beat >> ((r * 8 + e) * 16)) & 0xFFFF == ents[r, j, e]
    assert beat < 1 << cfg.table_width
    assert [(scales[0] >> (16 * c)) & 0xFFFF for c in range(4)] == ws.tolist()
    assert scales[0] < 1 << cfg.scale_width and cfg.scale_width == 64
    assert expected.tolist() == F.lut_fp_mpgemm(acts, wv, "int", 2, cfg, ws).tolist()


def test_bad_arguments():
    cfg = cfg_of("fp16")
    with pytest.raises(ValueError, match="table_format must be 'fp', not 'int'"):
        F.lut_fp_mpgemm(np.zeros((1, 4), int), np.zeros((4, 1), int), "int", 1, LutConfig(),
                        np.zeros(1, int))
    with pytest.raises(ValueError, match="acts must be 16-bit patterns of fp16"):
        F.fp32_tables(np.array([[1 << 16]]), cfg)
    with pytest.raises(ValueError, match="wscales must hold N = 3 patterns"):
        F.lut_fp_mpgemm(np.zeros((1, 4), int), np.zeros((4, 3), int), "int", 1, cfg,
                        np.zeros(2, int))
    with pytest.raises(ValueError, match="tables_per_pe must be 1 with fp tables, not 2"):
        F.check_fp_config(LutConfig(act_format="fp16", table_format="fp", tables_per_pe=2))


def test_tables_equal_gen_fp_lut():
    """The FP32 tables equal gen.fp_lut.fp_tables (NumPy's IEEE float32 additions, written
    independently), specials and zeros included."""
    from gen.fp_lut import fp_tables
    rng = np.random.default_rng(SEED)
    for act in ("fp16", "bf16"):
        cfg = cfg_of(act)
        acts = act_bits(rng, cfg.act_fp, (2, 61), specials=0.2, scale=100.0)
        acts[:, :8] = rng.choice(np.array([0, cfg.act_fp.sign_bit]), (2, 8))
        assert F.fp32_tables(acts, cfg).tolist() == fp_tables(acts, cfg).astype(np.int64).tolist()
