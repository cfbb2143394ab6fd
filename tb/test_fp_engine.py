"""cocotb tests of an emitted FP engine (``python -m gen.emit --top engine --act fp16
--table-format q``), bit-exact against the golden model ``gen.fp_lut.q_gemm_streams``.

Environment: ``LUTCORE_MANIFEST``, ``LUTCORE_SEED``, ``LUTCORE_EFFORT`` as for
``tb.test_fp_lut_array``; ``LUTCORE_UTIL_FILE`` (optional): ``test_cycles`` writes the GEMMs'
cycles and utilization there (JSON).
"""
from __future__ import annotations

import json
import os
import random

import numpy as np

from gen.config import LutConfig, WeightFormat
from gen.fp_lut import q_gemm_streams
from gen.golden import random_weights
from tb.test_fp_lut_array import random_scales, unpack_rows
from tb.test_fp_mac_array import random_acts

#: cocotb tests in this module
TESTS = 3


def load():
    with open(os.environ["LUTCORE_MANIFEST"]) as f:
        manifest = json.load(f)
    return manifest, LutConfig.from_dict(manifest["params"]), int(
        os.environ.get("LUTCORE_SEED", "1"))


def random_gemm(rng, cfg, shape, fmt=None, w=None, specials=0.0):
    """The engine streams of one random GEMM (``gen.fp_lut.q_gemm_streams``)."""
    if fmt is None:
        fmt, w = cfg.ops()[rng.integers(len(cfg.ops()))]
    rows, k, cols = shape
    acts = random_acts(rng, cfg.act_fp, (rows, k), specials, 1.0)
    wv = random_weights(rng, (k, cols), WeightFormat.parse(fmt), w)
    blocks = -(-k // (cfg.scale_block * cfg.g))
    return q_gemm_streams(cfg, acts, wv, fmt, w, random_scales(rng, cfg.act_fp, (cols, blocks)))


try:
    import cocotb
except ImportError:
    cocotb = None

if cocotb is not None:
    from tb.streams import TB, random_pauses, stream_ports

    ROLES = {"cmd": "i_cmd", "table": "i_table", "tscale": "i_tscale", "weight": "i_weight",
             "wscale": "i_wscale", "result": "o_result"}
    #: a precompute engine (``--precompute``) takes activations instead of tables and scales
    PRE_ROLES = {"cmd": "i_cmd", "act": "i_act", "weight": "i_weight", "wscale": "i_wscale",
                 "result": "o_result"}

    async def run_gemms(dut, gemms, pauses=None):
        manifest, cfg, _ = load()
        roles = PRE_ROLES if cfg.precompute else ROLES
        tb = TB(dut, stream_ports(manifest["ports"]), roles=roles)
        if pauses is not None:
            tb.set_pauses(sources=pauses, sinks=pauses())
        await tb.reset()
        want = 0
        inputs = ("act", "weight", "wscale") if cfg.precompute else (
            "table", "tscale", "weight", "wscale")
        for st in gemms:
            tb.cmd.send_nowait(st["cmd"])
            for role in inputs:
                tb[roles[role]].send_nowait([int(b) for b in st[role + "s"]])
            want += len(st["rows"])
        budget = 400 + 8 * sum(len(st["weights"]) + 4 * len(st["rows"]) for st in gemms)
        while len(tb.result.transfers) < want and budget:
            await tb.cycles(1)
            budget -= 1
        assert len(tb.result.transfers) == want, \
            f"the engine stalled: {len(tb.result.transfers)} of {want} rows"
        beats = [t.data for t in tb.result.transfers]
        rows = [r for st in gemms for r in st["rows"]]
        for i, (got, exp) in enumerate(zip(beats, rows)):
            if int(got) != exp:
                g = unpack_rows(cfg.n, [int(got)])[0]
                e = unpack_rows(cfg.n, [exp])[0]
                c = int(np.argmax(g != e))
                raise AssertionError(f"result row {i}: column {c} is {int(g[c]):#x}, golden "
                                     f"{int(e[c]):#x}")
        # the monitor records a transfer at the falling edge before the rising edge that makes
        # it, and o_cycles counts that edge too: let it pass before anyone reads o_cycles
        await tb.cycles(2)
        assert int(dut.o_busy.value) == 0, "o_busy is still set after the last result row"
        tb.stop()
        return tb

    def _rng(tag):
        _, _, seed = load()
        return np.random.default_rng([seed, sum(map(ord, tag))])

    def _shapes(cfg):
        k = cfg.scale_block * cfg.g
        shapes = [(cfg.m, k, cfg.n), (2 * cfg.m + 1, 2 * k + 3, cfg.n + 1), (1, 1, 1)]
        if os.environ.get("LUTCORE_EFFORT", "quick") == "full":
            shapes += [(3 * cfg.m, 3 * k - 1, 3 * cfg.n - 1)]
        return shapes

    @cocotb.test()
    async def test_gemms(dut):
        """Every weight format and w of the build on GEMMs of several tiles, back to back,
        with NaN/Inf/subnormal activations in the last one."""
        _, cfg, _ = load()
        rng = _rng("gemms")
        shapes = _shapes(cfg)
        gemms = [random_gemm(rng, cfg, shapes[i % len(shapes)], f, w)
                 for i, (f, w) in enumerate(cfg.ops())]
        gemms.append(random_gemm(rng, cfg, shapes[1], specials=0.05))
        await run_gemms(dut, gemms)

    @cocotb.test()
    async def test_backpressure(dut):
        """Random pauses on every input stream and on the results."""
        _, cfg, seed = load()
        rng = _rng("backpressure")
        prng = random.Random(seed)
        gemms = [random_gemm(rng, cfg, s) for s in _shapes(cfg)]
        await run_gemms(dut, gemms, pauses=lambda: random_pauses(prng, 0.3))

    @cocotb.test()
    async def test_cycles(dut):
        """Inputs at full rate: ``o_cycles`` of one GEMM against its plane cycles (weight
        beats); the overhead is a constant per GEMM."""
        _, cfg, _ = load()
        rng = _rng("cycles")
        out = []
        for shape in ((2 * cfg.m, 256, 2 * cfg.n), (cfg.m, 512, cfg.n)):
            if shape[1] > cfg.k_max:
                continue
            st = random_gemm(rng, cfg, shape, "int", min(2, cfg.w_bits))
            tb = await run_gemms(dut, [st])
            cycles = int(dut.o_cycles.value)
            # edges from the one that took the command to the one of the last row, inclusive
            span = tb.result.transfers[-1].cycle - tb.cmd.transfers[0].cycle + 1
            assert cycles == span, f"o_cycles {cycles}, the testbench saw {span} edges"
            out.append({"shape": shape, "plane_cycles": len(st["weights"]), "cycles": cycles,
                        "utilization": len(st["weights"]) / cycles})
            dut._log.info("cycles %s", out[-1])
        path = os.environ.get("LUTCORE_UTIL_FILE")
        if path:
            with open(path, "w") as f:
                json.dump(out, f, indent=1)
        assert len({o["cycles"] - o["plane_cycles"] for o in out}) == 1, out


def run_fp_engine_sim(cfg, sim, workdir, *, seed=None, effort="quick", testcase=None):
    """Emit the FP engine of ``cfg``, build it for ``sim`` and run this module; returns the run
    facts and the cycles ``test_cycles`` measured. AssertionError on failure."""
    from pathlib import Path

    from gen.emit import emit
    from tb.runner import run_sim

    workdir = Path(workdir).resolve()
    res = emit(cfg, workdir / "rtl", top="engine")
    util_file = workdir / f"cycles_{sim}.json"
    util_file.unlink(missing_ok=True)
    run = run_sim(res["verilog"], res["manifest"], sim, workdir, seed=seed, effort=effort,
                  test_module="tb.test_fp_engine", testcase=testcase,
                  extra_env={"LUTCORE_UTIL_FILE": str(util_file)})
    if testcase is None and run["tests"] != TESTS:
        raise AssertionError(f"{sim} {res['name']}: {run['tests']} cocotb tests ran, "
                             f"not {TESTS}")
    cycles = json.loads(util_file.read_text()) if util_file.is_file() else None
    return {"name": res["name"], "run": run, "cycles": cycles}
