# amaranth: UnusedElaboratable=no
"""cocotb runs of the emitted FP engine (q tables, docs/fp-lut.md) on Icarus and Verilator,
bit-exactly against gen.fp_lut.q_gemm_streams (tb/test_fp_engine.py)."""
import pytest

from gen.config import LutConfig
from tb.test_fp_engine import run_fp_engine_sim

pytestmark = pytest.mark.sim

SMALL = LutConfig(act_format="fp16", table_format="q", w_bits=2, g=4, m=2, n=4, k_max=512,
                  scale_block=4)


def _check_cycles(res, bound=16):
    cycles = res["cycles"]
    assert cycles, "test_cycles wrote nothing"
    overhead = cycles[0]["cycles"] - cycles[0]["plane_cycles"]
    # a constant per GEMM (tb/test_fp_engine.py asserts it is the same for every shape): >= 99 %
    # once a GEMM has 100 x that many plane cycles
    assert overhead <= bound, cycles


def test_fp_engine_icarus(tmp_path):
    _check_cycles(run_fp_engine_sim(SMALL, "icarus", tmp_path, seed=2718))


def precompute_overhead(cfg):
    """A bound on the precompute engine's cycles beyond its plane cycles: the engine's own
    (the first table's way in, the FP stage's last block and the last tile's rows, as
    tests/test_fp_engine.py bounds it) plus the precompute's first table beat: the first scale
    block's activations and ``LutConfig.precompute_latency`` (its amax and quantizer
    pipelines, its division and the beat's ``m`` rows)."""
    engine = 4 + cfg.m + cfg.m * cfg.row_cycles + 2
    return engine + cfg.scale_block + cfg.precompute_latency


def test_fp_engine_precompute_icarus(tmp_path):
    """The engine with the hardware precompute (``--precompute``): activations in, the same
    results bit for bit, and a constant overhead per GEMM at w = 2 = m (the precompute keeps
    pace: one table beat per m cycles, no gap between scale blocks), so a 64 x 256 x 256 GEMM
    on the M2N64 default (16,384 plane cycles at w = 2) stays >= 99 %."""
    cfg = SMALL.replace(precompute=True)
    _check_cycles(run_fp_engine_sim(cfg, "icarus", tmp_path, seed=2720),
                  precompute_overhead(cfg))
    big = LutConfig(act_format="fp16", table_format="q", w_bits=2, m=2, n=64, precompute=True)
    assert 16384 / (16384 + precompute_overhead(big)) >= 0.99


@pytest.mark.slow
@pytest.mark.parametrize("act", ["fp16", "bf16"])
def test_fp_engine_verilator(act, tmp_path):
    cfg = SMALL.replace(act_format=act, w_bits=4, scale_block=8)
    _check_cycles(run_fp_engine_sim(cfg, "verilator", tmp_path, seed=2719, effort="full"))


@pytest.mark.slow
def test_fp_engine_precompute_bf16_full_tables_icarus(tmp_path):
    """The precompute engine with BF16 activations, full (non-symmetric) tables, w up to 4 and
    scale_block 8 (the dividers then take 5 bits per cycle), every shape of ``full`` effort."""
    cfg = SMALL.replace(act_format="bf16", w_bits=4, scale_block=8, symmetric=False,
                        precompute=True)
    _check_cycles(run_fp_engine_sim(cfg, "icarus", tmp_path, seed=2721, effort="full"),
                  precompute_overhead(cfg))


@pytest.mark.slow
def test_fp_engine_precompute_verilator(tmp_path):
    """The precompute engine under Verilator (FP16, g = 4, w up to 4, scale_block 8), every
    shape of ``full`` effort, with the same overhead bound as on Icarus."""
    cfg = SMALL.replace(w_bits=4, scale_block=8, precompute=True)
    _check_cycles(run_fp_engine_sim(cfg, "verilator", tmp_path, seed=2722, effort="full"),
                  precompute_overhead(cfg))


@pytest.mark.slow
def test_fp_engine_precompute_rows_icarus(tmp_path):
    """The precompute engine with ``precompute_rows`` 2 = m (two table-sum trees and
    quantizers, a table beat per cycle), FP16, g = 4, w up to 2, every shape of ``full``
    effort, with the overhead bound of ``precompute_latency`` for R = 2."""
    cfg = SMALL.replace(precompute=True, precompute_rows=2)
    _check_cycles(run_fp_engine_sim(cfg, "icarus", tmp_path, seed=2723, effort="full"),
                  precompute_overhead(cfg))
