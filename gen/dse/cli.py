"""``python -m gen.dse`` (``scripts/dse.py``): run the sweep; write CSV, JSON, summary, plots."""
from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

from .. import area
from ..cli import DesignArgumentParser
from ..config import LutConfig
from ..synth.comparison import DENSITY_FORMULA, MACS_FORMULA
from ..synth.yosys import DEFAULT_TIMEOUT
from ..tools import atomic_write
from . import cache as cache_mod
from .cache import key_context
from .dask_backend import ToolchainError
from .points import DEFAULT_K_MAX, FAMILIES, FP_ACTS, KINDS, build_sweep
from .report import fp_ratio_table, make_row, ratio_table, summary_markdown, verdict, write_csv
from .run import Progress, process_pool, run_sweep

__all__ = ["main", "parse_args", "DEFAULT_OUT"]

DEFAULT_OUT = Path("reports/dse")


def parse_args(argv, prog="python -m gen.dse"):
    p = DesignArgumentParser(
        prog=prog,
        description="Design-space exploration of the LUT Tensor Core array: synthesize a sweep "
                    "of design points (tile shape, group size, symmetrization, weight and "
                    "activation bits) and the MAC baselines with Yosys, cache the results, "
                    "write points.csv/points.json, plots and summary.md.")
    p.add_argument("-j", "--workers", "--jobs", dest="jobs", type=int, metavar="N",
                   help="points synthesized in parallel: worker processes of the local Dask "
                        "cluster or of the process pool (default: the machine's cores, "
                        f"{os.cpu_count()} here)")
    p.add_argument("--backend", choices=("dask", "pool"),
                   help="run the points as Dask tasks (default when dask.distributed is "
                        "installed: the [dse] extra) or in a local process pool")
    p.add_argument("--scheduler", metavar="ADDR",
                   help="address of a running Dask scheduler (tcp://HOST:PORT) whose workers "
                        "run the points; default $DASK_SCHEDULER_ADDRESS (dask.config "
                        "scheduler-address), else a local cluster. --out and --cache must "
                        "then be on a file system every worker reaches at the same path")
    p.add_argument("--quick", action="store_true",
                   help="a dozen small points (n <= 16, A8) covering every plot (make test)")
    p.add_argument("--out", metavar="DIR",
                   help=f"output directory (default {DEFAULT_OUT}, {DEFAULT_OUT}/quick with "
                        "--quick)")
    p.add_argument("--cache", metavar="DIR",
                   help=f"result cache (default {DEFAULT_OUT}/cache, or <out>/cache when "
                        "--out is given)")
    p.add_argument("--k-max", type=int, default=DEFAULT_K_MAX, metavar="K",
                   help=f"k_max of every point: sizes the accumulators (default "
                        f"{DEFAULT_K_MAX})")
    p.add_argument("--family", action="append", choices=FAMILIES,
                   help="run only this family (repeatable; default all, but the full sweep "
                        "leaves out fp: its points take 10-50 min each)")
    p.add_argument("--fp-act", default="fp16", metavar="FMT[,FMT]",
                   help="activation formats of the fp family, comma-separated among "
                        f"{', '.join(FP_ACTS)} (default fp16)")
    p.add_argument("--only", action="append", metavar="TEXT",
                   help="run only the points whose label contains TEXT (repeatable: any of "
                        "them), e.g. --only fp16 or --only lut_w2a8_g4_m2n64")
    p.add_argument("--ppa", metavar="PARTS",
                   help="add real-cell columns (gen.ppa, sky130hd), cached: area (mapped "
                        "µm²), timing (OpenSTA Fmax, TOPS/mm²; with the buffered flat netlist) "
                        "and power (pJ/MAC, TOPS/W from a gate-level simulation of random "
                        "operands; integer points only, slow), comma-separated, e.g. "
                        "--ppa area,timing")
    p.add_argument("--ppa-clock-ns", type=float, default=None, metavar="NS",
                   help="clock ABC maps for and OpenSTA checks with --ppa (default "
                        "5.0 ns)")
    p.add_argument("--ppa-common-mhz", type=float, default=None, metavar="MHZ",
                   help="common clock of the TOPS/mm² column (default: the slowest Fmax of "
                        "the rows)")
    p.add_argument("--force", action="store_true",
                   help="ignore the cache and synthesize every point again")
    p.add_argument("--list", action="store_true",
                   help="print the points and whether each is cached; synthesize nothing")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                   help=f"stop one Yosys run after S seconds (default {DEFAULT_TIMEOUT})")
    args = p.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        p.error(f"--workers must be at least 1, not {args.jobs}")
    _backend_args(p, args)
    _ppa_args(p, args)
    args.fp_acts = tuple(a.strip() for a in args.fp_act.split(","))
    bad = [a for a in args.fp_acts if a not in FP_ACTS]
    if bad or not args.fp_acts:
        p.error(f"--fp-act must be among {', '.join(FP_ACTS)}, not {args.fp_act!r}")
    if not args.timeout > 0:
        p.error(f"--timeout must be > 0 seconds, not {args.timeout}")
    try:
        LutConfig(k_max=args.k_max)
    except (TypeError, ValueError) as e:
        p.error(f"--k-max: {e}")
    out = Path(args.out) if args.out else (DEFAULT_OUT / "quick" if args.quick else DEFAULT_OUT)
    if out.exists() and not out.is_dir():
        p.error(f"--out must be a directory, not the file {str(out)!r}")
    cache = Path(args.cache) if args.cache else (out / "cache" if args.out else
                                                 DEFAULT_OUT / "cache")
    if cache.exists() and not cache.is_dir():
        p.error(f"--cache must be a directory, not the file {str(cache)!r}")
    args.out_dir, args.cache_dir = out, cache
    return args


def _ppa_args(p, args):
    from .ppa import DEFAULT_CLOCK_NS, parse_parts
    if args.ppa is None:
        args.ppa_parts = None
        for flag, v in (("--ppa-clock-ns", args.ppa_clock_ns),
                        ("--ppa-common-mhz", args.ppa_common_mhz)):
            if v is not None:
                p.error(f"{flag} needs --ppa")
        return
    try:
        args.ppa_parts = parse_parts(args.ppa)
    except ValueError as e:
        p.error(str(e))
    if args.ppa_clock_ns is None:
        args.ppa_clock_ns = DEFAULT_CLOCK_NS
    for flag, v in (("--ppa-clock-ns", args.ppa_clock_ns),
                    ("--ppa-common-mhz", args.ppa_common_mhz)):
        if v is not None and not v > 0:
            p.error(f"{flag} must be > 0, not {v}")
    if "timing" in args.ppa_parts:
        from ..ppa.sta import sta_binary
        if sta_binary() is None:
            p.error("--ppa timing needs OpenSTA (binary sta): apt-get install opensta")


def _has_distributed():
    try:
        import distributed  # noqa: F401
        return True
    except ImportError:
        return False


def _backend_args(p, args):
    """Settle ``args.backend`` and ``args.scheduler`` (errors exit 2 through ``p``)."""
    if args.scheduler is not None and not re.match(r"^[a-z][a-z0-9+.-]*://\S+$",
                                                   args.scheduler):
        p.error(f"--scheduler must be an address like tcp://HOST:PORT, not {args.scheduler!r}")
    if args.backend is None:
        args.backend = "dask" if _has_distributed() or args.scheduler else "pool"
    if args.backend == "pool":
        if args.scheduler is not None:
            p.error("--scheduler needs --backend dask, not pool")
        return
    if not _has_distributed():
        p.error("--backend dask needs dask.distributed: pip install 'lutcore[dse]'")
    from .dask_backend import scheduler_address
    args.scheduler = scheduler_address(args.scheduler)
    if args.scheduler is not None and args.jobs is not None:
        p.error(f"--workers sizes a local cluster; the scheduler at {args.scheduler} has its "
                "own workers (unset DASK_SCHEDULER_ADDRESS for a local cluster)")


def _executor(args):
    if args.backend == "pool":
        return process_pool(args.jobs or os.cpu_count() or 1)
    from .dask_backend import dask_executor
    return dask_executor(args.scheduler, args.jobs)


def _list(sweep, ctx, cache):
    n_cached = 0
    for pt in sorted(sweep.points, key=lambda p: p.label):
        _, rec = cache_mod.lookup(cache, pt, ctx)
        n_cached += rec is not None
        state = "cached" if rec is not None else "to synthesize"
        print(f"{pt.label:<44} {','.join(sorted(sweep.points[pt])):<11} {state}")
    print(f"{len(sweep.points)} points, {n_cached} cached, {len(sweep.points) - n_cached} "
          "to synthesize")
    return 0


def main(argv=None, prog="python -m gen.dse", executor=None):
    """Run the sweep; ``executor`` replaces the local process pool (:mod:`gen.dse.run`)."""
    args = parse_args(sys.argv[1:] if argv is None else argv, prog)
    t_start = time.monotonic()
    out, cache = args.out_dir, args.cache_dir
    sweep = build_sweep(args.quick, args.k_max, args.family, args.fp_acts)
    if args.only:
        sweep.points = {pt: f for pt, f in sweep.points.items()
                        if any(t in pt.label for t in args.only)}
        if not sweep.points:
            print(f"{prog}: --only {' '.join(args.only)}: no point of the sweep matches",
                  file=sys.stderr)
            return 2
    ctx = key_context()
    pctx = None
    if args.ppa_parts:
        from .ppa import ppa_context
        pctx = ppa_context(args.ppa_parts, args.ppa_clock_ns)
    if args.list:
        return _list(sweep, ctx, cache)

    out.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    prog = Progress(len(sweep.points), 0)
    executor = executor or _executor(args)
    try:
        records, failures = run_sweep(list(sweep.points), ctx, cache, out / "work",
                                      args.timeout, executor=executor,
                                      force=args.force, progress=prog, ppa=pctx)
    except KeyboardInterrupt:
        print(f"\ndse: interrupted; {prog.computed} points run in this sweep are cached in "
              f"{cache}, no outputs written", file=sys.stderr)
        return 130
    except OSError as e:
        if args.backend != "dask" or args.scheduler is None:
            raise
        print(f"dse: cannot reach the Dask scheduler {args.scheduler}: {e}", file=sys.stderr)
        return 1
    except ToolchainError as e:  # no Dask worker passed its toolchain check
        print(f"dse: {e}", file=sys.stderr)
        return 1

    rows = [make_row(pt, sweep.points[pt], rec, key, cached)
            for pt, (rec, cached, key) in records.items()]
    rows.sort(key=lambda r: (r["act"], KINDS.index(r["kind"]), r["a_bits"], r["w_bits"], r["g"],
                             r["m"], not r["symmetric"] if r["symmetric"] is not None else 0,
                             r["table_bits_q"] or 0, r["scale_block"] or 0))
    computed = sum(1 for r in rows if not r["cached"])
    ppa_meta = None
    if pctx:
        from .ppa import with_common_clock
        common = with_common_clock(rows, args.ppa_common_mhz)
        ppa_meta = {**pctx, "common_mhz": common,
                    "liberty_name": Path(pctx["liberty"]).name,
                    "common_rule": "given" if args.ppa_common_mhz else
                    "the slowest Fmax of the rows"}
    if args.no_plots:
        plots = []
    else:
        from .plots import plot_all
        plots = plot_all(rows, out, args.k_max)
    wall = time.monotonic() - t_start
    meta = {
        "k_max": args.k_max, "quick": args.quick,
        "points_total": len(sweep.points), "points_ok": len(rows), "computed": computed,
        "cached": len(rows) - computed, "failed": len(failures), "failures": failures,
        "wall_s": round(wall, 2), "jobs": args.jobs, "backend": args.backend,
        "scheduler": args.scheduler if args.backend == "dask" else None,
        "executor": getattr(executor, "stats", None) or None,
        "yosys": ctx["yosys"], "key_context": ctx,
        "density": DENSITY_FORMULA, "macs_per_cycle": MACS_FORMULA,
        "area_weights": area.weights_text(),
        "plots": [p.name for p in plots], "ppa": ppa_meta,
    }
    atomic_write(out / "points.json", json.dumps({"meta": meta, "points": rows,
                                                  "ratios": ratio_table(rows),
                                                  "fp_ratios": fp_ratio_table(rows),
                                                  "verdict": verdict(rows)},
                                                 indent=1, sort_keys=True) + "\n")
    write_csv(out / "points.csv", rows)
    atomic_write(out / "summary.md", summary_markdown(rows, meta) + "\n")
    print(f"dse: {len(rows)}/{len(sweep.points)} points ({computed} synthesized, "
          f"{len(rows) - computed} cached, {len(failures)} failed) in {wall:.1f} s; "
          f"wrote {out / 'points.csv'}, {out / 'points.json'}, {out / 'summary.md'}"
          + (f" and {len(plots)} plots" if plots else ""))
    for f in failures:
        print(f"dse: FAILED {f['label']}: {f['error']}", file=sys.stderr)
    return 1 if failures else 0
