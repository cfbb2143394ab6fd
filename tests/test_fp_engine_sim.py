"""cocotb runs of the emitted FP engine (q tables, docs/fp-lut.md) on Icarus and Verilator,
bit-exactly against gen.fp_lut.q_gemm_streams (tb/test_fp_engine.py)."""
import pytest

from gen.config import LutConfig
from tb.test_fp_engine import run_fp_engine_sim

pytestmark = pytest.mark.sim

SMALL = LutConfig(act_format="fp16", table_format="q", w_bits=2, g=4, m=2, n=4, k_max=512,
                  scale_block=4)


def _check_cycles(res):
    cycles = res["cycles"]
    assert cycles, "test_cycles wrote nothing"
    overhead = cycles[0]["cycles"] - cycles[0]["plane_cycles"]
    # a constant per GEMM: >= 99 % once a GEMM has 100 x that many plane cycles
    assert overhead <= 16, cycles


def test_fp_engine_icarus(tmp_path):
    _check_cycles(run_fp_engine_sim(SMALL, "icarus", tmp_path, seed=2718))


def test_fp_engine_precompute_icarus(tmp_path):
    """The engine with the hardware precompute (``--precompute``): activations in, the same
    results bit for bit, and still a constant overhead per GEMM at w = 2 = m."""
    _check_cycles(run_fp_engine_sim(SMALL.replace(precompute=True), "icarus", tmp_path,
                                    seed=2720))


@pytest.mark.slow
@pytest.mark.parametrize("act", ["fp16", "bf16"])
def test_fp_engine_verilator(act, tmp_path):
    cfg = SMALL.replace(act_format=act, w_bits=4, scale_block=8)
    _check_cycles(run_fp_engine_sim(cfg, "verilator", tmp_path, seed=2719, effort="full"))
