# amaranth: UnusedElaboratable=no
"""The FP hardware precompute with ``precompute_rows`` R > 1 (hw/fp_precompute.py: R table-sum
trees and quantizers, R rows of a group per cycle), bit for bit against the golden
``gen.fp_lut.fp_tables`` / ``quantize_tables``: streams with gaps and back-pressure, the full
rate (a table beat every ``m / R`` cycles) and the first beat's latency, reset, mutants whose
second replica reads row 0's activations or scale; the config checks and the emit CLI."""
from pathlib import Path

import numpy as np
import pytest

from gen.config import LutConfig
from hw.fp_precompute import FpTablePrecompute, _part

from .test_fp_precompute import SEED, check_full_rate, q_cfg, random_acts, run_precompute, \
    run_reset


def r_cfg(rows, **kw):
    return q_cfg(**kw).replace(precompute=True, precompute_rows=rows)


class _Row0Acts(FpTablePrecompute):
    """Mutant: every replica sums the activations of the cycle's first row."""

    def _replica_acts(self, row_acts, rows_rd, j, row_w):
        return _part(rows_rd, 0, row_w)


class _Row0Scale(FpTablePrecompute):
    """Mutant: every replica divides by the scale of the cycle's first row."""

    def _replica_scale(self, q_scales, j):
        return _part(q_scales, 0, 32)


@pytest.mark.parametrize("act,symmetric,m,gap", [("fp16", True, 2, 0.3),
                                                 ("bf16", False, 4, 0.3)])
def test_rows_stream_matches_golden(act, symmetric, m, gap):
    """R = 2 rows per cycle at m = 2 (every row at once) and m = 4 (rows 2, 3 in the second
    cycle), with gaps on the input and back-pressure on both outputs; the two mutants fail."""
    cfg = r_cfg(2, g=2, b=4, act=act, symmetric=symmetric, m=m)
    rng = np.random.default_rng([SEED, m, len(act)])
    acts = np.concatenate([random_acts(rng, cfg, 8), random_acts(rng, cfg, 8, tiny=True),
                           random_acts(rng, cfg, 8, specials=0.2)], axis=1)
    got_t, got_s, want_t, want_s = run_precompute(cfg, acts, seed=SEED, gap=gap)
    assert got_s == want_s and got_t == want_t
    for mutant in (_Row0Acts, _Row0Scale):
        got_t, got_s, _, _ = run_precompute(cfg, acts, seed=SEED, gap=gap, dut=mutant(cfg))
        assert got_s == want_s and got_t != want_t


@pytest.mark.parametrize("g,b,m,rows", [(2, 2, 2, 2), (2, 4, 4, 2), (3, 3, 3, 3)])
def test_rows_full_rate(g, b, m, rows):
    """A table beat every ``m / R`` cycles at full input rate across scale-block boundaries,
    the first beat ``precompute_latency`` cycles after its block's last activation, every
    beat bit-exact. At ``m / R = 1`` the division has no slack (as at ``m = 1``): within a
    block a beat every cycle, at most one missing beat per block boundary."""
    cfg = r_cfg(rows, g=g, b=b, m=m)
    assert cfg.precompute_beat_cycles == m // rows
    check_full_rate(cfg, [SEED, g, b, m, rows])


def test_rows_reset():
    """Reset with every pipeline of both replicas holding rows: the next stream exactly."""
    cfg = r_cfg(2, g=2, b=2, m=2)
    rng = np.random.default_rng(SEED + 9)
    before, after = random_acts(rng, cfg, 16), random_acts(rng, cfg, 8)
    got_t, got_s, want_t, want_s = run_reset(cfg, before, after)
    assert got_t == want_t and got_s == want_s


def test_rows_derived_timing():
    """``m / R`` cycles per beat in the division slack and the latency (R = 1: as before)."""
    base = LutConfig(act_format="fp16", table_format="q", m=4, scale_block=4, precompute=True)
    for rows in (1, 2, 4):
        cfg = base.replace(precompute_rows=rows)
        beat = 4 // rows
        assert cfg.precompute_beat_cycles == beat
        slack = max(1, 4 * (beat - 1) - 1)
        assert cfg.precompute_div_steps == -(-(24 + 8 + 1) // slack)
        assert cfg.precompute_latency == (cfg.g - 2 + cfg.precompute_div_cycles + 1
                                          + cfg.precompute_quantize_stages + beat - 1)
    assert base.name.endswith("_pre")
    assert base.replace(precompute_rows=2).name.endswith("_pre_r2")


@pytest.mark.parametrize("fields,exc,message", [
    (dict(precompute=True, precompute_rows=3), ValueError,
     "precompute_rows must be a divisor of m = 2 (1, 2), not 3"),
    (dict(precompute=True, precompute_rows=0), ValueError,
     "precompute_rows must be a divisor of m = 2 (1, 2), not 0"),
    (dict(precompute=True, precompute_rows=2.0), TypeError,
     "precompute_rows must be an integer, not 2.0"),
    (dict(precompute_rows=2), ValueError,
     "precompute_rows applies to the q-table hardware precompute only: it must be 1 "
     "without precompute, not 2"),
])
def test_rows_config_errors(fields, exc, message):
    with pytest.raises(exc) as info:
        LutConfig(act_format="fp16", table_format="q", m=2, **fields)
    assert str(info.value) == message


@pytest.mark.parametrize("args,message", [
    (["--precompute", "--precompute-rows", "3"],
     "--precompute-rows: precompute_rows must be a divisor of m = 2 (1, 2), not 3"),
    (["--precompute-rows", "2"], "--precompute-rows: precompute_rows applies to"),
])
def test_emit_cli_bad_rows(args, message, tmp_path, capsys):
    from gen.emit import main
    with pytest.raises(SystemExit) as info:
        main(["--act", "fp16", "--table-format", "q", "--top", "engine", *args,
              "--out", str(tmp_path / "bad")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "bad").exists()


def test_rows_engine_keeps_pace_at_w1():
    """The engine with R = m = 2 at w = 1, no pauses: the same results bit for bit, and fewer
    cycles than with R = 1, whose first tile waits ``m`` cycles for every table beat."""
    from .test_fp_engine import CFG, run_fp_engine
    cfg = CFG.replace(g=2, n=2, scale_block=2, precompute=True)
    cycles = {}
    for rows in (1, 2):
        got, want, cycles[rows], steps = run_fp_engine(cfg.replace(precompute_rows=rows), 2,
                                                      48, 4, "uint", 1, seed=12)
        assert got == want
    assert cycles[2] < cycles[1], cycles


@pytest.mark.parametrize("m, rows", [(1, 1), (2, 2)])
def test_one_cycle_per_beat_has_no_zero_width_wire(m, rows, tmp_path):
    """At one cycle per table beat (m / R = 1) the beat's row counter keeps one bit: a 0-bit
    one is emitted as a ``[-1:0]`` wire, which Verilator refuses (the m = 1 precompute engine
    did not build under Verilator before)."""
    from gen.emit import emit
    cfg = LutConfig(act_format="fp16", table_format="q", w_bits=2, g=2, m=m, n=2, k_max=64,
                    scale_block=2, precompute=True, precompute_rows=rows)
    res = emit(cfg, tmp_path, top="engine")
    assert "[-1:0]" not in Path(res["verilog"]).read_text()
