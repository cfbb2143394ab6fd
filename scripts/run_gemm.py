#!/usr/bin/env python3
"""Run GEMM shapes through the emitted engine in a simulator; print cycles and utilization.

    python scripts/run_gemm.py --shape 64x256x256 --fmt int --w 2
    python scripts/run_gemm.py --utilization-table          # M x K x N = 64 x K x 256,
                                                            # K = 256, 1024, 4096; w = 1, 2, 4

Utilization = ideal cycles / measured cycles, ideal = M*N*K*w / (m*n*g) (whole tiles), measured
from the engine's command beat to its last result beat (docs/interface.md). Inputs stream at
full rate (no pauses). Operands are random (seeded); every result is checked bit-exactly
against gen.golden inside the testbench.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from gen.cli import (DesignArgumentParser, add_design_args, arg_type, config_from_args,
                     parse_gemm_shape)
from gen.config import WeightFormat


def run_jobs(cfg, jobs, sim, workdir):
    """Run ``jobs`` (dicts as tb.test_engine's LUTCORE_GEMM) on one engine build."""
    from tb.runner import run_sim
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    job_file = workdir / "jobs.json"
    job_file.write_text(json.dumps(jobs, indent=2))
    t0 = time.perf_counter()
    run_sim(cfg, sim, workdir, top="engine", test_module="tb.test_engine",
            testcase="test_gemm_jobs", extra_env={"LUTCORE_GEMM": str(job_file)})
    results = json.loads((workdir / "jobs.json.out.json").read_text())
    return results, time.perf_counter() - t0


def main(argv=None):
    p = DesignArgumentParser(prog="scripts/run_gemm.py", description=__doc__.split("\n")[0])
    add_design_args(p)
    r = p.add_argument_group("GEMM")
    r.add_argument("--shape", type=arg_type(parse_gemm_shape), action="append", metavar="MxKxN",
                   help="GEMM shape M x K x N: A is M x K, W is K x N (repeatable)")
    r.add_argument("--fmt", default="int", help="weight format of the operation (default int)")
    r.add_argument("--w", type=int, action="append", metavar="BITS",
                   help="runtime weight bits of the operation (repeatable; default --w-bits)")
    r.add_argument("--utilization-table", action="store_true",
                   help="M x K x N = 64 x K x 256 for K = 256, 1024, 4096 at w = 1, 2, 4 "
                        "(builds with --w-bits 4 --k-max 4096)")
    r.add_argument("--sim", choices=("verilator", "icarus"), default="verilator")
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--out", default=None, help="work directory (default: a temporary one)")
    r.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    if args.utilization_table:
        args.w_bits, args.k_max = 4, max(args.k_max, 4096)
    cfg = config_from_args(p, args)
    if args.utilization_table:
        shapes, ws = [(64, k, 256) for k in (256, 1024, 4096)], [1, 2, 4]
    else:
        shapes, ws = args.shape or [(4 * cfg.m, min(cfg.k_max, 256), 2 * cfg.n)], \
            args.w or [cfg.w_bits]
    try:
        fmt = WeightFormat.parse(args.fmt)
        jobs = []
        for w in ws:
            cfg.check_op(fmt, w)
            for shape in shapes:
                if shape[1] > cfg.k_max:
                    p.error(f"--shape: K = {shape[1]} exceeds --k-max {cfg.k_max}")
                jobs.append({"name": f"{shape[0]}x{shape[1]}x{shape[2]} {fmt.label} w{w}",
                             "shape": list(shape), "fmt": fmt.label, "w_bits": w,
                             "seed": args.seed})
    except ValueError as e:
        p.error(f"--fmt/--w: {e}")
    with tempfile.TemporaryDirectory() as tmp:
        results, wall = run_jobs(cfg, jobs, args.sim, args.out or tmp)
    print(f"engine {cfg.name} (m={cfg.m}, n={cfg.n}, g={cfg.g}) on {args.sim}, "
          f"{wall:.1f} s in all")
    print("| M x K x N | format | w | cycles | ideal | utilization | sim wall s | cycles/s |")
    print("|---|---|---|---|---|---|---|---|")
    for rec in results:
        rows, k, cols = rec["shape"]
        print(f"| {rows} x {k} x {cols} | {rec['fmt']} | {rec['w_bits']} | {rec['cycles']} | "
              f"{rec['ideal']} | {100 * rec['utilization']:.2f} % | {rec['wall_s']:.1f} | "
              f"{rec['cycles_per_s']:.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
