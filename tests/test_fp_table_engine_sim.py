# amaranth: UnusedElaboratable=no
"""cocotb runs of the emitted ``fp``-table engine (docs/fp-lut.md "The fp-table engine") on
Icarus and Verilator, bit-exactly against gen.fp_lut_fp.lut_fp_mpgemm of the whole GEMM
(tb/test_fp_table_engine.py)."""
from unittest import mock

import pytest

from gen.config import LutConfig
from hw import fp_table_engine
from tb.test_fp_table_engine import run_fp_table_engine_sim

from .test_fp_table_engine import OneBank

pytestmark = pytest.mark.sim

SMALL = LutConfig(w_bits=2, g=4, m=2, n=4, k_max=256, act_format="fp16", table_format="fp")


def _check_cycles(res):
    """A constant overhead per GEMM (test_cycles asserts it is the same for every shape) and
    >= 99 % at K = 256 on 2 x 2 tiles; returns the overhead."""
    cycles = res["cycles"]
    assert cycles and any(c["shape"][1] >= 256 for c in cycles), cycles
    overheads = {c["cycles"] - c["plane_cycles"] for c in cycles}
    assert len(overheads) == 1, cycles
    assert all(c["utilization"] >= 0.99 for c in cycles if c["shape"][1] >= 256), cycles
    return overheads.pop()


def test_fp_table_engine_icarus(tmp_path):
    """FP16, g = 4, M2N4, w up to 2: every format, specials, back-pressure, reset mid-GEMM,
    cycles."""
    _check_cycles(run_fp_table_engine_sim(SMALL, "icarus", tmp_path, seed=3141))


def test_fp_table_engine_mutant_icarus(tmp_path):
    """The emitted engine with one table bank for both row blocks fails the testbench."""
    with pytest.raises(AssertionError, match="(?s)of 1 cocotb tests failed.*result row"):
        run_fp_table_engine_sim(SMALL, "icarus", tmp_path, seed=3141, testcase="test_gemms",
                                patches=[mock.patch.object(fp_table_engine, "BankedStore",
                                                           OneBank)])


@pytest.mark.slow
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_fp_table_engine_bf16_full(sim, tmp_path):
    """BF16, full tables, m = 1, n = 2, g = 3, w up to 4, every shape of ``full`` effort."""
    cfg = SMALL.replace(act_format="bf16", symmetric=False, m=1, n=2, g=3, w_bits=4)
    _check_cycles(run_fp_table_engine_sim(cfg, sim, tmp_path, seed=3142, effort="full"))


@pytest.mark.slow
def test_fp_table_engine_verilator(tmp_path):
    """The default-suite configuration under Verilator, every shape of ``full`` effort."""
    _check_cycles(run_fp_table_engine_sim(SMALL, "verilator", tmp_path, seed=3143,
                                          effort="full"))
