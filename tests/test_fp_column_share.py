# amaranth: UnusedElaboratable=no
"""Shared column output stages of the ``fp``-table array (``LutConfig.fp_column_lanes``,
hw/fp_column_share.py): the config, amaranth.sim of the array and the engine bit-exactly
against gen.fp_lut_fp, the throughput rule, the mutants, the CLIs and cocotb of the emitted
array."""
import json
import random

import numpy as np
import pytest
from amaranth import ResetInserter, Signal
from amaranth.sim import Simulator

from gen import fp
from gen.config import LutConfig
from hw import fp_column_share
from hw.fp_table_array import FpTableArray

from .test_fp_lut_fp_hw import CFG16, SEED, SIM_CFG, _ops, random_op, run_array

CFG_BF2 = LutConfig(w_bits=2, g=4, m=2, n=4, act_format="bf16", table_format="fp",
                    symmetric=False)


# -- the config ------------------------------------------------------------------------------

def test_config():
    """Divisors of n only, fp tables only; the name and fp_column_cycles follow."""
    assert CFG16.fp_column_lanes is None and CFG16.fp_column_cycles == 1
    for lanes in (1, 2, 4):
        cfg = CFG16.replace(fp_column_lanes=lanes)
        assert cfg.fp_column_cycles == 4 // lanes
        assert cfg.name == CFG16.name + f"_cl{lanes}"
    with pytest.raises(ValueError, match=r"fp_column_lanes must be None or a divisor of "
                                         r"n = 4 \(1, 2, 4\), not 3"):
        CFG16.replace(fp_column_lanes=3)
    with pytest.raises(ValueError, match="not 0"):
        CFG16.replace(fp_column_lanes=0)
    with pytest.raises(TypeError, match="fp_column_lanes must be an integer or None, not '2'"):
        CFG16.replace(fp_column_lanes="2")
    for kw in ({}, dict(act_format="fp16", table_format="q")):
        with pytest.raises(ValueError, match="fp_column_lanes applies to table_format 'fp' "
                                             "only"):
            LutConfig(fp_column_lanes=2, **kw)


# -- the array in amaranth.sim ---------------------------------------------------------------

@pytest.mark.parametrize("cfg", [CFG16.replace(fp_column_lanes=1),
                                 CFG16.replace(fp_column_lanes=2),
                                 CFG16.replace(fp_column_lanes=4),
                                 CFG_BF2.replace(fp_column_lanes=2)],
                         ids=["fp16-L1", "fp16-L2", "fp16-L4", "bf16-full-L2"])
def test_array_matches_golden(cfg):
    """Every format and ``w`` the build runs (specials in every third operation), back to
    back, with random gaps on the inputs and back-pressure on ``o_result``."""
    rng = np.random.default_rng(SEED)
    ops = _ops(cfg, rng)
    got = run_array(cfg, ops, random.Random(SEED), gap=0.25)
    for i, (g_, op) in enumerate(zip(got, ops)):
        assert g_.tolist() == op[4].tolist(), f"operation {i}"


def run_timed(cfg, ops, reset_after=None):
    """``ops`` back to back, every input valid and ``o_result`` always ready; returns the
    result rows of each operation and the cycles of the ``i_weight`` transfers. With
    ``reset_after`` = ``(ops_cut, rows)``: ``ops_cut`` go first and a reset cuts them once
    ``rows`` result rows have left (mid-row of the shared stage); their rows are dropped."""
    dut = FpTableArray(cfg)
    rst = Signal()
    cut, cut_rows = reset_after or ([], 0)
    phases = [cut, ops] if cut else [ops]
    state = {"phase": 0}
    results, planes = [], []

    def feeder(port, beats_of):
        async def bench(ctx):
            for i, sts in enumerate(phases):
                while state["phase"] != i:
                    ctx.set(port.valid, 0)
                    await ctx.tick()
                for b in [b for op in sts for b in beats_of(op)]:
                    ctx.set(port.valid, 1)
                    ctx.set(port.payload, b)
                    *_, ready = await ctx.tick().sample(port.ready)
                    while not ready and state["phase"] == i:
                        *_, ready = await ctx.tick().sample(port.ready)
                    if state["phase"] != i:
                        break
                ctx.set(port.valid, 0)
        return bench

    async def sink(ctx):
        ctx.set(dut.o_result.ready, 1)
        cycle, rows = 0, 0
        while len(results) < cfg.m * len(ops):
            *_, valid, payload, wv, wr = await ctx.tick().sample(
                dut.o_result.valid, dut.o_result.payload, dut.i_weight.valid,
                dut.i_weight.ready)
            cycle += 1
            if state["phase"] == len(phases) - 1:
                if wv and wr:
                    planes.append(cycle)
                if valid:
                    results.append(int(payload))
            elif valid:
                rows += 1
                if rows == cut_rows:
                    await ctx.tick()       # the next row is being computed: cut it
                    ctx.set(rst, 1)
                    await ctx.tick()
                    ctx.set(rst, 0)
                    assert not ctx.get(dut.o_busy) and not ctx.get(dut.o_result.valid)
                    state["phase"] = 1

    sim = Simulator(ResetInserter(rst)(dut))
    sim.add_clock(1e-8)
    for bench in (feeder(dut.i_cmd, lambda op: [op[0]]),
                  feeder(dut.i_scale, lambda op: [op[3][0]]),
                  feeder(dut.i_table, lambda op: op[1]), feeder(dut.i_weight, lambda op: op[2]),
                  sink):
        sim.add_testbench(bench)
    budget = sum(len(op[2]) + cfg.m * cfg.n + 10 for op in cut + ops)
    sim.run_until(1e-8 * (100 + budget))
    assert len(results) == cfg.m * len(ops), "the array stalled"
    rows = [fp.unpack_fp_results(cfg.n, results[i * cfg.m:(i + 1) * cfg.m])
            for i in range(len(ops))]
    return rows, planes


def _fixed_ops(cfg, rng, planes):
    """Operations of ``planes`` cycles each (``groups * w``), every format and w."""
    return [random_op(rng, cfg, fmt, w, cfg.g * (planes // w)) for fmt, w in cfg.ops()
            if planes % w == 0]


@pytest.mark.parametrize("lanes", [None, 1, 2, 4])
def test_throughput_rule(lanes):
    """Operations of ``m * fp_column_cycles`` cycles: a plane every cycle from the first to the
    last (the array never waits for the output); one cycle shorter: exact, and the array
    waits."""
    cfg = CFG16.replace(fp_column_lanes=lanes)
    need = cfg.m * cfg.fp_column_cycles
    rng = np.random.default_rng(SEED + need)
    for planes, waits in ((max(need, 2), False), (need - 1, True)):
        if planes < 2 or (not waits and planes < need):
            continue
        ops = _fixed_ops(cfg, rng, planes)
        got, cycles = run_timed(cfg, ops)
        for g_, op in zip(got, ops):
            assert g_.tolist() == op[4].tolist()
        span = cycles[-1] - cycles[0] + 1
        assert len(cycles) == sum(len(op[2]) for op in ops)
        assert (span > len(cycles)) == waits, (planes, span, len(cycles))


@pytest.mark.parametrize("lanes", [1, 2])
def test_reset_mid_row(lanes):
    """A reset while the lanes are part-way through the second row (the first one out): no
    stray row, ``o_busy`` low, and the next operations exact."""
    cfg = CFG16.replace(fp_column_lanes=lanes)
    rng = np.random.default_rng(SEED + 7)
    cut = [random_op(rng, cfg, "int", 2, 8)]
    ops = _ops(cfg, rng)[:3]
    got, _ = run_timed(cfg, ops, reset_after=(cut, 1))
    for g_, op in zip(got, ops):
        assert g_.tolist() == op[4].tolist()


class WrongSlot(fp_column_share.SharedColumnDrain):
    """Mutant: each lane writes its neighbour's slot of the result row."""

    def write_slot(self, chunk, lane):
        return self.slot(chunk, (lane + 1) % self.lanes)


class EarlyRow(fp_column_share.SharedColumnDrain):
    """Mutant: the row register becomes the beat one cycle early (its last chunk unwritten)."""

    def row_done(self):
        return self.chunk == max(0, self.cycles - 2)


@pytest.mark.parametrize("mutant", [WrongSlot, EarlyRow], ids=["wrong-slot", "early-row"])
def test_mutant_fails(monkeypatch, mutant):
    import hw.fp_table_array
    monkeypatch.setattr(hw.fp_table_array, "SharedColumnDrain", mutant)
    cfg = CFG16.replace(fp_column_lanes=2)
    rng = np.random.default_rng(SEED)
    ops = [random_op(rng, cfg, "int", 2, 8)]
    got = run_array(cfg, ops, random.Random(SEED))
    assert got[0].tolist() != ops[0][4].tolist()


# -- the engine around it ----------------------------------------------------------------------

def test_engine_matches_golden():
    """The fp-table engine, unchanged, around the array with 2 lanes: every format and w,
    random gaps and back-pressure, then a reset mid-GEMM."""
    from .test_fp_table_engine import CFG, _gemms, expected_rows, random_gemm, run_engine
    cfg = CFG.replace(fp_column_lanes=2)
    rng = np.random.default_rng(SEED)
    gemms = _gemms(rng, cfg)
    got, _, busy = run_engine(cfg, gemms, gap=0.3)
    assert got == expected_rows(gemms) and busy == 0
    cut = [random_gemm(rng, cfg, (3 * cfg.m, 4 * cfg.g, 2 * cfg.n), "int", 2)]
    gemms = [random_gemm(rng, cfg, (cfg.m + 1, 2 * cfg.g + 1, cfg.n + 2), "uint", 2)]
    got, _, busy = run_engine(cfg, gemms, gap=0.2, reset_gemms=cut)
    assert got == expected_rows(gemms) and busy == 0


# -- the CLIs and the emitted Verilog --------------------------------------------------------

def test_emit_cli(tmp_path, capsys):
    """``--fp-column-lanes L``: the lanes instantiate the column module once each, the name
    gains ``_cl<L>``, the manifest records it; bad values exit 2 and write nothing."""
    from gen.emit import main
    base = ["--act", "fp16", "--table-format", "fp", "--m", "1", "--n", "4", "--k-max", "64"]
    assert main(base + ["--fp-column-lanes", "2", "--out", str(tmp_path / "ok")]) == 0
    (jpath,) = (tmp_path / "ok").glob("*.json")
    manifest = json.loads(jpath.read_text())
    name = manifest["name"]
    assert name.endswith("_cl2") and manifest["params"]["fp_column_lanes"] == 2
    text = (tmp_path / "ok" / f"{name}.v").read_text()
    col = manifest["column_module"]
    assert text.count(f"module {col}(") == 1 and text.count(f"  {col} lane_") == 2
    assert f"  {col} col_" not in text
    # L = n: a row per cycle and no chunk counter (a 0-bit wire would be [-1:0]: Verilator
    # refuses it)
    assert main(base + ["--fp-column-lanes", "4", "--out", str(tmp_path / "ln")]) == 0
    (vpath,) = (tmp_path / "ln").glob("*.v")
    assert "[-1:0]" not in vpath.read_text()
    for argv, err in [
        (base + ["--fp-column-lanes", "3"],
         "--fp-column-lanes: fp_column_lanes must be None or a divisor of n = 4 (1, 2, 4), "
         "not 3"),
        (["--act", "fp16", "--table-format", "q", "--fp-column-lanes", "2"],
         "--fp-column-lanes applies to --table-format fp only, not --table-format q")]:
        with pytest.raises(SystemExit) as exc:
            main(argv + ["--out", str(tmp_path / "bad")])
        assert exc.value.code == 2
        assert err in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_synth_cli_errors(tmp_path, capsys):
    from gen.synth.cli import main
    for argv, err in [
        (["--fp-column-lanes", "2"], "--fp-column-lanes applies only with --compare"),
        (["--compare", "--act", "fp16", "--lut-tables", "fp", "--fp-column-lanes", "5"],
         "--fp-column-lanes: fp_column_lanes must be None or a divisor of n = 64"),
        (["--compare", "--act", "fp16", "--lut-tables", "q", "--fp-column-lanes", "8"],
         "--fp-column-lanes applies to the fp-table array: --lut-tables both or fp, not q")]:
        with pytest.raises(SystemExit) as exc:
            main(argv + ["--out", str(tmp_path / "bad")])
        assert exc.value.code == 2
        assert err in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


@pytest.mark.sim
def test_emitted_icarus(tmp_path):
    """The emitted array with 2 lanes under cocotb on Icarus (tb/test_fp_table_array.py:
    every format and w, specials, back-pressure, reset)."""
    from tb.test_fp_table_array import run_fp_table_sim
    run_fp_table_sim(SIM_CFG.replace(fp_column_lanes=2), "icarus", tmp_path, seed=SEED)


def test_compare_designs():
    """``gen.synth --compare --act``: the lanes go to the fp-table array only."""
    from gen.synth import compare_fp_designs
    ds = compare_fp_designs(LutConfig(w_bits=1), "fp16", fp_column_lanes=8)
    cfgs = {d["key"]: d["cfg"] for d in ds}
    assert cfgs["lut_fp"].fp_column_lanes == 8 and cfgs["lut_fp"].fp_column_cycles == 8
    assert cfgs["lut"].fp_column_lanes is None
    assert compare_fp_designs(LutConfig(w_bits=1), "fp16")[1]["cfg"].fp_column_lanes is None


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
@pytest.mark.parametrize("act,lanes", [("fp16", 1), ("bf16", 4)])
def test_emitted_full(act, lanes, sim, tmp_path):
    from tb.test_fp_table_array import run_fp_table_sim
    run_fp_table_sim(SIM_CFG.replace(act_format=act, fp_column_lanes=lanes), sim, tmp_path,
                     seed=SEED, effort="full")
