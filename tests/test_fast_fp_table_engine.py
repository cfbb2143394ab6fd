"""The fast runner on the ``fp``-table engine (tb/fast/fp_table_engine.py): bulk packing equals
the golden packing of ``gen.fp_lut_fp.fp_gemm_streams``, and (``slow``: a Verilator build) the
generated harness runs whole GEMMs of every weight format bit-exactly, with and without random
pauses, with NaN/Inf/subnormal activations; a wrong result or a broken engine is caught."""
from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from gen import fp_lut_fp as F
from gen.config import LutConfig
from gen.golden import random_weights
from hw import fp_table_engine
from tb.fast.fp_table_engine import FastFpTableEngine, FpGemmJob, fp_table_engine_beats
from tb.fast.runner import MismatchError
from tb.test_fp_table_array import act_patterns

BUILD = Path(__file__).resolve().parent.parent / "build" / "fast_tests"
SMALL = LutConfig(w_bits=4, g=4, m=2, n=4, k_max=256, act_format="fp16", table_format="fp")


def _ints(words):
    return [sum(int(x) << (32 * i) for i, x in enumerate(r)) for r in words]


def _job(rng, cfg, shape, fmt, w, specials=0.0, golden="lut", name=""):
    rows, k, cols = shape
    act = cfg.act_fp
    return FpGemmJob(act_patterns(rng, act, (rows, k), specials),
                     random_weights(rng, (k, cols), fmt, w), fmt, w,
                     act_patterns(rng, act, cols, scale=0.1), name=name or f"{fmt}{w}",
                     golden=golden)


@pytest.mark.parametrize("cfg", [
    SMALL, LutConfig(w_bits=3, g=3, m=3, n=5, k_max=128, act_format="bf16", table_format="fp",
                     symmetric=False)], ids=["fp16_m2n4", "bf16_full_m3n5g3"])
def test_beats_equal_golden_packing(cfg):
    """Every format and w, several tiles, K not a multiple of g, special activations."""
    rng = np.random.default_rng(1)
    for fmt, w in cfg.ops():
        job = _job(rng, cfg, (2 * cfg.m + 1, 3 * cfg.g + 1, 2 * cfg.n + 1), fmt, w, 0.1)
        ref = F.fp_gemm_streams(cfg, job.a, job.w, fmt, w, job.wscales)
        got = fp_table_engine_beats(cfg, job.a, job.w, fmt, w, job.wscales)
        assert _ints(got["cmd"]) == [ref["cmd"]]
        assert _ints(got["tables"]) == ref["tables"]
        # one row block's weights and weight scales; the engine reads them m_tiles times
        assert _ints(got["weights"]) * got["m_tiles"] == ref["weights"]
        assert _ints(got["wscales"]) * got["m_tiles"] == ref["wscales"]


def test_beats_reject_bad_operands():
    a = np.zeros((2, 8), dtype=np.int64)
    w = np.zeros((8, 4), dtype=np.int64)
    with pytest.raises(ValueError, match="wscales must hold N = 4"):
        fp_table_engine_beats(SMALL, a, w, "int", 2, np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="k_max"):
        fp_table_engine_beats(SMALL, np.zeros((2, 300), dtype=np.int64),
                              np.zeros((300, 4), dtype=np.int64), "int", 2, np.zeros(4))
    with pytest.raises(ValueError, match="table_format must be 'fp'"):
        fp_table_engine_beats(SMALL.replace(table_format="q"), a, w, "int", 2, np.zeros(4))


@pytest.fixture(scope="module")
def engine():
    # a fixed directory: the build is reused while the Verilog and the harness are the same
    return FastFpTableEngine(SMALL, BUILD / "fp_table_m2n4")


@pytest.mark.sim
@pytest.mark.slow
def test_fast_runner_every_format(engine):
    """Every format and w, several tiles, specials; no pauses, then random pauses on every
    stream; both goldens; ``o_cycles`` equals the span the harness saw, and the GEMM of 2 x 2
    tiles at K = 256 runs at >= 99 %."""
    rng = np.random.default_rng(2)
    jobs = [_job(rng, SMALL, (2 * SMALL.m + 1, 2 * SMALL.g + 3, SMALL.n + 1), f, w,
                 0.05 if i % 3 == 2 else 0.0) for i, (f, w) in enumerate(SMALL.ops())]
    jobs.append(_job(rng, SMALL, (2 * SMALL.m, 256, 2 * SMALL.n), "int", 4, golden="fast"))
    res = engine.run(jobs)
    assert res[-1].utilization >= 0.99, res[-1]
    overheads = {r.cycles - r.ideal for r in res}
    assert len(overheads) == 1, overheads
    engine.run(jobs[:4], pause_in=0.3, pause_out=0.3, seed=5)


@pytest.mark.sim
@pytest.mark.slow
def test_fast_runner_catches_wrong_results(engine, tmp_path):
    """A wrong expected result and an engine whose tables are not reused both fail."""
    rng = np.random.default_rng(3)
    job = _job(rng, SMALL, (2 * SMALL.m, 2 * SMALL.g, 2 * SMALL.n), "int", 2)
    with mock.patch.object(FastFpTableEngine, "expected",
                           lambda self, j: F.lut_fp_mpgemm(j.a, j.w, j.fmt, j.w_bits, self.cfg,
                                                           j.wscales).astype(np.uint32) ^ 1):
        with pytest.raises(MismatchError, match="differs from the golden model"):
            engine.run([job])
    from hw import engine as engine_mod

    def no_reuse(m, name, width, depth, cfg, active, m_tiles, n_tiles, per_block):
        return engine_mod.BankedStore(m, name, width, depth, cfg, active, m_tiles * n_tiles,
                                      1, per_block)
    with mock.patch.object(fp_table_engine, "BankedStore", no_reuse):
        broken = FastFpTableEngine(SMALL.replace(w_bits=2), tmp_path / "broken")
    with pytest.raises((MismatchError, RuntimeError)):
        broken.run([job])


@pytest.mark.sim
@pytest.mark.slow
def test_fp_layer_linear_on_the_engine(engine):
    """``gen.model.fp_layer.fp_linear`` with ``fp`` tables on the emitted engine (one GEMM per
    weight group, ``--rtl --rtl-tables fp``) equals the vectorized model bit for bit."""
    from gen.model.fp_layer import FP_SCHEMES, TableSpec, fp_linear
    rng = np.random.default_rng(4)
    sch = FP_SCHEMES["w4g64"]
    x = act_patterns(rng, SMALL.act_fp, (3, 128))
    q = random_weights(rng, (128, 10), sch.fmt, sch.w_bits)
    s = act_patterns(rng, SMALL.act_fp, (2, 10), scale=0.01)
    c0 = engine.op_cycles
    y = fp_linear(x, q, s, sch, TableSpec("fp"), gemm=engine)
    assert np.array_equal(y, fp_linear(x, q, s, sch, TableSpec("fp")))
    assert engine.op_cycles > c0 and engine.ideal <= engine.op_cycles


def test_fp_layer_rtl_tables_option(tmp_path, capsys):
    """``--rtl-tables`` takes one spec, q or fp: two are one line and exit 2, nothing written."""
    from gen.model.fp_layer import main
    with pytest.raises(SystemExit) as e:
        main(["--rtl-tables", "fp,q8b1", "--out", str(tmp_path / "r")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--rtl-tables takes one spec (q or fp)" in err[0], err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("spec", ["fp", "q8bmax"])
def test_fp_linear_bf16_takes_fp16_scales(spec):
    """``fp_linear`` with BF16 activations: the FP16 weight scales of ``quantize_layer`` are
    rounded into BF16 (the LUT path's scale format), not read as BF16 patterns (which gave
    100 % error before); the result stays near the float64 product."""
    from gen.model.fp_gemm import act_values, to_act_bits
    from gen.model.fp_layer import FP_SCHEMES, _parse_specs, fp_linear
    rng = np.random.default_rng(5)
    sch = FP_SCHEMES["w4g64"]
    xb = to_act_bits(rng.standard_normal((4, 128)), "bf16")
    q = random_weights(rng, (128, 8), sch.fmt, sch.w_bits)
    s = to_act_bits(rng.uniform(0.01, 0.02, (2, 8)), "fp16")
    ideal = act_values(xb, "bf16").astype(np.float64) @ (
        q * np.repeat(act_values(s, "fp16").astype(np.float64), 64, axis=0))
    y = fp_linear(xb, q, s, sch, _parse_specs(spec)[0], "bf16")
    assert np.linalg.norm(y - ideal) / np.linalg.norm(ideal) < 0.02


def test_fp_layer_rtl_fp_n_option(tmp_path, capsys):
    """``--rtl-fp-n`` outside 1..256 is one line and exit 2, nothing written."""
    from gen.model.fp_layer import main
    with pytest.raises(SystemExit) as e:
        main(["--rtl-fp-n", "0", "--out", str(tmp_path / "r")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--rtl-fp-n must be in 1..256, not 0" in err[0], err
    assert not (tmp_path / "r").exists()


@pytest.mark.sim
@pytest.mark.slow
def test_utilization_rows(engine):
    """scripts/fp_utilization.py's rows on the small build: every GEMM exact, the ideal the
    plane count, and the overhead the engine's constant 3 + m cycles at every w and shape."""
    from tb.fast.fp_engine import utilization_rows
    rows = utilization_rows(engine, [(4, 64, 8), (2, 256, 4)], (1, 2, 4))
    assert len(rows) == 6
    for r in rows:
        m_, k, n_ = r["shape"]
        tiles = -(-m_ // SMALL.m) * -(-n_ // SMALL.n)
        assert r["ideal"] == tiles * -(-k // SMALL.g) * r["w"]
        assert r["cycles"] - r["ideal"] == 3 + SMALL.m, r
