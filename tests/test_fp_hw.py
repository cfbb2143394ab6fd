# amaranth: UnusedElaboratable=no
"""amaranth.sim of the FP units (hw/fp) bit-exactly against the golden model (gen.fp)."""
import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from gen import fp
from gen.fp import BF16, FP16, FP32
from hw.fp import FPAdder, FPDotProduct, FPIntMultiplier, FPMultiplier

SEED = 1313
N = 1000            # random vectors per unit (plus every special class)
N_DOT = 240         # per dot product (amaranth.sim runs ~40 of them per second)


def simulate(dut, vectors):
    """``out`` of the combinational ``dut`` for each dict of input values."""
    outs = []

    async def bench(ctx):
        for vec in vectors:
            for name, value in vec.items():
                ctx.set(getattr(dut, name), value)
            outs.append(ctx.get(dut.out))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    return outs


def operand_pairs(rng, fmt, n):
    sp = fp.special_values(fmt)
    pairs = [(a, b) for a in sp for b in sp]
    pairs += [(rng.getrandbits(fmt.width), rng.getrandbits(fmt.width)) for _ in range(n)]
    for _ in range(n // 2):                     # near exponents: cancellation and rounding ties
        a = rng.getrandbits(fmt.width)
        b = (a ^ rng.choice([fmt.sign_bit, 0])) + rng.randint(-3, 3) * rng.choice([1, 1 << 12])
        pairs.append((a, b % (1 << fmt.width)))
    return pairs


class Truncating:
    """Mutant mixin: truncation instead of round-to-nearest-even."""
    def _round_up(self, lsb, round_bit, sticky):
        return 0


class NoSticky:
    """Mutant mixin: the bits shifted out of the alignment frame are dropped."""
    def _jam(self, aligned, lost):
        return aligned


class TruncatingMultiplier(Truncating, FPMultiplier):
    pass


class TruncatingAdder(Truncating, FPAdder):
    pass


class NoStickyAdder(NoSticky, FPAdder):
    pass


class TruncatingDot(Truncating, FPDotProduct):
    pass


class NoStickyDot(NoSticky, FPDotProduct):
    pass


@pytest.mark.parametrize("fmt_in", [FP16, BF16], ids=["fp16", "bf16"])
def test_multiplier(fmt_in):
    rng = random.Random(SEED)
    pairs = operand_pairs(rng, fmt_in, N)
    if fmt_in == BF16:                          # products near fp32's underflow and overflow
        for _ in range(300):
            e = rng.choice([rng.randint(1, 40), rng.randint(190, 254)])
            pairs.append(((e << 7) | rng.getrandbits(8) << 15 & 0x8000 | rng.getrandbits(7),
                          (e << 7) | rng.getrandbits(7)))
    want = fp.fp_mul_vec(*np.array(pairs, dtype=np.uint32).T, fmt_in).tolist()
    assert want == [fp.fp_mul(a, b, fmt_in) for a, b in pairs]
    vectors = [dict(a=a, b=b) for a, b in pairs]
    assert simulate(FPMultiplier(fmt_in.name), vectors) == want
    if fmt_in == BF16:      # fp16 x fp16 never rounds, so truncation is no fault there
        assert simulate(TruncatingMultiplier(fmt_in.name), vectors) != want


def test_adder():
    rng = random.Random(SEED + 1)
    pairs = operand_pairs(rng, FP32, N // 2)
    want = fp.fp_add_vec(*np.array(pairs, dtype=np.uint32).T).tolist()
    vectors = [dict(a=a, b=b) for a, b in pairs]
    assert simulate(FPAdder(), vectors) == want
    assert simulate(TruncatingAdder(), vectors) != want
    assert simulate(NoStickyAdder(), vectors) != want


def dot_vectors(rng, fmt_in, g, n):
    sp_in, sp_acc = fp.special_values(fmt_in), fp.special_values(FP32)
    np_rng = np.random.default_rng(rng.getrandbits(32))
    vecs = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            a = [rng.getrandbits(fmt_in.width) for _ in range(g)]
            b = [rng.getrandbits(fmt_in.width) for _ in range(g)]
            acc = rng.getrandbits(32)
        elif kind == 1:                          # Gaussian activations and weights
            x = np_rng.standard_normal(2 * g).astype(np.float32)
            bits = (x.view(np.uint32) >> 16 if fmt_in == BF16
                    else x.astype(np.float16).view(np.uint16)).tolist()
            a, b = bits[:g], bits[g:]
            acc = int(np.float32(np_rng.standard_normal() * 8).view(np.uint32))
        elif kind == 2:
            a = [rng.choice(sp_in) for _ in range(g)]
            b = [rng.choice(sp_in) for _ in range(g)]
            acc = rng.choice(sp_acc)
        else:                                    # products cancelling in pairs
            a = [rng.getrandbits(fmt_in.width) & ~fmt_in.inf for _ in range(g)]
            b = [rng.getrandbits(fmt_in.width) & ~fmt_in.inf for _ in range(g)]
            for j in range(0, g - 1, 2):
                a[j + 1], b[j + 1] = a[j] ^ fmt_in.sign_bit, b[j]
            acc = rng.choice([0, FP32.sign_bit, rng.getrandbits(32)])
        vecs.append((a, b, acc))
    return vecs


def pack(values, width):
    return sum(v << (i * width) for i, v in enumerate(values))


@pytest.mark.parametrize("fmt_in,g", [(FP16, 4), (BF16, 2), (FP16, 1)],
                         ids=["fp16-g4", "bf16-g2", "fp16-fma"])
def test_dot_product(fmt_in, g):
    rng = random.Random(SEED + g)
    cases = dot_vectors(rng, fmt_in, g, N_DOT)
    want = [fp.fp_dot(a, b, acc, fmt_in) for a, b, acc in cases]
    vectors = [dict(a=pack(a, fmt_in.width), b=pack(b, fmt_in.width), acc=acc)
               for a, b, acc in cases]
    assert simulate(FPDotProduct(g, fmt_in.name), vectors) == want
    if g == 4:      # mutants: on the Gaussian and cancelling vectors, which round
        some = [i for i in range(len(cases)) if i % 4 in (1, 3)][:80]
        for mutant in (TruncatingDot, NoStickyDot):
            got = simulate(mutant(g, fmt_in.name), [vectors[i] for i in some])
            assert got != [want[i] for i in some], mutant.__name__


def test_dot_product_wider_window():
    rng = random.Random(SEED + 7)
    cases = dot_vectors(rng, FP16, 2, 160)
    want = [fp.fp_dot(a, b, acc, FP16, window=40) for a, b, acc in cases]
    vectors = [dict(a=pack(a, 16), b=pack(b, 16), acc=acc) for a, b, acc in cases]
    assert simulate(FPDotProduct(2, "fp16", window=40), vectors) == want


@pytest.mark.parametrize("w", [1, 2, 4])
def test_int_multiplier(w):
    rng = random.Random(SEED + w)
    acts = fp.special_values(FP16) + [rng.getrandbits(16) for _ in range(N // 4)]
    vals = list(range(-(1 << (w - 1)), 1 << (w - 1)))
    pairs = [(a, v) for a in acts for v in vals]
    want = fp.fp_int_mul_vec(*np.array(pairs).T).tolist()
    vectors = [dict(a=a, v=v % (1 << w)) for a, v in pairs]
    assert simulate(FPIntMultiplier(w), vectors) == want


def test_registered_stage_adds_one_cycle():
    rng = random.Random(SEED + 9)
    pairs = [(rng.getrandbits(32), rng.getrandbits(32)) for _ in range(200)]
    dut = FPAdder(registered=True)
    outs = []

    async def bench(ctx):
        for a, b in pairs:
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            before = ctx.get(dut.out)
            await ctx.tick()
            outs.append((before, ctx.get(dut.out)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    want = [fp.fp_add(a, b) for a, b in pairs]
    assert [o for _, o in outs] == want
    assert [b for b, _ in outs[1:]] == want[:-1]          # nothing visible before the edge


def test_bad_parameters():
    with pytest.raises(ValueError, match="fmt_in must be one of fp16, bf16, not 'fp32'"):
        FPMultiplier("fp32")
    with pytest.raises(ValueError, match="g must be in 1..16, not 0"):
        FPDotProduct(0)
    with pytest.raises(ValueError, match="window must be in 8..128, not 200"):
        FPDotProduct(2, window=200)
    with pytest.raises(ValueError, match="w must be in 1..5, not 6"):
        FPIntMultiplier(6)
    with pytest.raises(TypeError, match="registered must be a bool, not 1"):
        FPAdder(registered=1)
