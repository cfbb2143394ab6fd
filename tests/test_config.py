"""Tests of gen.config.LutConfig: defaults, every derived width against brute force, errors.

Widths are checked against values computed here independently of ``gen.config``: extreme
activation vectors are enumerated, tables / partials / accumulators / results are computed with
NumPy or plain ints, and the bits they need are counted with ``int.bit_length``. Where the bound
is reachable the width must be *equal* to the brute-force one (fits, and one bit less would not).
"""
import dataclasses
import itertools
import json
import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from gen.config import (A_BITS_RANGE, G_RANGE, K_MAX_RANGE, M_RANGE, N_RANGE, W_BITS_RANGE,
                        LutConfig, WeightFormat, signed_width, unsigned_width)

ALL_FORMATS = ("int", "uint", "binary", "ternary")


# -- independent helpers -----------------------------------------------------------------------

def sbits(v):
    """Bits of the two's complement number ``v`` (counted with int.bit_length)."""
    v = int(v)
    return (v if v >= 0 else ~v).bit_length() + 1


def sbits_all(values):
    return max(sbits(v) for v in np.asarray(values).reshape(-1).tolist())


def fits(v, width):
    return -(1 << (width - 1)) <= int(v) <= (1 << (width - 1)) - 1


def a_extremes(a_bits):
    return -(1 << (a_bits - 1)), (1 << (a_bits - 1)) - 1


def full_tables(acts, g):
    """T[v, idx] for activation vectors ``acts`` (V x g), by the paper's definition."""
    acts = np.asarray(acts, dtype=np.int64)
    out = np.zeros((acts.shape[0], 1 << g), dtype=np.int64)
    for idx in range(1 << g):
        for i in range(g):
            out[:, idx] += acts[:, i] * (1 if (idx >> i) & 1 else -1)
    return out


def vertex_acts(a_bits, g):
    """Every activation vector with each element at its minimum or maximum (V x g)."""
    return np.array(list(itertools.product(a_extremes(a_bits), repeat=g)), dtype=np.int64)


def format_values(fmt, w):
    """The weight values of a format, written out from docs/interface.md."""
    if fmt == "int":
        return list(range(-(1 << (w - 1)), 1 << (w - 1)))
    if fmt == "uint":
        return list(range(0, 1 << w))
    if fmt == "binary":
        return [-1, 1]
    return [-1, 0, 1]


def format_allows(fmt, w):
    return {"binary": w == 1, "ternary": w == 2}.get(fmt, True)


def msg(text):
    return "^" + re.escape(text) + "$"


# -- defaults ---------------------------------------------------------------------------------

def test_defaults():
    cfg = LutConfig()
    assert (cfg.w_bits, cfg.a_bits, cfg.g, cfg.m, cfg.n, cfg.k_max) == (2, 8, 4, 2, 64, 4096)
    assert cfg.symmetric is True
    assert cfg.table_format == "int"
    assert cfg.weight_formats == ALL_FORMATS
    assert cfg.formats == (WeightFormat.INT, WeightFormat.UINT, WeightFormat.BINARY,
                           WeightFormat.TERNARY)
    assert cfg.name == "lut_array_w2a8_g4_m2n64_k4096_sym"
    # worked by hand: T[0] <= 4 * 128 = 512 -> 11 bits; p <= 3 * 512 = 1536 -> 12 bits;
    # acc <= 1024 * 1536 = 1572864 -> 22 bits; S >= 4096 * -128 = -2**19 -> 20 bits;
    # result in -4096*128*3 .. 4096*127*3 = -1572864 .. 1560576 -> 22 bits.
    want = {
        "entry_width": 11, "table_entries": 8, "index_width": 4, "select_width": 3,
        "table_row_width": 88, "table_width": 176, "weight_width": 256, "groups_max": 1024,
        "k_pad": 4096, "groups_width": 11, "plane_width": 2, "partial_width": 12,
        "acc_width": 22, "sum_width": 20, "result_width": 22, "result_row_width": 22 * 64,
        "act_width": 2 * 4 * 8, "code_width": 64 * 4 * 2, "dequant_width": 8,
        "direct_width": 3, "engine_cmd_width": 2 + 2 + 11 + 32,
    }
    derived = cfg.derived()
    assert {k: derived[k] for k in want} == want
    assert all(derived[k] == getattr(cfg, k) for k in derived)
    assert cfg.result_range == (-1572864, 1560576)
    assert cfg.precompute is False


def test_entry_width_documented_values():
    # docs/interface.md: 11 bits for a8/g4, 19 for a16/g4.
    assert LutConfig(a_bits=8, g=4).entry_width == 11
    assert LutConfig(a_bits=16, g=4).entry_width == 19


def test_full_table_variant():
    cfg = LutConfig(symmetric=False)
    assert cfg.table_entries == 16
    assert cfg.select_width == 4
    assert cfg.table_width == 2 * 16 * 11
    assert cfg.name == "lut_array_w2a8_g4_m2n64_k4096_full"


# -- widths against brute force ------------------------------------------------------------------

def test_width_helpers_brute_force():
    for lo in range(-40, 41):
        for hi in range(lo, 41):
            want = next(w for w in range(1, 20)
                        if all(fits(v, w) for v in range(lo, hi + 1)))
            assert signed_width(lo, hi) == want, (lo, hi)
    for hi in range(0, 300):
        want = next(w for w in range(1, 20) if hi < 1 << w)
        assert unsigned_width(hi) == want, hi


@pytest.mark.parametrize("g", range(G_RANGE[0], G_RANGE[1] + 1))
@pytest.mark.parametrize("a_bits", range(A_BITS_RANGE[0], A_BITS_RANGE[1] + 1))
def test_entry_width_brute_force(a_bits, g):
    """max |T| over every extreme activation vector needs exactly entry_width bits."""
    tables = full_tables(vertex_acts(a_bits, g), g)
    need = sbits_all(tables)
    for sym in (True, False):
        cfg = LutConfig(a_bits=a_bits, g=g, symmetric=sym)
        stored = tables[:, : cfg.table_entries]          # the half the hardware keeps
        assert sbits_all(stored) == need                 # T[0] is in the stored half
        assert cfg.entry_width == need


@pytest.mark.parametrize("a_bits,g", [(2, 2), (2, 3), (2, 4), (3, 2), (3, 3), (3, 4), (2, 5)])
def test_extreme_vectors_suffice(a_bits, g):
    """Every activation vector (not only the extremes) stays inside entry_width."""
    vals = range(a_extremes(a_bits)[0], a_extremes(a_bits)[1] + 1)
    acts = np.array(list(itertools.product(vals, repeat=g)), dtype=np.int64)
    assert sbits_all(full_tables(acts, g)) == LutConfig(a_bits=a_bits, g=g).entry_width


@pytest.mark.parametrize("g", [2, 4])
def test_ceil_log2_formula_is_one_bit_short(g):
    """The all-minimum corner: a_bits + ceil(log2 g) bits overflow at g = 2 and g = 4."""
    for a_bits in range(A_BITS_RANGE[0], A_BITS_RANGE[1] + 1):
        t0 = full_tables([[a_extremes(a_bits)[0]] * g], g)[0, 0]
        cfg = LutConfig(a_bits=a_bits, g=g)
        assert t0 == g << (a_bits - 1)
        assert fits(t0, cfg.entry_width)
        assert not fits(t0, cfg.entry_width - 1)
        assert cfg.entry_width - 1 == a_bits + (g - 1).bit_length()   # the ceil(log2 g) width


@pytest.mark.parametrize("w_bits", range(1, 5))
@pytest.mark.parametrize("g", [2, 3])
@pytest.mark.parametrize("a_bits", [2, 3, 8])
def test_partial_width_brute_force(a_bits, g, w_bits):
    """p = sum_b 2**b T[idx_b] over every index sequence (and extreme activations)."""
    tables = full_tables(vertex_acts(a_bits, g), g)                  # V x 2**g
    seqs = np.array(list(itertools.product(range(1 << g), repeat=w_bits)))   # S x w, MSB first
    weights = 1 << np.arange(w_bits - 1, -1, -1)
    p = sum(weights[b] * tables[:, seqs[:, b]] for b in range(w_bits))       # V x S
    cfg = LutConfig(a_bits=a_bits, g=g, w_bits=w_bits)
    assert cfg.partial_width == sbits_all(p)


def acc_corners(cfg, w, k):
    """acc over k activations for the corner inputs, from the identity
    acc = sum_k a_k * (2 q_k - (2**w - 1)) (uniform code q on every activation)."""
    out = []
    for a in a_extremes(cfg.a_bits):
        for q in (0, (1 << w) - 1):
            av = np.full(k, a, dtype=np.int64)
            qv = np.full(k, q, dtype=np.int64)
            out.append(int(av @ (2 * qv - ((1 << w) - 1))))
    return out


def result_corners(cfg, k):
    """A @ W for uniform corner activations and weights, every supported operation."""
    out = []
    for fmt, w in cfg.ops():
        vals = format_values(fmt.label, w)
        for a in a_extremes(cfg.a_bits):
            for s in (min(vals), max(vals)):
                out.append(int((np.full((1, k), a, dtype=np.int64) @
                                np.full((k, 1), s, dtype=np.int64))[0, 0]))
    return out


def check_reduction_widths(cfg):
    k_pad = -(-cfg.k_max // cfg.g) * cfg.g
    assert cfg.k_pad == k_pad
    assert cfg.groups_max == k_pad // cfg.g
    # The hardware accepts up to groups_max full groups, so k_pad activations are reachable
    # through its ports: the widths are sized for them, and exactly so.
    assert cfg.acc_width == sbits_all(acc_corners(cfg, cfg.w_bits, k_pad))
    amin, amax = a_extremes(cfg.a_bits)
    assert cfg.sum_width == sbits_all([int(np.full(k_pad, amin).sum()),
                                       int(np.full(k_pad, amax).sum())])
    corners = result_corners(cfg, k_pad)
    assert cfg.result_width == sbits_all(corners)
    assert cfg.result_range == (min(0, *corners), max(0, *corners))
    assert cfg.result_row_width == cfg.n * cfg.result_width
    # K = k_max (what golden.lut_mpgemm accepts) never needs more.
    assert sbits_all(acc_corners(cfg, cfg.w_bits, cfg.k_max)) <= cfg.acc_width
    assert sbits_all(result_corners(cfg, cfg.k_max)) <= cfg.result_width
    # smaller runtime precisions fit the same accumulator
    for w in range(1, cfg.w_bits + 1):
        assert all(fits(v, cfg.acc_width) for v in acc_corners(cfg, w, k_pad))
    # command fields
    assert cfg.groups_max < 1 << cfg.groups_width
    assert cfg.groups_width == 1 or cfg.groups_max >= 1 << (cfg.groups_width - 1)
    assert cfg.w_bits < 1 << cfg.plane_width <= 2 * cfg.w_bits
    # layout widths
    assert cfg.table_entries == (1 << (cfg.g - 1) if cfg.symmetric else 1 << cfg.g)
    assert 1 << cfg.select_width == cfg.table_entries
    assert cfg.index_width == cfg.g
    assert cfg.table_row_width == cfg.table_entries * cfg.entry_width
    assert cfg.table_width == cfg.m * cfg.table_entries * cfg.entry_width
    assert cfg.weight_width == cfg.n * cfg.g
    # the MAC baseline: beats, and weight operands that hold every supported weight value
    assert cfg.act_width == cfg.m * cfg.g * cfg.a_bits
    assert cfg.code_width == cfg.n * cfg.g * cfg.w_bits
    wvals = [v for f, w in cfg.ops() for v in format_values(f.label, w)]
    assert cfg.direct_width >= sbits_all(wvals)
    assert cfg.dequant_width >= max(cfg.a_bits, sbits_all(wvals))
    if "uint" in cfg.weight_formats:          # the w-bit uint needs exactly w + 1 signed bits
        assert cfg.direct_width == sbits_all(wvals)
        assert cfg.dequant_width == max(cfg.a_bits, sbits_all(wvals))
    # the engine command: format, w, groups, two tile counts
    assert cfg.engine_cmd_width == 2 + cfg.plane_width + cfg.groups_width + 2 * 16


@pytest.mark.parametrize("kw", [
    {}, {"k_max": 1}, {"k_max": 3, "g": 4}, {"k_max": 5, "g": 4}, {"k_max": 7, "g": 6},
    {"k_max": 16, "w_bits": 4, "a_bits": 16}, {"k_max": 1 << 20, "w_bits": 4, "a_bits": 16},
    {"k_max": 1 << 20, "w_bits": 1, "a_bits": 2, "g": 5},
    {"w_bits": 1, "weight_formats": ("binary",)}, {"w_bits": 4, "weight_formats": ("ternary",)},
    {"w_bits": 3, "weight_formats": ("uint",)}, {"w_bits": 4, "weight_formats": ("int",)},
])
def test_reduction_widths_corners(kw):
    check_reduction_widths(LutConfig(**kw))


@st.composite
def configs(draw):
    w_bits = draw(st.integers(*W_BITS_RANGE))
    valid = [f for f in ALL_FORMATS if any(format_allows(f, w) for w in range(1, w_bits + 1))]
    subset = draw(st.one_of(st.none(), st.lists(st.sampled_from(valid), min_size=1,
                                                max_size=4)))
    return LutConfig(w_bits=w_bits, a_bits=draw(st.integers(*A_BITS_RANGE)),
                     g=draw(st.integers(*G_RANGE)), m=draw(st.integers(*M_RANGE)),
                     n=draw(st.integers(*N_RANGE)), k_max=draw(st.integers(1, 5000)),
                     symmetric=draw(st.booleans()),
                     weight_formats=None if subset is None else tuple(subset))


@settings(max_examples=150, deadline=None, database=None)
@given(configs())
def test_reduction_widths_random(cfg):
    check_reduction_widths(cfg)


@pytest.mark.parametrize("kw", [{}, {"m": 1}, {"m": 3}, {"m": 16, "w_bits": 4, "a_bits": 16},
                                {"m": 5, "w_bits": 1, "k_max": 7}])
def test_control_and_engine_widths(kw):
    """Counters and the correction term hold their extremes, and not with a bit to spare."""
    cfg = LutConfig(**kw)
    # the uint correction (2**w - 1) * S and the int one -S, over the whole S range
    s_lo, s_hi = -(1 << (cfg.sum_width - 1)), (1 << (cfg.sum_width - 1)) - 1
    corr = [((1 << w) - 1) * s for w in range(1, cfg.w_bits + 1) for s in (s_lo, s_hi)]
    corr += [-s_lo, -s_hi]
    assert cfg.correction_width >= sbits_all(corr)
    # the output row counter counts 0 .. m-1 (one bit when m = 1)
    assert cfg.row_index_width == max(1, (cfg.m - 1).bit_length())
    # the engine: m_tiles * n_tiles tiles, m rows each
    t = (1 << cfg.tile_count_width) - 1
    assert cfg.tiles_width == (t * t).bit_length()
    assert cfg.rows_count_width == (t * t * cfg.m).bit_length()
    assert (cfg.top_cmd_width("array"), cfg.top_cmd_width("engine"),
            cfg.top_cmd_width("mac_direct")) == (cfg.cmd_width, cfg.engine_cmd_width,
                                                 cfg.cmd_width)
    for key in ("correction_width", "row_index_width", "tiles_width", "rows_count_width",
                "cycles_width", "cmd_width", "engine_cmd_width"):
        assert cfg.derived()[key] == getattr(cfg, key)


# -- bad parameters ------------------------------------------------------------------------------

BAD = [
    ({"w_bits": 0}, ValueError, "w_bits must be in 1..4, not 0"),
    ({"w_bits": 5}, ValueError, "w_bits must be in 1..4, not 5"),
    ({"a_bits": 1}, ValueError, "a_bits must be in 2..16, not 1"),
    ({"a_bits": 40}, ValueError, "a_bits must be in 2..16, not 40"),
    ({"g": 1}, ValueError, "g must be in 2..6, not 1"),
    ({"g": 7}, ValueError, "g must be in 2..6, not 7"),
    ({"m": 0}, ValueError, "m must be in 1..16, not 0"),
    ({"m": 17}, ValueError, "m must be in 1..16, not 17"),
    ({"n": 0}, ValueError, "n must be in 1..256, not 0"),
    ({"n": 300}, ValueError, "n must be in 1..256, not 300"),
    ({"k_max": 0}, ValueError, "k_max must be in 1..1048576, not 0"),
    ({"k_max": -4}, ValueError, "k_max must be in 1..1048576, not -4"),
    ({"k_max": (1 << 20) + 1}, ValueError, "k_max must be in 1..1048576, not 1048577"),
    ({"w_bits": 2.0}, TypeError, "w_bits must be an integer, not 2.0"),
    ({"w_bits": True}, TypeError, "w_bits must be an integer, not True"),
    ({"g": "4"}, TypeError, "g must be an integer, not '4'"),
    ({"n": None}, TypeError, "n must be an integer, not None"),
    ({"symmetric": "yes"}, TypeError, "symmetric must be a bool, not 'yes'"),
    ({"symmetric": 1}, TypeError, "symmetric must be a bool, not 1"),
    ({"precompute": "no"}, TypeError, "precompute must be a bool, not 'no'"),
    ({"w_bits": 1, "weight_formats": ("ternary",)}, ValueError,
     "weight format ternary needs w_bits >= 2, not w_bits = 1"),
    ({"w_bits": 1, "weight_formats": ("int", "ternary")}, ValueError,
     "weight format ternary needs w_bits >= 2, not w_bits = 1"),
    ({"weight_formats": ("float",)}, ValueError,
     "weight format must be one of int, uint, binary, ternary, not 'float'"),
    ({"weight_formats": ("int", 4)}, ValueError,
     "weight format must be one of int, uint, binary, ternary, not 4"),
    ({"weight_formats": "int"}, TypeError,
     "weight_formats must be a sequence of format names, not 'int'"),
    ({"weight_formats": 3}, TypeError,
     "weight_formats must be a sequence of format names, not 3"),
    ({"weight_formats": ()}, ValueError, "weight_formats must name at least one format, not ()"),
    ({"table_format": "fp16"}, ValueError, "table_format must be one of int, q, fp, not 'fp16'"),
    ({"act_format": "fp8"}, ValueError, "act_format must be one of int, fp16, bf16, not 'fp8'"),
    ({"table_format": "q"}, ValueError,
     "table_format 'q' needs act_format fp16 or bf16, not 'int'"),
    ({"act_format": "fp16", "table_format": "q", "table_bits": 3},
     ValueError, "table_bits must be in 4..16, not 3"),
    ({"act_format": "fp16", "table_format": "q", "scale_block": 1},
     ValueError, "scale_block must be at least m * tables_per_pe = 2 (the FP stage takes a "
     "block's m result rows while the next block runs), not 1"),
    ({"act_format": "fp16", "table_format": "q", "tables_per_pe": 4, "scale_block": 10},
     ValueError, "scale_block must be a multiple of tables_per_pe = 4, not 10"),
    ({"act_format": "fp16", "table_format": "fp", "precompute": True},
     ValueError, "precompute must be False with table_format 'fp' (act_format 'fp16'): FP "
     "tables are precomputed by software"),
]


@pytest.mark.parametrize("kw,exc,text", BAD, ids=[repr(b[0]) for b in BAD])
def test_bad_parameters(kw, exc, text):
    with pytest.raises(exc, match=msg(text)):
        LutConfig(**kw)


def test_range_limits_accepted():
    for name, (lo, hi) in [("w_bits", W_BITS_RANGE), ("a_bits", A_BITS_RANGE), ("g", G_RANGE),
                           ("m", M_RANGE), ("n", N_RANGE), ("k_max", K_MAX_RANGE)]:
        assert getattr(LutConfig(**{name: lo}), name) == lo
        assert getattr(LutConfig(**{name: hi}), name) == hi


def test_weight_formats_normalized():
    cfg = LutConfig(w_bits=2, weight_formats=["Ternary", "INT", "int", WeightFormat.UINT])
    assert cfg.weight_formats == ("int", "uint", "ternary")
    assert cfg == LutConfig(w_bits=2, weight_formats=("uint", "ternary", "int"))
    assert LutConfig(w_bits=1).weight_formats == ("int", "uint", "binary")
    assert LutConfig(w_bits=4).weight_formats == ALL_FORMATS
    assert LutConfig(w_bits=1, weight_formats=("binary",)).weight_formats == ("binary",)


def test_frozen():
    cfg = LutConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.w_bits = 3
    assert hash(cfg) == hash(LutConfig())


# -- runtime operations ----------------------------------------------------------------------------

def test_ops_default():
    assert [(f.label, w) for f, w in LutConfig().ops()] == [
        ("int", 1), ("int", 2), ("uint", 1), ("uint", 2), ("binary", 1), ("ternary", 2)]
    assert len(LutConfig(w_bits=4).ops()) == 4 + 4 + 1 + 1


@pytest.mark.parametrize("w_bits,formats", [
    (w, f) for w in range(1, 5)
    for f in (None, ("int",), ("uint", "binary"), ("ternary", "uint"), ("binary",))
    if not (f and "ternary" in f and w < 2)])
def test_check_op_exhaustive(w_bits, formats):
    cfg = LutConfig(w_bits=w_bits, weight_formats=formats)
    built = set(formats if formats is not None else
                [f for f in ALL_FORMATS if any(format_allows(f, w) for w in range(1, w_bits + 1))])
    accepted = []
    for fmt in ALL_FORMATS:
        for w in range(0, 6):
            ok = fmt in built and 1 <= w <= w_bits and format_allows(fmt, w)
            if ok:
                assert cfg.check_op(fmt, w) is WeightFormat.parse(fmt)
                assert cfg.check_op(fmt.upper(), w) is WeightFormat.parse(fmt)
                accepted.append((fmt, w))
            else:
                with pytest.raises(ValueError):
                    cfg.check_op(fmt, w)
    assert [(f.label, w) for f, w in cfg.ops()] == accepted


def test_check_op_messages():
    cfg = LutConfig(w_bits=2)
    with pytest.raises(ValueError, match=msg("w_bits must be in 1..2, not 3")):
        cfg.check_op("int", 3)
    with pytest.raises(ValueError, match=msg("w_bits must be in 1..2, not 0")):
        cfg.check_op("uint", 0)
    with pytest.raises(TypeError, match=msg("w_bits must be an integer, not 1.0")):
        cfg.check_op("int", 1.0)
    with pytest.raises(ValueError, match=msg("weight format binary cannot run with w_bits = 2")):
        cfg.check_op("binary", 2)
    with pytest.raises(ValueError, match=msg("weight format ternary cannot run with w_bits = 1")):
        cfg.check_op(WeightFormat.TERNARY, 1)
    with pytest.raises(ValueError, match=msg(
            "weight format must be one of int, uint, binary, ternary, not 'fp8'")):
        cfg.check_op("fp8", 1)
    narrow = LutConfig(w_bits=2, weight_formats=("int", "ternary"))
    with pytest.raises(ValueError, match=msg(
            "weight format must be one of int, ternary in this build, not uint")):
        narrow.check_op("uint", 1)


def test_weight_format_values():
    assert [f.value for f in WeightFormat] == [0, 1, 2, 3]     # the cmd's format field
    for w in range(1, 5):
        for f in WeightFormat:
            if f.allows(w):
                vals = format_values(f.label, w)
                assert f.value_range(w) == (min(vals), max(vals))


# -- serialization and replace ---------------------------------------------------------------------

@pytest.mark.parametrize("kw", [
    {}, {"symmetric": False, "g": 6, "m": 16, "n": 256, "k_max": 1 << 20},
    {"w_bits": 4, "a_bits": 16, "weight_formats": ("ternary", "uint")},
    {"w_bits": 1, "a_bits": 2, "g": 2, "m": 1, "n": 1, "k_max": 1, "weight_formats": ("binary",)},
    {"precompute": True, "w_bits": 3},
])
def test_json_round_trip(kw):
    cfg = LutConfig(**kw)
    text = cfg.to_json()
    data = json.loads(text)
    assert set(data) == {"params", "derived"}
    assert data["derived"] == cfg.derived()
    assert data["params"]["weight_formats"] == list(cfg.weight_formats)
    back = LutConfig.from_json(text)
    assert back == cfg
    assert back.derived() == cfg.derived()
    assert back.to_json() == text
    assert LutConfig.from_dict(cfg.params()) == cfg
    assert LutConfig.from_dict(json.loads(json.dumps(cfg.params()))) == cfg


def test_from_json_validates():
    data = json.loads(LutConfig().to_json())
    data["params"]["g"] = 9
    with pytest.raises(ValueError, match=msg("g must be in 2..6, not 9")):
        LutConfig.from_json(json.dumps(data))


def test_replace():
    cfg = LutConfig()
    new = cfg.replace(g=6, n=8)
    assert (new.g, new.n, new.w_bits, new.a_bits) == (6, 8, 2, 8)
    assert (cfg.g, cfg.n) == (4, 64)
    assert new == LutConfig(g=6, n=8)
    # "every format" follows the new w_bits both ways
    assert cfg.replace(w_bits=1).weight_formats == ("int", "uint", "binary")
    assert LutConfig(w_bits=1).replace(w_bits=3).weight_formats == ALL_FORMATS
    # an explicit subset is kept
    sub = LutConfig(w_bits=2, weight_formats=("uint", "ternary"))
    assert sub.replace(a_bits=4).weight_formats == ("uint", "ternary")
    assert sub.replace(w_bits=4).weight_formats == ("uint", "ternary")
    with pytest.raises(ValueError, match=msg(
            "weight format ternary needs w_bits >= 2, not w_bits = 1")):
        sub.replace(w_bits=1)
    assert cfg.replace(weight_formats=("int",)).weight_formats == ("int",)
    with pytest.raises(ValueError, match=msg("n must be in 1..256, not 300")):
        cfg.replace(n=300)


# -- names: every parameter that changes the Verilog ---------------------------------------------

def _format_subsets(w_bits):
    valid = [f for f in ALL_FORMATS if any(format_allows(f, w) for w in range(1, w_bits + 1))]
    return [None] + [c for r in (1, 2) for c in itertools.combinations(valid, r)]


def test_distinct_configs_have_distinct_names():
    """Over a product of parameter values: equal names only for equal configs, and every name
    is a Verilog identifier."""
    names = {}
    for w_bits, a_bits, g, m, n, k_max, sym, pre in itertools.product(
            (1, 2, 4), (2, 8, 16), (2, 4, 6), (1, 2, 16), (1, 64), (16, 4096, 4097),
            (True, False), (True, False)):
        for formats in _format_subsets(w_bits) if (a_bits, g, m, n) == (8, 4, 2, 64) else [None]:
            cfg = LutConfig(w_bits=w_bits, a_bits=a_bits, g=g, m=m, n=n, k_max=k_max,
                            symmetric=sym, precompute=pre, weight_formats=formats)
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", cfg.name), cfg.name
            other = names.setdefault(cfg.name, cfg)
            assert other == cfg, f"{other} and {cfg} share the name {cfg.name}"
    assert len(names) > 2000


def test_name_spells_every_parameter():
    cfg = LutConfig(w_bits=3, a_bits=6, g=5, m=4, n=7, k_max=100, symmetric=False,
                    weight_formats=("uint", "int"), precompute=True)
    assert cfg.name == "lut_array_w3a6_g5_m4n7_k100_fmt_iu_full_pre"
    # every format valid for w_bits (named or defaulted) is the same config and the same name
    assert LutConfig(w_bits=1, weight_formats=("binary", "int", "uint")).name == \
        LutConfig(w_bits=1).name == "lut_array_w1a8_g4_m2n64_k4096_sym"


# -- the MAC baseline's own config ---------------------------------------------------------------

def test_mac_config_defaults_and_widths():
    from gen.mac_config import MacConfig
    cfg = MacConfig()
    assert (cfg.m, cfg.n, cfg.g, cfg.w_bits, cfg.a_bits) == (8, 4, 16, 2, 8)  # M8N4K16
    assert cfg.name == "mac_array_w2a8_g16_m8n4_k4096"
    lut = LutConfig(m=8, n=4, g=4)
    # same precision, formats and reduction: same command and results as the LUT array
    for key in ("cmd_width", "plane_width", "result_width", "groups_width"):
        assert getattr(MacConfig.from_lut(lut), key) == getattr(lut, key)
    assert MacConfig.from_lut(lut, g=16) == cfg
    assert cfg.act_width == 8 * 16 * 8 and cfg.code_width == 4 * 16 * 2
    assert cfg.code_offset_width == unsigned_width(1 << (cfg.w_bits - 1))
    assert cfg.derived() == {k: getattr(cfg, k) for k in cfg.derived()}
    assert MacConfig.from_json(cfg.to_json()) == cfg
    assert cfg.replace(g=64).g == 64
    assert {cfg.operand_width("dequant"), cfg.operand_width("direct")} == {8, 3}
    with pytest.raises(ValueError, match=msg("kind must be one of dequant, direct, not 'x'")):
        cfg.operand_width("x")
    with pytest.raises(TypeError, match=msg("cfg must be a LutConfig, not 3")):
        MacConfig.from_lut(3)


@pytest.mark.parametrize("kw,exc,text", [
    ({"g": 1}, ValueError, "g must be in 2..64, not 1"),
    ({"g": 65}, ValueError, "g must be in 2..64, not 65"),
    ({"g": 16.0}, TypeError, "g must be an integer, not 16.0"),
    ({"m": 17}, ValueError, "m must be in 1..16, not 17"),
    ({"n": 0}, ValueError, "n must be in 1..256, not 0"),
    ({"w_bits": 5}, ValueError, "w_bits must be in 1..4, not 5"),
    ({"a_bits": 1}, ValueError, "a_bits must be in 2..16, not 1"),
    ({"k_max": 0}, ValueError, "k_max must be in 1..1048576, not 0"),
    ({"w_bits": 1, "weight_formats": ("ternary",)}, ValueError,
     "weight format ternary needs w_bits >= 2, not w_bits = 1"),
    ({"weight_formats": "int"}, TypeError,
     "weight_formats must be a sequence of format names, not 'int'"),
])
def test_mac_config_rejects(kw, exc, text):
    from gen.mac_config import MacConfig
    with pytest.raises(exc, match=msg(text)):
        MacConfig(**kw)


def test_mac_config_is_frozen():
    from gen.mac_config import MacConfig
    with pytest.raises(dataclasses.FrozenInstanceError):
        MacConfig().g = 4
