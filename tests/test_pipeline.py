# amaranth: UnusedElaboratable=no
"""``pipeline`` (LutConfig): the pipelined LUT array is bit-exact against the golden model in
amaranth.sim and in cocotb, its latency grows by exactly the stages it adds, and the config
rejects what it does not support."""
from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from gen.config import LutConfig
from gen.golden import random_activations, random_weights, tile_stream, unpack_results
from hw.lut_array import LutArray

from .mutants import MUTANTS, PIPELINE_MUTANTS, mutant
from .test_hw import run_array


# -- config -------------------------------------------------------------------------------------

def test_pipeline_in_name_params_and_range():
    assert LutConfig().pipeline == 0 and "_p" not in LutConfig().name
    cfg = LutConfig(pipeline=2)
    assert cfg.name.endswith("_p2") and cfg.params()["pipeline"] == 2
    assert LutConfig.from_dict(cfg.params()) == cfg
    assert cfg.pe_stages == 2
    p3 = LutConfig(pipeline=3)
    assert p3.name.endswith("_p3") and LutConfig.from_dict(p3.params()) == p3
    # the split accumulator: two halves that make up acc_width
    assert 0 < p3.acc_low_width < p3.acc_width and 2 * p3.acc_low_width - p3.acc_width in (0, 1)
    for bad in (-1, 4):
        with pytest.raises(ValueError, match=rf"pipeline must be in 0\.\.3, not {bad}"):
            LutConfig(pipeline=bad)
    with pytest.raises(TypeError, match="pipeline"):
        LutConfig(pipeline="1")


@pytest.mark.parametrize("kw,msg", [
    (dict(output_buffer="row"), "needs output_buffer 'double', not 'row'"),
    (dict(output_buffer="none"), "needs output_buffer 'double', not 'none'"),
    (dict(accumulation="shifted", pipeline=2), "pipeline 2 needs accumulation 'partial'"),
    (dict(accumulation="shifted", pipeline=3), "pipeline 3 needs accumulation 'partial'"),
    (dict(act_format="fp16", table_format="q", scale_block=16), "needs table_format 'int'"),
])
def test_pipeline_rejects_unsupported(kw, msg):
    kw = {"pipeline": 1, **kw}
    with pytest.raises(ValueError, match=msg):
        LutConfig(**kw)


# -- amaranth.sim: bit-exact, with and without back pressure ------------------------------------

PIPE_CONFIGS = [
    LutConfig(w_bits=4, a_bits=8, g=4, m=2, n=3, k_max=32),
    LutConfig(w_bits=1, a_bits=4, g=5, m=2, n=2, k_max=30),
    LutConfig(w_bits=2, a_bits=8, g=2, m=1, n=1, k_max=16, symmetric=False),
    LutConfig(w_bits=2, a_bits=8, g=4, m=3, n=2, k_max=32, tables_per_pe=2,
              weight_formats=("int", "uint")),
    LutConfig(w_bits=3, a_bits=6, g=3, m=2, n=2, k_max=24, accumulation="shifted"),
]


@pytest.mark.parametrize("stages", [1, 2, 3])
@pytest.mark.parametrize("base", PIPE_CONFIGS, ids=lambda c: c.name)
def test_pipelined_array_matches_golden(base, stages):
    if stages >= 2 and base.accumulation != "partial":
        pytest.skip(f"pipeline {stages} needs partial accumulation")
    cfg = base.replace(pipeline=stages)
    ops = [(f.label, w, k) for f, w in cfg.ops() for k in (1, cfg.k_max)]
    for pace in (0.0, 0.3):
        res, expected, _ = run_array(cfg, ops, seed=stages, gap=pace, stall=pace)
        for i, exp in enumerate(expected):
            assert (res[i] == exp).all(), f"{cfg.name} op {i} {ops[i]} pace {pace}"


@pytest.mark.parametrize("name,stages", [*((n, 1) for n in MUTANTS),
                                         *((n, 3) for n in PIPELINE_MUTANTS)])
def test_pipelined_mutant_is_caught(name, stages):
    """The lookup faults in a pipelined build; the carry faults in the build that has the
    carries (``pipeline`` 3)."""
    cfg = PIPE_CONFIGS[0].replace(pipeline=stages)
    # the same operations pass without the mutant (test_pipelined_array_matches_golden)
    with mutant(name):
        res, expected, _ = run_array(cfg, [("int", 2, 16), ("uint", 3, 16)])
    assert any((r != e).any() for r, e in zip(res, expected))


def _first_result_cycle(cfg):
    """Cycle (after reset) of the first ``o_result`` beat of one operation whose inputs are
    all offered at cycle 0, and the rows it returns."""
    rng = np.random.default_rng(3)
    a = random_activations(rng, (cfg.m, 2 * cfg.g), cfg.a_bits)
    w = random_weights(rng, (2 * cfg.g, cfg.n), "int", cfg.w_bits)
    cmd, tables, weights, exp = tile_stream(cfg, a, w, "int", cfg.w_bits)
    dut = LutArray(cfg)
    seen = {}

    async def tb(ctx):
        ctx.set(dut.o_result.ready, 1)
        ctx.set(dut.i_cmd.payload, cmd)
        ctx.set(dut.i_cmd.valid, 1)
        ti = wi = 0
        rows = []
        for cycle in range(200):
            ctx.set(dut.i_table.valid, ti < len(tables))
            ctx.set(dut.i_table.payload, tables[min(ti, len(tables) - 1)])
            ctx.set(dut.i_weight.valid, wi < len(weights))
            ctx.set(dut.i_weight.payload, weights[min(wi, len(weights) - 1)])
            if ctx.get(dut.o_result.valid):
                seen.setdefault("first", cycle)
                rows.append(ctx.get(dut.o_result.payload))
            fire_c = ctx.get(dut.i_cmd.valid) and ctx.get(dut.i_cmd.ready)
            ti += bool(ctx.get(dut.i_table.valid) and ctx.get(dut.i_table.ready))
            wi += bool(ctx.get(dut.i_weight.valid) and ctx.get(dut.i_weight.ready))
            await ctx.tick()
            if fire_c:
                ctx.set(dut.i_cmd.valid, 0)
            if len(rows) == cfg.m:
                break
        seen["rows"] = rows
        seen["busy_after"] = ctx.get(dut.o_busy)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    got = unpack_results(cfg, seen["rows"])
    assert (got == exp).all()
    return seen["first"], seen["busy_after"]


def test_pipeline_latency_is_the_stages_added():
    """Each PE stage delays the results one cycle, the result register one more, and with
    ``pipeline`` 3 the row register before the correction adder one more."""
    base = LutConfig(w_bits=2, a_bits=8, g=4, m=2, n=3, k_max=32)
    first = {p: _first_result_cycle(base.replace(pipeline=p)) for p in (0, 1, 2, 3)}
    for p in (1, 2, 3):
        # pipeline 3 (acc_width 15, sum_width 13, correction_width 16 here): the drain waits
        # for the pieced activation sum (3 pieces), the shift (1) and the pieced correction
        # term (3); then the row register, the registers of 3 of the 4 correction pieces and
        # the result register
        drain, out_registers = (7, 5) if p == 3 else (p, 1)
        assert first[p][0] == first[0][0] + base.replace(pipeline=p).pipeline_latency == \
            first[0][0] + drain + out_registers
    assert all(busy == 0 for _, busy in first.values())


def test_pipeline_0_has_no_pipeline_logic():
    """``pipeline`` 0 builds the original RTL: none of the registers pipelining adds."""
    from amaranth.back import rtlil
    cfg = LutConfig(m=2, n=2, k_max=32)
    names = ("entry_d", "partial_done", "acc_lo", "acc_carry", "row_reg", "corr_0",
             "result_held", "capture_d1", "out_row_c0", "piece_0", "act_sum_0_0")
    text = rtlil.convert(LutArray(cfg))
    assert not [name for name in names if name in text]
    p3 = rtlil.convert(LutArray(cfg.replace(pipeline=3)))
    assert all(name in p3 for name in names)


# -- cocotb: the emitted pipelined Verilog ------------------------------------------------------

@pytest.mark.sim
@pytest.mark.parametrize("stages", [pytest.param(2, marks=pytest.mark.slow), 3])
def test_pipelined_cocotb_icarus(tmp_path, stages):
    from tb.runner import emit_and_sim
    cfg = LutConfig(m=2, n=4, g=4, w_bits=2, a_bits=8, k_max=64, pipeline=stages)
    speed = emit_and_sim(cfg, "icarus", tmp_path, effort="quick")
    assert speed["cycles"] > 0


@pytest.mark.parametrize("stages,precompute", [(2, False), (2, True), (3, False)])
def test_pipelined_engine_matches_golden(stages, precompute):
    """The tiled engine around a pipelined array: the stream interface absorbs the latency."""
    from .test_engine import CFG, run_engine
    cfg = CFG.replace(precompute=precompute, pipeline=stages)
    for i, (fmt, w) in enumerate(cfg.ops()[:2]):
        got, expected, _, _ = run_engine(cfg, 5, 13, 9, fmt.label, w, seed=i, gap=0.25)
        assert got == expected, (fmt, w)
