"""cocotb tests of an emitted FP MAC array (``python -m gen.emit --top mac_dequant --act fp16``).

Environment: ``LUTCORE_MANIFEST`` (the emitted manifest), ``LUTCORE_SEED``, ``LUTCORE_EFFORT``
(``quick``/``full``: number of operations). Every result row is compared bit-exactly with
``gen.fp.fp_mac_tile``; ``run_fp_mac_sim`` builds and runs this module.
"""
from __future__ import annotations

import json
import os
import random

import numpy as np

from gen import fp
from gen.config import LutConfig, WeightFormat
from gen.golden import random_weights


def load():
    manifest = json.loads(open(os.environ["LUTCORE_MANIFEST"]).read())
    params = dict(manifest["params"])
    if params.get("weight_formats") is not None:
        params["weight_formats"] = tuple(params["weight_formats"])
    if 2 <= params["g"] <= 6:
        cfg = LutConfig(**params)
    else:                                        # the MAC tile M8N4K16 is outside 2..6
        from gen.synth import MacShapeConfig
        cfg = MacShapeConfig(**params)
    return manifest, cfg, int(os.environ.get("LUTCORE_SEED", "1"))


def random_acts(rng, act, shape, specials=0.0, scale=1.0):
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    with np.errstate(all="ignore"):
        bits = (x.view(np.uint32) >> 16).astype(np.int64) if act == fp.BF16 else \
            x.astype(np.float16).view(np.uint16).astype(np.int64)
    if specials:
        sp = np.array(fp.special_values(act))
        pick = rng.random(shape) < specials
        bits[pick] = rng.choice(sp, int(pick.sum()))
    return bits


def random_op(rng, cfg, act, kind, corner=None):
    """One operation's streams and its expected ``m x n`` results."""
    fmts = [f for f in WeightFormat if f.label in (cfg.weight_formats or ())
            or cfg.weight_formats is None]
    fmt = fmts[rng.integers(len(fmts))]
    ws = [w for w in range(1, cfg.w_bits + 1) if fmt.allows(w)]
    w = ws[rng.integers(len(ws))]
    k = int(rng.integers(1, 4 * cfg.g + 1))
    if corner == "long":
        k = cfg.groups_max * cfg.g if cfg.groups_max <= 64 else 64 * cfg.g
    specials = 0.15 if corner == "specials" else 0.0
    scale = 300.0 if corner == "large" else 1.0  # fp16 sums overflow into big fp32 values
    acts = random_acts(rng, act, (cfg.m, k), specials, scale)
    weights = random_weights(rng, (k, cfg.n), fmt, w)
    s = (rng.random(cfg.n) * 0.2 + 0.005).astype(np.float32)
    scales = (s.view(np.uint32) >> 16).astype(np.int64) if act == fp.BF16 else \
        s.astype(np.float16).view(np.uint16).astype(np.int64)
    if corner == "specials":
        scales[0] = rng.choice(fp.special_values(act))
    return fp.fp_mac_stream(cfg, acts, weights, scales, fmt, w, kind, act)


try:
    import cocotb
except ImportError:
    cocotb = None

if cocotb is not None:
    from tb.streams import TB, random_pauses, stream_ports

    ROLES = {"cmd": "i_cmd", "scale": "i_scale", "act": "i_act", "weight": "i_weight",
             "result": "o_result"}

    async def run_ops(dut, ops, pauses=None):
        manifest, cfg, _ = load()
        tb = TB(dut, stream_ports(manifest["ports"]), roles=ROLES)
        if pauses is not None:
            tb.set_pauses(sources=pauses, sinks=pauses())
        await tb.reset()
        for cmd, scale, act_beats, weight_beats, _ in ops:
            tb.cmd.send_nowait(int(cmd))
            tb.scale.send_nowait(int(scale))
            tb.act.send_nowait([int(b) for b in act_beats])
            tb.weight.send_nowait([int(b) for b in weight_beats])
        want_rows = cfg.m * len(ops)
        budget = 100 + 4 * sum(len(op[2]) + cfg.m for op in ops)
        while len(tb.result.transfers) < want_rows and budget:
            await tb.cycles(1)
            budget -= 1
        tb.stop()
        assert len(tb.result.transfers) == want_rows, "the array stalled"
        beats = [t.data for t in tb.result.transfers]
        for i, op in enumerate(ops):
            got = fp.unpack_fp_results(cfg.n, beats[i * cfg.m:(i + 1) * cfg.m])
            if got.tolist() != op[4].tolist():
                bad = np.argwhere(got != op[4])[0]
                raise AssertionError(f"operation {i}: {len(np.argwhere(got != op[4]))} results "
                                     f"differ; first at {tuple(bad)}: {int(got[tuple(bad)]):#x}"
                                     f", golden {int(op[4][tuple(bad)]):#x}")

    def _ops(corner=None, count=None):
        manifest, cfg, seed = load()
        rng = np.random.default_rng(seed + hash(corner or "") % 1000)
        effort = os.environ.get("LUTCORE_EFFORT", "quick")
        count = count or (6 if effort == "quick" else 40)
        kind, act = manifest["top"].split("_", 1)[1], fp.fp_format(manifest["act"])
        return [random_op(rng, cfg, act, kind, corner) for _ in range(count)]

    @cocotb.test()
    async def test_random(dut):
        """Random operations over every weight format and precision, back to back."""
        await run_ops(dut, _ops())

    @cocotb.test()
    async def test_corners(dut):
        """Special values in activations and a scale, large sums, the longest K."""
        await run_ops(dut, _ops("specials") + _ops("large", 2) + _ops("long", 1))

    @cocotb.test()
    async def test_backpressure(dut):
        """Random pauses on every stream (and the sink)."""
        _, _, seed = load()
        rng = random.Random(seed)
        await run_ops(dut, _ops(), pauses=lambda: random_pauses(rng, 0.3))


def run_fp_mac_sim(cfg, top, act, sim, workdir, *, seed=None, effort="quick", pe_cls=None):
    """Emit the FP MAC array, build it for ``sim`` and run this module; AssertionError on
    failure. ``pe_cls`` replaces the PE class (mutants)."""
    import contextlib
    from pathlib import Path
    from unittest import mock

    from gen.emit import emit
    from hw import fp_mac_array
    from tb.runner import run_sim

    workdir = Path(workdir).resolve()
    patch = mock.patch.object(fp_mac_array, "FpMacPE", pe_cls) if pe_cls else \
        contextlib.nullcontext()
    with patch:
        res = emit(cfg, workdir / "rtl", top=top, act=act)
    run = run_sim(res["verilog"], res["manifest"], sim, workdir, seed=seed, effort=effort,
                  test_module="tb.test_fp_mac_array")
    if run["tests"] != 3:
        raise AssertionError(f"{sim} {res['name']}: {run['tests']} cocotb tests ran, not 3")
    return {"seconds": run["build_s"] + run["run_s"], "name": res["name"]}
