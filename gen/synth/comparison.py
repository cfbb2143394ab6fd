"""The LUT-vs-MAC comparison (``python -m gen.synth --compare``) and its figures.

Synthesizes the LUT array (symmetric and non-symmetric tables) and both MAC baselines
(``mac_dequant``, ``mac_direct``) at the same precision: equal-size arrays of 512
multiply-equivalents, each in its own shape (LUT M2N64K4, MAC M8N4K16 -- ``g = 16`` through
:func:`mac_config`), and the MACs again at the LUT's tile. Reports area, FF bits, depth, MACs
per cycle (LUT ``m*n*g / w``, bit-serial; MAC ``m*n*g``), compute density (MACs per cycle per
1000 GE) and the LUT / MAC ratios, the symmetrization saving and the synthesis times, with each
design's own report beside it. The MACs-per-cycle and density formulas here are the ones the
sweep (:mod:`gen.dse`) uses too.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from .. import area
from ..cli import tile_label
from ..config import LutConfig
from ..mac_config import MAC_G_RANGE, MacConfig
from .flow import synthesize
from .report import remove_reports, write_report
from .yosys import DEFAULT_TIMEOUT, SynthesisError, uses_yowasp, warm_up

__all__ = ["compare", "compare_designs", "mac_config", "macs_per_cycle",
           "density", "table_bits", "LUT_SHAPE", "MAC_SHAPE", "QUICK_LUT_SHAPE",
           "QUICK_MAC_SHAPE", "MAC_G_RANGE", "MACS_FORMULA", "DENSITY_FORMULA"]

#: the paper's comparison size (Mo et al., ISCA 2025, Fig. 14): M x N x K = 512 multiply-
#: equivalents per cycle at full precision; LUT in its chosen elongated tile M2N64K4, the MAC
#: baseline in the shape of one A100 INT8 tensor-core step, M8N4K16
LUT_SHAPE = (2, 64, 4)
MAC_SHAPE = (8, 4, 16)
#: ``--quick``: the same comparison with 32 multiply-equivalents (for ``make test``)
QUICK_LUT_SHAPE = (2, 4, 4)
QUICK_MAC_SHAPE = (2, 1, 16)

#: how each kind of design turns its shape into MACs per cycle (written into every report)
MACS_FORMULA = {
    "array": "c * m*n*g / w  (c = tables per PE; bit-serial: one weight bit-plane per cycle; "
             "w = the operation's weight bits)",
    "mac_dequant": "m*n*g  (one a_bits x a_bits multiply per PE lane per cycle)",
    "mac_direct": "m*n*g  (one a_bits x (w_bits+1) multiply per PE lane per cycle)",
}
#: how compute density is formed (written into every report)
DENSITY_FORMULA = "compute density = MACs per cycle / (GE / 1000); ratio = LUT / MAC"


def mac_config(cfg, shape):
    """``cfg`` (precision, k_max, formats) at the MAC tile ``shape = (m, n, g)``.

    The one place where the flows (the comparison, the sweep) build a MAC baseline's config.
    """
    m, n, g = shape
    return MacConfig.from_lut(cfg, m=m, n=n, g=g)


def macs_per_cycle(top, cfg, w_bits):
    """Multiply-accumulates per cycle of ``top`` at ``cfg`` running ``w_bits``-bit weights."""
    equiv = cfg.m * cfg.n * cfg.step_k
    return equiv / w_bits if top == "array" else float(equiv)


def density(macs, ge):
    """Compute density: MACs per cycle per 1000 GE (:data:`DENSITY_FORMULA`)."""
    return 1000.0 * macs / ge


def table_bits(cfg):
    """Table storage of the LUT array: ``m * tables_per_pe * entries * entry_width`` bits (the
    config's ``table_width``)."""
    return cfg.table_width


def compare_designs(cfg, lut_shape=LUT_SHAPE, mac_shape=MAC_SHAPE):
    """The designs of one comparison: ``[{key, top, cfg, shape, role}]``.

    ``lut`` (symmetric) and ``lut_full`` at ``lut_shape``; ``mac_dequant`` and ``mac_direct``
    at their own ``mac_shape``; and both MAC kinds again at the LUT's tile
    (``mac_dequant_tile``, ``mac_direct_tile``) unless the shapes are equal.
    """
    base = dict(w_bits=cfg.w_bits, a_bits=cfg.a_bits, k_max=cfg.k_max,
                weight_formats=cfg.weight_formats, tables_per_pe=cfg.tables_per_pe,
                accumulation=cfg.accumulation, output_buffer=cfg.output_buffer)
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
    # the LUT's tile as a MAC: m x n PEs of c*g lanes (c tables per LUT PE)
    lut_tile = (m, n, g * lut.tables_per_pe)
    if tuple(mac_shape) != lut_tile:
        for kind in ("mac_dequant", "mac_direct"):
            designs.append({"key": f"{kind}_tile", "top": kind,
                            "cfg": mac_config(cfg, lut_tile),
                            "role": f"MAC ({kind[4:]}), LUT's tile"})
    for d in designs:
        c = d["cfg"]
        d["shape"] = tile_label((c.m, c.n, c.g))
        if d["top"] == "array" and c.tables_per_pe > 1:
            d["shape"] += f"c{c.tables_per_pe}"
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
        "multiply_equivalents": cfg.m * cfg.n * cfg.step_k,
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
        pe_macs = cfg.step_k / w_bits if top == "array" else float(cfg.g)
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
        fig["table_bits_per_cycle"] = cfg.table_bits_per_cycle
        fig["tables_per_pe"] = cfg.tables_per_pe
        fig["accumulation"] = cfg.accumulation
        fig["output_buffer"] = cfg.output_buffer
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


def synthesize_designs(designs, out, w_bits, *, jobs=1, liberty=None, gates="generic",
                       dedup=True, timeout=DEFAULT_TIMEOUT, yosys=None, check=None,
                       depth=True):
    """Emit every design of ``designs`` (``{key, top, cfg, role[, act, name]}``) into
    ``<out>/<name>/``, synthesize them (``jobs`` at once) and write each one's report.

    A design's ``act`` (default ``int``) goes to :func:`gen.emit.emit`; its ``name`` is the one
    emit gives it (the PE module's name comes from the manifest, loaded as ``manifest``);
    ``check(design)`` runs on each design as soon as it is emitted, before any synthesis.
    Returns ``(results, figures, wall seconds, wasm warm-up seconds or None)``, keyed by design
    key. Raises :class:`SynthesisError` when any run fails.
    """
    from ..emit import default_name, render, write_build
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    for d in designs:
        act = d.get("act", "int")
        t0 = time.monotonic()
        # render first: an FP build names itself (its activation format replaces a_bits)
        build = render(d["cfg"], default_name(d["cfg"], d["top"]) if act == "int" else None,
                       d["top"], act=act)
        d["name"] = build["name"]
        remove_reports(out / d["name"])
        vpath, jpath = write_build(out / d["name"], build)
        d["emit"] = {"verilog": vpath, "manifest": jpath, "name": build["name"]}
        d["emit_s"] = round(time.monotonic() - t0, 2)
        d["manifest"] = json.loads(Path(jpath).read_text())
        d["pe_module"] = d["manifest"]["pe_module"]
        if check is not None:
            check(d)
    warm_s = None
    if uses_yowasp(yosys):
        warm_s = warm_up()

    def run(d):
        return synthesize(d["emit"]["verilog"], d["name"], out / d["name"] / "yosys", liberty,
                          gates=gates, dedup=dedup, timeout=timeout, yosys=yosys, depth=depth)

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
        extra = {"config": d["cfg"].params(), "derived": d["cfg"].derived(),
                 "name": d["name"], "top_kind": d["top"]}
        if d.get("act", "int") != "int":
            extra["act"] = d["act"]
        write_report(r, out / d["name"], title=d["name"], extra=extra)
        figs[d["key"]] = _design_figures(d, r, d["pe_module"], w_bits)
    return results, figs, wall, warm_s


def compare(cfg, out_dir, *, lut_shape=LUT_SHAPE, mac_shape=MAC_SHAPE, jobs=1, liberty=None,
            gates="generic", dedup=True, timeout=DEFAULT_TIMEOUT, yosys=None, command=None,
            title=None, depth=True):
    """Synthesize the designs of :func:`compare_designs` and compare them; return the result.

    ``cfg`` gives the precision (``w_bits`` is also the operation's weight bits for the
    MACs-per-cycle figure), ``a_bits``, ``k_max`` and the weight formats; the shapes come from
    ``lut_shape`` and ``mac_shape``. Each design is emitted into ``<out_dir>/<name>/`` and gets
    its own full synthesis report there. ``jobs`` Yosys runs go at once (the wall times in the
    report are then measured under that load). Raises :class:`SynthesisError` when any run
    fails: then no figure of the comparison exists.
    """
    out = Path(out_dir)
    designs = compare_designs(cfg, lut_shape, mac_shape)
    results, figs, wall, warm_s = synthesize_designs(
        designs, out, cfg.w_bits, jobs=jobs, liberty=liberty, gates=gates, dedup=dedup,
        timeout=timeout, yosys=yosys, depth=depth)

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
        "table_formula": "m * entries * entry_width * tables_per_pe",
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
        "shapes": {"lut": tile_label(lut_shape), "mac": tile_label(mac_shape)},
        "macs_formula": MACS_FORMULA,
        "density_formula": DENSITY_FORMULA,
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
