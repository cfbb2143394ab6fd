# amaranth: UnusedElaboratable=no
"""amaranth.sim tests of the ``fp``-table engine (hw/fp_table_engine.py) bit-exactly against
gen.fp_lut_fp.lut_fp_mpgemm (the whole GEMM, through gen.fp_lut_fp.fp_gemm_streams), its
cycles and its mutants; the golden's tiling claim against per-tile operations."""
import contextlib
import json
import random
from unittest import mock

import numpy as np
import pytest
from amaranth import Mux, ResetInserter, Signal
from amaranth.sim import Simulator

from gen import fp
from gen import fp_lut_fp as F
from gen.config import LutConfig
from gen.golden import random_weights
from hw import engine as engine_mod
from hw import fp_table_engine as E
from hw.fp_table_engine import FpTableEngine

from .test_fp_lut_fp_hw import act_bits

SEED = 4242
#: small builds: amaranth.sim of the FP array is slow
CFG = LutConfig(w_bits=2, g=2, m=2, n=4, k_max=64, act_format="fp16", table_format="fp")
CFG1 = LutConfig(w_bits=4, g=4, m=1, n=2, k_max=64, act_format="bf16", table_format="fp")


def random_gemm(rng, cfg, shape, fmt, w_bits, specials=0.0, scale=1.0):
    """The engine streams of one random GEMM (``gen.fp_lut_fp.fp_gemm_streams``)."""
    rows, k, cols = shape
    act = cfg.act_fp
    acts = act_bits(rng, act, (rows, k), specials, scale)
    return F.fp_gemm_streams(cfg, acts, random_weights(rng, (k, cols), fmt, w_bits), fmt,
                             w_bits, act_bits(rng, act, cols, scale=0.1))


def run_engine(cfg, gemms, seed=SEED, gap=0.0, engine_cls=FpTableEngine, reset_gemms=()):
    """Run ``gemms`` back to back (after ``reset_gemms``, cut by a reset once the first tile's
    rows are out); every input stream and the result sink pause with probability ``gap``.
    Returns ``(rows, o_cycles after the last row, o_busy then)``; rows before the reset are
    dropped."""
    dut = engine_cls(cfg)
    rst = Signal()
    pace = random.Random(seed)
    # phase 0: the GEMMs cut by the reset; 0.5: the reset; 1: the GEMMs checked
    state = {"phase": 1 if not reset_gemms else 0}
    phases = [list(reset_gemms), list(gemms)]
    want = sum(len(st["rows"]) for st in gemms)
    got, end = [], {}

    def feeder(port, key):
        async def bench(ctx):
            for i, sts in enumerate(phases):
                if not sts:
                    continue
                while state["phase"] != i:
                    ctx.set(port.valid, 0)
                    await ctx.tick()
                beats = [b for st in sts for b in
                         ([st[key]] if key == "cmd" else st[key])]
                for b in beats:
                    while pace.random() < gap and state["phase"] == i:
                        ctx.set(port.valid, 0)
                        await ctx.tick()
                    if state["phase"] != i:
                        break
                    ctx.set(port.valid, 1)
                    ctx.set(port.payload, b)
                    *_, ready = await ctx.tick().sample(port.ready)
                    while not ready and state["phase"] == i:
                        *_, ready = await ctx.tick().sample(port.ready)
                ctx.set(port.valid, 0)
        return bench

    async def sink(ctx):
        while len(got) < want:
            ready = not pace.random() < gap
            ctx.set(dut.o_result.ready, int(ready))
            *_, valid, payload = await ctx.tick().sample(dut.o_result.valid,
                                                         dut.o_result.payload)
            if ready and valid and state["phase"] == 1:
                got.append(int(payload))
        ctx.set(dut.o_result.ready, 0)
        end.update(cycles=ctx.get(dut.o_cycles), busy=ctx.get(dut.o_busy))

    async def resetter(ctx):
        if not reset_gemms:
            return
        # the first tile's rows out, the next ones under way: cut there
        rows = 0
        while rows < cfg.m:
            *_, valid, ready = await ctx.tick().sample(dut.o_result.valid, dut.o_result.ready)
            rows += valid and ready
        await ctx.tick().repeat(3)
        state["phase"] = 0.5
        ctx.set(rst, 1)
        await ctx.tick()
        ctx.set(rst, 0)
        assert ctx.get(dut.o_busy) == 0
        state["phase"] = 1

    sim = Simulator(ResetInserter(rst)(dut))   # rst drives the sync reset, as the rst port does
    sim.add_clock(1e-8)
    for bench in (feeder(dut.i_cmd, "cmd"), feeder(dut.i_table, "tables"),
                  feeder(dut.i_wscale, "wscales"), feeder(dut.i_weight, "weights"), sink,
                  resetter):
        sim.add_testbench(bench)
    budget = sum(len(st["weights"]) + 4 * len(st["rows"]) + 20 for st in phases[0] + gemms)
    sim.run_until(1e-8 * (100 + budget * (1 + 4 * gap)))
    return got, end.get("cycles"), end.get("busy")


def expected_rows(gemms):
    return [r for st in gemms for r in st["rows"]]


# -- the golden model of a whole GEMM ------------------------------------------------------

@pytest.mark.parametrize("cfg", [CFG, CFG1], ids=["fp16-m2n4g2", "bf16-m1n2g4"])
def test_gemm_golden_is_per_tile_operations(cfg):
    """``lut_fp_mpgemm`` of the whole padded GEMM equals, tile by tile, one array operation
    (``fp_stream``, ``m x K`` by ``K x n``) per tile, and the engine streams are those
    operations' beats in engine order: tiling does not change the arithmetic (specials,
    subnormal activations and K not a multiple of g included)."""
    rng = np.random.default_rng(SEED)
    for i, (fmt, w) in enumerate(cfg.ops()):
        shape = (2 * cfg.m + 1, 3 * cfg.g + 1, 2 * cfg.n - 1)
        st = random_gemm(rng, cfg, shape, fmt, w, specials=0.1 if i % 2 else 0.0,
                         scale=2.0 ** -20 if i % 3 == 2 else 1.0)
        mt, nt = st["fields"]["m_tiles"], st["fields"]["n_tiles"]
        assert (mt, nt) == (3, 2) and st["expected"].shape == (mt * cfg.m, nt * cfg.n)
        assert len(st["tables"]) == mt * st["fields"]["groups"]
        assert len(st["wscales"]) == mt * nt
        assert len(st["weights"]) == mt * nt * st["fields"]["groups"] * w
        assert len(st["rows"]) == mt * nt * cfg.m
    # and the arithmetic: each tile of a GEMM as its own operation
    for fmt, w in cfg.ops()[:3]:
        act = cfg.act_fp
        a = act_bits(rng, act, (2 * cfg.m, 2 * cfg.g + 1), 0.1)
        wv = random_weights(rng, (a.shape[1], 2 * cfg.n), fmt, w)
        ws = act_bits(rng, act, 2 * cfg.n, scale=0.1)
        st = F.fp_gemm_streams(cfg, a, wv, fmt, w, ws)
        beats = iter(st["rows"])
        for mi in range(2):
            for ni in range(2):
                rs, cs = slice(mi * cfg.m, (mi + 1) * cfg.m), slice(ni * cfg.n, (ni + 1) * cfg.n)
                cmd, tables, weights, scales, want = F.fp_stream(cfg, a[rs], wv[:, cs], fmt, w,
                                                                 ws[cs])
                assert (st["expected"][rs, cs] == want).all()
                assert st["tables"][mi * len(tables):(mi + 1) * len(tables)] == tables
                tile = mi * 2 + ni
                assert st["weights"][tile * len(weights):(tile + 1) * len(weights)] == weights
                assert st["wscales"][tile] == scales[0]
                got = fp.unpack_fp_results(cfg.n, [next(beats) for _ in range(cfg.m)])
                assert (got == want).all()


def test_gemm_streams_pad_and_check():
    """Padding: rows of +0 activations and weight columns of scale +0 give zeros (signed by
    the scale and by the result before it); bad shapes are errors naming the problem."""
    rng = np.random.default_rng(SEED)
    st = random_gemm(rng, CFG, (3, 5, 5), "int", 2)
    pad = st["expected"]
    assert pad.shape == (4, 8)
    assert (pad[3] & 0x7FFFFFFF == 0).all() and (pad[:, 5:] & 0x7FFFFFFF == 0).all()
    assert (pad[:3, :5] & 0x7FFFFFFF != 0).all()
    with pytest.raises(ValueError, match="K must be in 1..64"):
        F.fp_gemm_streams(CFG, np.zeros((2, 65), np.int64), np.zeros((65, 2), np.int64),
                          "int", 2, np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="wscales must hold N = 2"):
        F.fp_gemm_streams(CFG, np.zeros((2, 4), np.int64), np.zeros((4, 2), np.int64),
                          "int", 2, np.zeros(3, np.int64))


# -- the engine --------------------------------------------------------------------------------

def _gemms(rng, cfg):
    """Every format and w of ``cfg``, several row and column tiles, K not a multiple of g; the
    last GEMMs with special (NaN, Inf, subnormal) and tiny (subnormal entries) activations."""
    out = []
    ops = cfg.ops()
    for i, (fmt, w) in enumerate(ops):
        shape = ((2 * cfg.m + 1, 2 * cfg.g + 1, cfg.n + 1), (cfg.m, cfg.g - 1, 2 * cfg.n),
                 (1, 1, 1))[i % 3]
        out.append(random_gemm(rng, cfg, shape, fmt, w))
    out.append(random_gemm(rng, cfg, (2 * cfg.m, 3 * cfg.g, cfg.n + 1), *ops[-1],
                           specials=0.15))
    out.append(random_gemm(rng, cfg, (cfg.m + 1, 2 * cfg.g - 1, cfg.n), *ops[0],
                           scale=2.0 ** -20))
    return out


@pytest.mark.parametrize("cfg,gap", [(CFG.replace(w_bits=4), 0.3), (CFG1, 0.3),
                                     (CFG1.replace(act_format="fp16", symmetric=False), 0.0)],
                         ids=["fp16-m2n4g2-w4", "bf16-m1n2g4-w4", "fp16-full-m1n2g4-w4"])
def test_engine_matches_golden(cfg, gap):
    """Every format and w 1..4, back to back, with random gaps on every input and
    back-pressure on the results (``gap``), bit-exact against ``lut_fp_mpgemm``."""
    rng = np.random.default_rng(SEED)
    gemms = _gemms(rng, cfg)
    got, _, busy = run_engine(cfg, gemms, gap=gap)
    assert got == expected_rows(gemms)
    assert busy == 0


def test_engine_reset_mid_gemm():
    """Reset after the first tile of a 3 x 2 tile GEMM (tables of the next row block in the
    other bank): no stray row after it, and the next GEMM, with random gaps, is exact."""
    rng = np.random.default_rng(SEED + 1)
    cut = [random_gemm(rng, CFG, (3 * CFG.m, 4 * CFG.g, 2 * CFG.n), "int", 2)]
    gemms = [random_gemm(rng, CFG, (CFG.m + 1, 2 * CFG.g + 1, CFG.n + 2), "uint", 2)]
    got, _, busy = run_engine(CFG, gemms, gap=0.2, reset_gemms=cut)
    assert got == expected_rows(gemms)
    assert busy == 0


def plane_overhead(cfg, shape, fmt="int", w=2, seed=SEED):
    """``(o_cycles - plane cycles, plane cycles)`` of one GEMM with every input at full rate."""
    st = random_gemm(np.random.default_rng(seed), cfg, shape, fmt, w)
    got, cycles, _ = run_engine(cfg, [st])
    assert got == st["rows"]
    return cycles - len(st["weights"]), len(st["weights"])


def test_engine_cycles():
    """Inputs at full rate: one bit-plane per cycle plus a constant per GEMM whatever K, w and
    the tile count, so a GEMM of 2 x 2 tiles at K = 256 runs at >= 99 % (m = 1 keeps the
    simulation quick; the cocotb ``test_cycles`` measures m = 2)."""
    cfg = CFG1.replace(k_max=256)
    overheads = {plane_overhead(cfg, shape, fmt, w)[0]
                 for shape, fmt, w in (((1, 8, 2), "int", 2), ((3, 21, 5), "binary", 1),
                                       ((2, 40, 4), "uint", 3))}
    assert len(overheads) == 1, overheads
    overhead, planes = plane_overhead(cfg, (2, 256, 4), "int", 4)        # 2 x 2 tiles
    assert overheads == {overhead}
    assert planes / (planes + overhead) >= 0.99, (planes, overhead)


# -- mutants: each must make the results differ ------------------------------------------------

class OneBank(engine_mod.BankedStore):
    """Mutant: both row blocks' tables in one bank (the banks never swap)."""

    @staticmethod
    def _bank(blocks, depth):
        return 0


def no_reuse(m, name, width, depth, cfg, active, m_tiles, n_tiles, per_block):
    """Mutant: a row block's tables serve one tile only (the next tile reads the next block)."""
    return engine_mod.BankedStore(m, name, width, depth, cfg, active, m_tiles * n_tiles, 1,
                                  per_block)


class ScalePerRowBlock(FpTableEngine):
    """Mutant: one ``i_wscale`` beat per row block, reused for every column block."""

    def _connect_scales(self, m, array):
        held = Signal.like(self.i_wscale.payload)
        have = Signal()
        col = Signal(16)
        take = array.i_scale.valid & array.i_scale.ready
        m.d.comb += [array.i_scale.payload.eq(Mux(have, held, self.i_wscale.payload)),
                     array.i_scale.valid.eq(have | self.i_wscale.valid),
                     self.i_wscale.ready.eq(~have & array.i_scale.ready)]
        with m.If(take):
            m.d.sync += [held.eq(array.i_scale.payload), have.eq(1), col.eq(col + 1)]
            with m.If(col == 1):          # two column blocks per row block in the test GEMM
                m.d.sync += [have.eq(0), col.eq(0)]


@pytest.mark.parametrize("mutant", ["one-bank", "no-reuse", "scale-per-row-block"])
def test_engine_mutant_fails(mutant):
    rng = np.random.default_rng(SEED + 2)
    gemms = [random_gemm(rng, CFG, (2 * CFG.m, 2 * CFG.g, 2 * CFG.n), "int", 2)]
    patch = {"one-bank": mock.patch.object(E, "BankedStore", OneBank),
             "no-reuse": mock.patch.object(E, "BankedStore", no_reuse)}.get(mutant)
    cls = ScalePerRowBlock if mutant == "scale-per-row-block" else FpTableEngine
    with patch or contextlib.nullcontext():
        got, _, _ = run_engine(CFG, gemms, engine_cls=cls)
    assert got != expected_rows(gemms)
    if mutant == "scale-per-row-block":
        assert len(got) == len(expected_rows(gemms)), "the mutant should differ, not stall"


def test_bad_configs():
    """Config errors name the field; nothing is built before them (pytest turns an
    UnusedElaboratable warning into an error)."""
    with pytest.raises(ValueError, match="cfg.table_format must be 'fp', not 'q'"):
        FpTableEngine(CFG.replace(table_format="q"))
    with pytest.raises(ValueError, match="tables_per_pe must be 1 with fp tables, not 2"):
        FpTableEngine(CFG.replace(tables_per_pe=2))
    with mock.patch.object(E, "FpTableArray") as array:
        with pytest.raises(TypeError, match="pe_module must be a module name or None, not 3"):
            FpTableEngine(CFG, pe_module=3)
        array.assert_not_called()
    with pytest.raises(TypeError, match="cfg must be a LutConfig"):
        FpTableEngine("cfg")


# -- gen.emit ---------------------------------------------------------------------------------

def test_emit_cli(tmp_path, capsys):
    """``--top engine --table-format fp`` emits the engine, its PE and column stage once each as
    their own modules, under the config's engine name; the manifest records the formats, the
    command width and every payload layout; bad combinations exit 2 with one line and write
    nothing."""
    from gen.emit import default_name, main
    argv = ["--top", "engine", "--act", "bf16", "--table-format", "fp", "--m", "1", "--n", "2",
            "--group", "2", "--k-max", "32", "--w-bits", "2"]
    assert main(argv + ["--out", str(tmp_path / "ok")]) == 0
    files = sorted(p.name for p in (tmp_path / "ok").iterdir())
    manifest = json.loads((tmp_path / "ok" / files[0]).read_text())
    cfg = LutConfig.from_dict(manifest["params"])
    name = default_name(cfg, "engine")
    assert files == [f"{name}.json", f"{name}.v"] and manifest["name"] == name
    assert (manifest["top"], manifest["act"], cfg.table_format) == ("engine", "bf16", "fp")
    assert manifest["top_cmd_width"] == cfg.fp_engine_cmd_width
    ports = {p["name"]: p["width"] for p in manifest["ports"]}
    want = {"i_cmd": cfg.fp_engine_cmd_width, "i_table": cfg.table_width,
            "i_wscale": cfg.weight_scale_width, "i_weight": cfg.weight_width,
            "o_result": cfg.fp_result_row_width}
    assert {p: ports[f"{p}__payload"] for p in want} == want
    assert (ports["o_busy"], ports["o_cycles"]) == (1, cfg.cycles_width)
    layouts = manifest["layouts"]
    assert {k: v["width"] for k, v in layouts.items()} == {f"{p}__payload": w
                                                           for p, w in want.items()}
    assert [f["name"] for f in layouts["i_cmd__payload"]["fields"]] == ["cmd", "m_tiles",
                                                                        "n_tiles"]
    text = (tmp_path / "ok" / files[1]).read_text()
    pe, col = manifest["pe_module"], manifest["column_module"]
    assert text.count(f"module {pe}(") == 1 and text.count(f"  {pe} pe_") == cfg.m * cfg.n
    assert text.count(f"module {col}(") == 1 and text.count(f"  {col} col_") == cfg.n
    for extra, err in [
        (["--precompute"], "precompute must be False with table_format 'fp'"),
        (["--tables-per-pe", "2"], "--table-format fp: tables_per_pe must be 1 with fp tables"),
        (["--scale-block", "4"], "--scale-block applies to --table-format q only")]:
        with pytest.raises(SystemExit) as exc:
            main(argv + extra + ["--out", str(tmp_path / "bad")])
        assert exc.value.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert err in lines[-1], lines
    assert not (tmp_path / "bad").exists()
