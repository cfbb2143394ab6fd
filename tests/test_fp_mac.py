# amaranth: UnusedElaboratable=no
"""The FP MAC baselines (hw/fp_mac_array.py): golden model vs an exact reference, and
amaranth.sim of the array bit-exactly against it."""
import random
from fractions import Fraction

import numpy as np
import pytest
from amaranth.sim import Simulator

from gen import fp
from gen.config import LutConfig
from gen.fp import BF16, FP16, FP32
from gen.golden import random_weights
from hw.fp_mac_array import FpMacArray
from tests.simutil import stream_get, stream_put
from tests.test_fp_golden import ref_round, ref_value

SEED = 1414


def random_acts(rng, fmt, shape, specials=0.0):
    x = rng.standard_normal(shape).astype(np.float32)
    bits = (x.view(np.uint32) >> 16).astype(np.int64) if fmt == BF16 else \
        x.astype(np.float16).view(np.uint16).astype(np.int64)
    if specials:
        sp = np.array([v for v in fp.special_values(fmt)])
        pick = rng.random(shape) < specials
        bits[pick] = rng.choice(sp, int(pick.sum()))
    return bits


def random_scales(rng, fmt, n):
    s = (rng.random(n) * 0.1 + 0.01).astype(np.float32)
    return (s.view(np.uint32) >> 16).astype(np.int64) if fmt == BF16 else \
        s.astype(np.float16).view(np.uint16).astype(np.int64)


def test_tile_golden_close_to_exact():
    """Finite inputs: every result is within a few FP32 ulps of the exactly rounded dot product
    of the (dequantized) weights -- the fused adders round once per group."""
    rng = np.random.default_rng(SEED)
    acts = random_acts(rng, FP16, (2, 24))
    w = rng.integers(-2, 2, (24, 3))
    scales = random_scales(rng, FP16, 3)
    for kind in ("dequant", "direct"):
        got = fp.fp_mac_tile(acts, w, scales, kind, 3, FP16, 4)
        for r in range(2):
            for c in range(3):
                sc = ref_value(int(scales[c]), FP16)[0]
                if kind == "dequant":
                    ws = [ref_value(fp.fp_int_mul(int(scales[c]), int(v), 3, FP16, FP16),
                                    FP16)[0] for v in w[:, c]]
                    exact = sum(ref_value(int(a), FP16)[0] * x for a, x in zip(acts[r], ws))
                else:
                    exact = sc * sum(ref_value(int(a), FP16)[0] * int(v)
                                     for a, v in zip(acts[r], w[:, c]))
                want = ref_round(Fraction(exact), FP32)
                assert abs(int(got[r, c]) - want) <= 8, (kind, r, c)


def run_array(cfg, kind, act, ops, rng, gap=0.0):
    dut = FpMacArray(cfg, kind, act.name)
    results = []

    async def cmds(ctx):
        for cmd, scale, *_ in ops:
            while rng.random() < gap:
                await ctx.tick()
            ctx.set(dut.i_cmd.payload, cmd)
            ctx.set(dut.i_scale.payload, scale)
            ctx.set(dut.i_cmd.valid, 1)
            ctx.set(dut.i_scale.valid, 1)
            await ctx.tick().until(dut.i_cmd.ready & dut.i_scale.ready)
            ctx.set(dut.i_cmd.valid, 0)
            ctx.set(dut.i_scale.valid, 0)

    async def acts(ctx):
        await stream_put(ctx, dut.i_act, [b for op in ops for b in op[2]], rng, gap)

    async def weights(ctx):
        await stream_put(ctx, dut.i_weight, [b for op in ops for b in op[3]], rng, gap)

    async def out(ctx):
        results.extend(await stream_get(ctx, dut.o_result, cfg.m * len(ops), rng, gap))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for tb in (cmds, acts, weights, out):
        sim.add_testbench(tb)
    sim.run_until(1e-8 * (200 + 40 * sum(len(op[2]) for op in ops)))
    assert len(results) == cfg.m * len(ops), "the array stalled"
    return [fp.unpack_fp_results(cfg.n, results[i * cfg.m:(i + 1) * cfg.m])
            for i in range(len(ops))]


@pytest.mark.parametrize("kind,act", [
    ("dequant", FP16), pytest.param("direct", FP16, marks=pytest.mark.slow),
    pytest.param("dequant", BF16, marks=pytest.mark.slow),
    pytest.param("direct", BF16, marks=pytest.mark.slow)],
    ids=["dequant-fp16", "direct-fp16", "dequant-bf16", "direct-bf16"])
def test_array_matches_golden(kind, act):
    cfg = LutConfig(w_bits=2, a_bits=8, g=4, m=2, n=2)
    rng = np.random.default_rng(SEED)
    prng = random.Random(SEED)
    ops = []
    for i, (fmt, w) in enumerate([("int", 2), ("uint", 2), ("binary", 1), ("int", 1)]):
        k = [8, 5, 12, 4][i]
        a = random_acts(rng, act, (cfg.m, k), specials=0.1 if i == 3 else 0.0)
        wv = random_weights(rng, (k, cfg.n), fmt, w)
        ops.append(fp.fp_mac_stream(cfg, a, wv, random_scales(rng, act, cfg.n), fmt, w,
                                    kind, act))
    got = run_array(cfg, kind, act, ops, prng, gap=0.2)
    for g_, op in zip(got, ops):
        assert g_.tolist() == op[4].tolist()


# -- cocotb: the emitted Verilog -------------------------------------------------------------

from hw.fp_mac_array import FpMacPE  # noqa: E402
from tb.test_fp_mac_array import run_fp_mac_sim  # noqa: E402
from tests.test_fp_hw import Truncating  # noqa: E402

SIM_CFG = LutConfig(w_bits=2, a_bits=8, g=4, m=2, n=2)


class TruncatingPE(Truncating, FpMacPE):
    pass


@pytest.mark.sim
def test_emitted_direct_fp16_icarus(tmp_path):
    """The default suite's share: the direct array (the amaranth.sim test above covers the
    dequantizing one); ``make sim`` runs both kinds, both formats, both simulators."""
    run_fp_mac_sim(SIM_CFG, "mac_direct", "fp16", "icarus", tmp_path, seed=SEED)


@pytest.mark.sim
@pytest.mark.slow
def test_emitted_mutant_fails(tmp_path):
    with pytest.raises(AssertionError, match="(?s)of 3 cocotb tests failed.*differ"):
        run_fp_mac_sim(SIM_CFG, "mac_dequant", "fp16", "icarus", tmp_path, seed=SEED,
                       pe_cls=TruncatingPE)


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
@pytest.mark.parametrize("top,act", [("mac_dequant", "fp16"), ("mac_direct", "fp16"),
                                     ("mac_dequant", "bf16"), ("mac_direct", "bf16")])
def test_emitted_full(top, act, sim, tmp_path):
    run_fp_mac_sim(SIM_CFG, top, act, sim, tmp_path, seed=SEED, effort="full")


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("top", ["mac_dequant", "mac_direct"])
def test_emitted_m8n4k16_verilator(top, tmp_path):
    from gen.synth import mac_config
    cfg = mac_config(LutConfig(w_bits=2, a_bits=8), (8, 4, 16))
    run_fp_mac_sim(cfg, top, "fp16", "verilator", tmp_path, seed=SEED)


def test_emit_cli_act_option(tmp_path, capsys):
    from gen.emit import main
    assert main(["--top", "mac_direct", "--act", "bf16", "--m", "1", "--n", "2",
                 "--out", str(tmp_path / "ok")]) == 0
    files = sorted(p.name for p in (tmp_path / "ok").iterdir())
    assert files == ["mac_direct_array_w2bf16_g4_m1n2_k4096.json",
                     "mac_direct_array_w2bf16_g4_m1n2_k4096.v"]
    manifest = __import__("json").loads((tmp_path / "ok" / files[0]).read_text())
    assert manifest["act"] == "bf16" and manifest["derived"]["result_row_width"] == 64
    with pytest.raises(SystemExit) as exc:
        main(["--top", "array", "--act", "fp16", "--out", str(tmp_path / "bad")])
    assert exc.value.code == 2
    assert "--act fp16 applies to --top mac_dequant or mac_direct, or to --top array with " \
        "--table-format q or fp, not --top array" in \
        capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
