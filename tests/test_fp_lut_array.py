# amaranth: UnusedElaboratable=no
"""FpLutArray (hw/fp_lut_array.py, the ``q`` path of docs/fp-lut.md) in amaranth.sim.

The integer array on arbitrary quantized tables is checked with a plain model written here
from docs/fp-lut.md section 3 (``r2`` = twice the block's result from full tables), the FP
stage with the section-4 reference of tests/test_fp_scale_stage.py; the array's utilization
(weight beats per cycle) is measured back to back with every source valid and the output
always ready. The emitted Verilog runs against the golden model in tests/test_fp_lut_sim.py.
"""
import random
from pathlib import Path

import numpy as np
import pytest
from amaranth.sim import Simulator

from gen import fp
from gen.config import LutConfig, WeightFormat
from gen.golden import bit_planes, random_weights, weight_codes
from hw import correction
from hw.fp_lut_array import FpLutArray, fp_cmd_layout
from hw.fp_scale_stage import scale_layout
from hw.layouts import ArrayPacker, table_layout, weight_plane_layout
from tests.simutil import stream_get, stream_put
from tests.test_fp_scale_stage import random_block, reference

SEED = 1515


def cfg_of(act="fp16", m=2, n=3, scale_block=2, w_bits=2, table_bits=6, scale_stage_w=1):
    return LutConfig(w_bits=w_bits, g=4, m=m, n=n, k_max=256, act_format=act,
                     table_format="q", table_bits=table_bits, scale_block=scale_block,
                     scale_stage_w=scale_stage_w)


def random_op(rng, cfg, fmt, w, blocks, scales=True):
    """Random stored ``q`` tables, weights and scales of one operation: its beats and the
    expected ``m x n`` FP32 results (``r2`` from full tables, then the stage's math)."""
    fmt = WeightFormat.parse(fmt)
    g, e = cfg.g, cfg.table_entries
    steps = blocks * cfg.groups_max
    stored = rng.integers(-cfg.table_max, cfg.table_max + 1, (cfg.m, steps, e))
    full = np.concatenate([stored, -stored[..., ::-1]], axis=-1)   # T[~idx] = -T[idx]
    wv = random_weights(rng, (steps * g, cfg.n), fmt, w)
    planes = bit_planes(weight_codes(wv, fmt, w), w)                # w x K x n, MSB first
    idx = np.einsum("wjgn,g->wjn", planes.reshape(w, steps, g, cfg.n), 1 << np.arange(g))
    tables = [ArrayPacker(table_layout(cfg)).pack(stored[:, j]) for j in range(steps)]
    weights = [ArrayPacker(weight_plane_layout(cfg)).pack(idx[b, j])
               for j in range(steps) for b in range(w)]
    blocks_r2, tss, wss, scale_beats = [], [], [], []
    for k in range(blocks):
        js = range(k * cfg.groups_max, (k + 1) * cfg.groups_max)
        acc = sum((1 << (w - 1 - b)) * full[:, j, :][:, idx[b, j]]
                  for j in js for b in range(w))                     # m x n
        s = -sum(stored[:, j, 0] for j in js)                        # S, per row
        if fmt == WeightFormat.BINARY:
            r2 = 2 * acc
        elif fmt == WeightFormat.UINT:
            r2 = acc + ((1 << w) - 1) * s[:, None]
        else:
            r2 = acc - s[:, None]
        _, ts, ws = random_block(rng, cfg, wide=k % 2 == 1)
        blocks_r2.append(r2)
        tss.append(ts)
        wss.append(ws)
        scale_beats.append(scale_layout(cfg).const(
            {"ts": [int(x) for x in ts], "ws": [int(x) for x in ws]}).as_value().value)
    cmd = fp_cmd_layout(cfg).const({"format": fmt, "w_bits": w,
                                    "blocks": blocks}).as_value().value
    return cmd, tables, weights, scale_beats, reference(cfg, blocks_r2, tss, wss)


def simulate(dut, ops, rng=None, gap=0.0, stall=0.0):
    """Run ``ops``; returns the results per operation and the edges of the weight beats."""
    cfg = dut.cfg
    streams = [(dut.i_cmd, [op[0] for op in ops]), (dut.i_table, sum((op[1] for op in ops), [])),
               (dut.i_weight, sum((op[2] for op in ops), [])),
               (dut.i_scale, sum((op[3] for op in ops), []))]
    got, edges = [], []
    rngs = [random.Random(rng.random()) if rng else None for _ in range(5)]

    def putter(port, beats, r):
        async def put(ctx):
            await stream_put(ctx, port, beats, r, gap)
        return put

    async def get(ctx):
        got.extend(await stream_get(ctx, dut.o_result, cfg.m * len(ops), rngs[4], stall))

    async def watch(ctx):
        cycle = 0
        async for _, _, valid, ready in ctx.tick().sample(dut.i_weight.valid,
                                                          dut.i_weight.ready):
            if valid and ready:
                edges.append(cycle)
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for bench in [putter(p, b, r) for (p, b), r in zip(streams, rngs)] + [get]:
        sim.add_testbench(bench)
    sim.add_process(watch)
    # a deadline, so an array that stalls fails (too few results) instead of hanging
    sim.run_until(1e-8 * (200 + 4 * sum(len(op[2]) + cfg.m for op in ops)))
    res = [fp.unpack_fp_results(cfg.n, got[i * cfg.m:(i + 1) * cfg.m]).tolist()
           for i in range(len(ops))]
    return res, edges


def check(dut, ops, **kw):
    got, _ = simulate(dut, ops, **kw)
    assert len(got) == len(ops)
    for i, op in enumerate(ops):
        assert got[i] == op[4], f"operation {i}: {got[i]} != {op[4]}"


@pytest.mark.parametrize("act,w_bits", [("fp16", 2), ("bf16", 4)])
def test_random_tables_every_format(act, w_bits):
    """Every (format, w) of the build, 1..3 blocks, random gaps and stalls."""
    cfg = cfg_of(act, w_bits=w_bits)
    rng = np.random.default_rng(SEED)
    ops = [random_op(rng, cfg, f, w, 1 + i % 3) for i, (f, w) in enumerate(cfg.ops())]
    check(FpLutArray(cfg), ops, rng=random.Random(SEED), gap=0.25, stall=0.25)


class HalvingColumn(correction.ColumnCorrection):
    """Mutant: the offset correction still halves ``acc + corr`` with ``q`` tables."""

    def _twice(self, acc, corr):
        return (acc + corr) >> 1


def test_halving_mutant_fails(monkeypatch):
    cfg = cfg_of()
    rng = np.random.default_rng(SEED + 1)
    ops = [random_op(rng, cfg, "int", 2, 1), random_op(rng, cfg, "uint", 1, 2)]
    monkeypatch.setattr(correction, "ColumnCorrection", HalvingColumn)
    with pytest.raises(AssertionError, match="operation"):
        check(FpLutArray(cfg), ops)


def utilization(cfg, fmt, w, k, ops=3, stall=0.0):
    """Weight beats per cycle of ``ops`` back-to-back operations of ``K = k`` (every source
    always valid, ``o_result`` ready except with probability ``stall``): from the first to
    the last weight beat."""
    rng = np.random.default_rng(SEED + w)
    blocks = k // (cfg.scale_block * cfg.g)
    batch = [random_op(rng, cfg, fmt, w, blocks) for _ in range(ops)]
    got, edges = simulate(FpLutArray(cfg), batch, rng=random.Random(SEED), stall=stall)
    assert [g_ for g_ in got] == [op[4] for op in batch]
    return len(edges) / (edges[-1] - edges[0] + 1)


@pytest.mark.parametrize("scale_block,ws", [(2, (1, 2)), (8, (1,))],
                         ids=["block=m", "block=8"])
def test_array_never_waits(scale_block, ws):
    """At K = 256 the array takes a weight beat on every cycle (>= 99 %), at scale_block = m
    (the stage has no slack at w = 1) and 8, whatever w."""
    cfg = cfg_of(m=2, n=3, scale_block=scale_block, w_bits=2)
    for w in ws:
        assert utilization(cfg, "uint", w, 256) >= 0.99


def test_stage_sized_for_the_largest_w():
    """``scale_stage_w = w_bits``: half the lanes at w_bits = 2; operations of w = 2 still
    never wait, those of w = 1 wait for the stage (they run at the w = 2 rate), both exact."""
    cfg = cfg_of(m=2, n=4, scale_block=2, w_bits=2, scale_stage_w=2)
    assert (cfg.scale_lanes, cfg.row_cycles) == (2, 2)
    assert cfg_of(m=2, n=4, scale_block=2, w_bits=2).scale_lanes == 4
    assert cfg.name.endswith("_tq6b2s2")
    assert utilization(cfg, "int", 2, 256) >= 0.99
    assert 0.45 <= utilization(cfg, "uint", 1, 256) < 0.6


@pytest.mark.parametrize("kw,message", [
    ({"scale_stage_w": 3}, "scale_stage_w must be in 1..2, not 3"),
    ({"scale_stage_w": 0}, "scale_stage_w must be in 1..2, not 0"),
    ({"scale_stage_w": 2, "table_format": "fp"}, "scale_stage_w applies to q tables only"),
    ({"scale_sig_bits": 7}, "scale_sig_bits must be in 8..24, not 7"),
    ({"scale_sig_bits": 11, "table_format": "fp"}, "scale_sig_bits applies to q tables only"),
    ({"scale_sig_bits": 11, "precompute": True}, "scale_sig_bits must be 24 with precompute"),
])
def test_scale_stage_w_checked(kw, message):
    with pytest.raises(ValueError, match=message):
        LutConfig(**{"w_bits": 2, "act_format": "fp16", "table_format": "q", **kw})


def test_utilization_sees_a_waiting_array():
    """The measure can fail: an output ready only half the time makes the array wait (the
    stage holds a row it cannot emit, so the next blocks back up into the array)."""
    cfg = cfg_of(m=2, n=3, scale_block=2, w_bits=2)
    assert utilization(cfg, "uint", 1, 32, ops=4, stall=0.8) < 0.99


# -- gen.emit ---------------------------------------------------------------------------------

def test_lanes_merge_into_one_module(tmp_path):
    """Every lane of the scale stage is the same Verilog module apart from its name, so the
    synthesis flow's merge keeps one lane definition instantiated ``scale_lanes`` times."""
    import re

    from gen.emit import emit
    from gen.synth.netlist import dedup_modules, yosys_id
    cfg = cfg_of(m=2, n=8, scale_block=2, scale_stage_w=2).replace(k_max=64)
    assert cfg.scale_lanes == 4
    r = emit(cfg, tmp_path)
    text = Path(r["verilog"]).read_text()
    lanes = re.findall(r"^module (\\\S*stage\.lane\d+)", text, re.M)
    assert len(lanes) == cfg.scale_lanes
    merged_text, merged = dedup_modules(text, yosys_id(r["name"]))
    kept = [n for n in lanes if n not in merged]
    assert len(kept) == 1 and all(merged[n] == kept[0] for n in lanes if n != kept[0])
    assert len(re.findall(r"^\s*" + re.escape(kept[0]) + r"\s", merged_text, re.M)) == 4


def test_emit_cli_q(tmp_path):
    from gen.emit import main
    out = tmp_path / "ok"
    assert main(["--act", "bf16", "--table-format", "q", "--table-bits", "6", "--scale-block",
                 "4", "--m", "2", "--n", "3", "--k-max", "64", "--out", str(out)]) == 0
    cfg = cfg_of("bf16", m=2, n=3, scale_block=4, table_bits=6).replace(k_max=64)
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"{cfg.name}.json", f"{cfg.name}.v"]
    manifest = __import__("json").loads((out / files[0]).read_text())
    assert LutConfig.from_dict(manifest) == cfg
    assert {k: manifest["params"][k] for k in ("act_format", "table_format", "table_bits",
                                               "scale_block")} == \
        {"act_format": "bf16", "table_format": "q", "table_bits": 6, "scale_block": 4}
    assert manifest["derived"] == cfg.derived() and manifest["act"] == "bf16"
    ports = {p["name"]: (p["direction"], p["width"]) for p in manifest["ports"]}
    assert ports["i_cmd__payload"] == ("input", cfg.fp_cmd_width) == \
        ("input", manifest["top_cmd_width"])
    assert ports["i_scale__payload"] == ("input", cfg.scale_width)
    assert ports["i_table__payload"] == ("input", cfg.table_width)
    assert ports["o_result__payload"] == ("output", cfg.fp_result_row_width)
    fields = manifest["layouts"]["i_scale__payload"]["fields"]
    assert [(f["name"], f["offset"]) for f in fields] == [("ts", 0),
                                                          ("ws", cfg.table_scale_width)]
    text = (out / files[1]).read_text()
    assert text.count(f"module {manifest['pe_module']}(") == 1
    assert text.count(f"  {manifest['pe_module']} ") == cfg.m * cfg.n


@pytest.mark.parametrize("args,message", [
    (["--table-format", "q"], "--act must be fp16 or bf16 with --table-format q, not int"),
    (["--act", "fp16", "--table-format", "q", "--table-bits", "3"],
     "--table-bits: table_bits must be in 4..16, not 3"),
    (["--act", "fp16", "--table-format", "q", "--scale-block", "300"],
     "--scale-block: scale_block must be in 1..256, not 300"),
    (["--act", "fp16", "--table-format", "q", "--m", "4", "--scale-block", "2"],
     "--scale-block: scale_block must be at least m * tables_per_pe = 4 (the FP stage takes "
     "a block's m result rows while the next block runs), not 2"),
    (["--act", "fp16", "--table-format", "q", "--top", "mac_direct"],
     "--table-format q applies to --top array or engine, not --top mac_direct"),
    (["--scale-block", "8"], "--scale-block applies to --table-format q only, not "
                             "--table-format int"),
    (["--act", "fp16", "--table-format", "q", "--scale-stage-w", "3"],
     "--scale-stage-w: scale_stage_w must be in 1..2, not 3"),
    (["--scale-stage-w", "2"], "--scale-stage-w applies to --table-format q only, not "
                               "--table-format int"),
    (["--act", "fp16", "--table-format", "q", "--scale-sig-bits", "25"],
     "--scale-sig-bits: scale_sig_bits must be in 8..24, not 25"),
    (["--act", "fp16", "--table-format", "fp8"],
     "argument --table-format: invalid choice: 'fp8'"),      # argparse words the rest
])
def test_emit_cli_bad_q_options(args, message, tmp_path, capsys):
    from gen.emit import main
    with pytest.raises(SystemExit) as exc:
        main([*args, "--out", str(tmp_path / "bad")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f": error: {message}" in err and err.count("\n") == 1 and err.endswith("\n")
    assert not (tmp_path / "bad").exists()
