"""The sweep's outputs: rows (CSV/JSON), the LUT/MAC ratio table, the verdict, summary.md."""
from __future__ import annotations

import csv
import io

from .. import area
from ..synth.comparison import density
from ..tools import atomic_write
from .points import KINDS

__all__ = ["CSV_FIELDS", "make_row", "write_csv", "ratio_table", "verdict", "summary_markdown",
           "FF_GE"]

#: gate equivalents of one flip-flop bit (table registers, output buffers)
FF_GE = area.FF_BIT_TRANSISTORS / area.TRANSISTORS_PER_GE

CSV_FIELDS = [
    "name", "kind", "top", "families", "w_bits", "a_bits", "g", "m", "n", "shape", "k_max",
    "symmetric", "macs_per_cycle", "ge", "transistors", "comb_transistors", "ff_bits",
    "cells", "depth", "density_per_kge", "pe_array_ge", "pe_density_per_kge", "top_local_ge",
    "lookup_ge", "accumulator_ge", "tree_ge", "correction_ge", "mac_pe_ge", "table_bits",
    "table_reg_ge",
    "outbuf_bits", "outbuf_ge", "in_bits_per_cycle", "engine_table_bits", "entry_width",
    "acc_width", "result_width", "tables_per_pe", "accumulation", "output_buffer",
    "table_bits_per_cycle", "yosys",
    "synth_wall_s", "cached", "key",
]


def make_row(point, families, rec, key, cached):
    """One CSV/JSON row: the record's figures with the formulas of gen.synth.comparison
    applied (MACs per cycle, density) and the widths derived from the point's config."""
    cats = rec["categories"]
    d = point.config().derived()
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
    # operand bits the array takes per cycle at full rate (analytic, from the stream widths):
    # LUT: one weight bit-plane (n*c*g) per cycle and the tables of a step every w cycles;
    # MAC: the m*g activations and the g*n weight codes of a group every cycle
    if lut:
        in_bits = d["weight_width"] + d["table_width"] / point.w_bits
    else:
        in_bits = float(d["act_width"] + d["code_width"])
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
        "table_bits": table_bits, "table_reg_ge": table_bits * FF_GE,
        "outbuf_bits": outbuf_bits, "outbuf_ge": outbuf_bits * FF_GE,
        "in_bits_per_cycle": in_bits,
        # the engine (hw/engine.py) keeps two banks of a row block's tables for k_max
        "engine_table_bits": 2 * d["groups_max"] * d["table_width"] if lut else None,
        "entry_width": d["entry_width"] if lut else None,
        # a MAC PE accumulates at the result width (it has no bit-serial LUT accumulator)
        "acc_width": d["acc_width"] if lut else d["result_width"],
        "result_width": d["result_width"],
        "tables_per_pe": point.tables_per_pe if lut else None,
        "accumulation": point.accumulation if lut else None,
        "output_buffer": point.output_buffer,
        "table_bits_per_cycle": d["table_bits_per_cycle"] if lut else None,
        "yosys": rec["yosys"], "synth_wall_s": rec["synth_wall_s"], "cached": cached,
        "key": key,
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
