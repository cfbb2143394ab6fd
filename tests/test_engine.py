# amaranth: UnusedElaboratable=no
"""amaranth.sim tests of the tiled engine and the table precompute unit, against the golden model."""
import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from gen.config import LutConfig
from gen.golden import (build_tables, gemm_streams, ideal_cycles, pack_activations,
                        random_activations, random_weights, reference_mpgemm, stored_tables)
from hw.engine import LutEngine
from hw.precompute import TablePrecompute

from .simutil import run, stream_get, stream_put


@pytest.mark.parametrize("g", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("symmetric", [True, False])
def test_precompute_builds_the_stored_tables(g, symmetric):
    cfg = LutConfig(g=g, a_bits=8, m=2, n=1, symmetric=symmetric)
    rng = np.random.default_rng(g)
    cases = [random_activations(rng, (2, g), 8) for _ in range(4)]
    cases += [np.full((2, g), -128), np.full((2, g), 127)]
    dut = TablePrecompute(cfg)
    got = []

    async def tb(ctx):
        for a in cases:
            ctx.set(dut.acts, pack_activations(cfg, a)[0])
            got.append(int(ctx.get(dut.tables)))
    run(dut, [tb])
    for a, word in zip(cases, got):
        stored = stored_tables(build_tables(a, g), symmetric)[:, 0, :]
        w = cfg.entry_width
        fields = [(word >> (i * w)) & ((1 << w) - 1) for i in range(stored.size)]
        fields = [f - (1 << w) if f >> (w - 1) else f for f in fields]
        assert fields == stored.reshape(-1).tolist()


def run_engine(cfg, rows, k, cols, fmt, w_bits, seed=0, gap=0.0):
    """One GEMM through the engine; returns (result beats, expected beats, o_cycles, ideal)."""
    rng = np.random.default_rng(seed)
    pace = random.Random(seed)
    a = random_activations(rng, (rows, k), cfg.a_bits)
    a[0, : min(k, cfg.g)] = -(1 << (cfg.a_bits - 1))
    w = random_weights(rng, (k, cols), fmt, w_bits)
    st = gemm_streams(cfg, a, w, fmt, w_bits)
    assert (st["expected"][:rows, :cols] == reference_mpgemm(a, w)).all()
    dut = LutEngine(cfg)
    src, key = (dut.i_act, "acts") if cfg.precompute else (dut.i_table, "tables")
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

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for tb in (put(dut.i_cmd, [st["cmd"]]), put(src, st[key]), put(dut.i_weight, st["weights"]),
               get):
        sim.add_testbench(tb)
    sim.run()
    return got, st["rows"], cycles[0], ideal_cycles(cfg, rows, cols, k, w_bits)


CFG = LutConfig(w_bits=4, a_bits=8, g=4, m=2, n=4, k_max=64)


@pytest.mark.parametrize("shape", [(2, 4, 4), (5, 13, 9), (6, 64, 12), (1, 1, 1)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("precompute", [False, True])
def test_engine_matches_golden(shape, precompute):
    cfg = CFG.replace(precompute=precompute)
    for i, (fmt, w) in enumerate(cfg.ops()):
        got, expected, _, _ = run_engine(cfg, *shape, fmt.label, w, seed=i, gap=0.25)
        assert got == expected, (fmt, w)


def test_engine_full_rate_utilization():
    """No gaps: cycles stay within a few of the ideal one bit-plane of one tile per cycle."""
    cfg = CFG.replace(k_max=256)
    got, expected, cycles, ideal = run_engine(cfg, 6, 256, 12, "int", 2)
    assert got == expected
    assert ideal <= cycles <= ideal + cfg.m + 4, (cycles, ideal)
