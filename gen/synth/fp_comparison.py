"""The LUT-vs-MAC comparison with FP16/BF16 activations (``gen.synth --compare --act fp16``).

The FP counterpart of :mod:`gen.synth.comparison` (Mo et al., ISCA 2025, Fig. 12 and Fig. 14:
the LUT Tensor Core against an FP16 MAC tensor core). Synthesizes

* the LUT array with FP activations in its two variants (docs/fp-lut.md): ``q`` tables
  (``table_format="q"``: INT-``table_bits`` entries, one FP32 scale per ``scale_block``
  groups, the shared FP scale stage) and ``fp`` tables (``table_format="fp"``: entries in the
  activation format, an FP32 accumulator per PE), both symmetric, at the LUT tile;
* the FP MAC baselines (``hw/fp_mac_array.py``, docs/fp.md): ``mac_dequant`` (the dequantizing
  tensor core: weights to FP16 by ``n*g`` dequantizers, FP16 x FP16 fused dot products into FP32)
  and ``mac_direct`` (FP16 x INT-(w+1) shift-add products, the scale once at the output), each at
  the paper's equal-size M8N4K16 and again at the LUT's tile.

Every design is emitted through :func:`gen.emit.render` (module names from its manifest) and
synthesized hierarchically: the PE, the dequantizer and the output scaler are Verilog modules
of their own, synthesized once and counted per instance. Figures and formulas are the integer
comparison's (MACs per cycle, density per 1000 GE, LUT / MAC ratios), plus the area of each
design by module type.
"""
from __future__ import annotations

from pathlib import Path

from .. import area
from ..cli import tile_label
from ..config import LutConfig
from .comparison import (LUT_SHAPE, MAC_SHAPE, _ratio_line, mac_config, synthesize_designs)
from .report import fmt_ge
from .yosys import DEFAULT_TIMEOUT

__all__ = ["compare_fp", "compare_fp_designs", "fp_lut_config", "LUT_TABLES", "FP_ACTS",
           "FP_MACS_FORMULA", "LutTopMissing", "render_fp_compare_markdown",
           "write_fp_compare_report"]

#: activation formats of the FP comparison
FP_ACTS = ("fp16", "bf16")
#: the LUT variants: key, table_format, role
LUT_TABLES = {"q": ("lut", "LUT, q tables"), "fp": ("lut_fp", "LUT, FP tables")}

#: how each kind of design turns its shape into MACs per cycle (written into every report)
FP_MACS_FORMULA = {
    "array": "c * m*n*g / w  (bit-serial: one weight bit-plane per cycle; w = the operation's "
             "weight bits)",
    "mac_dequant": "m*n*g  (one activation x dequantized-weight product per PE lane per cycle, "
                   "both in the activation format)",
    "mac_direct": "m*n*g  (one activation x INT-(w+1) shift-add product per PE lane per cycle)",
}


class LutTopMissing(RuntimeError):
    """The LUT array with FP activations is not built by this gen.emit (docs/fp-lut.md)."""


def fp_lut_config(cfg, act, table_format, shape, *, table_bits=8, scale_block=16,
                  scale_stage_w=1, scale_sig_bits=24, fp_column_lanes=None):
    """The LUT array with ``act`` activations and ``table_format`` tables at ``shape``
    (``cfg`` gives ``w_bits``, ``k_max``, the weight formats and the output stage;
    ``scale_stage_w`` and ``scale_sig_bits`` apply to ``q`` tables only,
    ``fp_column_lanes`` to ``fp`` tables only)."""
    m, n, g = shape
    return LutConfig(m=m, n=n, g=g, symmetric=True, w_bits=cfg.w_bits, k_max=cfg.k_max,
                     weight_formats=cfg.weight_formats, tables_per_pe=cfg.tables_per_pe,
                     accumulation=cfg.accumulation, output_buffer=cfg.output_buffer,
                     act_format=act, table_format=table_format,
                     table_bits=table_bits, scale_block=scale_block,
                     scale_stage_w=scale_stage_w if table_format == "q" else 1,
                     scale_sig_bits=scale_sig_bits if table_format == "q" else 24,
                     fp_column_lanes=fp_column_lanes if table_format == "fp" else None)


def compare_fp_designs(cfg, act, lut_shape=LUT_SHAPE, mac_shape=MAC_SHAPE, *, tables=("q", "fp"),
                       table_bits=8, scale_block=16, scale_stage_w=1, scale_sig_bits=24,
                       fp_column_lanes=None):
    """The designs of one FP comparison: ``[{key, top, cfg, act, shape, role}]``.

    ``lut`` (``q`` tables) and ``lut_fp`` (``fp`` tables) as ``tables`` says; ``mac_dequant``
    and ``mac_direct`` at ``mac_shape``; both again at the LUT's tile (``*_tile``) unless the
    shapes are equal. MAC designs carry ``act`` (:func:`gen.emit.render`'s ``act``); LUT
    designs carry it in their config's ``act_format``.
    """
    if act not in FP_ACTS:
        raise ValueError(f"act must be one of {', '.join(FP_ACTS)}, not {act!r}")
    for t in tables:
        if t not in LUT_TABLES:
            raise ValueError(f"tables must be among {', '.join(LUT_TABLES)}, not {t!r}")
    designs = []
    for t in tables:
        key, role = LUT_TABLES[t]
        designs.append({"key": key, "top": "array", "role": role, "act": "int",
                        "cfg": fp_lut_config(cfg, act, t, lut_shape, table_bits=table_bits,
                                             scale_block=scale_block,
                                             scale_stage_w=scale_stage_w,
                                             scale_sig_bits=scale_sig_bits,
                                             fp_column_lanes=fp_column_lanes)})
    for kind in ("mac_dequant", "mac_direct"):
        designs.append({"key": kind, "top": kind, "act": act, "cfg": mac_config(cfg, mac_shape),
                        "role": f"FP MAC ({kind[4:]}), own shape"})
    lut_tile = (lut_shape[0], lut_shape[1], lut_shape[2] * cfg.tables_per_pe)
    if tuple(mac_shape) != lut_tile:
        for kind in ("mac_dequant", "mac_direct"):
            designs.append({"key": f"{kind}_tile", "top": kind, "act": act,
                            "cfg": mac_config(cfg, lut_tile),
                            "role": f"FP MAC ({kind[4:]}), LUT's tile"})
    for d in designs:
        c = d["cfg"]
        d["shape"] = tile_label((c.m, c.n, c.g))
        if d["top"] == "array" and c.tables_per_pe > 1:
            d["shape"] += f"c{c.tables_per_pe}"
    return designs


def _check_lut_build(d):
    """The emitted LUT top must be the FP-activation array (it takes scales on ``i_scale``)."""
    ports = {p["name"] for p in d["manifest"]["ports"]}
    if "i_scale__payload" not in ports:
        raise LutTopMissing(
            f"gen.emit built {d['name']!r} without an i_scale port: this version has no LUT "
            f"array for act_format={d['cfg'].act_format!r}, table_format="
            f"{d['cfg'].table_format!r} (docs/fp-lut.md); run --compare --act "
            f"{d['cfg'].act_format} --lut-tables none for the FP MAC side alone")


def _breakdown(result, name):
    """Area by module type: ``[{type, instances, ge_each (with submodules), ge_total, share}]``."""
    tot = result["total"]["ge"]
    rows = []
    for t in result["types"]:
        label = t["type"].replace(name, "top", 1) if t["type"].startswith(name) else t["type"]
        rows.append({"type": label, "instances": t["instances"],
                     "ge_each": t["with_submodules"]["ge"],
                     "ge_local_total": t["total_local"]["ge"],
                     "share": t["total_local"]["ge"] / tot if tot else None})
    return rows


def compare_fp(cfg, out_dir, act="fp16", *, lut_shape=LUT_SHAPE, mac_shape=MAC_SHAPE,
               tables=("q", "fp"), table_bits=8, scale_block=16, scale_stage_w=1,
               scale_sig_bits=24, fp_column_lanes=None, jobs=1, liberty=None,
               gates="generic", dedup=True, timeout=DEFAULT_TIMEOUT, yosys=None, command=None,
               title=None, depth=True):
    """Synthesize the designs of :func:`compare_fp_designs` and compare them; return the result.

    As :func:`gen.synth.comparison.compare`, with ``act`` activations (``depth=False``: no
    logic depth, about half the synthesis time of the big arrays). Raises
    :class:`LutTopMissing` when gen.emit cannot build an FP LUT top asked for in ``tables``
    (before any synthesis), :class:`~gen.synth.yosys.SynthesisError` when a run fails.
    """
    out = Path(out_dir)
    designs = compare_fp_designs(cfg, act, lut_shape, mac_shape, tables=tables,
                                 table_bits=table_bits, scale_block=scale_block,
                                 scale_stage_w=scale_stage_w, scale_sig_bits=scale_sig_bits,
                                 fp_column_lanes=fp_column_lanes)
    results, figs, wall, warm_s = synthesize_designs(
        designs, out, cfg.w_bits, jobs=jobs, liberty=liberty, gates=gates, dedup=dedup,
        timeout=timeout, yosys=yosys, depth=depth,
        check=lambda d: d["top"] != "array" or _check_lut_build(d))
    for d in designs:
        f = figs[d["key"]]
        f["macs_formula"] = FP_MACS_FORMULA[d["top"]]
        f["act"] = act
        f["breakdown"] = _breakdown(results[d["key"]], d["name"])
        if d["top"] == "array":
            f["table_format"] = d["cfg"].table_format
            if d["cfg"].table_format == "q":
                f["table_bits_q"] = d["cfg"].table_bits
                f["scale_block"] = d["cfg"].scale_block
                f["scale_stage_w"] = d["cfg"].scale_stage_w
                f["scale_lanes"] = d["cfg"].scale_lanes
                f["scale_sig_bits"] = d["cfg"].scale_sig_bits
            else:
                f["fp_column_lanes"] = d["cfg"].fp_column_lanes
                f["fp_column_cycles"] = d["cfg"].fp_column_cycles
    lines = []
    tile = "_tile" if "mac_dequant_tile" in figs else ""
    for t in tables:
        lut = figs[LUT_TABLES[t][0]]
        for kind in ("mac_dequant", "mac_direct"):
            lines.append(_ratio_line("equal size, each in its own shape", lut, figs[kind]))
        for kind in ("mac_dequant", "mac_direct"):
            lines.append(_ratio_line("same tile shape", lut, figs[kind + tile]))
        for kind in ("mac_dequant", "mac_direct"):
            line = _ratio_line("PE alone (own shapes; without the tables, correction, FP "
                               "scale stage, dequantizers, output scalers or drain)", lut,
                               figs[kind], level="pe")
            if line:
                lines.append(line)
    any_r = next(iter(results.values()))
    return {
        "kind": "lut_vs_fp_mac_comparison",
        "title": title,
        "command": command,
        "precision": {"w_bits": cfg.w_bits, "act": act, "k_max": cfg.k_max,
                      "weight_formats": list(cfg.weight_formats),
                      "table_bits": table_bits, "scale_block": scale_block,
                      "scale_stage_w": scale_stage_w, "scale_sig_bits": scale_sig_bits,
                      "fp_column_lanes": fp_column_lanes},
        "tables": list(tables),
        "shapes": {"lut": tile_label(lut_shape), "mac": tile_label(mac_shape)},
        "macs_formula": FP_MACS_FORMULA,
        "density_formula": "compute density = MACs per cycle / (GE / 1000); ratio = LUT / MAC",
        "designs": [figs[d["key"]] for d in designs],
        "lines": lines,
        "mac_direct_over_dequant": {
            k: figs[k.replace("dequant", "direct")]["density"] / figs[k]["density"]
            for k in figs if k.startswith("mac_dequant")},
        "timing": {
            "total_wall_s": round(wall, 1), "jobs": jobs,
            "wasm_compile_s": round(warm_s, 1) if warm_s else 0.0,
            "synth_wall_s": {k: f["synth_wall_s"] for k, f in figs.items()},
        },
        "flow": {"yosys": any_r["flow"]["yosys"], "yosys_binary": any_r["flow"]["yosys_binary"],
                 "gates": gates, "liberty": any_r["flow"]["liberty"], "dedup": dedup,
                 "script": any_r["flow"]["script"]},
        "weights": area.WEIGHTS,
    }


# -- the report ---------------------------------------------------------------------------------
def _f(x, nd=2):
    return "—" if x is None else f"{x:,.{nd}f}"


COUNTED = [
    "**Counted, LUT `q`**: everything gen.emit puts in the FP LUT array top: the controller, "
    "the `m` registered tables (INT-t entries), the `m*n` integer LUT PEs (symmetric lookup, "
    "bit-serial accumulation of one scale block), the offset correction (the doubled result "
    "`r2`), the shared time-multiplexed FP scale stage (table scale x weight scale x `r2` fused "
    "into the `m*n` FP32 accumulators) and the result drain.",
    "**Counted, LUT `fp`**: the controller, the registered tables (entries in the activation "
    "format), per PE an FP32 accumulator adding the looked-up entry per bit-plane, the FP32 "
    "offset correction and the weight-scale multiply at the output, the result drain.",
    "**Counted, FP MAC**: the controller, the weight decode, for `mac_dequant` the `n*g` "
    "dequantizers (weight x column scale rounded to the activation format), the `m*n` PEs "
    "(`g` exact products, one fused sum into the FP32 accumulator, the captured FP32 output "
    "register), for `mac_direct` the `n` output scalers, the result drain.",
    "**Not counted on either side**: the table precompute (FP32 tables of the activations and "
    "their quantization: software fused into the preceding operator, as in the paper; the "
    "tables are array inputs), activation or weight buffers outside the arrays (the MAC takes "
    "activations on a stream, unregistered; the LUT registers one group's tables, counted).",
    "**Same output side**: every design returns FP32 results through the same drain (`m` "
    "rows, one per beat) with one set of FP32 results held while the next operation runs.",
]


def render_fp_compare_markdown(res):
    """The Markdown report of a :func:`compare_fp` result."""
    p = res["precision"]
    w, act = p["w_bits"], p["act"].upper()
    figs = {d["key"]: d for d in res["designs"]}
    L = [f"# LUT vs FP MAC: W{w} x A_{act}" + (f" ({res['title']})" if res["title"] else ""),
         ""]
    if res.get("command"):
        L += [f"Command: `{res['command']}`", ""]
    L += [f"Weights: {w}-bit (formats {', '.join(p['weight_formats'])}), activations {act}, "
          f"FP32 results, k_max = {p['k_max']}. LUT tile {res['shapes']['lut']} "
          f"(tables: {', '.join(res['tables']) or 'none'}; `q`: INT{p['table_bits']} entries, "
          f"one FP32 scale of {p.get('scale_sig_bits', 24)} significant bits per "
          f"{p['scale_block']} groups, FP scale stage keeping pace with w >= "
          f"{p.get('scale_stage_w', 1)}), FP MAC in its own shape "
          f"{res['shapes']['mac']} and again at the LUT's tile."
          + ("" if p.get("fp_column_lanes") is None else
             f" `fp`: the column output stages shared by {p['fp_column_lanes']} lanes "
             f"(`fp_column_lanes`: a result row in n / {p['fp_column_lanes']} cycles into a "
             f"registered row, docs/fp-lut.md section 5)."), "",
          "## How the figures are formed", "",
          f"- **MACs per cycle**, LUT array: `{res['macs_formula']['array']}`, here w = {w}.",
          f"- **MACs per cycle**, FP MAC: `{res['macs_formula']['mac_dequant']}`.",
          "- **Compute density** = MACs per cycle per 1000 GE; **ratio = LUT / MAC**; "
          "`area MAC/LUT` is the GE ratio of the two arrays.",
          "- Area: generic gates from Yosys + abc, costed with the weight table below "
          "(GE = transistors / 4). PEs, dequantizers and output scalers are Verilog modules of "
          "their own, synthesized once and counted per instance (per-module statistics).", ""]
    L += [f"- {c}" for c in COUNTED]
    L += ["", "## Comparison", "",
          "| line | LUT | MAC | LUT density | MAC density | **density LUT/MAC** "
          "| area MAC/LUT |", "|---|---|---|---|---|---|---|"]
    for ln in res["lines"]:
        lut, mac = figs[ln["lut"]], figs[ln["mac"]]
        L.append(f"| {ln['line']} | {lut['role']} {ln['lut_shape']} | {mac['top']} "
                 f"{ln['mac_shape']} | {_f(ln['lut_density'])} | {_f(ln['mac_density'])} "
                 f"| **{_f(ln['density_ratio'])}** | {_f(ln['area_ratio_mac_over_lut'])} |")
    if res["mac_direct_over_dequant"]:
        L += ["", "FP MAC direct / dequant density: " + ", ".join(
            f"{'own shape' if k == 'mac_dequant' else 'LUT tile'} {v:.2f}"
            for k, v in res["mac_direct_over_dequant"].items()) + "."]
    L += ["", "## Designs", "",
          "| design | top | shape | mult.-equiv. | MACs/cycle | GE | FF bits | depth | density "
          "| PE GE (×inst.) | synth wall s | report |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for d in res["designs"]:
        pe = d.get("pe")
        pe_txt = f"{fmt_ge(pe['ge'])} (×{pe['instances']})" if pe else "—"
        L.append(f"| {d['role']} | `{d['top']}` | {d['shape']} | {d['multiply_equivalents']} "
                 f"| {d['macs_per_cycle']:g} | {fmt_ge(d['ge'])} | {d['ff_bits']:,} "
                 f"| {d['depth'] if d['depth'] is not None else '—'} "
                 f"| {_f(d['density'])} | {pe_txt} | {d['synth_wall_s']:.1f} "
                 f"| [{d['name']}]({d['report']}) |")
    L += ["", "## Area by module type", "",
          "`top` is each design's top module (controller, decode, tables, drain and whatever "
          "else is not a module of its own); `each` includes a module's submodules, `total` is "
          "its local area × instances, `share` of the design.", ""]
    for d in res["designs"]:
        L += [f"**{d['role']}** ({d['shape']}, {fmt_ge(d['ge'])} GE):", "",
              "| module type | instances | GE each | total GE | share |", "|---|---|---|---|---|"]
        for b in d["breakdown"]:
            L.append(f"| `{b['type']}` | {b['instances']} | {fmt_ge(b['ge_each'])} "
                     f"| {fmt_ge(b['ge_local_total'])} | {100 * b['share']:.1f} % |")
        L.append("")
    L += ["## Synthesis time", "",
          f"Wall time of each Yosys run ({res['timing']['jobs']} at once); the whole comparison "
          f"(emit + synthesis) took {res['timing']['total_wall_s']:.0f} s.", "",
          "| design | synth wall s | Yosys CPU s | emit s |", "|---|---|---|---|"]
    for d in res["designs"]:
        L.append(f"| {d['key']} ({d['shape']}) | {d['synth_wall_s']:.1f} "
                 f"| {_f(d['yosys_cpu_s'], 1)} | {d['emit_s']:.1f} |")
    L += ["", "## Area weights", "", area.weights_markdown(),
          "## Flow", "",
          f"- Yosys: {res['flow']['yosys']} ({res['flow']['yosys_binary']}), abc gate set "
          f"{res['flow']['gates']}; every figure comes from a run whose log ends with "
          "`End of script.`", "",
          "Script (the designs differ in the top name only):", "", "```",
          res["flow"]["script"].rstrip("\n"), "```", ""]
    return "\n".join(L)


def write_fp_compare_report(res, out_dir):
    """Write an FP comparison's ``report.md`` and ``report.json`` into ``out_dir``."""
    import json

    from ..tools import atomic_write
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "report.md", out / "report.json"
    atomic_write(js, json.dumps(res, indent=2, sort_keys=True) + "\n")
    atomic_write(md, render_fp_compare_markdown(res))
    return {"markdown": md, "json": js}
