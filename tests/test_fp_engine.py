# amaranth: UnusedElaboratable=no
"""amaranth.sim tests of the FP engine (q tables) against the golden model gen.fp_lut."""
import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from gen.config import LutConfig
from gen.fp_lut import q_gemm_streams
from gen.golden import random_weights
from hw.fp_engine import FpLutEngine

from .simutil import stream_get, stream_put


def fp16(rng, shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float16).view(np.uint16)


def run_fp_engine(cfg, rows, k, cols, fmt, w_bits, seed=0, gap=0.0, acts=None):
    """One GEMM through the FP engine: (result beats, expected beats, o_cycles, array steps)."""
    rng = np.random.default_rng(seed)
    pace = random.Random(seed)
    a = fp16(rng, (rows, k)) if acts is None else acts
    w = random_weights(rng, (k, cols), fmt, w_bits)
    blocks = -(-k // (cfg.scale_block * cfg.g))
    ws = fp16(rng, (cols, blocks), 0.05)
    st = q_gemm_streams(cfg, a, w, fmt, w_bits, ws)
    dut = FpLutEngine(cfg)
    got, cycles = [], []

    def put(port, items):
        async def testbench(ctx):
            await stream_put(ctx, port, items, pace if gap else None, gap)
        return testbench

    async def get(ctx):
        got.extend(await stream_get(ctx, dut.o_result, len(st["rows"]),
                                    pace if gap else None, gap))
        cycles.append(ctx.get(dut.o_cycles))
        assert ctx.get(dut.o_busy) == 0

    if cfg.precompute:
        sources = [put(dut.i_act, st["acts"])]
    else:
        sources = [put(dut.i_table, st["tables"]), put(dut.i_tscale, st["tscales"])]
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for tb in (put(dut.i_cmd, [st["cmd"]]), *sources,
               put(dut.i_weight, st["weights"]),
               put(dut.i_wscale, st["wscales"]), get):
        sim.add_testbench(tb)
    sim.run()
    steps = len(st["weights"])                # one bit-plane per cycle at best
    return got, st["rows"], cycles[0], steps


CFG = LutConfig(act_format="fp16", table_format="q", w_bits=2, g=4, m=2, n=4, k_max=512,
                scale_block=4)


@pytest.mark.parametrize("shape", [(2, 4, 4), (3, 37, 9), (1, 1, 1)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("fmt,w_bits", [("int", 2), ("uint", 1), ("ternary", 2)])
def test_fp_engine_matches_golden(shape, fmt, w_bits):
    got, want, _, _ = run_fp_engine(CFG, *shape, fmt, w_bits, seed=sum(shape), gap=0.3)
    assert got == want


def test_fp_engine_specials_and_bf16():
    cfg = CFG.replace(act_format="bf16")
    rng = np.random.default_rng(5)
    a = (rng.standard_normal((3, 40)).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    a[1, 7] = 0x7F80                          # +Inf: row 1 becomes NaN
    got, want, _, _ = run_fp_engine(cfg, 3, 40, 5, "int", 2, seed=6, gap=0.2, acts=a)
    assert got == want
    assert any((x >> 32 * c) & 0xFFFFFFFF == 0x7FC00000 for x in want for c in range(4))


def test_fp_engine_utilization():
    """No pauses: one bit-plane per cycle plus a constant per GEMM (the first table's way in,
    the FP stage's last block and the last tile's rows), whatever K and the tile count; so a
    64 x 256 x 256 GEMM on the M2N64 array (16,384 plane cycles at w = 2) runs at >= 99 %."""
    for fmt, w_bits in (("int", 2), ("binary", 1)):
        overheads = set()
        for rows, k, cols in ((4, 64, 8), (4, 256, 8), (2, 128, 12)):
            got, want, cycles, steps = run_fp_engine(CFG, rows, k, cols, fmt, w_bits, seed=3)
            assert got == want
            overheads.add(cycles - steps)
        assert len(overheads) == 1, overheads
        overhead = overheads.pop()
        assert overhead <= 4 + CFG.m + CFG.m * CFG.row_cycles + 2, overhead
        assert 16384 / (16384 + overhead) >= 0.99


def test_fp_engine_rejects_other_tables():
    with pytest.raises(ValueError, match="table_format must be 'q' for the FP engine"):
        FpLutEngine(LutConfig())


def test_fp_engine_precompute_matches_golden():
    """``precompute=True``: activations in (``i_act``), tables and scales built in hardware
    (hw/fp_precompute.py), the same results bit for bit; g = 2 keeps amaranth.sim quick (g = 4:
    the cocotb run of tests/test_fp_engine_sim.py)."""
    cfg = CFG.replace(g=2, n=2, scale_block=2, precompute=True)
    got, want, _, _ = run_fp_engine(cfg, 3, 20, 3, "int", 2, seed=11, gap=0.3)
    assert got == want
    with pytest.raises(ValueError, match="tables_per_pe must be 1 for the FP precompute"):
        FpLutEngine(cfg.replace(tables_per_pe=2, scale_block=4))
