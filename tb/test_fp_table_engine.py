"""cocotb tests of an emitted ``fp``-table engine (``python -m gen.emit --top engine --act fp16
--table-format fp``), bit-exact against the golden model ``gen.fp_lut_fp.lut_fp_mpgemm`` of the
whole GEMM (streams: ``gen.fp_lut_fp.fp_gemm_streams``).

Environment: ``LUTCORE_MANIFEST``, ``LUTCORE_SEED``, ``LUTCORE_EFFORT`` as for
``tb.test_fp_table_array``; ``LUTCORE_UTIL_FILE`` (optional): ``test_cycles`` writes the
GEMMs' cycles and utilization there (JSON).
"""
from __future__ import annotations

import json
import os
import random

import numpy as np

from gen import fp
from gen.config import LutConfig
from gen.fp_lut_fp import fp_gemm_streams
from gen.golden import random_weights
from tb.test_fp_table_array import act_patterns

#: the cocotb tests of this module (run_fp_table_engine_sim checks that all of them ran)
TESTS = ("test_gemms", "test_backpressure", "test_cycles", "test_reset")


def load():
    with open(os.environ["LUTCORE_MANIFEST"]) as f:
        manifest = json.load(f)
    return manifest, LutConfig.from_dict(manifest["params"]), int(
        os.environ.get("LUTCORE_SEED", "1"))


def random_gemm(rng, cfg, shape, fmt=None, w=None, corner=None):
    """The engine streams of one random GEMM (``gen.fp_lut_fp.fp_gemm_streams``).
    ``corner``: ``specials`` (NaN/Inf/subnormal/extreme activations and one special weight
    scale), ``tiny`` (activations around the FP16 subnormal range: subnormal entries),
    ``huge`` (sums that overflow FP16 entries)."""
    if fmt is None:
        fmt, w = cfg.ops()[rng.integers(len(cfg.ops()))]
    rows, k, cols = shape
    act = cfg.act_fp
    scale = {"tiny": 2.0 ** -20, "huge": 3e4}.get(corner, 1.0)
    acts = act_patterns(rng, act, (rows, k), 0.1 if corner == "specials" else 0.0, scale)
    ws = act_patterns(rng, act, cols, scale=0.1)
    if corner == "specials":
        ws[int(rng.integers(cols))] = rng.choice(np.array(fp.special_values(act)))
    return fp_gemm_streams(cfg, acts, random_weights(rng, (k, cols), fmt, w), fmt, w, ws)


try:
    import cocotb
except ImportError:
    cocotb = None

if cocotb is not None:
    from tb.streams import TB, random_pauses, stream_ports

    ROLES = {"cmd": "i_cmd", "table": "i_table", "wscale": "i_wscale", "weight": "i_weight",
             "result": "o_result"}

    def send(tb, gemms):
        """Queue every beat of ``gemms``; returns the result rows expected of them."""
        for st in gemms:
            tb.cmd.send_nowait(st["cmd"])
            for role in ("table", "wscale", "weight"):
                tb[ROLES[role]].send_nowait([int(b) for b in st[role + "s"]])
        return [r for st in gemms for r in st["rows"]]

    async def check(tb, rows, first=0, budget=None):
        """Wait for ``rows`` after the first ``first`` result transfers; compare bit-exactly."""
        _, cfg, seed = load()
        want = first + len(rows)
        budget = budget or 400 + 8 * (len(rows) // cfg.m) * (cfg.groups_max * cfg.w_bits + 4)
        while len(tb.result.transfers) < want and budget:
            await tb.cycles(1)
            budget -= 1
        got = [int(t.data) for t in tb.result.transfers[first:]]
        assert len(got) == len(rows), \
            f"the engine stalled: {len(got)} of {len(rows)} rows [seed {seed}]"
        for i, (g, e) in enumerate(zip(got, rows)):
            if g != e:
                gv = fp.unpack_fp_results(cfg.n, [g])[0]
                ev = fp.unpack_fp_results(cfg.n, [e])[0]
                c = int(np.argmax(gv != ev))
                raise AssertionError(f"result row {i}: column {c} is {int(gv[c]):#010x}, "
                                     f"golden {int(ev[c]):#010x} [seed {seed}]")

    def _rng(tag):
        _, _, seed = load()
        return np.random.default_rng([seed, sum(map(ord, tag))])

    def _shapes(cfg):
        """Several row and column tiles, K not a multiple of g, one-tile and 1 x 1 x 1."""
        shapes = [(2 * cfg.m + 1, 2 * cfg.g + 3, cfg.n + 1), (cfg.m, cfg.g, cfg.n), (1, 1, 1)]
        if os.environ.get("LUTCORE_EFFORT", "quick") == "full":
            shapes += [(3 * cfg.m, min(cfg.k_max, 7 * cfg.g - 1), 3 * cfg.n - 1)]
        return shapes

    @cocotb.test()
    async def test_gemms(dut):
        """Every weight format and w of the build on GEMMs of several tiles, back to back;
        then special (NaN/Inf/subnormal activations, a special weight scale), tiny (subnormal
        entries) and huge (overflowing FP16 entries) activations, and the longest K."""
        manifest, cfg, _ = load()
        rng = _rng("gemms")
        shapes = _shapes(cfg)
        gemms = [random_gemm(rng, cfg, shapes[i % len(shapes)], f, w)
                 for i, (f, w) in enumerate(cfg.ops())]
        gemms += [random_gemm(rng, cfg, shapes[0], corner=c)
                  for c in ("specials", "tiny", "huge")]
        gemms.append(random_gemm(rng, cfg, (cfg.m, cfg.k_max, 2 * cfg.n)))
        tb = TB(dut, stream_ports(manifest["ports"]), roles=ROLES)
        await tb.reset()
        await check(tb, send(tb, gemms))
        tb.stop()

    @cocotb.test()
    async def test_backpressure(dut):
        """Random pauses on every input stream and on the results."""
        manifest, cfg, seed = load()
        rng = _rng("backpressure")
        prng = random.Random(seed)
        gemms = [random_gemm(rng, cfg, s) for s in _shapes(cfg)]
        tb = TB(dut, stream_ports(manifest["ports"]), roles=ROLES)
        tb.set_pauses(sources=lambda: random_pauses(prng, 0.3),
                      sinks=lambda: random_pauses(prng, 0.4))
        await tb.reset()
        await check(tb, send(tb, gemms))
        tb.stop()

    @cocotb.test()
    async def test_cycles(dut):
        """Inputs at full rate: ``o_cycles`` of one GEMM against its plane cycles (weight
        beats); the overhead is a constant per GEMM, so a GEMM of several tiles at K = 256 is
        at >= 99 %."""
        manifest, cfg, _ = load()
        rng = _rng("cycles")
        out = []
        w = min(2, cfg.w_bits)
        for shape in ((2 * cfg.m, 256, 2 * cfg.n), (cfg.m, 512, cfg.n),
                      (3 * cfg.m, 2 * cfg.g + 1, cfg.n + 1)):
            if shape[1] > cfg.k_max:
                continue
            tb = TB(dut, stream_ports(manifest["ports"]), roles=ROLES)
            await tb.reset()
            st = random_gemm(rng, cfg, shape, "int", w)
            await check(tb, send(tb, [st]))
            # the monitor records a transfer at the falling edge before the rising edge that
            # makes it: o_cycles counts that edge too
            await tb.cycles(2)
            assert int(dut.o_busy.value) == 0
            cycles = int(dut.o_cycles.value)
            out.append({"shape": shape, "plane_cycles": len(st["weights"]), "cycles": cycles,
                        "utilization": len(st["weights"]) / cycles})
            dut._log.info("cycles %s", out[-1])
            tb.stop()
        path = os.environ.get("LUTCORE_UTIL_FILE")
        if path:
            with open(path, "w") as f:
                json.dump(out, f, indent=1)
        assert len({o["cycles"] - o["plane_cycles"] for o in out}) == 1, out
        big = [o for o in out if o["shape"][1] >= 256 and o["shape"][0] > cfg.m]
        assert all(o["utilization"] >= 0.99 for o in big), out

    @cocotb.test()
    async def test_reset(dut):
        """Reset in the middle of a GEMM of several tiles (after its first tile's rows, the
        next row block's tables in the other bank): no stray row after it, ``o_busy`` low, and
        the next GEMM exact."""
        manifest, cfg, _ = load()
        rng = _rng("reset")
        tb = TB(dut, stream_ports(manifest["ports"]), roles=ROLES)
        await tb.reset()
        send(tb, [random_gemm(rng, cfg, (3 * cfg.m, min(cfg.k_max, 4 * cfg.g), 2 * cfg.n))])
        budget = 2000
        while len(tb.result.transfers) < cfg.m and budget:
            await tb.cycles(1)
            budget -= 1
        assert len(tb.result.transfers) >= cfg.m and int(dut.o_busy.value) == 1, \
            "the GEMM ended before the reset"
        await tb.reset()
        rows = len(tb.result.transfers)
        await tb.cycles(cfg.m + 3)
        busy, valid = dut.o_busy.value, dut.o_result__valid.value
        assert busy.is_resolvable and int(busy) == 0, f"o_busy {busy} after reset"
        assert valid.is_resolvable and int(valid) == 0, "a result row after reset"
        assert len(tb.result.transfers) == rows, "a stray row after reset"
        await check(tb, send(tb, [random_gemm(rng, cfg, _shapes(cfg)[0])]), first=rows)
        tb.stop()


def run_fp_table_engine_sim(cfg, sim, workdir, *, seed=None, effort="quick", testcase=None,
                            patches=()):
    """Emit the ``fp``-table engine of ``cfg``, build it for ``sim`` and run this module;
    AssertionError on failure. ``patches``: context managers active while emitting (mutants).
    Returns the design's name, the run facts and the cycles ``test_cycles`` measured."""
    import contextlib
    from pathlib import Path

    from gen.emit import emit
    from tb.runner import run_sim

    workdir = Path(workdir).resolve()
    with contextlib.ExitStack() as stack:
        for p in patches:
            stack.enter_context(p)
        res = emit(cfg, workdir / "rtl", top="engine")
    util_file = workdir / f"cycles_{sim}.json"
    util_file.unlink(missing_ok=True)
    run = run_sim(res["verilog"], res["manifest"], sim, workdir, seed=seed, effort=effort,
                  testcase=testcase, extra_env={"LUTCORE_UTIL_FILE": str(util_file)})
    want = 1 if isinstance(testcase, str) else len(testcase or TESTS)
    if run["tests"] != want:
        raise AssertionError(f"{sim} {res['name']}: {run['tests']} cocotb tests ran, "
                             f"not {want}")
    cycles = json.loads(util_file.read_text()) if util_file.is_file() else None
    return {"name": res["name"], "run": run, "cycles": cycles}
