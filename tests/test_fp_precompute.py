# amaranth: UnusedElaboratable=no
"""The FP hardware precompute (hw/fp_precompute.py) in amaranth.sim, bit for bit against the
golden ``gen.fp_lut.fp_tables`` / ``quantize_tables``: the scale divider and the entry
quantizer on random and corner-case blocks (ties, largest entries, zero blocks, subnormals,
specials), the whole unit on activation streams (FP16, BF16, specials, gaps and stalls), and
rounding mutants that must fail."""
import random
from fractions import Fraction

import numpy as np
import pytest
from amaranth import ClockDomain, Module, Signal
from amaranth.sim import Simulator

from gen.config import LutConfig
from gen.config_fp import quantize_stage_cuts
from gen.fp import FP32
from gen.fp_lut import fp_tables, pack_fp_acts, pack_q_tables, quantize_tables
from hw.fp_precompute import EntryQuantizer, FpTablePrecompute, ScaleDivider

from .simutil import stream_get, stream_put

SEED = 4242


def q_cfg(t=8, g=4, b=2, act="fp16", m=2, symmetric=True):
    return LutConfig(act_format=act, table_format="q", table_bits=t, g=g, m=m, n=2,
                     k_max=256, scale_block=b, symmetric=symmetric)


def f32(x):
    return np.asarray(x, dtype=np.float32).view(np.uint32)


# -- blocks of FP32 table entries, and the golden's q and s for them ---------------------------

def corner_blocks(rng, cfg):
    """FP32 blocks (``scale_block * 2**g`` entries each) that reach every decision."""
    size = cfg.scale_block << cfg.g
    qmax = cfg.table_max
    blocks = []
    for e in (-3, 0, 7):                       # exact scale 2**e: ties at (j + 1/2) 2**e
        j = rng.integers(0, qmax, size) + 0.5
        j[0] = qmax                           # amax = Qmax 2**e
        j[1:4] = (qmax - 0.5, qmax - 1.5, 0.5)
        blocks.append(j * rng.choice([-1.0, 1.0], size) * 2.0 ** e)
    blocks.append(np.zeros(size))                                   # zero block
    one = np.zeros(size)
    one[5] = -3.0                                                   # a single entry: -Qmax
    blocks.append(one)
    blocks.append(rng.standard_normal(size) * 2.0 ** rng.integers(-30, 30, size))  # wide range
    for top in (-126, -140, -148):              # subnormal amax: scale rounds coarsely or to 0
        blocks.append(rng.integers(-200, 201, size) * 2.0 ** (top - 8))
    big = rng.standard_normal(size) * 1e37
    big[0] = 3.4e38                                                 # near FP32's largest
    blocks.append(big)
    for special in (np.inf, -np.inf, np.nan):
        blk = rng.standard_normal(size)
        blk[7] = special
        blocks.append(blk)
    blocks += [rng.standard_normal(size) * 2.0 ** rng.integers(-8, 8) for _ in range(4)]
    return [f32(b) for b in blocks]


def golden_block(cfg, bits):
    """``(q, s)`` of one block by ``gen.fp_lut.quantize_tables``."""
    tables = np.asarray(bits, dtype=np.uint32).reshape(1, cfg.scale_block, 1 << cfg.g)
    q, s = quantize_tables(tables, cfg)
    return q.reshape(-1), int(s[0, 0])


def exact_q(t_bits, s_bits, qmax):
    """``clip(RNE(T / s))`` with Fractions (0 for a zero, NaN or Inf scale)."""
    s = np.uint32(s_bits).view(np.float32)
    if not np.isfinite(s) or s == 0:
        return 0
    val = Fraction(float(np.uint32(t_bits).view(np.float32))) / Fraction(float(s))
    return max(-qmax, min(qmax, round(val)))       # round(): ties to even


def test_golden_blocks_are_the_exact_quotients():
    """The golden q of the corner blocks is the exact rounded quotient (so the hardware below
    is checked against exact arithmetic too)."""
    cfg = q_cfg()
    for bits in corner_blocks(np.random.default_rng(SEED), cfg):
        q, s = golden_block(cfg, bits)
        assert q.tolist() == [exact_q(t, s, cfg.table_max) for t in bits]


# -- the scale divider ---------------------------------------------------------------------------

def run_divider(amaxes, t, steps, cls=ScaleDivider):
    dut = cls(t, steps)
    out = []

    async def tb(ctx):
        for a in amaxes:
            ctx.set(dut.amax, int(a))
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            await ctx.tick().until(dut.done)
            out.append(ctx.get(dut.out))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return out


def block_amax(bits):
    vals = np.abs(np.asarray(bits, dtype=np.uint32).view(np.float32))
    if not np.all(np.isfinite(vals)):
        return FP32.qnan
    return int(f32(vals.max()))


@pytest.mark.parametrize("t,steps", [(8, 1), (8, 9), pytest.param(16, 41, marks=pytest.mark.slow),
                                     (4, 3)])
def test_scale_divider_matches_golden(t, steps):
    cfg = q_cfg(t=t)
    rng = np.random.default_rng([SEED, t, steps])
    blocks = corner_blocks(rng, cfg)[:8 if steps == 1 else None]
    want = [golden_block(cfg, b)[1] for b in blocks]
    assert run_divider([block_amax(b) for b in blocks], t, steps) == want


class _TruncatingDivider(ScaleDivider):
    def _round_up(self, lsb, round_bit, sticky):
        return 0


def test_truncating_scale_divider_fails():
    cfg = q_cfg()
    blocks = corner_blocks(np.random.default_rng(SEED + 1), cfg)
    want = [golden_block(cfg, b)[1] for b in blocks]
    assert run_divider([block_amax(b) for b in blocks], 8, 9, _TruncatingDivider) != want


# -- the entry quantizer -------------------------------------------------------------------------

def run_quantizer(pairs, t, lanes=8, cls=EntryQuantizer, stages=1, hold=0.0):
    """``q`` of ``(entries, scale)`` pairs (``lanes`` entries each). ``stages > 1``: one pair
    per enabled cycle, ``en`` low with probability ``hold`` (other inputs then, and ``q`` must
    not change)."""
    dut = cls(t, lanes, stages)
    out = []
    pace = random.Random(SEED)

    def put(ctx, entries, s):
        ctx.set(dut.entries, sum(int(x) << (32 * i) for i, x in enumerate(entries)))
        ctx.set(dut.scale, int(s))

    def take(v):
        for i in range(lanes):
            x = v >> (t * i) & ((1 << t) - 1)
            out.append(x - (1 << t) if x >> (t - 1) else x)

    async def comb(ctx):
        for entries, s in pairs:
            put(ctx, entries, s)
            take(ctx.get(dut.q))

    async def clocked(ctx):
        feed = list(pairs) + [pairs[0]] * (stages - 1)
        done = 0                                      # pairs gone into the pipeline
        while len(out) < lanes * len(pairs):
            en = pace.random() >= hold
            put(ctx, *(feed[done] if en else pace.choice(pairs)))
            ctx.set(dut.en, en)
            before = ctx.get(dut.q)
            await ctx.tick()
            if not en:
                assert ctx.get(dut.q) == before
                continue
            done += 1
            if done >= stages - 1:             # q: the pair of stages - 1 edges earlier
                take(ctx.get(dut.q))

    sim = Simulator(dut)
    if stages > 1:
        sim.add_clock(1e-8)
    sim.add_testbench(clocked if stages > 1 else comb)
    sim.run()
    return out


def quantizer_cases(cfg, rng, lanes=8, blocks=None):
    pairs, want = [], []
    for bits in corner_blocks(rng, cfg)[:blocks]:
        q, s = golden_block(cfg, bits)
        pairs += [(bits[i:i + lanes], s) for i in range(0, len(bits), lanes)]
        want += q.tolist()
    return pairs, want


@pytest.mark.parametrize("t", [8, pytest.param(16, marks=pytest.mark.slow), 4])
def test_entry_quantizer_matches_golden(t):
    cfg = q_cfg(t=t, b=1, m=1)
    pairs, want = quantizer_cases(cfg, np.random.default_rng([SEED, t]))
    assert run_quantizer(pairs, t) == want


@pytest.mark.parametrize("t,stages", [(8, None), pytest.param(16, None, marks=pytest.mark.slow),
                                      (4, None), (4, 6)])
def test_pipelined_entry_quantizer_matches_golden(t, stages):
    """The quantizer as the precompute builds it (``precompute_quantize_stages`` cycles, the
    divider cut between its steps; at t = 4 also a register in front of the first step and
    one after the last), with ``en`` low at random: the same ``q``."""
    cfg = q_cfg(t=t, b=1, m=1)
    stages = stages or cfg.precompute_quantize_stages
    assert stages > 1
    pairs, want = quantizer_cases(cfg, np.random.default_rng([SEED, t]))
    assert run_quantizer(pairs, t, stages=stages, hold=0.3) == want


def test_quantize_stage_cuts():
    """Every register of the pipelined quantizer sits between two steps (or in front of the
    first, after the last), in order, none twice, for every ``t`` and stage count."""
    for t in range(4, 17):
        assert quantize_stage_cuts(t, 1) == []
        for stages in range(2, t + 3):
            cuts = quantize_stage_cuts(t, stages)
            assert len(cuts) == stages - 1 and cuts == sorted(set(cuts))
            assert 0 <= cuts[0] and cuts[-1] <= t + 2
    cuts = quantize_stage_cuts(4, 6)      # the extreme case run above
    assert cuts[0] == 0 and cuts[-1] == 4 + 2


class _HalfUpQuantizer(EntryQuantizer):
    def _q_round_up(self, lsb, round_bit, sticky):
        return round_bit


def test_round_half_up_quantizer_fails():
    cfg = q_cfg(b=1, m=1)
    pairs, want = quantizer_cases(cfg, np.random.default_rng(SEED), blocks=3)  # the tie blocks
    assert run_quantizer(pairs, 8) == want
    got = run_quantizer(pairs, 8, cls=_HalfUpQuantizer)
    assert sum(a != b for a, b in zip(got, want)) > 10


# -- the whole unit on activation streams --------------------------------------------------------

def random_acts(rng, cfg, k, specials=0.0, tiny=False):
    x = rng.standard_normal((cfg.m, k)) * (2.0 ** -20 if tiny else 1.0)
    x *= 2.0 ** rng.integers(-4, 5, x.shape)
    if cfg.act_format == "bf16":
        bits = (x.astype(np.float32).view(np.uint32) >> 16).astype(np.int64)
        if tiny:
            bits[:, ::3] = rng.integers(1, 0x80, bits[:, ::3].shape)   # BF16 subnormals
    else:
        bits = x.astype(np.float16).view(np.uint16).astype(np.int64)
        if tiny:
            bits[:, ::3] = rng.integers(1, 0x400, bits[:, ::3].shape)  # FP16 subnormals
    if specials:
        inf = 0x7F80 if cfg.act_format == "bf16" else 0x7C00
        pick = rng.random(bits.shape) < specials
        bits[pick] = rng.choice([inf, inf | 0x8000, inf | 1], int(pick.sum()))
    return bits


def run_precompute(cfg, acts, seed=0, gap=0.0, dut=None):
    """The unit on ``acts`` (``m x K``): (table beats, scale beats, golden tables, golden
    scales)."""
    q, s = quantize_tables(fp_tables(acts, cfg), cfg)
    tables = pack_q_tables(cfg, q)
    scales = [sum(int(s[r, k]) << (32 * r) for r in range(cfg.m)) for k in range(s.shape[1])]
    dut = dut or FpTablePrecompute(cfg)
    pace = random.Random(seed) if gap else None
    got = {}

    async def put(ctx):
        await stream_put(ctx, dut.i_act, pack_fp_acts(cfg, acts), pace, gap)

    async def get_tables(ctx):
        got["tables"] = await stream_get(ctx, dut.o_table, len(tables), pace, gap)

    async def get_scales(ctx):
        got["scales"] = await stream_get(ctx, dut.o_tscale, len(scales), pace, gap)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for tb in (put, get_tables, get_scales):
        sim.add_testbench(tb)
    sim.run()
    return got["tables"], got["scales"], tables, scales


@pytest.mark.parametrize("act,symmetric,gap", [("fp16", True, 0.0), ("bf16", False, 0.3)])
def test_precompute_stream_matches_golden(act, symmetric, gap):
    """g = 2 keeps amaranth.sim quick; every block decision is the same circuit as at g = 4
    (g = 4: ``test_precompute_g4`` under ``slow``, and the cocotb engine run)."""
    cfg = q_cfg(g=2, b=2, act=act, symmetric=symmetric)
    rng = np.random.default_rng([SEED, len(act), gap > 0])
    acts = np.concatenate([random_acts(rng, cfg, 4), random_acts(rng, cfg, 8, tiny=True),
                           random_acts(rng, cfg, 4, specials=0.2), np.zeros((cfg.m, 4), int)],
                          axis=1)
    got_t, got_s, want_t, want_s = run_precompute(cfg, acts, seed=SEED, gap=gap)
    assert got_s == want_s and got_t == want_t


@pytest.mark.slow
def test_precompute_g4():
    """g = 4, two scale blocks: the adder tree of the 8 stored sums and its golden order."""
    cfg = q_cfg(g=4, b=2, m=2)
    acts = random_acts(np.random.default_rng(SEED), cfg, 16)
    got_t, got_s, want_t, want_s = run_precompute(cfg, acts)
    assert got_s == want_s and got_t == want_t


# -- timing: full rate, latency, reset -----------------------------------------------------------

def run_full_rate(cfg, acts):
    """The unit with ``i_act`` always valid and both outputs always ready: (the cycles whose
    edge takes an ``i_act`` beat, the cycles whose edge makes an ``o_table`` beat valid, the
    table beats, the scale beats), and the golden tables and scales."""
    beats = pack_fp_acts(cfg, acts)
    q, s = quantize_tables(fp_tables(acts, cfg), cfg)
    want_t = pack_q_tables(cfg, q)
    want_s = [sum(int(s[r, k]) << (32 * r) for r in range(cfg.m)) for k in range(s.shape[1])]
    dut = FpTablePrecompute(cfg)
    took, made, tables, scales = [], [], [], []

    async def tb(ctx):
        ctx.set(dut.o_table.ready, 1)
        ctx.set(dut.o_tscale.ready, 1)
        cycle = 0
        while len(tables) < len(want_t):
            ctx.set(dut.i_act.valid, len(took) < len(beats))
            ctx.set(dut.i_act.payload, beats[min(len(took), len(beats) - 1)])
            _, _, took_now, t_valid, t_beat, s_valid, s_beat = await ctx.tick().sample(
                dut.i_act.ready & dut.i_act.valid, dut.o_table.valid, dut.o_table.payload,
                dut.o_tscale.valid, dut.o_tscale.payload)
            if took_now:
                took.append(cycle)
            if t_valid:            # valid in the cycle after ``cycle - 1``'s edge
                made.append(cycle - 1)
                tables.append(t_beat)
            if s_valid:
                scales.append(s_beat)
            cycle += 1
            assert cycle < 20 * len(beats) * cfg.m + 100, "the unit stopped"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return took, made, tables, scales, want_t, want_s


@pytest.mark.parametrize("g,b,m", [(2, 2, 2), (3, 3, 3), (2, 4, 1),
                                   pytest.param(4, 16, 2, marks=pytest.mark.slow)])
def test_precompute_full_rate(g, b, m):
    """A table beat every ``m`` cycles at full input rate, across scale-block boundaries too
    (the next block's activations, amax pipeline and division overlap the current block's
    rows; its first rows wait in the table-sum pipeline for its scales); the first beat
    ``precompute_latency`` cycles after its block's last activation; every beat bit-exact.
    At ``m = 1`` the division has no slack: at most one missing beat per block. ``g = 4``,
    ``b = 16`` (the default point's unit) under ``slow``."""
    check_full_rate(q_cfg(g=g, b=b, m=m), [SEED, g, b, m])


def check_full_rate(cfg, seed):
    """Four scale blocks at full input rate: every beat bit-exact, the first one
    ``precompute_latency`` cycles after its block's last activation, then a beat every
    ``precompute_beat_cycles``; at one cycle per beat the division has no slack: within a
    block a beat every cycle, at most one missing beat per block boundary."""
    b, beat = cfg.scale_block, cfg.precompute_beat_cycles
    acts = random_acts(np.random.default_rng(seed), cfg, 4 * b * cfg.g)
    took, made, tables, scales, want_t, want_s = run_full_rate(cfg, acts)
    assert tables == want_t and scales == want_s
    assert made[0] - took[b - 1] == cfg.precompute_latency
    gaps = np.diff(made).tolist()
    if beat > 1:
        assert gaps == [beat] * (len(made) - 1)
    else:
        assert all(gap == 1 if (i + 1) % b else gap <= 2 for i, gap in enumerate(gaps))


class _UnresetFlags(FpTablePrecompute):
    """Mutant: the pipelines' valid bits keep their value through reset."""

    def _flag(self, name):
        return Signal(name=name, reset_less=True)


class _EarlyRows(FpTablePrecompute):
    """Mutant: the rows' marks leave the quantizer one cycle before their entries."""

    def _quantize_delay(self):
        return super()._quantize_delay() - 1


def run_reset(cfg, before, after, cls=FpTablePrecompute):
    """``before`` streamed in until the pipelines are full (the first table beat held back),
    one cycle of reset, then ``after``: its (table beats, scale beats, golden tables, golden
    scales)."""
    q, s = quantize_tables(fp_tables(after, cfg), cfg)
    want_t = pack_q_tables(cfg, q)
    want_s = [sum(int(s[r, k]) << (32 * r) for r in range(cfg.m)) for k in range(s.shape[1])]
    dut = cls(cfg)
    top = Module()
    top.domains.sync = sync = ClockDomain()
    top.submodules.dut = dut
    state = {"reset": False}
    got = {}

    async def first(ctx):
        beats = pack_fp_acts(cfg, before)
        ctx.set(dut.o_tscale.ready, 1)
        seen = 0
        for beat in beats:
            ctx.set(dut.i_act.valid, 1)
            ctx.set(dut.i_act.payload, beat)
            _, _, valid = await ctx.tick().sample(dut.o_table.valid)
            seen += valid
            if seen > cfg.m:          # the pipelines hold rows, more activations are in
                break
        ctx.set(dut.i_act.valid, 0)
        ctx.set(dut.o_tscale.ready, 0)
        ctx.set(sync.rst, 1)
        await ctx.tick()
        ctx.set(sync.rst, 0)
        state["reset"] = True

    async def wait(ctx):
        while not state["reset"]:
            await ctx.tick()

    async def put(ctx):
        await wait(ctx)
        await stream_put(ctx, dut.i_act, pack_fp_acts(cfg, after))

    async def get_tables(ctx):
        await wait(ctx)
        got["t"] = await stream_get(ctx, dut.o_table, len(want_t))

    async def get_scales(ctx):
        await wait(ctx)
        got["s"] = await stream_get(ctx, dut.o_tscale, len(want_s))

    sim = Simulator(top)
    sim.add_clock(1e-8)
    for tb in (first, put, get_tables, get_scales):
        sim.add_testbench(tb)
    sim.run()
    return got["t"], got["s"], want_t, want_s


def test_precompute_reset_and_mutants():
    """Reset with every pipeline holding rows (and the next block's amax in flight) clears
    them: the next stream comes out exactly; a mutant whose valid bits survive reset fails,
    and so does one whose row marks run one cycle ahead of the quantizer's entries."""
    cfg = q_cfg(g=2, b=2, m=2)
    rng = np.random.default_rng(SEED + 7)
    before, after = random_acts(rng, cfg, 16), random_acts(rng, cfg, 8)
    got_t, got_s, want_t, want_s = run_reset(cfg, before, after)
    assert got_t == want_t and got_s == want_s
    got_t, got_s, _, _ = run_reset(cfg, before, after, _UnresetFlags)
    assert (got_t, got_s) != (want_t, want_s)
    got_t, _, want_t, _ = run_precompute(cfg, after, dut=_EarlyRows(cfg))
    assert got_t != want_t


def test_precompute_rejects_other_configs():
    with pytest.raises(ValueError, match="table_format must be 'q' for the FP precompute"):
        FpTablePrecompute(LutConfig())
    with pytest.raises(ValueError, match="tables_per_pe must be 1 for the FP precompute"):
        FpTablePrecompute(q_cfg(b=4).replace(tables_per_pe=2))
    with pytest.raises(ValueError, match="steps must be in 1..64, not 0"):
        ScaleDivider(8, 0)
    with pytest.raises(ValueError, match="table_bits must be in 4..16, not 3"):
        EntryQuantizer(3)


@pytest.mark.slow
def test_emit_cli_precompute_engine(tmp_path):
    """``--precompute`` with ``--table-format q --top engine``: ``i_act`` replaces ``i_table``
    and ``i_tscale`` (manifest ports and layouts). Slow (the engine's Verilog); the default
    suite emits the same engine through ``gen.emit.emit`` in tests/test_fp_engine_sim.py."""
    from gen.emit import main
    out = tmp_path / "ok"
    assert main(["--act", "bf16", "--table-format", "q", "--top", "engine", "--precompute",
                 "--group", "2", "--scale-block", "2", "--m", "2", "--n", "2", "--k-max", "64",
                 "--out", str(out)]) == 0
    cfg = q_cfg(g=2, b=2, act="bf16").replace(k_max=64, precompute=True)
    name = cfg.name.replace("lut_array", "lut_engine", 1)
    assert name.endswith("_pre")
    manifest = __import__("json").loads((out / f"{name}.json").read_text())
    assert LutConfig.from_dict(manifest) == cfg
    ports = {p["name"]: (p["direction"], p["width"]) for p in manifest["ports"]}
    assert ports["i_act__payload"] == ("input", cfg.act_width) == ("input", 2 * 2 * 16)
    assert "i_table__payload" not in ports and "i_tscale__payload" not in ports
    assert manifest["layouts"]["i_act__payload"]["element"]["length"] == cfg.g


@pytest.mark.parametrize("args,message", [
    (["--act", "fp16", "--table-format", "q", "--precompute"],
     "--precompute needs --top engine"),
    (["--act", "fp16", "--table-format", "fp", "--precompute"],
     "precompute must be False with table_format 'fp'"),
    (["--act", "fp16", "--table-format", "q", "--top", "engine", "--precompute",
      "--tables-per-pe", "2", "--scale-block", "4"],
     "--tables-per-pe: the precompute engine takes one table per PE, not 2"),
])
def test_emit_cli_bad_precompute(args, message, tmp_path, capsys):
    from gen.emit import main
    with pytest.raises(SystemExit) as exc:
        main([*args, "--out", str(tmp_path / "bad")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "bad").exists()
