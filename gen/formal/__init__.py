"""Formal proofs of the emitted Verilog: ``python -m gen.formal`` / ``lutcore-formal``.

Every proof emits the design point with :func:`gen.emit.emit` (the same Verilog users get),
finds the block it is about in the emitted text by its Amaranth path, wraps it in a harness
written from the config (:mod:`gen.formal.harness`) and runs a solver
(:mod:`gen.formal.engines`). The properties (docs/formal.md has the statements, parameters
and measured times):

``lookup``      the lookup's entry is the full-table entry, every table content and index
``pe_group``    one group of ``w`` planes through the PE: ``out = sum_b 2**b * entry_b``
``correction``  corrected result = integer dot product, every format and ``w``
``stream``      valid/ready rules and beat counts on every stream of the array (BMC)
``engine_stream`` the same on every stream of the engine (BMC)
``acc_range``   no overflow of partial or accumulator over ``k_max`` activations
``fp_units``    the FP units (hw/fp) equal SMT-LIB FloatingPoint arithmetic, RNE (z3)
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from gen.config import LutConfig

from . import harness as H
from .emitted import EmittedVerilog
from .engines import ERROR, FAILED, PROVED, SBY_SOLVER, SOLVERS, TIMEOUT, sat_proof, sby_proof
from .fp_units import fp_unit_cases, fp_unit_proof

__all__ = ["PROPERTIES", "ProofResult", "run_proofs", "render_table", "point_label",
           "PROVED", "FAILED", "TIMEOUT", "ERROR", "STREAM_DEPTH", "ENGINE_DEPTH", "SOLVERS",
           "SBY_SOLVER"]

PROPERTIES = ("lookup", "pe_group", "correction", "stream", "engine_stream", "acc_range",
              "fp_units")

#: cycles the stream proof of the array checks from reset
STREAM_DEPTH = 20
#: cycles the engine's stream proof checks from reset: each cycle about doubles its time
#: (docs/formal.md); 12 cycles cover a GEMM of two row blocks and the start of the next
ENGINE_DEPTH = 12
#: seconds an FP unit proof gets unless ``timeout`` says otherwise: multiplier and adder
#: equivalences can run for hours (docs/formal.md has what finished)
FP_TIMEOUT = 600


@dataclass
class ProofResult:
    prop: str
    point: str
    engine: str
    result: str
    seconds: float
    detail: str = ""
    vcd: Path | None = None
    workdir: Path | None = None
    case: str = ""

    @property
    def ok(self):
        return self.result == PROVED


def point_label(cfg: LutConfig):
    sym = "sym" if cfg.symmetric else "full"
    return f"w{cfg.w_bits}a{cfg.a_bits} g{cfg.g} m{cfg.m}n{cfg.n} k{cfg.k_max} {sym}"


# The smaller points some proofs run at (a proof at the full point is possible but slow;
# docs/formal.md gives the times). Each keeps every parameter that the property depends on.
def correction_point(cfg: LutConfig):
    """Columns are copies of one block: two of them show the shared term and the copies."""
    return cfg.replace(n=min(cfg.n, 2))


def stream_point(cfg: LutConfig):
    """The protocol does not depend on payload widths: a 2x2 tile, 2-bit activations, and a
    k_max that lets an operation of up to 2 groups finish inside the bound."""
    return cfg.replace(m=min(cfg.m, 2), n=min(cfg.n, 2), a_bits=2, k_max=min(cfg.k_max, 2 * cfg.g))


def range_point(cfg: LutConfig, limit=8):
    """k_max up to ``limit`` activations: the unrolled proof grows with k_max * w_bits / g."""
    return cfg.replace(k_max=min(cfg.k_max, limit))


class _Emitted:
    """Emit each design point once per run (the mutant patches of a test apply)."""

    def __init__(self, out_dir):
        self.out_dir = Path(out_dir)
        self.cache = {}

    def __call__(self, cfg, top="array"):
        if (cfg, top) not in self.cache:
            from gen.emit import emit
            res = emit(cfg, self.out_dir / "emit", top=top)
            manifest = json.loads(Path(res["manifest"]).read_text())
            text = Path(res["verilog"]).read_text()
            self.cache[cfg, top] = (text, EmittedVerilog(text), res["name"],
                                    manifest["pe_module"])
        return self.cache[cfg, top]


def _jobs(cfg: LutConfig, props, range_limit, stream_depth, engine_depth, solver):
    """(property, case, design point, engine, build) for each proof to run."""
    jobs: list = []
    if "lookup" in props:
        def lookup(em, c=cfg):
            text, ev, _, pe = em(c)
            return dict(kind="sat", design=text,
                        harness=H.lookup_table_miter(c, ev, ev.submodule(pe, "lookup")))
        jobs.append(("lookup", "", cfg, "yosys sat", lookup))
    if "pe_group" in props:
        for w in range(1, cfg.w_bits + 1):
            def pe_group(em, c=cfg, w=w):
                text, ev, _, pe = em(c)
                return dict(kind="sat", design=text, seq=w + 2,
                            sets=[("e_obs", "dut.lookup.entry")],
                            harness=H.pe_harness(c, ev, pe, 1, w))
            jobs.append(("pe_group", f"w={w}", cfg, f"yosys sat -seq {w + 2}", pe_group))
    if "correction" in props:
        c = correction_point(cfg)
        for fmt, w in c.ops():
            def correction(em, c=c, fmt=fmt, w=w):
                text, ev, name, _ = em(c)
                return dict(kind="sat", design=text, harness=H.correction_miter(
                    c, ev, ev.submodule(name, "correction"), fmt, w))
            jobs.append(("correction", f"{fmt.label} w={w}", c, "yosys sat", correction))
    if "stream" in props:
        c = stream_point(cfg)

        def stream(em, c=c):
            text, ev, name, _ = em(c)
            return dict(kind="sby", design=text, depth=stream_depth,
                        harness=H.stream_harness(c, ev, name))
        jobs.append(("stream", "array", c, f"sby smtbmc {solver}, {stream_depth} cycles",
                     stream))
    if "engine_stream" in props:
        c = stream_point(cfg)

        def engine_stream(em, c=c):
            text, ev, name, _ = em(c, "engine")
            return dict(kind="sby", design=text, depth=engine_depth,
                        harness=H.engine_stream_harness(c, ev, name))
        jobs.append(("engine_stream", "engine", c,
                     f"sby smtbmc {solver}, {engine_depth} cycles", engine_stream))
    if "acc_range" in props:
        c = range_point(cfg, range_limit)
        steps = c.groups_max * c.w_bits

        def acc_range(em, c=c):
            text, ev, _, pe = em(c)
            return dict(kind="sat", design=text, seq=c.groups_max * c.w_bits + 2,
                        sets=[("e_obs", "dut.lookup.entry")],
                        harness=H.pe_harness(c, ev, pe, c.groups_max, c.w_bits))
        jobs.append(("acc_range", f"K={c.k_max} w={c.w_bits}", c,
                     f"yosys sat -seq {steps + 2}", acc_range))
    if "fp_units" in props:
        for unit, params, label in fp_unit_cases(min(cfg.w_bits, 5)):
            jobs.append(("fp_units", label, "FP unit", "yosys write_smt2, z3 FP",
                         lambda em, u=unit, p=params: dict(kind="fp", unit=u, params=p)))
    return jobs


def run_proofs(cfg: LutConfig, out_dir, props=PROPERTIES, *, timeout=None, range_limit=8,
               stream_depth=STREAM_DEPTH, engine_depth=ENGINE_DEPTH, solver=SBY_SOLVER,
               progress=None):
    """Run the proofs ``props`` for ``cfg``; one directory per proof under ``out_dir``.
    ``solver`` is the SMT solver of the bounded (SymbiYosys) proofs, one of :data:`SOLVERS`.

    Returns a list of :class:`ProofResult`; ``progress(result)`` is called after each.
    """
    unknown = [p for p in props if p not in PROPERTIES]
    if unknown:
        raise ValueError(f"properties must be among {', '.join(PROPERTIES)}, not "
                         f"{', '.join(unknown)}")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, not {solver!r}")
    out_dir = Path(out_dir)
    em = _Emitted(out_dir)
    results = []
    jobs = _jobs(cfg, props, range_limit, stream_depth, engine_depth, solver)
    for n, (prop, case, point, engine, build) in enumerate(jobs):
        workdir = out_dir / (f"{n:02d}_{prop}" + (f"_{_slug(case)}" if case else ""))
        job = build(em)
        if job["kind"] == "sat":
            res = sat_proof(job["design"], job["harness"], workdir, seq=job.get("seq"),
                            sets=job.get("sets", ()), timeout=timeout)
        elif job["kind"] == "fp":
            res = fp_unit_proof(job["unit"], job["params"], workdir,
                                timeout=timeout or FP_TIMEOUT)
        else:
            res = sby_proof(job["design"], job["harness"], workdir, depth=job["depth"],
                            solver=solver, **({"timeout": timeout} if timeout else {}))
        label = point_label(point) if isinstance(point, LutConfig) else point
        result = ProofResult(prop, label, engine, res[0], res[1], res[2], res[3],
                             workdir, case)
        results.append(result)
        if progress:
            progress(result)
    return results


def _slug(text):
    return "".join(ch if ch.isalnum() else "_" for ch in text).strip("_")


def render_table(results):
    """The summary table: property, case, design point, engine, result, seconds."""
    head = ("property", "case", "design point", "engine", "result", "seconds")
    rows = [(r.prop, r.case, r.point, r.engine, r.result, f"{r.seconds:.1f}") for r in results]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in rows]
    return "\n".join(lines)
