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
from amaranth.sim import Simulator

from gen.config import LutConfig
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

def run_quantizer(pairs, t, lanes=8, cls=EntryQuantizer):
    """``q`` of ``(entries, scale)`` pairs (``lanes`` entries each)."""
    dut = cls(t, lanes)
    out = []

    async def tb(ctx):
        for entries, s in pairs:
            ctx.set(dut.entries, sum(int(x) << (32 * i) for i, x in enumerate(entries)))
            ctx.set(dut.scale, int(s))
            v = ctx.get(dut.q)
            for i in range(lanes):
                x = v >> (t * i) & ((1 << t) - 1)
                out.append(x - (1 << t) if x >> (t - 1) else x)

    sim = Simulator(dut)
    sim.add_testbench(tb)
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
