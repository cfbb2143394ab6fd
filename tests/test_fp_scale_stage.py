# amaranth: UnusedElaboratable=no
"""The FP scale stage of the ``q`` path (hw/fp_scale_stage.py) in amaranth.sim, bit-exactly
against the golden stage of docs/fp-lut.md section 4 (``gen.fp_lut.scale_stage``); one step
of it is also checked here against one exact rounding of the exact sum (``round_pack`` of an
integer) on finite inputs.
"""
import random

import numpy as np
import pytest

from gen import fp
from gen.config import LutConfig
from gen.fp import FP32, _term
from gen.fp_lut import scale_product_term, scale_stage
from hw.fp_scale_stage import FpScaleStage, lane_columns, scale_layout
from tests.simutil import run, stream_get, stream_put

SEED = 1414


def cfg_of(act="fp16", m=2, n=4, scale_block=4, w_bits=2, table_bits=8, c=1, p=24):
    return LutConfig(w_bits=w_bits, g=4, m=m, n=n, k_max=256, act_format=act,
                     table_format="q", table_bits=table_bits, scale_block=scale_block,
                     tables_per_pe=c, scale_sig_bits=p)


# -- the reference (docs/fp-lut.md, section 4) ---------------------------------------------------

def step(cfg, acc, r2, ts, ws):
    """One block of one output: ``fused(acc + r2 * ts * ws / 2)`` (golden terms)."""
    return fp.fused_sum([scale_product_term(r2, ts, ws, cfg), _term(acc, FP32)], FP32,
                        cfg.scale_window)


def reference(cfg, r2s, tss, wss):
    """``m x n`` FP32 bits after the blocks ``r2s[k]`` (m x n), ``tss[k]`` (m), ``wss[k]``
    (n): the golden ``gen.fp_lut.scale_stage``."""
    r2 = np.stack([np.asarray(x, dtype=np.int64) for x in r2s], axis=-1)     # m x n x blocks
    ts = np.stack([np.asarray(x, dtype=np.int64) for x in tss], axis=-1)     # m x blocks
    ws = np.stack([np.asarray(x, dtype=np.int64) for x in wss], axis=-1)     # n x blocks
    return scale_stage(r2, ts, ws, cfg).astype(np.int64).tolist()


def exact_step(acc, r2, ts, ws, act):
    """RNE of the exact ``acc + r2 * ts * ws / 2`` (finite, non-zero inputs)."""
    _, sa, ma, ea = fp.decode(acc, FP32)
    _, st, mt, et = fp.decode(ts, FP32)
    _, sw, mw, ew = fp.decode(ws, act)
    ep = et + ew - 1
    lo = min(ea, ep)
    total = (-1) ** sa * (ma << (ea - lo)) + (-1) ** (st ^ sw) * r2 * mt * mw * (1 << (ep - lo))
    return fp.round_pack(int(total < 0), abs(total), lo, FP32) if total else 0


# -- random operands ------------------------------------------------------------------------------

def f32_bits(x):
    return np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.int64)


def act_bits(x, act):
    x = np.asarray(x, dtype=np.float32)
    if act == fp.BF16:
        return (x.view(np.uint32) >> 16).astype(np.int64)
    return x.astype(np.float16).view(np.uint16).astype(np.int64)


def random_block(rng, cfg, specials=0.0, wide=False):
    """One block: ``r2`` (m x n, within ``result_width``), ``ts`` (m), ``ws`` (n)."""
    lim = (1 << (cfg.result_width - 1)) - 1
    r2 = rng.integers(-lim, lim + 1, (cfg.m, cfg.n))
    r2[rng.random((cfg.m, cfg.n)) < 0.1] = 0
    e = rng.integers(-40, 40, cfg.m) if wide else rng.integers(-12, -4, cfg.m)
    ts = f32_bits(rng.random(cfg.m) * 2.0 ** e)
    ws = act_bits(rng.standard_normal(cfg.n) * (8.0 if wide else 0.05), cfg.act_fp)
    if specials:
        for arr, fmt in ((ts, FP32), (ws, cfg.act_fp)):
            pick = rng.random(arr.shape) < specials
            arr[pick] = rng.choice(fp.special_values(fmt), int(pick.sum()))
    return r2, ts, ws


# -- amaranth.sim of the stage -------------------------------------------------------------

def simulate(stage, ops, rng=None, gap=0.0, stall=0.0):
    """Drive ``ops`` (each a list of blocks ``(r2, ts, ws)``) into the stage; its results."""
    cfg = stage._cfg
    mask = (1 << cfg.result_width) - 1
    rows, scales, flags = [], [], []
    lay = scale_layout(cfg)
    for blocks in ops:
        for k, (r2, ts, ws) in enumerate(blocks):
            rows += [sum((int(v) & mask) << (c * cfg.result_width) for c, v in enumerate(row))
                     for row in r2]
            scales.append(lay.const({"ts": [int(x) for x in ts],
                                     "ws": [int(x) for x in ws]}).as_value().value)
            flags.append(int(k == 0) | int(k == len(blocks) - 1) << 1)
    got = []
    r = [random.Random(rng.random()) if rng else None for _ in range(4)]

    async def put_rows(ctx):
        await stream_put(ctx, stage.i_row, rows, r[0], gap)

    async def put_scales(ctx):
        await stream_put(ctx, stage.i_scale, scales, r[1], gap)

    async def put_flags(ctx):
        await stream_put(ctx, stage.i_block, flags, r[2], gap)

    async def get(ctx):
        got.extend(await stream_get(ctx, stage.o_result, cfg.m * len(ops), r[3], stall))

    run(stage, [put_rows, put_scales, put_flags, get])
    return [fp.unpack_fp_results(cfg.n, got[i * cfg.m:(i + 1) * cfg.m]).tolist()
            for i in range(len(ops))]


def check(stage, ops, **kw):
    cfg = stage._cfg
    got = simulate(stage, ops, **kw)
    for i, blocks in enumerate(ops):
        want = reference(cfg, *zip(*blocks))
        assert got[i] == want, f"operation {i}: {got[i]} != {want}"


# -- tests ---------------------------------------------------------------------------------------

def test_reference_is_one_exact_rounding():
    """On finite operands each accumulation step equals RNE of the exact sum (the frame holds
    the whole product, so the sticky bit loses nothing that matters)."""
    rng = np.random.default_rng(SEED)
    for act in ("fp16", "bf16"):
        cfg = cfg_of(act, n=64, w_bits=4, table_bits=12)
        checked = 0
        for _ in range(10):
            r2, ts, ws = random_block(rng, cfg, wide=True)
            accs = f32_bits(rng.standard_normal(cfg.n) * 2.0 ** rng.integers(-60, 60, cfg.n))
            for c in range(cfg.n):
                if r2[0, c] == 0 or fp.decode(int(ws[c]), cfg.act_fp)[0] != "finite":
                    continue
                want = exact_step(int(accs[c]), int(r2[0, c]), int(ts[0]), int(ws[c]),
                                  cfg.act_fp)
                assert step(cfg, int(accs[c]), int(r2[0, c]), int(ts[0]), int(ws[c])) == want
                checked += 1
        assert checked > 500


def test_lanes_cover_every_column_once():
    for cfg in (cfg_of(n=5, scale_block=8), cfg_of(m=1, n=3, scale_block=1), cfg_of(n=64)):
        cols = sorted(c for lane in range(cfg.scale_lanes) for c in lane_columns(cfg, lane))
        assert cols == list(range(cfg.n))
        assert cfg.m * cfg.row_cycles <= cfg.scale_block // cfg.tables_per_pe


@pytest.mark.parametrize("act", ["fp16", "bf16"])
def test_random_blocks(act):
    """Operations of 1..3 blocks, back to back, with random input gaps and output stalls."""
    cfg = cfg_of(act, m=2, n=5, scale_block=4)      # 2 lanes x 2 cycles, one lane short
    rng = np.random.default_rng(SEED)
    ops = [[random_block(rng, cfg, wide=i % 2 == 1) for _ in range(1 + i % 3)]
           for i in range(5)]
    check(FpScaleStage(cfg), ops, rng=random.Random(SEED), gap=0.3, stall=0.3)


def test_specials():
    """NaN and Inf scales, zero scales and r2 = 0, subnormals; ops of one block each."""
    cfg = cfg_of("bf16", m=2, n=4, scale_block=2)   # 4 lanes x 1 cycle
    rng = np.random.default_rng(SEED + 1)
    ops = [[random_block(rng, cfg, specials=0.3, wide=True) for _ in range(2)]
           for _ in range(4)]
    check(FpScaleStage(cfg), ops)


def test_one_row_one_cycle():
    """``m = 1``, ``scale_block = 1``: every block one row of one cycle."""
    cfg = cfg_of("fp16", m=1, n=3, scale_block=1)
    rng = np.random.default_rng(SEED + 2)
    ops = [[random_block(rng, cfg) for _ in range(k)] for k in (1, 3, 2)]
    check(FpScaleStage(cfg), ops, rng=random.Random(SEED + 2), gap=0.2, stall=0.5)


@pytest.mark.parametrize("act", ["fp16", "bf16"])
def test_rounded_table_scales(act):
    """``scale_sig_bits = 11``: full-precision random ``ts`` (and specials) go in; the stage
    rounds each to 11 bits as the golden does, and multiplies the narrower product."""
    cfg = cfg_of(act, m=2, n=5, scale_block=4, p=11)
    assert cfg.scale_product_width == cfg.result_width + 11 + cfg.act_fp.sig_bits
    rng = np.random.default_rng(SEED + 5)
    ops = [[random_block(rng, cfg, specials=0.15 * (i % 2), wide=i % 2 == 1)
            for _ in range(1 + i % 3)] for i in range(5)]
    check(FpScaleStage(cfg), ops, rng=random.Random(SEED), gap=0.2, stall=0.2)


class NoScaleRounding(FpScaleStage):
    """Mutant: the table scale is truncated to ``scale_sig_bits`` instead of rounded."""

    def _round_scale(self, m, ts):
        return ts


def test_no_scale_rounding_fails():
    cfg = cfg_of("fp16", m=2, n=4, scale_block=2, p=11)
    rng = np.random.default_rng(SEED + 6)
    ops = [[random_block(rng, cfg) for _ in range(2)] for _ in range(2)]
    with pytest.raises(AssertionError, match="operation"):
        check(NoScaleRounding(cfg), ops)


# -- mutants: each must make the comparison fail ---------------------------------------------------

class ExponentOffByOne(FpScaleStage):
    def _scale_exponent(self, ts_e_lsb, ws_e_lsb):
        return ts_e_lsb + ws_e_lsb


class NoFirstBlockClear(FpScaleStage):
    def _start(self, first, acc):
        return acc


class Truncating(FpScaleStage):
    def _round_up(self, lsb, round_bit, sticky):
        return 0


@pytest.mark.parametrize("mutant", [ExponentOffByOne, NoFirstBlockClear, Truncating])
def test_mutants_fail(mutant):
    cfg = cfg_of("fp16", m=2, n=4, scale_block=2)
    rng = np.random.default_rng(SEED + 3)
    ops = [[random_block(rng, cfg) for _ in range(2)] for _ in range(2)]
    with pytest.raises(AssertionError, match="operation"):
        check(mutant(cfg), ops)
