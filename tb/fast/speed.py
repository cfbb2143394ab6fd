"""Simulation speed of one engine design, measured in one run: raw Verilator (every input
valid, no IO, no checks) vs the fast runner vs cocotb streaming, and Icarus with the generated
``$readmemh`` testbench vs cocotb: ``python -m tb.fast.speed``.

Cycles per wall second. For the fast runner two figures: the harness' simulation loop alone,
and end to end (Python packing, the harness process, reading back and the golden check
with ``gen.golden.lut_mpgemm``). cocotb's figure is per GEMM inside the testbench (streams
packed by ``gen.golden.gemm_streams`` and driven beat by beat from Python).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from gen.config import LutConfig
from gen.golden import random_activations, random_weights

from .runner import FastEngine, GemmJob


def _job(cfg, shape, w_bits, seed=1):
    rows, k, cols = shape
    rng = np.random.default_rng(seed)
    return GemmJob(random_activations(rng, (rows, k), cfg.a_bits),
                   random_weights(rng, (k, cols), "int", w_bits), "int", w_bits,
                   name=f"{rows}x{k}x{cols} int{w_bits}")


def _cocotb(cfg, shape, w_bits, sim, workdir):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from run_gemm import run_jobs
    jobs = [{"name": "speed", "shape": list(shape), "fmt": "int", "w_bits": w_bits, "seed": 1}]
    res, _ = run_jobs(cfg, jobs, sim, workdir)
    return res[0]["cycles"] / res[0]["wall_s"]


def measure(cfg, shape, w_bits, icarus_shape, workdir, rounds=2, raw_cycles=300_000,
            cocotb=True, icarus=True):
    workdir = Path(workdir)
    out = {"design": None, "shape": list(shape), "w_bits": w_bits}
    eng = FastEngine(cfg, workdir / "fast")
    out["design"] = eng.name
    job = _job(cfg, shape, w_bits)
    raw, loop, e2e = [], [], []
    for _ in range(rounds):             # interleaved, so load changes hit both alike
        raw.append(eng.raw_speed(job, raw_cycles))
        t0 = time.perf_counter()
        (r,) = eng.run([job])
        wall = time.perf_counter() - t0
        loop.append(r.sim_cycles / eng.last_sim_s)
        e2e.append(r.sim_cycles / wall)
    out.update(raw=float(np.median(raw)), fast_loop=float(np.median(loop)),
               fast_end_to_end=float(np.median(e2e)), cycles=r.cycles)
    if cocotb:
        out["cocotb_verilator"] = _cocotb(cfg, shape, w_bits, "verilator", workdir / "cocotb")
    if icarus:
        from .icarus import IcarusEngine
        ic = IcarusEngine(cfg, workdir / "icarus", depth=1 << 15)
        ijob = _job(cfg, icarus_shape, w_bits)
        t0 = time.perf_counter()
        r = ic.run(ijob)
        out["icarus_shape"] = list(icarus_shape)
        out["icarus_readmemh"] = r.sim_cycles / ic.last_sim_s
        out["icarus_readmemh_end_to_end"] = r.sim_cycles / (time.perf_counter() - t0)
        if cocotb:
            out["cocotb_icarus"] = _cocotb(cfg, icarus_shape, w_bits, "icarus",
                                           workdir / "cocotb_icarus")
    return out


def measure_fp(cfg, shape, w_bits, build, rounds=2, raw_cycles=100_000):
    """The FP engine (``tb.fast.fp_engine``): raw loop, harness loop, end to end (bulk packing,
    the run, reading back and the check against ``gen.model.fp_gemm``) on one GEMM."""
    from gen.config import WeightFormat

    from .fp_engine import FastFpEngine, FpGemmJob
    rows, k, cols = shape
    rng = np.random.default_rng(1)
    eng = FastFpEngine(cfg, build)
    blocks = -(-k // (cfg.scale_block * cfg.g))
    acts = rng.standard_normal((rows, k)).astype(np.float16).view(np.uint16)
    scales = (rng.random((cols, blocks)) * 0.1 + 0.01).astype(np.float16).view(np.uint16)
    job = FpGemmJob(acts, random_weights(rng, (k, cols), WeightFormat.INT, w_bits), "int",
                    w_bits, scales, name=f"{rows}x{k}x{cols} int{w_bits}", golden="fast")
    raw, loop, e2e, raw_cpu, run_cpu = [], [], [], [], []
    for _ in range(rounds):             # interleaved, so load changes hit both alike
        raw.append(eng.raw_speed(job, raw_cycles))
        raw_cpu.append(raw_cycles / eng.last_cpu_s)
        t0 = time.perf_counter()
        (r,) = eng.run([job])
        wall = time.perf_counter() - t0
        run_cpu.append(r.sim_cycles / eng.last_cpu_s)
        loop.append(r.sim_cycles / eng.last_sim_s)
        e2e.append(r.sim_cycles / wall)
    # per CPU second of the harness process (start-up and file IO included): on a shared
    # machine the wall-clock figures follow the CPU share, these do not
    return {"design": eng.name, "shape": list(shape), "w_bits": w_bits, "cycles": r.cycles,
            "raw": float(np.median(raw)), "fast_loop": float(np.median(loop)),
            "fast_end_to_end": float(np.median(e2e)), "raw_per_cpu_s": float(np.median(raw_cpu)),
            "fast_harness_per_cpu_s": float(np.median(run_cpu))}


def render(s):
    rows = [("Verilator, raw loop (inputs always valid, no IO, no checks)", s["raw"]),
            ("Verilator, fast runner: harness loop", s["fast_loop"]),
            ("Verilator, fast runner: end to end (pack, run, read back, golden check)",
             s["fast_end_to_end"])]
    if "cocotb_verilator" in s:
        rows.append(("Verilator, cocotb streaming (scripts/run_gemm.py)", s["cocotb_verilator"]))
    if "icarus_readmemh" in s:
        rows.append(("Icarus, generated $readmemh testbench (vvp run)", s["icarus_readmemh"]))
    if "cocotb_icarus" in s:
        rows.append(("Icarus, cocotb streaming", s["cocotb_icarus"]))
    lines = [f"design {s['design']}, GEMM {'x'.join(map(str, s['shape']))} int{s['w_bits']}"
             + (f" (Icarus: {'x'.join(map(str, s['icarus_shape']))})"
                if "icarus_shape" in s else ""),
             "", "| how | cycles/s | vs raw | vs cocotb (same simulator) |", "|---|---|---|---|"]
    for name, v in rows:
        ref = s.get("cocotb_icarus") if name.startswith("Icarus") else s.get("cocotb_verilator")
        vs_raw = f"{100 * v / s['raw']:.0f} %" if name.startswith("Verilator") else "-"
        vs_c = f"{v / ref:.1f}x" if ref else "-"
        lines.append(f"| {name} | {v:,.0f} | {vs_raw} | {vs_c} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tb.fast.speed", description=__doc__.split("\n")[0])
    p.add_argument("--k-max", type=int, default=1536)
    p.add_argument("--no-cocotb", action="store_true")
    p.add_argument("--no-icarus", action="store_true")
    p.add_argument("--out", default=None, help="work directory (default: temporary)")
    p.add_argument("--json", default="build/fast_speed.json")
    p.add_argument("--act", default="int8", choices=("int8", "fp16", "bf16"),
                   help="fp16/bf16: the FP engine (q tables, t = 8, b = 32) on a 326 x 384 x "
                        "384 W4 GEMM, Verilator raw loop vs fast runner only")
    p.add_argument("--build", default=None,
                   help="FP engine build directory (default build/model_<act>, as gen.model)")
    args = p.parse_args(argv)
    if args.act != "int8":
        cfg = LutConfig(act_format=args.act, table_format="q", table_bits=8, scale_block=32,
                        w_bits=4, k_max=args.k_max)
        s = measure_fp(cfg, (326, 384, 384), 4, args.build or f"build/model_{args.act}")
        print(render(s))
        print(f"per CPU second of the harness process: raw {s['raw_per_cpu_s']:,.0f}, fast "
              f"runner {s['fast_harness_per_cpu_s']:,.0f} cycles")
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(s, indent=2) + "\n")
        return 0
    cfg = LutConfig(w_bits=4, a_bits=8, k_max=args.k_max)
    with tempfile.TemporaryDirectory() as tmp:
        s = measure(cfg, (64, 512, 256), 4, (16, 256, 64), args.out or tmp,
                    cocotb=not args.no_cocotb, icarus=not args.no_icarus)
    print(render(s))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(s, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
