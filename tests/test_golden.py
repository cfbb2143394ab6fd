"""Tests of gen.golden: the LUT path against the plain product, and the stream packing.

``lut_mpgemm`` (tables, bit-planes, lookups, bit-serial partials, offset correction) must equal
``A @ W`` bit-exactly for every format and precision. The packing helpers are decoded here by a
separate, deliberately plain reading of the bit layouts in docs/interface.md, and the decoded
beats are run through the documented loop to get ``A @ W`` back.
"""
import itertools
import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from gen import golden
from gen.config import LutConfig, WeightFormat
from gen.golden import (bit_planes, build_tables, lookup, lut_mpgemm, pack_cmd, pack_tables,
                        pack_weight_planes, reference_mpgemm, stored_tables, tile_stream,
                        unpack_cmd, unpack_results, weight_codes)

FORMAT_CODE = {"int": 0, "uint": 1, "binary": 2, "ternary": 3}     # docs/interface.md, i_cmd


# -- independent helpers -------------------------------------------------------------------------

def msg(text):
    return "^" + re.escape(text) + "$"


def a_range(a_bits):
    return -(1 << (a_bits - 1)), (1 << (a_bits - 1)) - 1


def values_of(fmt, w):
    """Weight values of a format (docs/interface.md table)."""
    return {"int": list(range(-(1 << (w - 1)), 1 << (w - 1))),
            "uint": list(range(1 << w)),
            "binary": [-1, 1],
            "ternary": [-1, 0, 1]}[fmt]


def code_of(fmt, s, w):
    """The unsigned code the hardware runs (docs/interface.md table)."""
    if fmt in ("int", "ternary"):
        return s + (1 << (w - 1))
    if fmt == "uint":
        return s
    return (s + 1) // 2


def matmul(a, w):
    """A @ W with Python ints (no int64 anywhere)."""
    a, w = np.asarray(a).tolist(), np.asarray(w).tolist()
    return np.array([[sum(int(a[r][k]) * int(w[k][c]) for k in range(len(w)))
                      for c in range(len(w[0]))] for r in range(len(a))], dtype=object)


def table_value(acts, idx):
    """T[idx] = sum_i a_i * (+1 if bit i of idx else -1)."""
    return sum(int(x) * (1 if (idx >> i) & 1 else -1) for i, x in enumerate(acts))


def field(word, lsb, width, signed):
    v = (int(word) >> lsb) & ((1 << width) - 1)
    if signed and v >> (width - 1):
        v -= 1 << width
    return v


def fits(v, width):
    return -(1 << (width - 1)) <= int(v) <= (1 << (width - 1)) - 1


def decode_cmd(cfg, word):
    pw, gw = cfg.plane_width, cfg.groups_width
    assert 0 <= word < 1 << (2 + pw + gw)
    return field(word, 0, 2, False), field(word, 2, pw, False), field(word, 2 + pw, gw, False)


def decode_tables(cfg, beat):
    """One i_table beat -> m x table_entries signed entries."""
    assert 0 <= beat < 1 << cfg.table_width
    return [[field(beat, r * cfg.table_row_width + e * cfg.entry_width, cfg.entry_width, True)
             for e in range(cfg.table_entries)] for r in range(cfg.m)]


def decode_weights(cfg, beat):
    """One i_weight beat -> n indices of g bits."""
    assert 0 <= beat < 1 << cfg.weight_width
    return [field(beat, c * cfg.g, cfg.g, False) for c in range(cfg.n)]


def spec_run(cfg, cmd, table_beats, weight_beats):
    """Run the loop of docs/interface.md on decoded beats; returns m x n Python ints."""
    fmt, w, groups = decode_cmd(cfg, cmd)
    assert len(table_beats) == groups and len(weight_beats) == groups * w
    tables = [decode_tables(cfg, b) for b in table_beats]
    planes = [decode_weights(cfg, b) for b in weight_beats]
    half = 1 << (cfg.g - 1)
    out = []
    for r in range(cfg.m):
        row = []
        for c in range(cfg.n):
            acc = s = 0
            for j in range(groups):
                entries = tables[j][r]

                def t(idx):
                    if cfg.symmetric and idx >= half:
                        return -entries[(~idx) & (half - 1)]
                    return entries[idx]
                p = 0
                for b in range(w):                           # MSB first
                    p = 2 * p + t(planes[j * w + b][c])
                acc += p
                s -= entries[0]
            if fmt == FORMAT_CODE["binary"]:
                res = acc
            else:
                twice = acc - s if fmt in (0, 3) else acc + ((1 << w) - 1) * s
                assert twice % 2 == 0
                res = twice // 2
            row.append(res)
        out.append(row)
    return np.array(out, dtype=object)


def check(a, w, fmt, w_bits, cfg):
    got = lut_mpgemm(a, w, fmt, w_bits, cfg)
    assert got.dtype == np.int64
    assert got.shape == (a.shape[0], w.shape[1])
    want = reference_mpgemm(a, w)
    assert np.array_equal(got, want), (got, want)
    return got


def corner_rows(a_bits, k):
    lo, hi = a_range(a_bits)
    alt = np.where(np.arange(k) % 2 == 0, lo, hi)
    return np.array([np.full(k, lo), np.full(k, hi), alt, lo + hi - alt,
                     np.zeros(k, dtype=np.int64)], dtype=np.int64)


def corner_cols(fmt, w, k):
    vals = values_of(fmt, w)
    lo, hi = min(vals), max(vals)
    alt = np.where(np.arange(k) % 3 == 0, lo, hi)
    cols = [np.full(k, lo), np.full(k, hi), alt, lo + hi - alt]
    if 0 in vals:
        cols.append(np.zeros(k, dtype=np.int64))
    return np.array(cols, dtype=np.int64).T


# -- the reference itself --------------------------------------------------------------------------

def test_reference_is_plain_product():
    rng = np.random.default_rng(1)
    a = rng.integers(-(1 << 15), 1 << 15, size=(3, 37))
    w = rng.integers(-8, 8, size=(37, 4))
    assert np.array_equal(reference_mpgemm(a, w).astype(object), matmul(a, w))
    assert reference_mpgemm(a.astype(np.int16), w.astype(np.int8)).dtype == np.int64
    with pytest.raises(TypeError, match=msg("a must hold integers, not float64")):
        reference_mpgemm(a * 1.0, w)


# -- LUT path == reference -------------------------------------------------------------------------

@pytest.mark.parametrize("sym", [True, False])
@pytest.mark.parametrize("g", range(2, 7))
@pytest.mark.parametrize("w_max", range(1, 5))
def test_lut_seeded_sweep(w_max, g, sym):
    """Every (format, w) of the build, odd and even K, several activation precisions."""
    rng = np.random.default_rng(1000 * w_max + 10 * g + sym)
    for a_bits in (2, 7, 16):
        cfg = LutConfig(w_bits=w_max, a_bits=a_bits, g=g, symmetric=sym, k_max=4 * g)
        for fmt, w in cfg.ops():
            for k in sorted({1, max(1, g - 1), g + 1, 2 * g, 4 * g - 1}):
                m, n = rng.integers(1, 4), rng.integers(1, 6)
                a = golden.random_activations(rng, (m, k), a_bits)
                wt = golden.random_weights(rng, (k, n), fmt, w)
                check(a, wt, fmt, w, cfg)


@pytest.mark.parametrize("sym", [True, False])
@pytest.mark.parametrize("g", range(2, 7))
def test_lut_corners(g, sym):
    """Extreme activations x extreme weights (all-zero and all-ones codes), every a_bits and
    every (format, w), with K = k_max (every width at its bound) and K not a multiple of g."""
    for a_bits in range(2, 17):
        for w_bits in range(1, 5):
            for k, k_max in ((3 * g, 3 * g), (3 * g - 1, 3 * g - 1), (1, 1)):
                cfg = LutConfig(w_bits=w_bits, a_bits=a_bits, g=g, symmetric=sym, k_max=k_max)
                a = corner_rows(a_bits, k)
                for fmt, w in cfg.ops():
                    if w != w_bits:
                        continue                 # smaller w runs under its own tight config
                    wt = corner_cols(fmt.label, w, k)
                    codes = weight_codes(wt, fmt, w)
                    if fmt is not WeightFormat.TERNARY:
                        assert codes[:, 0].max() == 0                 # all-zero codes
                    assert codes[:, 1].min() == (1 << w) - 1          # all-ones codes
                    check(a, wt, fmt, w, cfg)


def test_lut_tiny_and_odd_shapes():
    rng = np.random.default_rng(7)
    cfg = LutConfig(w_bits=4, a_bits=8, g=4, k_max=64)
    for fmt, w in cfg.ops():
        for m, k, n in [(1, 1, 1), (1, 2, 1), (1, 1, 7), (5, 1, 1), (3, 5, 2), (7, 13, 11),
                        (2, 63, 3), (1, 64, 1)]:
            a = golden.random_activations(rng, (m, k), 8)
            wt = golden.random_weights(rng, (k, n), fmt, w)
            check(a, wt, fmt, w, cfg)
    # a 1x1x1 of every value pair at a tiny precision, exhaustively
    cfg = LutConfig(w_bits=2, a_bits=3, g=2, k_max=1)
    for fmt, w in cfg.ops():
        for x, y in itertools.product(range(-4, 4), values_of(fmt.label, w)):
            assert lut_mpgemm(np.array([[x]]), np.array([[y]]), fmt, w, cfg)[0, 0] == x * y


@st.composite
def problems(draw):
    w_max = draw(st.integers(1, 4))
    g = draw(st.integers(2, 6))
    a_bits = draw(st.integers(2, 16))
    k = draw(st.integers(1, 3 * g + 1))
    cfg = LutConfig(w_bits=w_max, a_bits=a_bits, g=g, symmetric=draw(st.booleans()),
                    k_max=k + draw(st.sampled_from([0, 0, 1, 5])))
    fmt, w = draw(st.sampled_from(cfg.ops()))
    m, n = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    lo, hi = a_range(a_bits)
    a_elem = draw(st.sampled_from([st.integers(lo, hi), st.sampled_from([lo, hi]),
                                   st.just(lo), st.just(hi), st.sampled_from([lo, 0, hi, -1, 1])]))
    vals = values_of(fmt.label, w)
    w_elem = draw(st.sampled_from([st.sampled_from(vals), st.just(min(vals)),
                                   st.just(max(vals)), st.sampled_from([min(vals), max(vals)])]))
    a = draw(hnp.arrays(np.int64, (m, k), elements=a_elem))
    wt = draw(hnp.arrays(np.int64, (k, n), elements=w_elem))
    return cfg, fmt, w, a, wt


@settings(max_examples=200, deadline=None, database=None)
@given(problems())
def test_lut_hypothesis(problem):
    cfg, fmt, w, a, wt = problem
    check(a, wt, fmt, w, cfg)


def test_trace_is_bit_serial_partial():
    """trace: per group (p, acc); acc is the running sum of p, and p the MSB-first partial."""
    rng = np.random.default_rng(3)
    cfg = LutConfig(w_bits=3, a_bits=6, g=3, k_max=10, symmetric=True)
    a = golden.random_activations(rng, (2, 10), 6)
    wt = golden.random_weights(rng, (10, 4), "uint", 3)
    trace = []
    lut_mpgemm(a, wt, "uint", 3, cfg, trace=trace)
    assert len(trace) == 4                                    # ceil(10 / 3) groups
    ap = np.pad(a, ((0, 0), (0, 2)))
    codes = np.pad(wt, ((0, 2), (0, 0)))
    running = 0
    for j, (p, acc) in enumerate(trace):
        for r, c in itertools.product(range(2), range(4)):
            want = 0
            for b in (2, 1, 0):
                idx = sum(((int(codes[j * 3 + i, c]) >> b) & 1) << i for i in range(3))
                want = 2 * want + table_value(ap[r, j * 3:j * 3 + 3], idx)
            assert p[r, c] == want
        running = running + p
        assert np.array_equal(acc, running)


# -- widths: the checks are real -------------------------------------------------------------------

@pytest.mark.parametrize("g", [2, 4])
def test_all_minimum_corner_entry_width(g):
    """T[0] = +g * 2**(a-1) at all-minimum activations fits entry_width and not one bit less."""
    for a_bits in range(2, 17):
        cfg = LutConfig(a_bits=a_bits, g=g, k_max=g)
        lo = a_range(a_bits)[0]
        t = build_tables(np.full((1, g), lo), g)
        assert t[0, 0, 0] == g << (a_bits - 1)
        assert fits(t.max(), cfg.entry_width) and fits(t.min(), cfg.entry_width)
        assert not fits(t[0, 0, 0], cfg.entry_width - 1)


@pytest.mark.parametrize("g", [2, 4])
def test_ceil_log2_entry_width_overflows(g, monkeypatch):
    """With entry_width = a_bits + ceil(log2 g) the model refuses the all-minimum corner."""
    cfg = LutConfig(a_bits=8, g=g, k_max=g)
    a = np.full((1, g), -128)
    wt = np.zeros((g, 1), dtype=np.int64)
    check(a, wt, "int", 2, cfg)
    narrow = 8 + (g - 1).bit_length()
    monkeypatch.setattr(LutConfig, "entry_width", property(lambda self: narrow))
    with pytest.raises(OverflowError, match=rf"^table entry leaves its {narrow}-bit range: "):
        lut_mpgemm(a, wt, "int", 2, cfg)


def bound_case(cfg, width_name):
    """Inputs (a, w, fmt, w_bits) whose ``width_name`` quantity reaches its bound exactly."""
    k = cfg.k_max
    lo, hi = a_range(cfg.a_bits)
    if width_name != "result_width":
        # all-minimum activations, all-zero uint codes: T[0] = g 2**(a-1) on every plane
        return np.full((1, k), lo), np.zeros((k, 1), dtype=np.int64), "uint", cfg.w_bits
    best = None
    for (fmt, w), x in itertools.product(cfg.ops(), (lo, hi)):
        for y in values_of(fmt.label, w):
            v = k * x * y
            size = (v if v >= 0 else ~v).bit_length()
            if best is None or size > best[0]:
                best = size, np.full((1, k), x), np.full((k, 1), y), fmt, w
    return best[1:]


WIDTHS = [("entry_width", "table entry"), ("partial_width", "partial"),
          ("acc_width", "accumulator"), ("sum_width", "activation sum"),
          ("result_width", "result")]


@pytest.mark.parametrize("kw", [dict(w_bits=2, a_bits=8, g=4, k_max=64),
                                dict(w_bits=3, a_bits=5, g=3, k_max=12, symmetric=False),
                                dict(w_bits=4, a_bits=16, g=2, k_max=6),
                                dict(w_bits=1, a_bits=3, g=6, k_max=18)])
@pytest.mark.parametrize("prop,label", WIDTHS)
def test_width_one_bit_less_overflows(kw, prop, label, monkeypatch):
    """Each width is exactly reached, and one bit less raises OverflowError: no check passes
    silently."""
    cfg = LutConfig(**kw)
    a, wt, fmt, w = bound_case(cfg, prop)
    res = check(a, wt, fmt, w, cfg)
    width = getattr(cfg, prop)
    # the bound is really reached at this width
    p, acc = trace_of(a, wt, fmt, w, cfg)
    reached = {"entry_width": build_tables(a, cfg.g), "partial_width": p,
               "acc_width": acc, "sum_width": a.sum(), "result_width": res}[prop]
    assert not all(fits(v, width - 1) for v in np.ravel(reached))
    monkeypatch.setattr(LutConfig, prop, property(lambda self: width - 1))
    with pytest.raises(OverflowError,
                       match=rf"^{label} leaves its {width - 1}-bit range: -?\d+\.\.-?\d+$"):
        lut_mpgemm(a, wt, fmt, w, cfg)


def trace_of(a, wt, fmt, w, cfg):
    trace = []
    lut_mpgemm(a, wt, fmt, w, cfg, trace=trace)
    return np.array([t[0] for t in trace]), np.array([t[1] for t in trace])


def test_tiny_result_width_caught(monkeypatch):
    rng = np.random.default_rng(5)
    cfg = LutConfig()
    a = golden.random_activations(rng, (2, 40), 8)
    wt = golden.random_weights(rng, (40, 3), "int", 2)
    monkeypatch.setattr(LutConfig, "result_width", property(lambda self: 2))
    with pytest.raises(OverflowError, match=r"^result leaves its 2-bit range: "):
        lut_mpgemm(a, wt, "int", 2, cfg)


def test_lut_mpgemm_refuses_bad_inputs():
    cfg = LutConfig(k_max=8)
    a = np.zeros((2, 3), dtype=np.int64)
    with pytest.raises(ValueError, match=msg("A is (2, 3) and W is (4, 5): their K differ")):
        lut_mpgemm(a, np.zeros((4, 5), dtype=np.int64), "int", 2, cfg)
    with pytest.raises(ValueError, match=msg("K must be at most k_max = 8, not 9")):
        lut_mpgemm(np.zeros((1, 9), dtype=np.int64), np.zeros((9, 1), dtype=np.int64),
                   "int", 2, cfg)
    for bad in (-129, 128):
        with pytest.raises(ValueError,
                           match=msg("activations must be in -128..127 for a_bits = 8")):
            lut_mpgemm(np.array([[0, bad, 0]]), np.zeros((3, 1), dtype=np.int64), "int", 2, cfg)
    with pytest.raises(ValueError, match=msg("int weights with w_bits = 2 must be in -2..1")):
        lut_mpgemm(a, np.full((3, 1), 2), "int", 2, cfg)
    with pytest.raises(ValueError, match=msg("weight format binary cannot run with w_bits = 2")):
        lut_mpgemm(a, np.ones((3, 1), dtype=np.int64), "binary", 2, cfg)
    with pytest.raises(ValueError, match=msg("w_bits must be in 1..2, not 3")):
        lut_mpgemm(a, np.ones((3, 1), dtype=np.int64), "uint", 3, cfg)
    with pytest.raises(TypeError, match=msg("a must hold integers, not float64")):
        lut_mpgemm(a * 0.5, np.ones((3, 1), dtype=np.int64), "int", 2, cfg)


# -- tables and lookup ---------------------------------------------------------------------------

@pytest.mark.parametrize("g", range(2, 7))
def test_build_tables_and_symmetric_lookup(g):
    rng = np.random.default_rng(g)
    lo, hi = a_range(9)
    acts = np.concatenate([rng.integers(lo, hi + 1, size=(20, g)),
                           np.array(list(itertools.product((lo, hi), repeat=g)))])
    full = build_tables(acts, g)[:, 0, :]                          # R x 2**g
    rows = acts.shape[0]
    for r in range(rows):
        assert full[r].tolist() == [table_value(acts[r], i) for i in range(1 << g)]
    half = stored_tables(full, True)
    assert half.shape == (rows, 1 << (g - 1))
    assert np.array_equal(half, full[:, : 1 << (g - 1)])         # index MSB = 0 half
    assert stored_tables(full, False) is full
    for idx in range(1 << g):
        ix = np.full(rows, idx)
        want = full[:, idx]
        assert np.array_equal(lookup(half, ix, g, True), want), idx
        assert np.array_equal(lookup(full, ix, g, False), want), idx
    # mixed indices in one call
    ix = rng.integers(0, 1 << g, size=rows)
    assert np.array_equal(lookup(half, ix, g, True), full[np.arange(rows), ix])


def test_build_tables_needs_whole_groups():
    with pytest.raises(ValueError, match=msg("K must be a multiple of g = 4 here (use pad_k), "
                                             "not 6")):
        build_tables(np.zeros((1, 6), dtype=np.int64), 4)


# -- weight codes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("w", range(1, 5))
def test_weight_codes_every_value(w):
    for fmt in WeightFormat:
        if not fmt.allows(w):
            text = f"weight format {fmt.label} cannot run with w_bits = {w}"
            with pytest.raises(ValueError, match=msg(text)):
                weight_codes(np.zeros((1, 1), dtype=np.int64) + 1, fmt, w)
            continue
        vals = values_of(fmt.label, w)
        codes = weight_codes(np.array(vals), fmt.label, w)
        assert codes.tolist() == [code_of(fmt.label, v, w) for v in vals]
        assert len(set(codes.tolist())) == len(vals)
        assert 0 <= codes.min() and codes.max() < 1 << w
        planes = bit_planes(codes, w)
        assert planes.shape == (w, len(vals))
        for b in range(w):                                           # row 0 is the MSB plane
            assert planes[b].tolist() == [(c >> (w - 1 - b)) & 1 for c in codes.tolist()]


@pytest.mark.parametrize("fmt,w,bad,text", [
    ("int", 1, 1, "int weights with w_bits = 1 must be in -1..0"),
    ("int", 2, 2, "int weights with w_bits = 2 must be in -2..1"),
    ("int", 2, -3, "int weights with w_bits = 2 must be in -2..1"),
    ("int", 4, 8, "int weights with w_bits = 4 must be in -8..7"),
    ("uint", 2, -1, "uint weights with w_bits = 2 must be in 0..3"),
    ("uint", 3, 8, "uint weights with w_bits = 3 must be in 0..7"),
    ("binary", 1, 0, "binary weights must be -1 or +1, not 0"),
    ("binary", 1, 2, "binary weights with w_bits = 1 must be in -1..1"),
    ("binary", 1, -2, "binary weights with w_bits = 1 must be in -1..1"),
    ("ternary", 2, 2, "ternary weights with w_bits = 2 must be in -1..1"),
    ("ternary", 2, -2, "ternary weights with w_bits = 2 must be in -1..1"),
    ("ternary", 3, 0, "weight format ternary cannot run with w_bits = 3"),
    ("binary", 2, 1, "weight format binary cannot run with w_bits = 2"),
])
def test_weight_codes_refuse(fmt, w, bad, text):
    vals = [v for v in values_of(fmt, 2 if fmt == "ternary" else w)]
    arr = np.array([[vals[0], bad], [vals[-1], vals[0]]])
    with pytest.raises(ValueError, match=msg(text)):
        weight_codes(arr, fmt, w)


def test_weight_codes_types():
    with pytest.raises(TypeError, match=msg("w must hold integers, not float64")):
        weight_codes(np.array([0.0, 1.0]), "int", 2)
    with pytest.raises(ValueError, match=msg(
            "weight format must be one of int, uint, binary, ternary, not 'int4'")):
        weight_codes(np.array([0]), "int4", 2)


def test_random_generators_cover_ranges():
    rng = np.random.default_rng(11)
    for w in range(1, 5):
        for fmt in WeightFormat:
            if fmt.allows(w):
                got = set(golden.random_weights(rng, (400,), fmt, w).tolist())
                assert got == set(values_of(fmt.label, w)) - ({0} if fmt.label == "binary"
                                                             else set())
    a = golden.random_activations(rng, (5000,), 4)
    assert set(a.tolist()) == set(range(-8, 8))


# -- packing ---------------------------------------------------------------------------------------

PACK_CFGS = [
    dict(),
    dict(w_bits=3, a_bits=5, g=3, m=3, n=5, k_max=20, symmetric=False),
    dict(w_bits=1, a_bits=2, g=2, m=1, n=1, k_max=5),
    dict(w_bits=4, a_bits=16, g=6, m=4, n=7, k_max=40, symmetric=True),
    dict(w_bits=4, a_bits=11, g=5, m=2, n=3, k_max=16, symmetric=False),
]


def run_packed(cfg, a, wt, fmt, w):
    """Pack with gen.golden, decode here, compare entries / indices, run the loop."""
    k = a.shape[1]
    groups = -(-k // cfg.g)
    cmd = pack_cmd(cfg, fmt, w, groups)
    assert decode_cmd(cfg, cmd) == (FORMAT_CODE[WeightFormat.parse(fmt).label], w, groups)
    tables = pack_tables(cfg, a)
    weights = pack_weight_planes(cfg, wt, fmt, w)
    assert len(tables) == groups and len(weights) == groups * w
    ap = np.pad(a, ((0, 0), (0, groups * cfg.g - k)))
    for j, beat in enumerate(tables):
        dec = decode_tables(cfg, beat)
        for r in range(cfg.m):
            assert dec[r] == [table_value(ap[r, j * cfg.g:(j + 1) * cfg.g], e)
                              for e in range(cfg.table_entries)]
    label = WeightFormat.parse(fmt).label
    for j in range(groups):
        for b_i, b in enumerate(range(w - 1, -1, -1)):           # beats: MSB plane first
            dec = decode_weights(cfg, weights[j * w + b_i])
            for c in range(cfg.n):
                want = 0
                for i in range(cfg.g):
                    kk = j * cfg.g + i
                    bit = (code_of(label, int(wt[kk, c]), w) >> b) & 1 if kk < k else 0
                    want |= bit << i
                assert dec[c] == want
    got = spec_run(cfg, cmd, tables, weights)
    assert np.array_equal(got, matmul(a, wt))
    t_cmd, t_tables, t_weights, expected = tile_stream(cfg, a, wt, fmt, w)
    assert (t_cmd, t_tables, t_weights) == (cmd, tables, weights)
    assert np.array_equal(expected.astype(object), got)


@pytest.mark.parametrize("kw", PACK_CFGS)
def test_packing_round_trip(kw):
    cfg = LutConfig(**kw)
    rng = np.random.default_rng(cfg.g * 100 + cfg.n)
    lo, hi = a_range(cfg.a_bits)
    for fmt, w in cfg.ops():
        for k in sorted({1, cfg.g + 1, 2 * cfg.g, min(cfg.k_max, 4 * cfg.g + 1)}):
            a = golden.random_activations(rng, (cfg.m, k), cfg.a_bits)
            a[0, : k // 2] = lo                                      # extremes in the mix
            a[-1, k // 2:] = hi
            wt = golden.random_weights(rng, (k, cfg.n), fmt, w)
            run_packed(cfg, a, wt, fmt.label, w)


@settings(max_examples=40, deadline=None, database=None)
@given(st.data())
def test_packing_hypothesis(data):
    w_max = data.draw(st.integers(1, 4))
    g = data.draw(st.integers(2, 6))
    cfg = LutConfig(w_bits=w_max, a_bits=data.draw(st.integers(2, 16)), g=g,
                    m=data.draw(st.integers(1, 3)), n=data.draw(st.integers(1, 4)),
                    k_max=3 * g, symmetric=data.draw(st.booleans()))
    fmt, w = data.draw(st.sampled_from(cfg.ops()))
    k = data.draw(st.integers(1, 3 * g))
    lo, hi = a_range(cfg.a_bits)
    a = data.draw(hnp.arrays(np.int64, (cfg.m, k), elements=st.integers(lo, hi)))
    wt = data.draw(hnp.arrays(np.int64, (k, cfg.n),
                              elements=st.sampled_from(values_of(fmt.label, w))))
    run_packed(cfg, a, wt, fmt, w)


@pytest.mark.parametrize("kw", PACK_CFGS)
def test_cmd_round_trip(kw):
    cfg = LutConfig(**kw)
    for fmt, w in cfg.ops():
        for groups in sorted({1, 2, cfg.groups_max} & set(range(1, cfg.groups_max + 1))):
            word = pack_cmd(cfg, fmt, w, groups)
            assert decode_cmd(cfg, word) == (fmt.value, w, groups)
            assert unpack_cmd(cfg, word) == (fmt, w, groups)
    with pytest.raises(ValueError, match=msg(f"groups must be in 1..{cfg.groups_max}, not 0")):
        pack_cmd(cfg, "int", 1, 0)
    with pytest.raises(ValueError, match=msg(
            f"groups must be in 1..{cfg.groups_max}, not {cfg.groups_max + 1}")):
        pack_cmd(cfg, "int", 1, cfg.groups_max + 1)
    with pytest.raises(ValueError, match=msg(f"w_bits must be in 1..{cfg.w_bits}, not 0")):
        pack_cmd(cfg, "int", 0, 1)


@pytest.mark.parametrize("kw", PACK_CFGS)
def test_unpack_results(kw):
    cfg = LutConfig(**kw)
    rng = np.random.default_rng(cfg.n)
    lo, hi = cfg.result_range
    rw = cfg.result_width
    vals = rng.integers(lo, hi + 1, size=(cfg.m, cfg.n))
    vals[0, 0], vals[-1, -1] = lo, hi
    if cfg.n > 2:
        vals[0, 1], vals[0, 2] = -1, 0
    beats = []
    for r in range(cfg.m):
        word = 0
        for c in range(cfg.n):
            word += (int(vals[r, c]) % (1 << rw)) << (c * rw)        # two's complement field
        assert word < 1 << cfg.result_row_width
        beats.append(word)
    out = unpack_results(cfg, beats)
    assert out.shape == (cfg.m, cfg.n)
    assert np.array_equal(out, vals)


# -- MAC baseline beats ----------------------------------------------------------------------------

def value_of(fmt, code, w):
    """Inverse of code_of."""
    if fmt in ("int", "ternary"):
        return code - (1 << (w - 1))
    if fmt == "uint":
        return code
    return 2 * code - 1


@pytest.mark.parametrize("kw", PACK_CFGS)
def test_mac_packing_round_trip(kw):
    """pack_activations / pack_weight_codes decoded by their documented layouts give A @ W."""
    cfg = LutConfig(**kw)
    rng = np.random.default_rng(cfg.m + 10 * cfg.g)
    g, wmax = cfg.g, cfg.w_bits
    for fmt, w in cfg.ops():
        for k in sorted({1, g + 1, min(cfg.k_max, 3 * g)}):
            a = golden.random_activations(rng, (cfg.m, k), cfg.a_bits)
            a[0, 0] = a_range(cfg.a_bits)[0]
            wt = golden.random_weights(rng, (k, cfg.n), fmt, w)
            cmd, acts, codes, expected = golden.mac_stream(cfg, a, wt, fmt, w)
            groups = -(-k // g)
            assert cmd == pack_cmd(cfg, fmt, w, groups)
            assert len(acts) == len(codes) == groups
            got_a = np.zeros((cfg.m, groups * g), dtype=object)
            got_w = np.zeros((groups * g, cfg.n), dtype=object)
            for j in range(groups):
                assert 0 <= acts[j] < 1 << cfg.act_width
                assert 0 <= codes[j] < 1 << cfg.code_width
                for r, i in itertools.product(range(cfg.m), range(g)):
                    got_a[r, j * g + i] = field(acts[j], (r * g + i) * cfg.a_bits, cfg.a_bits,
                                                True)
                for c, i in itertools.product(range(cfg.n), range(g)):
                    code = field(codes[j], (c * g + i) * wmax, wmax, False)
                    if j * g + i < k:
                        assert code == code_of(fmt.label, int(wt[j * g + i, c]), w)
                        got_w[j * g + i, c] = value_of(fmt.label, code, w)
            assert np.array_equal(got_a[:, :k], a.astype(object))
            assert not got_a[:, k:].any()                          # padded activations are 0
            assert np.array_equal(matmul(got_a, got_w), matmul(a, wt))
            assert np.array_equal(expected.astype(object), matmul(a, wt))
