"""cocotb tests of an emitted FpLutArray (``python -m gen.emit --act fp16 --table-format q``).

Environment: ``LUTCORE_MANIFEST`` (the emitted manifest), ``LUTCORE_SEED``, ``LUTCORE_EFFORT``
(``quick``/``full``: number of operations), ``LUTCORE_UTIL_FILE`` (where ``test_utilization``
writes what it measured, JSON). Every result row is compared bit-exactly with the golden
model ``gen.fp_lut.q_stream`` (docs/fp-lut.md); ``run_fp_lut_sim`` builds and runs this module.
"""
from __future__ import annotations

import json
import os
import random

import numpy as np

from gen import fp
from gen.config import LutConfig, WeightFormat
from gen.fp_lut import block_k, q_stream
from gen.golden import random_weights
from tb.test_fp_mac_array import random_acts

#: cocotb tests in this module (run_fp_lut_sim checks that all of them ran)
TESTS = 5


def load():
    with open(os.environ["LUTCORE_MANIFEST"]) as f:
        manifest = json.load(f)
    cfg = LutConfig.from_dict(manifest["params"])
    return manifest, cfg, int(os.environ.get("LUTCORE_SEED", "1"))


def random_scales(rng, act, shape):
    s = (rng.random(shape) * 0.2 + 0.005).astype(np.float32)
    if act == fp.BF16:
        return (s.view(np.uint32) >> 16).astype(np.int64)
    return s.astype(np.float16).view(np.uint16).astype(np.int64)


def random_op(rng, cfg, fmt=None, w=None, blocks=None, corner=None):
    """One operation's streams and expected results (``gen.fp_lut.q_stream``): a random
    ``K`` of ``blocks`` scale blocks (the last one partly padded), random format and ``w``
    unless given. ``corner``: ``specials`` (NaN/Inf/subnormal activations and weight scales),
    ``large`` (sums that overflow BF16 tables), ``zero`` (all-zero activations: scale +0),
    ``nan_inf`` (one NaN activation in row 0, one -Inf in the last row)."""
    act = cfg.act_fp
    if fmt is None:
        fmt, w = cfg.ops()[rng.integers(len(cfg.ops()))]
    fmt = WeightFormat.parse(fmt)
    bk = block_k(cfg)
    blocks = blocks or int(rng.integers(1, min(3, cfg.blocks_max) + 1))
    k = int(rng.integers((blocks - 1) * bk + 1, blocks * bk + 1))
    specials = 0.05 if corner == "specials" else 0.0
    scale = {"large": 3e4 if act == fp.FP16 else 6e37}.get(corner, 1.0)
    acts = random_acts(rng, act, (cfg.m, k), specials, scale)
    if corner == "zero":
        acts[:] = rng.choice([0, act.sign_bit], acts.shape)
    if corner == "nan_inf":          # row 0: one NaN; the last row: one -Inf (docs: the row
        acts[0, rng.integers(k)] = act.qnan | 1      # of a NaN/Inf block is NaN)
        acts[-1, rng.integers(k)] = act.inf | act.sign_bit
    wv = random_weights(rng, (k, cfg.n), fmt, w)
    wscales = random_scales(rng, act, (cfg.n, blocks))
    if corner == "specials":
        pick = rng.random(wscales.shape) < 0.1
        wscales[pick] = rng.choice(fp.special_values(act), int(pick.sum()))
    return q_stream(cfg, acts, wv, fmt, w, wscales)


def unpack_rows(n, beats):
    return fp.unpack_fp_results(n, beats).astype(np.int64)


try:
    import cocotb
except ImportError:
    cocotb = None

if cocotb is not None:
    from tb.streams import TB, random_pauses, stream_ports

    ROLES = {"cmd": "i_cmd", "table": "i_table", "weight": "i_weight", "scale": "i_scale",
             "result": "o_result"}

    def make_tb(dut, pauses=None):
        manifest, cfg, _ = load()
        tb = TB(dut, stream_ports(manifest["ports"]), roles=ROLES)
        if pauses is not None:
            tb.set_pauses(sources=pauses, sinks=pauses())
        return tb, cfg

    def queue(tb, ops):
        for cmd, tables, weights, scales, _ in ops:
            tb.cmd.send_nowait(int(cmd))
            tb.table.send_nowait([int(b) for b in tables])
            tb.weight.send_nowait([int(b) for b in weights])
            tb.scale.send_nowait([int(b) for b in scales])

    async def collect(tb, cfg, ops, first_row=0):
        """Wait for the rows of ``ops`` (after ``first_row`` rows) and compare them."""
        want = first_row + cfg.m * len(ops)
        budget = 200 + 6 * sum(len(op[2]) + cfg.m * len(op[3]) for op in ops)
        while len(tb.result.transfers) < want and budget:
            await tb.cycles(1)
            budget -= 1
        assert len(tb.result.transfers) == want, \
            f"the array stalled: {len(tb.result.transfers) - first_row} of " \
            f"{want - first_row} rows"
        beats = [t.data for t in tb.result.transfers[first_row:]]
        for i, op in enumerate(ops):
            got = unpack_rows(cfg.n, beats[i * cfg.m:(i + 1) * cfg.m])
            exp = np.asarray(op[4], dtype=np.int64)
            if got.tolist() != exp.tolist():
                bad = np.argwhere(got != exp)
                first = tuple(bad[0])
                raise AssertionError(f"operation {i}: {len(bad)} results differ; first at "
                                     f"{first}: {int(got[first]):#x}, golden "
                                     f"{int(exp[first]):#x}")

    async def run_ops(dut, ops, pauses=None):
        tb, cfg = make_tb(dut, pauses)
        await tb.reset()
        queue(tb, ops)
        await collect(tb, cfg, ops)
        tb.stop()

    def _rng(tag):
        _, _, seed = load()
        return np.random.default_rng([seed, sum(map(ord, tag))])

    def _count():
        return 6 if os.environ.get("LUTCORE_EFFORT", "quick") == "quick" else 30

    @cocotb.test()
    async def test_random(dut):
        """Every weight format and w of the build, then random ones, back to back."""
        _, cfg, _ = load()
        rng = _rng("random")
        ops = [random_op(rng, cfg, f, w) for f, w in cfg.ops()]
        ops += [random_op(rng, cfg) for _ in range(_count())]
        await run_ops(dut, ops)

    @cocotb.test()
    async def test_corners(dut):
        """NaN/Inf/subnormal activations and weight scales, overflowing tables, all-zero
        activations, the longest K."""
        _, cfg, _ = load()
        rng = _rng("corners")
        ops = [random_op(rng, cfg, corner="specials") for _ in range(3)]
        ops += [random_op(rng, cfg, corner=c) for c in ("large", "zero", "nan_inf")]
        ops.append(random_op(rng, cfg, blocks=min(cfg.blocks_max, 64)))
        await run_ops(dut, ops)

    @cocotb.test()
    async def test_backpressure(dut):
        """Random pauses on every input stream and on the output."""
        _, cfg, seed = load()
        rng = _rng("backpressure")
        prng = random.Random(seed)
        ops = [random_op(rng, cfg) for _ in range(_count())]
        await run_ops(dut, ops, pauses=lambda: random_pauses(prng, 0.3))

    @cocotb.test()
    async def test_reset_mid_operation(dut):
        """``rst`` in the middle of an operation (after its first block's weight beats) drops
        it; the operations after it are exact."""
        _, cfg, _ = load()
        rng = _rng("reset")
        tb, cfg = make_tb(dut)
        await tb.reset()
        doomed = random_op(rng, cfg, blocks=min(3, cfg.blocks_max))
        queue(tb, [doomed])
        # past the first block, or half way through a one-block operation
        target = len(doomed[2]) // len(doomed[3]) + 1 if len(doomed[3]) > 1 else \
            max(1, len(doomed[2]) // 2)
        budget = 100 + 4 * len(doomed[2])
        while len(tb.weight.transfers) < target and budget:
            await tb.cycles(1)
            budget -= 1
        assert budget and not tb.result.transfers, "no reset in the middle of the operation"
        await tb.reset()
        first = len(tb.result.transfers)
        ops = [random_op(rng, cfg) for _ in range(3)]
        queue(tb, ops)
        await collect(tb, cfg, ops, first)
        tb.stop()

    @cocotb.test()
    async def test_utilization(dut):
        """Back to back at K >= 256 (all sources valid, o_result always ready): weight beats
        per cycle from the first to the last weight beat; the array never waits."""
        _, cfg, _ = load()
        rng = _rng("utilization")
        blocks = min(cfg.blocks_max, -(-256 // block_k(cfg)))
        out = []
        for fmt, w in [(f, w) for f, w in cfg.ops() if f in (WeightFormat.INT,
                                                              WeightFormat.BINARY)]:
            tb, cfg = make_tb(dut)
            await tb.reset()
            ops = [random_op(rng, cfg, fmt, w, blocks) for _ in range(3)]
            queue(tb, ops)
            await collect(tb, cfg, ops)
            tb.stop()
            edges = [t.cycle for t in tb.weight.transfers]
            util = len(edges) / (edges[-1] - edges[0] + 1)
            last = tb.result.transfers[-1].cycle
            out.append({"format": fmt.label, "w": w, "k": blocks * block_k(cfg),
                        "weight_beats": len(edges), "utilization": util,
                        "cycles_to_last_result": last, "overall": len(edges) / last})
            dut._log.info("utilization %s", out[-1])
        path = os.environ.get("LUTCORE_UTIL_FILE")
        if path:
            with open(path, "w") as f:
                json.dump(out, f, indent=1)
        if blocks * block_k(cfg) >= 256:
            worst = min(o["utilization"] for o in out)
            assert worst >= 0.99, f"the array waited: utilization {worst:.4f}"


def run_fp_lut_sim(cfg, sim, workdir, *, seed=None, effort="quick", stage_cls=None,
                   testcase=None):
    """Emit the FpLutArray of ``cfg``, build it for ``sim`` and run this module; returns the
    run facts and the measured utilization (``test_utilization``). ``stage_cls`` replaces the
    FP scale stage (mutants). AssertionError on failure."""
    import contextlib
    from pathlib import Path
    from unittest import mock

    from gen.emit import emit
    from hw import fp_lut_array
    from tb.runner import run_sim

    workdir = Path(workdir).resolve()
    patch = mock.patch.object(fp_lut_array, "FpScaleStage", stage_cls) if stage_cls else \
        contextlib.nullcontext()
    with patch:
        res = emit(cfg, workdir / "rtl")
    util_file = workdir / f"utilization_{sim}.json"
    util_file.unlink(missing_ok=True)
    run = run_sim(res["verilog"], res["manifest"], sim, workdir, seed=seed, effort=effort,
                  test_module="tb.test_fp_lut_array", testcase=testcase,
                  extra_env={"LUTCORE_UTIL_FILE": str(util_file)})
    if testcase is None and run["tests"] != TESTS:
        raise AssertionError(f"{sim} {res['name']}: {run['tests']} cocotb tests ran, "
                             f"not {TESTS}")
    util = json.loads(util_file.read_text()) if util_file.is_file() else None
    return {"seconds": run["build_s"] + run["run_s"], "name": res["name"], "run": run,
            "utilization": util}
