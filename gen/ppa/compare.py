"""``python -m gen.ppa compare``: real PPA rows for the designs of ``gen.synth --compare``.

The design list is the comparison's own (:func:`gen.synth.comparison.compare_designs`: the
LUT array with symmetric and full tables, both MAC baselines in their own shape and at the
LUT's tile), for each weight precision asked for (``--w-bits-list``). Every design runs the
same flow (:func:`gen.ppa.flow.ppa_design` with ``flat="buffer"``):

* **area**: hierarchical mapping, the PE module mapped once and counted per instance, the top
  (control, table register, drain, correction) mapped without the PEs; plus the buffer trees
  of :mod:`gen.ppa.fanout` (reported apart). A flat ABC run of a 512-multiplier MAC array
  does not finish in useful time, so no design uses one here.
* **timing**: OpenSTA on the whole buffered hierarchy (linked flat), i.e. every path: inside
  the PE, inside the top, and across the boundary (the top's arrival at a PE pin plus the PE's
  path from that pin); the PE module is also timed alone. The array's minimum period is the
  worst of all of them.
* **power**: gate-level simulation of the same netlist with the same operand source for
  every design (random by default, the MiniLM layer with ``--power random,minilm``), about
  the same number of MACs per design (``--macs``), every result checked against the golden
  model.

Figures per design: µm², Fmax, MACs per cycle (the comparison's formula), TOPS/mm² at the
design's own Fmax and at a common clock (the slowest design's Fmax unless ``--common-mhz``),
pJ/MAC and TOPS/W (``2 / pJ per MAC``: one MAC = two operations); and the LUT / MAC ratios.
"""
from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

from ..tools import atomic_write

__all__ = ["main", "compare_ppa", "design_row", "ratio_rows", "render_compare"]


def _op_format(cfg, w_bits):
    """Weight format of the simulated operations: binary at one bit (BitNet-style W1), else
    int; the first format the build supports when it lacks those."""
    want = "binary" if w_bits == 1 else "int"
    return want if want in cfg.weight_formats else cfg.weight_formats[0]


def design_row(d, res, w_bits):
    """One PPA row from a :func:`ppa_design` result ``res`` of comparison design ``d``."""
    from ..synth.comparison import macs_per_cycle
    cfg, top = d["cfg"], d["top"]
    macs = macs_per_cycle(top, cfg, w_bits)
    area = res["area"]["flat"]["area"]
    fmax = res["timing"]["array"]["fmax_mhz"]
    row = {"key": d["key"], "role": d["role"], "top": top, "shape": d["shape"],
           "name": d["name"], "params": cfg.params(), "w_bits": w_bits,
           "macs_per_cycle": macs,
           "multiply_equivalents": cfg.m * cfg.n * cfg.step_k,
           "area_um2": area, "area_hierarchical_um2": res["area"]["hierarchical"]["area"],
           # the buffer trees of every module instance (the flat netlist's extra area)
           "buffer_area_um2": area - res["area"]["hierarchical"]["area"],
           "ff_share": res["area"]["flat"]["ff_share"],
           "min_period_ns": res["timing"]["array"]["min_period_ns"], "fmax_mhz": fmax,
           "pe_min_period_ns": res["timing"].get("pe", {}).get("min_period_ns"),
           "critical_path": {k: res["timing"]["array"]["critical_path"][k]
                             for k in ("startpoint", "endpoint")},
           "macs_per_cycle_per_mm2": macs / (area * 1e-6),
           "tops_per_mm2_own": 2 * macs * fmax * 1e6 / 1e12 / (area * 1e-6) if fmax else None,
           "power": {}}
    for key, p in res["power"].items():
        row["power"][key.split("_")[0]] = {
            "pj_per_mac": p["pj_per_mac"], "tops_per_w": 2.0 / p["pj_per_mac"],
            "pj_per_cycle": p["pj_per_cycle"], "macs": p["macs"], "cycles": p["cycles"],
            "results_checked": p["results_checked"],
            "relative_standard_error": (p.get("energy_error") or {}).get(
                "relative_standard_error"),
            "simulator": p.get("simulator"), "wall_s": p.get("wall_s"), "cpu_s": p.get("cpu_s"),
            "mw_at_fmax": p["pj_per_cycle"] * fmax * 1e-3 if fmax else None}
    return row


def ratio_rows(rows, common_mhz):
    """LUT / MAC ratios per weight precision (> 1 favours the LUT array): area MAC / LUT at
    equal multiply-equivalents, density per cycle, TOPS/mm² at own Fmax, energy MAC / LUT."""
    out = []
    for r in rows:
        r["tops_per_mm2_common"] = 2 * r["macs_per_cycle"] * common_mhz * 1e6 / 1e12 / (
            r["area_um2"] * 1e-6)
    by = {(r["w_bits"], r["key"]): r for r in rows}
    for (w, key), mac in sorted(by.items()):
        if not key.startswith("mac") or (w, "lut") not in by:
            continue
        lut = by[(w, "lut")]
        line = {"w_bits": w, "lut": "lut", "mac": key, "lut_shape": lut["shape"],
                "mac_shape": mac["shape"],
                "area_mac_over_lut": mac["area_um2"] / lut["area_um2"],
                "density_lut_over_mac": lut["macs_per_cycle_per_mm2"]
                / mac["macs_per_cycle_per_mm2"],
                "tops_per_mm2_own_lut_over_mac": (lut["tops_per_mm2_own"]
                                                  / mac["tops_per_mm2_own"]),
                "fmax_lut_over_mac": lut["fmax_mhz"] / mac["fmax_mhz"], "energy": {}}
        for src in lut["power"]:
            if src in mac["power"]:
                line["energy"][src] = (mac["power"][src]["pj_per_mac"]
                                       / lut["power"][src]["pj_per_mac"])
        out.append(line)
    return out


def compare_ppa(cfg, out_dir, *, w_bits_list=None, quick=False, keys=None, clock_ns=5.0,
                sources=("random",), macs=16384, k=64, common_mhz=None, simulator="cycle",
                reuse=False, timeout=3600, adder="ripple", log=print):
    """Run :func:`gen.ppa.flow.ppa_design` on every comparison design at each ``w_bits`` of
    ``w_bits_list`` (default ``cfg.w_bits``); return the rows and ratios (also written to
    ``<out_dir>/compare.json`` and ``compare.md``, each design's report to its own directory).
    """
    from ..emit import emit
    from ..synth.comparison import (LUT_SHAPE, MAC_SHAPE, QUICK_LUT_SHAPE, QUICK_MAC_SHAPE,
                                    compare_designs)
    from .cli import render_markdown
    from .flow import ppa_design
    from .liberty import vendored_liberty
    from .stimulus import Stimulus
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shapes = (QUICK_LUT_SHAPE, QUICK_MAC_SHAPE) if quick else (LUT_SHAPE, MAC_SHAPE)
    rows, t0 = [], time.monotonic()
    for w in (w_bits_list or [cfg.w_bits]):
        base = cfg.replace(w_bits=w, weight_formats=None)
        for d in compare_designs(base, *shapes):
            if keys and d["key"] not in keys:
                continue
            c = d["cfg"]
            em = emit(c, out / "_build", top=d["top"])
            d["name"] = em["name"]
            manifest = json.loads(Path(em["manifest"]).read_text())
            per_op = c.m * c.n * k
            fmt = _op_format(c, w)
            stims = [Stimulus(s, ops=max(1, round(macs / per_op)), k=k, fmt=fmt)
                     for s in sources]
            t1 = time.monotonic()
            res = ppa_design(em["verilog"], manifest["name"], out / d["name"] / "work",
                             liberty=vendored_liberty(), clock_ns=clock_ns, activity=stims,
                             pe_module=manifest.get("pe_module"), cfg=c, kind=d["top"],
                             check_power=False, timeout=timeout, simulator=simulator,
                             reuse=reuse, flat="buffer", adder=adder)
            res["config"] = c.params()
            res["total_wall_s"] = round(time.monotonic() - t1, 1)
            atomic_write(out / d["name"] / "report.json",
                         json.dumps(res, indent=2, sort_keys=True, default=str) + "\n")
            atomic_write(out / d["name"] / "report.md", render_markdown(res, d["name"]))
            row = design_row(d, res, w)
            row["wall_s"] = res["wall_s"] | {"total": res["total_wall_s"]}
            row["cpu_s"] = res.get("cpu_s")
            rows.append(row)
            log(f"W{w} {d['key']:18s} {d['shape']:10s} {row['area_um2']:>12,.0f} um2  "
                f"Fmax {row['fmax_mhz']:7.1f} MHz  " + "  ".join(
                    f"{s} {p['pj_per_mac']:.3f} pJ/MAC" for s, p in row["power"].items())
                + f"  ({res['total_wall_s']} s)")
    common = common_mhz or min(r["fmax_mhz"] for r in rows)
    result = {"kind": "ppa_comparison", "clock_target_ns": clock_ns, "common_mhz": common,
              "adder": adder,
              "common_clock_rule": "given" if common_mhz else "the slowest design's Fmax",
              "sources": list(sources), "macs_per_design": macs, "k": k,
              "rows": rows, "ratios": ratio_rows(rows, common),
              "total_wall_s": round(time.monotonic() - t0, 1)}
    return result


def _f(x, nd=1):
    return "—" if x is None else f"{x:,.{nd}f}"


def render_compare(res):
    """The Markdown tables of a :func:`compare_ppa` result."""
    srcs = res["sources"]
    L = ["# PPA comparison: LUT array vs MAC baselines", ""]
    if res.get("command"):
        L += [f"Command: `{res['command']}`", ""]
    L += [f"sky130hd, ABC target {res['clock_target_ns']:g} ns, {res['adder']} adders; "
          "hierarchical mapping (PE once "
          "× instances) with buffer trees on high-fanout nets; OpenSTA on the whole linked "
          f"hierarchy; common clock {res['common_mhz']:.1f} MHz "
          f"({res['common_clock_rule']}).", "",
          "| W | design | shape | µm² | Fmax MHz (PE alone) | MACs/cycle | TOPS/mm² own Fmax "
          "| TOPS/mm² common | " + " | ".join(f"pJ/MAC {s} | TOPS/W {s}" for s in srcs) + " |",
          "|---" * (8 + 2 * len(srcs)) + "|"]
    for r in res["rows"]:
        pe = r["pe_min_period_ns"]
        cells = [f"{r['w_bits']}", r["key"], r["shape"], _f(r["area_um2"], 0),
                 f"{r['fmax_mhz']:.1f} ({1000 / pe:.0f})" if pe else f"{r['fmax_mhz']:.1f}",
                 _f(r["macs_per_cycle"], 0), f"{r['tops_per_mm2_own']:.4f}",
                 f"{r['tops_per_mm2_common']:.4f}"]
        for s in srcs:
            p = r["power"].get(s)
            se = p.get("relative_standard_error") if p else None
            err = f" (±{100 * se:.1f} %)" if se is not None else ""
            cells += [f"{p['pj_per_mac']:.3f}{err}", f"{p['tops_per_w']:.3f}"] if p else ["—", "—"]
        L.append("| " + " | ".join(cells) + " |")
    L += ["", "pJ/MAC (± the batch-means standard error of the simulated window, when the "
          "cycle simulator ran it).", "", "Ratios (> 1 favours the LUT array):", "",
          "| W | LUT vs | area MAC/LUT | density per cycle LUT/MAC | TOPS/mm² own Fmax LUT/MAC "
          "| Fmax LUT/MAC | " + " | ".join(f"energy MAC/LUT {s}" for s in srcs) + " |",
          "|---" * (6 + len(srcs)) + "|"]
    for x in res["ratios"]:
        L.append(f"| {x['w_bits']} | {x['mac']} ({x['mac_shape']}) | {x['area_mac_over_lut']:.2f} "
                 f"| {x['density_lut_over_mac']:.2f} | {x['tops_per_mm2_own_lut_over_mac']:.2f} "
                 f"| {x['fmax_lut_over_mac']:.2f} | "
                 + " | ".join(_f(x["energy"].get(s), 2) for s in srcs) + " |")
    L += ["", f"Total wall time {res['total_wall_s']} s.", ""]
    return "\n".join(L)


def main(argv, prog):
    from ..cli import DesignArgumentParser, add_design_args, config_from_args
    from .stimulus import SOURCES
    p = DesignArgumentParser(
        prog=f"{prog} compare",
        description="PPA rows (µm², Fmax, TOPS/mm², pJ/MAC, TOPS/W) for every design of "
                    "gen.synth --compare and the LUT / MAC ratios; writes <out>/compare.md "
                    "and compare.json.")
    add_design_args(p)
    o = p.add_argument_group("comparison")
    o.add_argument("--w-bits-list", default=None, metavar="W[,W]",
                   help="weight precisions to compare, e.g. 1,2,4 (default: --w-bits)")
    o.add_argument("--quick", action="store_true",
                   help="32 multiply-equivalents (LUT M2N4K4, MAC M2N1K16) instead of 512")
    o.add_argument("--designs", default=None, metavar="KEY[,KEY]",
                   help="only these comparison designs (lut, lut_full, mac_dequant, "
                        "mac_direct, mac_dequant_tile, mac_direct_tile)")
    o.add_argument("--clock-ns", type=float, default=5.0, metavar="NS",
                   help="clock period ABC targets (default 5)")
    o.add_argument("--common-mhz", type=float, default=None, metavar="MHZ",
                   help="common clock for TOPS/mm² (default: the slowest design's Fmax)")
    o.add_argument("--power", default="random", metavar="SRC[,SRC]",
                   help=f"operand sources for the power runs: {', '.join(SOURCES)} "
                        "(default random)")
    o.add_argument("--macs", type=int, default=16384,
                   help="about this many MACs simulated per design (default 16384)")
    o.add_argument("--k", type=int, default=64, help="reduction per operation (default 64)")
    from .flow import SIMULATORS
    o.add_argument("--simulator", default="cycle", choices=SIMULATORS,
                   help="gate-level simulator of the power runs (default cycle)")
    o.add_argument("--adder", default="ripple", choices=("ripple", "kogge-stone"),
                   help="carry structure of the adders (default ripple)")
    o.add_argument("--reuse", action="store_true", help="reuse completed mapping runs")
    o.add_argument("--timeout", type=float, default=3600, metavar="S")
    o.add_argument("--out", default="reports/ppa/compare", metavar="DIR",
                   help="output directory (default reports/ppa/compare)")
    args = p.parse_args(argv)
    cfg = config_from_args(p, args)
    try:
        ws = ([int(x) for x in args.w_bits_list.split(",")] if args.w_bits_list
              else [cfg.w_bits])
        for w in ws:
            cfg.replace(w_bits=w, weight_formats=None)
    except (TypeError, ValueError) as e:
        p.error(f"--w-bits-list: {e}")
    sources = [s.strip() for s in args.power.split(",") if s.strip()]
    bad = [s for s in sources if s not in SOURCES]
    if bad or not sources:
        p.error(f"--power must name sources from {', '.join(SOURCES)}, not {args.power!r}")
    keys = None
    if args.designs:
        keys = {x.strip() for x in args.designs.split(",") if x.strip()}
        known = {"lut", "lut_full", "mac_dequant", "mac_direct", "mac_dequant_tile",
                 "mac_direct_tile"}
        if not keys or keys - known or "lut" not in keys:
            p.error(f"--designs must name designs from {', '.join(sorted(known))} including "
                    f"lut, not {args.designs!r}")
    for name, v in (("--clock-ns", args.clock_ns), ("--timeout", args.timeout)):
        if not v > 0:
            p.error(f"{name} must be > 0, not {v}")
    if args.common_mhz is not None and not args.common_mhz > 0:
        p.error(f"--common-mhz must be > 0, not {args.common_mhz}")
    if args.macs < 1 or args.k < 1 or args.k > cfg.k_max:
        p.error(f"--macs must be >= 1 and --k in 1..--k-max ({cfg.k_max}), not "
                f"{args.macs} and {args.k}")
    from ..synth import SynthesisError
    from .gatesim import GateSimError
    from .sta import StaError
    try:
        res = compare_ppa(cfg, args.out, w_bits_list=ws, quick=args.quick, keys=keys,
                          clock_ns=args.clock_ns, sources=sources, macs=args.macs, k=args.k,
                          common_mhz=args.common_mhz, simulator=args.simulator,
                          reuse=args.reuse, timeout=args.timeout, adder=args.adder)
    except (SynthesisError, StaError, GateSimError, FileNotFoundError) as e:
        print(f"{p.prog}: failed: {e}", file=sys.stderr)
        return 1
    res["command"] = f"{prog} compare " + shlex.join(argv)
    out = Path(args.out)
    atomic_write(out / "compare.json", json.dumps(res, indent=2, sort_keys=True,
                                                  default=str) + "\n")
    atomic_write(out / "compare.md", render_compare(res))
    print(f"wrote {out / 'compare.md'} and {out / 'compare.json'} ({res['total_wall_s']} s)")
    return 0
