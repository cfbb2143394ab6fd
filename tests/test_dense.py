# amaranth: UnusedElaboratable=no
"""Several tables per PE (``tables_per_pe``), shifted accumulation and the output buffering
options: config, golden model (against the plain product), packing (decoded from the layouts
in docs/interface.md) and amaranth.sim of the array, bit-exactly, with stalls, resets, the
documented back-to-back timing and the lookup mutants."""
import itertools
import re

import numpy as np
import pytest
from amaranth.hdl import ResetInserter, Signal
from amaranth.sim import Simulator

from gen.config import ACCUMULATIONS, OUTPUT_BUFFERS, LutConfig, WeightFormat
from gen.golden import (lut_mpgemm, random_activations, random_weights, reference_mpgemm,
                        tile_stream, unpack_results)
from hw.lut_array import LutArray

from .mutants import MUTANTS, mutant
from .simutil import stream_get, stream_put
from .test_hw import run_array


def msg(text):
    return "^" + re.escape(text) + "$"


# -- config ----------------------------------------------------------------------------------------

def test_defaults_are_todays_design():
    cfg = LutConfig()
    assert (cfg.tables_per_pe, cfg.accumulation, cfg.output_buffer) == (1, "partial", "double")
    assert cfg.name == "lut_array_w2a8_g4_m2n64_k4096_sym"
    assert cfg.tree_width == cfg.entry_width and cfg.step_k == cfg.g
    assert cfg.table_width == cfg.m * cfg.table_row_width and cfg.weight_width == cfg.n * cfg.g


@pytest.mark.parametrize("kw, exc, text", [
    ({"tables_per_pe": 0}, ValueError, "tables_per_pe must be in 1..16, not 0"),
    ({"tables_per_pe": 17}, ValueError, "tables_per_pe must be in 1..16, not 17"),
    ({"tables_per_pe": 2.0}, TypeError, "tables_per_pe must be an integer, not 2.0"),
    ({"accumulation": "serial"}, ValueError,
     "accumulation must be one of partial, shifted, not 'serial'"),
    ({"output_buffer": 2}, ValueError,
     "output_buffer must be one of double, row, none, not 2"),
])
def test_bad_options(kw, exc, text):
    with pytest.raises(exc, match=msg(text)):
        LutConfig(**kw)


def test_names_and_derived_widths():
    cfg = LutConfig(m=2, n=16, tables_per_pe=4, accumulation="shifted", output_buffer="none")
    assert cfg.name == "lut_array_w2a8_g4_m2n16_k4096_sym_c4_shifted_obnone"
    assert LutConfig(output_buffer="row").name.endswith("_sym_obrow")
    names = {LutConfig(tables_per_pe=c, accumulation=a, output_buffer=o).name
             for c in (1, 4) for a in ACCUMULATIONS for o in OUTPUT_BUFFERS}
    assert len(names) == 2 * len(ACCUMULATIONS) * len(OUTPUT_BUFFERS)
    d = cfg.derived()
    assert d["step_k"] == 16 and d["groups_max"] == 256 and d["k_pad"] == 4096
    assert d["pe_table_width"] == 4 * 8 * 11 and d["table_width"] == 2 * 352
    assert d["weight_width"] == 16 * 16 and d["pe_index_width"] == 16
    assert d["table_bits_per_cycle"] == 352
    # the tree is entry_width + ceil(log2 c) bits at most, and never narrower than one entry
    for c in range(1, 17):
        for g in (2, 3, 4, 5, 6):
            x = LutConfig(g=g, tables_per_pe=c)
            assert x.entry_width <= x.tree_width <= x.entry_width + (c - 1).bit_length()
    # k_max not a multiple of c*g: groups_max counts whole steps
    x = LutConfig(k_max=17, tables_per_pe=4)
    assert (x.groups_max, x.k_pad) == (2, 32)


def test_tree_width_is_tight():
    """The extreme step sum (every activation at its minimum, every index 0) needs all bits."""
    for c, g, a_bits in itertools.product((2, 3, 4, 8, 16), (2, 4, 6), (2, 8)):
        cfg = LutConfig(g=g, a_bits=a_bits, tables_per_pe=c)
        extreme = c * g * (1 << (a_bits - 1))          # T[0] = -sum(a) of c groups
        assert extreme <= (1 << (cfg.tree_width - 1)) - 1
        assert extreme > (1 << (cfg.tree_width - 2)) - 1


# -- golden model --------------------------------------------------------------------------------

@pytest.mark.parametrize("c", [2, 3, 4, 8, 16])
@pytest.mark.parametrize("accumulation", ACCUMULATIONS)
def test_golden_matches_plain_product(c, accumulation):
    rng = np.random.default_rng(c)
    for w_max, g, sym in ((4, 4, True), (3, 3, False), (2, 2, True), (1, 5, True)):
        cfg = LutConfig(w_bits=w_max, a_bits=8, g=g, m=3, n=5, k_max=97, symmetric=sym,
                        tables_per_pe=c, accumulation=accumulation)
        for fmt, w in cfg.ops():
            for k in (1, g * c - 1, g * c + 1, 97):         # odd K, partial steps
                a = random_activations(rng, (3, k), 8)
                wt = random_weights(rng, (k, 5), fmt, w)
                assert (lut_mpgemm(a, wt, fmt, w, cfg) == reference_mpgemm(a, wt)).all()
            # extremes: every activation at its minimum, weights at each end
            a = np.full((3, cfg.k_max), -128)
            lo, hi = fmt.value_range(w)
            for v in {lo, hi} - ({0} if fmt is WeightFormat.BINARY else set()):
                wt = np.full((cfg.k_max, 5), v)
                assert (lut_mpgemm(a, wt, fmt, w, cfg) == reference_mpgemm(a, wt)).all()


def test_golden_tree_width_checked(monkeypatch):
    """One bit less of tree_width fails the golden model's width check at the extreme."""
    cfg = LutConfig(w_bits=1, g=4, m=1, n=1, k_max=16, tables_per_pe=4)
    a, w = np.full((1, 16), -128), np.full((16, 1), -1)
    lut_mpgemm(a, w, "binary", 1, cfg)
    monkeypatch.setattr(LutConfig, "tree_width", property(lambda s: 12))
    with pytest.raises(OverflowError, match="adder tree"):
        lut_mpgemm(a, w, "binary", 1, cfg)


def _decode_and_run(cfg, cmd, tables, weights, fmt, w):
    """Decode the beats with a plain reading of docs/interface.md and run its loop."""
    c, g, e_w, m, n = cfg.tables_per_pe, cfg.g, cfg.entry_width, cfg.m, cfg.n
    groups = cmd >> (2 + cfg.plane_width)
    assert len(tables) == groups and len(weights) == groups * w

    def field(word, lsb, width, signed=True):
        v = (word >> lsb) & ((1 << width) - 1)
        return v - (1 << width) if signed and v >> (width - 1) else v

    acc = np.zeros((m, n), dtype=np.int64)
    s = np.zeros(m, dtype=np.int64)
    for j in range(groups):
        for r in range(m):
            for t in range(c):
                s[r] -= field(tables[j], r * cfg.pe_table_width + t * cfg.table_row_width, e_w)
        for bi, b in enumerate(range(w - 1, -1, -1)):
            beat = weights[j * w + bi]
            for r, col in itertools.product(range(m), range(n)):
                idx = field(beat, col * c * g, c * g, signed=False)
                for t in range(c):
                    i = (idx >> (t * g)) & ((1 << g) - 1)
                    base = r * cfg.pe_table_width + t * cfg.table_row_width
                    if cfg.symmetric and i >> (g - 1):
                        entry = -field(tables[j], base + ((~i) & ((1 << (g - 1)) - 1)) * e_w, e_w)
                    else:
                        entry = field(tables[j], base + i * e_w, e_w)
                    acc[r, col] += entry << b
    fmt = WeightFormat.parse(fmt)
    if fmt is WeightFormat.BINARY:
        return acc
    corr = ((1 << w) - 1) * s if fmt is WeightFormat.UINT else -s
    return (acc + corr[:, None]) // 2


@pytest.mark.parametrize("c, sym", [(2, True), (3, False), (4, True)])
def test_packing_decodes_to_product(c, sym):
    rng = np.random.default_rng(3)
    cfg = LutConfig(w_bits=3, a_bits=6, g=3, m=2, n=3, k_max=40, symmetric=sym, tables_per_pe=c)
    for fmt, w in cfg.ops():
        a = random_activations(rng, (2, 23), 6)
        wt = random_weights(rng, (23, 3), fmt, w)
        cmd, tables, weights, exp = tile_stream(cfg, a, wt, fmt, w)
        assert (exp == reference_mpgemm(a, wt)).all()
        assert (_decode_and_run(cfg, cmd, tables, weights, fmt, w) == exp).all()


# -- amaranth.sim of the array ---------------------------------------------------------------------

SIM_OPTIONS = [(c, a, o) for c in (1, 4) for a in ACCUMULATIONS for o in OUTPUT_BUFFERS
               if (c, a, o) != (1, "partial", "double")]


@pytest.mark.parametrize("c, accumulation, buffer", SIM_OPTIONS,
                         ids=lambda v: str(v))
def test_array_options_match_golden(c, accumulation, buffer):
    """Random operations over every (format, w) back to back, with random gaps and stalls."""
    cfg = LutConfig(w_bits=3, a_bits=6, g=3, m=3, n=2, k_max=40, tables_per_pe=c,
                    accumulation=accumulation, output_buffer=buffer)
    ops = [(f.label, w, k) for f, w in cfg.ops() for k in (1, cfg.step_k + 1, cfg.k_max)]
    res, expected, _ = run_array(cfg, ops, seed=c, gap=0.3, stall=0.3)
    for i, exp in enumerate(expected):
        assert (res[i] == exp).all(), f"operation {i} {ops[i]}: got {res[i]}, expected {exp}"


@pytest.mark.parametrize("name", MUTANTS)
def test_array_options_mutants_caught(name):
    cfg = LutConfig(w_bits=2, a_bits=8, g=4, m=2, n=3, k_max=32, tables_per_pe=4,
                    accumulation="shifted", output_buffer="none")
    with mutant(name):
        res, expected, _ = run_array(cfg, [("int", 2, 32), ("uint", 1, 16)])
    assert any((r != e).any() for r, e in zip(res, expected))


def _timed_run(cfg, ops, seed=0):
    """Every source always valid, o_result always ready; edges of weight and result beats."""
    rng = np.random.default_rng(seed)
    dut = LutArray(cfg)
    streams = [tile_stream(cfg, random_activations(rng, (cfg.m, k), cfg.a_bits),
                           random_weights(rng, (k, cfg.n), f, w), f, w) for f, w, k in ops]
    seen = {"weight": [], "result": []}
    got = []

    def put_all(port, key):
        async def testbench(ctx):
            await stream_put(ctx, port, [b for st in streams for b in
                                         ([st[0]] if key == 0 else st[key])])
        return testbench

    async def monitor(ctx):
        ctx.set(dut.o_result.ready, 1)
        for edge in range(400):
            _, _, wv, wr, rv, rp = await ctx.tick().sample(
                dut.i_weight.valid, dut.i_weight.ready, dut.o_result.valid, dut.o_result.payload)
            if wv and wr:
                seen["weight"].append(edge)
            if rv:
                seen["result"].append(edge)
                got.append(rp)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for port, key in ((dut.i_cmd, 0), (dut.i_table, 1), (dut.i_weight, 2)):
        sim.add_testbench(put_all(port, key))
    sim.add_testbench(monitor)
    sim.run()
    res = unpack_results(cfg, got).reshape(len(ops), cfg.m, cfg.n)
    assert all((r == st[3]).all() for r, st in zip(res, streams))
    return seen


def _expected_edges(cfg, ops):
    """docs/interface.md, "Output buffering": edges of every weight and result beat."""
    weight, result = [], []
    last = None                                      # L of the previous operation
    for _, w, k in ops:
        beats = -(-k // cfg.step_k) * w
        start = 1 if last is None else last + 1      # E_k
        # the first beat that writes the accumulators may go no earlier than `free`
        free = -1 if last is None else last + cfg.m
        edges = []
        e = start
        for i in range(beats):
            if cfg.output_buffer == "double":
                writes = i == beats - 1
            elif cfg.accumulation == "shifted":
                writes = True
            else:
                writes = i % w == w - 1
            if writes:
                e = max(e, free)
            edges.append(e)
            e += 1
        last = edges[-1]
        weight += edges
        delay = 2 if cfg.output_buffer == "row" else 1
        result += [last + delay + r for r in range(cfg.m)]
    return weight, result


@pytest.mark.parametrize("accumulation, buffer", [("shifted", "none"), ("partial", "none"),
                                                  ("shifted", "row"), ("partial", "double")])
def test_back_to_back_timing(accumulation, buffer):
    cfg = LutConfig(w_bits=3, a_bits=6, g=2, m=4, n=2, k_max=32, tables_per_pe=2,
                    accumulation=accumulation, output_buffer=buffer)
    ops = [("int", 2, 12), ("uint", 3, 4), ("int", 1, 8), ("binary", 1, 3), ("uint", 2, 32)]
    seen = _timed_run(cfg, ops)
    weight, result = _expected_edges(cfg, ops)
    assert seen == {"weight": weight, "result": result}


@pytest.mark.parametrize("buffer", ["row", "none"])
def test_reset_mid_operation_and_mid_drain(buffer):
    """Reset while an operation computes, and again while its results drain: the next
    operation is exact."""
    cfg = LutConfig(w_bits=2, a_bits=8, g=2, m=3, n=2, k_max=32, tables_per_pe=4,
                    accumulation="shifted", output_buffer=buffer)
    rng = np.random.default_rng(9)
    dut = LutArray(cfg)
    rst = Signal()
    ops = [tile_stream(cfg, random_activations(rng, (3, 32), 8),
                       random_weights(rng, (32, 2), "int", 2), "int", 2) for _ in range(3)]
    got = []

    async def tb(ctx):
        for stop in (3, None):                  # reset after 3 planes, then after the drain began
            cmd, tables, weights, _ = ops[0 if stop else 1]
            ctx.set(dut.i_cmd.payload, cmd)
            ctx.set(dut.i_cmd.valid, 1)
            await ctx.tick()
            ctx.set(dut.i_cmd.valid, 0)
            ctx.set(dut.i_table.valid, 1)
            ctx.set(dut.i_weight.valid, 1)
            beats = stop or len(weights)
            for t in range(beats):
                ctx.set(dut.i_table.payload, tables[t // 2])
                ctx.set(dut.i_weight.payload, weights[t])
                await ctx.tick()
            ctx.set(dut.i_table.valid, 0)
            ctx.set(dut.i_weight.valid, 0)
            if stop is None:                    # results pending, one row taken
                ctx.set(dut.o_result.ready, 1)
                await ctx.tick().repeat(3)
                ctx.set(dut.o_result.ready, 0)
                assert ctx.get(dut.o_busy) == 1
            ctx.set(rst, 1)
            await ctx.tick()
            ctx.set(rst, 0)
            assert ctx.get(dut.o_busy) == 0 and ctx.get(dut.o_result.valid) == 0
        cmd, tables, weights, _ = ops[2]
        await stream_put(ctx, dut.i_cmd, [cmd])

    def feed(port, key):
        async def testbench(ctx):
            await ctx.tick().repeat(40)
            await stream_put(ctx, port, ops[2][key])
        return testbench

    async def drain(ctx):
        await ctx.tick().repeat(40)
        got.extend(await stream_get(ctx, dut.o_result, cfg.m))

    sim = Simulator(ResetInserter(rst)(dut))
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.add_testbench(feed(dut.i_table, 1))
    sim.add_testbench(feed(dut.i_weight, 2))
    sim.add_testbench(drain)
    sim.run()
    assert (unpack_results(cfg, got) == ops[2][3]).all()


def test_precompute_engine_refuses_several_tables_per_pe():
    from hw.engine import LutEngine
    with pytest.raises(ValueError, match=msg("tables_per_pe must be 1 for the precompute "
                                             "engine, not 4")):
        LutEngine(LutConfig(tables_per_pe=4, m=2, n=4, precompute=True))


@pytest.mark.parametrize("kw", [dict(tables_per_pe=4, accumulation="shifted",
                                     output_buffer="none"),
                                dict(tables_per_pe=2, output_buffer="row")], ids=str)
def test_engine_with_options_matches_golden(kw):
    """The engine tiles K in steps of c*g; its table memory holds one step per entry."""
    from .test_engine import run_engine
    cfg = LutConfig(w_bits=2, a_bits=8, g=4, m=2, n=4, k_max=64, **kw)
    for i, (fmt, w) in enumerate(cfg.ops()):
        got, expected, cycles, ideal = run_engine(cfg, 5, 37, 9, fmt.label, w, seed=i, gap=0.25)
        assert got == expected, (fmt, w)


# -- the MAC baselines carry the same output stage -------------------------------------------------

@pytest.mark.parametrize("buffer", ["row", "none"])
@pytest.mark.parametrize("kind", ["dequant", "direct"])
def test_mac_output_buffer_matches_reference(buffer, kind):
    from gen.mac_config import MacConfig

    from .test_hw import run_mac_array
    cfg = MacConfig(m=3, n=2, g=4, w_bits=3, a_bits=6, k_max=24, output_buffer=buffer)
    run_mac_array(cfg, kind, (1, 5, 24), seed=5)


def test_mac_config_output_buffer():
    from gen.mac_config import MacConfig
    lut = LutConfig(tables_per_pe=4, m=2, n=16, output_buffer="none")
    mac = MacConfig.from_lut(lut, m=8, n=4, g=16)
    assert mac.output_buffer == "none" and mac.name.endswith("_obnone")
    assert MacConfig().name == "mac_array_w2a8_g16_m8n4_k4096"
    # dot product of 16 lanes: int8 x every weight value of every (format, w <= 2)
    prods = [a * v for a in range(-128, 128) for fmt, w in MacConfig().ops()
             for v in range(fmt.value_range(w)[0], fmt.value_range(w)[1] + 1)]
    lo, hi = 16 * min(prods), 16 * max(prods)
    width = MacConfig().dot_width
    assert -(1 << (width - 1)) <= lo and hi < (1 << (width - 1))
    assert not (-(1 << (width - 2)) <= lo and hi < (1 << (width - 2)))
    with pytest.raises(ValueError, match=msg("output_buffer must be one of double, row, none, "
                                             "not 'x'")):
        MacConfig(output_buffer="x")


def test_emit_cli_refuses_engine_with_several_tables(tmp_path, capsys):
    from gen.emit import main
    with pytest.raises(SystemExit) as e:
        main(["--top", "engine", "--precompute", "--tables-per-pe", "4",
              "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and not (tmp_path / "o").exists()
    assert capsys.readouterr().err.strip().endswith(
        "--tables-per-pe: the precompute engine takes one table per PE, not 4")


# -- the negation folded into the PE's adder tree --------------------------------------------------

def _folded_lookup_all(cfg, stored_row, cls=None):
    from hw.lookup import TableLookup
    from .simutil import run
    dut = (cls or TableLookup)(cfg, fold_negation=True)
    got = []

    async def tb(ctx):
        word = 0
        for i, v in enumerate(stored_row):
            word |= (int(v) & ((1 << cfg.entry_width) - 1)) << (i * cfg.entry_width)
        ctx.set(dut.table_row, word)
        for idx in range(1 << cfg.g):
            ctx.set(dut.index, idx)
            got.append((ctx.get(dut.entry), ctx.get(dut.negate)))
    run(dut, [tb])
    return got


@pytest.mark.parametrize("g", [2, 3, 4, 6])
@pytest.mark.parametrize("symmetric", [True, False])
def test_folded_lookup_every_index(g, symmetric):
    """``entry + negate == T[idx]`` for every index; ``negate`` is the index MSB (symmetric) or
    0 (full tables), and ``entry`` is ``~T[~idx]`` for a negated entry."""
    from gen.golden import build_tables, stored_tables
    cfg = LutConfig(g=g, a_bits=8, symmetric=symmetric, m=1, n=1)
    rng = np.random.default_rng(g)
    for a in (random_activations(rng, (1, g), 8), np.full((1, g), -128), np.full((1, g), 127)):
        full = build_tables(a, g)[0, 0]
        got = _folded_lookup_all(cfg, stored_tables(full, symmetric))
        assert [e + n for e, n in got] == list(full)
        assert [n for _, n in got] == [(i >> (g - 1)) & symmetric for i in range(1 << g)]


def test_folded_lookup_mutants_are_wrong():
    from gen.golden import build_tables, stored_tables
    cfg = LutConfig(g=4, m=1, n=1)
    full = build_tables(np.array([[3, -7, 11, 20]]), 4)[0, 0]
    for name in MUTANTS:
        with mutant(name) as cls:
            got = _folded_lookup_all(cfg, stored_tables(full, True), cls)
        assert [e + n for e, n in got] != list(full), name


def test_fold_negation_rule():
    """Folded with symmetric tables and c > 1; c = 1 and full tables keep the lookup's own
    negation (the default design's Verilog is unchanged)."""
    from hw.lookup import TableLookup
    from hw.lut_pe import fold_negation
    assert not fold_negation(LutConfig())
    assert fold_negation(LutConfig(tables_per_pe=2))
    assert not fold_negation(LutConfig(tables_per_pe=2, symmetric=False))
    fp = dict(act_format="fp16", tables_per_pe=2, scale_block=4)
    assert fold_negation(LutConfig(table_format="q", **fp))
    assert not fold_negation(LutConfig(table_format="fp", **fp))
    assert "negate" not in TableLookup(LutConfig()).signature.members
    with pytest.raises(TypeError, match=msg("fold_negation must be a bool, not 1")):
        TableLookup(LutConfig(), fold_negation=1)


# -- the dense preset ------------------------------------------------------------------------------

def test_preset_fields_are_options():
    from gen.cli import OPTION_OF
    from gen.config import PRESETS
    for name, fields in PRESETS.items():
        assert set(fields) <= set(OPTION_OF), name
        LutConfig(**fields)                      # a valid design point on its own


def test_preset_and_override(tmp_path, capsys):
    from gen.cli import DesignArgumentParser, add_design_args, config_from_args
    from gen.config import PRESETS
    from gen.emit import main
    dense = LutConfig(**PRESETS["dense"])

    def parse(argv):
        p = add_design_args(DesignArgumentParser(prog="t"))
        return config_from_args(p, p.parse_args(argv))
    assert parse(["--preset", "dense"]) == dense
    # an explicit option wins over the preset, in either order
    for argv in (["--preset", "dense", "--n", "1"], ["--n", "1", "--preset=dense"]):
        assert parse(argv) == dense.replace(n=1)
    assert parse([]) == LutConfig()
    assert main(["--preset", "dense", "--n", "1", "--out", str(tmp_path)]) == 0
    assert (tmp_path / f"{dense.replace(n=1).name}.v").exists()
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["--preset", "sparse", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and not (tmp_path / "o").exists() and "\n" not in err
    assert err.endswith("argument --preset: invalid choice: 'sparse' (choose from 'dense')")


def test_dense_preset_array_matches_golden():
    """The preset's PE (its g and tables per PE, folded negations) in a narrow array, with
    random gaps and stalls, every (format, w) of W2."""
    from gen.config import PRESETS
    cfg = LutConfig(**{**PRESETS["dense"], "n": 2, "k_max": 3 * PRESETS["dense"]["tables_per_pe"]
                       * PRESETS["dense"]["g"]})
    ops = [(f.label, w, k) for f, w in cfg.ops() for k in (cfg.step_k - 1, cfg.k_max)]
    res, expected, _ = run_array(cfg, ops, seed=7, gap=0.2, stall=0.2)
    for i, exp in enumerate(expected):
        assert (res[i] == exp).all(), f"operation {i} {ops[i]}: got {res[i]}, expected {exp}"
