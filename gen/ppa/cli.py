"""``python -m gen.ppa`` / ``lutcore-ppa``: mapped area, timing and power of one design point
(``python -m gen.ppa compare ...``: the LUT-vs-MAC comparison, :mod:`gen.ppa.compare`).

Emits the design (``gen.emit``), runs :func:`gen.ppa.flow.ppa_design` and writes
``<out>/<name>/report.md`` and ``report.json`` (default ``reports/ppa/<name>/``), next to the
generic-gate figure of the same Verilog when ``--ge`` is given.
"""
from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

from ..tools import atomic_write
from .liberty import VENDORED
from .stimulus import SOURCES, Stimulus

__all__ = ["main", "render_markdown"]

TOPS = ("array", "mac_dequant", "mac_direct")


def _f(x, nd=1):
    return "—" if x is None else f"{x:,.{nd}f}"


def render_markdown(res, title):
    """The Markdown report of a :func:`gen.ppa.flow.ppa_design` result."""
    a, lib = res["area"], res["liberty"]
    L = [f"# PPA report: {title}", ""]
    if res.get("command"):
        L += [f"Command: `{res['command']}`", ""]
    if res.get("config"):
        L += ["| parameter | value |", "|---|---|"]
        L += [f"| {k} | {v} |" for k, v in res["config"].items()]
        L.append("")
    h, fl = a["hierarchical"], a["flat"]
    L += [f"Library: `{lib['library']}` ({lib['file']}, {lib['operating_conditions']}, "
          f"{lib['voltage']} V). Clock targeted by ABC and checked by OpenSTA: "
          f"{res['clock_ns']:g} ns; adders: {res.get('adder', 'ripple')}.", "",
          "## Area (µm²)", "",
          "| netlist | area µm² | flip-flop area µm² | FF share | FF bits | cells |",
          "|---|---|---|---|---|---|",
          f"| hierarchical (PE mapped once, × instances) | {_f(h['area'])} "
          f"| {_f(h['sequential_area'])} | {100 * h['ff_share']:.1f} % | {h['ff_bits']:,} "
          f"| {h['num_cells']:,} |",
          f"| flat ({a.get('flat_netlist', 'flat ABC run')}; timed and simulated) "
          f"| {_f(fl['area'])} | {_f(fl['sequential_area'])} "
          f"| {100 * fl['ff_share']:.1f} % | {fl['ff_bits']:,} | {fl['num_cells']:,} |"]
    if res.get("ge") is not None:
        L += ["", f"Generic-gate figure of the same Verilog (gen.synth): {res['ge']:,.1f} GE "
              f"-> {h['area'] / res['ge']:.2f} µm² per GE."]
    L += ["", "Per module type (hierarchical netlist; local = without submodules):", "",
          "| module type | instances | local µm² | with submodules µm² | FF bits (local) "
          "| total µm² | share |", "|---|---|---|---|---|---|---|"]
    for t in a["types"]:
        L.append(f"| `{t['type']}` | {t['instances']} | {_f(t['area'])} "
                 f"| {_f(t['area_with_submodules'])} | {t['ff_bits']} | {_f(t['total_area'])} "
                 f"| {100 * t['share']:.1f} % |")
    L += ["", "## Timing (OpenSTA)", "",
          "| netlist | min period ns | Fmax MHz | worst slack ns | startpoint | endpoint "
          "| cells on path |", "|---|---|---|---|---|---|---|"]
    for k, t in res["timing"].items():
        cp = t["critical_path"]
        L.append(f"| {k} | {t['min_period_ns']:.3f} | {_f(t['fmax_mhz'])} "
                 f"| {t['worst_slack_ns']:.3f} | `{cp['startpoint']}` ({cp['startpoint_kind']}) "
                 f"| `{cp['endpoint']}` ({cp['endpoint_kind']}) | {len(cp['cells'])} |")
    for k, t in res["timing"].items():
        cells = [c["cell"].split("__")[-1] for c in t["critical_path"]["cells"]]
        L += ["", f"Critical path of the {k}: " + " → ".join(cells)]
    if res["power"]:
        L += ["", "## Power from simulated activity", "",
              "Gate-level simulation of the flat netlist; every result checked against the "
              "golden model. Energy in pJ over the run; per MAC = per multiply-accumulate of "
              "the GEMM (`m*n*k` per operation).", "",
              "| stimulus | ops × k | cycles | results checked | toggles/pin/cycle "
              "| switching pJ | internal pJ | leakage pJ | **pJ/MAC** | pJ/op | pJ/cycle "
              "| mW at Fmax |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        fmax = res["timing"]["array"]["fmax_mhz"]
        for key, p in res["power"].items():
            e = p["energy_pj"]
            mw = p["pj_per_cycle"] * fmax * 1e-3 if fmax else None
            L.append(f"| {key} | {p['operations']} × {p['stimulus']['k']} | {p['cycles']} "
                     f"| {p['results_checked']} | {p['mean_toggles_per_pin_per_cycle']:.3f} "
                     f"| {_f(e['switching'])} | {_f(e['internal'])} | {e['leakage']:.3g} "
                     f"| **{p['pj_per_mac']:.3f}** | {_f(p['pj_per_op'])} "
                     f"| {p['pj_per_cycle']:.2f} | {_f(mw, 2)} |")
        for key, p in res["power"].items():
            err = (p.get("energy_error") or {}).get("relative_standard_error")
            blocks = p.get("by_block_pj") or {}
            tot = sum(blocks.values())
            L += ["", f"{key}: simulator `{p.get('simulator')}`"
                  + (f", statistical error ±{100 * err:.1f} % (batch means)" if err else "")
                  + ("; switching + internal energy by block: " + ", ".join(
                      f"{b} {100 * v / tot:.1f} %" for b, v in list(blocks.items())[:6])
                     if tot else "")]
        pc = res.get("power_check")
        if pc:
            ri, ro = pc["ratio_input_rule"], pc["ratio_output_rule"]
            L += ["", f"Cross-check with OpenSTA `report_power` at a uniform activity of "
                  f"{pc['activity']} transitions per cycle on every net (clock: 2): "
                  f"ours / OpenSTA = {ri['total']:.3f} in total (switching "
                  f"{ri['switching']:.3f}, internal {ri['internal']:.3f}, leakage "
                  f"{ri['leakage']:.3f}) when internal power is charged per input transition "
                  f"as OpenSTA does; {ro['total']:.3f} with this flow's rule (per output "
                  "transition), which the simulated figures above use."]
    L += ["", "## Flow", "",
          f"- Yosys {res['flow']['yosys']}, OpenSTA {res['flow']['opensta']}; ABC "
          f"constraints: driving cell `{res['flow']['abc_constraints']['driving_cell']}`, "
          f"load {res['flow']['abc_constraints']['load']} pF; flat netlist: "
          f"{res['flow']['flat_netlist']}",
          "- wall time: " + ", ".join(f"{k} {v} s" for k, v in res["wall_s"].items()
                                        if v is not None), "",
          "Flat mapping script:", "", "```", res["flow"]["script_flat"].rstrip(), "```",
          "", "OpenSTA script (array):", "", "```", res["flow"]["sta_script"].rstrip(), "```",
          ""]
    return "\n".join(L)


def main(argv=None):
    from ..cli import (DesignArgumentParser, add_design_args, check_name, config_from_args,
                       prog_name)
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["compare"]:
        from .compare import main as compare_main
        return compare_main(argv[1:], prog_name("gen.ppa", "lutcore-ppa"))
    p = DesignArgumentParser(
        prog=prog_name("gen.ppa", "lutcore-ppa"),
        description="Map a design point to a standard-cell library (default: the vendored "
                    "SkyWater sky130 HD library), time it with OpenSTA and estimate its power "
                    "from a gate-level simulation; write <out>/<name>/report.md and "
                    "report.json.")
    add_design_args(p)
    o = p.add_argument_group("PPA flow")
    o.add_argument("--top", default="array", choices=TOPS,
                   help="the LUT array (default) or a MAC baseline")
    o.add_argument("--mac-shape", metavar="MxNxK",
                   help="MAC tops: the MAC tile, e.g. 8x4x16 (default: --m/--n/--group)")
    o.add_argument("--lib", default="sky130hd", choices=sorted(VENDORED),
                   help="vendored library (default sky130hd)")
    o.add_argument("--liberty", metavar="FILE", help="use this Liberty file instead of --lib")
    o.add_argument("--clock-ns", type=float, default=None, metavar="NS",
                   help="clock period ABC targets (abc -D) and OpenSTA checks (default 10)")
    o.add_argument("--power", default="random", metavar="SRC[,SRC]",
                   help=f"stimuli for the power simulation: {', '.join(SOURCES)} or none "
                        "(default random)")
    o.add_argument("--ops", type=int, default=8, help="operations simulated (default 8)")
    o.add_argument("--k", type=int, default=64,
                   help="reduction length of each simulated operation (default 64)")
    o.add_argument("--op-format", default="int", metavar="FMT",
                   help="weight format of the simulated operations (default int; binary or "
                        "ternary need a build that supports them)")
    from .flow import SIMULATORS
    o.add_argument("--simulator", default="cycle", choices=SIMULATORS,
                   help="gate-level simulator (default cycle: the project's zero-delay NumPy "
                        "simulator, no build step; icarus; verilator compiles first and "
                        "then runs large arrays faster)")
    o.add_argument("--flat", default="map", choices=("map", "flatten", "buffer"),
                   help="flat netlist for timing and power: a flat ABC run (map, default), "
                        "the hierarchical mapping flattened (flatten: quick, no buffering "
                        "across module boundaries), or flattened after buffer trees on its "
                        "high-fanout nets (buffer: quick, buffered)")
    o.add_argument("--adder", default="ripple", choices=("ripple", "kogge-stone"),
                   help="carry structure Yosys gives the adders: its default ripple chain or "
                        "a Kogge-Stone prefix network (default ripple)")
    o.add_argument("--ge", action="store_true",
                   help="also synthesize the same Verilog to generic gates (gen.synth) and "
                        "report its gate equivalents next to the µm²")
    o.add_argument("--reuse", action="store_true",
                   help="keep completed Yosys mapping runs of the same inputs in the report's "
                        "work directory (their logs are checked again)")
    o.add_argument("--out", default="reports/ppa", metavar="DIR",
                   help="report root (default reports/ppa/)")
    o.add_argument("--name", help="report name (default: the emitted design's name)")
    o.add_argument("--timeout", type=float, default=3600, metavar="S",
                   help="stop each tool after S seconds (default 3600)")
    args = p.parse_args(argv)
    cfg = config_from_args(p, args)
    check_name(p, args.name)
    if args.liberty is not None and not Path(args.liberty).is_file():
        p.error(f"--liberty must name a readable file, not {args.liberty!r}")
    if args.clock_ns is not None and not args.clock_ns > 0:
        p.error(f"--clock-ns must be > 0, not {args.clock_ns}")
    if not args.timeout > 0:
        p.error(f"--timeout must be > 0 seconds, not {args.timeout}")
    sources = [] if args.power.strip() == "none" else [
        s.strip() for s in args.power.split(",") if s.strip()]
    stims = []
    try:
        for s in sources:
            stims.append(Stimulus(s, ops=args.ops, k=args.k, fmt=args.op_format))
            cfg.check_op(args.op_format, cfg.w_bits)
        if stims and args.k > cfg.k_max:
            raise ValueError(f"k must be at most --k-max = {cfg.k_max}, not {args.k}")
    except ValueError as e:
        p.error(f"--power/--ops/--k/--op-format: {e}")
    if args.top != "array":
        from ..cli import parse_tile
        from ..synth import mac_config
        try:
            shape = parse_tile(args.mac_shape) if args.mac_shape else (cfg.m, cfg.n, cfg.g)
            cfg = mac_config(cfg, shape)
        except (TypeError, ValueError) as e:
            p.error(f"--mac-shape: {e}")
    elif args.mac_shape:
        p.error("--mac-shape applies to the MAC tops only")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        p.error(f"--out must be a directory, not the file {args.out!r}")

    from ..emit import emit
    from ..synth import SynthesisError
    from .flow import ppa_design
    from .gatesim import GateSimError
    from .liberty import vendored_liberty
    from .sta import StaError
    liberty = args.liberty or vendored_liberty(args.lib)
    t0 = time.monotonic()
    em = emit(cfg, out / "_build", args.name, top=args.top)
    name = em["name"]
    rdir = out / name
    rdir.mkdir(parents=True, exist_ok=True)
    for stale in ("report.md", "report.json"):
        (rdir / stale).unlink(missing_ok=True)
    manifest = json.loads(Path(em["manifest"]).read_text())
    try:
        res = ppa_design(em["verilog"], manifest["name"], rdir / "work", liberty=liberty,
                         clock_ns=args.clock_ns, activity=stims,
                         pe_module=manifest.get("pe_module"), cfg=cfg, kind=args.top,
                         timeout=args.timeout, simulator=args.simulator, reuse=args.reuse,
                         flat=args.flat, adder=args.adder)
    except (SynthesisError, StaError, GateSimError, FileNotFoundError) as e:
        print(f"{p.prog}: failed: {e}", file=sys.stderr)
        return 1
    if args.ge:
        from ..synth import synthesize
        try:
            ge = synthesize(em["verilog"], manifest["name"], rdir / "work" / "ge",
                            timeout=args.timeout)
        except SynthesisError as e:
            print(f"{p.prog}: generic-gate synthesis failed: {e}", file=sys.stderr)
            return 1
        res["ge"] = ge["total"]["ge"]
        res["ge_flow"] = {"gates": ge["flow"]["gates"], "wall_s": ge["timing"]["wall_s"]}
    res["command"] = "python -m gen.ppa " + shlex.join(argv)
    res["config"] = cfg.params()
    res["derived"] = cfg.derived()
    res["total_wall_s"] = round(time.monotonic() - t0, 1)
    atomic_write(rdir / "report.json", json.dumps(res, indent=2, sort_keys=True,
                                                  default=str) + "\n")
    atomic_write(rdir / "report.md", render_markdown(res, name))
    h, t = res["area"]["hierarchical"], res["timing"]["array"]
    print(f"{name}: {h['area']:,.1f} µm² ({100 * h['ff_share']:.0f} % flip-flops; flat "
          f"{res['area']['flat']['area']:,.1f} µm²), Fmax {t['fmax_mhz']:.1f} MHz "
          f"(min period {t['min_period_ns']:.3f} ns)")
    for key, pw in res["power"].items():
        print(f"  power {key}: {pw['pj_per_mac']:.3f} pJ/MAC, {pw['pj_per_cycle']:.2f} pJ/cycle "
              f"({pw['results_checked']} results checked)")
    print(f"wrote {rdir / 'report.md'} and {rdir / 'report.json'} ({res['total_wall_s']} s)")
    return 0
