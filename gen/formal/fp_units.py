"""Proofs of the FP units (``hw/fp``) against SMT-LIB's floating-point theory, with z3.

Each proof emits the unit with :func:`hw.fp.lanes.emit_unit` (the Verilog users get), has
Yosys translate it to SMT-LIB (``write_smt2``: one function per port of a state sort) and
asks z3 whether any input makes ``out`` differ from the reference written in the standard's
FloatingPoint theory, where every operation is correctly rounded by definition:

``int_mul``  ``out = round_RNE(a * v)``, ``a`` in ``fmt_in``, ``v`` a signed ``w``-bit integer
``mul``      ``out = round_RNE(a * b)``, both in ``fmt_in``
``add``      ``out = fp.add(RNE, a, b)`` in FP32

The operands are converted exactly into FP64 (``(_ to_fp 11 53)``: every FP16/BF16 value and
every integer of at most 5 bits is an FP64 value), multiplied there (exact: at most 8+8 or
11+11 significand bits) and rounded once into ``fmt_out``, so the reference is the exact
product rounded once. Equality is SMT equality of FloatingPoint values (``+0 != -0``), except
that a NaN result must be the unit's canonical quiet NaN (``fmt_out.qnan``).
"""
from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from gen.fp import fp_format
from gen.synth import SynthesisError, run_yosys

from .engines import ERROR, FAILED, PROVED, TIMEOUT, kill_session, tool_paths

__all__ = ["fp_unit_cases", "fp_unit_proof", "reference_smt"]


def fp_unit_cases(w_bits):
    """``(unit, params, label)`` of each FP unit proof; ``int_mul`` at ``w = w_bits``."""
    cases = [("int_mul", dict(w=w_bits, fmt_in=f, fmt_out="fp32"), f"int_mul {f} x i{w_bits}")
             for f in ("bf16", "fp16")]
    cases += [("mul", dict(fmt_in=f, fmt_out="fp32"), f"mul {f}") for f in ("bf16", "fp16")]
    cases.append(("add", dict(fmt="fp32"), "add fp32"))
    return cases


def _fp(fmt):
    return f"{fmt.exp_bits} {fmt.sig_bits}"


def reference_smt(module, unit, params):
    """SMT-LIB text that asserts ``out`` differs from the reference, and the ports it
    observes: ``obs_<port>`` are their values (for a counterexample). ``module`` is the top
    in ``write_smt2``'s output."""
    def port(p):
        return f"(|{module}_n {p}| s)"
    if unit == "int_mul" and params["w"] == 1:
        # write_smt2 gives 1-bit ports the sort Bool
        v = f"(ite {port('v')} #b1 #b0)"
    elif unit == "int_mul":
        v = port("v")
    fo = fp_format(params.get("fmt_out", params.get("fmt", "fp32")))
    if unit == "add":
        a, b = (f"((_ to_fp {_fp(fo)}) {port(x)})" for x in "ab")
        ref = f"(fp.add RNE {a} {b})"
        ports = {"a": fo.width, "b": fo.width}
    else:
        fi = fp_format(params["fmt_in"])
        a = f"((_ to_fp 11 53) RNE ((_ to_fp {_fp(fi)}) {port('a')}))"
        if unit == "int_mul":
            # (_ to_fp eb sb) of a rounding mode and a bit-vector: the signed integer
            b = f"((_ to_fp 11 53) RNE ((_ sign_extend {8 - params['w']}) {v}))"
            ports = {"a": fi.width, "v": params["w"]}
        else:
            b = f"((_ to_fp 11 53) RNE ((_ to_fp {_fp(fi)}) {port('b')}))"
            ports = {"a": fi.width, "b": fi.width}
        ref = f"((_ to_fp {_fp(fo)}) RNE (fp.mul RNE {a} {b}))"
    ports["out"] = fo.width
    lines = [f"(declare-const s |{module}_s|)", f"(assert (|{module}_h| s))",
             f"(define-fun ref () (_ FloatingPoint {_fp(fo)}) {ref})",
             f"(define-fun ok () Bool (ite (fp.isNaN ref) (= {port('out')} "
             f"(_ bv{fo.qnan} {fo.width})) (= ((_ to_fp {_fp(fo)}) {port('out')}) ref)))",
             *[f"(declare-const obs_{p} (_ BitVec {w}))\n(assert (= obs_{p} "
               f"{v if p == 'v' else port(p)}))" for p, w in ports.items()],
             "(assert (not ok))", ""]
    return "\n".join(lines), list(ports)


def fp_unit_proof(unit, params, workdir, *, timeout=None, cls=None):
    """Prove one FP unit; returns ``(result, seconds, detail, None)``. ``cls``: a subclass of
    the unit's class to emit instead (mutants in the tests). z3 runs as a program (the
    ``z3-solver`` wheel's executable) in a session of its own, killed on a timeout."""
    from hw.fp.lanes import emit_unit
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    z3 = tool_paths("z3")["z3"]
    if z3 is None:
        return ERROR, 0.0, "missing z3 (pip install -e '.[formal]' installs z3-solver)", None
    res = emit_unit(unit, params, workdir / "emit", cls=cls)
    name = res["name"]
    (workdir / "design.v").write_text(Path(res["verilog"]).read_text())
    t0 = time.monotonic()
    try:
        run_yosys(f"read_verilog design.v\nprep -top {name}\nflatten\nopt -fast\n"
                  "write_smt2 design.smt2\n", workdir, outputs=("design.smt2",))
    except SynthesisError as e:
        return ERROR, time.monotonic() - t0, str(e), None
    check, observed = reference_smt(name, unit, params)
    (workdir / "proof.smt2").write_text(
        (workdir / "design.smt2").read_text() + check
        + f"(check-sat)\n(get-value ({' '.join('obs_' + p for p in observed)}))\n")
    proc = subprocess.Popen([z3, "-smt2", "proof.smt2"], cwd=workdir, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_session(proc.pid)
        proc.communicate()
        return TIMEOUT, time.monotonic() - t0, f"z3 stopped after {timeout} s", None
    except BaseException:
        kill_session(proc.pid)
        proc.communicate()
        raise
    seconds = time.monotonic() - t0
    (workdir / "z3.out").write_text(out)
    verdict = out.split("\n", 1)[0].strip()
    if verdict == "unsat":
        return PROVED, seconds, "", None
    if verdict == "sat":
        values = re.findall(r"\(obs_(\w+) #([xb])([0-9a-fA-F]+)\)", out)
        detail = "  " + " ".join(f"{port}={int(v, 16 if base == 'x' else 2):#x}"
                                 for port, base, v in values)
        return FAILED, seconds, detail, None
    return ERROR, seconds, f"z3 gave no verdict: {out.strip()[:300]}", None
