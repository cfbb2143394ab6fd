#!/usr/bin/env python3
"""Synthesis figures of the FP units and the FP MAC arrays (docs/fp.md).

    python scripts/fp_figures.py                   # units + M8N4K16 arrays -> reports/fp/
    python scripts/fp_figures.py --units-only
    python scripts/fp_figures.py --window-sweep    # fused dot product vs one exact rounding

Each unit is emitted alone (``hw.fp.lanes.emit_unit``, one lane) and synthesized with
``gen.synth.synthesize`` (Yosys generic gates, the project's GE weights); the arrays are the
FP16 dequantizing and direct FP MAC arrays and the INT8 dequantizing MAC array at M8N4K16
(W2). Writes ``reports/fp/figures.json`` and ``figures.md``; prints the table.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from gen.config import LutConfig
from gen.emit import emit
from gen.synth import mac_config, synthesize
from hw.fp.lanes import emit_unit

UNITS = [("FP16 x FP16 -> FP32 multiplier", "mul", {"fmt_in": "fp16"}),
         ("BF16 x BF16 -> FP32 multiplier", "mul", {"fmt_in": "bf16"}),
         ("FP32 adder", "add", {}),
         ("FP16 x INT4 -> FP32 (shift-add)", "int_mul", {"w": 4}),
         ("FP16 x INT2 -> FP32 (shift-add)", "int_mul", {"w": 2}),
         ("FP16 FMA (FP16 x FP16 + FP32)", "dot", {"g": 1, "fmt_in": "fp16"}),
         ("BF16 FMA (BF16 x BF16 + FP32)", "dot", {"g": 1, "fmt_in": "bf16"}),
         ("FP16 fused dot product, g = 4, + FP32", "dot", {"g": 4, "fmt_in": "fp16"})]

ARRAYS = [("INT8 dequant MAC array", "int8", "mac_dequant"),
          ("FP16 dequant MAC array", "fp16", "mac_dequant"),
          ("FP16 x INT-w direct MAC array", "fp16", "mac_direct")]


def window_sweep(cases=1000):
    """How many fused dot products differ from one exact rounding, per frame width."""
    import random

    from gen import fp
    from tests.test_fp_golden import DOT_KINDS, dot_cases, ref_dot
    for fmt in (fp.FP16, fp.BF16):
        for g in (4, 16):
            for kind in (1, 3):
                rng = random.Random(7)
                data = dot_cases(rng, fmt, cases, g, kinds=[kind])
                ref = [ref_dot(a, b, c, fmt) for a, b, c in data]
                for window in (27, 32, 40):
                    differ = sum(fp.fp_dot(a, b, c, fmt, window=window) != r
                                 for (a, b, c), r in zip(data, ref))
                    print(json.dumps({"fmt": fmt.name, "g": g, "inputs": DOT_KINDS[kind],
                                      "window": window, "differ": differ, "of": cases}),
                          flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(prog="scripts/fp_figures.py", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="reports/fp", help="report directory (default reports/fp)")
    p.add_argument("--units-only", action="store_true", help="skip the M8N4K16 arrays")
    p.add_argument("--full-arrays", action="store_true",
                   help="synthesize whole M8N4K16 arrays, not only their PE module (the FP "
                        "dequantizers and output scalers are modules of their own: about 95 s "
                        "for the FP16 dequant array on an idle core)")
    p.add_argument("--window-sweep", action="store_true",
                   help="only measure the fused dot product's deviation per frame width")
    args = p.parse_args(argv)
    if args.window_sweep:
        window_sweep()
        return 0
    out = Path(args.out)
    work = out / "work"
    rows = []
    for label, unit, params in UNITS:
        res = emit_unit(unit, params, work / "rtl", lanes=1)
        r = synthesize(res["verilog"], res["name"], work / res["name"])
        t = r["total"]
        rows.append({"what": label, "name": res["name"], "cells": t["num_cells"], "ge": t["ge"],
                     "depth": t["depth"], "ff_bits": t["ff_bits"]})
        print(json.dumps(rows[-1]), flush=True)
    if not args.units_only:
        cfg = mac_config(LutConfig(w_bits=2, a_bits=8), (8, 4, 16))
        for label, act, top in ARRAYS:
            res = (emit(cfg, work / "rtl", top=top) if act == "int8"
                   else emit(cfg, work / "rtl", top=top, act=act))
            pe_module = json.loads(Path(res["manifest"]).read_text())["pe_module"]
            if not args.full_arrays:             # one MAC PE (g = 16 lanes + accumulator)
                r = synthesize(res["verilog"], pe_module, work / pe_module)
                rows.append({"what": f"one PE of the {label}, M8N4K16, W2", "name": pe_module,
                             "cells": r["total"]["num_cells"], "ge": r["total"]["ge"],
                             "depth": r["total"]["depth"], "ff_bits": r["total"]["ff_bits"]})
                print(json.dumps(rows[-1]), flush=True)
                continue
            r = synthesize(res["verilog"], res["name"], work / res["name"])
            pe = [ty for ty in r["types"] if pe_module in ty["modules"]]
            rows.append({"what": f"{label}, M8N4K16, W2", "name": res["name"],
                         "cells": r["total"]["num_cells"], "ge": r["total"]["ge"],
                         "depth": r["total"]["depth"], "ff_bits": r["total"]["ff_bits"],
                         "pe_ge": pe[0]["with_submodules"]["ge"] if pe else None})
            print(json.dumps(rows[-1]), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "figures.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["| unit | cells (generic gates) | GE | depth | one PE (GE) |", "|---|---|---|---|---|"]
    for r in rows:
        pe = f"{r['pe_ge']:,.0f}" if r.get("pe_ge") else ""
        lines.append(f"| {r['what']} | {r['cells']:,} | {r['ge']:,.0f} | {r['depth']} | {pe} |")
    (out / "figures.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    t0 = time.time()
    rc = main()
    print(f"({time.time() - t0:.0f} s)")
    sys.exit(rc)
