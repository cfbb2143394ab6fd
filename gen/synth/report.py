"""Markdown and JSON reports of a synthesis run and of the LUT-vs-MAC comparison.

Both are deterministic apart from the measured times; the JSON holds every figure, the
Markdown explains them (area weights, flow, the exact Yosys script).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .. import area
from ..tools import atomic_write

__all__ = ["render_markdown", "write_report", "render_compare_markdown", "write_compare_report",
           "fmt_ge", "remove_reports", "REPORT_FILES"]

#: what a report directory holds once a run succeeded
REPORT_FILES = ("report.md", "report.json")


def remove_reports(out_dir):
    """Remove the reports of an earlier run, so a failed run leaves none behind."""
    for name in REPORT_FILES:
        (Path(out_dir) / name).unlink(missing_ok=True)


def fmt_ge(x):
    """A GE figure: one decimal when it has a fraction, thousands separated."""
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
          f"| gate equivalents (GE) | {fmt_ge(tot['ge'])} |",
          f"| combinational transistors | {tot['comb_transistors']:,} |",
          f"| flip-flop bits | {tot['ff_bits']:,} |",
          f"| cells | {tot['num_cells']:,} |",
          "| logic depth (gates, longest combinational path) | "
          f"{'not measured' if tot['depth'] is None else tot['depth']} |"]
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
                 f"| {loc['transistors']:,} | {fmt_ge(loc['ge'])} | {fmt_ge(sub['ge'])} "
                 f"| {'—' if t['depth'] is None else t['depth']} | {fmt_ge(tl['ge'])} "
                 f"| {share:.1f} % |")
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


# -- the LUT vs MAC comparison ------------------------------------------------------------------
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
          f"- **MACs per cycle**, LUT array: `{res['macs_formula']['array']}`, here w = {w}.",
          "- **MACs per cycle**, MAC array: `m*n*g` (dequant: `a_bits x a_bits` "
          "multipliers; direct: `a_bits x (w_bits+1)`).",
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
        mac = figs[ln["mac"]]
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
        pe_txt = f"{fmt_ge(pe['ge'])} (×{pe['instances']})" if pe else "—"
        L.append(f"| {d['role']} | `{d['top']}` | {d['shape']} | {d['multiply_equivalents']} "
                 f"| {d['macs_per_cycle']:g} | {fmt_ge(d['ge'])} | {d['transistors']:,} "
                 f"| {d['ff_bits']:,} | {'—' if d['depth'] is None else d['depth']} "
                 f"| {_f(d['density'])} | {pe_txt} "
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
          f"| array GE | {fmt_ge(s['ge_symmetric'])} | {fmt_ge(s['ge_full'])} "
          f"| {fmt_ge(s['ge_saved'])} ({100 * s['ge_saved_fraction']:.1f} %) |",
          f"| PE GE | {fmt_ge(s['pe_ge_symmetric'])} | {fmt_ge(s['pe_ge_full'])} "
          f"| {fmt_ge(s['pe_ge_full'] - s['pe_ge_symmetric'])} |",
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
    """Write a comparison's ``report.md`` and ``report.json`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "report.md", out / "report.json"
    atomic_write(js, json.dumps(res, indent=2, sort_keys=True) + "\n")
    atomic_write(md, render_compare_markdown(res))
    return {"markdown": md, "json": js}
