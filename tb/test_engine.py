"""cocotb tests of the emitted mpGEMM engine (``LutEngine``), bit-exact against gen.golden.

Environment (``tb.runner.run_sim(..., top="engine")`` sets them):

* ``LUTCORE_MANIFEST``, ``LUTCORE_SEED``, ``LUTCORE_EFFORT`` -- as for ``tb.test_lut_array``
  (the config and the ports come from the manifest);
* ``LUTCORE_GEMM`` -- optional: a JSON file of GEMM jobs for ``test_gemm_jobs``; each job is
  ``{"name", "fmt", "w_bits"}`` plus either ``"shape": [M, K, N]`` and ``"seed"`` (random
  operands) or ``"npz"`` (a file with integer arrays ``a`` (M x K) and ``w`` (K x N)). The test
  writes ``<LUTCORE_GEMM>.out.json`` (cycles, ideal cycles, utilization, wall time per job) and,
  for npz jobs, ``<npz>.result.npy`` (the RTL's M x N result).
"""
from __future__ import annotations

import json
import os
import time

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from gen.golden import gemm_streams, ideal_cycles, random_activations, random_weights
from gen.config import WeightFormat
from tb.streams import TB, random_pauses, stream_ports
from tb.test_lut_array import (base_seed, check_ports, effort, load_config, load_manifest,
                               result_scoreboard)


class EngineEnv:
    def __init__(self, dut, name):
        self.dut = dut
        self.log = dut._log
        self.cfg = load_config()
        self.seed = base_seed()
        self.rng = np.random.default_rng([self.seed, len(name)])
        self.full = effort() == "full"
        manifest = load_manifest()
        check_ports(dut, manifest)
        # the engine's streams: cmd, table (or act when it precomputes tables), weight
        self.tb = TB(dut, stream_ports(manifest["ports"]),
                     roles={"cmd": "i_cmd", "weight": "i_weight", "result": "o_result"})
        self.src = self.tb["i_act" if self.cfg.precompute else "i_table"]
        self.sb = result_scoreboard(self.cfg, self.log, self.seed)
        self.tb.result.add_callback(self.sb.on_beat)
        self.log.info("%s: %s, LUTCORE_SEED=%d", name, self.cfg.name, self.seed)

    def send_gemm(self, a, w, fmt, w_bits, label):
        """Queue one GEMM; the scoreboard expects its tiles in engine order."""
        cfg = self.cfg
        st = gemm_streams(cfg, a, w, fmt, w_bits)
        self.tb.cmd.send_nowait(st["cmd"])
        self.src.send_nowait(st["acts" if cfg.precompute else "tables"])
        self.tb.weight.send_nowait(st["weights"])
        exp = st["expected"]
        for mi in range(exp.shape[0] // cfg.m):
            for ni in range(exp.shape[1] // cfg.n):
                self.sb.expect(exp[mi * cfg.m:(mi + 1) * cfg.m, ni * cfg.n:(ni + 1) * cfg.n],
                               f"{label} tile ({mi},{ni})")
        return st

    def random_gemm(self, shape, fmt, w_bits, label=None):
        rows, k, cols = shape
        a = random_activations(self.rng, (rows, k), self.cfg.a_bits)
        a[0, : min(k, self.cfg.g)] = -(1 << (self.cfg.a_bits - 1))     # the all-minimum group
        w = random_weights(self.rng, (k, cols), fmt, w_bits)
        return self.send_gemm(a, w, fmt, w_bits,
                              label or f"{WeightFormat.parse(fmt).label} w{w_bits} {shape}")

    async def wait_done(self, timeout):
        tb, edge = self.tb, RisingEdge(self.tb.clk)
        start = tb.cycle
        while not (tb.sources_idle() and self.sb.idle()):
            if tb.cycle - start > timeout:
                raise AssertionError(f"timeout after {timeout} cycles: "
                                     f"{self.sb.outstanding} rows outstanding "
                                     f"[seed {self.seed}]")
            await edge
        for _ in range(4):
            await edge
        self.sb.finish()
        busy = self.dut.o_busy.value
        assert busy.is_resolvable and int(busy) == 0, f"o_busy is {busy} after the GEMM"

    def span(self, first_cmd, first_row):
        """Edges from the command's to the last result row's, inclusive, and o_cycles."""
        tb = self.tb
        c0 = tb.cmd.transfers[first_cmd].cycle
        c1 = tb.result.transfers[-1].cycle
        return c1 - c0 + 1, int(self.dut.o_cycles.value)

    async def start(self):
        await self.tb.reset()
        return self


def _shapes(cfg, full):
    m, n, g = cfg.m, cfg.n, cfg.g
    shapes = [(m, min(cfg.k_max, g), n), (2 * m + 1, min(cfg.k_max, 2 * g + 1), n + 1),
              (1, 1, 1)]
    if full:
        shapes += [(3 * m, min(cfg.k_max, 4 * g - 1), 2 * n), (m - 1 or 1, 3, 2 * n - 1 or 1)]
    return shapes


@cocotb.test()
async def test_gemm_formats(dut):
    """Every (format, w) the build runs, several shapes (ragged M, N and K are padded), random
    pauses on every stream; o_cycles must equal the span the testbench saw."""
    env = await EngineEnv(dut, "test_gemm_formats").start()
    import random
    prng = random.Random(env.seed)
    env.tb.set_pauses(lambda: random_pauses(prng, 0.25), random_pauses(prng, 0.25))
    n = 0
    for shape in _shapes(env.cfg, env.full):
        for fmt, w in env.cfg.ops():
            first_cmd, first_row = len(env.tb.cmd.transfers), len(env.tb.result.transfers)
            st = env.random_gemm(shape, fmt, w)
            await env.wait_done(timeout=200 + 30 * (len(st["weights"]) + len(st["rows"])))
            span, o_cycles = env.span(first_cmd, first_row)
            assert o_cycles == span, f"o_cycles {o_cycles}, the testbench saw {span} edges"
            n += 1
    env.log.info("%d GEMMs exact", n)


@cocotb.test()
async def test_gemm_full_rate(dut):
    """No pauses: utilization = ideal / measured (first input beat to last result beat)."""
    env = await EngineEnv(dut, "test_gemm_full_rate").start()
    cfg = env.cfg
    k = min(cfg.k_max, 16 * cfg.g)
    fmt, w = max(cfg.ops(), key=lambda o: o[1])
    shape = (2 * cfg.m, k, 2 * cfg.n)
    st = env.random_gemm(shape, fmt, w)
    await env.wait_done(timeout=200 + 4 * len(st["weights"]))
    span, o_cycles = env.span(0, 0)
    ideal = ideal_cycles(cfg, shape[0], shape[2], k, w)
    env.log.info("full rate %s: %d cycles, ideal %d, utilization %.4f", shape, span, ideal,
                 ideal / span)
    assert o_cycles == span
    assert span <= ideal + cfg.m + 6, f"{span} cycles for an ideal of {ideal}"


@cocotb.test()
async def test_reset_mid_gemm(dut):
    """Reset halfway through a GEMM drops it; the next GEMM is exact."""
    env = await EngineEnv(dut, "test_reset_mid_gemm").start()
    cfg = env.cfg
    fmt, w = cfg.ops()[0]
    shape = (2 * cfg.m, min(cfg.k_max, 3 * cfg.g), cfg.n)
    st = env.random_gemm(shape, fmt, w)
    half = len(st["weights"]) // 2
    edge = RisingEdge(env.tb.clk)
    while len(env.tb.weight.transfers) < max(1, half):
        await edge
    await env.tb.reset()
    env.sb.drop_pending()
    for _ in range(cfg.m + 4):
        await edge
    assert int(dut.o_busy.value) == 0, "o_busy after reset"
    first_cmd = len(env.tb.cmd.transfers)
    st = env.random_gemm(shape, *cfg.ops()[-1])
    await env.wait_done(timeout=200 + 30 * len(st["weights"]))
    span, o_cycles = env.span(first_cmd, 0)
    assert o_cycles == span


@cocotb.test(skip=not os.environ.get("LUTCORE_GEMM"))
async def test_gemm_jobs(dut):
    """GEMM jobs from LUTCORE_GEMM (scripts/run_gemm.py, the real-layer test), at full rate."""
    env = await EngineEnv(dut, "test_gemm_jobs").start()
    cfg = env.cfg
    path = os.environ["LUTCORE_GEMM"]
    with open(path) as f:
        jobs = json.load(f)
    out = []
    for job in jobs:
        if "npz" in job:
            data = np.load(job["npz"])
            a, w = data["a"].astype(np.int64), data["w"].astype(np.int64)
        else:
            rows, k, cols = job["shape"]
            rng = np.random.default_rng(job.get("seed", 0))
            a = random_activations(rng, (rows, k), cfg.a_bits)
            w = random_weights(rng, (k, cols), job["fmt"], job["w_bits"])
        first_cmd = len(env.tb.cmd.transfers)
        first_row = len(env.tb.result.transfers)
        t0 = time.perf_counter()
        st = env.send_gemm(a, w, job["fmt"], job["w_bits"], job["name"])
        await env.wait_done(timeout=1000 + 4 * len(st["weights"]))
        wall = time.perf_counter() - t0
        span, o_cycles = env.span(first_cmd, first_row)
        rows, cols = a.shape[0], w.shape[1]
        ideal = ideal_cycles(cfg, rows, cols, a.shape[1], job["w_bits"])
        rec = {"name": job["name"], "shape": [rows, a.shape[1], cols], "fmt": job["fmt"],
               "w_bits": job["w_bits"], "cycles": span, "o_cycles": o_cycles, "ideal": ideal,
               "utilization": ideal / span, "wall_s": wall, "cycles_per_s": span / wall}
        out.append(rec)
        env.log.info("%s: %d cycles, ideal %d, utilization %.4f, %.1f s", job["name"], span,
                     ideal, ideal / span, wall)
        if "npz" in job:
            beats = env.tb.result.transfers[first_row:]
            from gen.golden import unpack_results
            got = unpack_results(cfg, [t.data for t in beats])
            # engine order: per row block, per column block, m rows -> M' x N'
            mt, nt = -(-rows // cfg.m), -(-cols // cfg.n)
            got = got.reshape(mt, nt, cfg.m, cfg.n).transpose(0, 2, 1, 3).reshape(
                mt * cfg.m, nt * cfg.n)
            np.save(job["npz"] + ".result.npy", got[:rows, :cols])
        assert o_cycles == span
    with open(path + ".out.json", "w") as f:
        json.dump(out, f, indent=2)
