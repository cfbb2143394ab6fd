# amaranth: UnusedElaboratable=no
"""The two-term fused add (``FPUnit.fused_pair``, one alignment shifter) and the scale stage's
lane module built on it (``FpScaleLane``), in amaranth.sim bit-exactly against the golden
``gen.fp.fused_sum``: FP32 pairs (with cancellations and rounding ties), and the lane's
``acc + r2 * ts * ws / 2`` at every distance between the two terms' tops around the frame
width, near-cancellations, subnormal results and special values. Sticky and rounding mutants
must fail.
"""
import random

import pytest
from amaranth import Module

from gen import fp
from gen.config import LutConfig
from gen.fp import FP32, _term, default_window
from gen.fp_lut import scale_product_term
from hw.fp import FPAdder
from hw.fp.common import exp_width
from hw.fp_scale_stage import FpScaleLane, FpScaleStage
from tests.test_fp_hw import NoSticky, Truncating, operand_pairs, simulate

SEED = 1515


class PairAdder(FPAdder):
    """The FP32 adder built on ``fused_pair`` instead of ``fused_sum``."""

    def elaborate(self, platform):
        m = Module()
        ew = exp_width(self.fmt)
        a = self.unpack(m, self.a, self.fmt, ew, "a")
        b = self.unpack(m, self.b, self.fmt, ew, "b")
        self._output(m, self.fused_pair(m, a, b, self.fmt, default_window(self.fmt), ew))
        return m


class NoStickyPair(NoSticky, PairAdder):
    pass


class TruncatingPair(Truncating, PairAdder):
    pass


def test_pair_adder_matches_fused_sum():
    rng = random.Random(SEED)
    pairs = operand_pairs(rng, FP32, 600)
    want = [fp.fp_add(a, b) for a, b in pairs]
    assert simulate(PairAdder(), [{"a": a, "b": b} for a, b in pairs]) == want
    for mutant in (NoStickyPair, TruncatingPair):
        assert simulate(mutant(), [{"a": a, "b": b} for a, b in pairs]) != want


def cfg_of(act):
    return LutConfig(w_bits=2, g=4, m=2, n=4, k_max=256, act_format=act, table_format="q",
                     table_bits=8, scale_block=4)


def golden_step(cfg, acc, r2, ts, ws):
    return fp.fused_sum([scale_product_term(r2, ts, ws, cfg), _term(acc, FP32)], FP32,
                        cfg.scale_window)


def lane_vectors(rng, cfg, n):
    """``(r2, ts, ws, acc)``: random finite operands, the accumulator placed at every top
    distance from the product in -(W+4)..W+4, near the product's negation (cancellation),
    tiny (subnormal results), and special values of every operand."""
    act, lim = cfg.act_fp, (1 << (cfg.result_width - 1)) - 1
    window = cfg.scale_window
    vecs = []
    for i in range(n):
        r2 = rng.randint(-lim, lim)
        ts = rng.randint(1, 254) << 23 | rng.getrandbits(23) | rng.getrandbits(1) << 31
        ws = (rng.randint(1, (1 << act.exp_bits) - 2) << act.man_bits
              | rng.getrandbits(act.man_bits) | rng.getrandbits(1) << (act.width - 1))
        if i % 4 == 3:                             # tiny scales: subnormal results
            ts = rng.getrandbits(23) | rng.getrandbits(1) << 31
        term = scale_product_term(r2, ts, ws, cfg)
        kind = i % 3
        if term[0] != "finite" or kind == 0:       # the accumulator at a chosen top distance
            top = (term[3] + term[4] if term[0] == "finite" else 0)
            e = top + rng.randint(-window - 4, window + 4) - 24 + 150
            acc = max(0, min(254, e)) << 23 | rng.getrandbits(23) | rng.getrandbits(1) << 31
        elif kind == 1:                            # near -product: cancellation
            p = fp.round_pack(term[1], term[2], term[3], FP32)
            acc = ((p ^ FP32.sign_bit) + rng.randint(-2, 2)) % (1 << 32)
        else:
            acc = rng.getrandbits(32)
        vecs.append((r2, ts, ws, acc))
    for _ in range(n // 8):                        # the sticky bit decides a tie
        # ts = 1 + 2^-23, ws = 1.5: the product's 25 significant bits end in "11", an odd
        # LSB and a tie; an opposite-signed accumulator shifted wholly out of the frame turns
        # the tie into "below half" only through the sticky bit
        sign = rng.getrandbits(1)
        ts = rng.randint(60, 190) << 23 | 1
        ws = (rng.randint(4, (1 << act.exp_bits) - 5) << act.man_bits
              | 1 << (act.man_bits - 1) | sign << (act.width - 1))
        r2 = rng.choice([1, -1]) << rng.randint(0, cfg.result_width - 2)
        term = scale_product_term(r2, ts, ws, cfg)
        e = term[3] + term[4] - rng.randint(window - 2, window + 6) - 24 + 150
        acc = (max(1, min(254, e)) << 23 | rng.getrandbits(23)
               | (1 - term[1]) << 31)
        vecs.append((r2, ts, ws, acc))
    sp32, spa = fp.special_values(FP32), fp.special_values(act)
    for _ in range(n // 4):
        vecs.append((rng.choice([0, 1, -1, lim, -lim]), rng.choice(sp32), rng.choice(spa),
                     rng.choice(sp32)))
    return vecs


def simulate_lane(lane, vecs):
    cfg = lane._stage._cfg
    mask = (1 << cfg.result_width) - 1
    outs = []

    async def bench(ctx):
        for r2, ts, ws, acc in vecs:
            for port, v in ((lane.i_r2, r2 & mask), (lane.i_ts, ts), (lane.i_ws, ws),
                            (lane.i_acc, acc), (lane.i_first, 0)):
                ctx.set(port, v)
            outs.append(ctx.get(lane.o_acc))

    from amaranth.sim import Simulator
    sim = Simulator(lane)
    sim.add_testbench(bench)
    sim.run()
    return outs


class TruncatingStage(Truncating, FpScaleStage):
    pass


class NoStickyStage(NoSticky, FpScaleStage):
    pass


@pytest.mark.parametrize("act", ["fp16", "bf16"])
def test_lane_matches_golden(act):
    cfg = cfg_of(act)
    vecs = lane_vectors(random.Random(SEED), cfg, 300)
    want = [golden_step(cfg, acc, r2, ts, ws) for r2, ts, ws, acc in vecs]
    assert simulate_lane(FpScaleLane(FpScaleStage(cfg)), vecs) == want
    if act == "fp16":
        for mutant in (TruncatingStage, NoStickyStage):
            assert simulate_lane(FpScaleLane(mutant(cfg)), vecs) != want


def test_lane_checks_its_stage():
    with pytest.raises(TypeError, match="stage must be an FpScaleStage"):
        FpScaleLane(cfg_of("fp16"))
