#!/usr/bin/env python3
"""Utilization of the FP engines (``q`` tables: FpLutEngine; ``fp`` tables: FpTableEngine) on
M x K x N = 64 x K x 256 GEMMs, K = 256, 1024, 4096, w = 1, 2, 4, under Verilator through the
fast runner (tb/fast), every result checked bit-exactly:

    python scripts/fp_utilization.py --tables q     # M2N64K4, FP16, w_bits 4, k_max 4096
    python scripts/fp_utilization.py --tables q --precompute   # activations in (i_act)
    python scripts/fp_utilization.py --tables q --precompute --precompute-rows 2
    python scripts/fp_utilization.py --tables fp --act bf16 --out build/util_fp

Utilization = ideal / measured cycles, ideal = M*N*K*w / (m*n*g), measured = the engine's
``o_cycles`` (command beat to last result beat; the harness cross-checks it). Inputs stream at
full rate. The first run builds the engine (minutes for the fp-table array at M2N64).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

SHAPES = [(64, k, 256) for k in (256, 1024, 4096)]


def main(argv=None):
    p = argparse.ArgumentParser(prog="scripts/fp_utilization.py",
                                description=__doc__.split("\n")[0])
    p.add_argument("--tables", choices=("q", "fp"), default="q",
                   help="q: the quantized-table engine; fp: the fp-table engine (default q)")
    p.add_argument("--act", choices=("fp16", "bf16"), default="fp16")
    p.add_argument("--precompute", action="store_true",
                   help="q tables only: the engine builds the tables from activations (i_act)")
    p.add_argument("--precompute-rows", type=int, default=1, metavar="R",
                   help="with --precompute: rows the precompute quantizes per cycle, a "
                        "divisor of m = 2 (default 1)")
    p.add_argument("--out", default=None, help="build directory (default build/util_<tables>)")
    p.add_argument("--json", default=None, help="also write the rows here")
    args = p.parse_args(argv)
    if args.precompute and args.tables != "q":
        p.error("--precompute applies to --tables q only")
    if args.precompute_rows != 1 and not args.precompute:
        p.error("--precompute-rows needs --precompute")
    from gen.config import LutConfig
    from tb.fast.fp_engine import FastFpEngine, utilization_rows
    from tb.fast.fp_table_engine import FastFpTableEngine
    try:
        cfg = LutConfig(act_format=args.act, table_format=args.tables, w_bits=4, m=2, n=64,
                        k_max=4096, precompute=args.precompute,
                        precompute_rows=args.precompute_rows)
    except (TypeError, ValueError) as exc:
        p.error(str(exc))
    cls = FastFpEngine if args.tables == "q" else FastFpTableEngine
    pre = ("_pre" if args.precompute else "") + (
        f"_r{args.precompute_rows}" if args.precompute_rows != 1 else "")
    eng = cls(cfg, Path(args.out or f"build/util_{args.tables}{pre}"))
    rows = utilization_rows(eng, SHAPES, (1, 2, 4))
    print(f"{eng.name}: M x K x N, w, cycles, ideal, utilization")
    for r in rows:
        print(f"{'x'.join(map(str, r['shape']))}  w={r['w']}  {r['cycles']}  {r['ideal']}  "
              f"{100 * r['utilization']:.2f} %")
    if args.json:
        Path(args.json).write_text(json.dumps({"design": eng.name, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
