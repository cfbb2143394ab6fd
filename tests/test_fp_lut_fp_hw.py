# amaranth: UnusedElaboratable=no
"""The ``fp``-table array (hw/fp_table_pe.py, hw/fp_table_array.py): amaranth.sim of the PE and
of the array bit-exactly against gen.fp_lut_fp, the mutant, and cocotb on the emitted Verilog
(Icarus and Verilator)."""
import json
import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from gen import fp
from gen import fp_lut_fp as F
from gen.config import LutConfig
from gen.fp import BF16
from gen.golden import random_weights
from hw.fp_table_array import FpTableArray
from hw.fp_table_pe import FpTableLookup, FpTablePE
from tests.simutil import stream_get, stream_put

SEED = 1515
CFG16 = LutConfig(w_bits=2, g=4, m=2, n=4, act_format="fp16", table_format="fp")
CFG_BF = LutConfig(w_bits=4, g=3, m=1, n=3, act_format="bf16", table_format="fp",
                   symmetric=False)


def act_bits(rng, act, shape, specials=0.0, scale=1.0):
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    with np.errstate(all="ignore"):
        bits = (x.view(np.uint32) >> 16).astype(np.int64) if act == BF16 else \
            x.astype(np.float16).view(np.uint16).astype(np.int64)
    if specials:
        pick = rng.random(shape) < specials
        bits[pick] = rng.choice(np.array(fp.special_values(act)), int(pick.sum()))
    return bits


class NoPlaneShift(FpTablePE):
    """Mutant: forgets ``* 2**plane`` (every plane weighs 1)."""

    def _plane_exponent(self, e_lsb, plane):
        return e_lsb


# -- the PE alone ----------------------------------------------------------------------------

def test_pe_random_steps():
    """Random tables, indices, planes and step/first/capture sequences: ``out`` and the
    accumulator follow ``gen.fp_lut_fp.acc_add`` step by step (special entries included)."""
    cfg = CFG16
    act = cfg.act_fp
    rng = np.random.default_rng(SEED)
    dut = FpTablePE(cfg)
    steps = []
    for i in range(300):
        stored = act_bits(rng, act, cfg.table_entries, specials=0.05 if i > 200 else 0.0,
                          scale=float(rng.choice([1e-6, 1.0, 1e3])))
        steps.append(dict(stored=stored, idx=int(rng.integers(1 << cfg.g)),
                          plane=int(rng.integers(cfg.w_bits)), step=int(rng.random() < 0.8),
                          first=int(rng.random() < 0.1), capture=int(rng.random() < 0.2)))

    async def bench(ctx):
        acc, out = 0, 0
        for s in steps:
            row = sum(int(e) << (k * act.width) for k, e in enumerate(s["stored"]))
            ctx.set(dut.table_row, row)
            for name in ("step", "first", "capture", "plane"):
                ctx.set(getattr(dut, name), s[name])
            ctx.set(dut.index, s["idx"])
            await ctx.tick()
            if s["step"]:
                entry = F.fp_lookup(s["stored"], s["idx"], cfg)
                acc = F.acc_add(0 if s["first"] else acc, entry, act, s["plane"])
                if s["capture"]:
                    out = acc
            assert ctx.get(dut.out) == out

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


# -- the array -------------------------------------------------------------------------------

def random_op(rng, cfg, fmt, w, k, specials=0.0, scale=1.0):
    act = cfg.act_fp
    acts = act_bits(rng, act, (cfg.m, k), specials, scale)
    weights = random_weights(rng, (k, cfg.n), fmt, w)
    ws = act_bits(rng, act, cfg.n, scale=0.1)
    return F.fp_stream(cfg, acts, weights, fmt, w, ws)


def run_array(cfg, ops, rng, gap=0.0, dut=None):
    dut = dut or FpTableArray(cfg)
    results = []

    async def cmds(ctx):
        for cmd, _, _, scale, _ in ops:
            while rng.random() < gap:
                await ctx.tick()
            ctx.set(dut.i_cmd.payload, cmd)
            ctx.set(dut.i_scale.payload, scale[0])
            ctx.set(dut.i_cmd.valid, 1)
            ctx.set(dut.i_scale.valid, 1)
            await ctx.tick().until(dut.i_cmd.ready & dut.i_scale.ready)
            ctx.set(dut.i_cmd.valid, 0)
            ctx.set(dut.i_scale.valid, 0)

    async def tables(ctx):
        await stream_put(ctx, dut.i_table, [b for op in ops for b in op[1]], rng, gap)

    async def weights(ctx):
        await stream_put(ctx, dut.i_weight, [b for op in ops for b in op[2]], rng, gap)

    async def out(ctx):
        results.extend(await stream_get(ctx, dut.o_result, cfg.m * len(ops), rng, gap))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for tb in (cmds, tables, weights, out):
        sim.add_testbench(tb)
    sim.run_until(1e-8 * (200 + 20 * sum(len(op[2]) + cfg.m for op in ops)))
    assert len(results) == cfg.m * len(ops), "the array stalled"
    return [fp.unpack_fp_results(cfg.n, results[i * cfg.m:(i + 1) * cfg.m])
            for i in range(len(ops))]


def _ops(cfg, rng):
    ops = []
    for i, (fmt, w) in enumerate(cfg.ops()):
        ops.append(random_op(rng, cfg, fmt, w, int(rng.integers(1, 3 * cfg.g + 1)),
                             specials=0.1 if i % 3 == 2 else 0.0))
    return ops


@pytest.mark.parametrize("cfg", [CFG16, pytest.param(CFG_BF, marks=pytest.mark.slow)],
                         ids=["fp16", "bf16-full-w4"])
def test_array_matches_golden(cfg):
    """Every format and ``w`` the build runs, back to back, with random gaps and stalls."""
    rng = np.random.default_rng(SEED)
    ops = _ops(cfg, rng)
    got = run_array(cfg, ops, random.Random(SEED), gap=0.25)
    for i, (g_, op) in enumerate(zip(got, ops)):
        assert g_.tolist() == op[4].tolist(), f"operation {i}"


class NoMirrorSign(FpTableLookup):
    """Mutant: the mirrored half of a symmetric table without its sign flip."""

    def _sign(self, selected, msb):
        return selected


@pytest.mark.parametrize("where,name,cls", [
    ("hw.fp_table_array", "FpTablePE", NoPlaneShift),
    ("hw.fp_table_pe", "FpTableLookup", NoMirrorSign)], ids=["no-plane-shift", "no-mirror-sign"])
def test_array_mutant_fails(monkeypatch, where, name, cls):
    """Each mutant must change results (w = 2 operations)."""
    import importlib
    monkeypatch.setattr(importlib.import_module(where), name, cls)
    cfg = CFG16.replace(m=1, n=2)
    rng = np.random.default_rng(SEED)
    ops = [random_op(rng, cfg, "int", 2, 8)]
    got = run_array(cfg, ops, random.Random(SEED))
    assert got[0].tolist() != ops[0][4].tolist()


def test_bad_configs():
    with pytest.raises(ValueError, match="tables_per_pe must be 1 with fp tables, not 2"):
        FpTableArray(LutConfig(act_format="fp16", table_format="fp", tables_per_pe=2))
    with pytest.raises(ValueError, match="output_buffer must be 'double' with fp tables, "
                                         "not 'row'"):
        FpTableArray(LutConfig(act_format="fp16", table_format="fp", output_buffer="row"))
    with pytest.raises(ValueError, match="cfg.table_format must be 'fp', not 'int'"):
        FpTablePE(LutConfig())
    with pytest.raises(TypeError, match="cfg must be a LutConfig"):
        FpTableArray("cfg")


# -- the emitted Verilog: gen.emit and cocotb ------------------------------------------------

SIM_CFG = LutConfig(w_bits=2, g=4, m=2, n=4, k_max=32, act_format="fp16", table_format="fp")


def test_emit_cli(tmp_path, capsys):
    """``--act bf16 --table-format fp`` emits the FP-table array, its PE once as its own
    module; the manifest records the formats; bad combinations exit 2 and write nothing."""
    from gen.emit import main
    assert main(["--act", "bf16", "--table-format", "fp", "--m", "1", "--n", "2",
                 "--k-max", "64", "--out", str(tmp_path / "ok")]) == 0
    files = sorted(p.name for p in (tmp_path / "ok").iterdir())
    name = files[0][:-len(".json")]
    assert files == [f"{name}.json", f"{name}.v"] and "bf16" in name and "tfp" in name
    manifest = json.loads((tmp_path / "ok" / files[0]).read_text())
    assert (manifest["act"], manifest["params"]["table_format"]) == ("bf16", "fp")
    assert manifest["params"]["act_format"] == "bf16"
    ports = {p["name"]: p["width"] for p in manifest["ports"]}
    cfg = LutConfig.from_dict(manifest["params"])
    assert ports["i_table__payload"] == cfg.table_width == 1 * 8 * 16
    assert ports["i_scale__payload"] == cfg.scale_width == 2 * 16
    assert ports["o_result__payload"] == cfg.fp_result_row_width == 2 * 32
    assert ports["i_cmd__payload"] == cfg.fp_cmd_width == cfg.cmd_width
    text = (tmp_path / "ok" / files[1]).read_text()
    pe = manifest["pe_module"]
    assert text.count(f"module {pe}(") == 1 and text.count(f"  {pe} pe_") == 1 * 2
    for argv, err in [
        (["--table-format", "fp"], "--act must be fp16 or bf16 with --table-format fp, not int"),
        (["--table-format", "fp", "--act", "fp16", "--top", "mac_direct"],
         "--table-format fp applies to --top array or engine, not --top mac_direct"),
        (["--table-format", "fp", "--act", "fp16", "--tables-per-pe", "2"],
         "--table-format fp: tables_per_pe must be 1 with fp tables, not 2"),
        (["--table-format", "fp", "--act", "fp16", "--table-bits", "8"],
         "--table-bits applies to --table-format q only, not --table-format fp"),
        (["--act", "fp16"], "--act fp16 applies to --top mac_dequant or mac_direct, or to --top "
                            "array with --table-format q or fp, not --top array")]:
        with pytest.raises(SystemExit) as exc:
            main(argv + ["--out", str(tmp_path / "bad")])
        assert exc.value.code == 2
        assert err in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


@pytest.mark.sim
def test_emitted_fp16_icarus(tmp_path):
    """The default suite's share: FP16 on Icarus (every format and w, specials, stalls,
    reset); ``slow`` runs BF16, Verilator and the mutant."""
    from tb.test_fp_table_array import run_fp_table_sim
    run_fp_table_sim(SIM_CFG, "icarus", tmp_path, seed=SEED)


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
@pytest.mark.parametrize("act", ["fp16", "bf16"])
def test_emitted_full(act, sim, tmp_path):
    from tb.test_fp_table_array import run_fp_table_sim
    run_fp_table_sim(SIM_CFG.replace(act_format=act), sim, tmp_path, seed=SEED, effort="full")


@pytest.mark.sim
@pytest.mark.slow
def test_emitted_mutant_fails(tmp_path):
    """The emitted array with the plane's exponent increment dropped fails the testbench."""
    from tb.test_fp_table_array import run_fp_table_sim
    with pytest.raises(AssertionError, match="(?s)of 1 cocotb tests failed.*differ"):
        run_fp_table_sim(SIM_CFG, "icarus", tmp_path, seed=SEED, pe_cls=NoPlaneShift,
                       testcase="test_every_op")
