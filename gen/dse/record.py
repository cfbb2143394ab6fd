"""One point's cached record: synthesize its netlist and sort the area into categories.

Everything a cached record holds is computed here (and in the synthesis flow it calls), so
the source of this module is part of every cache key (:mod:`gen.dse.cache`).
"""
from __future__ import annotations

from pathlib import Path

from ..synth.flow import synthesize

__all__ = ["category", "make_record"]


def category(t, kind):
    """Area category of a module type of a synthesis result."""
    label = t["type"]
    if t["is_top"]:
        return "top_local"
    if label.endswith(".lookup"):
        return "lookup"
    if label.endswith(".accumulator"):
        return "accumulator"
    if ".correction" in label:
        return "correction"
    if label.endswith("_pe"):
        return "mac_pe" if kind != "lut" else "pe_wrapper"
    return "other"


def make_record(point, verilog, name, workdir, timeout, derived, depth=True):
    """Synthesize ``name`` of ``verilog`` in ``workdir/yosys``; return the record (plain JSON).
    ``depth``: measure the logic depth (the script's ``ltp``; else every depth is None).

    Raises when Yosys fails (:class:`~gen.synth.SynthesisError`) or when the module areas do
    not add up to the total.
    """
    result = synthesize(verilog, name, Path(workdir) / "yosys", timeout=timeout, depth=depth)
    cats = {}
    for t in result["types"]:
        c = category(t, point.kind)
        cats[c] = cats.get(c, 0.0) + t["total_local"]["ge"]
    tot = result["total"]
    if abs(sum(cats.values()) - tot["ge"]) > 1e-6:
        raise RuntimeError(f"{point.label}: module areas {cats} do not add up to {tot['ge']}")
    return {
        "name": name,
        "total": {k: tot[k] for k in ("ge", "transistors", "comb_transistors", "ff_bits",
                                      "latch_bits", "num_cells", "depth")},
        "categories": cats,
        "types": [{"type": t["type"], "instances": t["instances"],
                   "local_ge": t["local"]["ge"], "local_ff_bits": t["local"]["ff_bits"],
                   "with_submodules_ge": t["with_submodules"]["ge"],
                   "total_ge": t["total_local"]["ge"], "depth": t["depth"]}
                  for t in result["types"]],
        "derived": derived,
        "yosys": result["flow"]["yosys"],
        "yosys_binary": result["flow"]["yosys_binary"],
        "synth_wall_s": result["timing"]["wall_s"],
        "log": str(Path(result["log"]).resolve()),
    }
