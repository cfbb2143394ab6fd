"""gen.formal: the proofs pass on correct designs and fail on deliberately broken ones.

Marked ``formal`` (they run yowasp Yosys and SymbiYosys); the quick ones are in the default
suite, the longer ones ``slow``. Mutants are built by subclassing the hardware block and
monkeypatching the name the enclosing block instantiates, so ``gen.emit`` writes mutated
Verilog and the proof runs on it exactly as on the real design.
"""
from __future__ import annotations

import pytest
from amaranth import Array, Module, Mux, Signal, signed
from amaranth.lib import data

import hw.control
import hw.correction
import hw.fp.units
import hw.lookup
import hw.lut_array
import hw.lut_pe
from gen.config import LutConfig, WeightFormat
from gen.formal import FAILED, PROVED, TIMEOUT, render_table, run_proofs
from gen.formal.cli import main
from gen.formal.emitted import EmittedVerilog
from gen.formal.fp_units import fp_unit_cases, fp_unit_proof

pytestmark = pytest.mark.formal

SMALL = LutConfig(w_bits=2, a_bits=4, g=2, m=2, n=2, k_max=4)


def _results(cfg, tmp_path, props, **kw):
    results = run_proofs(cfg, tmp_path, props, **kw)
    assert results, props
    return results


# -- mutants ----------------------------------------------------------------------------------
class _MutantLookup(hw.lookup.TableLookup):
    """The symmetric lookup with the index inversion or the negation left out."""
    fault = None

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        view = data.View(data.ArrayLayout(signed(cfg.entry_width), cfg.table_entries),
                         self.table_row)
        msb, low = self.index[cfg.g - 1], self.index[:cfg.g - 1]
        select = low if self.fault == "no_invert" else low ^ msb.replicate(cfg.g - 1)
        value = Array(view[e] for e in range(cfg.table_entries))[select]
        m.d.comb += self.entry.eq(value if self.fault == "no_negate" else Mux(msb, -value, value))
        return m


class NoInvert(_MutantLookup):
    fault = "no_invert"


class NoNegate(_MutantLookup):
    fault = "no_negate"


class DroppedTerm(hw.correction.ColumnCorrection):
    """A column without the activation-sum term: ``result = acc / 2`` (binary: ``acc``)."""

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.result.eq(Mux(self.binary, self.acc, self.acc >> 1))
        return m


class EarlyDrop(hw.control.OutputDrain):
    """Output valid falls after one cycle without a transfer (the row is lost)."""

    def elaborate(self, m, capture, latch):
        super().elaborate(m, capture, latch)
        with m.If(self.valid & ~self.o_result.ready & ~capture):
            m.d.sync += self.valid.eq(0)


# -- the proofs pass --------------------------------------------------------------------------
def test_fast_proofs_default_point(tmp_path):
    results = _results(LutConfig(), tmp_path, ("lookup", "pe_group", "correction", "acc_range"))
    assert all(r.result == PROVED for r in results), render_table(results)
    assert {r.prop for r in results} == {"lookup", "pe_group", "correction", "acc_range"}
    # every (format, w) of the build has its correction proof
    assert len([r for r in results if r.prop == "correction"]) == len(LutConfig().ops())


def test_all_proofs_small_point(tmp_path):
    results = _results(SMALL, tmp_path, ("lookup", "pe_group", "correction", "acc_range"))
    assert all(r.result == PROVED for r in results), render_table(results)


def test_stream_20_cycles(tmp_path):
    # the array's streams over 20 cycles from reset (several operations back to back)
    (r,) = _results(SMALL, tmp_path, ("stream",), stream_depth=20)
    assert r.result == PROVED, r.detail


def test_engine_stream_10_cycles(tmp_path):
    # 10 cycles: a GEMM of two row blocks finishes by cycle 8, the next one starts
    (r,) = _results(SMALL, tmp_path, ("engine_stream",), engine_depth=10)
    assert r.result == PROVED, r.detail


@pytest.mark.slow
def test_stream_30_cycles(tmp_path):
    (r,) = _results(SMALL, tmp_path, ("stream",), stream_depth=30)
    assert r.result == PROVED, r.detail


@pytest.mark.slow
@pytest.mark.parametrize("point", [
    dict(output_buffer="row"), dict(output_buffer="none"), dict(accumulation="shifted"),
    dict(m=1, n=1, w_bits=1), dict(w_bits=4, k_max=8),
], ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()))
def test_stream_other_points_20_cycles(tmp_path, point):
    (r,) = _results(SMALL.replace(**point), tmp_path, ("stream",), stream_depth=20)
    assert r.result == PROVED, r.detail


@pytest.mark.slow
@pytest.mark.parametrize("point", [dict(), dict(precompute=True)],
                         ids=["tables", "precompute"])
def test_engine_stream_12_cycles(tmp_path, point):
    (r,) = _results(SMALL.replace(**point), tmp_path, ("engine_stream",), engine_depth=12)
    assert r.result == PROVED, r.detail


def test_full_table_build(tmp_path):
    cfg = SMALL.replace(symmetric=False)
    results = _results(cfg, tmp_path, ("lookup", "pe_group"))
    assert all(r.result == PROVED for r in results), render_table(results)


# -- mutants make the corresponding proof fail ------------------------------------------------
@pytest.mark.parametrize("mutant", [NoInvert, NoNegate])
def test_lookup_mutants_fail(tmp_path, monkeypatch, mutant):
    monkeypatch.setattr(hw.lut_pe, "TableLookup", mutant)
    (r,) = _results(LutConfig(), tmp_path, ("lookup",))
    assert r.result == FAILED
    assert "index=" in r.detail and "ok=0" in r.detail, r.detail


def test_dropped_correction_term_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(hw.correction, "ColumnCorrection", DroppedTerm)
    results = _results(SMALL, tmp_path, ("correction",))
    verdict = {r.case: r.result for r in results}
    for fmt, w in SMALL.ops():
        expect = PROVED if fmt is WeightFormat.BINARY else FAILED
        assert verdict[f"{fmt.label} w={w}"] == expect, render_table(results)


@pytest.mark.parametrize("prop", ["stream", "engine_stream"])
def test_early_valid_drop_fails(tmp_path, monkeypatch, prop):
    # the engine's o_result is its array's: the same mutant breaks both
    monkeypatch.setattr(hw.lut_array, "OutputDrain", EarlyDrop)
    (r,) = _results(SMALL, tmp_path, (prop,), stream_depth=8, engine_depth=8)
    assert r.result == FAILED, r.detail
    assert r.vcd is not None and r.vcd.is_file()
    assert "o_result__valid" in r.detail


class GreedyTable(hw.lut_array.LutArray):
    """An array whose table register takes a new table while the held one still has planes
    to step (``i_table.ready`` high always): a table is overwritten, its group lost."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        # the last assignment wins in Amaranth: ready overrides the array's own
        m.d.comb += self.i_table.ready.eq(1)
        return m


def test_table_overwrite_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(hw.lut_array, "LutArray", GreedyTable)
    (r,) = _results(SMALL, tmp_path, ("stream",), stream_depth=8)
    assert r.result == FAILED, r.detail


# -- plumbing ---------------------------------------------------------------------------------
def test_emitted_ports_and_renamed_port():
    text = ("module \\top.correction (a, \\acc$6 );\n  input [3:0] \\acc$6 ;\n"
            "  output a;\nendmodule\n")
    ev = EmittedVerilog(text)
    assert ev.submodule("top", "correction") == "top.correction"
    ports = ev.ports("top.correction")
    assert ports["acc"].name == "acc$6" and ports["acc"].width == 4
    # acc$6 is a plain Verilog identifier too (the same name as the escaped \\acc$6 )
    assert ev.connect("top.correction", acc="x", a="y") == ".acc$6(x),\n    .a(y)"
    with pytest.raises(LookupError):
        ev.submodule("top", "lookup")
    with pytest.raises(LookupError):
        ev.connect("top.correction", acc="x")


@pytest.mark.parametrize("argv, option", [
    (["--w-bits", "0"], "--w-bits"),
    (["--only", "nonsense"], "--only"),
    (["--timeout", "0"], "--timeout"),
    (["--engine-depth", "1"], "--engine-depth"),
    (["--solver", "minisat"], "--solver"),
])
def test_bad_option_one_line_exit_2(tmp_path, capsys, argv, option):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        main(argv + ["--out", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and option in err[0]
    assert not out.exists()


def test_cli_runs_and_prints_table(tmp_path, capsys):
    rc = main(["--w-bits", "1", "--a-bits", "4", "--group", "2", "--m", "1", "--n", "1",
               "--k-max", "2", "--only", "lookup,pe_group", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "property" in out and "2 proved, 0 not proved" in out


@pytest.mark.slow
def test_pe_group_w1_to_w4(tmp_path):
    results = _results(LutConfig(w_bits=4), tmp_path, ("pe_group",))
    assert [r.case for r in results] == ["w=1", "w=2", "w=3", "w=4"]
    assert all(r.result == PROVED for r in results), render_table(results)


@pytest.mark.slow
@pytest.mark.parametrize("g", [2, 3, 4, 5, 6])
def test_lookup_every_group_size_a16(tmp_path, g):
    (r,) = _results(LutConfig(g=g, a_bits=16, n=2), tmp_path, ("lookup",))
    assert r.result == PROVED, r.detail


# -- a timed-out bounded proof leaves nothing running -----------------------------------------
def _processes_under(path):
    """Live processes whose working directory or command line is inside ``path``."""
    from pathlib import Path
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if d.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX":
                continue
            cwd = str(d.joinpath("cwd").resolve())
            cmdline = d.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if cwd.startswith(str(path)) or str(path) in cmdline:
            found.append((int(d.name), cwd, cmdline[:120]))
    return found


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self"), reason="needs /proc")
def test_timeout_kills_solver(tmp_path):
    # 300 cycles take far longer than 12 s; the solver starts after ~1-3 s of Yosys
    (r,) = _results(SMALL, tmp_path, ("stream",), stream_depth=300, timeout=12)
    assert r.result == TIMEOUT, r.detail
    engine_dir = r.workdir / "proof" / "engine_0"
    assert engine_dir.is_dir(), "the timeout came before the solver started: nothing tested"
    assert _processes_under(tmp_path.resolve()) == []


# -- FP units against SMT-LIB floating point ---------------------------------------------------
def _unsigned_zero_finish(m, term, rounded, fmt):
    """``finish`` with the sign of a zero product dropped (``-x * 0`` gives +0, not -0)."""
    res = _FINISH(m, term, rounded, fmt)
    out = Signal(fmt.width)
    m.d.comb += out.eq(Mux(term.zero, 0, res))
    return out


_FINISH = hw.fp.units.finish


def _fp_case(unit, label):
    (case,) = [c for c in fp_unit_cases(2) if c[0] == unit and c[2] == label]
    return case


@pytest.mark.slow
def test_fp_int_mul_bf16_proves(tmp_path):
    unit, params, label = _fp_case("int_mul", "int_mul bf16 x i2")
    result, seconds, detail, _ = fp_unit_proof(unit, params, tmp_path)
    assert result == PROVED, detail


def test_fp_int_mul_signed_zero_mutant_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(hw.fp.units, "finish", _unsigned_zero_finish)
    unit, params, label = _fp_case("int_mul", "int_mul bf16 x i2")
    result, seconds, detail, _ = fp_unit_proof(unit, params, tmp_path)
    assert result == FAILED, detail
    # the counterexample: a zero product (v = 0 or a = +-0) whose sign was dropped
    values = dict(kv.split("=") for kv in detail.split())
    assert int(values["out"], 16) == 0, detail


@pytest.mark.slow
def test_fp_units_all(tmp_path):
    # the FP x INT multipliers prove in minutes; the FP x FP multipliers and the adder may
    # run out of their 600 s (docs/formal.md), but no input may make them differ
    results = _results(LutConfig(w_bits=4), tmp_path, ("fp_units",))
    verdict = {r.case: r.result for r in results}
    assert verdict["int_mul bf16 x i4"] == verdict["int_mul fp16 x i4"] == PROVED, verdict
    assert set(verdict.values()) <= {PROVED, TIMEOUT}, render_table(results)
