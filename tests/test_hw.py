# amaranth: UnusedElaboratable=no
"""Fast amaranth.sim tests of the hardware blocks against the golden model, bit-exactly."""
import random

import numpy as np
import pytest
from amaranth.hdl import ResetInserter, Signal
from amaranth.sim import Simulator

from gen.config import LutConfig, WeightFormat
from gen.golden import (build_tables, lookup, random_activations, random_weights,
                        reference_mpgemm, stored_tables, tile_stream, unpack_results)
from hw.accumulator import BitSerialAccumulator
from hw.correction import OffsetCorrection
from hw.lookup import TableLookup
from hw.lut_array import LutArray
from hw.lut_pe import LutPE

from .mutants import MUTANTS, mutant
from .simutil import run, stream_get, stream_put


def _pack(values, width):
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) & ((1 << width) - 1)) << (i * width)
    return word


# -- TableLookup ---------------------------------------------------------------------------------

def _lookup_all(cfg, stored_row, cls=TableLookup):
    dut = cls(cfg)
    got = []

    async def tb(ctx):
        ctx.set(dut.table_row, _pack(stored_row, cfg.entry_width))
        for idx in range(1 << cfg.g):
            ctx.set(dut.index, idx)
            got.append(ctx.get(dut.entry))
    run(dut, [tb])
    return np.array(got)


@pytest.mark.parametrize("g", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("symmetric", [True, False])
def test_lookup_every_index(g, symmetric):
    cfg = LutConfig(g=g, a_bits=8, symmetric=symmetric, m=1, n=1)
    rng = np.random.default_rng(g)
    for a in (random_activations(rng, (1, g), 8), np.full((1, g), -128), np.full((1, g), 127)):
        full = build_tables(a, g)[0, 0]
        stored = stored_tables(full, symmetric)
        got = _lookup_all(cfg, stored)
        assert list(got) == list(full)
        assert list(got) == [lookup(stored, i, g, symmetric) for i in range(1 << g)]


@pytest.mark.parametrize("name", MUTANTS)
def test_lookup_mutant_is_wrong(name):
    cfg = LutConfig(g=4, m=1, n=1)
    a = np.array([[3, -7, 11, 20]])
    full = build_tables(a, 4)[0, 0]
    with mutant(name) as cls:
        got = _lookup_all(cfg, stored_tables(full, True), cls)
    assert list(got) != list(full)


def test_mutant_is_scoped_and_named():
    import hw.lut_pe
    with mutant("no_negate") as cls:
        assert hw.lut_pe.TableLookup is cls and issubclass(cls, TableLookup)
    assert hw.lut_pe.TableLookup is TableLookup
    with pytest.raises(ValueError, match=r"^mutant must be one of no_negate, no_invert, "
                                         r"no_carry, early_carry, pieces_no_carry, not 'flip'$"):
        with mutant("flip"):
            pass
    assert hw.lut_pe.TableLookup is TableLookup


def test_lookup_rejects_bad_parameters():
    with pytest.raises(TypeError, match=r"^cfg must be a LutConfig, not 4$"):
        TableLookup(4)


# -- BitSerialAccumulator ------------------------------------------------------------------------

@pytest.mark.parametrize("w_bits", [1, 2, 3, 4])
def test_accumulator_shift_and_add(w_bits):
    """Two operations of random groups: out = sum_j sum_b 2**b * entry_jb, planes MSB first."""
    cfg = LutConfig(w_bits=4, a_bits=8, g=4, m=1, n=1, k_max=64)
    rng = random.Random(w_bits)
    bound = cfg.g << (cfg.a_bits - 1)
    dut = BitSerialAccumulator(cfg)
    results = []

    async def tb(ctx):
        for groups in (3, 16):
            expected = 0
            for j in range(groups):
                p = 0
                for b in range(w_bits):
                    e = rng.choice([-bound, bound, rng.randint(-bound, bound)])
                    p = p * 2 + e
                    last = b == w_bits - 1
                    ctx.set(dut.entry, e)
                    ctx.set(dut.step, 1)
                    ctx.set(dut.first_plane, b == 0)
                    ctx.set(dut.last_plane, last)
                    ctx.set(dut.first_group, j == 0)
                    ctx.set(dut.capture, last and j == groups - 1)
                    await ctx.tick()
                    # an idle cycle in between must change nothing
                    ctx.set(dut.step, 0)
                    ctx.set(dut.entry, rng.randint(-bound, bound))
                    await ctx.tick()
                expected += p
            results.append((expected, ctx.get(dut.out)))
    run(dut, [tb])
    for expected, got in results:
        assert got == expected


# -- OffsetCorrection ----------------------------------------------------------------------------

def test_correction_formulas():
    cfg = LutConfig(w_bits=4, a_bits=8, m=1, n=3, k_max=64)
    dut = OffsetCorrection(cfg)
    rng = random.Random(5)
    cases = []
    for fmt, w in cfg.ops():
        for _ in range(5):
            s = rng.randint(-64 * 128, 64 * 127)
            vals = [rng.randint(-(1 << 10), 1 << 10) for _ in range(3)]
            if fmt is WeightFormat.BINARY:
                accs = vals
                exp = vals
            elif fmt is WeightFormat.UINT:
                accs = [2 * v - ((1 << w) - 1) * s for v in vals]
                exp = vals
            else:
                accs = [2 * v + s for v in vals]
                exp = vals
            cases.append((fmt, w, s, accs, exp))
    got = []

    async def tb(ctx):
        for fmt, w, s, accs, _ in cases:
            ctx.set(dut.acc, _pack(accs, cfg.acc_width))
            ctx.set(dut.act_sum, s)
            ctx.set(dut.format, fmt.value)
            ctx.set(dut.w_bits, w)
            got.append(unpack_results(cfg, [ctx.get(dut.result)])[0].tolist())
    run(dut, [tb])
    assert got == [c[4] for c in cases]


# -- LutArray ------------------------------------------------------------------------------------

def run_array(cfg, ops, seed=0, gap=0.0, stall=0.0):
    """Run ``ops`` = [(fmt, w, k)] back to back; return (results m x n per op, expected, cycles)."""
    rng = np.random.default_rng(seed)
    pace = random.Random(seed)
    dut = LutArray(cfg)
    cmds, tables, weights, expected = [], [], [], []
    for fmt, w, k in ops:
        a = random_activations(rng, (cfg.m, k), cfg.a_bits)
        wt = random_weights(rng, (k, cfg.n), fmt, w)
        if k >= 2 * cfg.g:  # corners inside random operations: min activations, extreme weights
            a[:, : cfg.g] = -(1 << (cfg.a_bits - 1))
            lo, hi = WeightFormat.parse(fmt).value_range(w)
            wt[: cfg.g, 0] = lo if fmt != "binary" else -1
            wt[cfg.g: 2 * cfg.g, 0] = hi
        cmd, t, ws, exp = tile_stream(cfg, a, wt, fmt, w)
        assert (exp == reference_mpgemm(a, wt)).all()
        cmds.append(cmd)
        tables += t
        weights += ws
        expected.append(exp)
    got = []
    cycles = []

    def put(port, items):
        async def testbench(ctx):
            await stream_put(ctx, port, items, pace if gap else None, gap)
        return testbench

    async def get(ctx):
        got.extend(await stream_get(ctx, dut.o_result, cfg.m * len(ops),
                                    pace if stall else None, stall))

    async def count(ctx):
        n = 0
        while True:
            await ctx.tick()
            n += 1
            cycles.append(n)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(put(dut.i_cmd, cmds))
    sim.add_testbench(put(dut.i_table, tables))
    sim.add_testbench(put(dut.i_weight, weights))
    sim.add_testbench(get)
    sim.add_process(count)
    sim.run()
    res = unpack_results(cfg, got).reshape(len(ops), cfg.m, cfg.n)
    return res, expected, len(cycles)


ARRAY_CONFIGS = [
    LutConfig(w_bits=4, a_bits=8, g=4, m=2, n=3, k_max=64),
    LutConfig(w_bits=4, a_bits=8, g=4, m=2, n=3, k_max=64, symmetric=False),
    LutConfig(w_bits=2, a_bits=8, g=2, m=1, n=1, k_max=16),
    LutConfig(w_bits=3, a_bits=6, g=3, m=3, n=2, k_max=40, symmetric=False),
    LutConfig(w_bits=1, a_bits=4, g=5, m=2, n=2, k_max=30),
    LutConfig(w_bits=2, a_bits=16, g=6, m=1, n=4, k_max=64, weight_formats=("int", "ternary")),
]


@pytest.mark.parametrize("cfg", ARRAY_CONFIGS, ids=lambda c: c.name)
@pytest.mark.parametrize("pace", ["no_gaps", "back_pressure"])
def test_array_matches_golden(cfg, pace):
    gap = stall = 0.3 if pace == "back_pressure" else 0.0
    ops = [(f.label, w, k) for f, w in cfg.ops() for k in (1, cfg.g + 1, cfg.k_max)]
    res, expected, _ = run_array(cfg, ops, seed=cfg.g, gap=gap, stall=stall)
    for i, exp in enumerate(expected):
        assert (res[i] == exp).all(), f"operation {i} {ops[i]}: got {res[i]}, expected {exp}"


def test_array_throughput_one_plane_per_cycle():
    """Back to back with no gaps: total cycles = weight beats + drain of the last op + 2."""
    cfg = LutConfig(w_bits=4, a_bits=8, g=4, m=2, n=3, k_max=64)
    ops = [("int", 4, 64), ("uint", 2, 64), ("binary", 1, 64), ("int", 3, 8)]
    res, expected, cycles = run_array(cfg, ops)
    assert all((r == e).all() for r, e in zip(res, expected))
    beats = sum(-(-k // cfg.g) * w for _, w, k in ops)
    assert cycles <= beats + cfg.m + 2, (cycles, beats)


@pytest.mark.parametrize("name", MUTANTS)
def test_array_mutant_is_caught(name):
    cfg = ARRAY_CONFIGS[0]
    ops = [("int", 2, 16), ("uint", 3, 16)]
    with mutant(name):      # the Simulator elaborates the PEs inside the block
        res, expected, _ = run_array(cfg, ops)
    assert any((r != e).any() for r, e in zip(res, expected))


def test_array_reset_mid_operation():
    """Reset while an operation is half done drops it; the next operation is exact."""
    cfg = LutConfig(w_bits=2, a_bits=8, g=4, m=2, n=2, k_max=32)
    rng = np.random.default_rng(7)
    dut = LutArray(cfg)
    rst = Signal()
    ops = []
    for _ in range(2):
        a = random_activations(rng, (2, 32), 8)
        w = random_weights(rng, (32, 2), "int", 2)
        ops.append(tile_stream(cfg, a, w, "int", 2))
    got = []

    async def tb(ctx):
        cmd, tables, weights, _ = ops[0]
        ctx.set(dut.i_cmd.payload, cmd)
        ctx.set(dut.i_cmd.valid, 1)
        await ctx.tick()
        ctx.set(dut.i_cmd.valid, 0)
        ctx.set(dut.i_table.valid, 1)
        ctx.set(dut.i_weight.valid, 1)
        for t in range(5):                      # a few planes of the first operation
            ctx.set(dut.i_table.payload, tables[t // 2])
            ctx.set(dut.i_weight.payload, weights[t])
            await ctx.tick()
        ctx.set(dut.i_table.valid, 0)
        ctx.set(dut.i_weight.valid, 0)
        ctx.set(rst, 1)
        await ctx.tick()
        ctx.set(rst, 0)
        assert ctx.get(dut.o_busy) == 0
        cmd, tables, weights, _ = ops[1]
        await stream_put(ctx, dut.i_cmd, [cmd])

    async def feed_tables(ctx):
        await ctx.tick().repeat(8)
        await stream_put(ctx, dut.i_table, ops[1][1])

    async def feed_weights(ctx):
        await ctx.tick().repeat(8)
        await stream_put(ctx, dut.i_weight, ops[1][2])

    async def drain(ctx):
        got.extend(await stream_get(ctx, dut.o_result, cfg.m))

    sim = Simulator(ResetInserter(rst)(dut))   # rst drives the sync reset, as the rst port does
    sim.add_clock(1e-8)
    for testbench in (tb, feed_tables, feed_weights, drain):
        sim.add_testbench(testbench)
    sim.run()
    assert (unpack_results(cfg, got) == ops[1][3]).all()


def test_components_reject_non_config():
    for cls in (LutArray, LutPE, BitSerialAccumulator, OffsetCorrection):
        with pytest.raises(TypeError, match=r"^cfg must be a LutConfig, not 'x'$"):
            cls("x")


# -- MAC baseline --------------------------------------------------------------------------------

def run_mac_array(cfg, kind, ks, seed):
    """Operations over every (format, w) and each K in ``ks`` through a MacArray with random
    stalls; asserts every result equals ``A @ W``."""
    from gen.golden import mac_stream
    from hw.mac_array import MacArray
    rng = np.random.default_rng(seed)
    pace = random.Random(seed)
    dut = MacArray(cfg, kind)
    ops = [(f.label, w, k) for f, w in cfg.ops() for k in ks]
    cmds, acts, weights, expected = [], [], [], []
    for fmt, w, k in ops:
        a = random_activations(rng, (cfg.m, k), cfg.a_bits)
        a[:, 0] = -(1 << (cfg.a_bits - 1))
        wt = random_weights(rng, (k, cfg.n), fmt, w)
        cmd, act, code, exp = mac_stream(cfg, a, wt, fmt, w)
        cmds.append(cmd)
        acts += act
        weights += code
        expected.append(exp)
    got = []

    def put(port, items):
        async def testbench(ctx):
            await stream_put(ctx, port, items, pace, 0.3)
        return testbench

    async def get(ctx):
        got.extend(await stream_get(ctx, dut.o_result, cfg.m * len(ops), pace, 0.3))

    run(dut, [put(dut.i_cmd, cmds), put(dut.i_act, acts), put(dut.i_weight, weights), get])
    res = unpack_results(cfg, got).reshape(len(ops), cfg.m, cfg.n)
    for i, exp in enumerate(expected):
        assert (res[i] == exp).all(), f"operation {i} {ops[i]}"


def _mac16():
    from gen.mac_config import MacConfig   # g = 16: the paper's M8N4K16 MAC, at a small m x n
    return MacConfig(m=2, n=3, g=16, w_bits=2, a_bits=8, k_max=40)


@pytest.mark.parametrize("kind", ["dequant", "direct"])
@pytest.mark.parametrize("cfg", [ARRAY_CONFIGS[0], ARRAY_CONFIGS[4], _mac16()],
                         ids=lambda c: c.name)
def test_mac_array_matches_reference(cfg, kind):
    run_mac_array(cfg, kind, (1, cfg.g + 1, cfg.k_max), seed=3)
