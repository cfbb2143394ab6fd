"""cocotb runs of the emitted FpLutArray (``q`` tables, docs/fp-lut.md) on Icarus and
Verilator, bit-exactly against the golden model ``gen.fp_lut`` (tb/test_fp_lut_array.py):
every weight format and w, FP16 and BF16, scale_block = m and >= 8, scale_block = 1 with
m = 1, table scales of 11 and 8 bits, specials, backpressure, reset mid-operation, and the
utilization of the array."""
import pytest

from gen.config import LutConfig
from hw.fp_scale_stage import FpScaleStage
from tb.test_fp_lut_array import run_fp_lut_sim

pytestmark = pytest.mark.sim

SEED = 1616


def cfg_of(act, m, n, scale_block, w_bits=2, table_bits=8, k_max=512, **kw):
    return LutConfig(w_bits=w_bits, g=4, m=m, n=n, k_max=k_max, act_format=act,
                     table_format="q", table_bits=table_bits, scale_block=scale_block, **kw)


#: scale_block = m (the stage has no slack at w = 1), FP16, w 1..2
SMALL_FP16 = cfg_of("fp16", 2, 4, 2)
#: BF16, w up to 4, scale_block 8 (4 cycles per row, one lane short of n = 5)
BF16_W4 = cfg_of("bf16", 2, 5, 8, w_bits=4, table_bits=10)
#: m = 1, scale_block = 1: one step per block, one cycle per row
ONE_ROW = cfg_of("fp16", 1, 3, 1, k_max=256)
#: table scales of 11 significant bits: the stage's scale rounder and narrower product
P11 = cfg_of("fp16", 2, 4, 2, scale_sig_bits=11)


def _check_util(res):
    util = res["utilization"]
    assert util, "test_utilization wrote nothing"
    for u in util:
        assert u["k"] >= 256 and u["utilization"] >= 0.99, u


#: the default suite's share: two Icarus builds (~15 s each on an idle 2-core machine); a
#: Verilator build of these designs takes minutes there, so Verilator runs in ``make sim``
#: (the ``slow`` tests below), with BF16 and w up to 4
@pytest.mark.parametrize("cfg", [SMALL_FP16, ONE_ROW, P11],
                         ids=["fp16-m2-b2", "fp16-m1-b1", "fp16-m2-b2-p11"])
def test_emitted_q_array_icarus(cfg, tmp_path):
    _check_util(run_fp_lut_sim(cfg, "icarus", tmp_path, seed=SEED))


class ExponentOffByOne(FpScaleStage):
    def _scale_exponent(self, ts_e_lsb, ws_e_lsb):
        return ts_e_lsb + ws_e_lsb


class NoFirstBlockClear(FpScaleStage):
    def _start(self, first, acc):
        return acc


@pytest.mark.parametrize("mutant", [ExponentOffByOne, NoFirstBlockClear],
                         ids=["exponent-off-by-one", "no-first-block-clear"])
def test_emitted_mutant_fails(mutant, tmp_path):
    with pytest.raises(AssertionError, match="(?s)cocotb tests failed.*differ"):
        run_fp_lut_sim(SMALL_FP16, "icarus", tmp_path, seed=SEED, stage_cls=mutant,
                       testcase="test_random")


@pytest.mark.slow
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
@pytest.mark.parametrize("cfg", [SMALL_FP16, BF16_W4, ONE_ROW,
                                 cfg_of("bf16", 2, 64, 16, k_max=4096),
                                 cfg_of("fp16", 4, 16, 8, w_bits=3, table_bits=6,
                                        tables_per_pe=2),
                                 cfg_of("bf16", 2, 5, 8, w_bits=4, scale_sig_bits=8)],
                         ids=["fp16-m2-b2", "bf16-w4-b8", "fp16-m1-b1", "bf16-m2n64-b16",
                              "fp16-m4n16-b8-c2", "bf16-w4-b8-p8"])
def test_emitted_q_array_full(cfg, sim, tmp_path):
    _check_util(run_fp_lut_sim(cfg, sim, tmp_path, seed=SEED, effort="full"))
