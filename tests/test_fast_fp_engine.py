"""The fast runner on the FP engine (tb/fast/fp_engine.py): bulk packing equals the golden
packing of ``gen.fp_lut.q_gemm_streams``, the generated Verilator harness runs whole FP GEMMs
of every weight format bit-exactly (with and without random pauses, with NaN/Inf/subnormal
activations), and a wrong result, a wrong cycle count or a broken engine is caught."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gen.config import LutConfig, WeightFormat
from gen.fp_lut import q_gemm_streams
from gen.golden import random_weights
from tb.fast.fp_engine import FastFpEngine, FpGemmJob, fp_engine_beats
from tb.fast.runner import MismatchError
from tb.test_fp_lut_array import random_scales
from tb.test_fp_mac_array import random_acts

BUILD = Path(__file__).resolve().parent.parent / "build" / "fast_tests"
#: the build of the quick FP model test (tests/test_model.py): one build serves both
MODEL_CFG = LutConfig(act_format="fp16", table_format="q", table_bits=8, scale_block=32, m=2,
                      n=16, g=4, w_bits=4, k_max=1536)
SMALL = LutConfig(act_format="fp16", table_format="q", w_bits=2, g=4, m=2, n=4, k_max=256,
                  scale_block=4)


def _ints(words):
    return [sum(int(x) << (32 * i) for i, x in enumerate(r)) for r in words]


def _job(rng, cfg, shape, fmt, w, specials=0.0, golden="lut", name=""):
    rows, k, cols = shape
    blocks = -(-k // (cfg.scale_block * cfg.g))
    return FpGemmJob(random_acts(rng, cfg.act_fp, (rows, k), specials, 1.0),
                     random_weights(rng, (k, cols), WeightFormat.parse(fmt), w), fmt, w,
                     random_scales(rng, cfg.act_fp, (cols, blocks)), name=name or f"{fmt}{w}",
                     golden=golden)


@pytest.mark.parametrize("cfg", [
    SMALL, LutConfig(act_format="bf16", table_format="q", w_bits=4, g=4, m=3, n=5, k_max=512,
                     scale_block=8, table_bits=6),
    LutConfig(act_format="fp16", table_format="q", w_bits=3, g=4, m=2, n=4, k_max=512,
              scale_block=4, tables_per_pe=2, symmetric=False)],
    ids=["fp16_b4", "bf16_t6_m3n5", "full_c2"])
def test_fp_engine_beats_equal_golden_packing(cfg):
    rng = np.random.default_rng(1)
    for fmt, w in cfg.ops():
        bk = cfg.scale_block * cfg.g
        job = _job(rng, cfg, (2 * cfg.m + 1, 2 * bk + 3, 2 * cfg.n + 1), fmt, w, 0.05)
        ref = q_gemm_streams(cfg, job.a, job.w, fmt, w, job.wscales)
        got = fp_engine_beats(cfg, job.a, job.w, fmt, w, job.wscales)
        assert _ints(got["cmd"]) == [ref["cmd"]]
        assert _ints(got["tables"]) == ref["tables"]
        assert _ints(got["tscales"]) == ref["tscales"]
        # one row block's weights and weight scales; the engine reads them m_tiles times
        assert _ints(got["weights"]) * got["m_tiles"] == ref["weights"]
        assert _ints(got["wscales"]) * got["m_tiles"] == ref["wscales"]
        if cfg.tables_per_pe == 1:
            # the precompute engine's i_act beats (its config only adds precompute)
            pre = q_gemm_streams(cfg.replace(precompute=True), job.a, job.w, fmt, w,
                                 job.wscales)
            assert _ints(got["acts"]) == pre["acts"]


def test_fp_engine_beats_reject_bad_operands():
    a = np.zeros((2, 8), dtype=np.int64)
    w = np.zeros((8, 4), dtype=np.int64)
    with pytest.raises(ValueError, match="wscales"):
        fp_engine_beats(SMALL, a, w, "int", 2, np.zeros((4, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="k_max"):
        fp_engine_beats(SMALL, np.zeros((2, 300), dtype=np.int64),
                        np.zeros((300, 4), dtype=np.int64), "int", 2, np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match="table_format"):
        fp_engine_beats(SMALL.replace(table_format="fp"), a, w, "int", 2, np.zeros(4))


@pytest.fixture(scope="module")
def engine():
    # a fixed directory: the build is reused while the Verilog and the harness are the same
    return FastFpEngine(MODEL_CFG, BUILD / "fp_model_m2n16")


def _jobs(rng, cfg, golden="lut"):
    bk = cfg.scale_block * cfg.g
    shapes = [(cfg.m, bk, cfg.n), (2 * cfg.m + 1, 2 * bk + 3, cfg.n + 1), (1, 1, 1),
              (3, 3 * bk - 5, 2 * cfg.n - 3)]
    return [_job(rng, cfg, shapes[i % len(shapes)], f, w, 0.02 * (i % 2), golden)
            for i, (f, w) in enumerate(cfg.ops())]


@pytest.mark.sim
@pytest.mark.parametrize("pause", [0.0, 0.3])
def test_fast_fp_runner_every_format(engine, pause):
    """Every weight format and w of the build, ragged shapes, specials in every other GEMM, one
    harness call; results (against gen.fp_lut step by step) and o_cycles are checked inside
    run(). At full rate each GEMM costs its weight beats plus one constant: start-up and the
    scale stage's pass over the last block (``m * row_cycles``) plus a few cycles."""
    rng = np.random.default_rng(31 if pause else 32)
    jobs = _jobs(rng, MODEL_CFG)
    out = engine.run(jobs, pause_in=pause, pause_out=pause, seed=7)
    assert len(out) == len(jobs)
    over = set()
    for job, r in zip(jobs, out):
        assert r.result.shape == (job.a.shape[0], job.w.shape[1])
        beats = engine.job_beats(job)["weights"].shape[0] * -(-job.a.shape[0] // MODEL_CFG.m)
        over.add(r.cycles - beats)
    drain = MODEL_CFG.m * MODEL_CFG.row_cycles
    if pause == 0:
        assert len(over) == 1 and drain < over.pop() <= drain + 8, over
    else:
        assert min(over) > drain


@pytest.mark.sim
def test_fast_fp_runner_fast_golden_on_a_layer_shape(engine):
    """A model-shaped GEMM (K = 1536, all 12 scale blocks) checked against the NumPy twin."""
    rng = np.random.default_rng(5)
    job = _job(rng, MODEL_CFG, (5, 1536, 40), "int", 4, golden="fast")
    (r,) = engine.run([job])
    assert r.utilization > 0.95


@pytest.mark.sim
def test_fast_fp_runner_catches_a_wrong_result(engine):
    rng = np.random.default_rng(4)
    job = _jobs(rng, MODEL_CFG)[0]
    (r,) = engine.run([job], check=False)
    engine.check(job, r, r.cycles)
    r.result[0, 0] ^= 1                      # one ulp of one FP32 result
    with pytest.raises(MismatchError, match="differs from the golden model"):
        engine.check(job, r, r.cycles)
    r.result[0, 0] ^= 1
    with pytest.raises(MismatchError, match="o_cycles"):
        engine.check(job, r, r.cycles + 1)


@pytest.mark.sim
def test_fast_fp_raw_speed_runs(engine):
    job = _jobs(np.random.default_rng(2), MODEL_CFG)[0]
    assert engine.raw_speed(job, 2000) > 0


@pytest.mark.sim
@pytest.mark.slow
def test_fast_fp_runner_fails_on_a_mutant():
    from tests.mutants import mutant
    with mutant("no_negate"):
        eng = FastFpEngine(SMALL, BUILD / "fp_m2n4_no_negate")
    with pytest.raises(MismatchError):
        eng.run(_jobs(np.random.default_rng(9), SMALL))


@pytest.mark.sim
@pytest.mark.slow
def test_fast_fp_runner_precompute(tmp_path):
    """The engine with the hardware precompute (``i_act`` instead of tables and scales): every
    format and w bit-exact, with and without pauses, and at full rate an overhead per GEMM that
    depends on w only (at w < m the first tile also waits for the precompute's beats, one per m
    cycles: docs/fp-lut-q-hw.md)."""
    cfg = SMALL.replace(precompute=True)
    eng = FastFpEngine(cfg, BUILD / "fp_m2n4_precompute")
    assert sorted(s for s, _ in eng.inputs) == ["i_act", "i_cmd", "i_weight", "i_wscale"]
    rng = np.random.default_rng(11)
    bk = cfg.scale_block * cfg.g
    jobs = [_job(rng, cfg, (2 * cfg.m, 4 * bk, 2 * cfg.n), f, w) for f, w in cfg.ops()]
    over: dict = {}
    for job, r in zip(jobs, eng.run(jobs)):
        over.setdefault(job.w_bits, set()).add(r.cycles - r.ideal)
    assert all(len(v) == 1 for v in over.values()), over
    assert over[1] != over[2], over     # the first tile's wait at w = 1 < m
    eng.run(jobs[:3], pause_in=0.3, pause_out=0.3, seed=3)
