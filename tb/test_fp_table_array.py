"""cocotb tests of an emitted LUT array with ``fp`` tables
(``python -m gen.emit --act fp16 --table-format fp``).

Environment: ``LUTCORE_MANIFEST`` (the emitted manifest), ``LUTCORE_SEED``, ``LUTCORE_EFFORT``
(``quick``/``full``: number of operations). Every result row is compared bit-exactly with
``gen.fp_lut_fp.lut_fp_mpgemm``; :func:`run_fp_table_sim` emits, builds and runs this module.
"""
from __future__ import annotations

import json
import os
import random

import numpy as np

from gen import fp
from gen.config import LutConfig
from gen.fp_lut_fp import fp_stream
from gen.golden import random_weights

#: the cocotb tests of this module (run_fp_table_sim checks that all of them ran)
TESTS = ("test_every_op", "test_specials", "test_backpressure", "test_reset")


def load():
    manifest = json.loads(open(os.environ["LUTCORE_MANIFEST"]).read())
    cfg = LutConfig.from_dict(manifest["params"])
    return manifest, cfg, int(os.environ.get("LUTCORE_SEED", "1"))


def act_patterns(rng, act, shape, specials=0.0, scale=1.0):
    """Gaussian values times ``scale`` rounded to ``act``; ``specials``: the share replaced by
    special patterns (zeros, subnormals, extremes, Inf, NaN)."""
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    with np.errstate(all="ignore"):
        bits = (x.view(np.uint32) >> 16).astype(np.int64) if act == fp.BF16 else \
            x.astype(np.float16).view(np.uint16).astype(np.int64)
    if specials:
        pick = rng.random(shape) < specials
        bits[pick] = rng.choice(np.array(fp.special_values(act)), int(pick.sum()))
    return bits


def random_op(rng, cfg, fmt, w, corner=None):
    """One operation's beats and expected results (:func:`gen.fp_lut_fp.fp_stream`).

    ``corner``: ``specials`` (special activations and one special scale), ``tiny``
    (activations around the FP16 subnormal range), ``huge`` (sums that overflow FP16 tables),
    ``long`` (the longest K of the build)."""
    act = cfg.act_fp
    k = int(rng.integers(1, min(cfg.groups_max, 4) * cfg.g + 1))
    if corner == "long":
        k = min(cfg.groups_max, 64) * cfg.g
    scale = {"tiny": 2.0 ** -20, "huge": 3e4}.get(corner, 1.0)
    acts = act_patterns(rng, act, (cfg.m, k), 0.2 if corner == "specials" else 0.0, scale)
    weights = random_weights(rng, (k, cfg.n), fmt, w)
    ws = act_patterns(rng, act, cfg.n, scale=0.1)
    if corner == "specials":
        ws[int(rng.integers(cfg.n))] = rng.choice(np.array(fp.special_values(act)))
    return fp_stream(cfg, acts, weights, fmt, w, ws)


try:
    import cocotb
except ImportError:
    cocotb = None

if cocotb is not None:
    from cocotb.triggers import RisingEdge

    from tb.streams import TB, random_pauses, stream_ports

    ROLES = {"cmd": "i_cmd", "scale": "i_scale", "table": "i_table", "weight": "i_weight",
             "result": "o_result"}

    class Env:
        """TB plus the operations sent and the result rows expected of them."""

        def __init__(self, dut):
            self.manifest, self.cfg, self.seed = load()
            self.dut = dut
            self.tb = TB(dut, stream_ports(self.manifest["ports"]), roles=ROLES)
            self.expected = []            # m x n FP32 bits per operation sent
            self.first_row = 0            # result transfers before the current operations

        def send(self, op):
            cmd, table_beats, weight_beats, scale_beats, expected = op
            tb = self.tb
            tb.cmd.send_nowait(int(cmd))
            tb.scale.send_nowait([int(b) for b in scale_beats])
            tb.table.send_nowait([int(b) for b in table_beats])
            tb.weight.send_nowait([int(b) for b in weight_beats])
            self.expected.append(expected)

        async def until(self, done, budget, what):
            while not done():
                if budget <= 0:
                    raise AssertionError(f"timeout waiting for {what} [seed {self.seed}]")
                await RisingEdge(self.tb.clk)
                budget -= 1

        async def check(self, budget=None):
            """Wait for every expected row and compare them bit-exactly."""
            cfg, tb = self.cfg, self.tb
            want = self.first_row + cfg.m * len(self.expected)
            budget = budget or 200 + 40 * cfg.groups_max * cfg.w_bits * len(self.expected)
            await self.until(lambda: len(tb.result.transfers) >= want, budget, "results")
            beats = [t.data for t in tb.result.transfers[self.first_row:]]
            for i, exp in enumerate(self.expected):
                got = fp.unpack_fp_results(cfg.n, beats[i * cfg.m:(i + 1) * cfg.m])
                bad = np.argwhere(got != exp)
                if len(bad):
                    r, c = bad[0]
                    raise AssertionError(
                        f"operation {i}: {len(bad)} results differ; first at ({r}, {c}): "
                        f"{int(got[r, c]):#010x}, golden {int(exp[r, c]):#010x} "
                        f"[seed {self.seed}]")
            self.first_row = len(tb.result.transfers)
            self.expected = []

    def _rng(seed, label):
        return np.random.default_rng([seed, sum(map(ord, label))])

    def _count():
        return 1 if os.environ.get("LUTCORE_EFFORT", "quick") == "quick" else 6

    @cocotb.test()
    async def test_every_op(dut):
        """Every (format, w) the build runs, random K, back to back."""
        env = Env(dut)
        await env.tb.reset()
        rng = _rng(env.seed, "every")
        for _ in range(_count()):
            for fmt, w in env.cfg.ops():
                env.send(random_op(rng, env.cfg, fmt, w))
        await env.check()
        env.tb.stop()

    @cocotb.test()
    async def test_specials(dut):
        """NaN, Inf, subnormal and extreme activations and scales; tiny activations
        (subnormal entries); sums that overflow FP16 entries; the longest K."""
        env = Env(dut)
        await env.tb.reset()
        rng = _rng(env.seed, "specials")
        ops = env.cfg.ops()
        for i, corner in enumerate(["specials", "tiny", "huge", "long"] * _count()):
            env.send(random_op(rng, env.cfg, *ops[i % len(ops)], corner=corner))
        await env.check()
        env.tb.stop()

    @cocotb.test()
    async def test_backpressure(dut):
        """Random pauses on every source and on the sink (random valid, garbage payloads)."""
        env = Env(dut)
        prng = random.Random(env.seed)
        env.tb.set_pauses(sources=lambda: random_pauses(prng, 0.3),
                          sinks=lambda: random_pauses(prng, 0.4))
        await env.tb.reset()
        rng = _rng(env.seed, "backpressure")
        for _ in range(_count()):
            for fmt, w in env.cfg.ops():
                env.send(random_op(rng, env.cfg, fmt, w))
        await env.check()
        env.tb.stop()

    @cocotb.test()
    async def test_reset(dut):
        """Reset in the middle of an operation, and while result rows wait behind a stalled
        sink: no stray row after it, ``o_busy`` low, and the next operations exact."""
        env = Env(dut)
        cfg, tb = env.cfg, env.tb
        await tb.reset()
        rng = _rng(env.seed, "reset")
        fmt, w = max(cfg.ops(), key=lambda o: o[1])

        async def reset_and_check(label):
            await tb.reset()
            env.expected = []
            rows = len(tb.result.transfers)
            for _ in range(cfg.m + 3):
                await RisingEdge(tb.clk)
            busy, valid = dut.o_busy.value, dut.o_result__valid.value
            assert busy.is_resolvable and int(busy) == 0, f"o_busy {busy} after reset ({label})"
            assert valid.is_resolvable and int(valid) == 0, f"a row after reset ({label})"
            assert len(tb.result.transfers) == rows, f"a stray row after reset ({label})"
            env.first_row = rows

        # 1. cut after some of the planes of a long operation
        env.send(random_op(rng, cfg, fmt, w, corner="long"))
        n0 = len(tb.weight.transfers)
        await env.until(lambda: len(tb.weight.transfers) - n0 >= 2, 500, "the planes")
        assert len(tb.weight) > 0, "the operation ended before the reset"
        await reset_and_check("mid-operation")
        env.send(random_op(rng, cfg, *cfg.ops()[0]))
        await env.check()

        # 2. cut while the finished rows wait
        tb.result.set_pause_generator(iter(lambda: True, None))      # never ready
        env.send(random_op(rng, cfg, fmt, w))
        await env.until(tb.sources_idle, 1000, "the inputs to go in")
        # shared column lanes (fp_column_lanes) take fp_column_cycles per row before its beat
        for _ in range(3 + cfg.fp_column_cycles):
            await RisingEdge(tb.clk)
        assert int(dut.o_result__valid.value) == 1, "no row waiting before the reset"
        await reset_and_check("rows waiting")
        tb.result.set_pause_generator(None)
        for fmt_, w_ in cfg.ops()[-2:]:
            env.send(random_op(rng, cfg, fmt_, w_))
        await env.check()
        tb.stop()


def run_fp_table_sim(cfg, sim, workdir, *, seed=None, effort="quick", pe_cls=None,
                   testcase=None):
    """Emit the ``fp``-table array of ``cfg``, build it for ``sim`` and run this module;
    AssertionError on failure. ``pe_cls`` replaces the PE class (mutants). Returns the
    build + run seconds and the design's name."""
    import contextlib
    from pathlib import Path
    from unittest import mock

    from gen.emit import emit
    from hw import fp_table_array
    from tb.runner import run_sim

    workdir = Path(workdir).resolve()
    patch = mock.patch.object(fp_table_array, "FpTablePE", pe_cls) if pe_cls else \
        contextlib.nullcontext()
    with patch:
        res = emit(cfg, workdir / "rtl")
    run = run_sim(res["verilog"], res["manifest"], sim, workdir, seed=seed, effort=effort,
                  testcase=testcase)
    want = 1 if isinstance(testcase, str) else len(testcase or TESTS)
    if run["tests"] != want:
        raise AssertionError(f"{sim} {res['name']}: {run['tests']} cocotb tests ran, "
                             f"not {want}")
    return {"seconds": run["build_s"] + run["run_s"], "name": res["name"]}
