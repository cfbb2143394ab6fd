"""The sweep's outputs: rows (CSV/JSON), the LUT/MAC ratio table, the verdict, summary.md."""
from __future__ import annotations

import csv
import io

from .. import area
from ..synth.comparison import density
from ..tools import atomic_write
from .points import KINDS
from .ppa import PPA_FIELDS, ppa_columns

__all__ = ["CSV_FIELDS", "make_row", "write_csv", "ratio_table", "verdict", "summary_markdown",
           "FF_GE", "fp_ratio_table"]

#: gate equivalents of one flip-flop bit (table registers, output buffers)
FF_GE = area.FF_BIT_TRANSISTORS / area.TRANSISTORS_PER_GE

CSV_FIELDS = [
    "name", "kind", "top", "families", "w_bits", "a_bits", "g", "m", "n", "shape", "k_max",
    "symmetric", "macs_per_cycle", "ge", "transistors", "comb_transistors", "ff_bits",
    "cells", "depth", "density_per_kge", "pe_array_ge", "pe_density_per_kge", "top_local_ge",
    "lookup_ge", "accumulator_ge", "tree_ge", "correction_ge", "mac_pe_ge", "other_ge",
    "table_bits",
    "table_reg_ge",
    "outbuf_bits", "outbuf_ge", "in_bits_per_cycle", "engine_table_bits", "entry_width",
    "acc_width", "result_width", "tables_per_pe", "accumulation", "output_buffer",
    "table_bits_per_cycle", "act", "table_bits_q", "scale_block", "fp_scale_ge", "fp_unit_ge",
    "yosys", "synth_wall_s", "cached", "key", *PPA_FIELDS,
]


def _fp_areas(point, rec):
    """``(fp_scale_ge, fp_unit_ge)`` of an FP point from its module types: the LUT array's
    shared FP scale stage (the ``stage`` submodule of the FP array top with every module
    under it, e.g. its lanes ``stage.lane0``), the FP MAC's dequantizers or output scalers
    (emit's unit module ``<name>_deq`` / ``<name>_scale``)."""
    if not point.fp:
        return None, None
    name = rec["name"]
    if point.kind == "lut":
        stage = sum(t["total_ge"] for t in rec["types"]
                    if t["type"].startswith(name + ".")
                    and "stage" in t["type"][len(name) + 1:].split("."))
        return stage, None
    units = sum(t["total_ge"] for t in rec["types"]
                if t["type"] in (f"{name}_deq", f"{name}_scale"))
    return None, units


def make_row(point, families, rec, key, cached):
    """One CSV/JSON row: the record's figures with the formulas of gen.synth.comparison
    applied (MACs per cycle, density) and the widths derived from the point's config."""
    cats = rec["categories"]
    cfg = point.config()
    d = cfg.derived()
    if point.fp and point.kind != "lut":
        from hw.fp_mac_array import fp_mac_widths
        d = {**d, **{k: v for k, v in fp_mac_widths(cfg, point.act).items() if k != "act"}}
    ge = rec["total"]["ge"]
    macs = point.macs_per_cycle()
    lut = point.kind == "lut"
    # a LUT PE: its lookups, its accumulator and its own logic (the adder tree of c > 1 tables)
    pe_ge = (cats.get("lookup", 0.0) + cats.get("accumulator", 0.0)
             + cats.get("pe_wrapper", 0.0)) if lut else cats.get("mac_pe", 0.0)
    table_bits = d["table_width"] if lut else 0
    # the captured result of each PE (second half of the double buffer): one register per PE;
    # one registered result row with output_buffer "row"; nothing with "none"
    outbuf_bits = {"double": point.m * point.n * (d["acc_width"] if lut else d["result_width"]),
                   "row": d["result_row_width"], "none": 0}[point.output_buffer]
    if point.fp and lut:
        # the FP array's results live in the scale stage's FP32 accumulators (not itemised)
        outbuf_bits = None
    # operand bits the array takes per cycle at full rate (analytic, from the stream widths):
    # LUT: one weight bit-plane (n*c*g) per cycle and the tables of a step every w cycles;
    # MAC: the m*g activations and the g*n weight codes of a group every cycle
    # (FP points: the table and weight scales are left out)
    if lut:
        in_bits = d["weight_width"] + d["table_width"] / point.w_bits
    else:
        in_bits = float(d["act_width"] + d["code_width"])
    fp_scale, fp_unit = _fp_areas(point, rec)
    return {
        "name": rec["name"], "kind": point.kind, "top": point.top,
        "families": ";".join(sorted(families)),
        "w_bits": point.w_bits, "a_bits": point.a_bits, "g": point.g, "m": point.m,
        "n": point.n, "shape": point.shape, "k_max": point.k_max,
        "symmetric": point.symmetric if lut else None,
        "macs_per_cycle": macs, "ge": ge, "transistors": rec["total"]["transistors"],
        "comb_transistors": rec["total"]["comb_transistors"],
        "ff_bits": rec["total"]["ff_bits"], "cells": rec["total"]["num_cells"],
        "depth": rec["total"]["depth"],
        "density_per_kge": density(macs, ge),
        "pe_array_ge": pe_ge,
        "pe_density_per_kge": density(macs, pe_ge) if pe_ge else None,
        "top_local_ge": cats.get("top_local", 0.0),
        "lookup_ge": cats.get("lookup", 0.0) if lut else None,
        "accumulator_ge": cats.get("accumulator", 0.0) if lut else None,
        "tree_ge": cats.get("pe_wrapper", 0.0) if lut else None,
        "correction_ge": cats.get("correction", 0.0) if lut else None,
        "mac_pe_ge": cats.get("mac_pe", 0.0) if not lut else None,
        # modules outside these categories: the FP scale stage (with the integer array's own
        # top, its table register, under it) or the FP MAC's dequantizers / output scalers
        "other_ge": cats.get("other", 0.0),
        "table_bits": table_bits, "table_reg_ge": table_bits * FF_GE,
        "outbuf_bits": outbuf_bits,
        "outbuf_ge": outbuf_bits * FF_GE if outbuf_bits is not None else None,
        "in_bits_per_cycle": in_bits,
        # the engine (hw/engine.py) keeps two banks of a row block's tables for k_max
        # (FP: the FP engine's table memories are not modelled here)
        "engine_table_bits": (2 * d["groups_max"] * d["table_width"]
                              if lut and not point.fp else None),
        "entry_width": d["entry_width"] if lut else None,
        # a MAC PE accumulates at the result width (it has no bit-serial LUT accumulator)
        "acc_width": d["acc_width"] if lut else d["result_width"],
        "result_width": d["result_width"],
        "tables_per_pe": point.tables_per_pe if lut else None,
        "accumulation": point.accumulation if lut else None,
        "output_buffer": point.output_buffer,
        "table_bits_per_cycle": d["table_bits_per_cycle"] if lut else None,
        "act": point.act,
        "table_bits_q": point.table_bits if lut and point.fp else None,
        "scale_block": point.scale_block if lut and point.fp else None,
        "fp_scale_ge": fp_scale, "fp_unit_ge": fp_unit,
        "yosys": rec["yosys"], "synth_wall_s": rec["synth_wall_s"], "cached": cached,
        "key": key,
        # real cells (--ppa): µm², Fmax, TOPS/mm², pJ/MAC (gen.dse.ppa)
        **ppa_columns(rec.get("ppa"), macs),
    }


def write_csv(path, rows):
    """The rows as CSV (``None`` as an empty field), written atomically."""
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r[k] is None else r[k]) for k in CSV_FIELDS})
    atomic_write(path, buf.getvalue())


def _find(rows, **kw):
    return [r for r in rows if all(r[k] == v for k, v in kw.items())]


def _one(rows, **kw):
    found = _find(rows, **kw)
    return found[0] if found else None


def ratio_table(rows):
    """LUT/MAC density ratios per (a_bits, w_bits).

    ``ratio_same``: LUT and MAC at the same tile (2x64 at g = 4 when swept); ``ratio_best``:
    each at its best shape among the equal-size tiles (``tile`` family, plus the MAC's longer
    dot products of the ``mac_shape`` family when swept).
    """
    out = []
    pairs = sorted({(r["a_bits"], r["w_bits"]) for r in rows if r["kind"] == "lut"
                    and "tile" in r["families"]})
    for a, w in pairs:
        pool = [r for r in rows if r["a_bits"] == a and r["w_bits"] == w
                and ("tile" in r["families"] or "mac_shape" in r["families"])]
        luts = [r for r in pool if r["kind"] == "lut" and "tile" in r["families"]]
        best_lut = max(luts, key=lambda r: r["density_per_kge"])
        for mac in ("mac_dequant", "mac_direct"):
            macs = [r for r in pool if r["kind"] == mac]
            if not macs:
                continue
            best_mac = max(macs, key=lambda r: r["density_per_kge"])
            same = []
            for lr in luts:
                mr = _one(macs, m=lr["m"], n=lr["n"], g=lr["g"])
                if mr is not None:
                    same.append((lr, mr))
            ref = next(((lr, mr) for lr, mr in same if (lr["m"], lr["n"]) == (2, 64)),
                       same[0] if same else None)
            out.append({
                "a_bits": a, "w_bits": w, "baseline": mac,
                "best_lut_shape": best_lut["shape"],
                "best_lut_density": best_lut["density_per_kge"],
                "best_mac_shape": best_mac["shape"],
                "best_mac_density": best_mac["density_per_kge"],
                "ratio_best": best_lut["density_per_kge"] / best_mac["density_per_kge"],
                "same_shape": ref[0]["shape"] if ref else None,
                "ratio_same": (ref[0]["density_per_kge"] / ref[1]["density_per_kge"]
                               if ref else None),
                "pe_ratio_same": (ref[0]["pe_density_per_kge"] / ref[1]["pe_density_per_kge"]
                                  if ref else None),
            })
    return out


def fp_ratio_table(rows):
    """LUT / FP MAC density ratios of the ``fp`` family, one line per FP LUT point.

    ``own_<mac>``: against the FP MAC in the paper's equal-size shape M8N4K16 (same act and
    w_bits); ``tile_<mac>``: against the FP MAC at the LUT point's own tile (m, n, g) when swept.
    """
    fp = [r for r in rows if "fp" in r["families"]]
    out = []
    for lr in sorted((r for r in fp if r["kind"] == "lut"),
                     key=lambda r: (r["act"], r["w_bits"], r["g"], r["m"], r["table_bits_q"],
                                    r["scale_block"])):
        line = {"act": lr["act"], "w_bits": lr["w_bits"], "shape": lr["shape"], "g": lr["g"],
                "table_bits_q": lr["table_bits_q"], "scale_block": lr["scale_block"],
                "lut_ge": lr["ge"], "lut_density": lr["density_per_kge"],
                "fp_scale_share": lr["fp_scale_ge"] / lr["ge"] if lr["fp_scale_ge"] else None}
        for mac in ("mac_dequant", "mac_direct"):
            own = _one(fp, kind=mac, act=lr["act"], w_bits=lr["w_bits"], m=8, n=4, g=16)
            same = _one(fp, kind=mac, act=lr["act"], w_bits=lr["w_bits"], m=lr["m"], n=lr["n"],
                        g=lr["g"])
            line[f"own_{mac}"] = (lr["density_per_kge"] / own["density_per_kge"]
                                  if own else None)
            line[f"tile_{mac}"] = (lr["density_per_kge"] / same["density_per_kge"]
                                   if same else None)
        out.append(line)
    return out


def verdict(rows):
    """How the default point (w2 a8 g4 m2n64 sym) ranks in the sweep's families."""
    v = {}
    tile = [r for r in rows if r["kind"] == "lut" and "tile" in r["families"]
            and r["w_bits"] == 2 and r["a_bits"] == 8]
    if tile:
        best = max(tile, key=lambda r: r["density_per_kge"])
        dflt = _one(tile, m=2, n=64)
        v["tile"] = {"best": best["shape"], "best_density": best["density_per_kge"],
                     "default_density": dflt["density_per_kge"] if dflt else None,
                     "ranking": [(r["shape"], r["density_per_kge"]) for r in
                                 sorted(tile, key=lambda r: -r["density_per_kge"])]}
    grp = [r for r in rows if r["kind"] == "lut" and "group" in r["families"]
           and r["w_bits"] == 2 and r["a_bits"] == 8]
    if grp:
        best = max(grp, key=lambda r: r["density_per_kge"])
        v["group"] = {"best_g": best["g"], "best_symmetric": best["symmetric"],
                      "best_density": best["density_per_kge"],
                      "ranking": [(r["g"], r["symmetric"], r["density_per_kge"]) for r in
                                  sorted(grp, key=lambda r: -r["density_per_kge"])]}
    return v


def _x(v, nd=2):
    return "—" if v is None else f"{v:.{nd}f}"


def _bold(v):
    return "—" if v is None else f"**{v:.2f}**"


def _fp_markdown(rows):
    fp = [r for r in rows if "fp" in r["families"]]
    if not fp:
        return []
    L = ["## FP activations (q tables) against the FP MACs", "",
         "LUT: `q` tables of t-bit entries, one FP32 scale per b groups, the shared FP scale "
         "stage (docs/fp-lut.md); MAC: the FP dequantizing tensor core (`mac_dequant`) and the "
         "FP x INT-(w+1) direct MAC (`mac_direct`), FP32 results; no logic depth measured.", "",
         "| kind | act | W | shape | t | b | MACs/cycle | kGE | density | FP scale stage / "
         "dequantizers, scalers (kGE) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(fp, key=lambda r: (KINDS.index(r["kind"]), r["act"], r["w_bits"], r["g"],
                                       r["m"], r["table_bits_q"] or 0, r["scale_block"] or 0)):
        extra = r["fp_scale_ge"] if r["kind"] == "lut" else r["fp_unit_ge"]
        L.append(f"| {r['kind']} | {r['act'].upper()} | {r['w_bits']} | {r['shape']} | "
                 f"{r['table_bits_q'] or '-'} | {r['scale_block'] or '-'} | "
                 f"{r['macs_per_cycle']:.0f} | {r['ge'] / 1000:.1f} | "
                 f"{r['density_per_kge']:.3f} | {_x(extra / 1000 if extra else None, 1)} |")
    L.append("")
    ft = fp_ratio_table(rows)
    if ft:
        L += ["### LUT / FP MAC density ratio", "",
              "`own`: the MAC at M8N4K16 (equal size, the paper's MAC tile); `tile`: the MAC at "
              "the LUT point's tile.", "",
              "| act | W | LUT shape | t | b | LUT density | FP stage share | / dequant own "
              "| / direct own | / dequant tile | / direct tile |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in ft:
            share = f"{100 * r['fp_scale_share']:.0f} %" if r["fp_scale_share"] else "—"
            L.append(f"| {r['act'].upper()} | {r['w_bits']} | {r['shape']} | "
                     f"{r['table_bits_q']} | {r['scale_block']} | {r['lut_density']:.3f} | "
                     f"{share} | {_bold(r['own_mac_dequant'])} | {_x(r['own_mac_direct'])} | "
                     f"{_x(r['tile_mac_dequant'])} | {_x(r['tile_mac_direct'])} |")
        L.append("")
    return L


def _g(v):
    return "—" if v is None else f"{v:.4g}"


def _fmt_area(v):
    return "—" if v is None else f"{v:,.0f}"


def _ppa_markdown(rows, meta):
    pr = [r for r in rows if r.get("area_um2")]
    if not pr:
        return []
    ppa = meta.get("ppa") or {}
    L = ["## Real cells (--ppa)", "",
         f"{ppa.get('liberty_name', 'Liberty library')}, ABC mapped for and OpenSTA checked at "
         f"{ppa.get('clock_ns')} ns (parts: {', '.join(ppa.get('parts', []))}). Area: "
         "hierarchical mapping (PE counted per instance); with timing the buffered flat netlist "
         "(`flat`); TOPS/mm² = 2 x MACs/cycle x f / area (flat when timed), at the design's own "
         f"Fmax and at the common clock {_x(ppa.get('common_mhz'), 1)} MHz "
         f"({ppa.get('common_rule', '')}); TOPS/W = 2 / pJ per MAC.", "",
         "| kind | act | W | shape | t | b | µm² | flat µm² | Fmax MHz | TOPS/mm² own "
         "| TOPS/mm² common | pJ/MAC | TOPS/W |", "|---" * 13 + "|"]
    for r in pr:
        act = r["act"].upper() if r["act"] != "int" else f"A{r['a_bits']}"
        L.append(f"| {r['kind']} | {act} | {r['w_bits']} | {r['shape']} | "
                 f"{r['table_bits_q'] or '-'} | "
                 f"{r['scale_block'] or '-'} | {r['area_um2']:,.0f} | "
                 f"{_fmt_area(r['area_flat_um2'])} | {_x(r['fmax_mhz'], 1)} | "
                 f"{_g(r['tops_per_mm2_own'])} | {_g(r['tops_per_mm2_common'])} | "
                 f"{_g(r['pj_per_mac'])} | {_g(r['tops_per_w'])} |")
    L.append("")
    return L


def summary_markdown(rows, meta):
    L = ["# DSE summary", "",
         f"{meta['points_ok']} points from completed Yosys runs "
         f"({meta['computed']} synthesized now, {meta['cached']} from the cache, "
         f"{meta['failed']} failed); k_max = {meta['k_max']}; {meta['yosys']}; "
         f"wall time {meta['wall_s']:.1f} s.", "",
         "Density = MACs per cycle per 1000 GE of the whole array; LUT MACs/cycle = c*m*n*g/w "
         "(c tables per PE), MAC = m*n*g.", "", "Area: " + " ".join(line.strip() for line in
                                                area.weights_text().splitlines()), ""]
    tile = [r for r in rows if "tile" in r["families"]]
    if tile:
        L += ["## Tile shape (g = 4, m*n equal)", "",
              "| kind | W | A | shape | MACs/cycle | kGE | density | PE-only density |",
              "|---|---|---|---|---|---|---|---|"]
        for r in sorted(tile, key=lambda r: (KINDS.index(r["kind"]), r["a_bits"], r["w_bits"],
                                             r["m"])):
            L.append(f"| {r['kind']} | {r['w_bits']} | {r['a_bits']} | {r['shape']} | "
                     f"{r['macs_per_cycle']:.0f} | {r['ge'] / 1000:.1f} | "
                     f"{r['density_per_kge']:.3f} | {r['pe_density_per_kge']:.3f} |")
        L.append("")
    grp = [r for r in rows if "group" in r["families"]]
    if grp:
        L += ["## Group size (tile " + ", ".join(sorted({f"{r['m']}x{r['n']}" for r in grp}))
              + ")", "",
              "| kind | W | A | g | table | table bits | lookup kGE | kGE | density |",
              "|---|---|---|---|---|---|---|---|---|"]
        for r in sorted(grp, key=lambda r: (KINDS.index(r["kind"]), r["a_bits"], r["w_bits"],
                                            not r["symmetric"], r["g"])):
            lut = r["kind"] == "lut"
            table = ("sym" if r["symmetric"] else "full") if lut else "-"
            bits = str(r["table_bits"]) if lut else "-"
            lookup = f"{r['lookup_ge'] / 1000:.1f}" if lut else "-"
            L.append(f"| {r['kind']} | {r['w_bits']} | {r['a_bits']} | {r['g']} | {table} | "
                     f"{bits} | {lookup} | {r['ge'] / 1000:.1f} | "
                     f"{r['density_per_kge']:.3f} |")
        L.append("")
    ms = [r for r in rows if "mac_shape" in r["families"]]
    if ms:
        L += ["## MAC baselines at longer dot products (m x n x g, 512 multiplies per cycle)",
              "", "| kind | W | A | shape | kGE | density | PE-only density |",
              "|---|---|---|---|---|---|---|"]
        for r in sorted(ms, key=lambda r: (KINDS.index(r["kind"]), r["a_bits"], r["w_bits"],
                                           r["g"])):
            L.append(f"| {r['kind']} | {r['w_bits']} | {r['a_bits']} | {r['shape']} | "
                     f"{r['ge'] / 1000:.1f} | {r['density_per_kge']:.3f} | "
                     f"{r['pe_density_per_kge']:.3f} |")
        L.append("")
    rt = ratio_table(rows)
    if rt:
        L += ["## LUT / MAC density ratio", "",
              "| A | W | baseline | same tile | ratio (same tile) | PE-only ratio (same tile) "
              "| best LUT shape | best MAC shape | ratio (best shapes) |",
              "|---|---|---|---|---|---|---|---|---|"]
        for r in rt:
            L.append(f"| {r['a_bits']} | {r['w_bits']} | {r['baseline']} | {r['same_shape']} "
                     f"| {r['ratio_same']:.2f} | {r['pe_ratio_same']:.2f} | "
                     f"{r['best_lut_shape']} | {r['best_mac_shape']} | {r['ratio_best']:.2f} |")
        L.append("")
    L += _fp_markdown(rows)
    L += _ppa_markdown(rows, meta)
    v = verdict(rows)
    if v:
        L += ["## The default point (W2A8, g = 4, m2n64, symmetric)", ""]
        if "tile" in v:
            L.append("- tile shapes at W2A8 by density: " + ", ".join(
                f"{s} {d:.3f}" for s, d in v["tile"]["ranking"]))
        if "group" in v:
            L.append("- group sizes at W2A8 by density: " + ", ".join(
                f"g{g}{'s' if s else 'f'} {d:.3f}" for g, s, d in v["group"]["ranking"]))
        L.append("")
    if meta.get("failures"):
        L += ["## Failed points (no figures)", ""]
        L += [f"- {f['label']}: {f['error'].splitlines()[0]}" for f in meta["failures"]]
        L.append("")
    return "\n".join(L)
