"""Command line of the formal proofs: ``python -m gen.formal [design options]``.

Runs every proof (or ``--only``) for the design point the options give, prints one line per
proof as it finishes and then the summary table; a failed proof prints its counterexample
(concrete port values per step) and, for a sequential one, the VCD file to open. Exit code
0 when everything proved, 1 otherwise, 2 for a bad option (one line, nothing written).
"""
from __future__ import annotations

from pathlib import Path

from gen.cli import DesignArgumentParser, add_design_args, config_from_args, prog_name

from . import ENGINE_DEPTH, PROPERTIES, SBY_SOLVER, SOLVERS, render_table, run_proofs

__all__ = ["main"]


def main(argv=None):
    p = DesignArgumentParser(
        prog=prog_name("gen.formal", "lutcore-formal"),
        description="Prove the emitted Verilog of a design point against the math with "
                    "Yosys' SAT solver and SymbiYosys (docs/formal.md): the lookup, one PE "
                    "group, the offset correction, the stream protocol of the array and of the "
                    "engine, and the accumulator range.")
    add_design_args(p)
    f = p.add_argument_group("proofs")
    f.add_argument("--only", action="append", metavar="PROP",
                   help=f"run only these properties ({', '.join(PROPERTIES)}); repeat or "
                        "comma-separate (default: all)")
    f.add_argument("--out", default="build/formal", metavar="DIR",
                   help="directory for the proofs' files, logs and VCDs (default build/formal)")
    f.add_argument("--timeout", type=int, default=None, metavar="S",
                   help="give up a proof after S seconds (default: no limit, 600 for "
                        "an FP unit)")
    f.add_argument("--range-k-max", type=int, default=8, metavar="K",
                   help="acc_range proves K <= min(--k-max, this) activations (default 8)")
    f.add_argument("--stream-depth", type=int, default=20, metavar="N",
                   help="cycles from reset the array's stream proof checks (default 20)")
    f.add_argument("--engine-depth", type=int, default=ENGINE_DEPTH, metavar="N",
                   help="cycles from reset the engine's stream proof checks (default "
                        f"{ENGINE_DEPTH}; each cycle about doubles its time)")
    f.add_argument("--solver", choices=sorted(SOLVERS), default=SBY_SOLVER,
                   help=f"SMT solver of the stream proofs (default {SBY_SOLVER})")
    args = p.parse_args(argv)
    cfg = config_from_args(p, args)
    props = PROPERTIES
    if args.only:
        props = tuple(x.strip() for item in args.only for x in item.split(",") if x.strip())
        bad = [x for x in props if x not in PROPERTIES]
        if bad:
            p.error(f"--only: properties must be among {', '.join(PROPERTIES)}, not "
                    f"{', '.join(bad)}")
    if args.timeout is not None and args.timeout < 1:
        p.error(f"--timeout must be at least 1 second, not {args.timeout}")
    if args.range_k_max < 1:
        p.error(f"--range-k-max must be at least 1, not {args.range_k_max}")
    for opt in ("stream_depth", "engine_depth"):
        if getattr(args, opt) < 2:
            p.error(f"--{opt.replace('_', '-')} must be at least 2 cycles, not "
                    f"{getattr(args, opt)}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        p.error(f"--out must be a directory, not the file {args.out!r}")

    def progress(r):
        print(f"{r.prop:<11} {r.case:<12} {r.result:<8} {r.seconds:6.1f} s", flush=True)
        if not r.ok:
            print(f"  in {r.workdir}")
            if r.detail:
                print(r.detail)
            if r.vcd:
                print(f"  waveform: {r.vcd}")

    results = run_proofs(cfg, out, props, timeout=args.timeout, range_limit=args.range_k_max,
                         stream_depth=args.stream_depth, engine_depth=args.engine_depth,
                         solver=args.solver, progress=progress)
    print()
    print(render_table(results))
    failed = [r for r in results if not r.ok]
    print(f"\n{len(results) - len(failed)} proved, {len(failed)} not proved")
    return 1 if failed else 0
